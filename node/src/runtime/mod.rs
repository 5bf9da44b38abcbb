//! The node actor: owns the swarm, the store and the engine, and runs one
//! `tokio::select!` loop over network events, operator commands (from the
//! HTTP API, the CLI or the demo) and a redial timer. It moves bytes and
//! applies the engine's actions; it makes no decisions of its own.

mod alerts;
mod commands;
#[cfg(feature = "drill")]
mod drill;
mod heavy;
mod identify;
mod outq;
mod upkeep;
mod views;

#[cfg(feature = "drill")]
pub use drill::DrillHooks;
pub use heavy::low_priority_pool;
pub use views::{AlertView, RecordView, Status};

use crate::net::{self, Behaviour, BehaviourEvent, ALERT_TOPIC};
use crate::store::{AuditError, AuditRecord, Store, StoreError};
use futures::StreamExt;
use libp2p::{gossipsub, request_response, swarm::SwarmEvent, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use vigil_config::NodeConfig;
use vigil_crypto::{Identity, SealKey, TrustAnchor};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{StoreOp, StoredDisclosure, StoredHit};
use vigil_engine::{Action, Engine, EngineError, EngineInit, Enrolment, IdentifyReport, Verdict};
use vigil_matcher::Template;
use vigil_protocol::{encode, AlertId, Category, Handle, OrgId, Request, Response, SignedRoster, Tag};

/// Bound of the command inbox.
pub const COMMAND_QUEUE: usize = 256;
/// How often a node compares alert logs with every connected member.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(60);
/// Most finished jobs handled (and committed) together.
const JOB_BATCH: usize = 64;
/// How often records past their retention date are purged.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Redial ticks a member waits for the other one (the lower OrgId) to dial
/// it before dialling itself.
const DEFER_TICKS: u32 = 6;

#[derive(Debug, thiserror::Error)]
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
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
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

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeOptions({}, {})", self.config.org.name, self.db_path.display())
    }
}

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

enum Command {
    Enrol(Box<Enrolment>, Reply<u64>),
    EnrolMany(Vec<Enrolment>, Reply<Vec<u64>>),
    Publish {
        template: Box<Template>,
        category: Category,
        case_ref: String,
        expires_at_ms: u64,
        reply: Reply<AlertId>,
    },
    Withdraw(AlertId, Reply<()>),
    ApplyRoster(Box<SignedRoster>, Reply<u64>),
    Alerts(Reply<Vec<AlertView>>),
    Records(Reply<Vec<RecordView>>),
    Erase {
        record: u64,
        reason: String,
        reply: Reply<()>,
    },
    Backup {
        out: std::path::PathBuf,
        reply: Reply<u64>,
    },
    Hits(Reply<Vec<StoredHit>>),
    AuditVerify(Reply<Result<usize, AuditError>>),
    AuditExport(Reply<Vec<AuditRecord>>),
    Status(Reply<Status>),
    Identify {
        template: Box<Template>,
        purpose: String,
        legal_basis: String,
        reply: Reply<IdentifyReport>,
    },
    RequestDisclosure {
        hit: Handle,
        reason: String,
        reply: Reply<Handle>,
    },
    DecideDisclosure {
        id: Handle,
        contact: Option<String>,
        reply: Reply<()>,
    },
    Disclosures(Reply<Vec<StoredDisclosure>>),
    RotateProberKey(Reply<String>),
    Shutdown(oneshot::Sender<()>),
    #[cfg(feature = "drill")]
    Drill(drill::DrillCommand),
}

/// A cheap, cloneable handle to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Command>,
    pub org: OrgId,
    pub peer_id: PeerId,
    pub listen: Vec<Multiaddr>,
    /// Its metrics (`GET /v1/metrics`).
    pub metrics: Arc<crate::metrics::NodeMetrics>,
}

