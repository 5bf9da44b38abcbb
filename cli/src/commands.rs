//! What each `vigil` command does. `init`, `roster`, `demo`, `bench` and
//! `audit verify --export` work on files; `serve` runs the daemon; the
//! other commands talk to a running daemon over its local HTTP API (like
//! docker/dockerd) and print its typed answers.

use crate::args::*;
use crate::client::{self, Client, ClientError};
use crate::{demo, roster};
use anyhow::{bail, Context};
use std::path::Path;
use vigil_config::NodeConfig;
use vigil_engine::model::{DisclosureRole, DisclosureStatus, StoredDisclosure};
use vigil_engine::{IdentifyReport, OutcomeStatus};
use vigil_matcher::TemplateFile;
use vigil_node::api::{self, AlertRequest, EnrolRequest};
use vigil_node::datadir::{self, Secret};
use vigil_node::store::AuditRecord;
use vigil_node::views::{AlertView, MemberStatus, RecordView};
use vigil_node::Status;

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { org, kind, data, key_file, listen, api, stewards, threshold, epoch_secret_file } => {
            let epoch_secret = match epoch_secret_file {
                Some(p) => Some(
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read the epoch secret file {}", p.display()))?
                        .trim()
                        .to_string(),
                ),
                None => None,
            };
            let mut cfg = NodeConfig::new(&org, kind.into());
            cfg.network.listen = vec![listen];
            cfg.api.listen = api;
            cfg.federation.stewards = stewards;
            cfg.federation.threshold = threshold;
            cfg.federation.epoch_secret = epoch_secret;
            cfg.federation.roster = Some("roster.json".into());
            init(&data.data, &cfg, key_file.as_deref())
        }
        Command::Roster(cmd) => roster::run(cmd).await,
        Command::Policy(cmd) => crate::policy::run(cmd).await,
        Command::Pad(cmd) => crate::pad::run(cmd),
        Command::Calibrate(a) => crate::calibrate::run(a),
        Command::Serve { data, key_file } => serve(&data.data, key_file.as_deref()).await,
        Command::Enrol { data, template, category, case_ref, consent, retain_until } => {
            let template = read_template(template)?;
            api::parse_date(&retain_until).map_err(anyhow::Error::msg)?;
            let req =
                EnrolRequest { template, category: category.into(), case_ref, consent, retain_until, regime: None };
            let created: api::Created = Client::new(&data.data)?.post("/v1/records", &req)?;
            println!("Enrolled record {} (sealed at rest; matched against every active alert).", created.id);
            Ok(())
        }
        Command::Alert(cmd) => alert(cmd),
        Command::Identify { data, template, purpose, legal_basis, case, json } => {
            let req = api::IdentifyBody { template: read_template(template)?, purpose, legal_basis, case };
            let report: IdentifyReport = Client::new(&data.data)?.post("/v1/identify", &req)?;
            print_report(&report, json)
        }
        Command::Disclose(cmd) => disclose(cmd),
        Command::Operator(cmd) => crate::operator::run(cmd),
        Command::RotateKey { data } => {
            let created: api::Created = Client::new(&data.data)?.post("/v1/keys/rotate", &())?;
            println!("New GLWE key {}; answers to queries already sent still decrypt with the old one.", created.id);
            Ok(())
        }
        Command::Hits { data, json } => {
            let hits: Vec<vigil_node::views::HitView> = Client::new(&data.data)?.get("/v1/hits")?;
            client::print_table(&hits, json, &["role", "source", "peer", "band", "handle", "delivered", "liveness"])
        }
        Command::Backup { data, out, key_file } => backup(&data.data, &out, key_file.as_deref()),
        Command::Doctor { data, key_file, json } => crate::doctor::run(&data.data, key_file.as_deref(), json),
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
        Command::Records { data, json, stale } => {
            let mut records: Vec<RecordView> = Client::new(&data.data)?.get("/v1/records")?;
            if stale {
                records.retain(|r| r.stale.is_some());
                return client::print_table(&records, json, &["id", "case_ref", "extractor", "stale"]);
            }
            let columns = ["id", "category", "case_ref", "extractor", "retain_until_ms", "liveness"];
            client::print_table(&records, json, &columns)
        }
        Command::Erase { data, record, reason } => {
            let body = api::EraseBody { reason };
            let _: api::Created = Client::new(&data.data)?.post(&format!("/v1/records/{record}/erase"), &body)?;
            println!("Erased record {record}; its sealed bytes are gone from the data directory.");
            Ok(())
        }
        Command::Status { data } => {
            let status: Status = Client::new(&data.data)?.get("/v1/status")?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
        Command::Audit(cmd) => audit(cmd),
        Command::Bench(cmd) => bench(cmd),
        #[cfg(feature = "drill")]
        Command::Drill(args) => vigil_simnet::run_cli(args).await,
        Command::Demo { json, seed } => run_demo(json, seed).await,
    }
}

