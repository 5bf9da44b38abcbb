//! The Vigil node: libp2p networking (`net`), sealed sled storage
//! (`store`), the I/O-free services (`services`), the actor that joins them
//! (`runtime`), the local HTTP API (`api`), the data directory (`datadir`)
//! and the command line (`cli`), including `vigil demo`.

pub mod net;
pub mod runtime;
pub mod store;

pub use runtime::{start, AlertView, NodeError, NodeHandle, NodeOptions, Status};
pub mod api;
pub mod backup;
pub mod bench;
pub mod bench_catchup;
pub mod cli;
pub mod datadir;
pub mod demo;
pub mod federation;
pub mod metrics;
