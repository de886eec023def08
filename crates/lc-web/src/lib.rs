//! The webapp's HTTP layer: the `/1.0/...` JSON API.
//!
//! This is the only crate that knows HTTP. Handlers are thin: they take
//! form fields, call one STATEDB transaction in `lc_core::db`, and map the
//! result to a wire type of `lc_api`. The URLs are all in [`router`].

mod access;
mod api;
mod backup;
mod cache;
mod confgit;
mod downstream;
mod error;
pub mod events;
mod export;
mod fleet;
mod form;
mod hosts;
mod listen;
mod longpoll;
pub mod mail;
mod manifest;
mod metrics;
mod minions;
pub mod mqtt;
pub mod options;
mod pages;
mod provenance;
mod router;
pub mod security;
pub mod start;
mod status_json;
mod throttle;
pub mod webhooks;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use lc_core::db::{ReadTx, StateDb, WriteTx};

pub use access::{AccessOptions, log_open_access};
pub use confgit::ReadGate;
pub use downstream::{DEFAULT_SHRINK_LIMIT, HostSettings, PrepareError, prepare};
pub use error::ApiError;
pub use form::Fields;
pub use listen::Limits;
pub use longpoll::{DEFAULT_MAX_WAIT as DEFAULT_GIVE_ME_JOB_MAX_WAIT, MAX_WAITING};
pub use router::router;
pub use security::Security;

/// The webapp's settings, from its command line and configuration file.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where the local clone of CONFGIT lives.
    pub configuration_directory: PathBuf,
    pub confgit_url: Option<String>,
    pub confgit_branch: String,
    /// When false, CONFGIT is read from `configuration_directory` as it is.
    pub debug_real_confgit: bool,
    /// How long one update of the CONFGIT checkout may take before git is
    /// killed (`--confgit-timeout`).
    pub confgit_timeout: std::time::Duration,
    /// A copy of the status page is written here after status requests
    /// (see pages/status.rs for when).
    pub status_html: Option<PathBuf>,
    /// The least time between two writes of `status_html`.
    pub status_html_gap: std::time::Duration,
    /// A copy of `/1.0/manifest.js.gz` is written here whenever it changes.
    pub manifest_file: Option<PathBuf>,
    /// The URL consumers fetch downstream repositories under, for exported
    /// snapshot manifests (`None`: a local downstream's directory).
    pub export_fetch_base: Option<String>,
    /// Served at `/lc-static/`.
    pub static_files: Option<PathBuf>,
    /// Seconds without a job-update after which a running job is a ghost.
    pub ghost_timeout: i64,
    /// Finished jobs older than this many seconds are removed by remove-old-jobs...
    pub job_max_age: i64,
    /// ... except this many of the newest of each lorry.
    pub job_keep_per_lorry: i64,
    /// Show the output of failed jobs on the status page.
    pub publish_failures: bool,
    /// Seconds after which a lorry unchanged per its host's manifest is
    /// given a job all the same.
    pub full_check_every: i64,
    /// Bytes of output kept per job (`--job-output-max`).
    pub job_output_max: u64,
    /// The longest a give-me-job asking with `wait` is held open
    /// (`--give-me-job-max-wait`; see longpoll.rs).
    pub give_me_job_max_wait: std::time::Duration,
    /// Below this many bytes free on STATEDB's file system no job is handed
    /// out and the health check fails (`--min-free-disk`; 0: no limit).
    pub min_free_disk: u64,
    /// Where mirrors go, and how their repositories are created.
    pub downstream: lc_hosts::Downstream,
    /// How Upstream and Downstream Hosts are talked to.
    pub hosts: HostSettings,
    /// Upstream Hosts whose listing is read from a JSON file (tests).
    pub fake_upstream_hosts: BTreeMap<String, PathBuf>,
    /// Whether `POST /1.0/pretend-time` is served (tests).
    pub allow_pretend_time: bool,
    /// No event is recorded (`--debug-bench-without-events`: the baseline
    /// of `benches/event_cost.rs`).
    pub bench_without_events: bool,
    /// Overdue lorries and event retention (see events.rs).
    pub housekeeping: events::Housekeeping,
    /// Where events are POSTed (see webhooks.rs).
    pub webhooks: webhooks::WebhookSettings,
    /// The MQTT broker events are published to, if any (see mqtt.rs).
    pub mqtt: Option<mqtt::MqttSettings>,
    /// Where failure and recovery mail goes, if anywhere (see mail.rs).
    pub mail: Option<mail::MailSettings>,
}

