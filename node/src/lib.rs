//! The Vigil node: libp2p networking (`net`), sealed redb storage
//! (`store`), the actor that joins them to the engine (`runtime`), the
//! local HTTP API (`api`) and the operator console it serves (`console`),
//! the data directory (`datadir`) and offline changes to it (`offline`),
//! backups and metrics. Decisions are the engine's (`vigil-engine`); the
//! command line is `vigil-cli`.

pub mod api;
pub mod backup;
pub mod console;
pub mod datadir;
pub mod metrics;
mod net;
pub mod offline;
pub mod runtime;
pub mod store;
pub mod views;

pub use net::NetError;
#[cfg(feature = "drill")]
pub use net::Tap;
pub use runtime::{start, NodeError, NodeHandle, NodeOptions};
pub use views::{AlertView, RecordView, Status};

/// Milliseconds since the Unix epoch: the clock the node passes its engine.
pub fn now_ms() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
