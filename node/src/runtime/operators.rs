//! Operators at the runtime: their commands on the event loop, and the
//! handle's side, where passwords are hashed and checked on blocking
//! threads (argon2id at 64 MiB: two at a time at most), never on the loop.
//! A handle `acting` for an operator makes every audit entry of its
//! commands name that operator.

use super::*;
use vigil_engine::operators::{OperatorError, OperatorView, Role, StoredOperator};

/// Commands about operators.
pub(super) enum OperatorCommand {
    List(Reply<Vec<OperatorView>>),
    Add {
        name: String,
        role: Role,
        password: String,
        language: String,
        reply: Reply<()>,
    },
    Disable(String, Reply<()>),
    SetPassword {
        name: String,
        password: String,
        reply: Reply<()>,
    },
    SetLanguage {
        name: String,
        language: String,
        reply: Reply<()>,
    },
    /// The operator a login checks its password against.
    Candidate(String, Reply<StoredOperator>),
    Outcome {
        name: String,
        ok: bool,
        reply: Reply<()>,
    },
    /// A login under a name no operator has (audited at most once a minute).
    UnknownLogin(String, Reply<()>),
}

impl Runtime {
    pub(super) fn on_operator_command(&mut self, cmd: OperatorCommand) {
        let now = now_ms();
        match cmd {
            OperatorCommand::List(reply) => {
                let _ = reply.send(Ok(self.operators.list().map(OperatorView::from).collect()));
            }
            OperatorCommand::Add { name, role, password, language, reply } => {
                let r = self.operators.add(now, &name, role, password, &language);
                let _ = reply.send(self.operator_durable(r));
            }
            OperatorCommand::Disable(name, reply) => {
                let r = self.operators.disable(&name);
                let _ = reply.send(self.operator_durable(r));
            }
            OperatorCommand::SetPassword { name, password, reply } => {
                let r = self.operators.set_password(now, &name, password);
                let _ = reply.send(self.operator_durable(r));
            }
            OperatorCommand::SetLanguage { name, language, reply } => {
                let r = self.operators.set_language(&name, &language);
                let _ = reply.send(self.operator_durable(r));
            }
            OperatorCommand::Candidate(name, reply) => {
                let r = self.operators.login_candidate(now, &name).cloned();
                let _ = reply.send(r.map_err(NodeError::from));
            }
            OperatorCommand::Outcome { name, ok, reply } => {
                let r = self.operators.login_outcome(now, &name, ok);
                let _ = reply.send(self.operator_durable(r));
            }
            OperatorCommand::UnknownLogin(name, reply) => {
                let actions = self.operators.unknown_login(now, &name);
                let _ = reply.send(self.apply(actions));
            }
        }
    }

    fn operator_durable(&mut self, r: Result<Vec<Action>, OperatorError>) -> Result<(), NodeError> {
        self.apply(r?)
    }

    /// `event` as the audit log records it: under the operator whose
    /// command this is, if any.
    pub(super) fn attributed(&self, event: AuditEvent) -> AuditEvent {
        match &self.actor {
            Some(operator) => AuditEvent::ByOperator { operator: operator.to_string(), event: Box::new(event) },
            None => event,
        }
    }
}

/// Logins checking a password at once (each argon2id check takes 64 MiB).
const LOGIN_SLOTS: usize = 2;

fn login_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(LOGIN_SLOTS))
}

/// A hash to check unknown names against, so that a login for a name that
/// does not exist takes as long as one with a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| vigil_crypto::hash_password("no operator has this password").expect("a valid password"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| NodeError::Stopped)
}

fn hashed(password: String) -> impl FnOnce() -> Result<String, NodeError> {
    move || {
        vigil_crypto::hash_password(&password).map_err(|e| NodeError::Operator(OperatorError::Password(e.to_string())))
    }
}

impl NodeHandle {
    /// This handle, with every audit entry of its commands naming `operator`.
    pub fn acting(&self, operator: &str) -> NodeHandle {
        NodeHandle { actor: Some(operator.into()), ..self.clone() }
    }

