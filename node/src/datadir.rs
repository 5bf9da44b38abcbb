//! A node's data directory: `vigil.toml` (config), `keyring.json` (how the
//! data key is derived; no secret), `identity.sealed` (the org's ed25519
//! seed, sealed), `epoch.sealed` (the federation's epoch secret, sealed),
//! `api.token` (the local API's bearer token, mode 0600),
//! `org.json` (public facts for the stewards' roster) and `vigil.redb` (the
//! sealed database).

use crate::net;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vigil_config::NodeConfig;
use vigil_crypto::{Identity, Keyring, SealKey};
use vigil_protocol::{OrgId, OrgKind};

const IDENTITY_AAD: &[u8] = b"vigil/identity";
const EPOCH_AAD: &[u8] = b"vigil/epoch";
/// The federation's epoch secret, sealed under the data key (never in
/// `vigil.toml`, never on a command line).
const EPOCH_FILE: &str = "epoch.sealed";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    #[error("{0} already holds a Vigil node (keyring.json exists); refusing to overwrite it")]
    Exists(String),
    #[error("{0} is not a Vigil data directory (no keyring.json); run `vigil init` first")]
    NotInitialised(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Keyring(#[from] vigil_crypto::KeyringError),
    #[error(transparent)]
    Config(#[from] vigil_config::ConfigError),
    #[error("identity.sealed does not open: {0}")]
    Identity(String),
    #[error("epoch.sealed does not open: {0}")]
    Epoch(String),
    #[error("no passphrase: set VIGIL_PASSPHRASE, pass --key-file, or run in a terminal")]
    NoSecret,
}

/// Public facts about a node, for its stewards (`vigil roster add --member-file`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrgInfo {
    pub org: OrgId,
    pub peer_id: String,
    pub name: String,
    pub kind: OrgKind,
    pub addrs: Vec<String>,
}

/// How the data key is unlocked.
#[derive(Debug, Clone)]
pub enum Secret {
    Passphrase(String),
    KeyFile(String),
}

impl Secret {
    /// From `--key-file`, else `VIGIL_PASSPHRASE`, else a terminal prompt.
    pub fn obtain(key_file: Option<&Path>, confirm: bool) -> Result<Secret, DataDirError> {
        if let Some(p) = key_file {
            let text = std::fs::read_to_string(p)
                .map_err(|source| DataDirError::Io { path: p.display().to_string(), source })?;
            return Ok(Secret::KeyFile(text));
        }
        if let Ok(p) = std::env::var("VIGIL_PASSPHRASE") {
            if !p.is_empty() {
                return Ok(Secret::Passphrase(p));
            }
        }
        let p =
            rpassword::prompt_password("Passphrase for the data directory: ").map_err(|_| DataDirError::NoSecret)?;
        if confirm {
            let again = rpassword::prompt_password("Repeat the passphrase: ").map_err(|_| DataDirError::NoSecret)?;
            if again != p {
                return Err(DataDirError::Identity("passphrases differ".into()));
            }
        }
        if p.is_empty() {
            return Err(DataDirError::NoSecret);
        }
        Ok(Secret::Passphrase(p))
    }

    pub(crate) fn text(&self) -> &str {
        match self {
            Secret::Passphrase(s) | Secret::KeyFile(s) => s,
        }
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io { path: path.display().to_string(), source }
}

pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), DataDirError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(contents).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Makes `dir` and everything below it its owner's only (directories
/// 0700, files 0600): the database engine creates its files 0644.
pub(crate) fn make_private(dir: &Path) -> Result<(), DataDirError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).map_err(io(p));
        mode(dir, 0o700)?;
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                make_private(&path)?;
            } else if meta.is_file() {
                mode(&path, 0o600)?;
            }
        }
    }
    Ok(())
}

/// Creates `dir` if needed, readable by its owner only.
pub(crate) fn private_dir(dir: &Path) -> Result<(), DataDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

