//! The console's pages (GET): each asks the node for what it shows and
//! renders one template. Names of members replace org ids; no template,
//! probe or score is ever on a page. A form that failed comes back here
//! with its error (`Notice`).

use super::lists::{alert_rows, case_data, hit_rows, AlertRow, HitRow, PageNo, Paging, PAGE_ROWS};
use super::*;
use askama::Template;
use axum::extract::{Extension, Path, Query};
use serde::Deserialize;
use std::collections::HashMap;
use vigil_engine::model::{DisclosureRole, DisclosureStatus, StoredDisclosure};
use vigil_engine::receipts::MemberState;
use vigil_protocol::OrgId;

/// A word for a serde enum value (`missing`, `found`, ...).
pub(super) fn word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(m)) => m.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Unix ms as `2026-12-03 19:40 UTC`.
pub(super) fn when(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {} UTC", &s[..10], &s[11..16])
}

fn hours(ms: u64) -> String {
    let h = ms / 3_600_000;
    if h >= 1 {
        format!("{h} h")
    } else {
        format!("{} min", ms / 60_000)
    }
}

/// A hit's follow-up clock: (text, overdue).
pub(super) fn clock(tr: &Tr, hit_at_ms: u64, follow_up: Duration, finished: bool) -> (String, bool) {
    if finished {
        return (tr.done.into(), false);
    }
    let due = hit_at_ms + follow_up.as_millis() as u64;
    let now = crate::now_ms();
    if now > due {
        (format!("{} {}", tr.overdue_by, hours(now - due)), true)
    } else {
        (format!("{} {}", tr.due_in, hours(due - now)), false)
    }
}

/// An error or a done-message shown above a page's content.
#[derive(Debug, Default)]
pub(super) struct Notice {
    pub error: Option<String>,
    pub flash: Option<String>,
}

/// `?done=...` after a form succeeded: a fixed word (never text from the
/// URL) and, for some, a number.
#[derive(Debug, Deserialize, Default)]
pub(super) struct Done {
    done: Option<String>,
    /// Text, not u64: query strings flattened into another struct reach
    /// serde as strings.
    id: Option<String>,
}

impl Done {
    fn notice(&self, tr: &Tr) -> Notice {
        let word = match self.done.as_deref() {
            Some("enrolled") => tr.ok_enrolled,
            Some("published") => tr.ok_published,
            Some("withdrawn") => tr.ok_withdrawn,
            Some("requested") => tr.ok_requested,
            Some("decided") => tr.ok_decided,
            Some("erased") => tr.ok_erased,
            _ => return Notice::default(),
        };
        let flash = match self.id.as_deref().and_then(|i| i.parse::<u64>().ok()) {
            Some(id) => format!("{word} {id}"),
            None => word.to_string(),
        };
        Notice { error: None, flash: Some(flash) }
    }
}

/// Member names by org id (from the roster), this node's own included.
pub(super) async fn names(c: &Console) -> HashMap<OrgId, String> {
    let mut names: HashMap<OrgId, String> = match c.node.roster().await {
        Ok(Some(r)) => r.body.members.into_iter().map(|m| (m.org, format!("{} ({})", m.name, word(&m.kind)))).collect(),
        _ => HashMap::new(),
    };
    names.entry(c.node.org).or_insert_with(|| c.settings.org.clone());
    names
}

pub(super) fn name_of(names: &HashMap<OrgId, String>, org: &OrgId) -> String {
    names.get(org).cloned().unwrap_or_else(|| format!("unknown member {}", &org.to_hex()[..16]))
}

pub(super) fn failed(e: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("the node could not answer: {e}")).into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    f: Frame<'a>,
}

/// The login form (with the reason a login failed, if one did).
pub(super) fn login_page(c: &Console, status: StatusCode, error: Option<String>) -> Response {
    let tr = &i18n::EN;
    let f = Frame {
        tr,
        title: tr.sign_in,
        org: &c.settings.org,
        operator: None,
        role: "",
        csrf: "",
        active: "",
        error,
        flash: None,
        may_casework: false,
        may_decide: false,
    };
    html(status, LoginPage { f }.render())
}

pub(super) async fn login(State(c): State<Console>) -> Response {
    login_page(&c, StatusCode::OK, None)
}

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage<'a> {
    f: Frame<'a>,
    alerts: Vec<AlertRow>,
    paging: Paging,
}

pub(super) async fn cases(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Query(done): Query<Done>,
    Query(page): Query<PageNo>,
) -> Response {
    cases_page(&c, &op, done.notice(op.tr()), StatusCode::OK, page.skip()).await
}