/// `--confgit-branch` unless given.
pub const DEFAULT_CONFGIT_BRANCH: &str = "master";
/// `--confgit-timeout` unless given, in seconds.
pub const DEFAULT_CONFGIT_TIMEOUT: u64 = 300;
/// `--min-free-disk` unless given: 1 GiB.
pub const DEFAULT_MIN_FREE_DISK: u64 = 1 << 30;
/// `--ghost-timeout` unless given: six hours.
pub const DEFAULT_GHOST_TIMEOUT: i64 = 6 * 3600;
/// `--job-max-age` unless given: three days.
pub const DEFAULT_JOB_MAX_AGE: i64 = 3 * 86_400;
/// `--job-keep-per-lorry` unless given.
pub const DEFAULT_JOB_KEEP_PER_LORRY: i64 = 3;

impl WebConfig {
    /// The settings of a webapp reading CONFGIT from (or cloning it into)
    /// `configuration_directory` and preparing repositories on
    /// `downstream`; everything else as the command line's defaults.
    /// The command line, the tests and the benches all start here.
    pub fn new(configuration_directory: PathBuf, downstream: lc_hosts::Downstream) -> WebConfig {
        WebConfig {
            configuration_directory,
            confgit_url: None,
            confgit_branch: DEFAULT_CONFGIT_BRANCH.to_owned(),
            debug_real_confgit: true,
            confgit_timeout: std::time::Duration::from_secs(DEFAULT_CONFGIT_TIMEOUT),
            status_html: None,
            status_html_gap: pages::STATUS_FILE_GAP,
            manifest_file: None,
            export_fetch_base: None,
            static_files: None,
            ghost_timeout: DEFAULT_GHOST_TIMEOUT,
            job_max_age: DEFAULT_JOB_MAX_AGE,
            job_keep_per_lorry: DEFAULT_JOB_KEEP_PER_LORRY,
            publish_failures: false,
            full_check_every: lc_core::db::DEFAULT_FULL_CHECK_EVERY,
            job_output_max: lc_core::db::DEFAULT_JOB_OUTPUT_MAX,
            min_free_disk: DEFAULT_MIN_FREE_DISK,
            give_me_job_max_wait: longpoll::DEFAULT_MAX_WAIT,
            downstream,
            hosts: HostSettings::default(),
            fake_upstream_hosts: BTreeMap::new(),
            allow_pretend_time: false,
            bench_without_events: false,
            housekeeping: events::Housekeeping::default(),
            webhooks: webhooks::WebhookSettings::default(),
            mqtt: None,
            mail: None,
        }
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<StateDb>,
    pub config: Arc<WebConfig>,
    pub metrics: metrics::Metrics,
    /// `.lorry` files parsed by earlier reads of CONFGIT (see confgit.rs).
    pub lorry_files: Arc<lc_core::config::LorryFileCache>,
    /// Who may call what (see security.rs); open by default.
    pub security: Arc<Security>,
    /// What each grokmirror manifest's last read applied in full said of
    /// its version, with the host's settings of that read (see hosts.rs).
    pub manifests: Arc<hosts::ManifestVersions>,
    /// Reads of CONFGIT: one at a time, the others coalesced.
    pub confgit: Arc<confgit::ReadGate>,
    /// Repeated failures are logged once per minute.
    pub logs: Arc<throttle::LogThrottle>,
    /// How each minion isolates its jobs, from their job-updates.
    pub minions: Arc<minions::MinionsSeen>,
    /// When the published manifest last changed (see manifest.rs).
    pub manifest_clock: Arc<manifest::ManifestClock>,
    /// Wakes give-me-jobs waiting for a job (see longpoll.rs).
    pub queue: Arc<longpoll::QueueWake>,
    /// The JSON status last built (see status_json.rs).
    pub status_cache: Arc<status_json::StatusCache>,
    /// The fleet of `/1.0/metrics` and `/1.0/list-queue` (see fleet.rs).
    pub fleet: Arc<fleet::FleetCache>,
    /// When the status file was last written (see pages/status.rs).
    pub status_file: Arc<pages::StatusFile>,
}

impl AppState {
    pub fn new(db: StateDb, config: WebConfig) -> AppState {
        db.set_job_output_max(config.job_output_max);
        if config.bench_without_events {
            tracing::warn!(
                "--debug-bench-without-events: no event is recorded (a bench's baseline)"
            );
            db.set_without_events_for_bench(true);
        }
        AppState {
            db: Arc::new(db),
            config: Arc::new(config),
            metrics: metrics::Metrics::default(),
            lorry_files: Arc::default(),
            security: Arc::default(),
            manifests: Arc::default(),
            confgit: Arc::default(),
            logs: Arc::default(),
            minions: Arc::default(),
            manifest_clock: Arc::default(),
            queue: Arc::default(),
            status_cache: Arc::default(),
            fleet: Arc::default(),
            status_file: Arc::default(),
        }
    }

