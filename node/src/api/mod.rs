//! The local HTTP API (JSON over 127.0.0.1) that `vigil` subcommands and
//! case-management systems use to drive a running node. One layer in front
//! of every `/v1` route (and unknown `/v1` path) checks `Authorization:
//! Bearer <token>` against the token from `api.token` before anything else,
//! the body included, is read; every other path is the operator console,
//! behind its own login (`crate::console`). Routes are listed in `ROUTES`
//! and documented in README.md.

mod guard;
mod token;

pub use guard::Limits;
pub use token::{ApiToken, TokenError, MIN_TOKEN_CHARS};

use crate::runtime::{NodeError, NodeHandle};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use vigil_engine::model::Regime;
use vigil_engine::{EngineError, Enrolment};
use vigil_matcher::TemplateFile;
use vigil_protocol::pad::PadAttestation;
use vigil_protocol::{AlertId, Category, RosterFile};

/// (method, path, what it does).
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/v1/status", "node identity, peers, roster version, counts"),
    ("GET", "/v1/metrics", "metrics in the Prometheus text format (peers, gossip verdicts, commits, gossipsub)"),
    ("GET", "/v1/records", "list enrolled records (ids and case facts, no templates)"),
    ("POST", "/v1/records", "enrol a record"),
    ("POST", "/v1/backup", "write a sealed backup as {name} in DATA/backups (never over a file)"),
    ("POST", "/v1/records/{id}/erase", "erase a record ({reason}; audited, gone from the files)"),
    ("GET", "/v1/alerts", "list alerts"),
    ("POST", "/v1/alerts", "publish an alert"),
    ("POST", "/v1/alerts/{id}/withdraw", "withdraw one of our alerts"),
    ("GET", "/v1/hits", "list hits (as holder and as issuer)"),
    ("GET", "/v1/audit/verify", "verify the audit chain"),
    ("GET", "/v1/audit/export", "export the audit chain"),
    ("POST", "/v1/roster", "apply a newer signed roster"),
    ("POST", "/v1/identify", "encrypted identification query to every connected member"),
    ("GET", "/v1/disclosures", "disclosure requests, both directions"),
    ("POST", "/v1/disclosures", "ask the holder of a hit to disclose its case contact"),
    ("POST", "/v1/disclosures/{id}/approve", "approve a pending request, with the contact"),
    ("POST", "/v1/disclosures/{id}/refuse", "refuse a pending request"),
    ("POST", "/v1/keys/rotate", "replace the GLWE key for encrypted queries"),
    ("GET", "/v1/operators", "the console's operators (names, roles, state; never a hash)"),
    ("POST", "/v1/operators", "add an operator ({name, role, password, language})"),
    ("POST", "/v1/operators/{name}/disable", "disable an operator (no further login)"),
    ("POST", "/v1/operators/{name}/password", "set an operator's password ({password}; ends a lock-out)"),
];

#[derive(Clone)]
struct ApiState {
    node: NodeHandle,
}

/// An error as the API returns it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        let code = match &e {
            NodeError::Engine(EngineError::UnknownAlert(_)) => StatusCode::NOT_FOUND,
            NodeError::Engine(EngineError::NotAllowed(_)) | NodeError::Engine(EngineError::NotOurs(_)) => {
                StatusCode::FORBIDDEN
            }
            NodeError::Engine(_) => StatusCode::BAD_REQUEST,
            NodeError::Operator(vigil_engine::operators::OperatorError::Unknown(_)) => StatusCode::NOT_FOUND,
            NodeError::Operator(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(code, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, msg.into())
}

/// Parses `YYYY-MM-DD` or an RFC 3339 timestamp to Unix milliseconds.
pub fn parse_date(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let full = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_string() };
    let t = humantime::parse_rfc3339_weak(&full).map_err(|e| format!("invalid date {s:?} (use YYYY-MM-DD): {e}"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0))
}

/// Parses a duration like `30d` or `12h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?} (e.g. 30d, 12h): {e}"))
}

