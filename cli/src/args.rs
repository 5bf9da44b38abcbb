//! The `vigil` command line as clap parses it: every command, its
//! arguments and their help text.

use crate::{calibrate, policy, roster};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
        /// A file holding the federation's epoch secret (64 hex
        /// characters) for protected templates; sealed into the data
        /// directory (not a command-line value: process lists show those).
        #[arg(long)]
        epoch_secret_file: Option<PathBuf>,
    },
    /// Stewards: create, sign, verify and apply the federation roster.
    #[command(subcommand)]
    Roster(roster::RosterCmd),
    /// Stewards: the federation's biometric policy (extractors, thresholds).
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// Capture keys and liveness (PAD) attestations, as a capture SDK makes them.
    #[command(subcommand)]
    Pad(crate::pad::PadCmd),
    /// Calibrate an extractor on labelled vectors: a policy entry and a report.
    Calibrate(calibrate::CalibrateArgs),
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
        #[command(flatten)]
        template: TemplateArg,
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
        #[command(flatten)]
        template: TemplateArg,
        /// Why (audited at both ends).
        #[arg(long)]
        purpose: String,
        /// Legal basis (audited at both ends).
        #[arg(long)]
        legal_basis: String,
        /// The id of this node's alert (case) the search is for; kept in
        /// this node's audit only.
        #[arg(long)]
        case: Option<String>,
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
    /// The console's operators: add, list, disable, set a password (through
    /// the running node, or on a stopped data directory).
    #[command(subcommand)]
    Operator(OperatorCmd),
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
    /// Check a stopped node's data directory: the database, every stored
    /// value, the audit chain, and what the newest backup would bring back.
    Doctor {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
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
        /// Only records that no longer match (extractor retired or not in
        /// the policy): to be enrolled again.
        #[arg(long)]
        stale: bool,
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
pub(crate) enum OperatorCmd {
    /// Add an operator; the password comes from VIGIL_OPERATOR_PASSWORD or a prompt.
    Add {
        #[command(flatten)]
        data: DataArg,
        name: String,
        /// case_worker, approver, auditor or admin.
        #[arg(long)]
        role: String,
        /// The console's language for this operator: en or fr.
        #[arg(long, default_value = "en")]
        language: String,
        /// Key file, if the directory was made with one (stopped node only).
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// List operators (name, role, state; never a password hash).
    List {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        json: bool,
    },
    /// Disable an operator: no further login, its sessions end.
    Disable {
        #[command(flatten)]
        data: DataArg,
        name: String,
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Set an operator's password (from VIGIL_OPERATOR_PASSWORD or a prompt); ends a lock-out.
    Passwd {
        #[command(flatten)]
        data: DataArg,
        name: String,
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
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
        /// Confidence bands (1–3): with 2 or 3, also the row form answered
        /// once per band (thresholds 0.1 apart) beside the one-band answer.
        #[arg(long, default_value_t = 1)]
        bands: usize,
        /// Fused fingerprint probes instead (e.g. 1,2,10): 192 values per
        /// finger against GALLERY records with the plain scan, and the
        /// encrypted path beside it on --encrypted-gallery records (up to
        /// ten fingers: 1,920 dimensions).
        #[arg(long, value_delimiter = ',')]
        fingers: Vec<usize>,
        #[arg(long, default_value_t = 20_000)]
        encrypted_gallery: usize,
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
    /// Fingerprint accuracy on synthetic impressions (FNMR at fixed FMR,
    /// EER, DET; plain, protected, encrypted), and on real records in DIR.
    Accuracy {
        /// Finger counts summed, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,10")]
        fingers: Vec<usize>,
        #[arg(long, default_value_t = 200)]
        people: usize,
        /// Probes answered encrypted per finger count (0: none).
        #[arg(long, default_value_t = 10)]
        encrypted_probes: usize,
        /// Real records (SUBJECT_IMPRESSION.ist, .an2, ...) scored raw.
        #[arg(long)]
        records: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Audit chain verification at ENTRIES and 4x ENTRIES entries (linear?).
    Audit {
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
        #[arg(long)]
        json: bool,
    },
    /// Acknowledged enrolments per second at a real node, from 1 and 8
    /// clients, then with ALERTS standing encrypted alerts.
    Enrol {
        #[arg(long, default_value_t = 2_000)]
        records: usize,
        #[arg(long, default_value_t = 10)]
        alerts: usize,
        #[arg(long)]
        json: bool,
    },
    /// The operator console's pages at a real node with ALERTS own alerts
    /// and as many hits, beside a tenth of them: median, p99, page size.
    Console {
        #[arg(long, default_value_t = 10_000)]
        alerts: usize,
        /// Requests timed per page and size.
        #[arg(long, default_value_t = 20)]
        requests: usize,
        #[arg(long)]
        json: bool,
    },
    /// Storage engines side by side: acknowledged writes, commit latency,
    /// start time over RECORDS sealed records, disk size, damaged files.
    Store {
        /// Acknowledged writes timed one by one (then as many in batches of 8).
        #[arg(long, default_value_t = 2_000)]
        writes: usize,
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
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

/// The biometric a command is about, and its liveness attestation.
#[derive(Debug, clap::Args)]
pub(crate) struct TemplateArg {
    /// A Vigil JSON template file, an ISO/IEC 19794-2:2005 or ANSI
    /// INCITS 378-2004 finger minutiae record, or an ANSI/NIST-ITL
    /// transaction (told apart by content).
    #[arg(long)]
    pub(crate) template: PathBuf,
    /// The policy's fingerprint extractor for a record, where several read minutiae.
    #[arg(long)]
    pub(crate) extractor: Option<String>,
    /// The capture SDK's signed liveness (PAD) result for it, a JSON file
    /// (`vigil pad sign` writes one); a template file may carry it as `pad`.
    #[arg(long)]
    pub(crate) pad: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AlertCmd {
    /// Publish a signed alert for the person in a template file.
    Publish {
        #[command(flatten)]
        data: DataArg,
        #[command(flatten)]
        template: TemplateArg,
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
    /// List alerts known to this node; for its own, how many members
    /// answered, matched, refused, hold it, or are not heard from yet.
    List {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        json: bool,
    },
    /// Where each member stands with one of this node's alerts: pending,
    /// delivered, answered (no match), hit, or refused with its reason.
    Members {
        #[command(flatten)]
        data: DataArg,
        /// The alert id (hex).
        id: String,
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
