//! `vigil roster`: steward key generation, roster creation, member entry,
//! threshold signing, verification, and applying a roster to a running node.

use crate::args::{DataArg, KindArg};
use crate::client::Client;
use anyhow::{bail, Context};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use vigil_crypto::{sign_roster, verify_roster, Identity, TrustAnchor};
use vigil_protocol::{limits, Member, OrgId, Role, RosterBody, RosterFile, SignedRoster};

#[derive(Debug, Subcommand)]
pub(crate) enum RosterCmd {
    /// Create a steward signing key (written with mode 0600).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Start a new, unsigned roster.
    New {
        #[arg(long)]
        federation: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        version: u64,
    },
    /// Add (or replace) a member. Signatures on the old body stop counting.
    Add {
        #[arg(long)]
        roster: PathBuf,
        /// A node's org.json (from `vigil init`), instead of --org/--name/--kind.
        #[arg(long)]
        member_file: Option<PathBuf>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// Multiaddr where the member listens; repeat for several.
        #[arg(long = "addr")]
        addrs: Vec<String>,
        /// Roles, comma-separated: alert,match,query.
        #[arg(long, default_value = "alert,match,query")]
        roles: String,
    },
    /// Remove a member (revocation takes effect when the new version is applied).
    Remove {
        #[arg(long)]
        roster: PathBuf,
        #[arg(long)]
        org: String,
    },
    /// Bump the version (do this before changing a roster already in use).
    Bump {
        #[arg(long)]
        roster: PathBuf,
    },
    /// Sign the roster with a steward key.
    Sign {
        #[arg(long)]
        roster: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify signatures against trusted stewards and a threshold.
    Verify {
        #[arg(long)]
        roster: PathBuf,
        #[arg(long = "steward", required = true)]
        stewards: Vec<String>,
        #[arg(long)]
        threshold: usize,
    },
    /// Send a roster to the running node (applied only if valid and newer).
    Apply {
        #[command(flatten)]
        data: DataArg,
        #[arg(long)]
        roster: PathBuf,
    },
}

/// Reads a roster JSON file under the size limit.
pub(super) fn load(path: &Path) -> anyhow::Result<SignedRoster> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read roster {}", path.display()))?;
    if meta.len() > limits::MAX_ROSTER_BYTES as u64 {
        bail!("roster {} is larger than {} bytes", path.display(), limits::MAX_ROSTER_BYTES);
    }
    let bytes = std::fs::read(path)?;
    RosterFile::parse(&bytes).with_context(|| format!("roster {}", path.display()))
}

fn save(path: &Path, r: &SignedRoster) -> anyhow::Result<()> {
    std::fs::write(path, RosterFile::to_json(r)).with_context(|| format!("cannot write {}", path.display()))
}

fn parse_roles(s: &str) -> anyhow::Result<Vec<Role>> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| match x.trim() {
            "alert" => Ok(Role::Alert),
            "match" => Ok(Role::Match),
            "query" => Ok(Role::Query),
            other => bail!("unknown role {other:?} (alert, match, query)"),
        })
        .collect()
}

/// A steward key file: the signing seed sealed under a passphrase
/// (argon2id, as a data directory's key), never in the clear.
#[derive(serde::Serialize, serde::Deserialize)]
struct StewardKeyFile {
    format: String,
    keyring: vigil_crypto::Keyring,
    /// Hex of the sealed 32-byte seed.
    sealed: String,
}

const STEWARD_KEY_FORMAT: &str = "vigil-steward-key/1";
const STEWARD_KEY_AAD: &[u8] = b"vigil/steward-key";

/// The steward's passphrase: `VIGIL_STEWARD_PASSPHRASE`, else a prompt.
fn steward_passphrase(confirm: bool) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("VIGIL_STEWARD_PASSPHRASE") {
        if !p.is_empty() {
            return Ok(p);
        }
    }
    let p = rpassword::prompt_password("Passphrase for the steward key: ")
        .context("no passphrase: set VIGIL_STEWARD_PASSPHRASE or run in a terminal")?;
    if confirm && rpassword::prompt_password("Repeat the passphrase: ")? != p {
        bail!("passphrases differ");
    }
    Ok(p)
}

pub(super) fn read_key(path: &Path) -> anyhow::Result<Identity> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read key {}", path.display()))?;
    // Keys written before they were sealed: 64 hex characters.
    if let Ok(bytes) = hex::decode(text.trim()) {
        let seed: [u8; 32] = bytes.try_into().map_err(|_| anyhow::anyhow!("a steward key holds 32 bytes"))?;
        eprintln!(
            "warning: {} holds the steward key in the clear; make a sealed one (vigil roster keygen) and \
             have the stewards pin its public key",
            path.display()
        );
        return Ok(Identity::from_secret(&seed));
    }
    let file: StewardKeyFile =
        serde_json::from_str(&text).with_context(|| format!("{} is not a steward key file", path.display()))?;
    if file.format != STEWARD_KEY_FORMAT {
        bail!("{}: unknown steward key format {:?}", path.display(), file.format);
    }
    let key = file.keyring.unlock(&steward_passphrase(false)?).context("wrong passphrase for this steward key")?;
    let sealed = hex::decode(&file.sealed).context("the sealed key is not hex")?;
    let seed = key.open(STEWARD_KEY_AAD, &sealed).map_err(|e| anyhow::anyhow!("the steward key does not open: {e}"))?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| anyhow::anyhow!("a steward key holds 32 bytes"))?;
    Ok(Identity::from_secret(&seed))
}