pub(super) async fn cases_page(
    c: &Console,
    op: &Operator,
    notice: Notice,
    status: StatusCode,
    skip: usize,
) -> Response {
    let tr = op.tr();
    let data = match case_data(c).await {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let (rows, total) = alert_rows(c, tr, &data, skip, PAGE_ROWS);
    let paging = Paging::new(skip, rows.len(), total);
    let mut f = Frame::new(c, op, tr.cases, "cases");
    (f.error, f.flash) = (notice.error, notice.flash);
    html(status, CasesPage { f, alerts: rows, paging }.render())
}

struct MemberRow {
    name: String,
    state: String,
    class: &'static str,
    hits: usize,
    reason: String,
    /// Connected, or since when not.
    reach: String,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage<'a> {
    f: Frame<'a>,
    id: String,
    case_ref: String,
    status: String,
    members: Vec<MemberRow>,
}

pub(super) async fn case(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Path(id): Path<String>,
) -> Response {
    let tr = op.tr();
    let Ok(alert) = vigil_protocol::AlertId::from_hex(&id) else {
        return (StatusCode::NOT_FOUND, "no such alert").into_response();
    };
    let (alerts, members) = match (c.node.alerts().await, c.node.alert_members(alert).await) {
        (Ok(a), Ok(m)) => (a, m),
        _ => return (StatusCode::NOT_FOUND, "no such alert of this node").into_response(),
    };
    let (status, hits) = match (c.node.status().await, c.node.hits().await) {
        (Ok(s), Ok(h)) => (s, h),
        (Err(e), _) | (_, Err(e)) => return failed(e),
    };
    // The highest band of each member's hits for this alert.
    let mut best: HashMap<OrgId, vigil_protocol::policy::Band> = HashMap::new();
    for h in hits.iter().filter(|h| h.role == vigil_engine::model::HitRole::Issuer && h.source.alert() == Some(alert)) {
        if let Some(b) = h.band {
            best.entry(h.peer).and_modify(|x| *x = (*x).max(b)).or_insert(b);
        }
    }
    let gone: HashMap<OrgId, u64> = status.disconnected_at.iter().copied().collect();
    let reach = |org: &OrgId| {
        if status.connected.contains(org) {
            tr.connected.to_string()
        } else if let Some(at) = gone.get(org) {
            format!("{} {}", tr.unreachable_since, when(*at))
        } else {
            format!("{} {}", tr.not_reached_since_start, when(status.started_at_ms))
        }
    };
    let Some(a) = alerts.iter().find(|a| a.id == alert && a.own) else {
        return (StatusCode::NOT_FOUND, "no such alert of this node").into_response();
    };
    let members = members
        .into_iter()
        .map(|m| {
            let (state, class) = match m.state {
                MemberState::Pending => (tr.pending, "pending"),
                MemberState::Delivered => (tr.delivered, "delivered"),
                MemberState::Answered => (tr.answered, "answered"),
                MemberState::Hit => (tr.hit, "hit"),
                MemberState::Refused => (tr.refused, "refused"),
            };
            let state = match best.get(&m.member) {
                Some(b) => format!("{state} ({})", super::lists::band_word(tr, Some(*b))),
                None => state.to_string(),
            };
            let reach = reach(&m.member);
            MemberRow { name: m.name, state, class, hits: m.hits, reason: m.reason.unwrap_or_default(), reach }
        })
        .collect();
    let f = Frame::new(&c, &op, tr.members, "cases");
    let page = CasePage { f, id, case_ref: a.case_ref.clone().unwrap_or_default(), status: word(&a.status), members };
    html(StatusCode::OK, page.render())
}

#[derive(Template)]
#[template(path = "hits.html")]
struct HitsPage<'a> {
    f: Frame<'a>,
    hits: Vec<HitRow>,
    paging: Paging,
}

pub(super) async fn hits(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Query(done): Query<Done>,
    Query(page): Query<PageNo>,
) -> Response {
    hits_page(&c, &op, done.notice(op.tr()), StatusCode::OK, page.skip()).await
}

pub(super) async fn hits_page(c: &Console, op: &Operator, notice: Notice, status: StatusCode, skip: usize) -> Response {
    let tr = op.tr();
    let data = match case_data(c).await {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let (rows, total) = hit_rows(c, tr, &data, &names(c).await, skip, PAGE_ROWS);
    let paging = Paging::new(skip, rows.len(), total);
    let mut f = Frame::new(c, op, tr.hits, "hits");
    (f.error, f.flash) = (notice.error, notice.flash);
    html(status, HitsPage { f, hits: rows, paging }.render())
}

struct DisclosureRow {
    id: String,
    peer: String,
    when: String,
    reason: String,
    record: String,
    seen: &'static str,
    status: String,
    contact: String,
    first: Option<String>,
    pending: bool,
}

#[derive(Template)]
#[template(path = "disclosures.html")]
struct DisclosuresPage<'a> {
    f: Frame<'a>,
    here: Vec<DisclosureRow>,
    asked: Vec<DisclosureRow>,
}

pub(super) async fn disclosures(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Query(done): Query<Done>,
) -> Response {
    disclosures_page(&c, &op, done.notice(op.tr()), StatusCode::OK).await
}

