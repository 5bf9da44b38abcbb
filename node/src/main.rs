//! The `vigil` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = vigil_node::cli::Cli::parse();
    // The demo tells its own story; the daemon logs what it does.
    let default = match cli.command {
        vigil_node::cli::Command::Demo { .. } => "error",
        _ => "warn,vigil_node=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .init();
    match vigil_node::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
