//! The node's operators: the people who log in to the console, each with
//! one role, an argon2id password hash (made and checked by the node, off
//! the event loop) and a lock-out after failed logins in a row. Every
//! change and every login is an audit entry naming the operator.

use crate::audit::AuditEvent;
use crate::model::StoreOp;
use crate::Action;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest operator name.
pub const MAX_NAME_CHARS: usize = 64;

/// What an operator may do. One role each; an admin may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Enrols people (with consent), publishes and withdraws alerts, asks
    /// for disclosure of hits, runs case-bound identification.
    CaseWorker,
    /// Decides disclosure requests (first or second approval), and what a
    /// case worker may.
    Approver,
    /// Reads everything, verifies and exports the audit log; changes nothing.
    Auditor,
    /// Everything, operators included.
    Admin,
}

/// Something the console lets an operator do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// See cases, hits, records, federation and health.
    Read,
    /// Enrol, erase, publish and withdraw alerts, identify, ask disclosure.
    Casework,
    /// Approve or refuse a disclosure request.
    Decide,
    /// Verify and export the audit log.
    Audit,
}

impl Role {
    pub fn may(self, act: Act) -> bool {
        matches!(
            (self, act),
            (Role::Admin, _)
                | (_, Act::Read)
                | (Role::CaseWorker, Act::Casework)
                | (Role::Approver, Act::Casework | Act::Decide)
                | (Role::Auditor, Act::Audit)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::CaseWorker => "case_worker",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().replace('-', "_").as_str() {
            "case_worker" => Ok(Role::CaseWorker),
            "approver" => Ok(Role::Approver),
            "auditor" => Ok(Role::Auditor),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?} (case_worker, approver, auditor or admin)")),
        }
    }
}

/// The console's languages.
pub const LANGUAGES: &[&str] = &["en", "fr"];

/// An operator as stored (sealed, as every value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOperator {
    pub name: String,
    pub role: Role,
    /// argon2id PHC string.
    pub password: String,
    pub disabled: bool,
    /// Failed logins since the last success or lock-out.
    pub failures: u32,
    /// Logins are refused until then (Unix ms; 0: not locked).
    pub locked_until_ms: u64,
    /// The console's language for this operator (`LANGUAGES`).
    pub language: String,
    pub created_at_ms: u64,
    pub password_set_at_ms: u64,
}

/// What an operator listing shows: never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorView {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub locked_until_ms: u64,
    pub language: String,
    pub created_at_ms: u64,
    /// When the password was last set: sessions opened before end.
    #[serde(default)]
    pub password_set_at_ms: u64,
}

impl From<&StoredOperator> for OperatorView {
    fn from(o: &StoredOperator) -> Self {
        Self {
            name: o.name.clone(),
            role: o.role,
            disabled: o.disabled,
            locked_until_ms: o.locked_until_ms,
            language: o.language.clone(),
            created_at_ms: o.created_at_ms,
            password_set_at_ms: o.password_set_at_ms,
        }
    }
}

/// Why an operator change or a login is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    #[error("operator names are 1 to {MAX_NAME_CHARS} letters, digits, '.', '-' or '_' (got {0:?})")]
    BadName(String),
    #[error("operator {0:?} exists already")]
    Exists(String),
    #[error("no operator {0:?}")]
    Unknown(String),
    #[error("unknown language {0:?} (one of: en, fr)")]
    Language(String),
    #[error("operator {0:?} is disabled")]
    Disabled(String),
    #[error("operator {name:?} is locked out after failed logins until {until}")]
    Locked { name: String, until: String },
    #[error("wrong operator name or password")]
    BadLogin,
    #[error("{0}")]
    Password(String),
}

/// The lock-out rule: `max_failures` in a row lock an operator for `lockout_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub max_failures: u32,
    pub lockout_ms: u64,
}

/// Every operator of the node, by name.
#[derive(Debug, Default)]
pub struct Operators {
    by_name: BTreeMap<String, StoredOperator>,
    lockout: Option<Lockout>,
    /// Logins under names no operator has: when last audited, the
    /// attempts since then, and the latest name tried.
    unknown: (Option<u64>, u64, String),
}

/// Logins under unknown names are audited at most once per this interval
/// (the names are whatever a caller types: no disk per attempt).
pub const UNKNOWN_LOGIN_AUDIT_MS: u64 = 60_000;
/// Longest unknown login name kept in the audit.
const MAX_UNKNOWN_NAME_CHARS: usize = 64;

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.chars().count())
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

