//! `lorry-controller-minion`: asks the webapp for jobs and runs `lorry` for
//! each.
//!
//! The loop ([`run`]): `POST /1.0/give-me-job` with the host name and
//! process id, and `wait` (see [`ask_wait`]): the webapp holds the request
//! until a job may start, so a lorry that becomes due starts at once
//! rather than after a sleep; when a job comes, its spec goes into a private temporary
//! `.lorry` file and `lorry` runs on it in a process group of its own
//! ([`job::run_job`]). Every [`MinionConfig::update_interval`] the new
//! stdout and stderr go to `POST /1.0/job-update` with `exit=no`, which is
//! also the job's heartbeat; when the answer says `kill_job` the whole
//! process group gets SIGTERM, then SIGKILL after
//! [`MinionConfig::kill_grace`]. At the end the exit code and the disk
//! usage of lorry's working directory for the job are reported.
//!
//! Invariants:
//! - The minion never opens STATEDB; the webapp is its only peer.
//! - A webapp that is away does not stop a job: output is kept (up to
//!   [`MinionConfig::output_cap`] bytes per stream, then the oldest text is
//!   dropped with a note) and sent once the webapp answers again, retrying
//!   with exponential backoff up to [`MinionConfig::retry_max`]. The final
//!   report is retried until the webapp takes it; only a stopping minion
//!   gives up, after [`MinionConfig::shutdown_report_timeout`].
//! - No job-update body exceeds [`MinionConfig::update_max_bytes`] once
//!   form-encoded: more output goes in more updates, and a 413 makes them
//!   smaller, so the exit code is never lost to the webapp's body limit.
//! - Exit codes: lorry's own, or 128 + N when signal N ended it (143 for
//!   SIGTERM, 137 for SIGKILL), as shells report them; 127 when lorry could
//!   not be started at all.
//! - Credentials never reach the job output: URL credentials and the proxy
//!   password are replaced by `***` before output leaves the minion.
//! - Below `--min-free-disk` free on the working area's file system the
//!   minion asks for no job, and logs why once a minute; a job failing
//!   meanwhile gets a last line naming ENOSPC.
//! - Resource limits are applied through `prlimit` (see [`config::Limits`]).

pub mod agent;
pub mod cgroup;
pub mod client;
pub mod config;
pub mod containment;
pub mod disk;
pub mod job;
pub mod jobstate;
pub mod options;
pub mod output;
pub mod sandbox;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

pub use client::{ClientError, Exit, Job, WebappClient};
pub use config::{Limits, LorryCommand, MinionConfig};
pub use job::{JobOutcome, run_job};

/// While the working area is low on space, the minion says so at most
/// this often.
const LOW_DISK_LOG_EVERY: Duration = Duration::from_secs(60);

/// Why the minion cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read lorry configuration {path}: {reason}")]
    LorryConfig { path: PathBuf, reason: String },
    #[error(transparent)]
    Proxy(#[from] lc_base::proxy::ProxyError),
    #[error("cannot set up the HTTP client: {0}")]
    HttpClient(String),
    #[error("option --{option}: {reason}")]
    Option {
        option: &'static str,
        reason: String,
    },
}

/// Asks for jobs and runs them until `shutdown` is requested. A job running
/// then is killed and reported before this returns.
pub async fn run(mut config: MinionConfig, mut shutdown: Shutdown) -> Result<(), Error> {
    let mut client = WebappClient::new(
        &config.webapp,
        config.webapp_timeout,
        config.webapp_token.as_deref(),
    )?;
    if let Some(sandbox) = &mut config.sandbox {
        sandbox.keep_known_hosts();
    }
    // Held while the minion runs; the agent dies with it.
    let _agent = start_agent(&mut config).await;
    let isolation = config.isolation();
    client.set_isolation(&isolation);
    tracing::info!(webapp = %config.webapp, host = %config.host, pid = config.pid, %isolation, limits = ?config.job_limits, "minion started");
    if let Some(cgroups) = &config.cgroups {
        let removed = cgroups.remove_stale();
        if removed > 0 {
            tracing::info!(removed, "removed the job cgroups of minions that are gone");
        }
    }
    let stale = job::remove_stale_specs(&std::env::temp_dir());
    if stale > 0 {
        tracing::info!(removed = stale, "removed the job specs of killed minions");
    }
    containment::become_subreaper();
    if let Some(dir) = &config.state_dir {
        for record in jobstate::take_orphans(dir) {
            let span = tracing::info_span!("job", job_id = record.job_id, path = %record.path);
            end_orphan(&config, &client, dir, record, &mut shutdown)
                .instrument(span)
                .await;
        }
    }
    let mut low_disk_logged: Option<std::time::Instant> = None;
    while !shutdown.is_requested() {
        let low = disk::low_disk(config.working_area.as_deref(), config.min_free_disk);
        match (&low, low_disk_logged) {
            (Some(why), None) => {
                tracing::warn!(reason = %why, "asking for no job: low disk space");
                low_disk_logged = Some(std::time::Instant::now());
            }
            (Some(why), Some(at)) if at.elapsed() >= LOW_DISK_LOG_EVERY => {
                tracing::warn!(reason = %why, "still asking for no job: low disk space");
                low_disk_logged = Some(std::time::Instant::now());
            }
            (None, Some(_)) => {
                tracing::info!("disk space is back: asking for jobs again");
                low_disk_logged = None;
            }
            _ => {}
        }
        let wait = ask_wait(&config);
        let asked_at = tokio::time::Instant::now();
        let asked = if low.is_some() {
            Ok(None)
        } else {
            // Not given up when a stop is asked for: the webapp may have
            // started a job for this very answer already (a long poll ends
            // as one becomes due), and a job nobody reports stays running
            // until its timeout. The wait is bounded (`ask_wait`), and a
            // job that comes is reported as not started (`run_job`).
            let batch = (config.batch > 0).then_some(client::BatchAsk {
                max: config.batch,
                parallel: config.batch_parallel,
                ls_remote_timeout: config.batch_ls_remote_timeout,
            });
            client
                .give_me_job(&config.host, config.pid, wait, batch)
                .await
        };
        let pause = match asked {
            Ok(Some(job)) => {
                run_job(&config, &client, job, &mut shutdown).await;
                continue;
            }
            Ok(None) if low.is_some() => config.sleep,
            // The webapp held the request while nothing could start; one
            // that answered sooner (an older webapp, too many waiting, one
            // shutting down) is asked again only once `wait` has passed.
            Ok(None) => wait.saturating_sub(asked_at.elapsed()),
            Err(e) => {
                tracing::warn!(error = %e, sleep = ?config.sleep, "cannot ask for a job");
                config.sleep
            }
        };
        tracing::debug!(?pause, "no job");
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.requested() => {}
        }
    }
    if let Some(cgroups) = &config.cgroups {
        cgroups.remove_slot();
    }
    tracing::info!("minion stopped");
    Ok(())
}

