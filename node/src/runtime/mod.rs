//! The node actor: owns the swarm, the store and the engine, and runs one
//! `tokio::select!` loop over network events, operator commands (from the
//! HTTP API, the CLI or the demo) and a redial timer. It moves bytes and
//! applies the engine's actions; it makes no decisions of its own.

mod alerts;
mod commands;
#[cfg(feature = "drill")]
mod drill;
mod handle;
mod heavy;
mod identify;
mod network;
mod operators;
mod outq;
mod upkeep;

#[cfg(feature = "drill")]
pub use drill::DrillHooks;
pub use handle::NodeHandle;
use handle::{Command, Reply};
pub use heavy::low_priority_pool;

use crate::net::{self, Behaviour, BehaviourEvent, ALERT_TOPIC};
use crate::now_ms;
use crate::store::{AuditError, AuditRecord, Store, StoreError};
use crate::views::{AlertView, MemberCounts, MemberStatus, RecordView, Status};
use futures::StreamExt;
use libp2p::{gossipsub, request_response, swarm::SwarmEvent, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use vigil_config::NodeConfig;
use vigil_crypto::{Identity, SealKey, TrustAnchor};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{StoreOp, StoredDisclosure, StoredHit};
use vigil_engine::{Action, Engine, EngineError, EngineInit, Enrolment, IdentifyReport, Verdict};
use vigil_matcher::Template;
use vigil_protocol::{encode, AlertId, Category, Handle, OrgId, Response, SignedRoster, Tag};

/// Bound of the command inbox.
pub const COMMAND_QUEUE: usize = 256;
/// How often a node compares alert logs with every connected member.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(60);
/// How often the manifest beside the database records the audit head.
const MANIFEST_INTERVAL: Duration = Duration::from_secs(60);
/// Most finished jobs handled (and committed) together.
const JOB_BATCH: usize = 64;
/// How often records past their retention date are purged.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Redial ticks a member waits for the other one (the lower OrgId) to dial
/// it before dialling itself.
const DEFER_TICKS: u32 = 6;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("network setup failed: {0}")]
    Net(#[from] net::NetError),
    #[error("invalid listen address {0:?}: {1}")]
    Listen(String, String),
    #[error("the node has stopped")]
    Stopped,
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot encrypt the probe: {0}")]
    Probe(String),
    #[error("cannot publish: {0}")]
    Publish(String),
    #[error("backup failed: {0}")]
    Backup(String),
    #[error("cannot start the node's thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error(transparent)]
    Operator(#[from] vigil_engine::operators::OperatorError),
}

/// Everything a node needs to start.
pub struct NodeOptions {
    pub config: NodeConfig,
    pub db_path: std::path::PathBuf,
    pub seal_key: SealKey,
    pub identity: Arc<Identity>,
    pub seed: Option<u64>,
    #[cfg(feature = "drill")]
    pub hooks: DrillHooks,
}

impl From<&crate::datadir::Opened> for NodeOptions {
    /// A node from its unlocked data directory, as `vigil serve` starts it.
    fn from(o: &crate::datadir::Opened) -> Self {
        NodeOptions {
            config: o.config.clone(),
            db_path: crate::store::db_path(&o.dir),
            seal_key: o.key.clone(),
            identity: o.identity.clone(),
            seed: None,
            #[cfg(feature = "drill")]
            hooks: Default::default(),
        }
    }
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeOptions({}, {})", self.config.org.name, self.db_path.display())
    }
}