/// How a request carries its biometric: exactly one of a Vigil JSON
/// template file, a standard fingerprint record (its bytes in base64: ISO/IEC
/// 19794-2, ANSI INCITS 378, ANSI/NIST-ITL), or such a record's minutiae
/// already decoded (what the CLI sends, leaving images behind); and
/// optionally the capture SDK's PAD attestation over it (`pad`, or inside
/// the template file).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TemplateInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutiae: Option<vigil_records::Record>,
    /// The fingerprint extractor, where several of the policy read minutiae.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extractor: Option<String>,
    /// A liveness (PAD) attestation over the template file's vector or the
    /// record's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<PadAttestation>,
}

impl TemplateInput {
    pub fn file(file: TemplateFile) -> Self {
        Self { template: Some(file), ..Default::default() }
    }

    /// The template under `policy` and the PAD claim it came with, or the
    /// precise reason there is none. The claim is checked by the node.
    pub fn to_capture(&self, policy: &vigil_matcher::Policy) -> Result<Captured, String> {
        use base64::Engine;
        let from_record = |r: &vigil_records::Record| {
            vigil_matcher::minutiae::policy_template(policy, r, self.extractor.as_deref()).map_err(|e| e.to_string())
        };
        let claim = |pad: Option<&PadAttestation>, sample| {
            pad.map(|p| vigil_engine::PadClaim { attestation: p.clone(), sample })
        };
        match (&self.template, &self.record, &self.minutiae) {
            (Some(f), None, None) => {
                if f.pad.is_some() && self.pad.is_some() {
                    return Err("give the PAD attestation once: in the template file or as pad, not both".into());
                }
                let template = f.to_template(policy).map_err(|e| e.to_string())?;
                Ok(Captured { template, pad: claim(f.pad.as_ref().or(self.pad.as_ref()), f.sample_digest()) })
            }
            (None, Some(b64), None) => {
                if b64.len() > vigil_records::MAX_AN2K_BYTES / 3 * 4 + 4 {
                    return Err(format!("record is over {} bytes", vigil_records::MAX_AN2K_BYTES));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| format!("record is not base64: {e}"))?;
                let template = from_record(&vigil_records::decode(&bytes).map_err(|e| e.to_string())?)?;
                let sample = vigil_protocol::Digest(vigil_crypto::sha256(&bytes));
                Ok(Captured { template, pad: claim(self.pad.as_ref(), sample) })
            }
            (None, None, Some(r)) => {
                if self.pad.is_some() {
                    return Err("a PAD attestation covers a record's bytes: send the record itself (record, \
                                in base64), not its decoded minutiae"
                        .into());
                }
                r.check().map_err(|e| e.to_string())?;
                Ok(Captured { template: from_record(r)?, pad: None })
            }
            _ => Err("give exactly one of template (a Vigil template file), record (a standard fingerprint record in base64) or minutiae".into()),
        }
    }
}

