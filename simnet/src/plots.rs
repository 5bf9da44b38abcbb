//! `report.html`: the report's figures as SVG plots (drawn with plotters)
//! beside its tables, in one self-contained file.

use crate::report::Report;
use plotters::prelude::*;

const SIZE: (u32, u32) = (760, 340);

fn svg<F>(draw: F) -> String
where
    F: FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), Box<dyn std::error::Error + '_>>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        if let Err(e) = root.fill(&WHITE).map_err(|e| e.to_string()).and_then(|_| draw(root).map_err(|e| e.to_string()))
        {
            return format!("<p>plot unavailable: {e}</p>");
        }
    }
    out
}

/// Cumulative distribution of live delivery latencies.
fn delivery_cdf(r: &Report) -> String {
    let d = &r.live_delays;
    if d.is_empty() {
        return "<p>No deliveries.</p>".into();
    }
    let max = (*d.last().expect("non-empty") as f64).max(1.0);
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("Alert delivery latency (CDF over members)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..max * 1.05, 0f64..1.0)?;
        chart.configure_mesh().x_desc("ms after publication").y_desc("fraction delivered").draw()?;
        let n = d.len() as f64;
        chart
            .draw_series(LineSeries::new(d.iter().enumerate().map(|(i, v)| (*v as f64, (i + 1) as f64 / n)), &BLUE))?;
        Ok(())
    })
}

/// Hits at the issuers over the drill's time.
fn hits_over_time(r: &Report) -> String {
    let h = &r.hits_over_time;
    if h.is_empty() {
        return "<p>No hits.</p>".into();
    }
    let tmax = h.last().expect("non-empty").0.max(r.timeline_s).max(1.0);
    let ymax = h.len() as f64;
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("Hits reaching issuers over time", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..tmax * 1.05, 0f64..ymax * 1.1)?;
        chart.configure_mesh().x_desc("s since the timeline started").y_desc("hits").draw()?;
        let mut pts = vec![(0.0, 0.0)];
        for (t, n) in h {
            pts.push((*t, (*n - 1) as f64));
            pts.push((*t, *n as f64));
        }
        chart.draw_series(LineSeries::new(pts, &RED))?;
        Ok(())
    })
}

/// Bytes each node sent.
fn bytes_per_node(r: &Report) -> String {
    if r.per_node.is_empty() {
        return String::new();
    }
    let max = r.per_node.iter().map(|n| n.bytes).max().unwrap_or(1).max(1) as f64 / 1e6;
    let n = r.per_node.len();
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("Bytes sent per node", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, 0f64..max * 1.1)?;
        chart.configure_mesh().x_desc("node (scenario order)").y_desc("MB").disable_x_mesh().draw()?;
        chart.draw_series(r.per_node.iter().enumerate().map(|(i, x)| {
            Rectangle::new([(i as f64 + 0.1, 0.0), (i as f64 + 0.9, x.bytes as f64 / 1e6)], GREEN.mix(0.7).filled())
        }))?;
        Ok(())
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A self-contained HTML page: plots first, then the invariants and tables.
pub fn html(r: &Report) -> String {
    let mut h = String::new();
    h += "<!doctype html><html><head><meta charset=\"utf-8\">";
    h += &format!("<title>Drill report: {}</title>", escape(&r.scenario));
    h += "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}\
          table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em}\
          .pass{color:#070}.fail{color:#b00;font-weight:bold}.fig{margin:1em 0}</style></head><body>";
    h += &format!("<h1>Drill report: {}</h1>", escape(&r.scenario));
    h += &format!(
        "<p>Seed {}, alert form {:?}, {} organisations, {} records, {} alerts; {} of {} invariants hold. Live delivery \
         p50 {} ms, p99 {} ms; {} of {} expected hits found, {} false; wall time {:.1} s.</p>",
        r.seed,
        r.form,
        r.nodes,
        r.records,
        r.alerts,
        r.invariants.len() - r.invariants_failed,
        r.invariants.len(),
        r.delivery_p50_ms,
        r.delivery_p99_ms,
        r.hits_found,
        r.hits_expected,
        r.false_hits,
        r.wall_s
    );
    h += "<h2>Invariants</h2><table>";
    for i in &r.invariants {
        let (class, word) = if i.passed { ("pass", "pass") } else { ("fail", "FAIL") };
        h += &format!(
            "<tr><td class=\"{class}\">{word}</td><td>{}</td><td>{}</td></tr>",
            escape(&i.name),
            escape(&i.detail)
        );
    }
    h += "</table>";
    for fig in [delivery_cdf(r), hits_over_time(r), bytes_per_node(r)] {
        h += &format!("<div class=\"fig\">{fig}</div>");
    }
    h += "<h2>Details</h2><pre>";
    h += &escape(&r.markdown());
    h += "</pre></body></html>\n";
    h
}
