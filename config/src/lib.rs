//! Node configuration (`vigil.toml`) and federation policy: every limit,
//! timeout and budget a node uses, with defaults that make a working
//! development node. `NodeConfig::default()` is that development config.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use vigil_protocol::{limits, OrgKind};

/// Bounds of `api.max_body_bytes`: a template file (256 KiB) must fit.
pub const MIN_API_BODY_BYTES: usize = 256 * 1024;
pub const MAX_API_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest config file accepted.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: String },
    #[error("config {path} is invalid: {msg}")]
    Parse { path: String, msg: String },
    #[error("config is invalid: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub org: OrgConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub federation: FederationConfig,
    #[serde(default)]
    pub alerts: AlertPolicy,
    #[serde(default)]
    pub queries: QueryPolicy,
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// The operator console (`vigil serve`'s pages on the API address):
/// sessions, the second approver for disclosures, the follow-up clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether an approved disclosure needs a second operator with the
    /// approver role, different from the first. Unset: on for police and
    /// border organisations, off for the others (`four_eyes_for`).
    pub four_eyes: Option<bool>,
    /// How long after a hit its follow-up is due (Prüm II: 48 hours); the
    /// console shows it overdue after that.
    #[serde(with = "humantime_serde")]
    pub follow_up: Duration,
    /// A session unused this long ends.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    #[serde(with = "humantime_serde")]
    pub session_max: Duration,
    /// Failed logins in a row before an operator is locked out.
    pub max_failed_logins: u32,
    /// How long a lock-out lasts (an admin's `vigil operator passwd` ends it sooner).
    #[serde(with = "humantime_serde")]
    pub lockout: Duration,
    /// How often the health page samples the node's metrics.
    #[serde(with = "humantime_serde")]
    pub health_every: Duration,
    /// How far back the health page's plots go (samples kept in memory).
    #[serde(with = "humantime_serde")]
    pub health_window: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            four_eyes: None,
            follow_up: Duration::from_secs(48 * 3600),
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            max_failed_logins: 5,
            lockout: Duration::from_secs(15 * 60),
            health_every: Duration::from_secs(60),
            health_window: Duration::from_secs(6 * 3600),
        }
    }
}

impl ConsoleConfig {
    /// Whether disclosures need two approvers at an organisation of `kind`.
    pub fn four_eyes_for(&self, kind: OrgKind) -> bool {
        self.four_eyes.unwrap_or(matches!(kind, OrgKind::Police | OrgKind::Border))
    }
}

/// Encrypted identification queries: budgets per peer, size limits, timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryPolicy {
    /// Queries answered per peer in any rolling hour.
    pub per_hour: u32,
    /// Queries answered per peer in any rolling day.
    pub per_day: u32,
    /// How long a prober waits for answers.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A query whose answers hold more than this fraction of positives is
    /// flagged in the prober's audit log (a probe that matches "everyone"
    /// is a sign of misuse or a broken capture).
    pub flag_hit_fraction: f64,
    /// Largest query frame accepted (a column-form probe is 16 KiB per
    /// dimension: 30 MiB for a ten-finger extractor of 1,920).
    pub max_query_bytes: usize,
    /// Largest answer frame accepted (16 KiB per 2048 gallery records).
    pub max_answer_bytes: usize,
    /// How long the prober keeps the hits of its queries (handles to ask
    /// disclosure with); older ones are purged on schedule, unless a
    /// disclosure of one is still undecided.
    #[serde(with = "humantime_serde")]
    pub keep_hits: Duration,
}