/// The longest the minion asks the webapp to hold a give-me-job: the
/// webapp's own default cap.
pub const MAX_ASK_WAIT: Duration = Duration::from_secs(10);

/// How long give-me-job may be held for this minion: its `--sleep` (the
/// pause it would make anyway), at most [`MAX_ASK_WAIT`] and a third of
/// its request timeout, which must also cover preparing the repository.
fn ask_wait(config: &MinionConfig) -> Duration {
    config
        .sleep
        .min(MAX_ASK_WAIT)
        .min(config.webapp_timeout / 3)
}

/// Starts the ssh-agent holding the minion's keys for the jobs, when it
/// has any, and shows its socket to them.
async fn start_agent(config: &mut MinionConfig) -> Option<agent::Agent> {
    if config.ssh_keys.is_empty() {
        return None;
    }
    match agent::Agent::start(&config.ssh_keys).await {
        Ok(agent) => {
            let socket = agent.socket();
            tracing::info!(keys = config.ssh_keys.len(), socket = %socket.display(), "ssh-agent started for the jobs");
            if let Some(sandbox) = &mut config.sandbox {
                sandbox.agent_socket = Some(socket.clone());
            }
            config.agent_socket = Some(socket);
            Some(agent)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no ssh-agent: jobs cannot use the minion's ssh keys");
            None
        }
    }
}

/// Ends the job of a minion that is gone (see [`jobstate`]): kills what is
/// left of it and reports it ended, retrying while the webapp is away.
/// The record is removed once the webapp has the end, or has ended the job
/// itself; a minion stopping first leaves it for the next one.
async fn end_orphan(
    config: &MinionConfig,
    client: &WebappClient,
    dir: &std::path::Path,
    record: jobstate::JobRecord,
    shutdown: &mut Shutdown,
) {
    let killed = containment::kill_marked(&record.marker).await;
    let (exit, line) = match record.exit {
        Some(exit) => (
            exit,
            format!(
                "lorry-controller-minion: the minion that ran this job stopped before the webapp had its end (exit {exit}); reported by the minion started after it\n"
            ),
        ),
        None => (
            128 + nix::sys::signal::Signal::SIGKILL as i32,
            format!(
                "lorry-controller-minion: the minion running this job was killed; the minion started after it killed what was left of the job ({killed} processes) and reports it ended\n"
            ),
        ),
    };
    tracing::warn!(exit, killed, "ending the job of a minion that is gone");
    let mut backoff = Backoff::new(config.update_interval, config.retry_max);
    loop {
        match client
            .job_update(record.job_id, Exit::Exited(exit), "", &line, None, None)
            .await
        {
            Ok(_) => {
                tracing::info!(exit, "the job of a minion that is gone is reported ended");
                break;
            }
            Err(e) if !e.is_transient() => {
                tracing::warn!(error = %e, "the webapp did not take the end of a gone minion's job (it may have ended it already)");
                break;
            }
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in = ?wait, "cannot report the end of a gone minion's job; will retry");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.requested() => return,
                }
            }
        }
    }
    record.remove(dir);
}

/// Tells [`run`] to stop; see [`Shutdown::new`].
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// Whether the minion has been asked to stop.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = watch::channel(false);
        (ShutdownTrigger(sender), Shutdown(receiver))
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once a stop is requested; never, if the trigger is dropped
    /// without being pulled.
    pub async fn requested(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits between retries: `initial`, then doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Option<Duration>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(Duration::from_millis(10));
        Backoff {
            initial: initial.clamp(Duration::from_millis(10), max),
            max,
            current: None,
        }
    }

    pub fn next_wait(&mut self) -> Duration {
        let wait = match self.current {
            None => self.initial,
            Some(current) => current.saturating_mul(2).min(self.max),
        };
        self.current = Some(wait);
        wait
    }

    pub fn reset(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let waits: Vec<u64> = (0..6).map(|_| backoff.next_wait().as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_secs(5));
        let mut tiny = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(tiny.next_wait() > Duration::ZERO);
    }
}
