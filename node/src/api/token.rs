//! The API's bearer token: loaded from `api.token` and refused unless it is
//! long enough to be a secret, so that no configuration can open the API
//! to anyone (an empty token once matched requests with no header at all).

use std::path::Path;

/// Shortest token accepted. `vigil init` writes 64 hex characters (256
/// bits); 32 characters of hex are still 128 bits.
pub const MIN_TOKEN_CHARS: usize = 32;

/// Why a token is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("cannot read the API token {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the API token {path} is empty; write a new one (e.g. `openssl rand -hex 32 > {path}`, mode 0600)")]
    Empty { path: String },
    #[error(
        "the API token {path} has {chars} characters; at least {MIN_TOKEN_CHARS} are needed \
         (`openssl rand -hex 32 > {path}`, mode 0600)"
    )]
    Short { path: String, chars: usize },
}

/// A bearer token fit to guard the API. Compared through SHA-256 digests,
/// so the comparison's time does not depend on how much of it matched.
#[derive(Clone)]
pub struct ApiToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// Checks `text` (surrounding whitespace ignored); `source` names where
    /// it came from in the error.
    pub fn new(text: &str, source: &str) -> Result<Self, TokenError> {
        let t = text.trim();
        let chars = t.chars().count();
        if chars == 0 {
            return Err(TokenError::Empty { path: source.into() });
        }
        if chars < MIN_TOKEN_CHARS {
            return Err(TokenError::Short { path: source.into(), chars });
        }
        Ok(Self { digest: vigil_crypto::sha256(t.as_bytes()) })
    }

    /// Reads and checks the token file at `path`.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| TokenError::Unreadable { path: shown.clone(), source })?;
        Self::new(&text, &shown)
    }

    /// Whether `given` (from an `Authorization: Bearer` header) is this token.
    pub fn matches(&self, given: &str) -> bool {
        vigil_crypto::sha256(given.trim().as_bytes()) == self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_blank_and_short_tokens_are_refused_and_long_ones_match_only_themselves() {
        assert!(matches!(ApiToken::new("", "t"), Err(TokenError::Empty { .. })));
        assert!(matches!(ApiToken::new(" \n\t ", "t"), Err(TokenError::Empty { .. })));
        assert!(matches!(ApiToken::new("x", "t"), Err(TokenError::Short { chars: 1, .. })));
        let short = "a".repeat(MIN_TOKEN_CHARS - 1);
        assert!(matches!(ApiToken::new(&short, "t"), Err(TokenError::Short { .. })));
        let good = "0123456789abcdef".repeat(4);
        let t = ApiToken::new(&format!("{good}\n"), "t").unwrap();
        assert!(t.matches(&good));
        assert!(!t.matches(""), "an empty header never matches");
        assert!(!t.matches(&good[1..]));
        let missing = ApiToken::load(Path::new("/nonexistent/api.token")).unwrap_err();
        assert!(matches!(missing, TokenError::Unreadable { .. }), "{missing}");
    }
}