fn init(dir: &Path, cfg: &NodeConfig, key_file: Option<&Path>) -> anyhow::Result<()> {
    cfg.validate()?;
    let secret = Secret::obtain(key_file, true)?;
    let info = datadir::init(dir, cfg, &secret)?;
    println!("Initialised {} ({:?}) in {}", info.name, info.kind, dir.display());
    println!("  org id (public key): {}", info.org);
    println!("  peer id:             {}", info.peer_id);
    println!("  public facts for your stewards: {}", dir.join("org.json").display());
    Ok(())
}

fn alert(cmd: AlertCmd) -> anyhow::Result<()> {
    match cmd {
        AlertCmd::Publish { data, template, case_ref, expires, category } => {
            let template = read_template(template)?;
            api::parse_duration(&expires).map_err(anyhow::Error::msg)?;
            let req = AlertRequest { template, category: category.into(), case_ref, expires };
            let created: api::Created = Client::new(&data.data)?.post("/v1/alerts", &req)?;
            println!("Published alert {}", created.id);
        }
        AlertCmd::Withdraw { data, id } => {
            let _: api::Created = Client::new(&data.data)?.post(&format!("/v1/alerts/{id}/withdraw"), &())?;
            println!("Withdrew alert {id}");
        }
        AlertCmd::List { data, json } => {
            let alerts: Vec<AlertView> = Client::new(&data.data)?.get("/v1/alerts")?;
            if json {
                return client::print_table(&alerts, true, &[]);
            }
            let rows = alerts
                .iter()
                .map(|a| {
                    let mut v = serde_json::to_value(a)?;
                    // hit/answered/refused/delivered/pending, in that order.
                    v["members"] = a.members.as_ref().map_or(serde_json::Value::Null, |m| {
                        format!("{}/{}/{}/{}/{}", m.hit, m.answered, m.refused, m.delivered, m.pending).into()
                    });
                    Ok(v)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let columns = ["id", "issuer", "category", "status", "expired", "own", "case_ref", "members"];
            client::print_table(&rows, false, &columns)?;
            if alerts.iter().any(|a| a.members.is_some()) {
                println!("members: hit/answered/refused/delivered/pending (vigil alert members ID)");
            }
        }
        AlertCmd::Members { data, id, json } => {
            let members: Vec<MemberStatus> = Client::new(&data.data)?.get(&format!("/v1/alerts/{id}/members"))?;
            client::print_table(&members, json, &["name", "member", "state", "pages", "hits", "reason"])?;
        }
    }
    Ok(())
}

/// Each member's outcome of an identification query.
fn print_report(report: &IdentifyReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("Query {}", report.query);
    for p in &report.peers {
        match p.status {
            OutcomeStatus::Answered if !p.hits.is_empty() => {
                let hits: Vec<String> = p.hits.iter().map(|h| h.to_hex()).collect();
                println!("  {}  HIT ({}): {}", p.peer, hits.len(), hits.join(" "))
            }
            OutcomeStatus::Answered => println!("  {}  no match ({} records)", p.peer, p.positions),
            other => println!(
                "  {}  {}: {}",
                p.peer,
                format!("{other:?}").to_lowercase(),
                client::printable(p.reason.as_deref().unwrap_or(""))
            ),
        }
    }
    Ok(())
}

/// Through the running node (it writes into its backups directory, then
/// the file moves to `out`), or straight from the directory when the node
/// is stopped. Never over an existing file.
fn backup(dir: &Path, out: &Path, key_file: Option<&Path>) -> anyhow::Result<()> {
    let out = std::path::absolute(out).with_context(|| format!("bad path {}", out.display()))?;
    if out.exists() {
        bail!("{} exists already; a backup never overwrites a file", out.display());
    }
    let name = format!("vigil-{}.vgbak", vigil_node::now_ms());
    let via_node =
        Client::new(dir).and_then(|c| c.post::<_, api::BackupWritten>("/v1/backup", &api::BackupBody { name }));
    let bytes = match via_node {
        Ok(written) => {
            let from = Path::new(&written.path);
            // A link fails rather than replace a file; a copy where the two
            // directories are on different filesystems.
            if std::fs::hard_link(from, &out).is_err() {
                let mut dst = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .with_context(|| format!("cannot create {}", out.display()))?;
                std::io::copy(&mut std::fs::File::open(from)?, &mut dst)?;
                dst.sync_all()?;
            }
            std::fs::remove_file(from).with_context(|| format!("cannot remove {}", from.display()))?;
            written.bytes
        }
        Err(ClientError::Unreachable { .. }) => {
            let secret = Secret::obtain(key_file, false)?;
            let opened = datadir::open(dir, &secret)?;
            let store = vigil_node::store::Store::open(&vigil_node::store::db_path(dir), opened.key, opened.identity)?;
            vigil_node::backup::write(&store, &out)?
        }
        Err(e) => return Err(e.into()),
    };
    println!("Wrote a sealed backup of {} to {} ({bytes} bytes).", dir.display(), out.display());
    Ok(())
}

fn audit(cmd: AuditCmd) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Verify { export: Some(path), org: Some(org), .. } => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let records: Vec<AuditRecord> = serde_json::from_str(&text).context("export is not an audit chain")?;
            let org = vigil_protocol::OrgId::from_hex(&org).map_err(anyhow::Error::msg)?;
            vigil_node::store::verify_chain(&records, &org)?;
            println!("Audit chain OK: {} entries signed by {org}", records.len());
        }
        AuditCmd::Verify { data, .. } => {
            let r: api::VerifyReport = Client::new(&data.data)?.get("/v1/audit/verify")?;
            if !r.ok {
                bail!("audit chain does NOT verify: {}", r.error.unwrap_or_default());
            }
            println!("Audit chain OK: {} entries", r.entries);
        }
        AuditCmd::Export { data, out } => {
            let records: Vec<AuditRecord> = Client::new(&data.data)?.get("/v1/audit/export")?;
            std::fs::write(&out, serde_json::to_string_pretty(&records)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("Exported {} audit entries to {}", records.len(), out.display());
        }
    }
    Ok(())
}

