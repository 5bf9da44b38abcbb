//! `vigil demo`: the whole system on an embedded default. Three
//! organisations (an NGO shelter, a police missing-persons unit, a border
//! post) start real nodes in one process, form a federation under a roster
//! signed by 2 of 3 stewards, enrol synthetic records, and find a missing
//! person: a standing alert with an encrypted probe (TFHE) matches an
//! existing record and a later one; the holders compute on a probe they
//! cannot read, and only the NGO decrypts the hits. Then the police unit runs an encrypted
//! identification query (TFHE) across the federation, and the NGO asks the
//! border post to disclose the case contact, which a person there approves.

use serde::Serialize;
use std::time::{Duration, Instant};
use vigil_engine::audit::AuditEvent;
use vigil_engine::model::{HitRole, Regime, StoredHit};
use vigil_engine::{Enrolment, OutcomeStatus};
use vigil_matcher::synth::Population;
use vigil_protocol::{Category, OrgKind};
use vigil_testkit::{wait_for, FederationOptions, LocalFederation, OrgSpec};

const NGO: usize = 0;
const POLICE: usize = 1;
const BORDER: usize = 2;
/// The missing person in the population.
const MISSING: usize = 7;

/// The demo's outcome (`vigil demo --json`).
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub nodes: usize,
    /// The steward-signed biometric policy every node matched under.
    pub policy_version: u64,
    pub records: usize,
    pub alerts: usize,
    pub hits: usize,
    pub hits_expected: usize,
    pub false_hits: usize,
    /// Hits known at the holders: 0, since only the issuer can decrypt.
    pub hits_at_holders: usize,
    /// Encrypted answer pages the holders delivered to the issuer.
    pub answers_delivered: usize,
    /// Matches found by the encrypted identification query.
    pub identify_hits: usize,
    /// The approved case contact reached the requester.
    pub disclosed: bool,
    pub alert_delivery_ms: u64,
    pub first_hit_ms: u64,
    pub audit_entries: usize,
    pub audit_chains_verified: bool,
    pub elapsed_ms: u64,
}

struct Narrator {
    quiet: bool,
    t0: Instant,
}

impl Narrator {
    fn say(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            println!("[{:>6.2}s] {}", self.t0.elapsed().as_secs_f64(), msg.as_ref());
        }
    }
}

pub(crate) async fn run(json: bool, seed: u64) -> anyhow::Result<Summary> {
    let t0 = Instant::now();
    let n = Narrator { quiet: json, t0 };
    let specs = [
        OrgSpec::new("Shelter North (NGO)", OrgKind::Ngo),
        OrgSpec::new("Metro Police Missing Persons Unit", OrgKind::Police),
        OrgSpec::new("Eastgate Border Post", OrgKind::Border),
    ];
    n.say("Starting three organisations, each with its own sealed data directory and libp2p node on 127.0.0.1 ...");
    let fed = LocalFederation::start(&specs, FederationOptions::default()).await?;
    for node in &fed.nodes {
        n.say(format!("  {:<36} {}", node.name, node.handle.peer_id));
    }
    n.say("Three stewards signed roster v1 (2 of 3 signatures required); every node verified and applied it.");
    fed.wait_connected(&[NGO, POLICE, BORDER], Duration::from_secs(20)).await?;
    n.say("All members connected over TCP + Noise + Yamux; only roster members are admitted.");
    // The demo's biometric policy: the built-in synthetic extractor as a
    // steward-signed v1, applied at one node and spread by catch-up.
    let demo_policy = vigil_matcher::Policy { version: 1, ..vigil_matcher::builtin().clone() };
    let policy_version = fed.apply_policy(demo_policy, NGO, PATIENCE).await?;
    n.say(format!(
        "Two stewards signed biometric policy v{policy_version} (the demo's synthetic extractor, threshold 0.5 at FMR 1e-6); \
         applied at Shelter North, it reached every member."
    ));

    let d = Demo { fed, pop: Population::new(seed, "vigil-synth-128", 200), n };
    let holder_record = d.enrol_galleries().await?;
    let alert = d.alert().await?;
    d.n.say("Two days later, Metro Police enrols a new capture of a person brought in at the station ...");
    d.enrol(POLICE, MISSING, 2, Category::Found, "MP-2026-7788".into()).await?;
    let hits = wait_for(PATIENCE, || d.issuer_hits(2))
        .await
        .ok_or_else(|| anyhow::anyhow!("the standing alert did not match the new record within 20 s"))?;
    d.n.say("HIT: Metro Police answered the standing alert for its new record; Shelter North decrypted a match.");
    let identify_hits = d.identify().await?;
    let (hits_at_holders, answers_delivered, false_hits) = d.ground_truth(&hits).await?;
    d.disclose(&hits, holder_record).await?;
    let (audit_entries, verified) = d.verify_audits().await?;
    d.fed.shutdown().await;
    Ok(Summary {
        nodes: d.fed.nodes.len(),
        policy_version,
        records: GALLERY_RECORDS + 1,
        alerts: 1,
        hits: hits.iter().filter(|x| x.role == HitRole::Issuer).count(),
        hits_expected: 2,
        false_hits,
        hits_at_holders,
        answers_delivered,
        identify_hits,
        disclosed: true,
        alert_delivery_ms: alert.delivered_ms,
        first_hit_ms: alert.first_hit_ms,
        audit_entries,
        audit_chains_verified: verified,
        elapsed_ms: t0.elapsed().as_millis() as u64,
    })
}

