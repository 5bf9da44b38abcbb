//! A small blocking client for the local API (bearer token from the data
//! directory), and plain-text tables for its answers.

use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;
use vigil_node::api::ApiError;
use vigil_node::datadir::{self, DataDirError};

/// Why a call to the node's API failed; callers decide on the kind (a
/// stopped node is `Unreachable`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    #[error(transparent)]
    Access(#[from] DataDirError),
    #[error("cannot reach the node at {base} ({source}); is `vigil serve` running?")]
    Unreachable {
        base: String,
        #[source]
        source: Box<ureq::Transport>,
    },
    #[error("the node refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the node sent an unreadable answer: {0}")]
    Unreadable(#[source] std::io::Error),
    #[error("cannot encode the request: {0}")]
    Encode(#[from] serde_json::Error),
}

pub(crate) struct Client {
    base: String,
    token: String,
}

impl Client {
    pub(crate) fn new(dir: &Path) -> Result<Self, ClientError> {
        let (base, token) = datadir::api_access(dir)?;
        Ok(Self { base, token })
    }

    fn finish<T: DeserializeOwned>(&self, r: Result<ureq::Response, ureq::Error>) -> Result<T, ClientError> {
        match r {
            Ok(resp) => resp.into_json().map_err(ClientError::Unreadable),
            Err(ureq::Error::Status(status, resp)) => {
                let message = resp.into_json::<ApiError>().map(|e| e.error).unwrap_or_else(|_| "no details".into());
                Err(ClientError::Refused { status, message })
            }
            Err(ureq::Error::Transport(t)) => {
                Err(ClientError::Unreachable { base: self.base.clone(), source: Box::new(t) })
            }
        }
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r =
            ureq::get(&format!("{}{path}", self.base)).set("Authorization", &format!("Bearer {}", self.token)).call();
        self.finish(r)
    }

    pub(crate) fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let r = ureq::post(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .send_json(serde_json::to_value(body)?);
        self.finish(r)
    }
}

/// Peer- and operator-supplied text made safe for a terminal: control
/// characters (ANSI escapes among them) replaced, so a case reference cannot
/// recolour or rewrite the operator's screen.
pub(crate) fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

/// A table cell: at most `width` characters (cut on a character boundary,
/// never inside one), printable.
fn cell(s: &str, width: usize) -> String {
    printable(&s.chars().take(width).collect::<String>())
}

/// Prints `rows` as a table of `columns` (their JSON field names), or as JSON.
pub(crate) fn print_table<T: Serialize>(rows: &[T], json: bool, columns: &[&str]) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("(none)");
        return Ok(());
    }
    println!("{}", columns.join("\t"));
    for r in rows {
        println!("{}", row(&serde_json::to_value(r)?, columns).join("\t"));
    }
    Ok(())
}

/// A table row: text cut to 16 characters, except in the last column,
/// which ends the line (free text: a reason, a contact) and is kept whole.
fn row(v: &serde_json::Value, columns: &[&str]) -> Vec<String> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| match &v[*c] {
            serde_json::Value::String(s) if i + 1 == columns.len() => printable(s),
            serde_json::Value::String(s) => cell(s, 16),
            serde_json::Value::Null => "-".into(),
            other => printable(&other.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cut_on_characters_and_escape_controls() {
        // A multibyte case reference longer than a cell (byte slicing panicked).
        let v = serde_json::json!({ "case_ref": "Ωμέγα-ΑΒΓΔΕΖΗΘΙΚΛ-2026", "id": 7 });
        assert_eq!(row(&v, &["case_ref", "id", "missing"]), ["Ωμέγα-ΑΒΓΔΕΖΗΘΙΚ", "7", "-"]);
        // ANSI escapes from a peer cannot reach the terminal.
        let evil = "\u{1b}[31mRED\u{1b}[0m\r\n";
        assert!(!printable(evil).chars().any(|c| c.is_control()));
        assert_eq!(printable("plain text"), "plain text");
    }
}