struct Runtime {
    swarm: Swarm<Behaviour>,
    store: Store,
    engine: Engine,
    config: NodeConfig,
    name: String,
    /// Outstanding hit notices by request.
    pending: HashMap<request_response::OutboundRequestId, Handle>,
    in_flight: std::collections::HashSet<Handle>,
    /// Requests waiting for a slot to their peer (`outq`).
    outq: outq::OutQueues,
    listen: Vec<Multiaddr>,
    /// Operators waiting for the report of a query this node sent.
    /// Open queries' replies, with the operator who made each (if any).
    query_replies: HashMap<Handle, (Reply<IdentifyReport>, Option<Arc<str>>)>,
    /// Query requests in flight: to which member, for which query.
    identify_requests: HashMap<request_response::OutboundRequestId, (Handle, OrgId)>,
    /// Retry schedule of the messages waiting for peers.
    retry: vigil_engine::RetrySchedule,
    /// Column-form probe fetches this node sent, by request.
    fetch_requests: HashMap<request_response::OutboundRequestId, AlertId>,
    jobs_tx: mpsc::Sender<identify::JobDone>,
    #[cfg(feature = "drill")]
    hooks: DrillHooks,
    /// Closed explicitly on stop: the in-memory transport frees a port only
    /// when its listener is removed, not when the swarm is dropped.
    listeners: Vec<libp2p::core::transport::ListenerId>,
    /// Roster members to keep connected to, with their addresses, and
    /// whether this node dials first (see `redial`).
    dial_targets: Vec<(PeerId, Vec<Multiaddr>, bool)>,
    /// Redial ticks each unconnected member has waited for its own dial.
    waited: HashMap<PeerId, u32>,
    /// A low-priority node's own rayon pool for its blocking work (see
    /// `DrillHooks::low_priority`); `None`: rayon's global pool.
    #[cfg(feature = "drill")]
    low_pool: Option<Arc<rayon::ThreadPool>>,
    metrics: crate::metrics::Metrics,
    /// A durable commit failed (a full disk, an I/O error): memory may hold
    /// what the disk does not, so the node stops (fail-stop) and a restart
    /// reads the disk again. Nothing failed is acknowledged.
    halted: Option<String>,
    /// Peers blocked after repeated violations, until when (ms); kept in
    /// the store so a restart does not lift a block.
    blocked: HashMap<OrgId, u64>,
    /// When each member's last connection closed (since this start).
    disconnected_at: HashMap<OrgId, u64>,
    started_at_ms: u64,
    /// The console's operators.
    operators: vigil_engine::operators::Operators,
    /// The operator whose command is being handled (its audit entries name it).
    actor: Option<Arc<str>>,
    /// Whether disclosure approvals need two operators (`console.four_eyes`).
    four_eyes: bool,
}

/// Starts a node: opens its store, listens, and spawns its event loop.
pub async fn start(opts: NodeOptions) -> Result<NodeHandle, NodeError> {
    #[cfg(feature = "drill")]
    let NodeOptions { config, db_path, seal_key, identity, seed, hooks } = opts;
    #[cfg(not(feature = "drill"))]
    let NodeOptions { config, db_path, seal_key, identity, seed } = opts;
    config.validate().map_err(|e| NodeError::Config(e.to_string()))?;
    let store = Store::open(&db_path, seal_key, identity.clone())?;
    let engine = open_engine(&config, &store, identity.clone(), seed)?;
    let lockout = vigil_engine::operators::Lockout {
        max_failures: config.console.max_failed_logins,
        lockout_ms: config.console.lockout.as_millis() as u64,
    };
    let operators = vigil_engine::operators::Operators::new(store.operators()?, lockout);
    let four_eyes = config.console.four_eyes_for(config.org.kind);
    let key = net::keypair(&identity.secret())?;
    let mut registry = prometheus_client::registry::Registry::with_prefix("vigil");
    let metrics = crate::metrics::Metrics::register(&mut registry);
    #[cfg(feature = "drill")]
    let mut swarm = {
        let drill = (hooks.tap.clone(), hooks.memory_latency);
        net::tcp_swarm(key, &config.network, &config.queries, drill, &mut registry)?
    };
    #[cfg(not(feature = "drill"))]
    let mut swarm = net::tcp_swarm(key, &config.network, &config.queries, &mut registry)?;
    let (listeners, listen) = listen_on(&mut swarm, &config.network.listen).await?;
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let handle = NodeHandle {
        tx,
        actor: None,
        org: identity.org_id(),
        peer_id: *swarm.local_peer_id(),
        listen: listen.clone(),
        metrics: Arc::new(crate::metrics::NodeMetrics { registry, own: metrics.clone() }),
    };
    let (jobs_tx, jobs_rx) = identify::job_channel();
    let mut rt = Runtime {
        swarm,
        store,
        engine,
        name: config.org.name.clone(),
        config,
        pending: HashMap::new(),
        in_flight: Default::default(),
        outq: Default::default(),
        listen,
        query_replies: HashMap::new(),
        identify_requests: HashMap::new(),
        fetch_requests: HashMap::new(),
        retry: Default::default(),
        jobs_tx,
        #[cfg(feature = "drill")]
        hooks,
        listeners,
        dial_targets: Vec::new(),
        waited: HashMap::new(),
        #[cfg(feature = "drill")]
        low_pool: None,
        metrics,
        halted: None,
        blocked: HashMap::new(),
        disconnected_at: HashMap::new(),
        started_at_ms: now_ms(),
        operators,
        actor: None,
        four_eyes,
    };
    rt.audit(AuditEvent::NodeStarted { org: identity.org_id() })?;
    rt.restore_blocks()?;
    // The GLWE key for encrypted queries: made on first start (or upgrade).
    let (_, actions) = rt.engine.prober_key();
    rt.apply(actions)?;
    tokio::task::spawn_blocking(vigil_matcher::encrypted::warm_up);
    // Answers to encrypted alerts that were owed when the node stopped.
    let actions = rt.engine.pending_alert_jobs(now_ms());
    rt.apply(actions)?;
    rt.sync_allow_list();
    rt.redial(false);
    tracing::info!(org = %rt.name, peer = %handle.peer_id, addrs = ?rt.listen, "node started");
    #[cfg(feature = "drill")]
    if rt.hooks.low_priority {
        rt.spawn_low_priority(rx, jobs_rx)?;
        return Ok(handle);
    }
    tokio::spawn(rt.run(rx, jobs_rx));
    Ok(handle)
}

