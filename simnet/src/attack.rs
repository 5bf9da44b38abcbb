//! A malicious member's behaviours, sent through the member's own node (the
//! same wire, the same protocols), and how the honest members took them:
//! strikes and blocks from their audit logs, budget refusals, flood alerts
//! accepted.

use crate::measure::{AttackOutcome, Observed, Task};
use crate::population::Population;
use crate::scenario::Behaviour;
use vigil_crypto::Identity;
use vigil_engine::audit::AuditEvent;
use vigil_matcher::{EpochSecret, ProtectedMatcher};
use vigil_node::now_ms;
use vigil_protocol::{encode, AlertBody, AlertEnvelope, Category, OrgId, SignedAlert, Tag};
use vigil_testkit::LocalFederation;

const DAY_MS: u64 = 24 * 3600 * 1000;
/// The frame limit of a node modified to send oversized frames.
pub(crate) const OVERSIZED_SENDER_LIMIT: usize = 1024 * 1024;
/// Identities far from the scenario's persons and population.
const ATTACK_IDENTITIES: usize = 50_000_000;

/// An alert signed by `signer` claiming `issuer`, created at `created`,
/// with the protected template of attack identity `k`.
fn hand_made(
    matcher: &mut ProtectedMatcher,
    signer: &Identity,
    issuer: OrgId,
    created: u64,
    pop: &Population,
    k: usize,
) -> anyhow::Result<Vec<u8>> {
    let ex = vigil_matcher::extractor(crate::population::EXTRACTOR).expect("the synthetic extractor");
    let probe = matcher.protect(ex, &pop.template(ATTACK_IDENTITIES + k, 0))?;
    let body = AlertBody {
        issuer,
        seq: 1,
        prev: [0; 32],
        category: Category::Missing,
        created_at_ms: created,
        expires_at_ms: created + 7 * DAY_MS,
        probe: Some(probe),
        encrypted: None,
    };
    let signature = vigil_crypto::sign_alert(signer, &body)?;
    Ok(encode(Tag::Gossip, &AlertEnvelope::Publish(SignedAlert { body, signature }), 64 * 1024)?)
}

