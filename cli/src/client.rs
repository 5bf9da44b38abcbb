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

/// Prints a JSON array as a table of `columns`, or as JSON.
pub(crate) fn print_table(v: &serde_json::Value, json: bool, columns: &[&str]) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    println!("{}", columns.join("\t"));
    for r in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match &r[*c] {
                serde_json::Value::String(s) if s.len() > 16 => s[..16].to_string(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".into(),
                other => other.to_string(),
            })
            .collect();
        println!("{}", cells.join("\t"));
    }
}
