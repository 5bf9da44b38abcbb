//! Templates and matching: parsing capture-SDK embeddings, quantising them
//! to i8, and deciding matches with the plain (reference) and protected
//! (keyed sign-random-projection) matchers behind one interface. Knows
//! nothing of networking or storage.

pub mod calibrate;
pub mod encrypted;
mod extractor;
mod gallery;
pub mod minutiae;
mod plain;
mod protected;
pub mod synth;
mod template;

pub use extractor::{
    builtin, extractor, intern, Band, Extractor, NotActive, Policy, PolicyError, Projection, Status, Threshold, SYNTH,
};
pub use gallery::{dot, scan, Gallery};
pub use plain::PlainMatcher;
pub use protected::{EpochSecret, ProtectedMatcher, ProtectedTemplate};
pub use template::{
    quantise, quantise_parts, score_threshold, Template, TemplateError, TemplateFile, MAX_TEMPLATE_FILE_BYTES,
    MAX_TEMPLATE_VALUE,
};

/// One matching scheme: how a probe is prepared from a template, and how a
/// prepared probe is decided against a gallery template. The encrypted
/// (TFHE) matcher will implement the same interface.
pub trait Matcher {
    /// What travels or is stored in place of the probe template.
    type Probe;
    /// Prepares a probe (protects or encrypts it).
    fn prepare(&self, template: &Template) -> Result<Self::Probe, TemplateError>;
    /// Decides whether `record` matches `probe`.
    fn decide(&self, probe: &Self::Probe, record: &Template) -> Result<bool, TemplateError>;
}
