//! The drill's wire tap: counts messages and bytes each node sends, per
//! protocol, and looks for plaintext template bytes in every payload. Every
//! template the drill will ever enrol or search with is known in advance;
//! the 32-byte windows starting at each template's first 32 offsets are
//! indexed, so any payload holding a copy of one (at any offset) is caught
//! by probing every 32nd position. The byte count is a lower bound: 32 per
//! window caught, at least one window per copy. The tap runs inside every
//! node's frame writer, so a probe costs one bit test in a 16 MiB filter
//! (about 2 % of probes go on to the exact sorted index).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use vigil_node::Tap;

/// Window length and probe stride.
const WINDOW: usize = 32;
/// log2 of the filter's size in bits.
const FILTER_LOG: u32 = 27;

/// Traffic a node sent on one protocol.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Traffic {
    pub messages: u64,
    pub bytes: u64,
}

#[derive(Default)]
pub struct Wire {
    windows: Vec<u64>,
    /// One bit per hash prefix of `FILTER_LOG` bits: set for every window.
    filter: Vec<u64>,
    traffic: Mutex<Vec<BTreeMap<String, Traffic>>>,
    template_bytes: AtomicU64,
    leaks: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wire({} windows)", self.windows.len())
    }
}

fn hash(w: &[u8]) -> u64 {
    // Multiply-xor over four words: an index key, not a security primitive.
    w.chunks_exact(8).fold(0x9e37_79b9_7f4a_7c15u64, |h, c| {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        (h ^ x).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(29)
    })
}

fn filter_bit(h: u64) -> (usize, u64) {
    let b = (h.wrapping_mul(0xc4ce_b9fe_1a85_ec53) >> (64 - FILTER_LOG)) as usize;
    (b / 64, 1 << (b % 64))
}

impl Wire {
    /// Indexes `templates` (i8 vectors, as they would appear on the wire).
    pub fn new(nodes: usize, templates: impl Iterator<Item = Vec<i8>>) -> Self {
        let mut windows = Vec::new();
        for t in templates {
            let bytes: Vec<u8> = t.iter().map(|x| *x as u8).collect();
            for o in 0..WINDOW.min(bytes.len().saturating_sub(WINDOW) + 1) {
                windows.push(hash(&bytes[o..o + WINDOW]));
            }
        }
        windows.sort_unstable();
        windows.dedup();
        let mut filter = vec![0u64; 1 << (FILTER_LOG - 6)];
        for h in &windows {
            let (word, bit) = filter_bit(*h);
            filter[word] |= bit;
        }
        Self { windows, filter, traffic: Mutex::new(vec![BTreeMap::new(); nodes]), ..Default::default() }
    }

    /// Records one payload that node `node` sent on `protocol`.
    pub fn observe(&self, node: usize, protocol: &str, payload: &[u8]) {
        {
            let mut t = self.traffic.lock().expect("traffic lock");
            let map = &mut t[node];
            if !map.contains_key(protocol) {
                map.insert(protocol.to_string(), Traffic::default());
            }
            let e = map.get_mut(protocol).expect("inserted above");
            e.messages += 1;
            e.bytes += payload.len() as u64;
        }
        let mut pos = 0;
        let mut found = 0u64;
        while pos + WINDOW <= payload.len() {
            let h = hash(&payload[pos..pos + WINDOW]);
            let (word, bit) = filter_bit(h);
            if self.filter[word] & bit != 0 && self.windows.binary_search(&h).is_ok() {
                found += WINDOW as u64;
            }
            pos += WINDOW;
        }
        if found > 0 {
            self.template_bytes.fetch_add(found, Ordering::Relaxed);
            let mut l = self.leaks.lock().expect("leaks lock");
            if l.len() < 10 {
                l.push(format!(
                    "node {node} sent {found} template bytes on {protocol} ({} byte payload)",
                    payload.len()
                ));
            }
        }
    }

    /// A tap for node `node`.
    pub fn tap(self: &Arc<Self>, node: usize) -> Tap {
        let w = self.clone();
        Arc::new(move |protocol: &str, payload: &[u8]| w.observe(node, protocol, payload))
    }

    pub fn template_bytes(&self) -> u64 {
        self.template_bytes.load(Ordering::Relaxed)
    }

    pub fn leaks(&self) -> Vec<String> {
        self.leaks.lock().expect("leaks lock").clone()
    }

    pub fn traffic(&self) -> Vec<BTreeMap<String, Traffic>> {
        self.traffic.lock().expect("traffic lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_copy_at_any_offset_is_caught_and_noise_is_not() {
        let t: Vec<i8> = (0..128).map(|i| (i * 37 % 251) as i8).collect();
        let w = Wire::new(1, std::iter::once(t.clone()));
        for offset in [0usize, 1, 17, 31, 32, 100] {
            let mut payload = vec![0xAAu8; offset];
            payload.extend(t.iter().map(|x| *x as u8));
            payload.extend([0x55u8; 40]);
            let before = w.template_bytes();
            w.observe(0, "req", &payload);
            assert!(w.template_bytes() >= before + 32, "copy at offset {offset} missed");
        }
        let before = w.template_bytes();
        w.observe(0, "gossip", &(0..4096u32).map(|i| (i * 7919 % 253) as u8).collect::<Vec<_>>());
        assert_eq!(w.template_bytes(), before);
        assert_eq!(w.traffic()[0]["req"].messages, 6);
        assert_eq!(w.leaks().len(), 6);
    }
}
