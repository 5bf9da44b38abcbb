//! What leaves the console as files: an alert as CAP 1.2 XML (the Common
//! Alerting Protocol national alerting systems ingest) carrying only the
//! case facts the issuer ticks, never a template or probe; and the cases
//! and hits lists as CSV, each cell guarded against spreadsheet formulas.

use super::lists::{alert_rows, case_data, hit_rows};
use super::pages::{self, failed};
use super::*;
use askama::Template;
use axum::extract::{Extension, Path, Query};
use serde::Deserialize;
use vigil_engine::model::AlertStatus;
use vigil_protocol::{AlertId, Category};

/// Unix ms in CAP's form: `2026-12-03T19:40:00-00:00` (CAP 1.2 §3.3.2:
/// no `Z`; UTC is written `-00:00`).
fn cap_time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{}-00:00", s.trim_end_matches('Z'))
}

/// Text as XML 1.0 allows it: control characters other than tab and line
/// breaks (which no XML parser accepts, escaped or not) become U+FFFD.
fn xml_text(s: &str) -> String {
    s.chars().map(|ch| if ch.is_control() && !matches!(ch, '\t' | '\n' | '\r') { '\u{FFFD}' } else { ch }).collect()
}

#[derive(Template)]
#[template(path = "cap.xml")]
struct Cap {
    identifier: String,
    sender: String,
    sent: String,
    status: &'static str,
    msg_type: &'static str,
    restriction: String,
    references: Option<String>,
    language: &'static str,
    category: &'static str,
    event: &'static str,
    urgency: &'static str,
    effective: String,
    expires: String,
    sender_name: String,
    headline: String,
    description: Option<String>,
    parameters: Vec<(&'static str, String)>,
}

/// What the issuer chooses to put in a CAP export.
#[derive(Debug, Deserialize, Default)]
pub(super) struct CapQuery {
    /// `on`: include the case reference.
    #[serde(default)]
    case_ref: Option<String>,
    /// Free text for the public description (empty: none).
    #[serde(default)]
    description: String,
    /// `on`: a drill (`<status>Exercise</status>`).
    #[serde(default)]
    exercise: Option<String>,
}

/// Longest description an export carries.
const MAX_DESCRIPTION_CHARS: usize = 2_000;

pub(super) async fn cap(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Path(id): Path<String>,
    Query(q): Query<CapQuery>,
) -> Response {
    let tr = op.tr();
    if !op.may(Act::Casework) {
        return refused(&op, StatusCode::FORBIDDEN, tr.not_allowed);
    }
    if q.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return refused(&op, StatusCode::BAD_REQUEST, &format!("description over {MAX_DESCRIPTION_CHARS} characters"));
    }
    let Ok(alert) = AlertId::from_hex(&id) else { return (StatusCode::NOT_FOUND, "no such alert").into_response() };
    let alerts = match c.node.alerts().await {
        Ok(a) => a,
        Err(e) => return failed(e),
    };
    let Some(a) = alerts.into_iter().find(|a| a.id == alert && a.own) else {
        return (StatusCode::NOT_FOUND, "no such alert of this node").into_response();
    };
    let (category, event) = match a.category {
        Category::Missing => ("Rescue", tr.missing),
        Category::Found => ("Rescue", tr.found),
        Category::Victim => ("Security", tr.victim),
        _ => ("Other", tr.other_case),
    };
    let withdrawn = !matches!(a.status, AlertStatus::Active);
    let sender = format!("vigil-{}", c.node.org.to_hex());
    let identifier = id.clone();
    let case_ref = a.case_ref.clone().filter(|_| q.case_ref.is_some()).map(|r| xml_text(&r));
    let page = Cap {
        identifier: if withdrawn { format!("{identifier}-cancel") } else { identifier.clone() },
        sent: cap_time(if withdrawn { crate::now_ms() } else { a.created_at_ms }),
        references: withdrawn.then(|| format!("{sender},{identifier},{}", cap_time(a.created_at_ms))),
        sender,
        status: if q.exercise.is_some() { "Exercise" } else { "Actual" },
        msg_type: if withdrawn { "Cancel" } else { "Alert" },
        restriction: xml_text(&format!("{} {}", tr.cap_restriction, c.settings.org)),
        language: tr.lang,
        category,
        event,
        urgency: if a.expired || withdrawn { "Past" } else { "Immediate" },
        effective: cap_time(a.created_at_ms),
        expires: cap_time(a.expires_at_ms),
        sender_name: xml_text(&c.settings.org),
        headline: match &case_ref {
            Some(r) => format!("{event}: {r}"),
            None => event.to_string(),
        },
        description: Some(xml_text(q.description.trim())).filter(|d| !d.is_empty()),
        parameters: case_ref.into_iter().map(|r| ("vigil:case_ref", r)).collect(),
    };
    match page.render() {
        Ok(xml) => attachment("application/cap+xml; charset=utf-8", &format!("vigil-alert-{id}.cap.xml"), xml.into()),
        Err(e) => failed(e),
    }
}