impl NodeHandle {
    /// Sends a command to the event loop and waits for its answer.
    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(command(tx)).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }
    /// Enrols a record; returns its local id once it is durable.
    pub async fn enrol(&self, e: Enrolment) -> Result<u64, NodeError> {
        self.ask(|tx| Command::Enrol(Box::new(e), tx)).await
    }
    /// Enrols a batch with one durable commit; returns the ids once all are
    /// durable. Stops at the first invalid enrolment (those before it are kept).
    pub async fn enrol_many(&self, batch: Vec<Enrolment>) -> Result<Vec<u64>, NodeError> {
        self.ask(|tx| Command::EnrolMany(batch, tx)).await
    }
    pub async fn publish_alert(
        &self,
        template: Template,
        category: Category,
        case_ref: String,
        expires_at_ms: u64,
    ) -> Result<AlertId, NodeError> {
        self.ask(|reply| Command::Publish { template: Box::new(template), category, case_ref, expires_at_ms, reply })
            .await
    }
    pub async fn withdraw(&self, id: AlertId) -> Result<(), NodeError> {
        self.ask(|tx| Command::Withdraw(id, tx)).await
    }
    /// Applies a newer, validly signed roster; returns its version.
    pub async fn apply_roster(&self, r: SignedRoster) -> Result<u64, NodeError> {
        self.ask(|tx| Command::ApplyRoster(Box::new(r), tx)).await
    }
    pub async fn alerts(&self) -> Result<Vec<AlertView>, NodeError> {
        self.ask(Command::Alerts).await
    }
    /// Erases a record (right to erasure): gone from memory, from every
    /// reference, and from the files (the store is compacted).
    pub async fn erase(&self, record: u64, reason: String) -> Result<(), NodeError> {
        self.ask(|reply| Command::Erase { record, reason, reply }).await
    }
    /// Writes a sealed, consistent backup of the node's data directory to
    /// `out`; returns its size in bytes.
    pub async fn backup(&self, out: std::path::PathBuf) -> Result<u64, NodeError> {
        self.ask(|reply| Command::Backup { out, reply }).await
    }
    /// Enrolled records as operators see them (never the templates).
    pub async fn records(&self) -> Result<Vec<RecordView>, NodeError> {
        self.ask(Command::Records).await
    }
    pub async fn hits(&self) -> Result<Vec<StoredHit>, NodeError> {
        self.ask(Command::Hits).await
    }
    /// Verifies the audit chain; `Ok(Err(..))` names the broken entry.
    pub async fn audit_verify(&self) -> Result<Result<usize, AuditError>, NodeError> {
        self.ask(Command::AuditVerify).await
    }
    pub async fn audit_export(&self) -> Result<Vec<AuditRecord>, NodeError> {
        self.ask(Command::AuditExport).await
    }
    pub async fn status(&self) -> Result<Status, NodeError> {
        self.ask(Command::Status).await
    }
    /// Asks every connected member whether it knows the person in
    /// `template`, with an encrypted probe; waits for answers until the
    /// configured deadline. Purpose and legal basis are audited at both ends.
    pub async fn identify(
        &self,
        template: Template,
        purpose: String,
        legal_basis: String,
    ) -> Result<IdentifyReport, NodeError> {
        self.ask(|reply| Command::Identify { template: Box::new(template), purpose, legal_basis, reply }).await
    }
    /// Asks the holder of `hit` to disclose its case contact; returns the request id.
    pub async fn request_disclosure(&self, hit: Handle, reason: String) -> Result<Handle, NodeError> {
        self.ask(|reply| Command::RequestDisclosure { hit, reason, reply }).await
    }
    /// Approves (with the contact to disclose) or refuses (`None`) a pending request.
    pub async fn decide_disclosure(&self, id: Handle, contact: Option<String>) -> Result<(), NodeError> {
        self.ask(|reply| Command::DecideDisclosure { id, contact, reply }).await
    }
    /// Disclosure requests at this node, both directions.
    pub async fn disclosures(&self) -> Result<Vec<StoredDisclosure>, NodeError> {
        self.ask(Command::Disclosures).await
    }
    /// Replaces the node's GLWE key for encrypted queries; returns the new key id.
    pub async fn rotate_prober_key(&self) -> Result<String, NodeError> {
        self.ask(Command::RotateProberKey).await
    }
    /// Stops the node after flushing its store.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
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
    /// When each refused peer (or address) was last audited.
    refusals_audited: HashMap<String, u64>,
    listen: Vec<Multiaddr>,
    /// Operators waiting for the report of a query this node sent.
    query_replies: HashMap<Handle, Reply<IdentifyReport>>,
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
}

