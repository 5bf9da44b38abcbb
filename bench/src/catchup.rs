//! `vigil bench catchup`: a member that missed `alerts` alerts from `orgs`
//! issuers catches up from another member. Real engines, real signatures,
//! chain checks and encoding, every durable write applied to a real sealed
//! redb store; the two engines exchange the frames directly (no sockets),
//! so the figure is the node's own cost, not loopback TCP's.

use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use vigil_config::{AlertForm, AlertPolicy, QueryPolicy};
use vigil_crypto::{sign_roster, Identity, SealKey, TrustAnchor};
use vigil_engine::model::Meta;
use vigil_engine::{Action, Engine, EngineInit};
use vigil_matcher::synth::Population;
use vigil_node::store::Store;
use vigil_protocol::{encode, Category, Member, OrgKind, Request, Response, Role, RosterBody, SignedRoster, Tag};

const FRAME: usize = 256 * 1024;
const GOSSIP: usize = 40 * 1024;

/// The benchmark's figures.
#[derive(Debug, Serialize)]
pub struct CatchupBench {
    pub orgs: usize,
    pub alerts: usize,
    pub form: String,
    /// From the first `SyncHeads` to the last entry stored durably.
    pub catchup_ms: f64,
    /// Response bytes the catching-up node received (its pulls' pages).
    pub bytes_pulled: usize,
    /// Request bytes it sent.
    pub bytes_sent: usize,
    /// The alerts' own encoded size (their gossip envelopes, summed).
    pub alerts_bytes: usize,
    /// `bytes_pulled / alerts_bytes`.
    pub bytes_ratio: f64,
    pub pages: usize,
    pub alerts_caught_up: usize,
    pub setup_ms: f64,
}

fn engine(id: &Arc<Identity>, anchor: &TrustAnchor, roster: &SignedRoster, form: AlertForm) -> anyhow::Result<Engine> {
    Ok(Engine::new(EngineInit {
        identity: id.clone(),
        anchor: Some(anchor.clone()),
        biometric_policy: None,
        // A week's backlog, all created at one instant here: no per-minute bound.
        policy: AlertPolicy {
            form,
            max_active: 1_000_000,
            max_per_issuer_per_minute: Some(usize::MAX),
            ..Default::default()
        },
        queries: QueryPolicy::default(),
        epoch_secret: Some([7; 32]),
        max_strikes: 3,
        meta: Meta { next_record: 1, roster: Some(roster.clone()), ..Default::default() },
        records: vec![],
        alerts: vec![],
        hits: vec![],
        disclosures: vec![],
        answers: vec![],
        receipts: vec![],
        max_frame_bytes: FRAME,
        sync_bytes_per_hour: u64::MAX,
        refusals_audit_every_ms: 60_000,
        max_requests_per_minute: u32::MAX,
        max_refused_per_minute: u32::MAX,
        seed: None,
    })?)
}

pub fn run(orgs: usize, alerts: usize, form: AlertForm) -> anyhow::Result<CatchupBench> {
    anyhow::ensure!(orgs >= 1 && alerts >= orgs, "need at least one alert per issuer");
    let setup = Instant::now();
    let stewards: Vec<Identity> = (0..2).map(|_| Identity::generate()).collect();
    let ids: Vec<Arc<Identity>> = (0..orgs + 2).map(|_| Arc::new(Identity::generate())).collect();
    let members = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Member {
            org: id.org_id(),
            name: format!("org {i}"),
            kind: OrgKind::Ngo,
            addrs: vec![],
            roles: vec![Role::Alert, Role::Match],
        })
        .collect();
    let mut roster = SignedRoster {
        body: RosterBody { federation: "bench".into(), version: 1, issued_at_ms: 0, members },
        signatures: vec![],
    };
    for s in &stewards {
        sign_roster(&mut roster, s)?;
    }
    let anchor = TrustAnchor { stewards: stewards.iter().map(|s| s.org_id()).collect(), threshold: 2 };
    let (relay_id, me_id) = (&ids[orgs], &ids[orgs + 1]);
    let mut relay = engine(relay_id, &anchor, &roster, form)?;
    let pop = Population::new(1, "vigil-synth-128", 100);
    let now = vigil_node::now_ms();
    let mut alerts_bytes = 0;
    // Each issuer publishes its share; the relay receives them as gossip.
    for (o, id) in ids[..orgs].iter().enumerate() {
        let mut issuer = engine(id, &anchor, &roster, form)?;
        for k in 0..alerts / orgs + usize::from(o < alerts % orgs) {
            let t = pop.sample(k % 100, o as u64);
            let expires = now + 30 * 24 * 3600 * 1000;
            let (_, actions) =
                issuer.publish_alert(now, &t, Category::Missing, format!("C-{o}-{k}"), expires, GOSSIP)?;
            for a in actions {
                if let Action::Publish(bytes) = a {
                    alerts_bytes += bytes.len();
                    relay.on_gossip(now, id.org_id(), &bytes, GOSSIP);
                }
            }
        }
    }
    let setup_ms = setup.elapsed().as_secs_f64() * 1000.0;

    // The member that was offline: a fresh engine over a real sealed store.
    let dir = tempfile::tempdir()?;
    let store = Store::open(&vigil_node::store::db_path(dir.path()), SealKey::random(), me_id.clone())?;
    let mut me = engine(me_id, &anchor, &roster, form)?;
    let t = Instant::now();
    let (mut pulled, mut sent, mut pages) = (0, 0, 0);
    let mut queue = me.sync_start(relay_id.org_id());
    while let Some(a) = queue.pop() {
        if let Action::Send { request, key, .. } = a {
            let frame = encode(Tag::Request, &request, FRAME)?;
            sent += frame.len();
            pages += usize::from(matches!(request, Request::SyncPull(_)));
            let (response, _) = relay.on_request(now, me_id.org_id(), &frame, FRAME);
            let bytes = encode(Tag::Response, &response, FRAME)?;
            pulled += bytes.len();
            let response: Response = vigil_protocol::decode(Tag::Response, &bytes, FRAME)?;
            let actions = me.on_response(now, key, &response);
            // As the runtime does: a page's writes and audit entries are
            // made durable together before the next request goes out.
            let (mut writes, mut audits) = (Vec::new(), Vec::new());
            for a in actions {
                match a {
                    Action::Store(op) => writes.push(op),
                    Action::Audit(ev) => audits.push(ev),
                    other => queue.push(other),
                }
            }
            store.commit(&writes, now, audits)?;
        }
    }
    let catchup_ms = t.elapsed().as_secs_f64() * 1000.0;
    let alerts_caught_up = store.alerts()?.len();
    Ok(CatchupBench {
        orgs,
        alerts,
        form: format!("{form:?}").to_lowercase(),
        catchup_ms,
        bytes_pulled: pulled,
        bytes_sent: sent,
        alerts_bytes,
        bytes_ratio: pulled as f64 / alerts_bytes as f64,
        pages,
        alerts_caught_up,
        setup_ms,
    })
}
