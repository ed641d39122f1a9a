//! `filegate-admin`: migrations, buckets, reconcile, purge, stats, copy-metadata (SQLite to
//! Postgres) and development tokens.
//! Exit codes: 0 success, 1 error, 2 usage error (clap), 3 reconcile differences.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

// The server's allocator, so reconcile and the embedded endpoint run here as they do there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Logs go to stderr so stdout stays machine-readable (`TOKEN=$(filegate-admin token …)`).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    match cli.command.run().await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(commands::EXIT_ERROR)
        }
    }
}
