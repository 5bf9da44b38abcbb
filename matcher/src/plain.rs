//! The plain matcher: integer inner product against the extractor's
//! threshold. The reference for calibration and tests; never on the wire.

use crate::template::{Template, TemplateError};
use crate::Matcher;

#[derive(Debug, Clone, Copy, Default)]
pub struct PlainMatcher;

impl Matcher for PlainMatcher {
    type Probe = Template;

    fn prepare(&self, template: &Template) -> Result<Template, TemplateError> {
        Ok(template.clone())
    }

    fn decide(&self, probe: &Template, record: &Template) -> Result<bool, TemplateError> {
        Ok(probe.cosine(record)? >= probe.extractor()?.threshold)
    }
}
