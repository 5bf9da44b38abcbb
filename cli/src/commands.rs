//! The `vigil` command line. `init`, `roster`, `demo` and `audit verify
//! --export` work on files; `serve` runs the daemon; the other subcommands
//! talk to a running daemon over its local HTTP API (like docker/dockerd).

use crate::{client, demo, roster};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use vigil_config::NodeConfig;
use vigil_matcher::TemplateFile;
use vigil_node::api::{self, AlertRequest, EnrolRequest};
use vigil_node::datadir::{self, Secret};
use vigil_protocol::{Category, OrgKind};

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about = "Vigil: a federated alert and identification network for missing persons")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DataArg {
    /// The node's data directory.
    #[arg(long, env = "VIGIL_DATA", default_value = "./vigil-data")]
    pub data: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create an organisation's identity, config and sealed data directory.
    Init {
        #[arg(long)]
        org: String,
        #[arg(long, value_enum)]
        kind: KindArg,
        #[command(flatten)]
        data: DataArg,
        /// Unlock with a key file (64 hex characters) instead of a passphrase.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// libp2p listen address.
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/7600")]
        listen: String,
        /// Local API address (loopback).
        #[arg(long, default_value = "127.0.0.1:7700")]
        api: String,
        /// Trusted steward public key (hex); repeat for each steward.
        #[arg(long = "steward")]
        stewards: Vec<String>,
        /// Steward signatures a roster needs.
        #[arg(long, default_value_t = 1)]
        threshold: usize,
        /// Federation epoch secret (64 hex characters) for protected templates.
        #[arg(long)]
        epoch_secret: Option<String>,
    },
    /// Stewards: create, sign, verify and apply the federation roster.
    #[command(subcommand)]
    Roster(roster::RosterCmd),
    /// Run the node daemon until Ctrl-C.
    Serve {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Enrol a record (template file + case metadata) at the running node.
    Enrol {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        template: PathBuf,
        #[arg(long, value_enum)]
        category: CategoryArg,
        /// Case reference (stays at this node).
        #[arg(long = "case")]
        case_ref: String,
        /// Consent or legal basis for holding the record.
        #[arg(long)]
        consent: String,
        /// Retention date, YYYY-MM-DD.
        #[arg(long)]
        retain_until: String,
    },
    /// Ask every reachable member, with an encrypted probe, whether it knows a person.
    Identify {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        template: PathBuf,
        /// Why (audited at both ends).
        #[arg(long)]
        purpose: String,
        /// Legal basis (audited at both ends).
        #[arg(long)]
        legal_basis: String,
        #[arg(long)]
        json: bool,
    },
    /// Publish, withdraw and list alerts.
    #[command(subcommand)]
    Alert(AlertCmd),
    /// Replace this node's GLWE key for encrypted queries (sealed at rest).
    RotateKey {
        #[command(flatten)]
        data: DataArg,
    },
    /// After a hit: ask for, decide on, and list disclosures of the case contact.
    #[command(subcommand)]
    Disclose(DiscloseCmd),
    /// List hits at the running node.
    Hits {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        json: bool,
    },
    /// Write a sealed backup of the data directory: through the running
    /// node, or directly from the directory when the node is stopped.
    Backup {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        out: PathBuf,
        /// Key file, if the directory was made with one (stopped node only).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Restore a backup into a new data directory (same passphrase or key file).
    Restore {
        #[arg(long)]
        from: PathBuf,
        /// The new data directory (must not hold a node).
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// List enrolled records (ids and case facts; never templates).
    Records {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        json: bool,
    },
    /// Erase a record (right to erasure): gone from the node and its files; audited.
    Erase {
        #[command(flatten)]
        data: DataArg,
        /// The record id (`vigil records`).
        record: u64,
        /// Why (audited), e.g. "erasure request of 2026-11-26".
        #[arg(long)]
        reason: String,
    },
    /// Show the running node's status.
    Status {
        #[command(flatten)]
        data: DataArg,
    },
    /// Verify or export the audit chain.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Benchmarks (machine-readable JSON with --json).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Run a small federation in one process and find a missing person.
    Demo {
        /// Print only the summary, as one JSON object.
        #[arg(long)]
        json: bool,
        /// Seed of the synthetic population.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Rehearse the federation: play a scenario file with many real nodes in
    /// one process and report delivery, hits, traffic and invariants
    /// (builds with the `drill` feature only).
    #[cfg(feature = "drill")]
    Drill(vigil_simnet::DrillArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum DiscloseCmd {
    /// Ask the holder of a hit (its handle, from `vigil hits`) for the case contact.
    Request {
        #[command(flatten)]
        data: DataArg,
        hit: String,
        #[arg(long)]
        reason: String,
    },
    /// Requests waiting for a decision at this node.
    Pending {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        json: bool,
    },
    /// All disclosure requests, both directions, with their outcome.
    List {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request and send the contact.
    Approve {
        #[command(flatten)]
        data: DataArg,
        id: String,
        #[arg(long)]
        contact: String,
    },
    /// Refuse a pending request.
    Refuse {
        #[command(flatten)]
        data: DataArg,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// Plaintext scan vs encrypted matching on one random gallery.
    Match {
        #[arg(long, default_value_t = 128)]
        dim: usize,
        #[arg(long, default_value_t = 100_000)]
        gallery: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Encrypted runs (the plain scan runs three times as often).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        #[arg(long)]
        json: bool,
    },
    /// A member that missed ALERTS alerts from ORGS issuers catches up from another member.
    Catchup {
        #[arg(long, default_value_t = 20)]
        orgs: usize,
        #[arg(long, default_value_t = 10_000)]
        alerts: usize,
        /// The alerts' form: encrypted (32 KiB probes) or protected (64-byte templates).
        #[arg(long, default_value = "encrypted", value_parser = parse_form)]
        form: vigil_config::AlertForm,
        #[arg(long)]
        json: bool,
    },
}

fn parse_form(s: &str) -> Result<vigil_config::AlertForm, String> {
    match s {
        "encrypted" => Ok(vigil_config::AlertForm::Encrypted),
        "protected" => Ok(vigil_config::AlertForm::Protected),
        other => Err(format!("unknown alert form {other:?} (encrypted or protected)")),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum AlertCmd {
    /// Publish a signed alert for the person in a template file.
    Publish {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        template: PathBuf,
        #[arg(long = "case")]
        case_ref: String,
        /// Lifetime, e.g. 30d.
        #[arg(long, default_value = "30d")]
        expires: String,
        #[arg(long, value_enum, default_value = "missing")]
        category: CategoryArg,
    },
    /// Withdraw one of this node's alerts.
    Withdraw {
        #[command(flatten)]
        data: DataArg,
        id: String,
    },
    /// List alerts known to this node.
    List {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Verify the running node's chain, or an exported chain (--export with --org).
    Verify {
        #[command(flatten)]
        data: DataArg,
        /// An exported chain (JSON) to verify offline.
        #[arg(long, requires = "org")]
        export: Option<PathBuf>,
        /// The node's org id (hex public key) that signed the export.
        #[arg(long)]
        org: Option<String>,
    },
    /// Export the running node's chain as JSON.
    Export {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum KindArg {
    Ngo,
    Police,
    Border,
    Other,
}

impl From<KindArg> for OrgKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Ngo => OrgKind::Ngo,
            KindArg::Police => OrgKind::Police,
            KindArg::Border => OrgKind::Border,
            KindArg::Other => OrgKind::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CategoryArg {
    Missing,
    Found,
    Victim,
    Other,
}

impl From<CategoryArg> for Category {
    fn from(c: CategoryArg) -> Self {
        match c {
            CategoryArg::Missing => Category::Missing,
            CategoryArg::Found => Category::Found,
            CategoryArg::Victim => Category::Victim,
            CategoryArg::Other => Category::Other,
        }
    }
}

/// Reads and validates a template file, so bad input fails before anything is sent.
fn read_template(path: &Path) -> anyhow::Result<TemplateFile> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read template file {}", path.display()))?;
    if meta.len() > vigil_matcher::MAX_TEMPLATE_FILE_BYTES as u64 {
        bail!(
            "template file {} is {} bytes, the limit is {}",
            path.display(),
            meta.len(),
            vigil_matcher::MAX_TEMPLATE_FILE_BYTES
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read template file {}", path.display()))?;
    let file = TemplateFile::parse(&bytes).with_context(|| format!("template file {}", path.display()))?;
    file.to_template().with_context(|| format!("template file {}", path.display()))?;
    Ok(file)
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { org, kind, data, key_file, listen, api, stewards, threshold, epoch_secret } => {
            let mut cfg = NodeConfig::new(&org, kind.into());
            cfg.network.listen = vec![listen];
            cfg.api.listen = api;
            cfg.federation.stewards = stewards;
            cfg.federation.threshold = threshold;
            cfg.federation.epoch_secret = epoch_secret;
            cfg.federation.roster = Some("roster.json".into());
            cfg.validate()?;
            let secret = Secret::obtain(key_file.as_deref(), true)?;
            let info = datadir::init(&data.data, &cfg, &secret)?;
            println!("Initialised {} ({:?}) in {}", info.name, info.kind, data.data.display());
            println!("  org id (public key): {}", info.org);
            println!("  peer id:             {}", info.peer_id);
            println!("  public facts for your stewards: {}", data.data.join("org.json").display());
            Ok(())
        }
        Command::Roster(cmd) => roster::run(cmd).await,
        Command::Serve { data, key_file } => serve(&data.data, key_file.as_deref()).await,
        Command::Enrol { data, template, category, case_ref, consent, retain_until } => {
            let template = read_template(&template)?;
            api::parse_date(&retain_until).map_err(anyhow::Error::msg)?;
            let req =
                EnrolRequest { template, category: category.into(), case_ref, consent, retain_until, regime: None };
            let c = client::Client::new(&data.data)?;
            let created: api::Created = c.post("/v1/records", &req)?;
            println!("Enrolled record {} (sealed at rest; matched against every active alert).", created.id);
            Ok(())
        }
        Command::Alert(AlertCmd::Publish { data, template, case_ref, expires, category }) => {
            let template = read_template(&template)?;
            api::parse_duration(&expires).map_err(anyhow::Error::msg)?;
            let req = AlertRequest { template, category: category.into(), case_ref, expires };
            let created: api::Created = client::Client::new(&data.data)?.post("/v1/alerts", &req)?;
            println!("Published alert {}", created.id);
            Ok(())
        }
        Command::Identify { data, template, purpose, legal_basis, json } => {
            let template = read_template(&template)?;
            let req = api::IdentifyBody { template, purpose, legal_basis };
            let v: serde_json::Value = client::Client::new(&data.data)?.post("/v1/identify", &req)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("Query {}", v["query"].as_str().unwrap_or("?"));
            for p in v["peers"].as_array().cloned().unwrap_or_default() {
                let hits = p["hits"].as_array().map(|h| h.len()).unwrap_or(0);
                let status = p["status"].as_str().unwrap_or("?");
                match status {
                    "answered" if hits > 0 => {
                        println!("  {}  HIT ({hits}): {}", p["peer"].as_str().unwrap_or("?"), p["hits"])
                    }
                    "answered" => {
                        println!("  {}  no match ({} records)", p["peer"].as_str().unwrap_or("?"), p["positions"])
                    }
                    _ => println!(
                        "  {}  {status}: {}",
                        p["peer"].as_str().unwrap_or("?"),
                        p["reason"].as_str().unwrap_or("")
                    ),
                }
            }
            Ok(())
        }
        Command::Disclose(cmd) => disclose(cmd),
        Command::RotateKey { data } => {
            let created: api::Created = client::Client::new(&data.data)?.post("/v1/keys/rotate", &())?;
            println!("New GLWE key {}; answers to queries already sent still decrypt with the old one.", created.id);
            Ok(())
        }
        Command::Alert(AlertCmd::Withdraw { data, id }) => {
            let _: api::Created = client::Client::new(&data.data)?.post(&format!("/v1/alerts/{id}/withdraw"), &())?;
            println!("Withdrew alert {id}");
            Ok(())
        }
        Command::Alert(AlertCmd::List { data, json }) => {
            let v: serde_json::Value = client::Client::new(&data.data)?.get("/v1/alerts")?;
            client::print_table(&v, json, &["id", "issuer", "category", "status", "expired", "own", "case_ref"]);
            Ok(())
        }
        Command::Hits { data, json } => {
            let v: serde_json::Value = client::Client::new(&data.data)?.get("/v1/hits")?;
            client::print_table(&v, json, &["role", "source", "peer", "handle", "delivered"]);
            Ok(())
        }
        Command::Backup { data, out, key_file } => {
            let out = std::path::absolute(&out).with_context(|| format!("bad path {}", out.display()))?;
            let via_node = client::Client::new(&data.data)
                .and_then(|c| c.post::<_, serde_json::Value>("/v1/backup", &serde_json::json!({ "out": out })));
            let bytes = match via_node {
                Ok(v) => v["bytes"].as_u64().unwrap_or(0),
                Err(client::ClientError::Unreachable { .. }) => {
                    // The node is stopped: read the directory directly.
                    let secret = Secret::obtain(key_file.as_deref(), false)?;
                    let opened = vigil_node::datadir::open(&data.data, &secret)?;
                    let store = vigil_node::store::Store::open(&data.data.join("db"), opened.key, opened.identity)?;
                    store.backup(&out)?
                }
                Err(e) => return Err(e.into()),
            };
            println!("Wrote a sealed backup of {} to {} ({bytes} bytes).", data.data.display(), out.display());
            Ok(())
        }
        Command::Restore { from, data, key_file } => {
            let secret = Secret::obtain(key_file.as_deref(), false)?;
            let n = vigil_node::backup::restore(&from, &data, &secret)?;
            println!(
                "Restored {} into {} ({n} database entries); start it with `vigil serve --data {}`.",
                from.display(),
                data.display(),
                data.display()
            );
            Ok(())
        }
        Command::Records { data, json } => {
            let v: serde_json::Value = client::Client::new(&data.data)?.get("/v1/records")?;
            client::print_table(&v, json, &["id", "category", "case_ref", "extractor", "retain_until_ms"]);
            Ok(())
        }
        Command::Erase { data, record, reason } => {
            let body = serde_json::json!({ "reason": reason });
            let _: serde_json::Value =
                client::Client::new(&data.data)?.post(&format!("/v1/records/{record}/erase"), &body)?;
            println!("Erased record {record}; its sealed bytes are gone from the data directory.");
            Ok(())
        }
        Command::Status { data } => {
            let v: serde_json::Value = client::Client::new(&data.data)?.get("/v1/status")?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Command::Audit(AuditCmd::Verify { data, export, org }) => {
            if let (Some(path), Some(org)) = (export, org) {
                let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let records: Vec<vigil_node::store::AuditRecord> =
                    serde_json::from_str(&text).context("export is not an audit chain")?;
                let org = vigil_protocol::OrgId::from_hex(&org).map_err(anyhow::Error::msg)?;
                vigil_node::store::verify_chain(&records, &org)?;
                println!("Audit chain OK: {} entries signed by {org}", records.len());
                return Ok(());
            }
            let r: api::VerifyReport = client::Client::new(&data.data)?.get("/v1/audit/verify")?;
            if !r.ok {
                bail!("audit chain does NOT verify: {}", r.error.unwrap_or_default());
            }
            println!("Audit chain OK: {} entries", r.entries);
            Ok(())
        }
        Command::Audit(AuditCmd::Export { data, out }) => {
            let v: serde_json::Value = client::Client::new(&data.data)?.get("/v1/audit/export")?;
            std::fs::write(&out, serde_json::to_string_pretty(&v)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("Exported {} audit entries to {}", v.as_array().map(|a| a.len()).unwrap_or(0), out.display());
            Ok(())
        }
        Command::Bench(BenchCmd::Match { dim, gallery, threads, runs, threshold, json }) => {
            let r = vigil_bench::matching::run(dim, gallery, threads, runs, threshold)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            Ok(())
        }
        Command::Bench(BenchCmd::Catchup { orgs, alerts, form, json }) => {
            let r = vigil_bench::catchup::run(orgs, alerts, form)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            Ok(())
        }
        #[cfg(feature = "drill")]
        Command::Drill(args) => vigil_simnet::run_cli(args).await,
        Command::Demo { json, seed } => {
            let summary = demo::run(json, seed).await?;
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                println!();
                println!(
                    "Summary: {} nodes, {} records, {} alert, {}/{} expected hits at the issuer, {} false, {} encrypted identification match, alert delivered in {} ms, audit verified: {}, {} ms in all.",
                    summary.nodes,
                    summary.records,
                    summary.alerts,
                    summary.hits,
                    summary.hits_expected,
                    summary.false_hits,
                    summary.identify_hits,
                    summary.alert_delivery_ms,
                    summary.audit_chains_verified,
                    summary.elapsed_ms
                );
            }
            // The person is held by the border post and (after the second
            // enrolment) by the police unit itself: one encrypted match, at the border post.
            if summary.hits != summary.hits_expected
                || summary.false_hits != 0
                || !summary.audit_chains_verified
                || summary.identify_hits != 1
                || !summary.disclosed
            {
                bail!("the demo did not reach its expected outcome");
            }
            Ok(())
        }
    }
}

fn disclose(cmd: DiscloseCmd) -> anyhow::Result<()> {
    let columns = ["id", "role", "status", "peer", "hit", "reason", "contact"];
    match cmd {
        DiscloseCmd::Request { data, hit, reason } => {
            let body = api::DisclosureBody { hit, reason };
            let created: api::Created = client::Client::new(&data.data)?.post("/v1/disclosures", &body)?;
            println!("Asked for disclosure {}; the holder decides.", created.id);
        }
        DiscloseCmd::Pending { data, json } => {
            let v: serde_json::Value = client::Client::new(&data.data)?.get("/v1/disclosures")?;
            let pending: Vec<serde_json::Value> =
                v.as_array().cloned().unwrap_or_default().into_iter().filter(|d| d["status"] == "pending").collect();
            client::print_table(&serde_json::Value::Array(pending), json, &columns);
        }
        DiscloseCmd::List { data, json } => {
            let v: serde_json::Value = client::Client::new(&data.data)?.get("/v1/disclosures")?;
            client::print_table(&v, json, &columns);
        }
        DiscloseCmd::Approve { data, id, contact } => {
            let _: api::Created = client::Client::new(&data.data)?
                .post(&format!("/v1/disclosures/{id}/approve"), &api::ApproveBody { contact })?;
            println!("Approved disclosure {id}; the contact is on its way to the requester.");
        }
        DiscloseCmd::Refuse { data, id } => {
            let _: api::Created =
                client::Client::new(&data.data)?.post(&format!("/v1/disclosures/{id}/refuse"), &())?;
            println!("Refused disclosure {id}.");
        }
    }
    Ok(())
}

async fn serve(dir: &Path, key_file: Option<&Path>) -> anyhow::Result<()> {
    // A missing, empty, short or unreadable token stops here: the API is
    // never served without one.
    let token_path = dir.join("api.token");
    let token = api::ApiToken::load(&token_path)?;
    let secret = Secret::obtain(key_file, false)?;
    let opened = datadir::open(dir, &secret)?;
    let roster_path = opened.config.federation.roster.as_ref().map(|r| dir.join(r));
    let api_listen = opened.config.api.listen.clone();
    let max_body = opened.config.api.max_body_bytes;
    let node = vigil_node::runtime::start(opened.node_options()).await?;
    if let Some(p) = roster_path.filter(|p| p.exists()) {
        let roster = roster::load(&p)?;
        match node.apply_roster(roster).await {
            Ok(v) => tracing::info!("applied roster v{v} from {}", p.display()),
            Err(e) => tracing::warn!("roster file {} not applied: {e}", p.display()),
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = api::serve(&api_listen, api::router(node.clone(), token, max_body), async {
        let _ = stop_rx.await;
    })
    .await
    .with_context(|| format!("cannot bind the API on {api_listen}"))?;
    println!(
        "Vigil node {} serving. libp2p: {:?}; API: http://{addr} (token in {})",
        node.peer_id,
        node.listen,
        token_path.display()
    );
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    println!("Shutting down ...");
    let _ = stop_tx.send(());
    node.shutdown().await;
    Ok(())
}
