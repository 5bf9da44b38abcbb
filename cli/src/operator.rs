//! `vigil operator`: the console's operators, managed through the running
//! node's API (token) or, when the node is stopped, on its data directory
//! directly (the first admin is added this way). Passwords come from
//! `VIGIL_OPERATOR_PASSWORD` or a prompt, never from the command line.

use crate::args::OperatorCmd;
use crate::client::{self, Client, ClientError};
use anyhow::Context;
use std::path::Path;
use vigil_engine::operators::{OperatorView, Operators, Role};
use vigil_node::api;
use vigil_node::datadir::{self, Secret};

fn password(confirm: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("VIGIL_OPERATOR_PASSWORD") {
        return Ok(p);
    }
    let p = rpassword::prompt_password("Operator password: ")?;
    if confirm && rpassword::prompt_password("Repeat it: ")? != p {
        anyhow::bail!("the two passwords differ");
    }
    Ok(p)
}

/// Runs `change` on the stopped directory `dir`.
fn offline(
    dir: &Path,
    key_file: Option<&Path>,
    change: impl FnOnce(&mut Operators) -> Result<Vec<vigil_engine::Action>, vigil_engine::operators::OperatorError>,
) -> anyhow::Result<()> {
    let secret = Secret::obtain(key_file, false)?;
    let opened = datadir::open(dir, &secret)?;
    let store = vigil_node::store::Store::open(&vigil_node::store::db_path(dir), opened.key, opened.identity)?;
    vigil_node::offline::change_operators(&store, change)?;
    Ok(())
}

fn hashed(password: &str) -> anyhow::Result<String> {
    vigil_crypto::hash_password(password).map_err(anyhow::Error::msg)
}

pub(crate) fn run(cmd: OperatorCmd) -> anyhow::Result<()> {
    match cmd {
        OperatorCmd::Add { data, name, role, language, key_file } => {
            let r: Role = role.parse().map_err(anyhow::Error::msg)?;
            let pw = password(true)?;
            vigil_crypto::check_password(&pw)?;
            let body = api::OperatorBody { name: name.clone(), role, password: pw.clone(), language: language.clone() };
            match Client::new(&data.data).and_then(|c| c.post::<_, api::Created>("/v1/operators", &body)) {
                Ok(_) => {}
                Err(ClientError::Unreachable { .. }) => {
                    let phc = hashed(&pw)?;
                    offline(&data.data, key_file.as_deref(), |o| {
                        o.add(vigil_node::now_ms(), &name, r, phc, &language)
                    })?;
                }
                Err(e) => return Err(e.into()),
            }
            println!("Operator {name} added ({}); they sign in at the console.", r.as_str());
        }
        OperatorCmd::List { data, json } => {
            let list: Vec<OperatorView> = Client::new(&data.data)?.get("/v1/operators")?;
            let now = vigil_node::now_ms();
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|o| {
                    let state = if o.disabled {
                        "disabled"
                    } else if o.locked_until_ms > now {
                        "locked"
                    } else {
                        "active"
                    };
                    serde_json::json!({"name": o.name, "role": o.role.as_str(), "language": o.language, "state": state})
                })
                .collect();
            client::print_table(&rows, json, &["name", "role", "language", "state"])?;
        }
        OperatorCmd::Disable { data, name, key_file } => {
            let path = format!("/v1/operators/{name}/disable");
            match Client::new(&data.data).and_then(|c| c.post::<_, api::Created>(&path, &())) {
                Ok(_) => {}
                Err(ClientError::Unreachable { .. }) => offline(&data.data, key_file.as_deref(), |o| o.disable(&name))?,
                Err(e) => return Err(e.into()),
            }
            println!("Operator {name} disabled.");
        }
        OperatorCmd::Passwd { data, name, key_file } => {
            let pw = password(true)?;
            vigil_crypto::check_password(&pw)?;
            let path = format!("/v1/operators/{name}/password");
            let body = api::PasswordBody { password: pw.clone() };
            match Client::new(&data.data).and_then(|c| c.post::<_, api::Created>(&path, &body)) {
                Ok(_) => {}
                Err(ClientError::Unreachable { .. }) => {
                    let phc = hashed(&pw).context("hashing the password")?;
                    offline(&data.data, key_file.as_deref(), |o| o.set_password(vigil_node::now_ms(), &name, phc))?;
                }
                Err(e) => return Err(e.into()),
            }
            println!("Password of {name} set.");
        }
    }
    Ok(())
}