/// A download: `body` as `content_type`, saved as `name`.
fn attachment(content_type: &'static str, name: &str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    ([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response()
}

/// A cell a spreadsheet will not run: one starting with `=`, `+`, `-`,
/// `@`, tab or carriage return gets a leading `'` (OWASP's advice).
fn cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

fn csv_file(name: &str, header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Response {
    let write = || -> Result<Vec<u8>, String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(header).map_err(|e| e.to_string())?;
        for row in rows {
            w.write_record(row.iter().map(|s| cell(s))).map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string())
    };
    match write() {
        Ok(bytes) => attachment("text/csv; charset=utf-8", name, bytes),
        Err(e) => failed(e),
    }
}

pub(super) async fn cases_csv(State(c): State<Console>, Extension(op): Extension<Operator>) -> Response {
    let data = match case_data(&c).await {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let header = ["alert", "case_ref", "category", "status", "created", "expires", "members", "follow_up", "overdue"];
    let rows = alert_rows(&c, op.tr(), &data, 0, usize::MAX).0.into_iter().map(|r| {
        vec![
            r.id,
            r.case_ref,
            r.category,
            r.status,
            r.created,
            r.expires,
            r.members,
            r.follow_up,
            r.overdue.to_string(),
        ]
    });
    csv_file("vigil-cases.csv", &header, rows)
}

pub(super) async fn hits_csv(State(c): State<Console>, Extension(op): Extension<Operator>) -> Response {
    let data = match case_data(&c).await {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let names = pages::names(&c).await;
    let header =
        ["hit", "when", "case_ref", "holder", "band", "source", "follow_up", "overdue", "disclosure", "liveness"];
    let rows = hit_rows(&c, op.tr(), &data, &names, 0, usize::MAX).0.into_iter().map(|r| {
        vec![
            r.handle,
            r.when,
            r.case_ref,
            r.holder,
            r.band,
            r.source,
            r.follow_up,
            r.overdue.to_string(),
            r.disclosure.unwrap_or_default(),
            r.liveness.unwrap_or_default(),
        ]
    });
    csv_file("vigil-hits.csv", &header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_times_write_utc_as_cap_asks() {
        assert_eq!(cap_time(1_764_790_800_000), "2025-12-03T19:40:00-00:00");
    }

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_quoted() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("-1+2"), "'-1+2");
        assert_eq!(cell("SN-2026-114"), "SN-2026-114");
    }

    #[test]
    fn a_cap_export_is_xml_with_markup_and_control_characters_as_text() {
        let hostile = "<b>EG</b>&\u{7}\"'";
        let cap = Cap {
            identifier: "ab".into(),
            sender: "vigil-cd".into(),
            sent: cap_time(0),
            status: "Exercise",
            msg_type: "Alert",
            restriction: xml_text(hostile),
            references: None,
            language: "en",
            category: "Rescue",
            event: "Missing person",
            urgency: "Immediate",
            effective: cap_time(0),
            expires: cap_time(1),
            sender_name: xml_text(hostile),
            headline: xml_text(hostile),
            description: Some(xml_text(hostile)),
            parameters: vec![("vigil:case_ref", xml_text(hostile))],
        };
        let xml = cap.render().unwrap();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(
            (root.tag_name().name(), root.tag_name().namespace()),
            ("alert", Some("urn:oasis:names:tc:emergency:cap:1.2"))
        );
        let text =
            |name: &str| doc.descendants().find(|n| n.has_tag_name(name)).and_then(|n| n.text()).map(str::to_string);
        assert_eq!(text("headline").as_deref(), Some("<b>EG</b>&\u{FFFD}\"'"));
        assert_eq!(text("status").as_deref(), Some("Exercise"));
        assert_eq!(text("value").as_deref(), Some("<b>EG</b>&\u{FFFD}\"'"));
        // CAP's element order: identifier, sender, sent, status, msgType, scope.
        let order: Vec<_> = root.children().filter(|n| n.is_element()).map(|n| n.tag_name().name()).collect();
        assert_eq!(&order[..6], ["identifier", "sender", "sent", "status", "msgType", "scope"]);
    }
}
