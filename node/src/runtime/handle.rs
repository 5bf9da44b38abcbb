//! The node's handle: a cheap, cloneable sender of `Command`s to the event
//! loop, one async method per operator command, each answered on a reply
//! channel once the work it asked for is durable.

use super::*;

pub(super) type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

pub(super) enum Command {
    Enrol(Box<Enrolment>, Reply<u64>),
    EnrolMany(Vec<Enrolment>, Reply<Vec<u64>>),
    Publish {
        template: Box<Template>,
        pad: Option<Box<vigil_engine::PadClaim>>,
        category: Category,
        case_ref: String,
        expires_at_ms: u64,
        reply: Reply<AlertId>,
    },
    Withdraw(AlertId, Reply<()>),
    ApplyRoster(Box<SignedRoster>, Reply<u64>),
    ApplyPolicy(Box<vigil_protocol::SignedPolicy>, Reply<u64>),
    Policy(Reply<crate::views::PolicyView>),
    Alerts(Reply<Vec<AlertView>>),
    AlertMembers(AlertId, Reply<Vec<MemberStatus>>),
    Records(Reply<Vec<RecordView>>),
    Erase {
        record: u64,
        reason: String,
        reply: Reply<()>,
    },
    Backup {
        name: String,
        reply: Reply<(std::path::PathBuf, u64)>,
    },
    Hits(Reply<Vec<StoredHit>>),
    HitViews(Reply<Vec<crate::views::HitView>>),
    AuditVerify(Reply<Result<usize, AuditError>>),
    AuditExport(Reply<Vec<AuditRecord>>),
    AuditReader(Reply<crate::store::AuditReader>),
    Status(Reply<Status>),
    Identify {
        template: Box<Template>,
        pad: Option<Box<vigil_engine::PadClaim>>,
        purpose: String,
        legal_basis: String,
        /// This node's own case (alert) the query is made for.
        case: Option<AlertId>,
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
    Operator(super::operators::OperatorCommand),
    Roster(Reply<Option<SignedRoster>>),
    /// A command of a console operator: its audit entries name them.
    As(Arc<str>, Box<Command>),
    Shutdown(oneshot::Sender<()>),
    #[cfg(feature = "drill")]
    Drill(drill::DrillCommand),
}

/// A cheap, cloneable handle to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub(super) tx: mpsc::Sender<Command>,
    /// The operator this handle acts for (`acting`), if any.
    pub(super) actor: Option<Arc<str>>,
    pub org: OrgId,
    pub peer_id: PeerId,
    pub listen: Vec<Multiaddr>,
    /// Its metrics (`GET /v1/metrics`).
    pub metrics: Arc<crate::metrics::NodeMetrics>,
}

