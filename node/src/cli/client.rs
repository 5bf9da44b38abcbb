//! A small blocking client for the local API (bearer token from the data
//! directory), and plain-text tables for its answers.

use crate::api::ApiError;
use crate::datadir;
use anyhow::{anyhow, Context};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

pub(super) struct Client {
    base: String,
    token: String,
}

impl Client {
    pub(super) fn new(dir: &Path) -> anyhow::Result<Self> {
        let (base, token) = datadir::api_access(dir)?;
        Ok(Self { base, token })
    }

    fn finish<T: DeserializeOwned>(&self, r: Result<ureq::Response, ureq::Error>) -> anyhow::Result<T> {
        match r {
            Ok(resp) => resp.into_json().context("the node sent an unreadable answer"),
            Err(ureq::Error::Status(code, resp)) => {
                let msg = resp.into_json::<ApiError>().map(|e| e.error).unwrap_or_else(|_| "no details".into());
                Err(anyhow!("the node refused ({code}): {msg}"))
            }
            Err(e) => Err(anyhow!("cannot reach the node at {} ({e}); is `vigil serve` running?", self.base)),
        }
    }

    pub(super) fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let r =
            ureq::get(&format!("{}{path}", self.base)).set("Authorization", &format!("Bearer {}", self.token)).call();
        self.finish(r)
    }

    pub(super) fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let r = ureq::post(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .send_json(serde_json::to_value(body)?);
        self.finish(r)
    }
}

/// Prints a JSON array as a table of `columns`, or as JSON.
pub(super) fn print_table(v: &serde_json::Value, json: bool, columns: &[&str]) {
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
