//! Changes to a stopped node's data directory that an administrator makes
//! before the node runs (the first console operator, a new password for a
//! locked-out one): applied to its store directly, audited as the running
//! node would audit them.

use crate::store::{Store, StoreError};
use vigil_engine::model::StoreOp;
use vigil_engine::operators::{Lockout, OperatorError, Operators};
use vigil_engine::Action;

/// Why an offline change failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Operator(#[from] OperatorError),
}

/// Applies `change` to the operators of the stopped store `store`, and
/// commits what it decided (the writes and their audit entries) durably.
pub fn change_operators(
    store: &Store,
    change: impl FnOnce(&mut Operators) -> Result<Vec<Action>, OperatorError>,
) -> Result<(), OfflineError> {
    let mut operators = Operators::new(store.operators()?, Lockout { max_failures: u32::MAX, lockout_ms: 0 });
    let mut writes: Vec<StoreOp> = Vec::new();
    let mut audits = Vec::new();
    for action in change(&mut operators)? {
        match action {
            Action::Store(op) => writes.push(op),
            Action::Audit(e) => audits.push(e),
            _ => {}
        }
    }
    store.commit(&writes, crate::now_ms(), audits)?;
    Ok(())
}
