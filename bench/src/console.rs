//! `vigil bench console`: how long the operator console's pages take at a
//! real node (its API server on loopback, a signed-in operator, the
//! node's own alerts), with a tenth of ALERTS alerts and hits and then
//! with all of them, side by side: median and p99 per page, page size,
//! and the process's resident memory around the page loads.
//!
//! The alerts are published through the node; the hits (one per alert,
//! from a second member) and the disclosures asked for every tenth of
//! them are written into its store while it is stopped, as the engine
//! would have stored them, since a federation makes 10,000 hits slowly.

use serde::Serialize;
use std::time::{Duration, Instant};
use vigil_engine::model::{DisclosureRole, DisclosureStatus, HitRole, HitSource, StoreOp, StoredDisclosure, StoredHit};
use vigil_matcher::synth::Population;
use vigil_protocol::{AlertId, Category, Handle, OrgKind};
use vigil_testkit::{FederationOptions, LocalFederation, OrgSpec};

/// The pages timed, as an operator opens them.
const PAGES: [&str; 7] = ["/cases", "/hits", "/disclosures", "/records", "/audit", "/federation", "/health"];
const PASSWORD: &str = "benchmark operator password";

#[derive(Debug, Serialize)]
pub struct ConsoleBench {
    pub requests_per_page: usize,
    pub sizes: Vec<SizeRun>,
    /// Per page: the large run's median over the small run's (10 for
    /// linear growth with ten times the data).
    pub ratios: Vec<(String, f64)>,
}

#[derive(Debug, Serialize)]
pub struct SizeRun {
    pub alerts: usize,
    pub hits: usize,
    pub disclosures: usize,
    pub pages: Vec<PageFigures>,
    /// Resident memory of the process before and after the page loads.
    pub rss_mb_before: f64,
    pub rss_mb_after: f64,
}

#[derive(Debug, Serialize)]
pub struct PageFigures {
    pub page: String,
    pub median_ms: f64,
    pub p99_ms: f64,
    pub bytes: usize,
}

/// Resident memory now, from /proc (Linux), in MiB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn run(alerts: usize, requests: usize) -> anyhow::Result<ConsoleBench> {
    anyhow::ensure!(alerts >= 10 && requests >= 2, "need at least 10 alerts and 2 requests per page");
    let opts = FederationOptions {
        tweak: Box::new(move |_, c| {
            c.alerts.form = vigil_config::AlertForm::Protected;
            c.alerts.max_active = alerts + 10;
        }),
        ..FederationOptions::default()
    };
    let specs = [OrgSpec::new("Shelter North", OrgKind::Ngo), OrgSpec::new("Eastgate Border Post", OrgKind::Border)];
    let mut fed = LocalFederation::start(&specs, opts).await?;
    let holder = fed.nodes[1].handle.org;
    // The holder plays no part beyond its name: stopped, it costs nothing.
    fed.stop(1).await;
    let pop = Population::new(5, "vigil-synth-128", 100);
    let mut sizes = Vec::new();
    let mut published: Vec<AlertId> = Vec::new();
    for target in [alerts / 10, alerts] {
        let node = &fed.nodes[0].handle;
        let expires = vigil_node::now_ms() + 30 * 24 * 3600 * 1000;
        for i in published.len()..target {
            let t = pop.sample(i % pop.len(), 0);
            published.push(node.publish_alert(t, Category::Missing, format!("SN-2026-{i:05}"), expires).await?);
        }
        fed.stop(0).await;
        write_hits(&fed, holder, &published, sizes.last().map_or(0, |s: &SizeRun| s.hits))?;
        fed.start_again(0).await?;
        let node = fed.nodes[0].handle.clone();
        if node.operators().await?.is_empty() {
            node.add_operator("bench", vigil_engine::operators::Role::Admin, PASSWORD.into(), "en").await?;
        }
        sizes.push(measure(node, published.len(), requests).await?);
    }
    fed.shutdown().await;
    let ratios = PAGES
        .iter()
        .enumerate()
        .map(|(i, p)| (p.to_string(), sizes[1].pages[i].median_ms / sizes[0].pages[i].median_ms.max(1e-6)))
        .collect();
    Ok(ConsoleBench { requests_per_page: requests, sizes, ratios })
}

