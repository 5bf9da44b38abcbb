//! `vigil calibrate`: an extractor's policy entry from labelled vectors
//! (centring vector, thresholds for target false-match rates), and a
//! report beside it: `report.json`, `report.html` with a DET curve and the
//! score distributions drawn by plotters (`det.svg`, `scores.svg`).

use anyhow::{bail, Context};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use vigil_matcher::calibrate::{self, Calibration, Settings};
use vigil_protocol::policy::Representation;
use vigil_protocol::Modality;

/// Largest labelled file read, in bytes.
const MAX_LABELLED_BYTES: u64 = 2 << 30;

#[derive(Debug, clap::Args)]
pub(crate) struct CalibrateArgs {
    /// JSON lines: {"subject": "...", "vector": [...]} plus optional "quality".
    #[arg(long)]
    labelled: PathBuf,
    /// Target false-match rates, comma-separated, decreasing: one threshold,
    /// or three confidence bands (possible, probable, strong).
    #[arg(long, value_delimiter = ',', default_value = "1e-3")]
    target_fmr: Vec<f64>,
    /// Where the `[[extractor]]` entry goes (TOML, for `vigil policy new|set`).
    #[arg(long)]
    out: PathBuf,
    /// The extractor's id in the policy (a–z, 0–9, '.', '_', '-').
    #[arg(long)]
    id: String,
    /// The model and its version, as its vendor names them.
    #[arg(long, default_value = "")]
    model: String,
    /// face, finger or iris.
    #[arg(long, default_value = "face")]
    modality: String,
    /// Finger positions (1–10, ISO/IEC 19794-2) for a fingerprint extractor.
    #[arg(long, value_delimiter = ',')]
    fingers: Vec<u8>,
    /// Make vectors from standard fingerprint records with this method
    /// (spectral-minutiae-v1): the labelled file's lines are then
    /// {"subject": "...", "record": "PATH"}, paths relative to the file.
    #[arg(long)]
    representation: Option<String>,
    /// Share of subjects held out to measure operational rates.
    #[arg(long, default_value_t = 0.2)]
    holdout: f64,
    /// Do not centre (subtract the mean unit vector).
    #[arg(long)]
    no_centre: bool,
    /// Protected-template length in bits (default 512, 1024 above 256 dimensions).
    #[arg(long)]
    protected_bits: Option<usize>,
    /// Report directory (default: beside --out, named after the id).
    #[arg(long)]
    report: Option<PathBuf>,
}

fn representation(s: &str) -> anyhow::Result<Representation> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| anyhow::anyhow!("unknown representation {s:?} (spectral-minutiae-v1)"))
}

/// Labelled records (`{"subject", "record": PATH}` lines) as labelled
/// vectors, line for line, so every check of `parse_labelled` and its
/// line numbers apply.
fn records_to_vectors(text: &str, file: &Path, r: Representation, fingers: &[u8]) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        subject: String,
        record: PathBuf,
    }
    if fingers.is_empty() {
        bail!("--representation needs --fingers (the positions the extractor holds)");
    }
    let ex = vigil_matcher::minutiae::uncalibrated("calibrating", fingers, r);
    let base = file.parent().unwrap_or(Path::new("."));
    let mut out = String::with_capacity(text.len() * 64);
    for (i, raw) in text.lines().enumerate() {
        if !raw.trim().is_empty() {
            let at = || format!("{} line {}", file.display(), i + 1);
            let l: Line = serde_json::from_str(raw)
                .with_context(|| format!("{}: not a {{\"subject\", \"record\"}} object", at()))?;
            let path = base.join(&l.record);
            let bytes = std::fs::read(&path).with_context(|| format!("{}: cannot read {}", at(), path.display()))?;
            let rec = vigil_records::decode(&bytes).with_context(|| format!("{}: {}", at(), path.display()))?;
            let vector = vigil_matcher::minutiae::record_vector(&ex, &rec)
                .with_context(|| format!("{}: {}", at(), path.display()))?;
            out += &serde_json::json!({"subject": l.subject, "vector": vector}).to_string();
        }
        out.push('\n');
    }
    Ok(out)
}

fn modality(s: &str) -> anyhow::Result<Modality> {
    serde_json::from_value(serde_json::Value::String(s.to_lowercase()))
        .map_err(|_| anyhow::anyhow!("unknown modality {s:?} (face, finger or iris)"))
}