impl Default for QueryPolicy {
    fn default() -> Self {
        Self {
            per_hour: 20,
            per_day: 100,
            timeout: Duration::from_secs(30),
            flag_hit_fraction: 0.001,
            max_query_bytes: 33 * 1024 * 1024,
            max_answer_bytes: 32 * 1024 * 1024,
            keep_hits: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    pub name: String,
    pub kind: OrgKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Largest request-response frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Largest gossip message accepted or sent.
    pub max_gossip_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often unconnected roster members are dialled again.
    #[serde(with = "humantime_serde")]
    pub redial_interval: Duration,
    /// How long a message waits for an unreachable peer (hit notices,
    /// answer pages, disclosure messages) before it is given up, audited.
    /// Retries back off from 1 s to 10 min, with jitter.
    #[serde(with = "humantime_serde")]
    pub outbox_ttl: Duration,
    /// Catch-up bytes this node serves one peer per hour; beyond, its
    /// pulls are refused `RateLimited` until the hour has passed.
    pub sync_bytes_per_hour: u64,
    /// Protocol violations (malformed or oversized frames, forged messages)
    /// before a peer is disconnected and blocked until restart.
    pub max_strikes: u32,
    /// Most simultaneous connections per peer.
    pub max_connections_per_peer: u32,
    /// Most requests taken from one peer per minute (both protocols);
    /// beyond, they are refused `RateLimited` before being decoded.
    pub max_requests_per_minute: u32,
    /// Most requests of one peer refused per minute (over budget, unknown
    /// alert or hit, not allowed, malformed): beyond, its requests are
    /// refused before being decoded until the minute ends, so refusals
    /// (a decode and an audit entry each) cost a bounded amount of work.
    pub max_refused_per_minute: u32,
    /// Refused connections are counted per source address and audited as
    /// one entry per this interval at most; so are the answer pages of
    /// standing matching (`alert_answers_counted`).
    #[serde(with = "humantime_serde")]
    pub refusals_audit_interval: Duration,
    /// How long a peer stays blocked after `max_strikes` violations (kept
    /// across restarts).
    #[serde(with = "humantime_serde")]
    pub block_for: Duration,
    /// Inbound connections one IP address may hold in their handshake at
    /// once (of libp2p's 256 in all).
    pub max_pending_per_ip: usize,
    /// A connection that has not finished Noise and Yamux by then is
    /// dropped.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/7600".into()],
            max_frame_bytes: 256 * 1024,
            max_gossip_bytes: 40 * 1024,
            request_timeout: Duration::from_secs(10),
            redial_interval: Duration::from_secs(5),
            outbox_ttl: Duration::from_secs(30 * 24 * 3600),
            sync_bytes_per_hour: 4 * 1024 * 1024 * 1024,
            max_strikes: 3,
            max_connections_per_peer: 2,
            max_requests_per_minute: 60_000,
            max_refused_per_minute: 60,
            refusals_audit_interval: Duration::from_secs(60),
            block_for: Duration::from_secs(24 * 3600),
            max_pending_per_ip: 8,
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Loopback address of the local HTTP API.
    pub listen: String,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Connections open at once; one beyond is closed at once.
    pub max_connections: usize,
    /// A connection that moves no byte for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A connection is closed after this long, whatever it does (slowly
    /// trickling requests included). Longer than the slowest answer
    /// (`queries.timeout`, an erasure's compaction).
    #[serde(with = "humantime_serde")]
    pub connection_lifetime: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7700".into(),
            max_body_bytes: 512 * 1024,
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            connection_lifetime: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Path of the signed roster (JSON), relative to the data directory.
    pub roster: Option<String>,
    /// Hex ed25519 public keys of the stewards this node trusts.
    pub stewards: Vec<String>,
    /// How many distinct stewards must sign a roster.
    pub threshold: usize,
    /// Hex 32-byte federation epoch secret keying protected templates.
    pub epoch_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertPolicy {
    /// Alerts created longer ago than this are refused as stale or replayed.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Alerts dated further in the future than this are refused.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
    /// Longest expiry an alert may ask for.
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// Most active alerts kept; beyond it new ones are refused.
    pub max_active: usize,
    /// What this node's alerts carry: `encrypted` (a GLWE probe only this
    /// node can read answers to), `protected` (keyed sign-random-projection
    /// bits under the epoch secret; every member can match and link them),
    /// or `both` (for federations whose policy lets members without the
    /// means for homomorphic work match the protected template; the alert
    /// is then as linkable as a protected one).
    pub form: AlertForm,
    /// When an alert carries both forms, match its protected template
    /// (a hit notice, no homomorphic work) instead of answering its
    /// encrypted probe.
    pub answer_protected: bool,
    /// Answer an encrypted alert in column form (fetching that probe from
    /// the issuer: 16 KiB per dimension, then 16 KiB per 2048 records) when
    /// this node holds more than this many records of the alert's
    /// extractor, and never below. Unset: whichever form moves fewer bytes
    /// (above 211,968 records at d = 128 the column form does).
    pub column_above: Option<usize>,
    /// Answer an encrypted alert with a split row probe fetched from the
    /// issuer when that moves fewer bytes than the alert's own probe (a few
    /// hundred records and up at d = 128: 8 chunks, 108 KiB, make answers
    /// seven times smaller). Off: the alert's probe or the column form.
    pub split_probes: bool,
    /// Most alerts one issuer may create in any hour (by their signed
    /// creation times); beyond, its alerts are ignored (live) or its log is
    /// not pulled further (catch-up) until the hour has passed. Bounds a
    /// compromised member that floods valid alerts.
    pub max_per_issuer_per_hour: usize,
    /// Most alerts one issuer may create in any minute; unset: a tenth of
    /// the hourly bound, at least 5. Keeps a burst (a member publishing its
    /// whole hourly allowance at once) from reaching every member, and
    /// every member's homomorphic work, at once.
    pub max_per_issuer_per_minute: Option<usize>,
    /// How long after its withdrawal or expiry an alert keeps its payload
    /// (protected template or encrypted probe); then the payload is purged
    /// and the alert kept as its signed header, which still serves and
    /// links its issuer's log. The delay lets answers in flight arrive.
    #[serde(with = "humantime_serde")]
    pub purge_closed_after: Duration,
    /// Encrypted alerts of one issuer this node answers in any rolling
    /// hour, and day: each answer tells the issuer a threshold bit per
    /// record, as a query does, so alerts have a budget of their own
    /// (beside `queries.per_*`, not drawn from it). Beyond, the alert is
    /// refused (the issuer is told why, signed) and retried later.
    pub answers_per_hour: u32,
    pub answers_per_day: u32,
}

impl AlertPolicy {
    /// The per-minute bound in force (`max_per_issuer_per_minute`).
    pub fn per_issuer_per_minute(&self) -> usize {
        self.max_per_issuer_per_minute.unwrap_or((self.max_per_issuer_per_hour / 10).max(5))
    }
}

/// The form of the probe an alert carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertForm {
    Encrypted,
    Protected,
    Both,
}

/// Smallest gossip limit that fits an alert with an encrypted probe.
pub const MIN_GOSSIP_FOR_ENCRYPTED: usize = 36 * 1024;

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(24 * 3600),
            max_clock_skew: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(365 * 24 * 3600),
            max_active: 100_000,
            form: AlertForm::Encrypted,
            column_above: None,
            split_probes: true,
            answer_protected: false,
            max_per_issuer_per_hour: 600,
            max_per_issuer_per_minute: None,
            purge_closed_after: Duration::from_secs(24 * 3600),
            answers_per_hour: 20,
            answers_per_day: 100,
        }
    }
}

