//! The console's health page: the node's metrics sampled in memory every
//! `console.health_every` over `console.health_window` (alerts, hits, the
//! outbox, peers, commit latency, event-loop lag), drawn as SVG plots by
//! plotters and served from this origin (`img-src 'self'`).

use super::*;
use askama::Template;
use axum::extract::{Extension, Path};
use plotters::prelude::*;
use std::collections::VecDeque;
use std::sync::Mutex;

/// One sample: gauges as read, latencies over the interval before it
/// (`None`: nothing was committed or timed in it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Sample {
    pub at_ms: u64,
    pub alerts: f64,
    pub hits: f64,
    pub outbox: f64,
    pub peers: f64,
    pub commit: Latency,
    pub lag: Latency,
}

/// A histogram's interval: mean and 99th percentile (the upper bound of
/// the bucket it falls in), in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Latency {
    pub mean_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// A histogram as the text format gives it: cumulative buckets `(le, count)`, sum, count.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cumulative {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Cumulative {
    /// The histogram `name` (without `_bucket`) in `text`.
    pub(crate) fn read(text: &str, name: &str) -> Self {
        let prefix = format!("{name}_bucket{{le=\"");
        let buckets = text
            .lines()
            .filter_map(|l| {
                let (le, rest) = l.strip_prefix(&prefix)?.split_once("\"} ")?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                Some((le, rest.split(' ').next()?.parse().ok()?))
            })
            .collect();
        let sum = crate::metrics::sample(text, &format!("{name}_sum"));
        let count = crate::metrics::sample(text, &format!("{name}_count"));
        Self { buckets, sum, count }
    }

    /// What was observed since `before`.
    pub(crate) fn since(&self, before: &Cumulative) -> Latency {
        let n = self.count - before.count;
        if n <= 0.0 {
            return Latency::default();
        }
        let mean_ms = Some((self.sum - before.sum) / n * 1e3);
        let target = (0.99 * n).ceil();
        let mut finite = None;
        let mut p99_ms = None;
        for (i, (le, c)) in self.buckets.iter().enumerate() {
            let was = before.buckets.get(i).map_or(0.0, |b| b.1);
            if le.is_finite() {
                finite = Some(*le);
            }
            if c - was >= target {
                // Past the last finite bound: say that bound (at least this slow).
                p99_ms = finite.map(|f| f * 1e3);
                break;
            }
        }
        Latency { mean_ms, p99_ms }
    }
}

/// The samples of the last window, oldest first.
#[derive(Debug)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
    capacity: usize,
    pub every: Duration,
}

impl History {
    pub(crate) fn new(every: Duration, window: Duration) -> Self {
        let capacity = (window.as_secs_f64() / every.as_secs_f64().max(1e-3)).ceil().max(1.0) as usize;
        Self { samples: Mutex::new(VecDeque::with_capacity(capacity.min(4096))), capacity, every }
    }

    pub(crate) fn push(&self, s: Sample) {
        let mut v = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() == self.capacity {
            v.pop_front();
        }
        v.push_back(s);
    }

    pub(crate) fn all(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    fn window(&self) -> Duration {
        self.every * self.capacity as u32
    }
}

/// Samples the node into `history` until the node is gone.
pub(crate) async fn sample_loop(node: NodeHandle, history: Arc<History>) {
    let mut tick = tokio::time::interval(history.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut commit, mut lag) = (Cumulative::default(), Cumulative::default());
    loop {
        tick.tick().await;
        let Ok(status) = node.status().await else { return };
        let m = &node.metrics;
        m.own.set_status(&status);
        let text = crate::metrics::encode(&m.registry);
        let (c, l) =
            (Cumulative::read(&text, "vigil_commit_seconds"), Cumulative::read(&text, "vigil_event_loop_lag_seconds"));
        history.push(Sample {
            at_ms: crate::now_ms(),
            alerts: status.alerts as f64,
            hits: status.hits as f64,
            outbox: status.outbox as f64,
            peers: status.connected.len() as f64,
            commit: c.since(&commit),
            lag: l.since(&lag),
        });
        (commit, lag) = (c, l);
    }
}

/// The plots the page shows, by path name.
const PLOTS: [&str; 6] = ["alerts", "hits", "outbox", "peers", "commit", "lag"];

/// A plot's title and y-axis label in the operator's language.
fn labels(tr: &Tr, name: &str) -> (&'static str, &'static str) {
    match name {
        "alerts" => (tr.plot_alerts, tr.alerts_unit),
        "hits" => (tr.plot_hits, tr.hits_unit),
        "outbox" => (tr.plot_outbox, tr.outbox_unit),
        "peers" => (tr.plot_peers, tr.peers_unit),
        "commit" => (tr.plot_commit, tr.latency_unit),
        _ => (tr.plot_lag, tr.latency_unit),
    }
}

/// The series of plot `name`: one or two lines of (minutes ago, value).
fn series(samples: &[Sample], name: &str, now_ms: u64) -> Option<Vec<Vec<(f64, f64)>>> {
    let ago = |s: &Sample| -((now_ms.saturating_sub(s.at_ms)) as f64) / 60_000.0;
    let gauge = |f: fn(&Sample) -> f64| vec![samples.iter().map(|s| (ago(s), f(s))).collect()];
    let latency = |f: fn(&Sample) -> Latency| {
        let p99 = samples.iter().filter_map(|s| Some((ago(s), f(s).p99_ms?))).collect();
        let mean = samples.iter().filter_map(|s| Some((ago(s), f(s).mean_ms?))).collect();
        vec![p99, mean]
    };
    Some(match name {
        "alerts" => gauge(|s| s.alerts),
        "hits" => gauge(|s| s.hits),
        "outbox" => gauge(|s| s.outbox),
        "peers" => gauge(|s| s.peers),
        "commit" => latency(|s| s.commit),
        "lag" => latency(|s| s.lag),
        _ => return None,
    })
}

/// Plot `name` over the last `window` as an SVG document.
pub(crate) fn plot(tr: &Tr, samples: &[Sample], name: &str, window: Duration, now_ms: u64) -> Option<String> {
    let lines = series(samples, name, now_ms)?;
    let (title, unit) = labels(tr, name);
    let ymax = lines.iter().flatten().map(|p| p.1).fold(0.0, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.15 } else { 1.0 };
    let xmin = -(window.as_secs_f64() / 60.0);
    let mut out = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut out, (640, 240)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(xmin..0.0, 0.0..ymax)?;
        chart.configure_mesh().x_desc(tr.minutes_ago).y_desc(unit).draw()?;
        for (line, colour) in lines.iter().zip([RED, BLUE]) {
            chart.draw_series(LineSeries::new(line.iter().copied(), colour.stroke_width(2)))?;
            chart.draw_series(line.iter().map(|p| Circle::new(*p, 2, colour.filled())))?;
        }
        root.present()?;
        Ok(())
    })()
    .map_err(|e| e.to_string());
    drawn.ok().map(|()| out)
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage<'a> {
    f: Frame<'a>,
    plots: Vec<(&'static str, &'static str)>,
    samples: usize,
    every_s: u64,
    window_h: String,
    latest: Vec<(&'static str, String)>,
}