pub(crate) fn run(a: CalibrateArgs) -> anyhow::Result<()> {
    if !(0.0..0.9).contains(&a.holdout) {
        bail!("--holdout must be in [0, 0.9)");
    }
    let meta = std::fs::metadata(&a.labelled).with_context(|| format!("cannot read {}", a.labelled.display()))?;
    if meta.len() > MAX_LABELLED_BYTES {
        bail!("{} is {} bytes, the limit is {MAX_LABELLED_BYTES}", a.labelled.display(), meta.len());
    }
    let text = std::fs::read_to_string(&a.labelled).with_context(|| format!("cannot read {}", a.labelled.display()))?;
    let representation = a.representation.as_deref().map(representation).transpose()?;
    let text = match representation {
        Some(r) => records_to_vectors(&text, &a.labelled, r, &a.fingers)?,
        None => text,
    };
    let samples = calibrate::parse_labelled(&text).with_context(|| format!("{}", a.labelled.display()))?;
    let dim = samples.first().map_or(0, |s| s.vector.len());
    let settings = Settings {
        id: a.id.clone(),
        model: a.model.clone(),
        modality: modality(&a.modality)?,
        target_fmrs: a.target_fmr.clone(),
        holdout: a.holdout,
        centre: !a.no_centre,
        protected_bits: a.protected_bits.unwrap_or(if dim > 256 && a.fingers.len() <= 1 { 1024 } else { 512 }),
        fingers: a.fingers.clone(),
        representation,
    };
    let c = calibrate::calibrate(&samples, &settings)?;
    c.extractor.validate()?;
    let entry = crate::policy::ExtractorsFile { extractor: vec![c.extractor.clone()] };
    let header = summary(&c).lines().map(|l| format!("# {l}\n")).collect::<String>();
    std::fs::write(&a.out, format!("{header}\n{}", toml::to_string(&entry)?))
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    let dir =
        a.report.clone().unwrap_or_else(|| a.out.parent().unwrap_or(Path::new(".")).join(format!("{}-report", a.id)));
    write_report(&dir, &c)?;
    print!("{}", summary(&c));
    println!("Policy entry written to {}; report in {}", a.out.display(), dir.join("report.html").display());
    Ok(())
}

/// The figures, in ISO/IEC 19795-1 terms, as plain text.
fn summary(c: &Calibration) -> String {
    let mut s = format!(
        "Calibrated {} on {} samples of {} subjects ({} dimensions): {} genuine and {} impostor pairs{}.\n",
        c.extractor.id,
        c.samples,
        c.subjects,
        c.dim,
        c.genuine.pairs,
        c.impostor.pairs,
        if c.impostor_sampled { " (impostor pairs drawn at random)" } else { "" }
    );
    s += &format!("EER {:.4} at cosine {:.4}.\n", c.eer, c.extractor.cosine_of(c.eer_score));
    for p in &c.points {
        s += &format!(
            "{:?}: cosine >= {:.4} for target FMR {:e}: FMR {:.2e} [{:.2e}, {:.2e}], FNMR {:.4} [{:.4}, {:.4}] (95 % Wilson)\n",
            p.band, p.cosine, p.target_fmr, p.fmr.rate, p.fmr.low, p.fmr.high, p.fnmr.rate, p.fnmr.low, p.fnmr.high
        );
        for c in &p.fewer_fingers {
            s += &format!(
                "  sharing {} finger(s): cosine sum >= {:.4}: FMR {:.2e} [{:.2e}, {:.2e}], FNMR {:.4} [{:.4}, {:.4}]\n",
                c.fingers, c.cosine, c.fmr.rate, c.fmr.low, c.fmr.high, c.fnmr.rate, c.fnmr.low, c.fnmr.high
            );
        }
    }
    match &c.held_out {
        Some(h) => {
            s += &format!("Held out: {} samples of {} subjects.\n", h.samples, h.subjects);
            for p in &h.points {
                s += &format!(
                    "  {:?}: FMR {:.2e} [{:.2e}, {:.2e}], FNMR {:.4} [{:.4}, {:.4}], FPIR {:.4} against a gallery of {}\n",
                    p.band, p.fmr.rate, p.fmr.low, p.fmr.high, p.fnmr.rate, p.fnmr.low, p.fnmr.high, p.fpir.rate, p.gallery
                );
            }
        }
        None => s += "No subjects held out: operational rates not measured.\n",
    }
    s
}

