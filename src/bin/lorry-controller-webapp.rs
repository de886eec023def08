//! `lorry-controller-webapp`: owns STATEDB and the run queue, serves the HTTP API.
//! Everything is in `lc_web`; this parses options (or checks a CONFGIT with
//! `--check-config DIR`), sets up logging and signals, and calls
//! [`lc_web::start::run`] (or [`lc_web::start::restore`] for `--restore FILE`).

use clap::{CommandFactory, Parser};
use lc_web::options::Options;

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(%err, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = lorry_controller::args_with_config_file(std::env::args_os(), &Options::command())?;
    let options = Options::parse_from(args);
    if let Some(dir) = &options.check_config {
        // A CI gate for CONFGIT: no STATEDB, no server; exit 1 on any problem.
        let report = lc_core::config::check_config(dir);
        print!("{report}");
        std::process::exit(if report.is_clean() { 0 } else { 1 });
    }
    if options.restore.is_some() {
        // With the webapp stopped: check the backup and put it in place.
        println!("{}", lc_web::start::restore(&options)?);
        return Ok(());
    }
    // Held to the end: dropping it sends the last spans.
    let _traces = options.logging.init("lorry-controller-webapp")?;
    lc_web::start::run(options, shutdown_signal()).await?;
    Ok(())
}
