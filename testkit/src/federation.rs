//! A local federation in one process: stewards, a signed roster and several
//! real nodes (own data directory, sealed redb store, libp2p over loopback
//! TCP or the in-memory transport). Used by `vigil demo`, the drills and the
//! end-to-end tests; it wires real components together and replaces none.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_config::NodeConfig;
use vigil_crypto::{sign_roster, Identity};
use vigil_node::datadir::{self, Opened, Secret};
use vigil_node::runtime::{self, NodeError, NodeHandle};
#[cfg(feature = "drill")]
use vigil_node::{runtime::DrillHooks, Tap};
use vigil_protocol::{Member, OrgKind, Role, RosterBody, SignedRoster};

/// One organisation to start.
#[derive(Debug, Clone)]
pub struct OrgSpec {
    pub name: String,
    pub kind: OrgKind,
    pub roles: Vec<Role>,
    /// Listed in the roster with its address (others can dial it).
    pub listed_addr: bool,
    /// Member of the roster at all (false: an outsider with its own roster).
    pub member: bool,
}

impl OrgSpec {
    pub fn new(name: &str, kind: OrgKind) -> Self {
        Self {
            name: name.into(),
            kind,
            roles: vec![Role::Alert, Role::Match, Role::Query],
            listed_addr: true,
            member: true,
        }
    }
}

/// A running member node.
pub struct LocalNode {
    pub name: String,
    pub handle: NodeHandle,
    pub dir: PathBuf,
    pub identity: Arc<Identity>,
    pub secret: Secret,
    #[cfg(feature = "drill")]
    hooks: DrillHooks,
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalNode({}, {})", self.name, self.handle.org)
    }
}

impl LocalNode {
    /// The unlocked data directory (only while the node is stopped: the database
    /// allows one opener).
    pub fn open(&self) -> Result<Opened, datadir::DataDirError> {
        datadir::open(&self.dir, &self.secret)
    }
}

/// Adjusts node `i`'s config before it starts.
pub type ConfigTweak = Box<dyn Fn(usize, &mut NodeConfig) + Send + Sync>;

/// Options for a local federation.
pub struct FederationOptions {
    /// Called for every node's config before it starts.
    pub tweak: ConfigTweak,
    /// Nodes talk over libp2p's in-memory transport (`/memory/N`) instead
    /// of loopback TCP: many nodes in one process, no sockets.
    pub memory: bool,
    /// A tap per node index.
    #[cfg(feature = "drill")]
    pub tap: Box<dyn Fn(usize) -> Option<Tap> + Send + Sync>,
    /// Simulated one-way latency on every in-memory link.
    #[cfg(feature = "drill")]
    pub latency: Duration,
    /// Nodes whose event loop runs on a low-priority thread of its own
    /// (`DrillHooks::low_priority`): a drill's attackers.
    #[cfg(feature = "drill")]
    pub low_priority: Box<dyn Fn(usize) -> bool + Send + Sync>,
}

impl Default for FederationOptions {
    fn default() -> Self {
        Self {
            tweak: Box::new(|_, _| {}),
            memory: false,
            #[cfg(feature = "drill")]
            tap: Box::new(|_| None),
            #[cfg(feature = "drill")]
            latency: Duration::ZERO,
            #[cfg(feature = "drill")]
            low_priority: Box::new(|_| false),
        }
    }
}

impl std::fmt::Debug for FederationOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FederationOptions")
    }
}

#[derive(Debug)]
pub struct LocalFederation {
    pub root: tempfile::TempDir,
    pub nodes: Vec<LocalNode>,
    pub stewards: Vec<Identity>,
    pub roster: SignedRoster,
}