fn write_report(dir: &Path, c: &Calibration) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let det = det_svg(c);
    let scores = scores_svg(c);
    std::fs::write(dir.join("det.svg"), &det)?;
    std::fs::write(dir.join("scores.svg"), &scores)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(c)?)?;
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Calibration of {id}</title>\
         <style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}pre{{background:#f4f4f4;padding:1em}}</style>\
         </head><body><h1>Calibration of {id}</h1><pre>{summary}</pre>\
         <p>Scores are inner products of the templates exactly as the matcher quantises them (unit vectors at scale 127, \
         after centring), shown as cosines. Intervals are Wilson 95 % intervals over pairs; pairs share samples, so they \
         are narrower than a subject-level bootstrap would give.</p>\
         <h2>DET curve</h2>{det}<h2>Score distributions</h2>{scores}</body></html>",
        id = escape(&c.extractor.id),
        summary = escape(&summary(c)),
    );
    std::fs::write(dir.join("report.html"), html)?;
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn svg<F>(draw: F) -> String
where
    F: FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<(), Box<dyn std::error::Error + '_>>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (760, 420)).into_drawing_area();
        if let Err(e) = root.fill(&WHITE).map_err(|e| e.to_string()).and_then(|_| draw(root).map_err(|e| e.to_string()))
        {
            return format!("<p>plot unavailable: {e}</p>");
        }
    }
    out
}

/// FNMR against FMR, both on log axes; zero rates drawn at the floor.
fn det_svg(c: &Calibration) -> String {
    let floor = (0.5 / c.impostor.pairs as f64).min(0.5 / c.genuine.pairs as f64);
    let pts: Vec<(f64, f64)> = c.det.iter().map(|(a, b)| (a.max(floor), b.max(floor))).collect();
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("Detection error trade-off", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((floor..1.0).log_scale(), (floor..1.0).log_scale())?;
        chart.configure_mesh().x_desc("false-match rate").y_desc("false non-match rate").draw()?;
        chart.draw_series(LineSeries::new(pts, &BLUE))?;
        for p in &c.points {
            let at = (p.fmr.rate.max(floor), p.fnmr.rate.max(floor));
            chart.draw_series(std::iter::once(Circle::new(at, 4, RED.filled())))?;
        }
        Ok(())
    })
}

/// Genuine and impostor scores as shares per cosine bin, with the thresholds.
fn scores_svg(c: &Calibration) -> String {
    const BINS: usize = 200;
    let bin = |score: i32| (((score as f64 / 16129.0 + 1.0) / 2.0 * BINS as f64) as usize).min(BINS - 1);
    let shares = |s: &calibrate::Scores| {
        let mut v = vec![0f64; BINS];
        s.histogram().for_each(|(score, n)| v[bin(score)] += n as f64 / s.pairs as f64);
        v
    };
    let (g, i) = (shares(&c.genuine), shares(&c.impostor));
    let top = g.iter().chain(&i).cloned().fold(0.0, f64::max).max(1e-9);
    // Multi-finger scores are sums of per-finger cosines: the axis spans ±parts.
    let k = c.extractor.parts() as f64;
    let x = |b: usize| ((b as f64 + 0.5) / BINS as f64 * 2.0 - 1.0) * k;
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("Score distributions (cosine)", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-k..k, 0f64..top * 1.1)?;
        chart.configure_mesh().x_desc("cosine of quantised templates").y_desc("share of pairs").draw()?;
        chart
            .draw_series(LineSeries::new(g.iter().enumerate().map(|(k, v)| (x(k), *v)), &BLUE))?
            .label("genuine")
            .legend(|(a, b)| PathElement::new(vec![(a, b), (a + 20, b)], BLUE));
        chart
            .draw_series(LineSeries::new(i.iter().enumerate().map(|(k, v)| (x(k), *v)), &RED))?
            .label("impostor")
            .legend(|(a, b)| PathElement::new(vec![(a, b), (a + 20, b)], RED));
        for p in &c.points {
            let t = p.cosine as f64;
            chart.draw_series(LineSeries::new(vec![(t, 0.0), (t, top * 1.1)], BLACK.stroke_width(1)))?;
        }
        chart.configure_series_labels().border_style(BLACK).draw()?;
        Ok(())
    })
}
