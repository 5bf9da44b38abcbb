//! The console's forms (POST): each checks the session's CSRF token and
//! the operator's role first, then asks the node acting for the operator,
//! and answers with a redirect to the page (done) or that page again with
//! the node's precise refusal (the same words as the CLI's).

use super::pages::{self, Notice};
use super::*;
use axum::extract::{Extension, Form, Multipart, Path};
use serde::Deserialize;
use std::collections::HashMap;
use vigil_protocol::{AlertId, Category, Handle};

/// A form that only carries its CSRF token.
#[derive(Debug, Deserialize)]
pub(super) struct Plain {
    #[serde(default)]
    csrf: String,
}

/// The first check of every form: the token, then the role.
pub(super) fn gate(op: &Operator, csrf: &str, act: Act) -> Option<Response> {
    if !op.csrf_ok(csrf) {
        return Some(refused(op, StatusCode::FORBIDDEN, op.tr().bad_csrf));
    }
    if !op.may(act) {
        return Some(refused(op, StatusCode::FORBIDDEN, op.tr().not_allowed));
    }
    None
}

fn done(page: &str, what: &str, id: Option<u64>) -> Response {
    let id = id.map(|i| format!("&id={i}")).unwrap_or_default();
    Redirect::to(&format!("{page}?done={what}{id}")).into_response()
}

pub(super) fn error(e: impl std::fmt::Display) -> Notice {
    Notice { error: Some(e.to_string()), flash: None }
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
}

pub(super) async fn login(State(c): State<Console>, Form(f): Form<LoginForm>) -> Response {
    match c.node.login(f.name.trim(), &f.password).await {
        Ok(o) => {
            let id = c.sessions.open(&o);
            ([(header::SET_COOKIE, c.sessions.set_cookie(&id))], Redirect::to("/cases")).into_response()
        }
        Err(e) => pages::login_page(&c, StatusCode::UNAUTHORIZED, Some(e.to_string())),
    }
}

