//! `vigil bench`: whole-path figures printed as JSON, each comparison made
//! side by side in one run (these machines are shared and noisy): `match`
//! puts the plaintext scan beside the encrypted matcher on one gallery,
//! `catchup` times a member catching up on missed alerts, `store` puts
//! the storage engine kept beside the one compared, `enrol` counts
//! acknowledged enrolments at a real node, `audit` times verification,
//! `accuracy` measures how well fingerprints from minutiae separate people,
//! `console` times the operator console's pages with many alerts and hits,
//! `match --fingers` fused multi-finger probes against a large gallery.

pub mod accuracy;
pub mod audit;
pub mod catchup;
pub mod console;
pub mod enrol;
pub mod fingers;
pub mod matching;
pub mod store;
