//! The console's identification: an encrypted search of every member's
//! gallery, made for one of this node's own cases with a purpose and a
//! legal basis (both audited at every member; the case binding only here),
//! and each member's outcome once nothing more can arrive.

use super::forms::{self, Upload};
use super::pages::{self, word, Notice};
use super::*;
use askama::Template;
use axum::extract::{Extension, Multipart, Query};
use serde::Deserialize;
use vigil_engine::{IdentifyReport, OutcomeStatus};
use vigil_protocol::AlertId;

#[derive(Template)]
#[template(path = "identify.html")]
struct IdentifyPage<'a> {
    f: Frame<'a>,
    cases: Vec<CaseOption>,
    purpose: String,
    legal_basis: String,
    report: Option<ReportView>,
}

/// One of this node's active cases, as a choice of the form.
struct CaseOption {
    id: String,
    label: String,
    chosen: bool,
}

struct ReportView {
    case: String,
    members: Vec<OutcomeRow>,
}

struct OutcomeRow {
    name: String,
    outcome: String,
    detail: String,
    /// `hit`, `refused`, `missing` or empty: how the row is marked.
    class: &'static str,
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct Chosen {
    case: Option<String>,
}

/// GET /identify (`?case=ID` chooses the case).
pub(super) async fn page(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Query(q): Query<Chosen>,
) -> Response {
    let form = Filled { case: q.case.unwrap_or_default(), ..Filled::default() };
    render(&c, &op, form, None, Notice::default(), StatusCode::OK).await
}

/// What the operator typed, shown again with the outcome or the error.
#[derive(Debug, Default)]
struct Filled {
    case: String,
    purpose: String,
    legal_basis: String,
}

/// POST /identify: the search; the answer is the page with each member's outcome.
pub(super) async fn search(State(c): State<Console>, Extension(op): Extension<Operator>, mp: Multipart) -> Response {
    let u = match Upload::read(mp).await {
        Ok(u) => u,
        Err(e) => return render(&c, &op, Filled::default(), None, forms::error(e), StatusCode::BAD_REQUEST).await,
    };
    if let Some(r) = forms::gate(&op, u.get("csrf"), Act::Casework) {
        return r;
    }
    let form = Filled {
        case: u.get("case").into(),
        purpose: u.get("purpose").into(),
        legal_basis: u.get("legal_basis").into(),
    };
    match run(&c, &op, &u, &form).await {
        Ok(report) => render(&c, &op, form, Some(report), Notice::default(), StatusCode::OK).await,
        Err(e) => render(&c, &op, form, None, forms::error(e), StatusCode::BAD_REQUEST).await,
    }
}

async fn run(c: &Console, op: &Operator, u: &Upload, form: &Filled) -> Result<IdentifyReport, String> {
    let case = AlertId::from_hex(&form.case).map_err(|_| "choose the case this search is for".to_string())?;
    if form.purpose.is_empty() {
        return Err("the purpose is required: say why this person is searched for".into());
    }
    if form.legal_basis.is_empty() {
        return Err("the legal basis is required (e.g. the article of the law the search is made under)".into());
    }
    let crate::api::Captured { template, pad } = forms::template_of(c, u).await?;
    op.node(c)
        .identify_attested(template, pad, form.purpose.clone(), form.legal_basis.clone(), Some(case))
        .await
        .map_err(|e| e.to_string())
}

async fn render(
    c: &Console,
    op: &Operator,
    form: Filled,
    report: Option<IdentifyReport>,
    notice: Notice,
    status: StatusCode,
) -> Response {
    let tr = op.tr();
    let alerts = match c.node.alerts().await {
        Ok(a) => a,
        Err(e) => return pages::failed(e),
    };
    let names = pages::names(c).await;
    let mut cases: Vec<CaseOption> = alerts
        .iter()
        .filter(|a| a.own && a.status == vigil_engine::model::AlertStatus::Active)
        .rev()
        .map(|a| CaseOption {
            id: a.id.to_hex(),
            label: format!("{} ({})", a.case_ref.as_deref().unwrap_or(tr.other_case), word(&a.category)),
            chosen: a.id.to_hex() == form.case,
        })
        .collect();
    if !cases.iter().any(|o| o.chosen) {
        if let Some(first) = cases.first_mut() {
            first.chosen = true;
        }
    }
    let report = report.map(|r| ReportView {
        case: cases.iter().find(|o| o.chosen).map(|o| o.label.clone()).unwrap_or_default(),
        members: r.peers.iter().map(|p| outcome_row(tr, &names, p)).collect(),
    });
    let mut f = Frame::new(c, op, tr.identify, "identify");
    (f.error, f.flash) = (notice.error, notice.flash);
    let page = IdentifyPage { f, cases, purpose: form.purpose, legal_basis: form.legal_basis, report };
    html(status, page.render())
}

fn outcome_row(
    tr: &Tr,
    names: &std::collections::HashMap<vigil_protocol::OrgId, String>,
    p: &vigil_engine::PeerOutcome,
) -> OutcomeRow {
    let reason = p.reason.clone().unwrap_or_default();
    let (outcome, detail, class) = match (p.status, p.hits.len()) {
        (OutcomeStatus::Answered, 0) => (tr.answered.to_string(), format!("{} {}", p.positions, tr.positions), ""),
        (OutcomeStatus::Answered, k) => {
            (format!("{k} {}", tr.n_matches), format!("{} {}", p.positions, tr.positions), "hit")
        }
        (OutcomeStatus::Refused, _) => (tr.refused.to_string(), reason, "refused"),
        (OutcomeStatus::Timeout, _) => (tr.timed_out.to_string(), reason, "missing"),
        (OutcomeStatus::Failed, _) => (tr.not_reachable.to_string(), reason, "missing"),
    };
    OutcomeRow { name: pages::name_of(names, &p.peer), outcome, detail, class }
}