/// Creates a new data directory with a fresh identity. Returns the org info.
pub fn init(dir: &Path, config: &NodeConfig, secret: &Secret) -> Result<OrgInfo, DataDirError> {
    if dir.join("keyring.json").exists() {
        return Err(DataDirError::Exists(dir.display().to_string()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    config.validate()?;
    let (ring, key) = match secret {
        Secret::Passphrase(p) => Keyring::for_passphrase(p)?,
        Secret::KeyFile(k) => Keyring::for_key_file(k)?,
    };
    let identity = Identity::generate();
    write_private(&dir.join("identity.sealed"), &key.seal(IDENTITY_AAD, identity.secret().as_ref()))?;
    let mut token = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut token);
    write_private(&dir.join("api.token"), hex::encode(token).as_bytes())?;
    let cfg_path = dir.join("vigil.toml");
    let mut on_disk = config.clone();
    if let Some(epoch) = on_disk.federation.epoch_secret.take() {
        write_private(&dir.join(EPOCH_FILE), &key.seal(EPOCH_AAD, epoch.as_bytes()))?;
    }
    write_private(&cfg_path, on_disk.to_commented_toml().as_bytes())?;
    let info = OrgInfo {
        org: identity.org_id(),
        peer_id: net::peer_id(&identity.org_id()).map(|p| p.to_string()).unwrap_or_default(),
        name: config.org.name.clone(),
        kind: config.org.kind,
        addrs: config.network.listen.clone(),
    };
    let info_path = dir.join("org.json");
    std::fs::write(&info_path, serde_json::to_string_pretty(&info).expect("serialises")).map_err(io(&info_path))?;
    // The keyring goes last: its presence marks a complete directory.
    ring.save(&dir.join("keyring.json"))?;
    Ok(info)
}

/// Rewrites `dir`'s `vigil.toml` from `config` (0600), leaving the epoch
/// secret out (it lives sealed in `epoch.sealed`).
pub fn save_config(dir: &Path, config: &NodeConfig) -> Result<(), DataDirError> {
    let mut on_disk = config.clone();
    on_disk.federation.epoch_secret = None;
    write_private(&dir.join("vigil.toml"), on_disk.to_commented_toml().as_bytes())
}

/// An unlocked data directory.
#[derive(Debug)]
pub struct Opened {
    pub dir: PathBuf,
    pub config: NodeConfig,
    pub key: SealKey,
    pub identity: Arc<Identity>,
}

pub fn open(dir: &Path, secret: &Secret) -> Result<Opened, DataDirError> {
    let ring_path = dir.join("keyring.json");
    if !ring_path.exists() {
        return Err(DataDirError::NotInitialised(dir.display().to_string()));
    }
    let cfg_path = dir.join("vigil.toml");
    let mut config = NodeConfig::load(&cfg_path)?;
    let key = Keyring::load(&ring_path)?.unlock(secret.text())?;
    let id_path = dir.join("identity.sealed");
    let sealed = std::fs::read(&id_path).map_err(io(&id_path))?;
    let seed = key.open(IDENTITY_AAD, &sealed).map_err(|e| DataDirError::Identity(e.to_string()))?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| DataDirError::Identity("wrong length".into()))?;
    let epoch_path = dir.join(EPOCH_FILE);
    // A directory from before kept the secret in vigil.toml: sealed now,
    // and the file rewritten without it.
    if let Some(epoch) = config.federation.epoch_secret.take() {
        write_private(&epoch_path, &key.seal(EPOCH_AAD, epoch.as_bytes()))?;
        write_private(&cfg_path, config.to_commented_toml().as_bytes())?;
    }
    if epoch_path.exists() {
        let sealed = std::fs::read(&epoch_path).map_err(io(&epoch_path))?;
        let epoch = key.open(EPOCH_AAD, &sealed).map_err(|e| DataDirError::Epoch(e.to_string()))?;
        let epoch = String::from_utf8(epoch).map_err(|_| DataDirError::Epoch("not text".into()))?;
        config.federation.epoch_secret = Some(epoch);
        config.validate()?;
    }
    Ok(Opened { dir: dir.to_path_buf(), config, key, identity: Arc::new(Identity::from_secret(&seed)) })
}

/// The API base URL and token of the node in `dir` (for CLI clients).
pub fn api_access(dir: &Path) -> Result<(String, String), DataDirError> {
    if !dir.join("keyring.json").exists() {
        return Err(DataDirError::NotInitialised(dir.display().to_string()));
    }
    let config = NodeConfig::load(&dir.join("vigil.toml"))?;
    let p = dir.join("api.token");
    let token = std::fs::read_to_string(&p).map_err(io(&p))?;
    Ok((format!("http://{}", config.api.listen), token.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_secret_is_sealed_not_in_the_config_and_old_directories_move_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("node");
        let secret = Secret::Passphrase("correct horse battery".into());
        let mut cfg = NodeConfig::new("Shelter North", vigil_protocol::OrgKind::Ngo);
        let epoch = "5e".repeat(32);
        cfg.federation.epoch_secret = Some(epoch.clone());
        init(&dir, &cfg, &secret).unwrap();
        let on_disk = std::fs::read_to_string(dir.join("vigil.toml")).unwrap();
        assert!(!on_disk.contains(&epoch), "the epoch secret is in vigil.toml");
        assert!(!std::fs::read(dir.join(EPOCH_FILE)).unwrap().windows(epoch.len()).any(|w| w == epoch.as_bytes()));
        assert_eq!(open(&dir, &secret).unwrap().config.federation.epoch_secret.as_deref(), Some(epoch.as_str()));
        // A directory from before: the secret in vigil.toml.
        std::fs::remove_file(dir.join(EPOCH_FILE)).unwrap();
        std::fs::write(dir.join("vigil.toml"), cfg.to_commented_toml()).unwrap();
        assert_eq!(open(&dir, &secret).unwrap().config.federation.epoch_secret.as_deref(), Some(epoch.as_str()));
        assert!(!std::fs::read_to_string(dir.join("vigil.toml")).unwrap().contains(&epoch), "moved out");
        assert!(dir.join(EPOCH_FILE).exists());
        assert_eq!(open(&dir, &secret).unwrap().config.federation.epoch_secret.as_deref(), Some(epoch.as_str()));
    }
}