/// GET /health.
pub(super) async fn page(State(c): State<Console>, Extension(op): Extension<Operator>) -> Response {
    let tr = op.tr();
    let samples = c.health.all();
    let ms = |v: Option<f64>| v.map_or("-".into(), |x| format!("{x:.2} ms"));
    let latest = samples
        .last()
        .map(|s| {
            vec![
                (tr.plot_alerts, s.alerts.to_string()),
                (tr.plot_hits, s.hits.to_string()),
                (tr.plot_outbox, s.outbox.to_string()),
                (tr.plot_peers, s.peers.to_string()),
                (tr.commit_p99, ms(s.commit.p99_ms)),
                (tr.lag_p99, ms(s.lag.p99_ms)),
            ]
        })
        .unwrap_or_default();
    let page = HealthPage {
        f: Frame::new(&c, &op, tr.health, "health"),
        plots: PLOTS.iter().map(|p| (*p, labels(tr, p).0)).collect(),
        samples: samples.len(),
        every_s: c.health.every.as_secs(),
        window_h: format!("{:.1}", c.health.window().as_secs_f64() / 3600.0),
        latest,
    };
    html(StatusCode::OK, page.render())
}

/// GET /health/{name}.svg.
pub(super) async fn svg(
    State(c): State<Console>,
    Extension(op): Extension<Operator>,
    Path(file): Path<String>,
) -> Response {
    let Some(name) = file.strip_suffix(".svg") else { return StatusCode::NOT_FOUND.into_response() };
    match plot(op.tr(), &c.health.all(), name, c.health.window(), crate::now_ms()) {
        Some(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_latency_comes_from_bucket_deltas() {
        let mut registry = prometheus_client::registry::Registry::with_prefix("vigil");
        let m = crate::metrics::Metrics::register(&mut registry);
        m.commit_seconds.observe(0.5);
        let before = Cumulative::read(&crate::metrics::encode(&registry), "vigil_commit_seconds");
        assert_eq!(before.count, 1.0);
        assert_eq!(before.since(&Cumulative::default()).mean_ms, Some(500.0));
        for _ in 0..99 {
            m.commit_seconds.observe(0.000_06);
        }
        m.commit_seconds.observe(0.003);
        let after = Cumulative::read(&crate::metrics::encode(&registry), "vigil_commit_seconds");
        let l = after.since(&before);
        // 100 observations: 99 in the 100 µs bucket, one in the 3.2 ms one; the 0.5 s before is not counted.
        assert_eq!(l.p99_ms, Some(0.1));
        let mean = l.mean_ms.unwrap();
        assert!((mean - (99.0 * 0.06 + 3.0) / 100.0).abs() < 1e-9, "{mean}");
        assert_eq!(after.since(&after), Latency::default(), "nothing in an empty interval");
    }

    #[test]
    fn history_keeps_its_window_and_plots_parse_as_svg() {
        let h = History::new(Duration::from_secs(60), Duration::from_secs(180));
        for i in 0..5u64 {
            let lat = Latency { mean_ms: Some(i as f64), p99_ms: Some(2.0 * i as f64) };
            h.push(Sample { at_ms: 1_000_000 + i * 60_000, alerts: i as f64, commit: lat, ..Sample::default() });
        }
        let all = h.all();
        assert_eq!(all.iter().map(|s| s.alerts).collect::<Vec<_>>(), vec![2.0, 3.0, 4.0], "oldest dropped");
        let now = 1_000_000 + 4 * 60_000;
        for name in PLOTS {
            let svg = plot(&crate::console::i18n::FR, &all, name, Duration::from_secs(180), now).expect(name);
            let doc = roxmltree::Document::parse(&svg).expect("plotters writes XML");
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            assert!(doc.descendants().any(|n| n.has_tag_name("polyline") || n.has_tag_name("circle")), "{name}");
        }
        assert!(plot(&crate::console::i18n::EN, &all, "nothing", Duration::from_secs(180), now).is_none());
    }
}
