//! `vigil pad`: capture keys and PAD attestations for capture apps, SDK
//! integrations and drills: make a capture key (its public half goes into
//! the policy's liveness rules) and sign a PAD result over one template
//! file or fingerprint record, as a capture SDK would.

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use vigil_protocol::pad::{PadBody, PadDecision};
use vigil_protocol::Digest;

#[derive(Debug, Subcommand)]
pub(crate) enum PadCmd {
    /// Create a capture signing key (sealed under a passphrase, mode 0600).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a PAD result for a template file or record with a capture key.
    Sign {
        /// The capture key file (`vigil pad keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The key's id in the policy's liveness rules.
        #[arg(long)]
        key_id: String,
        /// The PAD subsystem and version that decided.
        #[arg(long)]
        sdk: String,
        /// The template file or fingerprint record the result is for.
        #[arg(long)]
        template: PathBuf,
        #[arg(long, value_enum, default_value = "bona-fide")]
        decision: DecisionArg,
        /// The subsystem's PAD score, as it reports it.
        #[arg(long)]
        score: Option<f32>,
        /// Capture time, RFC 3339 (default: now).
        #[arg(long)]
        captured_at: Option<String>,
        /// Where to write the attestation (JSON); never over a file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DecisionArg {
    BonaFide,
    Attack,
}

/// What an attestation over `path` signs: SHA-256 of a Vigil template
/// file's vector (little-endian f32), or of a standard record's bytes.
fn sample_of(path: &Path) -> anyhow::Result<Digest> {
    let limit = vigil_records::MAX_AN2K_BYTES as u64;
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > limit {
        bail!("{} is {} bytes, the limit is {limit}", path.display(), meta.len());
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    match vigil_records::sniff(&bytes) {
        vigil_records::Kind::Record(_) => {
            vigil_records::decode(&bytes).with_context(|| format!("record {}", path.display()))?;
            Ok(Digest(vigil_crypto::sha256(&bytes)))
        }
        _ => {
            let file = vigil_matcher::TemplateFile::parse(&bytes)
                .with_context(|| format!("template file {}", path.display()))?;
            Ok(file.sample_digest())
        }
    }
}

pub(super) fn run(cmd: PadCmd) -> anyhow::Result<()> {
    match cmd {
        PadCmd::Keygen { out } => {
            let id = crate::roster::write_key(&out)?;
            println!("Capture key written to {}", out.display());
            let public = vigil_crypto::capture_public_key(&id);
            println!("Public key: {public}");
            println!("Stewards list it in the policy with `vigil policy liveness --capture-key ID={public}`.");
        }
        PadCmd::Sign { key, key_id, sdk, template, decision, score, captured_at, out } => {
            if out.exists() {
                bail!("{} exists; an attestation is never written over a file", out.display());
            }
            let captured_at_ms = match captured_at {
                Some(t) => vigil_node::api::parse_date(&t).map_err(anyhow::Error::msg)?,
                None => vigil_node::now_ms(),
            };
            let decision = match decision {
                DecisionArg::BonaFide => PadDecision::BonaFide,
                DecisionArg::Attack => PadDecision::Attack,
            };
            let body = PadBody { key: key_id, sdk, decision, score, captured_at_ms, sample: sample_of(&template)? };
            body.validate()?;
            let signed = vigil_crypto::sign_pad(&crate::roster::read_key(&key)?, body)?;
            std::fs::write(&out, serde_json::to_string_pretty(&signed)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("PAD attestation for {} written to {}", template.display(), out.display());
        }
    }
    Ok(())
}