/// A checked template and the PAD claim that came with it.
#[derive(Debug)]
pub struct Captured {
    pub template: vigil_matcher::Template,
    pub pad: Option<vigil_engine::PadClaim>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EnrolRequest {
    #[serde(flatten)]
    pub template: TemplateInput,
    pub category: Category,
    pub case_ref: String,
    pub consent: String,
    /// `YYYY-MM-DD` or RFC 3339.
    pub retain_until: String,
    #[serde(default)]
    pub regime: Option<Regime>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AlertRequest {
    #[serde(flatten)]
    pub template: TemplateInput,
    #[serde(default = "missing")]
    pub category: Category,
    pub case_ref: String,
    /// Lifetime such as `30d`.
    pub expires: String,
}

fn missing() -> Category {
    Category::Missing
}

#[derive(Debug, Serialize, Deserialize)]
pub struct IdentifyBody {
    #[serde(flatten)]
    pub template: TemplateInput,
    /// Why the query is made (audited at both ends).
    pub purpose: String,
    /// The legal basis (audited at both ends).
    pub legal_basis: String,
    /// The id of this node's own alert (case) the query is made for;
    /// recorded in this node's audit only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}

/// The one authentication check, in front of every `/v1` route: a request
/// without the matching bearer token gets 401 and nothing else is read.
/// Other paths are the console's, which checks its sessions itself.
async fn require_token(State(token): State<ApiToken>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path != "/v1" && !path.starts_with("/v1/") {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| token.matches(g)) {
        return Failure(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (see api.token)".into())
            .into_response();
    }
    next.run(request).await
}

/// Whether a `Host` header names this machine in a way a DNS-rebinding page
/// cannot forge: an IP address or `localhost` (with or without a port). A
/// page of a domain that re-resolves to 127.0.0.1 still sends its own name.
pub fn host_allowed(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || port.starts_with(':') => {
                return ip.parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// In front of everything: a request whose `Host` is not this machine's
/// address (`host_allowed`) is refused before any other check.
async fn require_host(request: Request, next: Next) -> Response {
    let host = request.headers().get(axum::http::header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(host_allowed) {
        return Failure(
            StatusCode::MISDIRECTED_REQUEST,
            "the Host header must be localhost or an IP address (DNS-rebinding protection)".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// A template file or fingerprint record checked and normalised under the
/// node's policy.
async fn template_of(s: &ApiState, input: &TemplateInput) -> Result<Captured, Failure> {
    let policy = s.node.biometric().await?;
    input.to_capture(&policy).map_err(bad)
}

async fn status(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(s.node.status().await?))
}

async fn metrics(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    let m = &s.node.metrics;
    m.own.set_status(&s.node.status().await?);
    let body = crate::metrics::encode(&m.registry);
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body))
}

async fn enrol(State(s): State<ApiState>, Json(r): Json<EnrolRequest>) -> Result<impl IntoResponse, Failure> {
    let Captured { template, pad } = template_of(&s, &r.template).await?;
    let retain_until_ms = parse_date(&r.retain_until).map_err(bad)?;
    let id = s
        .node
        .enrol(Enrolment {
            template,
            pad,
            category: r.category,
            case_ref: r.case_ref,
            consent: r.consent,
            retain_until_ms,
            regime: r.regime,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Created { id: id.to_string() })))
}

async fn records(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(s.node.records().await?))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BackupBody {
    /// The backup's file name in the node's backups directory (`DATA/backups`).
    pub name: String,
}

async fn backup(State(s): State<ApiState>, Json(r): Json<BackupBody>) -> Result<impl IntoResponse, Failure> {
    let (path, bytes) = s.node.backup(r.name).await?;
    Ok(Json(BackupWritten { path: path.display().to_string(), bytes }))
}

/// Where a backup went and its size.
#[derive(Debug, Serialize, Deserialize)]
pub struct BackupWritten {
    pub path: String,
    pub bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EraseBody {
    /// Why the record is erased (audited).
    pub reason: String,
}

async fn erase(
    State(s): State<ApiState>,
    Path(id): Path<u64>,
    Json(r): Json<EraseBody>,
) -> Result<impl IntoResponse, Failure> {
    if r.reason.trim().is_empty() || r.reason.len() > 256 {
        return Err(bad("reason must be 1..=256 bytes"));
    }
    s.node.erase(id, r.reason).await?;
    Ok(Json(Created { id: id.to_string() }))
}

async fn alerts(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(s.node.alerts().await?))
}

async fn publish(State(s): State<ApiState>, Json(r): Json<AlertRequest>) -> Result<impl IntoResponse, Failure> {
    let Captured { template, pad } = template_of(&s, &r.template).await?;
    let lifetime = parse_duration(&r.expires).map_err(bad)?;
    let expires_at_ms = crate::now_ms() + lifetime.as_millis() as u64;
    let id = s.node.publish_attested(template, pad, r.category, r.case_ref, expires_at_ms).await?;
    Ok((StatusCode::CREATED, Json(Created { id: id.to_hex() })))
}

async fn withdraw(State(s): State<ApiState>, Path(id): Path<String>) -> Result<impl IntoResponse, Failure> {
    let id = AlertId::from_hex(&id).map_err(|e| bad(format!("alert id: {e}")))?;
    s.node.withdraw(id).await?;
    Ok(Json(Created { id: id.to_hex() }))
}

async fn alert_members(State(s): State<ApiState>, Path(id): Path<String>) -> Result<impl IntoResponse, Failure> {
    let id = AlertId::from_hex(&id).map_err(|e| bad(format!("alert id: {e}")))?;
    Ok(Json(s.node.alert_members(id).await?))
}

async fn hits(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(s.node.hit_views().await?))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries: usize,
    pub error: Option<String>,
}

async fn audit_verify(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(match s.node.audit_verify().await? {
        Ok(n) => VerifyReport { ok: true, entries: n, error: None },
        Err(e) => VerifyReport { ok: false, entries: 0, error: Some(e.to_string()) },
    }))
}

async fn audit_export(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(s.node.audit_export().await?))
}

async fn roster(State(s): State<ApiState>, Json(r): Json<RosterFile>) -> Result<impl IntoResponse, Failure> {
    if r.format != vigil_protocol::ROSTER_FILE_FORMAT {
        return Err(bad(format!("unsupported roster file format {}", r.format)));
    }
    let v = s.node.apply_roster(r.roster).await?;
    Ok(Json(Created { id: v.to_string() }))
}

async fn policy_show(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(s.node.policy().await?))
}

async fn policy_apply(
    State(s): State<ApiState>,
    Json(p): Json<vigil_protocol::PolicyFile>,
) -> Result<impl IntoResponse, Failure> {
    if p.format != vigil_protocol::POLICY_FILE_FORMAT {
        return Err(bad(format!("unsupported policy file format {}", p.format)));
    }
    let v = s.node.apply_policy(p.policy).await?;
    Ok(Json(Created { id: v.to_string() }))
}

async fn identify(State(s): State<ApiState>, Json(r): Json<IdentifyBody>) -> Result<impl IntoResponse, Failure> {
    let Captured { template, pad } = template_of(&s, &r.template).await?;
    let case = r.case.as_deref().map(AlertId::from_hex).transpose().map_err(|e| bad(format!("case: {e}")))?;
    Ok(Json(s.node.identify_attested(template, pad, r.purpose, r.legal_basis, case).await?))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DisclosureBody {
    /// The hit's handle (hex).
    pub hit: String,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ApproveBody {
    pub contact: String,
}

fn handle(s: &str) -> Result<vigil_protocol::Handle, Failure> {
    vigil_protocol::Handle::from_hex(s).map_err(|e| bad(format!("handle: {e}")))
}

async fn disclosures(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(s.node.disclosures().await?))
}

async fn disclose(State(s): State<ApiState>, Json(r): Json<DisclosureBody>) -> Result<impl IntoResponse, Failure> {
    let id = s.node.request_disclosure(handle(&r.hit)?, r.reason).await?;
    Ok((StatusCode::CREATED, Json(Created { id: id.to_hex() })))
}

async fn approve(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Json(r): Json<ApproveBody>,
) -> Result<impl IntoResponse, Failure> {
    s.node.decide_disclosure(handle(&id)?, Some(r.contact)).await?;
    Ok(Json(Created { id }))
}

async fn refuse(State(s): State<ApiState>, Path(id): Path<String>) -> Result<impl IntoResponse, Failure> {
    s.node.decide_disclosure(handle(&id)?, None).await?;
    Ok(Json(Created { id }))
}

async fn rotate(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(Created { id: s.node.rotate_prober_key().await? }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OperatorBody {
    pub name: String,
    /// `case_worker`, `approver`, `auditor` or `admin`.
    pub role: String,
    pub password: String,
    /// `en` or `fr`.
    #[serde(default = "english")]
    pub language: String,
}

fn english() -> String {
    "en".into()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordBody {
    pub password: String,
}

async fn operators(State(s): State<ApiState>) -> Result<impl IntoResponse, Failure> {
    Ok(Json(s.node.operators().await?))
}

async fn add_operator(State(s): State<ApiState>, Json(b): Json<OperatorBody>) -> Result<impl IntoResponse, Failure> {
    let role = b.role.parse().map_err(bad)?;
    s.node.add_operator(&b.name, role, b.password, &b.language).await?;
    Ok((StatusCode::CREATED, Json(Created { id: b.name })))
}

async fn disable_operator(State(s): State<ApiState>, Path(name): Path<String>) -> Result<impl IntoResponse, Failure> {
    s.node.disable_operator(&name).await?;
    Ok(Json(Created { id: name }))
}

async fn operator_password(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    Json(b): Json<PasswordBody>,
) -> Result<impl IntoResponse, Failure> {
    s.node.set_operator_password(&name, b.password).await?;
    Ok(Json(Created { id: name }))
}

/// The API router for `node`, every `/v1` route (and unknown `/v1` path)
/// behind `token`, and the operator console on every other path.
pub fn router(node: NodeHandle, token: ApiToken, max_body_bytes: usize, console: crate::console::Settings) -> Router {
    let pages = crate::console::router(node.clone(), console);
    let state = ApiState { node };
    // A policy with a projection matrix is larger than any other body.
    let policy = Router::new()
        .route("/v1/policy", get(policy_show).post(policy_apply))
        .layer(DefaultBodyLimit::max(vigil_protocol::limits::MAX_POLICY_FILE_BYTES));
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/metrics", get(metrics))
        .route("/v1/records", get(records).post(enrol))
        .route("/v1/records/{id}/erase", post(erase))
        .route("/v1/backup", post(backup))
        .route("/v1/alerts", get(alerts).post(publish))
        .route("/v1/alerts/{id}/withdraw", post(withdraw))
        .route("/v1/alerts/{id}/members", get(alert_members))
        .route("/v1/hits", get(hits))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/audit/export", get(audit_export))
        .route("/v1/roster", post(roster))
        .route("/v1/identify", post(identify))
        .route("/v1/disclosures", get(disclosures).post(disclose))
        .route("/v1/disclosures/{id}/approve", post(approve))
        .route("/v1/disclosures/{id}/refuse", post(refuse))
        .route("/v1/keys/rotate", post(rotate))
        .route("/v1/operators", get(operators).post(add_operator))
        .route("/v1/operators/{name}/disable", post(disable_operator))
        .route("/v1/operators/{name}/password", post(operator_password))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .merge(policy)
        .with_state(state)
        .merge(pages)
        .layer(middleware::from_fn_with_state(token, require_token))
        .layer(middleware::from_fn(require_host))
}

/// Serves the API on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: &str,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let listener = guard::GuardedListener::new(listener, limits);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
            tracing::error!("API server failed: {e}");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::{host_allowed, TemplateInput};
    use vigil_protocol::pad::{PadAttestation, PadBody, PadDecision};

    fn pad() -> PadAttestation {
        let body = PadBody {
            key: "cam".into(),
            sdk: "s".into(),
            decision: PadDecision::BonaFide,
            score: None,
            captured_at_ms: 1,
            sample: vigil_protocol::Digest([0; 32]),
        };
        PadAttestation { body, signature: vigil_protocol::Sig([0; 64]) }
    }

    #[test]
    fn a_pad_claim_names_the_sample_it_came_with() {
        let policy = vigil_matcher::builtin();
        let pop = vigil_matcher::synth::Population::new(1, "vigil-synth-128", 2);
        let mut file = pop.sample_file(0, 0);
        let digest = file.sample_digest();
        file.pad = Some(pad());
        let c = TemplateInput::file(file.clone()).to_capture(policy).unwrap();
        assert_eq!(c.pad.map(|p| p.sample), Some(digest), "the vector's digest");
        // Once only, and never with decoded minutiae (it could not cover them).
        let twice = TemplateInput { pad: Some(pad()), ..TemplateInput::file(file) };
        assert!(twice.to_capture(policy).unwrap_err().contains("once"));
        let prints = vigil_matcher::synth::FingerPopulation::new(1, 2);
        let minutiae =
            TemplateInput { minutiae: Some(prints.record(0, &[1], 0)), pad: Some(pad()), ..Default::default() };
        assert!(minutiae.to_capture(policy).unwrap_err().contains("send the record itself"));
    }

    #[test]
    fn only_ip_addresses_and_localhost_are_accepted_as_host() {
        for ok in ["127.0.0.1:7000", "127.0.0.1", "localhost:80", "LOCALHOST", "[::1]:7000", "[::1]", "10.0.0.2:1"] {
            assert!(host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:7000",
            "evil.example",
            "127.0.0.1.evil.example",
            "[::1]x",
            "[evil]:1",
            "",
            "localhost.evil:1",
        ] {
            assert!(!host_allowed(bad), "{bad}");
        }
    }
}