    async fn operator_command<T>(&self, f: impl FnOnce(Reply<T>) -> OperatorCommand) -> Result<T, NodeError> {
        self.ask(|reply| Command::Operator(f(reply))).await
    }

    pub async fn operators(&self) -> Result<Vec<OperatorView>, NodeError> {
        self.operator_command(OperatorCommand::List).await
    }

    /// Adds an operator; the password is checked against the policy and hashed here.
    pub async fn add_operator(
        &self,
        name: &str,
        role: Role,
        password: String,
        language: &str,
    ) -> Result<(), NodeError> {
        let password = blocking(hashed(password)).await??;
        let (name, language) = (name.to_string(), language.to_string());
        self.operator_command(|reply| OperatorCommand::Add { name, role, password, language, reply }).await
    }

    pub async fn disable_operator(&self, name: &str) -> Result<(), NodeError> {
        let name = name.to_string();
        self.operator_command(|reply| OperatorCommand::Disable(name, reply)).await
    }

    /// A new password for an operator (ends a lock-out).
    pub async fn set_operator_password(&self, name: &str, password: String) -> Result<(), NodeError> {
        let password = blocking(hashed(password)).await??;
        let name = name.to_string();
        self.operator_command(|reply| OperatorCommand::SetPassword { name, password, reply }).await
    }

    pub async fn set_operator_language(&self, name: &str, language: &str) -> Result<(), NodeError> {
        let (name, language) = (name.to_string(), language.to_string());
        self.operator_command(|reply| OperatorCommand::SetLanguage { name, language, reply }).await
    }

    /// The operator `name`, if it may use the console now (exists, not
    /// disabled, not locked out).
    pub async fn active_operator(&self, name: &str) -> Result<OperatorView, NodeError> {
        let name = name.to_string();
        let o = self.operator_command(|reply| OperatorCommand::Candidate(name, reply)).await?;
        Ok(OperatorView::from(&o))
    }

    /// Checks a login. Wrong passwords count towards the lock-out; an
    /// unknown name costs the same time as a wrong password and gets the
    /// same answer.
    pub async fn login(&self, name: &str, password: &str) -> Result<OperatorView, NodeError> {
        let _slot = login_slots().acquire().await.map_err(|_| NodeError::Stopped)?;
        let owned = name.to_string();
        let candidate = self.operator_command(|reply| OperatorCommand::Candidate(owned, reply)).await;
        let (phc, known) = match candidate {
            Ok(o) => (o.password.clone(), Some(o)),
            Err(NodeError::Operator(OperatorError::Unknown(_))) => (decoy_hash().to_string(), None),
            Err(e) => return Err(e),
        };
        let given = password.to_string();
        let ok = blocking(move || vigil_crypto::verify_password(&given, &phc).unwrap_or(false)).await?;
        let Some(o) = known else {
            let owned = name.to_string();
            self.operator_command(|reply| OperatorCommand::UnknownLogin(owned, reply)).await?;
            return Err(OperatorError::BadLogin.into());
        };
        let name = o.name.clone();
        self.operator_command(|reply| OperatorCommand::Outcome { name, ok, reply }).await?;
        if ok {
            Ok(OperatorView::from(&o))
        } else {
            Err(OperatorError::BadLogin.into())
        }
    }
}

impl NodeHandle {
    /// Approves (with `contact`) or refuses disclosure `id` as two
    /// operators in turn: the second is asked only where the four-eyes rule
    /// left the request waiting for a second approver (drills, the demo).
    pub async fn decide_disclosure_by(
        &self,
        id: Handle,
        contact: Option<String>,
        operators: [&str; 2],
    ) -> Result<(), NodeError> {
        self.acting(operators[0]).decide_disclosure(id, contact.clone()).await?;
        let waiting = self
            .disclosures()
            .await?
            .iter()
            .any(|d| d.id == id && d.status == vigil_engine::model::DisclosureStatus::Pending);
        if waiting {
            self.acting(operators[1]).decide_disclosure(id, contact).await?;
        }
        Ok(())
    }
}