impl Operators {
    pub fn new(stored: Vec<StoredOperator>, lockout: Lockout) -> Self {
        Self {
            by_name: stored.into_iter().map(|o| (o.name.clone(), o)).collect(),
            lockout: Some(lockout),
            unknown: (None, 0, String::new()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&StoredOperator> {
        self.by_name.get(name)
    }

    pub fn list(&self) -> impl Iterator<Item = &StoredOperator> {
        self.by_name.values()
    }

    fn put(&mut self, o: StoredOperator, event: AuditEvent) -> Vec<Action> {
        self.by_name.insert(o.name.clone(), o.clone());
        vec![Action::Store(StoreOp::PutOperator(Box::new(o))), Action::Audit(event)]
    }

    fn existing(&self, name: &str) -> Result<StoredOperator, OperatorError> {
        self.by_name.get(name).cloned().ok_or_else(|| OperatorError::Unknown(name.into()))
    }

    /// A new operator with the password hash `password` (argon2id PHC).
    pub fn add(
        &mut self,
        now_ms: u64,
        name: &str,
        role: Role,
        password: String,
        language: &str,
    ) -> Result<Vec<Action>, OperatorError> {
        if !valid_name(name) {
            return Err(OperatorError::BadName(name.into()));
        }
        if self.by_name.contains_key(name) {
            return Err(OperatorError::Exists(name.into()));
        }
        if !LANGUAGES.contains(&language) {
            return Err(OperatorError::Language(language.into()));
        }
        let o = StoredOperator {
            name: name.into(),
            role,
            password,
            disabled: false,
            failures: 0,
            locked_until_ms: 0,
            language: language.into(),
            created_at_ms: now_ms,
            password_set_at_ms: now_ms,
        };
        Ok(self.put(o, AuditEvent::OperatorAdded { name: name.into(), role: role.as_str().into() }))
    }

    /// Disables an operator: no further login, and its sessions end.
    pub fn disable(&mut self, name: &str) -> Result<Vec<Action>, OperatorError> {
        let mut o = self.existing(name)?;
        o.disabled = true;
        Ok(self.put(o, AuditEvent::OperatorDisabled { name: name.into() }))
    }

    /// A new password hash; ends a lock-out.
    pub fn set_password(&mut self, now_ms: u64, name: &str, password: String) -> Result<Vec<Action>, OperatorError> {
        let mut o = self.existing(name)?;
        o.password = password;
        o.password_set_at_ms = now_ms;
        o.failures = 0;
        o.locked_until_ms = 0;
        Ok(self.put(o, AuditEvent::OperatorPasswordSet { name: name.into() }))
    }

    /// The console's language for an operator.
    pub fn set_language(&mut self, name: &str, language: &str) -> Result<Vec<Action>, OperatorError> {
        if !LANGUAGES.contains(&language) {
            return Err(OperatorError::Language(language.into()));
        }
        let mut o = self.existing(name)?;
        o.language = language.into();
        self.by_name.insert(name.into(), o.clone());
        Ok(vec![Action::Store(StoreOp::PutOperator(Box::new(o)))])
    }

    /// The operator whose password a login is to be checked against, or
    /// why no check is made (unknown, disabled, locked out).
    pub fn login_candidate(&self, now_ms: u64, name: &str) -> Result<&StoredOperator, OperatorError> {
        let o = self.by_name.get(name).ok_or_else(|| OperatorError::Unknown(name.into()))?;
        if o.disabled {
            return Err(OperatorError::Disabled(name.into()));
        }
        if now_ms < o.locked_until_ms {
            return Err(OperatorError::Locked { name: name.into(), until: rfc3339(o.locked_until_ms) });
        }
        Ok(o)
    }

    /// A login's outcome for a known operator, audited; failures in a row
    /// up to the lock-out rule lock the operator out.
    pub fn login_outcome(&mut self, now_ms: u64, name: &str, ok: bool) -> Result<Vec<Action>, OperatorError> {
        let mut o = self.existing(name)?;
        if ok {
            o.failures = 0;
            return Ok(self.put(o, AuditEvent::OperatorLoggedIn { name: name.into() }));
        }
        o.failures += 1;
        let rule = self.lockout.unwrap_or(Lockout { max_failures: 5, lockout_ms: 15 * 60_000 });
        if o.failures >= rule.max_failures {
            o.failures = 0;
            o.locked_until_ms = now_ms + rule.lockout_ms;
            let until = o.locked_until_ms;
            return Ok(self.put(o, AuditEvent::OperatorLocked { name: name.into(), until_ms: until }));
        }
        let failures = o.failures;
        Ok(self.put(o, AuditEvent::OperatorLoginFailed { name: name.into(), failures }))
    }

    /// A login under `name`, which no operator has: audited with the name
    /// (cut to 64 printable characters) at most once a minute, that entry
    /// counting the attempts since the last one (a password spray leaves a
    /// trace without costing a disk write per guess); attempts left over
    /// are audited by `unknown_logins_due`.
    pub fn unknown_login(&mut self, now_ms: u64, name: &str) -> Vec<Action> {
        let (_, pending, latest) = &mut self.unknown;
        *pending += 1;
        *latest = name.chars().map(|c| if c.is_control() { '?' } else { c }).take(MAX_UNKNOWN_NAME_CHARS).collect();
        self.unknown_logins_due(now_ms)
    }

    /// The audit entry of unknown-name logins not yet audited, once a
    /// minute has passed since the last one (call it now and then).
    pub fn unknown_logins_due(&mut self, now_ms: u64) -> Vec<Action> {
        let (last, pending, latest) = &mut self.unknown;
        if *pending == 0 || last.is_some_and(|t| now_ms < t.saturating_add(UNKNOWN_LOGIN_AUDIT_MS)) {
            return vec![];
        }
        *last = Some(now_ms);
        let attempts = std::mem::take(pending);
        vec![Action::Audit(AuditEvent::OperatorLoginUnknown { name: latest.clone(), attempts })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> Operators {
        let mut o = Operators::new(vec![], Lockout { max_failures: 3, lockout_ms: 60_000 });
        o.add(0, "amira", Role::CaseWorker, "$argon2id$x".into(), "fr").unwrap();
        o
    }

    #[test]
    fn unknown_login_names_are_audited_at_most_once_a_minute_with_a_count() {
        let mut o = ops();
        let audited = |a: Vec<Action>| match &a[..] {
            [Action::Audit(AuditEvent::OperatorLoginUnknown { name, attempts })] => Some((name.clone(), *attempts)),
            [] => None,
            other => panic!("{other:?}"),
        };
        assert_eq!(audited(o.unknown_login(0, "admin")), Some(("admin".into(), 1)));
        for t in 1..100 {
            assert_eq!(audited(o.unknown_login(t, "root")), None, "within the minute: counted only");
        }
        let long = format!("x\u{7}{}", "y".repeat(200));
        let (name, attempts) = audited(o.unknown_login(UNKNOWN_LOGIN_AUDIT_MS, &long)).unwrap();
        assert_eq!((name.chars().count(), name.starts_with("x?"), attempts), (64, true, 100));
        // A burst that stops is audited by the periodic check, once due.
        assert_eq!(audited(o.unknown_login(UNKNOWN_LOGIN_AUDIT_MS + 1, "guest")), None);
        assert_eq!(audited(o.unknown_logins_due(UNKNOWN_LOGIN_AUDIT_MS + 2)), None, "not yet a minute");
        assert_eq!(audited(o.unknown_logins_due(2 * UNKNOWN_LOGIN_AUDIT_MS)), Some(("guest".into(), 1)));
        assert_eq!(audited(o.unknown_logins_due(9 * UNKNOWN_LOGIN_AUDIT_MS)), None, "nothing left");
    }

    #[test]
    fn failures_in_a_row_lock_out_until_the_time_or_a_new_password() {
        let mut o = ops();
        assert!(o.login_candidate(10, "amira").is_ok());
        o.login_outcome(10, "amira", false).unwrap();
        o.login_outcome(11, "amira", true).unwrap();
        // A success resets the count: three more failures are needed.
        for t in 12..14 {
            o.login_outcome(t, "amira", false).unwrap();
        }
        assert!(o.login_candidate(14, "amira").is_ok());
        let locked = o.login_outcome(14, "amira", false).unwrap();
        assert!(locked.iter().any(|a| matches!(a, Action::Audit(AuditEvent::OperatorLocked { until_ms: 60_014, .. }))));
        assert!(matches!(o.login_candidate(60_013, "amira"), Err(OperatorError::Locked { .. })));
        assert!(o.login_candidate(60_014, "amira").is_ok());
        o.login_outcome(60_020, "amira", false).unwrap();
        o.login_outcome(60_021, "amira", false).unwrap();
        o.login_outcome(60_022, "amira", false).unwrap();
        assert!(o.login_candidate(60_023, "amira").is_err());
        o.set_password(60_030, "amira", "$argon2id$y".into()).unwrap();
        assert!(o.login_candidate(60_031, "amira").is_ok());
    }

    #[test]
    fn names_languages_duplicates_and_disabled_operators_are_refused() {
        let mut o = ops();
        assert_eq!(o.add(0, "amira", Role::Admin, "h".into(), "en"), Err(OperatorError::Exists("amira".into())));
        assert!(matches!(o.add(0, "a b", Role::Admin, "h".into(), "en"), Err(OperatorError::BadName(_))));
        assert!(matches!(o.add(0, "", Role::Admin, "h".into(), "en"), Err(OperatorError::BadName(_))));
        assert!(matches!(o.add(0, "<b>", Role::Admin, "h".into(), "en"), Err(OperatorError::BadName(_))));
        assert!(matches!(o.add(0, "bo", Role::Admin, "h".into(), "de"), Err(OperatorError::Language(_))));
        o.disable("amira").unwrap();
        assert_eq!(o.login_candidate(0, "amira"), Err(OperatorError::Disabled("amira".into())));
        assert!(matches!(o.login_candidate(0, "nobody"), Err(OperatorError::Unknown(_))));
    }

    #[test]
    fn roles_allow_what_their_work_needs_and_no_more() {
        assert!(Role::CaseWorker.may(Act::Casework) && !Role::CaseWorker.may(Act::Decide));
        assert!(Role::Approver.may(Act::Decide) && !Role::Approver.may(Act::Audit));
        assert!(Role::Auditor.may(Act::Audit) && !Role::Auditor.may(Act::Casework));
        assert!(Role::Auditor.may(Act::Read) && Role::Admin.may(Act::Decide));
        assert_eq!("case-worker".parse::<Role>(), Ok(Role::CaseWorker));
    }
}