impl NodeHandle {
    /// Sends a command to the event loop and waits for its answer.
    pub(super) async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        let command = match &self.actor {
            Some(operator) => Command::As(operator.clone(), Box::new(command(tx))),
            None => command(tx),
        };
        self.tx.send(command).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }
    /// Resolves when the node's event loop has ended (shut down, or
    /// stopped itself after a failed durable write).
    pub async fn stopped(&self) {
        self.tx.closed().await
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
        self.publish_attested(template, None, category, case_ref, expires_at_ms).await
    }
    /// `publish_alert` with the capture's PAD attestation (checked under
    /// the policy's liveness rules; required where they say).
    pub async fn publish_attested(
        &self,
        template: Template,
        pad: Option<vigil_engine::PadClaim>,
        category: Category,
        case_ref: String,
        expires_at_ms: u64,
    ) -> Result<AlertId, NodeError> {
        let (template, pad) = (Box::new(template), pad.map(Box::new));
        self.ask(|reply| Command::Publish { template, pad, category, case_ref, expires_at_ms, reply }).await
    }
    pub async fn withdraw(&self, id: AlertId) -> Result<(), NodeError> {
        self.ask(|tx| Command::Withdraw(id, tx)).await
    }
    /// Applies a newer, validly signed roster; returns its version.
    pub async fn apply_roster(&self, r: SignedRoster) -> Result<u64, NodeError> {
        self.ask(|tx| Command::ApplyRoster(Box::new(r), tx)).await
    }
    /// Applies a newer, validly signed biometric policy; returns its version.
    pub async fn apply_policy(&self, p: vigil_protocol::SignedPolicy) -> Result<u64, NodeError> {
        self.ask(|tx| Command::ApplyPolicy(Box::new(p), tx)).await
    }
    /// The biometric policy in force (signed, or the built-in demo one).
    pub async fn policy(&self) -> Result<crate::views::PolicyView, NodeError> {
        self.ask(Command::Policy).await
    }
    /// The extractors in force: what template files are checked and
    /// normalised against before they reach the node.
    pub async fn biometric(&self) -> Result<Arc<vigil_matcher::Policy>, NodeError> {
        Ok(self.policy().await?.policy)
    }
    pub async fn alerts(&self) -> Result<Vec<AlertView>, NodeError> {
        self.ask(Command::Alerts).await
    }
    /// Where each member stands with one of this node's alerts.
    pub async fn alert_members(&self, id: AlertId) -> Result<Vec<MemberStatus>, NodeError> {
        self.ask(|tx| Command::AlertMembers(id, tx)).await
    }
    /// Erases a record (right to erasure): gone from memory, from every
    /// reference, and from the files (the store is compacted).
    pub async fn erase(&self, record: u64, reason: String) -> Result<(), NodeError> {
        self.ask(|reply| Command::Erase { record, reason, reply }).await
    }
    /// Writes a sealed, consistent backup of the node's data directory as
    /// `name` in its backups directory (never over an existing file);
    /// returns where it went and its size in bytes.
    pub async fn backup(&self, name: String) -> Result<(std::path::PathBuf, u64), NodeError> {
        self.ask(|reply| Command::Backup { name, reply }).await
    }
    /// Enrolled records as operators see them (never the templates).
    pub async fn records(&self) -> Result<Vec<RecordView>, NodeError> {
        self.ask(Command::Records).await
    }
    pub async fn hits(&self) -> Result<Vec<StoredHit>, NodeError> {
        self.ask(Command::Hits).await
    }
    /// Hits with the liveness of this node's side of each (`HitView`).
    pub async fn hit_views(&self) -> Result<Vec<crate::views::HitView>, NodeError> {
        self.ask(Command::HitViews).await
    }
    /// Verifies the audit chain; `Ok(Err(..))` names the broken entry.
    pub async fn audit_verify(&self) -> Result<Result<usize, AuditError>, NodeError> {
        self.ask(Command::AuditVerify).await
    }
    pub async fn audit_export(&self) -> Result<Vec<AuditRecord>, NodeError> {
        self.ask(Command::AuditExport).await
    }
    /// Up to `take` audit entries older than `before` that `keep` accepts,
    /// newest first, read off the event loop (`AuditReader::page`).
    pub async fn audit_page(
        &self,
        before: Option<u64>,
        take: usize,
        keep: impl Fn(&AuditRecord) -> bool + Send + 'static,
    ) -> Result<crate::store::AuditPage, NodeError> {
        let reader = self.ask(Command::AuditReader).await?;
        tokio::task::spawn_blocking(move || reader.page(before, take, keep))
            .await
            .map_err(|_| NodeError::Stopped)?
            .map_err(NodeError::from)
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
        self.identify_for_case(template, purpose, legal_basis, None).await
    }
    /// `identify`, bound (in this node's audit only) to its own case `case`.
    pub async fn identify_for_case(
        &self,
        template: Template,
        purpose: String,
        legal_basis: String,
        case: Option<AlertId>,
    ) -> Result<IdentifyReport, NodeError> {
        self.identify_attested(template, None, purpose, legal_basis, case).await
    }
    /// `identify_for_case` with the capture's PAD attestation.
    pub async fn identify_attested(
        &self,
        template: Template,
        pad: Option<vigil_engine::PadClaim>,
        purpose: String,
        legal_basis: String,
        case: Option<AlertId>,
    ) -> Result<IdentifyReport, NodeError> {
        let (template, pad) = (Box::new(template), pad.map(Box::new));
        self.ask(|reply| Command::Identify { template, pad, purpose, legal_basis, case, reply }).await
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
    /// The roster in force (members, version, steward signatures).
    pub async fn roster(&self) -> Result<Option<SignedRoster>, NodeError> {
        self.ask(Command::Roster).await
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