/// The engine, from the config and what the store holds.
fn open_engine(
    config: &NodeConfig,
    store: &Store,
    identity: Arc<Identity>,
    seed: Option<u64>,
) -> Result<Engine, NodeError> {
    let epoch_secret = match &config.federation.epoch_secret {
        Some(h) => Some(
            hex::decode(h)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| NodeError::Config("federation.epoch_secret must be 64 hex characters".into()))?,
        ),
        None => None,
    };
    Ok(Engine::new(EngineInit {
        identity,
        anchor: trust_anchor(config)?,
        policy: config.alerts.clone(),
        biometric_policy: store.policy()?,
        queries: config.queries.clone(),
        epoch_secret,
        max_strikes: config.network.max_strikes,
        meta: store.meta()?,
        records: store.records()?,
        alerts: store.alerts()?,
        hits: store.hits()?,
        disclosures: store.disclosures()?,
        answers: store.answers()?,
        receipts: store.receipts()?,
        max_frame_bytes: config.network.max_frame_bytes,
        sync_bytes_per_hour: config.network.sync_bytes_per_hour,
        refusals_audit_every_ms: config.network.refusals_audit_interval.as_millis() as u64,
        max_requests_per_minute: config.network.max_requests_per_minute,
        max_refused_per_minute: config.network.max_refused_per_minute,
        seed,
    })?)
}

/// Listens on every address of `network.listen` and waits until each
/// listener has reported its address.
async fn listen_on(
    swarm: &mut Swarm<Behaviour>,
    addrs: &[String],
) -> Result<(Vec<libp2p::core::transport::ListenerId>, Vec<Multiaddr>), NodeError> {
    let mut listeners = Vec::new();
    for a in addrs {
        let addr: Multiaddr =
            a.parse().map_err(|e: libp2p::multiaddr::Error| NodeError::Listen(a.clone(), e.to_string()))?;
        listeners.push(swarm.listen_on(addr).map_err(|e| NodeError::Listen(a.clone(), e.to_string()))?);
    }
    let mut listen = Vec::new();
    while listen.len() < addrs.len() {
        match tokio::time::timeout(Duration::from_secs(10), swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => listen.push(address),
            Ok(SwarmEvent::ListenerError { error, .. }) | Ok(SwarmEvent::ListenerClosed { reason: Err(error), .. }) => {
                return Err(NodeError::Listen(format!("{addrs:?}"), error.to_string()))
            }
            Ok(_) => {}
            Err(_) => return Err(NodeError::Listen(format!("{addrs:?}"), "no address after 10 s".into())),
        }
    }
    Ok((listeners, listen))
}

impl Runtime {
    /// Runs `f` off the event loop, on tokio's blocking pool; inside the
    /// node's own low-priority rayon pool when it has one, so that the
    /// parallel loops of `f` stay at that priority.
    fn spawn_blocking<F: FnOnce() + Send + 'static>(&self, f: F) {
        #[cfg(feature = "drill")]
        if let Some(p) = self.low_pool.clone() {
            tokio::task::spawn_blocking(move || p.install(f));
            return;
        }
        tokio::task::spawn_blocking(f);
    }
}

/// Without the `drill` feature nothing is tapped and nothing is cut.
#[cfg(not(feature = "drill"))]
impl Runtime {
    fn is_cut(&self, _: &PeerId) -> bool {
        false
    }
    fn tap(&self, _: &str, _: &[u8]) {}
}

