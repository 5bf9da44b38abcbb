//! The `vigil` binary: `init`, `roster`, `policy`, `calibrate`, `demo`,
//! `bench` and `audit verify --export` work on files; `serve` runs the daemon; the other commands talk
//! to a running daemon over its local HTTP API; `vigil drill` (cargo
//! feature `drill`) rehearses a federation in one process.

mod args;
mod calibrate;
mod client;
mod commands;
mod demo;
mod doctor;
mod operator;
mod pad;
mod policy;
mod roster;

use args::{Cli, Command};
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo and drills tell their own story; the daemon logs what it does.
    let quiet = matches!(cli.command, Command::Demo { .. });
    #[cfg(feature = "drill")]
    let quiet = quiet || matches!(cli.command, Command::Drill(_));
    let default = if quiet { "error" } else { "warn,vigil_node=info" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .init();
    match commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
