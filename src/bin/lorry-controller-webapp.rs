//! `lorry-controller-webapp`: owns STATEDB and the run queue, serves the HTTP API.
//! Everything is in `lc_web`; this parses options (or checks a CONFGIT with
//! `--check-config DIR`, or restores a backup with `--restore FILE`), sets
//! up logging and signals, opens STATEDB, binds and calls
//! [`lc_web::serve_with`].

use anyhow::Context;
use clap::{CommandFactory, Parser};
use lc_core::db::StateDb;
use lc_web::AppState;
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
    // clap requires it without --check-config.
    let statedb = options
        .statedb
        .as_deref()
        .context("--statedb is required")?;
    if let Some(backup) = &options.restore {
        // With the webapp stopped: check the backup and put it in place.
        let info = lc_core::db::backup::restore(backup, statedb)?;
        println!(
            "restored {} into {}: schema version {}, {} lorries, {} jobs",
            backup.display(),
            statedb.display(),
            info.schema_version,
            info.lorries,
            info.jobs
        );
        return Ok(());
    }
    options.logging.init()?;
    let config = options.web_config()?;
    let db = StateDb::open(statedb)?;
    // The per-host cap is an option of this run: recorded once at start-up
    // for give-me-job's queries, not on every request.
    let max_jobs_per_host = config.hosts.max_jobs_per_host;
    db.write(|tx| tx.set_max_jobs_per_host(max_jobs_per_host))
        .context("cannot record --max-jobs-per-host in STATEDB")?;
    let full_check_every = config.full_check_every;
    db.write(|tx| tx.set_full_check_every(full_check_every))
        .context("cannot record --full-check-every in STATEDB")?;
    let listener = tokio::net::TcpListener::bind((options.debug_host.as_str(), options.debug_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}",
                options.debug_host, options.debug_port
            )
        })?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let (security, limits) = options.access.build(address).map_err(anyhow::Error::msg)?;
    lc_web::log_open_access(&security);
    if let Some(file) = &options.debug_port_file {
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", address.port()))
            .and_then(|()| std::fs::rename(&tmp, file))
            .with_context(|| format!("--debug-port-file: cannot write {}", file.display()))?;
    }
    tracing::info!(%address, statedb = %statedb.display(), "listening");
    let state = AppState::new(db, config).with_security(security);
    lc_web::serve_with(listener, state, limits, shutdown_signal()).await?;
    Ok(())
}