/// How long the demo waits for something that takes milliseconds.
const PATIENCE: Duration = Duration::from_secs(20);
/// Records enrolled before the alert: 41 at the border post, 60 at the police.
const GALLERY_RECORDS: usize = 101;

/// The running demo: the federation, the synthetic population, the story.
struct Demo {
    fed: LocalFederation,
    pop: Population,
    n: Narrator,
}

/// When the alert reached the members and its first hit the issuer.
struct AlertTimes {
    delivered_ms: u64,
    first_hit_ms: u64,
}

impl Demo {
    async fn enrol(
        &self,
        node: usize,
        person: usize,
        capture: u64,
        category: Category,
        case: String,
    ) -> anyhow::Result<u64> {
        let e = Enrolment {
            pad: None,
            template: self.pop.sample(person, capture),
            category,
            case_ref: case,
            consent: "documented at intake".into(),
            retain_until_ms: vigil_node::now_ms() + 365 * 24 * 3600 * 1000,
            regime: Some(if node == NGO { Regime::Gdpr } else { Regime::Led }),
        };
        Ok(self.fed.nodes[node].handle.enrol(e).await?)
    }

    /// The border post's 40 persons met at the crossing and the missing
    /// person, the police unit's 60 unrelated records; the missing person's
    /// record id at the border post.
    async fn enrol_galleries(&self) -> anyhow::Result<u64> {
        for p in 100..140 {
            self.enrol(BORDER, p, 1, Category::Found, format!("EG-{p}")).await?;
        }
        let holder = self.enrol(BORDER, MISSING, 1, Category::Found, "EG-2026-0419".into()).await?;
        for p in 140..200 {
            self.enrol(POLICE, p, 1, Category::Victim, format!("MP-{p}")).await?;
        }
        self.n.say(format!(
            "Enrolled {GALLERY_RECORDS} synthetic records (Eastgate 41, Metro Police 60); templates sealed at rest, never sent."
        ));
        Ok(holder)
    }

    /// The issuer's hits once it holds at least `want` of them.
    async fn issuer_hits(&self, want: usize) -> Option<Vec<StoredHit>> {
        let hits = self.fed.nodes[NGO].handle.hits().await.ok()?;
        (hits.iter().filter(|x| x.role == HitRole::Issuer).count() >= want).then_some(hits)
    }