impl NodeConfig {
    pub fn new(name: &str, kind: OrgKind) -> Self {
        Self {
            org: OrgConfig { name: name.into(), kind },
            network: Default::default(),
            api: Default::default(),
            federation: Default::default(),
            alerts: Default::default(),
            queries: Default::default(),
            console: Default::default(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Io { path: p.clone(), source })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge { path: p });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: p.clone(), source })?;
        let cfg: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: p, msg: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.network.max_frame_bytes == 0 || self.network.max_frame_bytes > limits::MAX_FRAME_BYTES {
            return bad("network.max_frame_bytes must be between 1 and 1048576");
        }
        if self.network.max_gossip_bytes < 1024 || self.network.max_gossip_bytes > limits::MAX_GOSSIP_BYTES {
            return bad("network.max_gossip_bytes must be between 1024 and 65536");
        }
        if self.alerts.form != AlertForm::Protected && self.network.max_gossip_bytes < MIN_GOSSIP_FOR_ENCRYPTED {
            return bad("network.max_gossip_bytes must be at least 36864 when alerts carry an encrypted probe");
        }
        if self.network.max_strikes == 0 {
            return bad("network.max_strikes must be at least 1");
        }
        if !(1..=256).contains(&self.network.max_pending_per_ip) {
            return bad("network.max_pending_per_ip must be 1..=256");
        }
        if !(Duration::from_millis(500)..=Duration::from_secs(60)).contains(&self.network.handshake_timeout) {
            return bad("network.handshake_timeout must be between 500ms and 60s");
        }
        if self.network.refusals_audit_interval < Duration::from_millis(100) {
            return bad("network.refusals_audit_interval must be at least 100ms");
        }
        let c = &self.console;
        if c.session_idle < Duration::from_secs(10) || c.session_max < c.session_idle {
            return bad("console.session_idle must be at least 10s and console.session_max at least session_idle");
        }
        if c.max_failed_logins == 0 || c.lockout < Duration::from_secs(60) {
            return bad("console.max_failed_logins must be at least 1 and console.lockout at least 1m");
        }
        let every = c.health_every.as_secs_f64();
        if every < 1.0 || c.health_window < c.health_every || c.health_window.as_secs_f64() / every > 100_000.0 {
            return bad(
                "console.health_every must be at least 1s, and console.health_window from one to 100,000 samples",
            );
        }
        if c.follow_up < Duration::from_secs(60) {
            return bad("console.follow_up must be at least 1m");
        }
        if !self.api.listen.starts_with("127.0.0.1:") && !self.api.listen.starts_with("[::1]:") {
            return bad("api.listen must be a loopback address (127.0.0.1:PORT)");
        }
        if !self.federation.stewards.is_empty()
            && (self.federation.threshold == 0 || self.federation.threshold > self.federation.stewards.len())
        {
            return bad("federation.threshold must be between 1 and the number of stewards");
        }
        if self.queries.max_query_bytes > limits::MAX_QUERY_BYTES
            || self.queries.max_answer_bytes > limits::MAX_ANSWER_BYTES
        {
            return bad("queries.max_query_bytes / max_answer_bytes exceed the protocol maxima (33 MiB / 65 MiB)");
        }
        if !(0.0..=1.0).contains(&self.queries.flag_hit_fraction) {
            return bad("queries.flag_hit_fraction must be between 0 and 1");
        }
        if let Some(s) = &self.federation.epoch_secret {
            if hex::decode(s).map(|v| v.len()) != Ok(32) {
                return bad("federation.epoch_secret must be 64 hex characters");
            }
        }
        // A body limit below a template file's would refuse every enrolment.
        if self.api.max_body_bytes < MIN_API_BODY_BYTES || self.api.max_body_bytes > MAX_API_BODY_BYTES {
            return bad("api.max_body_bytes must be between 262144 (a template file) and 67108864");
        }
        if self.api.max_connections == 0
            || self.api.idle_timeout < Duration::from_millis(100)
            || self.api.connection_lifetime < self.api.idle_timeout
        {
            return bad("api.max_connections must be at least 1, api.idle_timeout at least 100ms, \
                        api.connection_lifetime at least api.idle_timeout");
        }
        for k in &self.federation.stewards {
            if let Err(e) = vigil_protocol::OrgId::from_hex(k) {
                return Err(ConfigError::Invalid(format!("federation.stewards: {k:?} is not a steward key: {e}")));
            }
        }
        Ok(())
    }

    /// The config as commented TOML, as `vigil init` writes it.
    pub fn to_commented_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("config serialises");
        let mut out = String::from(
            "# Vigil node configuration. Durations use humantime (\"10s\", \"24h\").\n\
             # [org]         who this node is (must match the roster entry)\n\
             # [network]     libp2p listen addresses, frame limits, timeouts, peer strikes\n\
             # [api]         local HTTP API (loopback only; token in api.token)\n\
             # [federation]  roster file, trusted steward keys + threshold, epoch secret\n\
             # [alerts]      replay window, clock skew, lifetime and count limits\n\
             # [queries]     encrypted identification: budgets per peer, sizes, timeout\n\
             # [console]     operator console: sessions, lock-out, four-eyes approval, follow-up clock\n\n",
        );
        out.push_str(&body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_toml_roundtrips_and_errors_are_named() {
        let mut c = NodeConfig::new("Shelter North", OrgKind::Ngo);
        c.federation.epoch_secret = Some("11".repeat(32));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vigil.toml");
        std::fs::write(&p, c.to_commented_toml()).unwrap();
        assert_eq!(NodeConfig::load(&p).unwrap(), c);
        std::fs::write(&p, "[org]\nname = \"x\"\nkind = \"ngo\"\n[network]\nmax_strikes = 0\n").unwrap();
        assert!(NodeConfig::load(&p).unwrap_err().to_string().contains("max_strikes"));
        std::fs::write(&p, "[org]\nname = \"x\"\nkind = \"ngo\"\nbogus = 1\n").unwrap();
        assert!(NodeConfig::load(&p).unwrap_err().to_string().contains("bogus"));
    }

    /// Values that would break the node are refused at the door, not by
    /// `serve` later (or never).
    #[test]
    fn values_that_break_the_node_are_refused() {
        let ok = NodeConfig::new("Shelter North", OrgKind::Ngo);
        assert!(ok.validate().is_ok());
        for body in [0, 1024, MAX_API_BODY_BYTES + 1] {
            let mut c = ok.clone();
            c.api.max_body_bytes = body;
            assert!(c.validate().unwrap_err().to_string().contains("api.max_body_bytes"), "{body}");
        }
        for key in ["zz", "ab", &"0".repeat(62)] {
            let mut c = ok.clone();
            c.federation.stewards = vec!["11".repeat(32), key.to_string()];
            c.federation.threshold = 1;
            assert!(c.validate().unwrap_err().to_string().contains("federation.stewards"), "{key}");
        }
        let mut c = ok.clone();
        c.network.refusals_audit_interval = Duration::ZERO;
        assert!(c.validate().is_err());
        for (every, window) in [(0, 60), (60, 30), (1, 200_000)] {
            let mut c = ok.clone();
            (c.console.health_every, c.console.health_window) =
                (Duration::from_secs(every), Duration::from_secs(window));
            assert!(c.validate().unwrap_err().to_string().contains("console.health_every"), "{every} {window}");
        }
    }
}
