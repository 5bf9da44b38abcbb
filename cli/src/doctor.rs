//! `vigil doctor`: what is damaged in a stopped node's data directory, and
//! what a restore of its newest backup would bring back. Opens the
//! database as a start does (damage stops it there), then opens every
//! stored value and verifies the audit chain; exits non-zero on damage.

use anyhow::Context;
use serde::Serialize;
use std::path::Path;
use vigil_node::backup::{self, BackupSummary};
use vigil_node::datadir::{self, Secret};
use vigil_node::store::{self, Store, StoreError, TableCheck};

#[derive(Debug, Serialize)]
struct Diagnosis {
    data: String,
    /// `ok`, or what is damaged.
    database: String,
    tables: Vec<TableCheck>,
    audit: String,
    newest_backup: Option<BackupSummary>,
    /// Why the newest backup could not be read, if it could not.
    backup_problem: Option<String>,
}

impl Diagnosis {
    fn healthy(&self) -> bool {
        self.database == "ok" && self.audit.starts_with("ok") && self.tables.iter().all(|t| t.unreadable == 0)
    }
}

pub(crate) fn run(dir: &Path, key_file: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let secret = Secret::obtain(key_file, false)?;
    let opened = datadir::open(dir, &secret).context("the data directory does not open")?;
    let mut d = Diagnosis {
        data: dir.display().to_string(),
        database: "ok".into(),
        tables: Vec::new(),
        audit: String::new(),
        newest_backup: None,
        backup_problem: None,
    };
    match Store::open(&store::db_path(dir), opened.key, opened.identity) {
        Ok(s) => {
            d.tables = s.check()?;
            d.audit = match s.audit_verify() {
                Ok(n) => format!("ok, {n} entries"),
                Err(e) => format!("does NOT verify: {e}"),
            };
        }
        Err(StoreError::Db(e)) if matches!(*e, redb::Error::DatabaseAlreadyOpen) => {
            anyhow::bail!("the node is running (its database is open); stop it first")
        }
        Err(e) => {
            d.database = e.to_string();
            d.audit = "not checked: the database does not open".into();
        }
    }
    if let Some(path) = store::newest_backup(dir) {
        match backup::inspect(&path, &secret) {
            Ok(s) => d.newest_backup = Some(s),
            Err(e) => d.backup_problem = Some(format!("{}: {e}", path.display())),
        }
    }
    print(&d, json)?;
    anyhow::ensure!(d.healthy(), "the data directory is damaged");
    Ok(())
}

fn print(d: &Diagnosis, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    println!("Data directory {}", d.data);
    println!("  database: {}", d.database);
    for t in &d.tables {
        let bad = if t.unreadable > 0 { format!(", {} DO NOT OPEN", t.unreadable) } else { String::new() };
        println!("  {:<12} {} values{bad}", t.table, t.intact);
    }
    println!("  audit chain: {}", d.audit);
    match (&d.newest_backup, &d.backup_problem) {
        (Some(b), _) => {
            let held: Vec<String> = b.tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
            println!(
                "  newest backup {} (made at {} ms): a restore brings back {}",
                b.file,
                b.created_at_ms,
                held.join(", ")
            );
        }
        (None, Some(p)) => println!("  newest backup unreadable: {p}"),
        (None, None) => println!("  no backup in {}", backup::backups_dir(Path::new(&d.data)).display()),
    }
    Ok(())
}