    /// Shelter North's encrypted alert: its delivery and its first hit.
    async fn alert(&self) -> anyhow::Result<AlertTimes> {
        let alert_t = Instant::now();
        let alert = self.fed.nodes[NGO]
            .handle
            .publish_alert(
                self.pop.sample(MISSING, 0),
                Category::Missing,
                "SN-2026-0141 (family report)".into(),
                vigil_node::now_ms() + 30 * 24 * 3600 * 1000,
            )
            .await?;
        self.n.say(format!(
            "Shelter North published a signed missing-person alert {} carrying only an encrypted probe (TFHE, 24 KiB).",
            &alert.to_hex()[..12]
        ));
        let delivered = wait_for(PATIENCE, || async {
            for i in [POLICE, BORDER] {
                let a = self.fed.nodes[i].handle.alerts().await.ok()?;
                if !a.iter().any(|x| x.id == alert) {
                    return None;
                }
            }
            Some(alert_t.elapsed())
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("the alert did not reach every member within 20 s"))?;
        self.n.say(format!(
            "The alert reached both other members in {} ms; each computes on the probe against its own gallery \
             and sends back an encrypted answer it cannot read itself.",
            delivered.as_millis()
        ));
        let first = wait_for(PATIENCE, || self.issuer_hits(1))
            .await
            .ok_or_else(|| anyhow::anyhow!("no hit reached the issuer within 20 s"))?;
        let first_hit_ms = alert_t.elapsed().as_millis() as u64;
        self.n.say(format!(
            "HIT: Shelter North decrypted the answers: Eastgate Border Post holds a matching record (handle {}), {first_hit_ms} ms after the alert. Eastgate does not know.",
            &first[0].handle.to_hex()[..12]
        ));
        Ok(AlertTimes { delivered_ms: delivered.as_millis() as u64, first_hit_ms })
    }

    /// Metro Police's encrypted identification query; the matches it found.
    async fn identify(&self) -> anyhow::Result<usize> {
        self.n.say("Metro Police asks every member, with an encrypted probe (TFHE), whether it knows a person seen at a bus station ...");
        let report = self.fed.nodes[POLICE]
            .handle
            .identify(
                self.pop.sample(MISSING, 3),
                "person seen at Central bus station".into(),
                "LED art. 8, case MP-2026-7790".into(),
            )
            .await?;
        let mut identify_hits = 0;
        for p in &report.peers {
            let name = self.fed.nodes.iter().find(|x| x.handle.org == p.peer).map(|x| x.name.as_str()).unwrap_or("?");
            identify_hits += p.hits.len();
            match (p.status, p.hits.len()) {
                (OutcomeStatus::Answered, 0) => {
                    self.n.say(format!("  {name}: no match (answered for {} gallery positions)", p.positions))
                }
                (OutcomeStatus::Answered, k) => {
                    self.n.say(format!("  {name}: {k} match(es), handle {}", &p.hits[0].to_hex()[..12]))
                }
                (other, _) => self.n.say(format!("  {name}: {other:?} {}", p.reason.clone().unwrap_or_default())),
            }
        }
        self.n.say("The peers computed on a probe they cannot read; only Metro Police could decrypt the answers.");
        Ok(identify_hits)
    }

    /// Ground truth: each holder has exactly one record of the missing
    /// person, so more hits from a holder than that are false ones (and the
    /// disclosure checks that the border's hit is the right record).
    /// Returns (hits known at the holders, answer pages delivered, false hits).
    async fn ground_truth(&self, hits: &[StoredHit]) -> anyhow::Result<(usize, usize, usize)> {
        let (mut at_holders, mut delivered) = (0, 0);
        for i in [POLICE, BORDER] {
            let h = &self.fed.nodes[i].handle;
            at_holders += h.hits().await?.iter().filter(|h| h.role == HitRole::Holder).count();
            for r in h.audit_export().await? {
                delivered +=
                    usize::from(matches!(r.entry.event, AuditEvent::AlertAnswerDelivered { accepted: true, .. }));
            }
        }
        let from = |i: usize| {
            hits.iter().filter(|h| h.role == HitRole::Issuer && h.peer == self.fed.nodes[i].handle.org).count()
        };
        let false_hits = from(BORDER).saturating_sub(1) + from(POLICE).saturating_sub(1);
        self.n.say("Shelter North lists the hits by peer and opaque handle; the holders learnt nothing; no score, template or name was exchanged.");
        Ok((at_holders, delivered, false_hits))
    }

    /// Disclosure with a person in the loop at the holder: the request
    /// resolves to the missing person's record, is approved, and only then
    /// does the contact travel.
    async fn disclose(&self, hits: &[StoredHit], holder_record: u64) -> anyhow::Result<()> {
        let border_org = self.fed.nodes[BORDER].handle.org;
        let border_hit = hits.iter().find(|h| h.role == HitRole::Issuer && h.peer == border_org);
        let border_hit = border_hit.ok_or_else(|| anyhow::anyhow!("no hit from the border post"))?.handle;
        let ngo = &self.fed.nodes[NGO].handle;
        let id = ngo.request_disclosure(border_hit, "family of SN-2026-0141 asks for the case contact".into()).await?;
        self.n.say("Shelter North asks Eastgate Border Post to disclose the case contact for its hit.");
        let border = &self.fed.nodes[BORDER].handle;
        let resolved = wait_for(PATIENCE, || async {
            border.disclosures().await.ok()?.into_iter().find(|d| d.id == id).and_then(|d| d.record)
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("the disclosure request did not reach the border post"))?;
        anyhow::ensure!(resolved == holder_record, "the hit resolved to record {resolved}, not the missing person's");
        self.n.say(
            "  At Eastgate, a duty officer sees the pending request (reason, requester, matching record) and approves it;\n  \
             a border post needs a second approver (four eyes), and the shift supervisor confirms.",
        );
        let contact = Some("Sgt. R. Moreau, Eastgate duty desk, +00 555 0101".to_string());
        border.decide_disclosure_by(id, contact, ["duty-officer", "shift-supervisor"]).await?;
        let contact = wait_for(PATIENCE, || async {
            ngo.disclosures().await.ok()?.into_iter().find(|d| d.id == id).and_then(|d| d.contact)
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("the approved contact did not reach Shelter North"))?;
        self.n.say(format!(
            "  Shelter North received the contact: {contact}. Nothing was disclosed before the approval."
        ));
        Ok(())
    }

    /// Every node's audit chain verified: (entries in all, all verify).
    async fn verify_audits(&self) -> anyhow::Result<(usize, bool)> {
        let (mut entries, mut verified) = (0, true);
        for node in &self.fed.nodes {
            match node.handle.audit_verify().await? {
                Ok(k) => entries += k,
                Err(e) => {
                    verified = false;
                    self.n.say(format!("audit chain of {} FAILED: {e}", node.name));
                }
            }
        }
        self.n.say(format!(
            "Audit: {entries} signed, hash-chained entries across 3 nodes; every chain verifies: {verified}."
        ));
        Ok((entries, verified))
    }
}
