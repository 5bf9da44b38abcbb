//! The operator console: server-rendered pages that `vigil serve` serves
//! on its loopback API address (templates and stylesheet compiled into the
//! binary; no script, nothing fetched at run time). Operators log in with
//! their own password; a session cookie carries them, every form carries
//! the session's CSRF token, and every audit entry made here names them.

mod audit;
mod exports;
mod forms;
mod health;
mod i18n;
mod identify;
mod lists;
mod pages;
mod session;

use crate::runtime::NodeHandle;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use i18n::Tr;
use session::{Session, Sessions};
use std::sync::Arc;
use std::time::Duration;
use vigil_engine::operators::Act;

/// What the console needs from the node's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The organisation's name, on every page.
    pub org: String,
    /// A hit's follow-up is due this long after it (`console.follow_up`).
    pub follow_up: Duration,
    pub session_idle: Duration,
    pub session_max: Duration,
    /// Largest form upload (`api.max_body_bytes`).
    pub max_upload_bytes: usize,
    /// The health page's sampling interval and window.
    pub health_every: Duration,
    pub health_window: Duration,
}

impl Settings {
    pub fn of(config: &vigil_config::NodeConfig) -> Self {
        let c = &config.console;
        Self {
            org: config.org.name.clone(),
            follow_up: c.follow_up,
            session_idle: c.session_idle,
            session_max: c.session_max,
            max_upload_bytes: config.api.max_body_bytes,
            health_every: c.health_every,
            health_window: c.health_window,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Console {
    node: NodeHandle,
    sessions: Arc<Sessions>,
    settings: Arc<Settings>,
    health: Arc<health::History>,
}

/// The logged-in operator of a request (put there by `require_session`).
#[derive(Clone)]
pub(crate) struct Operator {
    session: Session,
    /// The session id (the cookie's value).
    id: String,
}

impl Operator {
    fn may(&self, act: Act) -> bool {
        self.session.role.may(act)
    }
    fn tr(&self) -> &'static Tr {
        i18n::tr(&self.session.language)
    }
    /// The node, acting for this operator: its audit entries name them.
    fn node(&self, c: &Console) -> NodeHandle {
        c.node.acting(&self.session.operator)
    }
    /// Whether a form's `csrf` field is this session's token.
    fn csrf_ok(&self, given: &str) -> bool {
        session::same_secret(&self.session.csrf, given)
    }
}

/// What every page shows around its content.
pub(crate) struct Frame<'a> {
    tr: &'static Tr,
    title: &'a str,
    org: &'a str,
    operator: Option<&'a str>,
    role: &'a str,
    csrf: &'a str,
    active: &'a str,
    error: Option<String>,
    flash: Option<String>,
    may_casework: bool,
    may_decide: bool,
}

impl<'a> Frame<'a> {
    fn new(c: &'a Console, op: &'a Operator, title: &'a str, active: &'a str) -> Self {
        Frame {
            tr: op.tr(),
            title,
            org: &c.settings.org,
            operator: Some(&op.session.operator),
            role: op.session.role.as_str(),
            csrf: &op.session.csrf,
            active,
            error: None,
            flash: None,
            may_casework: op.may(Act::Casework),
            may_decide: op.may(Act::Decide),
        }
    }
}

/// A rendered page (or the error that stopped it, as a plain 500).
fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    match page {
        Ok(body) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!("console page failed to render: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response()
        }
    }
}

/// A page refused for the operator's role or a bad CSRF token.
fn refused(op: &Operator, status: StatusCode, why: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{}: {why}", op.tr().error)).into_response()
}

/// Checks that the request carries a live session of an operator who may
/// still log in (not disabled or locked since, same role, password not
/// changed since); else sends pages to the
/// login form and refuses anything else.
async fn require_session(State(c): State<Console>, mut request: Request, next: Next) -> Response {
    let found = match c.sessions.cookie_of(request.headers()).and_then(|id| c.sessions.get(&id).map(|s| (id, s))) {
        Some((id, s)) => match c.node.active_operator(&s.operator).await {
            Ok(o) if o.role == s.role && o.password_set_at_ms == s.password_set_at_ms => {
                Some(Operator { session: s, id })
            }
            _ => {
                c.sessions.close(&id);
                None
            }
        },
        None => None,
    };
    let Some(op) = found else {
        if request.method() == axum::http::Method::GET {
            return Redirect::to("/login").into_response();
        }
        return (StatusCode::UNAUTHORIZED, "not signed in (or the session expired): sign in again at /login")
            .into_response();
    };
    request.extensions_mut().insert(op);
    next.run(request).await
}

/// Headers on every console response: no caching, no framing, no script,
/// no referrer, and only this origin for styles and forms.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    response
}

async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../static/console.css"))
}

/// The console's routes: the login form and stylesheet open, every other
/// page behind a session.
pub fn router(node: NodeHandle, settings: Settings) -> Router {
    let health = Arc::new(health::History::new(settings.health_every, settings.health_window));
    // Outside a runtime (a router built for inspection) nothing is sampled.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(health::sample_loop(node.clone(), health.clone()));
    }
    let c = Console {
        sessions: Arc::new(Sessions::new(&node.org.to_hex(), settings.session_idle, settings.session_max)),
        node,
        settings: Arc::new(settings),
        health,
    };
    let uploads = DefaultBodyLimit::max(c.settings.max_upload_bytes);
    let behind = Router::new()
        .route("/", get(|| async { Redirect::to("/cases") }))
        .route("/logout", post(forms::logout))
        .route("/cases", get(pages::cases).post(forms::publish))
        .route("/cases/export.csv", get(exports::cases_csv))
        .route("/cases/{id}", get(pages::case))
        .route("/cases/{id}/cap", get(exports::cap))
        .route("/cases/{id}/withdraw", post(forms::withdraw))
        .route("/hits", get(pages::hits))
        .route("/hits/export.csv", get(exports::hits_csv))
        .route("/hits/{handle}/disclosure", post(forms::request_disclosure))
        .route("/disclosures", get(pages::disclosures))
        .route("/disclosures/{id}/approve", post(forms::approve))
        .route("/disclosures/{id}/refuse", post(forms::refuse))
        .route("/identify", get(identify::page).post(identify::search))
        .route("/records", get(pages::records).post(forms::enrol))
        .route("/records/{id}/erase", post(forms::erase))
        .route("/audit", get(audit::audit))
        .route("/audit/export", get(audit::audit_export))
        .route("/federation", get(pages::federation))
        .route("/health", get(health::page))
        .route("/health/{plot}", get(health::svg))
        .route("/language", post(forms::language))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page") })
        .layer(uploads)
        .route_layer(middleware::from_fn_with_state(c.clone(), require_session));
    Router::new()
        .route("/login", get(pages::login).post(forms::login))
        .route("/static/console.css", get(stylesheet))
        .merge(behind)
        .with_state(c)
        .layer(middleware::from_fn(security_headers))
}