/// Prepares one attack from member `org`; the returned future runs it
/// beside the timeline (it holds its own handles) and reports what it sent.
pub(crate) fn launch(
    fed: &LocalFederation,
    org: usize,
    behaviour: Behaviour,
    count: usize,
    pop: &Population,
) -> anyhow::Result<impl std::future::Future<Output = Task> + Send + 'static> {
    let me = &fed.nodes[org];
    let handle = me.handle.clone();
    let name = me.name.clone();
    let victim = fed.nodes.iter().find(|n| n.handle.org != me.handle.org).expect("two members").handle.org;
    let others: Vec<OrgId> = fed.nodes.iter().map(|n| n.handle.org).filter(|o| *o != me.handle.org).collect();
    // Hand-made alerts are made now (they need the federation's epoch secret, from its files).
    let crafted: Vec<Vec<u8>> = match behaviour {
        Behaviour::Forge | Behaviour::Replay => {
            let cfg = fed.nodes[0].open()?.config;
            let secret = hex::decode(cfg.federation.epoch_secret.unwrap_or_default())?;
            let secret: [u8; 32] = secret.try_into().map_err(|_| anyhow::anyhow!("no epoch secret"))?;
            let mut matcher = ProtectedMatcher::new(EpochSecret::new(secret));
            let (issuer, age) = if behaviour == Behaviour::Forge { (victim, 0) } else { (me.handle.org, 2 * DAY_MS) };
            (0..count)
                .map(|k| hand_made(&mut matcher, &me.identity, issuer, now_ms() - age - k as u64, pop, k))
                .collect::<anyhow::Result<_>>()?
        }
        _ => vec![],
    };
    let templates: Vec<_> = match behaviour {
        Behaviour::Flood => (0..count).map(|k| pop.template(ATTACK_IDENTITIES + k, 0)).collect(),
        Behaviour::Probe => (0..count)
            .map(|k| {
                // A chosen vector: a basis direction, the kind of probe that
                // maps a gallery rather than searches for a person.
                let mut t = pop.template(ATTACK_IDENTITIES, 0);
                let axis = k % t.vector.len();
                t.vector.iter_mut().enumerate().for_each(|(i, x)| *x = if i == axis { 127 } else { 0 });
                t
            })
            .collect(),
        _ => vec![],
    };
    Ok(async move {
        let mut out = AttackOutcome {
            org: name,
            behaviour,
            sent: 0,
            penalised_by: 0,
            blocked_by: 0,
            refused: 0,
            accepted_max: 0,
            throttled: false,
            flood_alerts: vec![],
        };
        let limit = vigil_config::NetworkConfig::default().max_frame_bytes;
        let mut probes = tokio::task::JoinSet::new();
        for k in 0..count {
            let r = match behaviour {
                Behaviour::Flood => {
                    let expires = now_ms() + DAY_MS;
                    handle
                        .publish_alert(templates[k].clone(), Category::Other, format!("FLOOD-{k}"), expires)
                        .await
                        .map(|id| {
                            out.flood_alerts.push(id);
                        })
                }
                Behaviour::Forge | Behaviour::Replay => handle.raw_publish(crafted[k].clone()).await,
                Behaviour::Oversized => handle.raw_request(others[k % others.len()], vec![7u8; limit + 1 + k]).await,
                Behaviour::Malformed => {
                    let junk = format!("not a vigil frame {k}").into_bytes();
                    let _ = handle.raw_publish(junk.clone()).await;
                    handle.raw_request(others[k % others.len()], junk).await
                }
                Behaviour::Probe => {
                    let (h, t) = (handle.clone(), templates[k].clone());
                    probes.spawn(async move { h.identify(t, "probe".into(), "none".into()).await });
                    Ok(())
                }
            };
            out.sent += usize::from(r.is_ok() && behaviour != Behaviour::Probe);
        }
        while let Some(r) = probes.join_next().await {
            if let Ok(Ok(r)) = r {
                out.sent += 1;
                out.refused += r.peers.iter().filter(|p| p.status == vigil_engine::OutcomeStatus::Refused).count();
            }
        }
        Task::Attack(out)
    })
}

/// Reads every honest member's audit log (and alert list, for floods).
pub(crate) async fn assess(fed: &LocalFederation, obs: &mut Observed) -> anyhow::Result<()> {
    for a in obs.attacks.iter_mut() {
        let Some(attacker) = fed.nodes.iter().find(|n| n.name == a.org) else { continue };
        let hex = attacker.handle.org.to_hex();
        let peer = attacker.handle.peer_id.to_string();
        for n in fed.nodes.iter().filter(|n| n.handle.org != attacker.handle.org) {
            let audit = n.handle.audit_export().await?;
            let is_attacker = |p: &str| p == hex || p == peer;
            a.penalised_by += usize::from(
                audit
                    .iter()
                    .any(|r| matches!(&r.entry.event, AuditEvent::PeerPenalised { peer, .. } if is_attacker(peer))),
            );
            a.blocked_by += usize::from(
                audit.iter().any(|r| matches!(&r.entry.event, AuditEvent::PeerBlocked { peer } if is_attacker(peer))),
            );
            if a.behaviour == Behaviour::Flood {
                let accepted = n.handle.alerts().await?.iter().filter(|v| v.issuer == attacker.handle.org).count();
                a.accepted_max = a.accepted_max.max(accepted);
            }
        }
        a.throttled = match a.behaviour {
            Behaviour::Flood => a.accepted_max < a.sent,
            Behaviour::Probe => a.refused > 0,
            Behaviour::Forge | Behaviour::Replay | Behaviour::Oversized | Behaviour::Malformed => a.penalised_by > 0,
        };
    }
    Ok(())
}
