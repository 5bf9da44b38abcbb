//! The `vigil` binary: the node's commands, and `vigil drill` from the
//! drill harness.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about = "Vigil: a federated alert and identification network for missing persons")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Subcommand)]
enum Top {
    #[command(flatten)]
    Node(vigil_node::cli::Command),
    /// Rehearse the federation: play a scenario file with many real nodes in
    /// one process and report delivery, hits, traffic and invariants.
    Drill(vigil_simnet::DrillArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo and drills tell their own story; the daemon logs what it does.
    let default = match cli.command {
        Top::Node(vigil_node::cli::Command::Demo { .. }) | Top::Drill(_) => "error",
        _ => "warn,vigil_node=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Top::Node(command) => vigil_node::cli::run(vigil_node::cli::Cli { command }).await,
        Top::Drill(args) => vigil_simnet::run_cli(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
