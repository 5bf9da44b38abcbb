//! Console sessions: a random 256-bit id in an HttpOnly, SameSite=Strict
//! cookie, held in memory by its SHA-256 (a restart logs everyone out),
//! with a CSRF token every form must send back, an idle and an absolute
//! expiry, and a cap on how many exist at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vigil_engine::operators::{OperatorView, Role};

/// The session cookie's name begins so; the node's org id follows, since
/// browsers keep cookies per host, not per port, and two nodes on one
/// machine would otherwise sign each other's operators out.
const COOKIE: &str = "vigil_session";
/// Sessions held at once; a login beyond ends the oldest.
pub(crate) const MAX_SESSIONS: usize = 256;

/// A logged-in operator.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub operator: String,
    pub role: Role,
    pub language: String,
    /// The token every form of this session carries (`csrf`).
    pub csrf: String,
    /// The operator's `password_set_at_ms` at login: a new password ends
    /// the session.
    pub password_set_at_ms: u64,
    created: Instant,
    last_used: Instant,
}

/// Every live session, by the SHA-256 of its id.
#[derive(Debug)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
    cookie: String,
    idle: Duration,
    max: Duration,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

fn digest(id: &str) -> [u8; 32] {
    vigil_crypto::sha256(id.as_bytes())
}

/// Whether two secrets are equal, in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    digest(a) == digest(b)
}

impl Sessions {
    /// Sessions of the node whose org id (hex) is `org`.
    pub(crate) fn new(org: &str, idle: Duration, max: Duration) -> Self {
        let cookie = format!("{COOKIE}_{}", &org[..org.len().min(16)]);
        Self { map: Mutex::new(HashMap::new()), cookie, idle, max }
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_used) < self.idle && now.duration_since(s.created) < self.max
    }

    /// A new session for `operator`; returns its id (the cookie's value).
    pub(crate) fn open(&self, operator: &OperatorView) -> String {
        let now = Instant::now();
        let id = random_hex();
        let session = Session {
            operator: operator.name.clone(),
            role: operator.role,
            language: operator.language.clone(),
            csrf: random_hex(),
            password_set_at_ms: operator.password_set_at_ms,
            created: now,
            last_used: now,
        };
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, s| self.live(s, now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(digest(&id), session);
        id
    }

    /// The live session with id `id`, its idle clock restarted.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().expect("sessions lock");
        let key = digest(id);
        match map.get_mut(&key) {
            Some(s) if self.live(s, now) => {
                s.last_used = now;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn close(&self, id: &str) {
        self.map.lock().expect("sessions lock").remove(&digest(id));
    }

    /// A session's language after the operator changed it.
    pub(crate) fn set_language(&self, id: &str, language: &str) {
        if let Some(s) = self.map.lock().expect("sessions lock").get_mut(&digest(id)) {
            s.language = language.into();
        }
    }

    /// Test builds: makes every session look idle for longer than allowed.
    #[cfg(test)]
    pub(crate) fn age_all(&self, by: Duration) {
        for s in self.map.lock().expect("sessions lock").values_mut() {
            s.last_used -= by;
            s.created -= by;
        }
    }
}

impl Sessions {
    /// The session id in a request's `Cookie` header, if any.
    pub(crate) fn cookie_of(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == self.cookie)
            .map(|(_, v)| v.to_string())
    }

    /// The `Set-Cookie` value for session `id` (no `Secure`: the console is
    /// served on loopback over plain HTTP, where a browser would drop it).
    pub(crate) fn set_cookie(&self, id: &str) -> String {
        format!("{}={id}; Path=/; HttpOnly; SameSite=Strict", self.cookie)
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub(crate) fn clear_cookie(&self) -> String {
        format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", self.cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_end_on_close() {
        let s = Sessions::new("ab12", Duration::from_secs(60), Duration::from_secs(3600));
        let id = s.open(&view("amira", Role::CaseWorker, "fr"));
        let got = s.get(&id).unwrap();
        assert_eq!((got.operator.as_str(), got.language.as_str()), ("amira", "fr"));
        assert!(s.get("not-a-session").is_none());
        s.age_all(Duration::from_secs(61));
        assert!(s.get(&id).is_none(), "idle past the limit");
        let id = s.open(&view("bo", Role::Approver, "en"));
        s.close(&id);
        assert!(s.get(&id).is_none());
    }

    fn view(name: &str, role: Role, language: &str) -> OperatorView {
        OperatorView {
            name: name.into(),
            role,
            disabled: false,
            locked_until_ms: 0,
            language: language.into(),
            created_at_ms: 0,
            password_set_at_ms: 0,
        }
    }

    #[test]
    fn the_cookie_is_this_nodes_and_is_read_among_others() {
        let s = Sessions::new("ab12", Duration::from_secs(60), Duration::from_secs(3600));
        let other = Sessions::new("cd34", Duration::from_secs(60), Duration::from_secs(3600));
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; vigil_session_cd34=xyz; vigil_session_ab12=abc; b=2".parse().unwrap(),
        );
        assert_eq!(s.cookie_of(&h).as_deref(), Some("abc"));
        assert_eq!(other.cookie_of(&h).as_deref(), Some("xyz"));
        assert!(s.set_cookie("abc").starts_with("vigil_session_ab12=abc; Path=/; HttpOnly; SameSite=Strict"));
    }
}
