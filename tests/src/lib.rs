//! Shared helpers for Vigil's end-to-end tests: waiting on real nodes,
//! reading audit logs, building alerts by hand for the malicious cases,
//! and a wire tap that records every payload a node sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{HitRole, StoredHit};
use vigil_node::federation::wait_for;
use vigil_node::NodeHandle;

/// How long a test waits for something that takes milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Every payload one node sent, as (protocol, bytes). Bounded: a test that
/// sends more than `MAX_TAPPED` payloads fails loudly instead of growing.
#[derive(Clone, Default, Debug)]
pub struct WireLog(Arc<Mutex<Vec<Tapped>>>);

/// One tapped payload: (protocol, bytes).
pub type Tapped = (String, Vec<u8>);

pub const MAX_TAPPED: usize = 100_000;

impl WireLog {
    pub fn tap(&self) -> vigil_node::net::Tap {
        let log = self.0.clone();
        Arc::new(move |proto: &str, bytes: &[u8]| {
            let mut l = log.lock().unwrap();
            assert!(l.len() < MAX_TAPPED, "wire tap overflow");
            l.push((proto.to_string(), bytes.to_vec()));
        })
    }
    pub fn payloads(&self) -> Vec<Tapped> {
        self.0.lock().unwrap().clone()
    }
}

/// Audit events of a node.
pub async fn audit_events(h: &NodeHandle) -> Vec<AuditEvent> {
    h.audit_export().await.unwrap().into_iter().map(|r| r.entry.event).collect()
}

/// Waits until `pred` holds for one of the node's audit events.
pub async fn wait_audit(h: &NodeHandle, pred: impl Fn(&AuditEvent) -> bool) -> Option<AuditEvent> {
    let pred = &pred;
    wait_for(PATIENCE, || async move { audit_events(h).await.into_iter().find(|e| pred(e)) }).await
}

/// Waits until the node has at least `n` hits in `role`.
pub async fn wait_hits(h: &NodeHandle, role: HitRole, n: usize) -> Option<Vec<StoredHit>> {
    wait_for(PATIENCE, || async move {
        let hits: Vec<StoredHit> = h.hits().await.ok()?.into_iter().filter(|x| x.role == role).collect();
        (hits.len() >= n).then_some(hits)
    })
    .await
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// An enrolment of `template` as a found person under case `case_ref`,
/// kept for a long while: what the end-to-end tests enrol.
pub fn found(template: vigil_matcher::Template, case_ref: String) -> vigil_engine::Enrolment {
    vigil_engine::Enrolment {
        template,
        category: vigil_protocol::Category::Found,
        case_ref,
        consent: "intake form".into(),
        retain_until_ms: vigil_node::runtime::now_ms() + 1_000_000_000,
        regime: None,
    }
}
