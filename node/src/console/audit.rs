//! The audit pages: the newest entries a page at a time, read from the
//! store off the event loop (never the whole chain per view), filtered by
//! kind, operator and time; a verification of the chain; its export.

use super::pages::when;
use super::*;
use askama::Template;
use axum::extract::{Extension, Query};
use serde::Deserialize;
use vigil_engine::audit::AuditEvent;

struct AuditRow {
    seq: u64,
    when: String,
    operator: String,
    kind: String,
    detail: String,
}

struct Verified {
    ok: bool,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    f: Frame<'a>,
    verified: Option<Verified>,
    q: AuditQuery,
    total: u64,
    entries: Vec<AuditRow>,
    /// The link to the next (older) page, filters kept.
    older: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, serde::Serialize)]
pub(super) struct AuditQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    operator: String,
    /// `YYYY-MM-DD`: entries on or after that day.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`: entries up to the end of that day.
    #[serde(default)]
    to: String,
    /// Entries older than this sequence number (the next page).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    before: String,
    #[serde(default, skip_serializing)]
    verify: Option<String>,
}

/// Audit entries shown on one page.
const AUDIT_SHOWN: usize = 200;
const DAY_MS: u64 = 86_400_000;

/// (operator, kind, detail) of an event: `ByOperator` entries unwrapped.
pub(super) fn audit_row(event: &AuditEvent) -> (String, String, String) {
    let (operator, event) = match event {
        AuditEvent::ByOperator { operator, event } => (operator.clone(), event.as_ref()),
        e => (String::new(), e),
    };
    let (kind, detail) = match serde_json::to_value(event) {
        Ok(serde_json::Value::Object(m)) => match m.into_iter().next() {
            Some((k, v)) => (k, v.to_string()),
            None => (String::new(), String::new()),
        },
        Ok(serde_json::Value::String(s)) => (s, String::new()),
        _ => (String::new(), String::new()),
    };
    (operator, kind, detail)
}

/// What an entry must be to be shown, from the form's fields.
struct Filter {
    kind: String,
    operator: String,
    from_ms: u64,
    to_ms: u64,
}

impl Filter {
    fn of(q: &AuditQuery) -> Result<Self, String> {
        let day = |s: &str| -> Result<Option<u64>, String> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                crate::api::parse_date(s).map(Some)
            }
        };
        Ok(Filter {
            kind: q.kind.trim().to_string(),
            operator: q.operator.trim().to_string(),
            from_ms: day(&q.from)?.unwrap_or(0),
            to_ms: day(&q.to)?.map(|d| d + DAY_MS - 1).unwrap_or(u64::MAX),
        })
    }

    fn keeps(&self, r: &crate::store::AuditRecord) -> bool {
        if r.entry.at_ms < self.from_ms || r.entry.at_ms > self.to_ms {
            return false;
        }
        if self.kind.is_empty() && self.operator.is_empty() {
            return true;
        }
        let (operator, kind, _) = audit_row(&r.entry.event);
        (self.kind.is_empty() || kind.contains(&self.kind)) && (self.operator.is_empty() || operator == self.operator)
    }
}

pub(super) async fn audit(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let tr = op.tr();
    if !op.may(Act::Audit) && !op.may(Act::Decide) {
        return refused(&op, StatusCode::FORBIDDEN, tr.not_allowed);
    }
    let filter = match Filter::of(&q) {
        Ok(f) => f,
        Err(e) => return refused(&op, StatusCode::BAD_REQUEST, &e),
    };
    let verified = match q.verify {
        Some(_) => match c.node.audit_verify().await {
            Ok(Ok(n)) => Some(Verified { ok: true, detail: format!("{n} {}", tr.entries) }),
            Ok(Err(e)) => Some(Verified { ok: false, detail: e.to_string() }),
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        None => None,
    };
    let before = q.before.trim().parse::<u64>().ok();
    let page = match c.node.audit_page(before, AUDIT_SHOWN, move |r| filter.keeps(r)).await {
        Ok(p) => p,
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("the node could not answer: {e}")).into_response()
        }
    };
    let entries = page
        .entries
        .iter()
        .map(|r| {
            let (operator, kind, detail) = audit_row(&r.entry.event);
            AuditRow { seq: r.entry.seq, when: when(r.entry.at_ms), operator, kind, detail }
        })
        .collect();
    let older = page.next.map(|next| {
        let mut link = AuditQuery { before: next.to_string(), ..q.clone() };
        link.verify = None;
        format!("/audit?{}", serde_urlencoded::to_string(&link).unwrap_or_default())
    });
    let f = Frame::new(&c, &op, tr.audit, "audit");
    html(StatusCode::OK, AuditPage { f, verified, q, total: page.total, entries, older }.render())
}

pub(super) async fn audit_export(State(c): State<Console>, Extension(op): Extension<Operator>) -> Response {
    if !op.may(Act::Audit) {
        return refused(&op, StatusCode::FORBIDDEN, op.tr().not_allowed);
    }
    match c.node.audit_export().await {
        Ok(all) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"vigil-audit.json\""),
            ],
            serde_json::to_string_pretty(&all).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