    /// The same state with these access rules.
    pub fn with_security(mut self, security: Security) -> AppState {
        self.security = Arc::new(security);
        self
    }

    /// Bytes available to us on the file system holding STATEDB (0 when
    /// it cannot be measured, which is logged).
    pub fn disk_free(&self) -> u64 {
        let dir = match self.db.path().parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => std::path::Path::new("."),
        };
        match nix::sys::statvfs::statvfs(dir) {
            Ok(stat) => stat.blocks_available().saturating_mul(stat.fragment_size()),
            Err(err) => {
                if self.logs.due("statvfs") {
                    tracing::warn!(dir = %dir.display(), %err, "cannot measure free disk space");
                }
                0
            }
        }
    }

    /// Why no job is handed out, when STATEDB's file system has less free
    /// space than `--min-free-disk`.
    pub fn disk_warning(&self) -> Option<String> {
        let min = self.config.min_free_disk;
        let free = self.disk_free();
        (free < min).then(|| {
            format!(
                "STATEDB's file system has {} free, less than --min-free-disk {}: \
                 no jobs are handed out until space is freed",
                lc_base::timefmt::bytes(Some(i64::try_from(free).unwrap_or(i64::MAX))),
                lc_base::timefmt::bytes(Some(i64::try_from(min).unwrap_or(i64::MAX))),
            )
        })
    }

    /// Runs one write transaction on a blocking thread.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTx<'_>) -> lc_core::Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let result = tokio::task::spawn_blocking(move || db.write(f))
            .await
            .map_err(ApiError::internal)?;
        if let Err(err) = &result
            && err.is_disk_full()
            && self.logs.due("statedb-full")
        {
            tracing::error!(%err, "STATEDB cannot be written: its disk is full");
        }
        result.map_err(ApiError::from)
    }

    /// Runs one read transaction on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTx<'_>) -> lc_core::Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || db.read(f))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }
}

/// Serves the webapp on an already bound listener until `shutdown` completes;
/// requests in flight are finished first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Limits::default(), shutdown).await
}

/// [`serve`] with these connection limits (see listen.rs).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let housekeeping = tokio::spawn(events::housekeeping(
        Arc::clone(&state.db),
        state.config.housekeeping,
    ));
    let disk_watch = tokio::spawn(events::watch_disk(state.clone()));
    // Hooks are registered before serving: every event from now on is theirs.
    let hooks = {
        let db = Arc::clone(&state.db);
        let settings = state.config.webhooks.clone();
        let mut others: Vec<String> = state.config.mqtt.iter().map(|m| m.cursor_name()).collect();
        if state.config.mail.is_some() {
            others.push(mail::CURSOR_NAME.to_owned());
        }
        tokio::task::spawn_blocking(move || webhooks::register(&db, &settings, &others))
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| std::io::Error::other(format!("cannot register the webhooks: {e}")))?
    };
    let publisher = state.config.mqtt.clone().map(|mqtt| {
        let delivered = hooks
            .iter()
            .find(|r| r.name == mqtt.cursor_name())
            .map_or(0, |r| r.delivered);
        tokio::spawn(mqtt::publish(Arc::clone(&state.db), mqtt, delivered))
    });
    let mailer = state.config.mail.clone().map(|settings| {
        let delivered = hooks
            .iter()
            .find(|r| r.name == mail::CURSOR_NAME)
            .map_or(0, |r| r.delivered);
        tokio::spawn(mail::mail(Arc::clone(&state.db), settings, delivered))
    });
    let delivery = tokio::spawn(webhooks::deliver(
        Arc::clone(&state.db),
        state.config.webhooks.clone(),
        hooks,
    ));
    // Waiting give-me-jobs are answered as soon as shutdown begins, so
    // the connections' graceful end does not wait for them.
    let queue = Arc::clone(&state.queue);
    let shutdown = async move {
        shutdown.await;
        queue.stop();
    };
    let served = listen::serve(listener, router(state), limits, shutdown).await;
    housekeeping.abort();
    disk_watch.abort();
    delivery.abort();
    for task in [publisher, mailer].into_iter().flatten() {
        task.abort();
    }
    served
}
