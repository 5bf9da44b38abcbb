//! The drill harness: many real Vigil nodes in one process over libp2p's
//! in-memory transport, driven by a scenario file (organisations, a seeded
//! synthetic population, a timeline with faults and malicious members), and
//! a report of what happened (`report.json`, `report.md`, `report.html`).

mod attack;
pub mod measure;
pub mod plots;
pub mod population;
pub mod report;
mod run;
pub mod scenario;
pub mod wire;

pub use report::{Invariant, Report};
pub use scenario::{Scenario, ScenarioError};

use std::path::PathBuf;

/// `vigil drill SCENARIO.toml --out DIR [--seed N] [--json]`.
#[derive(Debug, clap::Args)]
pub struct DrillArgs {
    /// The scenario file (see scenarios/ and the README).
    pub scenario: PathBuf,
    /// Where report.json, report.md and report.html go.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overrides the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as one JSON object (no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// Plays a scenario and computes its report.
pub async fn drill(s: &Scenario, progress: bool) -> anyhow::Result<Report> {
    let obs = run::play(s, progress).await?;
    Ok(Report::new(s, obs))
}

/// Writes `report.json`, `report.md` and `report.html` into `dir`.
pub fn write_reports(r: &Report, dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(dir.join("report.md"), r.markdown())?;
    std::fs::write(dir.join("report.html"), plots::html(r))?;
    Ok(())
}

/// The `vigil drill` command; fails when an invariant fails.
pub async fn run_cli(args: DrillArgs) -> anyhow::Result<()> {
    let s = Scenario::load(&args.scenario, args.seed)?;
    let progress = !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let r = drill(&s, progress).await?;
    if let Some(dir) = &args.out {
        write_reports(&r, dir)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", r.markdown());
        if let Some(dir) = &args.out {
            println!("Reports written to {}.", dir.display());
        }
    }
    anyhow::ensure!(r.invariants_failed == 0, "{} invariant(s) failed", r.invariants_failed);
    Ok(())
}