/// One hit per alert from `from` (of alerts `already..`), spread over four
/// days (half of them past the 48 h follow-up), and a disclosure asked for
/// every tenth, every other one of those answered.
fn write_hits(
    fed: &LocalFederation,
    from: vigil_protocol::OrgId,
    alerts: &[AlertId],
    already: usize,
) -> anyhow::Result<()> {
    let opened = fed.nodes[0].open()?;
    let store = vigil_node::store::Store::open(&vigil_node::store::db_path(&opened.dir), opened.key, opened.identity)?;
    let now = vigil_node::now_ms();
    let mut ops = Vec::new();
    for (i, alert) in alerts.iter().enumerate().skip(already) {
        let handle = Handle(rand::random());
        let at_ms = now - (i as u64 % 96) * 3_600_000;
        ops.push(StoreOp::PutHit(StoredHit {
            handle,
            role: HitRole::Issuer,
            source: HitSource::Alert(*alert),
            peer: from,
            record: None,
            at_ms,
            delivered: true,
            band: None,
            case: None,
        }));
        if i % 10 == 0 {
            let approved = i % 20 == 0;
            ops.push(StoreOp::PutDisclosure(Box::new(StoredDisclosure {
                id: Handle(rand::random()),
                role: DisclosureRole::Requester,
                peer: from,
                hit: handle,
                query: None,
                record: None,
                reason: "family asks".into(),
                status: if approved { DisclosureStatus::Approved } else { DisclosureStatus::Requested },
                contact: approved.then(|| "Sgt. R. Moreau, +00 555 0101".into()),
                requested_at_ms: at_ms + 60_000,
                decided_at_ms: approved.then_some(at_ms + 120_000),
                delivered: true,
                first_approval: None,
            })));
        }
    }
    for chunk in ops.chunks(1000) {
        store.commit(chunk, now, vec![])?;
    }
    store.flush()?;
    Ok(())
}

/// Signs in at `node`'s console on a loopback API server and times every page.
async fn measure(node: vigil_node::NodeHandle, alerts: usize, requests: usize) -> anyhow::Result<SizeRun> {
    let hits = node.hits().await?.len();
    let disclosures = node.disclosures().await?.len();
    let token = vigil_node::api::ApiToken::new(&"7".repeat(64), "bench")?;
    let settings = vigil_node::console::Settings {
        org: "Shelter North".into(),
        follow_up: Duration::from_secs(48 * 3600),
        session_idle: Duration::from_secs(3600),
        session_max: Duration::from_secs(3600),
        max_upload_bytes: 4 << 20,
        health_every: Duration::from_secs(60),
        health_window: Duration::from_secs(6 * 3600),
    };
    let router = vigil_node::api::router(node, token, 4 << 20, settings);
    let limits = vigil_node::api::Limits {
        max_connections: 64,
        idle: Duration::from_secs(60),
        lifetime: Duration::from_secs(600),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let addr = vigil_node::api::serve("127.0.0.1:0", router, limits, async {
        let _ = stopped.await;
    })
    .await?;
    let base = format!("http://{addr}");
    let run = tokio::task::spawn_blocking(move || time_pages(&base, requests));
    let (pages, rss_mb_before, rss_mb_after) = run.await??;
    let _ = stop.send(());
    Ok(SizeRun { alerts, hits, disclosures, pages, rss_mb_before, rss_mb_after })
}

fn time_pages(base: &str, requests: usize) -> anyhow::Result<(Vec<PageFigures>, f64, f64)> {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let login = agent
        .post(&format!("{base}/login"))
        .send_form(&[("name", "bench"), ("password", PASSWORD)])
        .map_err(|e| anyhow::anyhow!("login: {e}"))?;
    let cookie = login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("login set no cookie"))?
        .to_string();
    let before = rss_mb();
    let mut pages = Vec::new();
    for page in PAGES {
        let mut ms = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let resp = agent.get(&format!("{base}{page}")).set("Cookie", &cookie).call()?;
            anyhow::ensure!(resp.status() == 200, "{page}: {}", resp.status());
            bytes = resp.into_string()?.len();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        pages.push(PageFigures { page: page.into(), median_ms: at(0.5), p99_ms: at(0.99), bytes });
    }
    Ok((pages, before, rss_mb()))
}