pub(super) async fn logout(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Form(f): Form<Plain>,
) -> Response {
    if let Some(r) = gate(&op, &f.csrf, Act::Read) {
        return r;
    }
    c.sessions.close(&op.id);
    ([(header::SET_COOKIE, c.sessions.clear_cookie())], Redirect::to("/login")).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LanguageForm {
    #[serde(default)]
    csrf: String,
    language: String,
}

pub(super) async fn language(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Form(f): Form<LanguageForm>,
) -> Response {
    if let Some(r) = gate(&op, &f.csrf, Act::Read) {
        return r;
    }
    match op.node(&c).set_operator_language(&op.session.operator, &f.language).await {
        Ok(()) => {
            c.sessions.set_language(&op.id, &f.language);
            Redirect::to("/federation").into_response()
        }
        Err(e) => refused(&op, StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// Most fields a console upload form has.
const MAX_FIELDS: usize = 16;
/// Longest text field of an upload form.
const MAX_FIELD_BYTES: usize = 4096;

/// Largest PAD attestation file (as the CLI's `--pad`).
const MAX_PAD_BYTES: usize = 64 * 1024;

/// An upload form: its text fields, its file (`template`) and the
/// capture's optional PAD attestation file (`pad`).
pub(super) struct Upload {
    fields: HashMap<String, String>,
    file: Vec<u8>,
    pad: Vec<u8>,
}

impl Upload {
    pub(super) async fn read(mut mp: Multipart) -> Result<Self, String> {
        let mut fields = HashMap::new();
        let (mut file, mut pad) = (Vec::new(), Vec::new());
        for _ in 0..MAX_FIELDS {
            let Some(field) = mp.next_field().await.map_err(|e| format!("form: {e}"))? else {
                return Ok(Self { fields, file, pad });
            };
            let name = field.name().unwrap_or_default().to_string();
            let bytes = field.bytes().await.map_err(|e| format!("form field {name}: {e}"))?;
            if name == "template" {
                file = bytes.to_vec();
            } else if name == "pad" {
                if bytes.len() > MAX_PAD_BYTES {
                    return Err(format!("the PAD attestation file is over {MAX_PAD_BYTES} bytes"));
                }
                pad = bytes.to_vec();
            } else if bytes.len() > MAX_FIELD_BYTES {
                return Err(format!("form field {name} is over {MAX_FIELD_BYTES} bytes"));
            } else {
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| format!("form field {name} is not UTF-8"))?;
                fields.insert(name, text);
            }
        }
        Err(format!("a form has at most {MAX_FIELDS} fields"))
    }

    pub(super) fn get(&self, name: &str) -> &str {
        self.fields.get(name).map(|s| s.trim()).unwrap_or("")
    }

    /// The uploaded template file or fingerprint record, as the API takes
    /// it, with the PAD attestation file if one came (a record then goes
    /// whole: the attestation covers its bytes).
    fn template(&self) -> Result<crate::api::TemplateInput, String> {
        let body = self.file.trim_ascii_start();
        if body.is_empty() {
            return Err("choose a template file or a fingerprint record".into());
        }
        let pad = match self.pad.trim_ascii() {
            [] => None,
            bytes => Some(serde_json::from_slice(bytes).map_err(|e| format!("PAD attestation file: {e}"))?),
        };
        if body.starts_with(b"{") {
            let file: vigil_matcher::TemplateFile =
                serde_json::from_slice(body).map_err(|e| format!("template file: {e}"))?;
            return Ok(crate::api::TemplateInput { pad, ..crate::api::TemplateInput::file(file) });
        }
        let record = vigil_records::decode(&self.file).map_err(|e| e.to_string())?;
        if pad.is_some() {
            use base64::Engine;
            let record = Some(base64::engine::general_purpose::STANDARD.encode(&self.file));
            return Ok(crate::api::TemplateInput { record, pad, ..Default::default() });
        }
        Ok(crate::api::TemplateInput { minutiae: Some(record), ..Default::default() })
    }

    fn category(&self) -> Result<Category, String> {
        serde_json::from_value(serde_json::Value::String(self.get("category").into()))
            .map_err(|_| format!("unknown category {:?}", self.get("category")))
    }
}

/// The upload's template and the PAD claim inside its template file.
pub(super) async fn template_of(c: &Console, u: &Upload) -> Result<crate::api::Captured, String> {
    let policy = c.node.biometric().await.map_err(|e| e.to_string())?;
    u.template()?.to_capture(&policy)
}

pub(super) async fn enrol(State(c): State<Console>, Extension(op): Extension<Operator>, mp: Multipart) -> Response {
    match enrol_upload(&c, &op, mp).await {
        Ok(r) => r,
        Err(e) => pages::records_page(&c, &op, "", error(e), StatusCode::BAD_REQUEST).await,
    }
}

async fn enrol_upload(c: &Console, op: &Operator, mp: Multipart) -> Result<Response, String> {
    let u = Upload::read(mp).await?;
    if let Some(r) = gate(op, u.get("csrf"), Act::Casework) {
        return Ok(r);
    }
    let crate::api::Captured { template, pad } = template_of(c, &u).await?;
    if u.get("consent").is_empty() {
        return Err("consent is required: say how the person (or their guardian) agreed".into());
    }
    let e = vigil_engine::Enrolment {
        template,
        pad,
        category: u.category()?,
        case_ref: u.get("case_ref").into(),
        consent: u.get("consent").into(),
        retain_until_ms: crate::api::parse_date(u.get("retain_until"))?,
        regime: None,
    };
    let id = op.node(c).enrol(e).await.map_err(|e| e.to_string())?;
    Ok(done("/records", "enrolled", Some(id)))
}

pub(super) async fn publish(State(c): State<Console>, Extension(op): Extension<Operator>, mp: Multipart) -> Response {
    match publish_upload(&c, &op, mp).await {
        Ok(r) => r,
        Err(e) => pages::cases_page(&c, &op, error(e), StatusCode::BAD_REQUEST, 0).await,
    }
}

async fn publish_upload(c: &Console, op: &Operator, mp: Multipart) -> Result<Response, String> {
    let u = Upload::read(mp).await?;
    if let Some(r) = gate(op, u.get("csrf"), Act::Casework) {
        return Ok(r);
    }
    let crate::api::Captured { template, pad } = template_of(c, &u).await?;
    let lifetime = crate::api::parse_duration(u.get("expires"))?;
    let expires_at_ms = crate::now_ms() + lifetime.as_millis() as u64;
    let node = op.node(c);
    node.publish_attested(template, pad, u.category()?, u.get("case_ref").into(), expires_at_ms)
        .await
        .map_err(|e| e.to_string())?;
    Ok(done("/cases", "published", None))
}

pub(super) async fn withdraw(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Path(id): Path<String>,
    Form(f): Form<Plain>,
) -> Response {
    if let Some(r) = gate(&op, &f.csrf, Act::Casework) {
        return r;
    }
    let result = match AlertId::from_hex(&id) {
        Ok(alert) => op.node(&c).withdraw(alert).await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("alert id: {e}")),
    };
    match result {
        Ok(()) => done("/cases", "withdrawn", None),
        Err(e) => pages::cases_page(&c, &op, error(e), StatusCode::BAD_REQUEST, 0).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ReasonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: Option<String>,
}

pub(super) async fn request_disclosure(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Path(handle): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    if let Some(r) = gate(&op, &f.csrf, Act::Casework) {
        return r;
    }
    let result = match Handle::from_hex(&handle) {
        Ok(_) if f.reason.trim().is_empty() => Err("a reason is required".to_string()),
        Ok(h) => op.node(&c).request_disclosure(h, f.reason.trim().into()).await.map_err(|e| e.to_string()),
        Err(e) => Err(format!("hit: {e}")),
    };
    match result {
        Ok(_) => done("/hits", "requested", None),
        Err(e) => pages::hits_page(&c, &op, error(e), StatusCode::BAD_REQUEST, 0).await,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ApproveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    contact: String,
}

async fn decide(c: &Console, op: &Operator, id: &str, contact: Option<String>) -> Response {
    let result = match Handle::from_hex(id) {
        Ok(_) if contact.as_deref().is_some_and(|s| s.trim().is_empty()) => {
            Err("the contact to disclose is required".to_string())
        }
        Ok(h) => {
            op.node(c).decide_disclosure(h, contact.map(|s| s.trim().to_string())).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("disclosure: {e}")),
    };
    match result {
        Ok(()) => done("/disclosures", "decided", None),
        Err(e) => pages::disclosures_page(c, op, error(e), StatusCode::BAD_REQUEST).await,
    }
}

pub(super) async fn approve(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Path(id): Path<String>,
    Form(f): Form<ApproveForm>,
) -> Response {
    if let Some(r) = gate(&op, &f.csrf, Act::Decide) {
        return r;
    }
    decide(&c, &op, &id, Some(f.contact)).await
}

pub(super) async fn refuse(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Path(id): Path<String>,
    Form(f): Form<Plain>,
) -> Response {
    if let Some(r) = gate(&op, &f.csrf, Act::Decide) {
        return r;
    }
    decide(&c, &op, &id, None).await
}

pub(super) async fn erase(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Path(id): Path<u64>,
    Form(f): Form<ReasonForm>,
) -> Response {
    if let Some(r) = gate(&op, &f.csrf, Act::Casework) {
        return r;
    }
    let reason = f.reason.trim();
    let result = if f.confirm.as_deref() != Some("yes") {
        Err("tick the confirmation to erase a record".to_string())
    } else if reason.is_empty() || reason.len() > 256 {
        Err("reason must be 1..=256 bytes".to_string())
    } else {
        op.node(&c).erase(id, reason.into()).await.map_err(|e| e.to_string())
    };
    match result {
        Ok(()) => done("/records", "erased", Some(id)),
        Err(e) => pages::records_page(&c, &op, "", error(e), StatusCode::BAD_REQUEST).await,
    }
}