pub(super) async fn disclosures_page(c: &Console, op: &Operator, notice: Notice, status: StatusCode) -> Response {
    let tr = op.tr();
    let (list, records) = match (c.node.disclosures().await, c.node.records().await) {
        (Ok(d), Ok(r)) => (d, r),
        (Err(e), _) | (_, Err(e)) => return failed(e),
    };
    let names = names(c).await;
    let case_of: HashMap<u64, String> =
        records.into_iter().map(|r| (r.id, format!("#{} {}", r.id, r.case_ref))).collect();
    let row = |d: &StoredDisclosure| DisclosureRow {
        id: d.id.to_hex(),
        peer: name_of(&names, &d.peer),
        when: when(d.requested_at_ms),
        reason: d.reason.clone(),
        record: d.record.and_then(|r| case_of.get(&r).cloned()).unwrap_or_default(),
        seen: if d.hit_seen_here() { tr.match_seen } else { tr.match_unverifiable },
        status: match d.status {
            DisclosureStatus::Pending | DisclosureStatus::Requested => tr.pending.into(),
            DisclosureStatus::Approved => tr.approved.into(),
            DisclosureStatus::Refused => tr.refused.into(),
        },
        contact: d.contact.clone().unwrap_or_default(),
        first: d.first_approval.as_ref().map(|a| a.operator.clone()),
        pending: d.status == DisclosureStatus::Pending,
    };
    let here = list.iter().rev().filter(|d| d.role == DisclosureRole::Holder).map(row).collect();
    let asked = list.iter().rev().filter(|d| d.role == DisclosureRole::Requester).map(row).collect();
    let mut f = Frame::new(c, op, tr.disclosures, "disclosures");
    (f.error, f.flash) = (notice.error, notice.flash);
    html(status, DisclosuresPage { f, here, asked }.render())
}

struct RecordRow {
    id: u64,
    case_ref: String,
    category: String,
    extractor: String,
    stale: bool,
    /// The capture's PAD attestation, as checked at enrolment.
    liveness: Option<String>,
    enrolled: String,
    retain_until: String,
}

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage<'a> {
    f: Frame<'a>,
    query: String,
    records: Vec<RecordRow>,
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct RecordsQuery {
    #[serde(default)]
    q: String,
    #[serde(flatten)]
    done: Done,
}

/// Records shown at once (the newest that match the search).
const RECORDS_SHOWN: usize = 500;

pub(super) async fn records(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Query(q): Query<RecordsQuery>,
) -> Response {
    let notice = q.done.notice(op.tr());
    records_page(&c, &op, &q.q, notice, StatusCode::OK).await
}

pub(super) async fn records_page(
    c: &Console,
    op: &Operator,
    query: &str,
    notice: Notice,
    status: StatusCode,
) -> Response {
    let tr = op.tr();
    let list = match c.node.records().await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let needle = query.trim().to_lowercase();
    let rows = list
        .iter()
        .rev()
        .filter(|r| needle.is_empty() || r.case_ref.to_lowercase().contains(&needle))
        .take(RECORDS_SHOWN)
        .map(|r| RecordRow {
            id: r.id,
            case_ref: r.case_ref.clone(),
            category: word(&r.category),
            extractor: r.extractor.clone(),
            stale: r.stale.is_some(),
            liveness: r.liveness.clone(),
            enrolled: when(r.enrolled_at_ms),
            retain_until: when(r.retain_until_ms)[..10].to_string(),
        })
        .collect();
    let mut f = Frame::new(c, op, tr.records, "records");
    (f.error, f.flash) = (notice.error, notice.flash);
    html(status, RecordsPage { f, query: query.to_string(), records: rows }.render())
}

struct FederationRow {
    name: String,
    kind: String,
    roles: String,
    state: String,
}

#[derive(Template)]
#[template(path = "federation.html")]
struct FederationPage<'a> {
    f: Frame<'a>,
    roster_version: String,
    signatures: usize,
    policy_version: u64,
    members: Vec<FederationRow>,
}

pub(super) async fn federation(State(c): State<Console>, Extension(op): Extension<Operator>) -> Response {
    let tr = op.tr();
    let (status, roster, policy) = match (c.node.status().await, c.node.roster().await, c.node.biometric().await) {
        (Ok(s), Ok(r), Ok(p)) => (s, r, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failed(e),
    };
    let members = roster
        .as_ref()
        .map(|r| {
            r.body
                .members
                .iter()
                .map(|m| FederationRow {
                    name: m.name.clone(),
                    kind: word(&m.kind),
                    roles: m.roles.iter().map(word).collect::<Vec<_>>().join(", "),
                    state: if m.org == c.node.org {
                        tr.this_node.into()
                    } else if status.connected.contains(&m.org) {
                        tr.connected.into()
                    } else {
                        tr.not_connected.into()
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let f = Frame::new(&c, &op, tr.federation, "federation");
    let page = FederationPage {
        f,
        roster_version: roster.as_ref().map(|r| r.body.version.to_string()).unwrap_or_else(|| "none".into()),
        signatures: roster.as_ref().map(|r| r.signatures.len()).unwrap_or(0),
        policy_version: policy.version,
        members,
    };
    html(StatusCode::OK, page.render())
}
