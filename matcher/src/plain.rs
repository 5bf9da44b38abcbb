//! The plain matcher: integer inner product against the extractor's
//! threshold (for multi-finger extractors, the one for the fingers both
//! templates hold). The reference for calibration and tests; never on the wire.

use crate::template::{Template, TemplateError};
use crate::{Matcher, Policy};

/// The plain matcher under a biometric policy.
#[derive(Debug, Clone, Copy)]
pub struct PlainMatcher<'a>(pub &'a Policy);

impl Matcher for PlainMatcher<'_> {
    type Probe = Template;

    fn prepare(&self, template: &Template) -> Result<Template, TemplateError> {
        Ok(template.clone())
    }

    fn decide(&self, probe: &Template, record: &Template) -> Result<bool, TemplateError> {
        let ex = self.0.active(&probe.extractor)?;
        let shared = crate::encrypted::shared_parts(ex, &probe.vector, &record.vector);
        Ok(probe.dot(record)? >= ex.score_thresholds_for(shared)[0])
    }
}