/// A new signing key sealed under a passphrase into `out` (mode 0600,
/// never over an existing file): steward keys, and capture keys.
pub(super) fn write_key(out: &Path) -> anyhow::Result<Identity> {
    if out.exists() {
        bail!("{} exists; refusing to overwrite a key", out.display());
    }
    let id = Identity::generate();
    let (keyring, key) = vigil_crypto::Keyring::for_passphrase(&steward_passphrase(true)?)?;
    let sealed = hex::encode(key.seal(STEWARD_KEY_AAD, id.secret().as_ref()));
    let file = StewardKeyFile { format: STEWARD_KEY_FORMAT.into(), keyring, sealed };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    opts.open(out)?.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
    Ok(id)
}

pub(super) async fn run(cmd: RosterCmd) -> anyhow::Result<()> {
    match cmd {
        RosterCmd::Keygen { out } => {
            let id = write_key(&out)?;
            println!("Steward key written to {}", out.display());
            println!("Public key (give to every node as --steward): {}", id.org_id());
        }
        RosterCmd::New { federation, out, version } => {
            let r = SignedRoster {
                body: RosterBody { federation, version, issued_at_ms: vigil_node::now_ms(), members: vec![] },
                signatures: vec![],
            };
            r.body.validate()?;
            save(&out, &r)?;
            println!("Created roster v{version} at {}", out.display());
        }
        RosterCmd::Add { roster, member_file, org, name, kind, addrs, roles } => {
            let mut r = load(&roster)?;
            let member = if let Some(f) = member_file {
                let info: vigil_node::datadir::OrgInfo = serde_json::from_str(&std::fs::read_to_string(&f)?)
                    .with_context(|| format!("{} is not an org.json", f.display()))?;
                Member {
                    org: info.org,
                    name: info.name,
                    kind: info.kind,
                    addrs: if addrs.is_empty() { info.addrs } else { addrs },
                    roles: parse_roles(&roles)?,
                }
            } else {
                let (Some(org), Some(name), Some(kind)) = (org, name, kind) else {
                    bail!("give --member-file, or all of --org, --name and --kind");
                };
                Member {
                    org: OrgId::from_hex(&org).map_err(anyhow::Error::msg)?,
                    name,
                    kind: kind.into(),
                    addrs,
                    roles: parse_roles(&roles)?,
                }
            };
            let name = member.name.clone();
            r.body.members.retain(|m| m.org != member.org);
            r.body.members.push(member);
            r.body.validate()?;
            r.signatures.clear();
            save(&roster, &r)?;
            println!(
                "Added {name}; roster v{} now has {} members and needs signing again.",
                r.body.version,
                r.body.members.len()
            );
        }
        RosterCmd::Remove { roster, org } => {
            let mut r = load(&roster)?;
            let org = OrgId::from_hex(&org).map_err(anyhow::Error::msg)?;
            let before = r.body.members.len();
            r.body.members.retain(|m| m.org != org);
            if r.body.members.len() == before {
                bail!("{org} is not in the roster");
            }
            r.signatures.clear();
            save(&roster, &r)?;
            println!("Removed {org}; bump the version and sign again before applying.");
        }
        RosterCmd::Bump { roster } => {
            let mut r = load(&roster)?;
            r.body.version += 1;
            r.body.issued_at_ms = vigil_node::now_ms();
            r.signatures.clear();
            save(&roster, &r)?;
            println!("Roster is now v{} (unsigned).", r.body.version);
        }
        RosterCmd::Sign { roster, key } => {
            let mut r = load(&roster)?;
            let id = read_key(&key)?;
            sign_roster(&mut r, &id)?;
            save(&roster, &r)?;
            println!(
                "Signed roster v{} as steward {}; {} signature(s).",
                r.body.version,
                id.org_id(),
                r.signatures.len()
            );
        }
        RosterCmd::Verify { roster, stewards, threshold } => {
            let r = load(&roster)?;
            let stewards = stewards
                .iter()
                .map(|s| OrgId::from_hex(s).map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>, _>>()?;
            verify_roster(&r, &TrustAnchor { stewards, threshold })?;
            println!(
                "Roster v{} of {:?} is valid: {} members.",
                r.body.version,
                r.body.federation,
                r.body.members.len()
            );
        }
        RosterCmd::Apply { data, roster } => {
            let r = load(&roster)?;
            let file = RosterFile { format: vigil_protocol::ROSTER_FILE_FORMAT, roster: r };
            let v: vigil_node::api::Created = Client::new(&data.data)?.post("/v1/roster", &file)?;
            println!("The node applied roster v{}.", v.id);
        }
    }
    Ok(())
}
