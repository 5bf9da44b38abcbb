//! `vigil policy`: the federation's biometric policy as a steward-signed
//! document: created from extractor entries (as `vigil calibrate` writes
//! them), edited, signed, verified, shown, and applied to a running node.

use crate::args::DataArg;
use crate::client::Client;
use anyhow::{bail, Context};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use vigil_crypto::{sign_policy, verify_policy, TrustAnchor};
use vigil_matcher::{Extractor, Policy, Status};
use vigil_protocol::{limits, OrgId, PolicyBody, PolicyFile, SignedPolicy};

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCmd {
    /// Start a policy from extractor entries (TOML `[[extractor]]` tables).
    New {
        #[arg(long)]
        federation: String,
        #[arg(long, default_value_t = 1)]
        version: u64,
        /// A TOML file of `[[extractor]]` entries; repeat for several.
        #[arg(long = "extractors", required = true)]
        extractors: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Add or replace extractors, bump the version; signatures are cleared.
    Set {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long = "extractors", required = true)]
        extractors: Vec<PathBuf>,
    },
    /// Retire an extractor (its records stop matching and are listed as
    /// stale), bump the version; signatures are cleared.
    Retire {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        id: String,
    },
    /// Sign the policy with a steward key.
    Sign {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify signatures against trusted stewards and a threshold.
    Verify {
        #[arg(long)]
        policy: PathBuf,
        #[arg(long = "steward", required = true)]
        stewards: Vec<String>,
        #[arg(long)]
        threshold: usize,
    },
    /// Show a policy file, or (without --policy) the running node's policy.
    Show {
        #[arg(long)]
        policy: Option<PathBuf>,
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        json: bool,
    },
    /// Send a policy to the running node (applied only if valid and newer).
    Apply {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        policy: PathBuf,
    },
}

/// Reads a policy file under the size limit.
pub(super) fn load(path: &Path) -> anyhow::Result<SignedPolicy> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read policy {}", path.display()))?;
    if meta.len() > limits::MAX_POLICY_FILE_BYTES as u64 {
        bail!("policy {} is larger than {} bytes", path.display(), limits::MAX_POLICY_FILE_BYTES);
    }
    PolicyFile::parse(&std::fs::read(path)?).with_context(|| format!("policy {}", path.display()))
}

fn save(path: &Path, p: &SignedPolicy) -> anyhow::Result<()> {
    std::fs::write(path, PolicyFile::to_json(p)).with_context(|| format!("cannot write {}", path.display()))
}

/// `[[extractor]]` tables, as `vigil calibrate --out` writes them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExtractorsFile {
    pub(super) extractor: Vec<Extractor>,
}

fn read_extractors(paths: &[PathBuf]) -> anyhow::Result<Vec<Extractor>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.len() > limits::MAX_POLICY_FILE_BYTES as u64 {
            bail!("{} is larger than {} bytes", p.display(), limits::MAX_POLICY_FILE_BYTES);
        }
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let f: ExtractorsFile =
            toml::from_str(&text).with_context(|| format!("{} is not a file of [[extractor]] entries", p.display()))?;
        for e in f.extractor {
            e.validate().with_context(|| format!("in {}", p.display()))?;
            out.push(e);
        }
    }
    Ok(out)
}

/// A new version of `p` with `change` applied, checked as a successor.
fn revise(path: &Path, change: impl FnOnce(&mut Policy) -> anyhow::Result<()>) -> anyhow::Result<SignedPolicy> {
    let old = load(path)?;
    let mut p = old.clone();
    change(&mut p.body.policy)?;
    p.body.policy.version += 1;
    p.body.issued_at_ms = vigil_node::now_ms();
    p.signatures.clear();
    old.body.policy.check_successor(&p.body.policy)?;
    save(path, &p)?;
    Ok(p)
}

