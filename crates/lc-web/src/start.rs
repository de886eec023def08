//! What `lorry-controller-webapp` does once its options are parsed: open
//! STATEDB, record this run's settings in it, bind, and serve; or restore a
//! backup into place with the webapp stopped. The binary only parses options,
//! sets up logging and waits for signals.

use std::future::Future;
use std::path::PathBuf;

use lc_core::db::StateDb;

use crate::options::{OptionError, Options};
use crate::{AppState, log_open_access, serve_with};

/// Why the webapp could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Options(#[from] OptionError),
    #[error("--statedb is required")]
    NoStateDb,
    /// lc-core's errors name the STATEDB file.
    #[error(transparent)]
    StateDb(Box<lc_core::Error>),
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Access(String),
    #[error("--debug-port-file: cannot write {}", path.display())]
    PortFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

fn statedb(options: &Options) -> Result<&std::path::Path, StartError> {
    options.statedb.as_deref().ok_or(StartError::NoStateDb)
}

impl From<lc_core::Error> for StartError {
    fn from(error: lc_core::Error) -> StartError {
        StartError::StateDb(Box::new(error))
    }
}

/// `--restore FILE`: checks the backup and puts it in place of STATEDB (the
/// webapp must be stopped). Returns the line to print.
pub fn restore(options: &Options) -> Result<String, StartError> {
    let statedb = statedb(options)?;
    let Some(backup) = &options.restore else {
        return Ok(String::new());
    };
    let info = lc_core::db::backup::restore(backup, statedb)?;
    Ok(format!(
        "restored {} into {}: schema version {}, {} lorries, {} jobs",
        backup.display(),
        statedb.display(),
        info.schema_version,
        info.lorries,
        info.jobs
    ))
}

/// Opens STATEDB, records the per-run settings that give-me-job's queries read
/// there, binds `--debug-host`:`--debug-port` and serves until `shutdown`.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let statedb = statedb(&options)?;
    let config = options.web_config()?;
    let db = StateDb::open(statedb)?;
    // Options of this run, recorded once at start-up rather than passed on
    // every request.
    let (max_jobs_per_host, full_check_every) =
        (config.hosts.max_jobs_per_host, config.full_check_every);
    db.write(|tx| {
        tx.set_max_jobs_per_host(max_jobs_per_host)?;
        tx.set_full_check_every(full_check_every)
    })?;
    let address = format!("{}:{}", options.debug_host, options.debug_port);
    let bind_error = |source| StartError::Bind {
        address: address.clone(),
        source,
    };
    let listener = tokio::net::TcpListener::bind((options.debug_host.as_str(), options.debug_port))
        .await
        .map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let (security, limits) = options.access.build(local).map_err(StartError::Access)?;
    log_open_access(&security);
    if let Some(path) = &options.debug_port_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", local.port()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| StartError::PortFile {
                path: path.clone(),
                source,
            })?;
    }
    tracing::info!(address = %local, statedb = %statedb.display(), "listening");
    let confdir = &config.configuration_directory;
    if config.confgit_url.is_some()
        && config.debug_real_confgit
        && lc_git::confgit::is_checkout(confdir)
    {
        tracing::info!(
            dir = %confdir.display(),
            "the configuration directory is a checkout left by an older version: CONFGIT \
             is read from the commit fetched into its .git, not from these files, which \
             are brought to that commit after each read (git reset --keep: a local change \
             stops it and is shown as a config problem); remove the directory to stop \
             keeping a checkout"
        );
    }
    let state = AppState::new(db, config).with_security(security);
    serve_with(listener, state, limits, shutdown)
        .await
        .map_err(StartError::Serve)
}