fn bench(cmd: BenchCmd) -> anyhow::Result<()> {
    let (figures, json) = match cmd {
        BenchCmd::Match { fingers, gallery, encrypted_gallery, threads, runs, threshold, json, .. }
            if !fingers.is_empty() =>
        {
            let figures = vigil_bench::fingers::run(&fingers, gallery, encrypted_gallery, threads, runs, threshold)?;
            (serde_json::to_value(figures)?, json)
        }
        BenchCmd::Match { dim, gallery, threads, runs, threshold, bands, json, .. } => {
            (serde_json::to_value(vigil_bench::matching::run(dim, gallery, threads, runs, threshold, bands)?)?, json)
        }
        BenchCmd::Catchup { orgs, alerts, form, json } => {
            (serde_json::to_value(vigil_bench::catchup::run(orgs, alerts, form)?)?, json)
        }
        BenchCmd::Accuracy { fingers, people, encrypted_probes, records, json } => (
            serde_json::to_value(vigil_bench::accuracy::run(&fingers, people, encrypted_probes, records.as_deref())?)?,
            json,
        ),
        BenchCmd::Audit { entries, json } => (serde_json::to_value(vigil_bench::audit::run(entries)?)?, json),
        BenchCmd::Enrol { records, alerts, json } => {
            let run = vigil_bench::enrol::run(records, alerts);
            let figures = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(run))?;
            (serde_json::to_value(figures)?, json)
        }
        BenchCmd::Console { alerts, requests, json } => {
            let run = vigil_bench::console::run(alerts, requests);
            let figures = tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(run))?;
            (serde_json::to_value(figures)?, json)
        }
        BenchCmd::Store { writes, records, json } => {
            (serde_json::to_value(vigil_bench::store::run(writes, records)?)?, json)
        }
    };
    if json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    }
    Ok(())
}