fn print(p: &Policy, signed: Option<&SignedPolicy>) {
    match signed {
        Some(s) => println!(
            "Policy v{} of {:?}, issued {}, {} steward signature(s)",
            p.version,
            s.body.federation,
            crate::commands::date_of(s.body.issued_at_ms),
            s.signatures.len()
        ),
        None => println!("Built-in demo policy (v0): no signed policy applied"),
    }
    println!("id\tmodality\tdim\tstatus\tcentred\tthresholds (band cosine fmr)");
    for e in &p.extractors {
        let t: Vec<String> =
            e.thresholds.iter().map(|t| format!("{:?} {:.4} {:e}", t.band, t.cosine, t.fmr).to_lowercase()).collect();
        println!(
            "{}\t{:?}\t{}\t{:?}\t{}\t{}",
            e.id,
            e.modality,
            e.dim,
            e.status,
            if e.centre.is_some() { "yes" } else { "no" },
            t.join(", ")
        );
    }
}

pub(super) async fn run(cmd: PolicyCmd) -> anyhow::Result<()> {
    match cmd {
        PolicyCmd::New { federation, version, extractors, out } => {
            let policy = Policy { version, extractors: read_extractors(&extractors)? };
            let p = SignedPolicy {
                body: PolicyBody { federation, issued_at_ms: vigil_node::now_ms(), policy },
                signatures: vec![],
            };
            p.body.validate()?;
            if out.exists() {
                bail!("{} exists; edit it with `vigil policy set` or `retire`", out.display());
            }
            save(&out, &p)?;
            println!(
                "Created policy v{version} with {} extractor(s) at {}.",
                p.body.policy.extractors.len(),
                out.display()
            );
        }
        PolicyCmd::Set { policy, extractors } => {
            let new = read_extractors(&extractors)?;
            let p = revise(&policy, |p| {
                for e in new {
                    p.extractors.retain(|x| x.id != e.id);
                    p.extractors.push(e);
                }
                Ok(())
            })?;
            println!("Policy is now v{} (unsigned).", p.version());
        }
        PolicyCmd::Retire { policy, id } => {
            let p = revise(&policy, |p| {
                let Some(e) = p.extractors.iter_mut().find(|e| e.id == id) else {
                    bail!("extractor {id:?} is not in the policy");
                };
                e.status = Status::Retired;
                Ok(())
            })?;
            println!("Retired {id}; policy is now v{} (unsigned).", p.version());
        }
        PolicyCmd::Sign { policy, key } => {
            let mut p = load(&policy)?;
            let id = crate::roster::read_key(&key)?;
            sign_policy(&mut p, &id)?;
            save(&policy, &p)?;
            println!("Signed policy v{} as steward {}; {} signature(s).", p.version(), id.org_id(), p.signatures.len());
        }
        PolicyCmd::Verify { policy, stewards, threshold } => {
            let p = load(&policy)?;
            let stewards = stewards
                .iter()
                .map(|s| OrgId::from_hex(s).map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>, _>>()?;
            verify_policy(&p, &TrustAnchor { stewards, threshold })?;
            println!(
                "Policy v{} of {:?} is valid: {} extractor(s).",
                p.version(),
                p.body.federation,
                p.body.policy.extractors.len()
            );
        }
        PolicyCmd::Show { policy: Some(path), json, .. } => {
            let p = load(&path)?;
            if json {
                println!("{}", PolicyFile::to_json(&p));
            } else {
                print(&p.body.policy, Some(&p));
            }
        }
        PolicyCmd::Show { policy: None, data, json } => {
            let v: vigil_node::views::PolicyView = Client::new(&data.data)?.get("/v1/policy")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print(&v.policy, v.signed.as_ref());
            }
        }
        PolicyCmd::Apply { data, policy } => {
            let p = load(&policy)?;
            let file = PolicyFile { format: vigil_protocol::POLICY_FILE_FORMAT, policy: p };
            let v: vigil_node::api::Created = Client::new(&data.data)?.post("/v1/policy", &file)?;
            println!("The node applied policy v{}.", v.id);
        }
    }
    Ok(())
}