fn trust_anchor(config: &NodeConfig) -> Result<Option<TrustAnchor>, NodeError> {
    if config.federation.stewards.is_empty() {
        return Ok(None);
    }
    let stewards = config
        .federation
        .stewards
        .iter()
        .map(|s| OrgId::from_hex(s).map_err(|e| NodeError::Config(format!("federation.stewards: {s:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(TrustAnchor { stewards, threshold: config.federation.threshold }))
}

/// The command drawn but not yet handled, else the next one to arrive.
async fn next_command(held: &mut Option<Command>, rx: &mut mpsc::Receiver<Command>) -> Option<Command> {
    match held.take() {
        Some(cmd) => Some(cmd),
        None => rx.recv().await,
    }
}

impl Runtime {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut jobs: mpsc::Receiver<identify::JobDone>) {
        let mut tick = tokio::time::interval(self.config.network.redial_interval);
        let mut anchored = std::time::Instant::now();
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Retention runs at start and then every `RETENTION_INTERVAL`.
        let mut retention = tokio::time::interval(RETENTION_INTERVAL);
        let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + SYNC_INTERVAL, SYNC_INTERVAL);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deadlines = tokio::time::interval(std::time::Duration::from_millis(200));
        deadlines.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A command drawn while gathering enrolments, handled next.
        let mut held: Option<Command> = None;
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => {
                    if let Err(e) = self.on_swarm_event(ev) {
                        tracing::error!(org = %self.name, "failed to handle a network event: {e}");
                    }
                }
                cmd = next_command(&mut held, &mut rx) => match cmd {
                    None => break,
                    Some(Command::Shutdown(done)) => {
                        self.stop();
                        // The store is closed before anyone hears of it: a
                        // restart finds the database free.
                        drop(self);
                        let _ = done.send(());
                        return;
                    }
                    #[cfg(feature = "drill")]
                    Some(Command::Drill(drill::DrillCommand::Crash(done))) => {
                        self.close_listeners();
                        drop(self);
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Enrol(e, reply)) => held = self.enrol_group((e, reply), &mut rx),
                    Some(cmd) => self.on_command(cmd),
                },
                Some(done) = jobs.recv() => {
                    // Whatever else has finished meanwhile goes with it: one
                    // flush for a batch of answer pages or decrypted pages.
                    let mut batch = vec![done];
                    while batch.len() < JOB_BATCH {
                        match jobs.try_recv() {
                            Ok(d) => batch.push(d),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = self.on_jobs_done(batch) {
                        tracing::error!(org = %self.name, "failed to finish a job: {e}");
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.store.flush_if_dirty() {
                        self.halt(&e);
                    }
                    if anchored.elapsed() >= MANIFEST_INTERVAL {
                        anchored = std::time::Instant::now();
                        if let Err(e) = self.store.flush_and_anchor(now_ms()) {
                            self.halt(&e);
                        }
                    }
                    if let Err(e) = self.expire_blocks() {
                        tracing::error!(org = %self.name, "lifting expired blocks failed: {e}");
                    }
                    self.redial(true);
                    self.resend_hits();
                    if let Err(e) = self.retry_sync() {
                        tracing::error!(org = %self.name, "catch-up retry failed: {e}");
                    }
                }
                _ = resync.tick() => {
                    // Heals anything gossip missed, without waiting for a reconnection.
                    if let Err(e) = self.sync_with_connected() {
                        tracing::error!(org = %self.name, "periodic catch-up failed: {e}");
                    }
                    if let Err(e) = self.retry_deferred_alerts() {
                        tracing::error!(org = %self.name, "retrying refused alerts failed: {e}");
                    }
                }
                _ = retention.tick() => {
                    if let Err(e) = self.purge() {
                        tracing::error!(org = %self.name, "retention purge failed: {e}");
                    }
                }
                due = deadlines.tick() => {
                    // How late the event loop came to a timer due now: what
                    // everything it does waits behind.
                    self.metrics.loop_lag_seconds.observe(due.elapsed().as_secs_f64());
                    if let Err(e) = self.expire_queries() {
                        tracing::error!(org = %self.name, "failed to expire queries: {e}");
                    }
                    if let Err(e) = self.audit_refusals() {
                        tracing::error!(org = %self.name, "auditing refused connections failed: {e}");
                    }
                }
            }
            if let Some(why) = &self.halted {
                tracing::error!(org = %self.name, "stopping: a durable write failed ({why}); nothing after it was acknowledged; the data on disk is intact, restart once the cause (disk full?) is fixed");
                break;
            }
        }
        self.stop();
        // The store closes before the command channel does (what
        // `NodeHandle::stopped` waits for).
        drop(self);
        drop(rx);
    }

    /// A durable write failed: the node stops after the current event.
    fn halt(&mut self, e: &StoreError) {
        if self.halted.is_none() {
            self.halted = Some(e.to_string());
        }
    }

    fn close_listeners(&mut self) {
        for id in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(id);
        }
    }

    fn stop(&mut self) {
        self.close_listeners();
        if self.halted.is_some() {
            tracing::info!(org = %self.name, "node stopped");
            return;
        }
        // Counts not audited yet go in now; a crash loses at most one interval's.
        let counts = self.engine.aggregates_now(now_ms());
        if let Err(e) = self.apply(counts) {
            tracing::error!(org = %self.name, "auditing the last counts failed: {e}");
        }
        if let Err(e) = self.store.flush_and_anchor(now_ms()) {
            tracing::error!(org = %self.name, "final flush failed: {e}");
        }
        tracing::info!(org = %self.name, "node stopped");
    }

    fn audit(&mut self, event: AuditEvent) -> Result<(), StoreError> {
        let done = self.store.audit(now_ms(), self.attributed(event));
        if let Err(e) = &done {
            self.halt(e);
        }
        done
    }

    /// Applies actions in order. Writes and audit entries are gathered and
    /// made durable together (one flush) before any action that leaves the
    /// node, so nothing is sent or acknowledged before it is on disk.
    fn apply(&mut self, actions: Vec<Action>) -> Result<(), NodeError> {
        self.apply_with(actions, false)
    }

    /// As `apply`; with `lazy`, the writes after the last action that
    /// leaves the node are not flushed now (the next durable commit, or
    /// the flush on the redial tick, makes them durable). Only for gossip and peers'
    /// responses: receiving an alert or a response acknowledges nothing,
    /// and catch-up or the outbox repeats what a crash loses. Answer jobs are local: spawned after the writes, and their
    /// results go through `apply` (and a flush) before they are sent.
    fn apply_with(&mut self, actions: Vec<Action>, lazy: bool) -> Result<(), NodeError> {
        let mut writes: Vec<StoreOp> = Vec::new();
        let mut audits: Vec<AuditEvent> = Vec::new();
        let mut jobs = Vec::new();
        for a in actions {
            match a {
                Action::Store(op) => {
                    writes.push(op);
                    continue;
                }
                Action::Audit(ev) => {
                    audits.push(ev);
                    continue;
                }
                Action::AnswerAlert(job) if lazy => {
                    jobs.push(job);
                    continue;
                }
                _ => {}
            }
            self.commit(&std::mem::take(&mut writes), std::mem::take(&mut audits))?;
            match a {
                Action::Store(_) | Action::Audit(_) => unreachable!("gathered above"),
                Action::Publish(bytes) => self.publish(bytes),
                Action::Send { to, request, key } => {
                    match encode(Tag::Request, &request, self.config.network.max_frame_bytes) {
                        Ok(frame) => self.send_request(to, frame, Some(key)),
                        Err(e) => tracing::error!("cannot encode a request: {e}"),
                    }
                }
                Action::AnswerAlert(job) => self.spawn_alert_job(job),
                Action::FetchProbe { to, alert, chunks } => self.send_fetch(to, alert, chunks),
                Action::FederationChanged => self.roster_changed()?,
                Action::Block(org) => self.block(org)?,
            }
        }
        if lazy {
            if let Err(e) = self.store.commit_unflushed(&writes, now_ms(), audits) {
                self.halt(&e);
                return Err(e.into());
            }
        } else {
            self.commit(&writes, audits)?;
        }
        for job in jobs {
            self.spawn_alert_job(job);
        }
        Ok(())
    }

    /// Writes and audit entries, durable on return (timed when not empty).
    fn commit(&mut self, writes: &[StoreOp], audits: Vec<AuditEvent>) -> Result<(), NodeError> {
        if writes.is_empty() && audits.is_empty() {
            return Ok(());
        }
        if self.halted.is_some() {
            return Err(NodeError::Stopped);
        }
        let start = std::time::Instant::now();
        let audits = audits.into_iter().map(|e| self.attributed(e)).collect();
        if let Err(e) = self.store.commit(writes, now_ms(), audits) {
            self.halt(&e);
            return Err(e.into());
        }
        self.metrics.commit_seconds.observe(start.elapsed().as_secs_f64());
        Ok(())
    }

    fn publish(&mut self, bytes: Vec<u8>) {
        self.tap("gossip", &bytes);
        let topic = gossipsub::IdentTopic::new(ALERT_TOPIC);
        match self.swarm.behaviour_mut().gossip.publish(topic, bytes) {
            Ok(_) => {}
            // The alert is stored; peers that were unreachable get it by sync.
            Err(e) => tracing::warn!(org = %self.name, "alert not gossiped now: {e}"),
        }
    }
}