async fn run_demo(json: bool, seed: u64) -> anyhow::Result<()> {
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

fn disclose(cmd: DiscloseCmd) -> anyhow::Result<()> {
    let columns = ["id", "role", "status", "peer", "hit", "match", "reason", "contact"];
    match cmd {
        DiscloseCmd::Request { data, hit, reason } => {
            let body = api::DisclosureBody { hit, reason };
            let created: api::Created = Client::new(&data.data)?.post("/v1/disclosures", &body)?;
            println!("Asked for disclosure {}; the holder decides.", created.id);
        }
        DiscloseCmd::Pending { data, json } => {
            let all: Vec<StoredDisclosure> = Client::new(&data.data)?.get("/v1/disclosures")?;
            let pending: Vec<&StoredDisclosure> =
                all.iter().filter(|d| d.status == DisclosureStatus::Pending).collect();
            client::print_table(&disclosure_rows(&pending)?, json, &columns)?;
        }
        DiscloseCmd::List { data, json } => {
            let all: Vec<StoredDisclosure> = Client::new(&data.data)?.get("/v1/disclosures")?;
            client::print_table(&disclosure_rows(&all.iter().collect::<Vec<_>>())?, json, &columns)?;
        }
        DiscloseCmd::Approve { data, id, contact } => {
            let _: api::Created = Client::new(&data.data)?
                .post(&format!("/v1/disclosures/{id}/approve"), &api::ApproveBody { contact })?;
            println!("Approved disclosure {id}; the contact is on its way to the requester.");
        }
        DiscloseCmd::Refuse { data, id } => {
            let _: api::Created = Client::new(&data.data)?.post(&format!("/v1/disclosures/{id}/refuse"), &())?;
            println!("Refused disclosure {id}.");
        }
    }
    Ok(())
}

/// Disclosures with a `match` column: at the holder, whether it saw the
/// hit itself or only the requester's word (an encrypted answer it cannot
/// decrypt), so the person deciding knows what the request rests on.
fn disclosure_rows(all: &[&StoredDisclosure]) -> anyhow::Result<Vec<serde_json::Value>> {
    all.iter()
        .map(|d| {
            let mut v = serde_json::to_value(d)?;
            let seen = match (d.role, d.hit_seen_here()) {
                (DisclosureRole::Requester, _) => serde_json::Value::Null,
                (DisclosureRole::Holder, true) => "seen here".into(),
                (DisclosureRole::Holder, false) => "unverifiable".into(),
            };
            v["match"] = seen;
            Ok(v)
        })
        .collect()
}

/// Says at start how many records no longer match and how to bring them
/// back: records of extractors the policy does not list as active (for a
/// data directory from before policies, those of the compiled-in face and
/// finger extractors that are gone) are kept, never matched.
async fn warn_stale(node: &vigil_node::NodeHandle) -> anyhow::Result<()> {
    let version = node.biometric().await?.version;
    if let Some(note) = vigil_node::views::stale_note(&node.records().await?, version) {
        println!("{note}");
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
    let console = vigil_node::console::Settings::of(&opened.config);
    let a = &opened.config.api;
    let limits =
        api::Limits { max_connections: a.max_connections, idle: a.idle_timeout, lifetime: a.connection_lifetime };
    let node = vigil_node::runtime::start(vigil_node::NodeOptions::from(&opened)).await?;
    if let Some(p) = roster_path.filter(|p| p.exists()) {
        let roster = roster::load(&p)?;
        match node.apply_roster(roster).await {
            Ok(v) => tracing::info!("applied roster v{v} from {}", p.display()),
            // The roster the node already holds (every restart): nothing to say.
            Err(vigil_node::NodeError::Engine(vigil_engine::EngineError::StaleRoster { found, current }))
                if found == current => {}
            Err(e) => tracing::warn!("roster file {} not applied: {e}", p.display()),
        }
    }
    warn_stale(&node).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = api::serve(&api_listen, api::router(node.clone(), token, max_body, console), limits, async {
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
    tokio::select! {
        r = stop_signal() => r?,
        // The node stopped itself: a durable write failed (its log says why).
        _ = node.stopped() => {
            let _ = stop_tx.send(());
            bail!("the node stopped: a durable write failed (disk full?); nothing unwritten was acknowledged, restart it once the cause is fixed");
        }
    }
    println!("Shutting down ...");
    let _ = stop_tx.send(());
    node.shutdown().await;
    Ok(())
}

/// Waits for Ctrl-C, or SIGTERM (what service managers send to stop a
/// service): both stop the node the same way, with its final flush.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot wait for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
    Ok(())
}

/// A Unix-millisecond time as an RFC 3339 date and time (UTC).
pub(crate) fn date_of(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// Reads and parses a template file or standard fingerprint record (told
/// apart by content), so a malformed one fails before anything is sent; a
/// record travels as its decoded minutiae (images stay here), or whole
/// when a PAD attestation (over its bytes) comes with it. The node checks
/// either against its biometric policy.
fn read_template(arg: TemplateArg) -> anyhow::Result<api::TemplateInput> {
    let TemplateArg { template: path, extractor, pad } = arg;
    let path = path.as_path();
    let pad = pad.map(|p| read_pad(&p)).transpose()?;
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read template file {}", path.display()))?;
    let limit = vigil_records::MAX_AN2K_BYTES.max(vigil_matcher::MAX_TEMPLATE_FILE_BYTES) as u64;
    if meta.len() > limit {
        bail!("template file {} is {} bytes, the limit is {limit}", path.display(), meta.len());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read template file {}", path.display()))?;
    let json = |file: TemplateFile| api::TemplateInput {
        extractor: extractor.clone(),
        pad: pad.clone(),
        ..api::TemplateInput::file(file)
    };
    match vigil_records::sniff(&bytes) {
        vigil_records::Kind::Json => {
            let file = TemplateFile::parse(&bytes).with_context(|| format!("template file {}", path.display()))?;
            Ok(json(file))
        }
        vigil_records::Kind::Unknown => match TemplateFile::parse(&bytes) {
            Err(e) => bail!(
                "template file {}: {e}; nor is it an ISO/IEC 19794-2, ANSI INCITS 378 or ANSI/NIST-ITL record",
                path.display()
            ),
            Ok(file) => Ok(json(file)),
        },
        vigil_records::Kind::Record(_) => {
            let record = vigil_records::decode(&bytes).with_context(|| format!("template file {}", path.display()))?;
            if pad.is_some() {
                use base64::Engine;
                let record = Some(base64::engine::general_purpose::STANDARD.encode(&bytes));
                return Ok(api::TemplateInput { record, extractor, pad, ..Default::default() });
            }
            Ok(api::TemplateInput { minutiae: Some(record), extractor, ..Default::default() })
        }
    }
}

/// A PAD attestation file (JSON, at most 64 KiB).
fn read_pad(path: &Path) -> anyhow::Result<vigil_protocol::pad::PadAttestation> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read PAD attestation {}", path.display()))?;
    if meta.len() > 64 * 1024 {
        bail!("PAD attestation {} is {} bytes, the limit is 65536", path.display(), meta.len());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read PAD attestation {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a PAD attestation", path.display()))
}
