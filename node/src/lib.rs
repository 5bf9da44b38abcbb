//! The Vigil node: libp2p networking (`net`), sealed sled storage
//! (`store`), the actor that joins them to the engine (`runtime`), the
//! local HTTP API (`api`), the data directory (`datadir`), backups and
//! metrics. Decisions are the engine's (`vigil-engine`); the command line
//! is `vigil-cli`.

pub mod api;
pub mod backup;
pub mod datadir;
pub mod metrics;
mod net;
pub mod runtime;
pub mod store;

pub use net::NetError;
#[cfg(feature = "drill")]
pub use net::Tap;
pub use runtime::{start, AlertView, NodeError, NodeHandle, NodeOptions, Status};
