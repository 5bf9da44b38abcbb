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
use vigil_protocol::pad::{CaptureKey, Liveness, PadUse};
use vigil_protocol::{limits, OrgId, PolicyBody, PolicyFile, PublicKey, SignedPolicy};

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
    /// Set the liveness (PAD) rules: capture keys whose attestations count
    /// and where one is required; bumps the version, clears signatures.
    /// A policy with rules is format 2 (members must read it).
    Liveness {
        #[arg(long)]
        policy: PathBuf,
        /// Add or replace a capture key: ID=PUBLIC_KEY_HEX (`vigil pad keygen`).
        #[arg(long = "capture-key")]
        capture_keys: Vec<String>,
        /// The PAD subsystem the keys added now belong to (informative).
        #[arg(long, default_value = "")]
        sdk: String,
        /// Retire a capture key: its attestations are refused from now on.
        #[arg(long = "retire-key")]
        retire_keys: Vec<String>,
        /// Where an attestation is required, replacing the list: enrolment,
        /// alert, query (comma separated; "none" for nowhere).
        #[arg(long)]
        require: Option<String>,
        /// The oldest attestation accepted (capture to use), e.g. 15m, 24h.
        #[arg(long)]
        max_age: Option<String>,
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
fn revise(path: &Path, change: impl FnOnce(&mut PolicyBody) -> anyhow::Result<()>) -> anyhow::Result<SignedPolicy> {
    let old = load(path)?;
    let mut p = old.clone();
    change(&mut p.body)?;
    p.body.policy.version += 1;
    p.body.issued_at_ms = vigil_node::now_ms();
    p.signatures.clear();
    old.body.policy.check_successor(&p.body.policy)?;
    p.body.validate()?;
    save(path, &p)?;
    Ok(p)
}

/// Applies `vigil policy liveness` options to the rules.
fn set_liveness(
    l: &mut Liveness,
    capture_keys: &[String],
    sdk: &str,
    retire: &[String],
    require: Option<&str>,
    max_age: Option<&str>,
) -> anyhow::Result<()> {
    for k in capture_keys {
        let Some((id, key)) = k.split_once('=') else { bail!("--capture-key takes ID=PUBLIC_KEY_HEX, not {k:?}") };
        let key = PublicKey::from_hex(key).map_err(|e| anyhow::anyhow!("capture key {id}: {e}"))?;
        l.capture_keys.retain(|c| c.id != id);
        l.capture_keys.push(CaptureKey { id: id.into(), sdk: sdk.into(), key, status: Status::Active });
    }
    for id in retire {
        let Some(k) = l.capture_keys.iter_mut().find(|k| k.id == *id) else {
            bail!("capture key {id:?} is not in the policy")
        };
        k.status = Status::Retired;
    }
    if let Some(r) = require {
        l.require = r
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty() && *u != "none")
            .map(|u| match u {
                "enrolment" | "enrollment" => Ok(PadUse::Enrolment),
                "alert" => Ok(PadUse::Alert),
                "query" => Ok(PadUse::Query),
                other => bail!("unknown use {other:?} (enrolment, alert, query, none)"),
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(a) = max_age {
        l.max_age_s = vigil_node::api::parse_duration(a).map_err(anyhow::Error::msg)?.as_secs();
    } else if l.max_age_s == 0 && !l.capture_keys.is_empty() {
        l.max_age_s = 24 * 3600;
    }
    Ok(())
}

fn uses(u: &[PadUse]) -> String {
    if u.is_empty() {
        return "nothing".into();
    }
    u.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
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
    // Thresholds by shared finger count, 1.., when the policy gives them.
    let by_count = |t: &vigil_protocol::policy::Threshold| match t.fewer_fingers.is_empty() {
        true => String::new(),
        false => {
            let v: Vec<String> = t.fewer_fingers.iter().map(|c| format!("{c:.3}")).collect();
            format!(" (sharing 1..: {})", v.join(" "))
        }
    };
    println!("id\tmodality\tdim\tstatus\tcentred\tthresholds (band cosine fmr)");
    for e in &p.extractors {
        let t: Vec<String> = e
            .thresholds
            .iter()
            .map(|t| format!("{:?} {:.4} {:e}{}", t.band, t.cosine, t.fmr, by_count(t)).to_lowercase())
            .collect();
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
    let Some(l) = signed.map(|s| &s.body.liveness).filter(|l| !l.is_empty()) else { return };
    println!(
        "Liveness (PAD): required for {}; attestations at most {} old",
        uses(&l.require),
        humantime::format_duration(std::time::Duration::from_secs(l.max_age_s))
    );
    println!("capture key	status	sdk	public key");
    for k in &l.capture_keys {
        println!("{}	{:?}	{}	{}", k.id, k.status, k.sdk, k.key);
    }
}

pub(super) async fn run(cmd: PolicyCmd) -> anyhow::Result<()> {
    match cmd {
        PolicyCmd::New { federation, version, extractors, out } => {
            let policy = Policy { version, extractors: read_extractors(&extractors)? };
            let p = SignedPolicy {
                body: PolicyBody {
                    federation,
                    issued_at_ms: vigil_node::now_ms(),
                    policy,
                    liveness: Default::default(),
                },
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
            let p = revise(&policy, |b| {
                for e in new {
                    b.policy.extractors.retain(|x| x.id != e.id);
                    b.policy.extractors.push(e);
                }
                Ok(())
            })?;
            println!("Policy is now v{} (unsigned).", p.version());
        }
        PolicyCmd::Retire { policy, id } => {
            let p = revise(&policy, |b| {
                let Some(e) = b.policy.extractors.iter_mut().find(|e| e.id == id) else {
                    bail!("extractor {id:?} is not in the policy");
                };
                e.status = Status::Retired;
                Ok(())
            })?;
            println!("Retired {id}; policy is now v{} (unsigned).", p.version());
        }
        PolicyCmd::Liveness { policy, capture_keys, sdk, retire_keys, require, max_age } => {
            let p = revise(&policy, |b| {
                let (r, a) = (require.as_deref(), max_age.as_deref());
                set_liveness(&mut b.liveness, &capture_keys, &sdk, &retire_keys, r, a)
            })?;
            let l = &p.body.liveness;
            println!(
                "Policy is now v{} (format {}, unsigned): {} capture key(s), required for: {}.",
                p.version(),
                p.body.format(),
                l.capture_keys.len(),
                uses(&l.require)
            );
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