/// Starts a node: opens its store, listens, and spawns its event loop.
pub async fn start(opts: NodeOptions) -> Result<NodeHandle, NodeError> {
    #[cfg(feature = "drill")]
    let NodeOptions { config, db_path, seal_key, identity, seed, hooks } = opts;
    #[cfg(not(feature = "drill"))]
    let NodeOptions { config, db_path, seal_key, identity, seed } = opts;
    config.validate().map_err(|e| NodeError::Config(e.to_string()))?;
    let store = Store::open(&db_path, seal_key, identity.clone())?;
    let anchor = trust_anchor(&config)?;
    let epoch_secret = match &config.federation.epoch_secret {
        Some(h) => Some(
            hex::decode(h)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(|| NodeError::Config("federation.epoch_secret must be 64 hex characters".into()))?,
        ),
        None => None,
    };
    let engine = Engine::new(EngineInit {
        identity: identity.clone(),
        anchor,
        policy: config.alerts.clone(),
        queries: config.queries.clone(),
        epoch_secret,
        max_strikes: config.network.max_strikes,
        meta: store.meta()?,
        records: store.records()?,
        alerts: store.alerts()?,
        hits: store.hits()?,
        disclosures: store.disclosures()?,
        answers: store.answers()?,
        max_frame_bytes: config.network.max_frame_bytes,
        sync_bytes_per_hour: config.network.sync_bytes_per_hour,
        seed,
    })?;
    let key = net::keypair(&identity.secret())?;
    let mut registry = prometheus_client::registry::Registry::with_prefix("vigil");
    let metrics = crate::metrics::Metrics::register(&mut registry);
    #[cfg(feature = "drill")]
    let mut swarm = net::tcp_swarm(key, &config.network, &config.queries, &hooks, &mut registry)?;
    #[cfg(not(feature = "drill"))]
    let mut swarm = net::tcp_swarm(key, &config.network, &config.queries, &mut registry)?;
    let mut listeners = Vec::new();
    for a in &config.network.listen {
        let addr: Multiaddr =
            a.parse().map_err(|e: libp2p::multiaddr::Error| NodeError::Listen(a.clone(), e.to_string()))?;
        listeners.push(swarm.listen_on(addr).map_err(|e| NodeError::Listen(a.clone(), e.to_string()))?);
    }
    // Wait until every listener has reported its address.
    let mut listen = Vec::new();
    while listen.len() < config.network.listen.len() {
        match tokio::time::timeout(Duration::from_secs(10), swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => listen.push(address),
            Ok(SwarmEvent::ListenerError { error, .. }) | Ok(SwarmEvent::ListenerClosed { reason: Err(error), .. }) => {
                return Err(NodeError::Listen(format!("{:?}", config.network.listen), error.to_string()))
            }
            Ok(_) => {}
            Err(_) => {
                return Err(NodeError::Listen(format!("{:?}", config.network.listen), "no address after 10 s".into()))
            }
        }
    }
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let handle = NodeHandle {
        tx,
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
        refusals_audited: Default::default(),
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
    };
    rt.audit(AuditEvent::NodeStarted { org: identity.org_id() })?;
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

impl Runtime {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut jobs: mpsc::Receiver<identify::JobDone>) {
        let mut tick = tokio::time::interval(self.config.network.redial_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Retention runs at start and then every `RETENTION_INTERVAL`.
        let mut retention = tokio::time::interval(RETENTION_INTERVAL);
        let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + SYNC_INTERVAL, SYNC_INTERVAL);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut deadlines = tokio::time::interval(std::time::Duration::from_millis(200));
        deadlines.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => {
                    if let Err(e) = self.on_swarm_event(ev) {
                        tracing::error!(org = %self.name, "failed to handle a network event: {e}");
                    }
                }
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown(done)) => {
                        self.stop();
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
                }
            }
        }
        self.stop();
    }

    fn close_listeners(&mut self) {
        for id in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(id);
        }
    }

    fn stop(&mut self) {
        self.close_listeners();
        if let Err(e) = self.store.flush() {
            tracing::error!(org = %self.name, "final flush failed: {e}");
        }
        tracing::info!(org = %self.name, "node stopped");
    }

    fn audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.store.audit(now_ms(), event).map(|_| ())
    }

    /// Applies actions in order. Writes and audit entries are gathered and
    /// made durable together (one flush) before any action that leaves the
    /// node, so nothing is sent or acknowledged before it is on disk.
    fn apply(&mut self, actions: Vec<Action>) -> Result<(), NodeError> {
        self.apply_with(actions, false)
    }

    /// As `apply`; with `lazy`, the writes after the last action that
    /// leaves the node are not flushed now (sled's periodic flush or the
    /// next commit makes them durable). Only for gossip and peers'
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
                Action::SendHit { to, notice } => {
                    let handle = notice.body.handle;
                    match encode(Tag::Request, &Request::Hit(notice), self.config.network.max_frame_bytes) {
                        Ok(frame) => self.send_request(to, frame, Some(handle)),
                        Err(e) => tracing::error!("cannot encode hit notice: {e}"),
                    }
                }
                Action::Send { to, request, key } => {
                    match encode(Tag::Request, &request, self.config.network.max_frame_bytes) {
                        Ok(frame) => self.send_request(to, frame, Some(key)),
                        Err(e) => tracing::error!("cannot encode a request: {e}"),
                    }
                }
                Action::AnswerAlert(job) => self.spawn_alert_job(job),
                Action::FetchProbe { to, alert, chunks } => self.send_fetch(to, alert, chunks),
                Action::RosterChanged => self.roster_changed()?,
                Action::Block(org) => {
                    if let Ok(p) = net::peer_id(&org) {
                        tracing::warn!(org = %self.name, peer = %p, "blocking peer after repeated violations");
                        self.metrics.blocked.inc();
                        self.swarm.behaviour_mut().block.block_peer(p);
                    }
                }
            }
        }
        if lazy {
            self.store.commit_unflushed(&writes, now_ms(), audits)?;
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
        let start = std::time::Instant::now();
        self.store.commit(writes, now_ms(), audits)?;
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

    /// Allows the roster's members (and only them) and notes whom to dial.
    fn sync_allow_list(&mut self) {
        let Some(r) = self.engine.roster() else { return };
        let me = self.engine.org();
        // A member nobody can dial (no listed address) dials everyone itself.
        let listed = r.body().members.iter().any(|m| m.org == me && !m.addrs.is_empty());
        // Decoding a member's key is not free: done once per roster, not per redial.
        self.dial_targets = r
            .body()
            .members
            .iter()
            .filter(|m| m.org != me && !m.addrs.is_empty())
            .filter_map(|m| {
                let addrs = m.addrs.iter().filter_map(|a| a.parse().ok()).collect();
                Some((net::peer_id(&m.org).ok()?, addrs, !listed || me < m.org))
            })
            .collect();
        let members: Vec<PeerId> = r.body().members.iter().filter_map(|m| net::peer_id(&m.org).ok()).collect();
        let allow = &mut self.swarm.behaviour_mut().allow;
        let current: Vec<PeerId> = allow.allowed_peers().iter().copied().collect();
        for p in current {
            if !members.contains(&p) {
                allow.disallow_peer(p);
            }
        }
        for p in members {
            allow.allow_peer(p);
        }
    }

    /// Dials every roster member we are not connected to. Of two listed
    /// members, the lower OrgId dials first; the other dials only after the
    /// member stayed unconnected for `DEFER_TICKS` redial ticks (`tick`: this
    /// call is one), so each pair does one handshake, not two crossing ones,
    /// and a member that cannot reach the other is still reached.
    fn redial(&mut self, tick: bool) {
        let waited = std::mem::take(&mut self.waited);
        for (peer, addrs, first) in &self.dial_targets {
            let b = self.swarm.behaviour();
            if self.swarm.is_connected(peer) || b.block.blocked_peers().contains(peer) || self.is_cut(peer) {
                continue;
            }
            if !first {
                let w = waited.get(peer).copied().unwrap_or(0) + u32::from(tick);
                self.waited.insert(*peer, w);
                if w < DEFER_TICKS {
                    continue;
                }
            }
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(*peer).addresses(addrs.clone()).build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(org = %self.name, %peer, "dial failed: {e}");
            }
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) -> Result<(), NodeError> {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let now = now_ms();
                let verdict_actions = match net::org_of(&propagation_source) {
                    Some(from) => self.engine.on_gossip(now, from, &message.data, self.config.network.max_gossip_bytes),
                    None => (Verdict::Reject("non-ed25519 peer".into()), vec![]),
                };
                let (verdict, actions) = verdict_actions;
                self.apply_with(actions, true)?;
                let label = match &verdict {
                    Verdict::Accept => "accept",
                    Verdict::Ignore(_) => "ignore",
                    Verdict::Reject(_) => "reject",
                };
                self.metrics.gossip.get_or_create(&crate::metrics::Verdict { verdict: label }).inc();
                let acceptance = match &verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Ignore(_) => gossipsub::MessageAcceptance::Ignore,
                    Verdict::Reject(reason) => {
                        tracing::warn!(org = %self.name, from = %propagation_source, "rejected gossip: {reason}");
                        gossipsub::MessageAcceptance::Reject
                    }
                };
                self.swarm.behaviour_mut().gossip.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
            }
            SwarmEvent::Behaviour(BehaviourEvent::Req(request_response::Event::Message { peer, message, .. })) => {
                let Some(from) = net::org_of(&peer) else { return Ok(()) };
                match message {
                    request_response::Message::Request { request: net::Frame::Oversized(len), channel, .. } => {
                        let reason =
                            format!("{}: {len} bytes, limit {}", net::OVERSIZED, self.config.network.max_frame_bytes);
                        tracing::warn!(org = %self.name, %peer, "rejected frame: {reason}");
                        let actions = self.engine.violation(from, &reason);
                        self.apply(actions)?;
                        let frame = encode(Tag::Response, &Response::Refused(vigil_protocol::Refusal::Malformed), 64)
                            .expect("tiny");
                        let _ = self.swarm.behaviour_mut().req.send_response(channel, frame);
                    }
                    request_response::Message::Request { request: net::Frame::Data(request), channel, .. } => {
                        self.on_request_frame(from, &request, channel)?;
                    }
                    request_response::Message::Response { request_id, response } => {
                        self.request_ended(&peer);
                        if let Some(h) = self.pending.remove(&request_id) {
                            self.in_flight.remove(&h);
                            match vigil_protocol::decode::<Response>(
                                Tag::Response,
                                &response,
                                self.config.network.max_frame_bytes,
                            ) {
                                Ok(r) => {
                                    if r == Response::Ack {
                                        self.retry.forget(&h);
                                    }
                                    // A peer's response acknowledges our request; what it
                                    // changes here (delivered flags, pulled log entries)
                                    // acknowledges nothing and a crash only repeats it, so
                                    // it need not wait for a flush (writes before anything
                                    // this sends still do).
                                    let actions = self.engine.on_response(now_ms(), h, &r);
                                    self.apply_with(actions, true)?;
                                }
                                Err(e) => {
                                    let reason = format!("undecodable response: {e}");
                                    let actions = self.engine.violation(from, &reason);
                                    self.apply(actions)?;
                                }
                            }
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Req(request_response::Event::OutboundFailure {
                request_id,
                peer,
                error,
                ..
            })) => {
                self.request_ended(&peer);
                if let Some(h) = self.pending.remove(&request_id) {
                    self.in_flight.remove(&h);
                    self.engine.request_failed(h);
                }
                tracing::debug!(org = %self.name, %peer, "request failed: {error}");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Req(request_response::Event::InboundFailure {
                peer, error, ..
            })) => {
                tracing::debug!(org = %self.name, %peer, "inbound request failed: {error}");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(ev)) => self.on_identify_event(ev)?,
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error: libp2p::swarm::ListenError::Denied { cause },
                peer_id,
                ..
            } => {
                let peer = peer_id.map(|p| p.to_string()).unwrap_or_else(|| send_back_addr.to_string());
                tracing::warn!(org = %self.name, %peer, "refused connection: {cause}");
                self.audit_refusal(peer, refusal_reason(&cause))?;
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => self.peer_gone(&peer_id),
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                tracing::debug!(org = %self.name, peer = %peer_id, "connected");
                // Catch up on alert logs with every member we (re)connect to.
                if let (Some(org), 1) = (net::org_of(&peer_id), num_established.get()) {
                    let actions = self.engine.sync_start(org);
                    self.apply(actions)?;
                    // What waits for this peer may go at once.
                    let keys: Vec<Handle> =
                        self.engine.outbox_entries().into_iter().filter(|m| m.0 == org).map(|m| m.1).collect();
                    self.retry.reset(keys);
                }
                self.resend_hits();
            }
            _ => {}
        }
        Ok(())
    }
}

fn refusal_reason(cause: &libp2p::swarm::ConnectionDenied) -> String {
    if cause.downcast_ref::<libp2p::allow_block_list::NotAllowed>().is_some() {
        "not a roster member".into()
    } else if cause.downcast_ref::<libp2p::allow_block_list::Blocked>().is_some() {
        "blocked after protocol violations".into()
    } else {
        cause.to_string()
    }
}
