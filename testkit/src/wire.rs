//! A wire tap that records every payload a node sends, for tests that
//! check what crosses the wire (no template, probe or case detail).

use std::sync::{Arc, Mutex};

/// Every payload one node sent, as (protocol, bytes). Bounded: a test that
/// sends more than `MAX_TAPPED` payloads fails loudly instead of growing.
#[derive(Clone, Default, Debug)]
pub struct WireLog(Arc<Mutex<Vec<Tapped>>>);

/// One tapped payload: (protocol, bytes).
pub type Tapped = (String, Vec<u8>);

pub const MAX_TAPPED: usize = 100_000;

impl WireLog {
    pub fn tap(&self) -> vigil_node::Tap {
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