impl LocalFederation {
    /// Creates data directories, starts every node on 127.0.0.1, signs a
    /// roster with 2 of 3 stewards and applies it everywhere.
    pub async fn start(specs: &[OrgSpec], opts: FederationOptions) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new().prefix("vigil-federation-").tempdir()?;
        let stewards: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
        let mut epoch = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut epoch);
        let mut nodes = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let dir = root.path().join(format!("node{i}"));
            let mut cfg = NodeConfig::new(&spec.name, spec.kind);
            cfg.network.listen = vec![if opts.memory { "/memory/0".into() } else { "/ip4/127.0.0.1/tcp/0".into() }];
            cfg.network.redial_interval = Duration::from_millis(500);
            cfg.api.listen = "127.0.0.1:0".into();
            cfg.federation.stewards = stewards.iter().map(|s| s.org_id().to_hex()).collect();
            cfg.federation.threshold = 2;
            cfg.federation.epoch_secret = Some(hex::encode(epoch));
            (opts.tweak)(i, &mut cfg);
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            let secret = Secret::KeyFile(hex::encode(key));
            datadir::init(&dir, &cfg, &secret)?;
            let opened = datadir::open(&dir, &secret)?;
            #[cfg(feature = "drill")]
            let hooks =
                DrillHooks { tap: (opts.tap)(i), memory_latency: opts.latency, low_priority: (opts.low_priority)(i) };
            let handle = start_node(
                &opened,
                #[cfg(feature = "drill")]
                &hooks,
            )
            .await?;
            // Pin the bound address so a restart listens where the roster says.
            let mut pinned = opened.config.clone();
            pinned.network.listen = handle.listen.iter().map(|a| a.to_string()).collect();
            datadir::save_config(&dir, &pinned)?;
            nodes.push(LocalNode {
                name: spec.name.clone(),
                handle,
                dir,
                identity: opened.identity,
                secret,
                #[cfg(feature = "drill")]
                hooks,
            });
        }
        let members = specs
            .iter()
            .zip(&nodes)
            .filter(|(s, _)| s.member)
            .map(|(s, n)| Member {
                org: n.handle.org,
                name: s.name.clone(),
                kind: s.kind,
                addrs: if s.listed_addr { n.handle.listen.iter().map(|a| a.to_string()).collect() } else { vec![] },
                roles: s.roles.clone(),
            })
            .collect();
        let mut roster = SignedRoster {
            body: RosterBody {
                federation: "vigil-local".into(),
                version: 1,
                issued_at_ms: vigil_node::now_ms(),
                members,
            },
            signatures: vec![],
        };
        sign_roster(&mut roster, &stewards[0])?;
        sign_roster(&mut roster, &stewards[2])?;
        // Everywhere at once: a member that has the roster dials members
        // that do not have it yet, and they refuse it (after a handshake).
        futures::future::try_join_all(nodes.iter().map(|n| n.handle.apply_roster(roster.clone()))).await?;
        Ok(Self { root, nodes, stewards, roster })
    }

    /// Signs `policy` with two of the three stewards (the threshold),
    /// applies it at node `at` as its operator would, and waits until every
    /// node holds it (it spreads by catch-up); returns its version.
    pub async fn apply_policy(
        &self,
        policy: vigil_matcher::Policy,
        at: usize,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        self.apply_policy_with(policy, Default::default(), at, timeout).await
    }

    /// `apply_policy` with liveness (PAD) rules: a format 2 policy.
    pub async fn apply_policy_with(
        &self,
        policy: vigil_matcher::Policy,
        liveness: vigil_protocol::pad::Liveness,
        at: usize,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        let body = vigil_protocol::PolicyBody {
            federation: self.roster.body.federation.clone(),
            issued_at_ms: vigil_node::now_ms(),
            policy,
            liveness,
        };
        let mut signed = vigil_protocol::SignedPolicy { body, signatures: vec![] };
        for steward in &self.stewards[..2] {
            vigil_crypto::sign_policy(&mut signed, steward)?;
        }
        let version = self.nodes[at].handle.apply_policy(signed).await?;
        let deadline = Instant::now() + timeout;
        for node in &self.nodes {
            let h = &node.handle;
            let left = deadline.saturating_duration_since(Instant::now());
            crate::wait_for(left, || async move { (h.biometric().await.ok()?.version == version).then_some(()) })
                .await
                .ok_or_else(|| anyhow::anyhow!("{} did not receive policy v{version} within {timeout:?}", node.name))?;
        }
        Ok(version)
    }

    /// Waits until every listed member is connected to every other one.
    pub async fn wait_connected(&self, members: &[usize], timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut ok = true;
            for &i in members {
                let s = self.nodes[i].handle.status().await?;
                if members.iter().any(|&j| j != i && !s.connected.contains(&self.nodes[j].handle.org)) {
                    ok = false;
                }
            }
            if ok {
                // Let gossipsub exchange subscriptions and build its mesh.
                tokio::time::sleep(Duration::from_millis(1200)).await;
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("members {members:?} did not all connect within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops node `i` (flushing its store) and starts it again from its data directory.
    pub async fn restart(&mut self, i: usize) -> Result<(), anyhow::Error> {
        self.stop(i).await;
        self.start_again(i).await
    }

    /// Stops node `i`.
    pub async fn stop(&mut self, i: usize) {
        self.nodes[i].handle.shutdown().await;
        // Give libp2p a moment to close the listener.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Starts a stopped node `i` again from its data directory.
    pub async fn start_again(&mut self, i: usize) -> Result<(), anyhow::Error> {
        let n = &self.nodes[i];
        let opened = n.open()?;
        let handle = start_node(
            &opened,
            #[cfg(feature = "drill")]
            &n.hooks,
        )
        .await?;
        self.nodes[i].handle = handle;
        Ok(())
    }

    pub async fn shutdown(&self) {
        for n in &self.nodes {
            n.handle.shutdown().await;
        }
    }
}

/// Starts the node of an opened data directory, with the drill hooks when
/// the test kit is built with them.
async fn start_node(opened: &Opened, #[cfg(feature = "drill")] hooks: &DrillHooks) -> Result<NodeHandle, NodeError> {
    #[allow(unused_mut)]
    let mut options = vigil_node::NodeOptions::from(opened);
    #[cfg(feature = "drill")]
    {
        options.hooks = hooks.clone();
    }
    runtime::start(options).await
}
