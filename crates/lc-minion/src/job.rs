//! One job: lorry started, watched, reported on, and killed when asked.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::Instrument;

use crate::cgroup::JobCgroup;
use crate::client::{ClientError, Exit, Job, WebappClient};
use crate::config::MinionConfig;
use crate::containment;
use crate::disk::{disk_usage, working_dir};
use crate::jobstate::JobRecord;
use crate::output::{Chunk, StreamBuffer, Unsent};
use crate::{Backoff, Shutdown};

/// How long lorry's pipes may stay open after lorry exited (a straggler in
/// its process group) before the group is killed.
const PIPE_DRAIN: Duration = Duration::from_secs(2);

/// What happened to a job, as far as the minion is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// The exit code reported (128 + N for a lorry killed by signal N).
    pub exit: i32,
    /// Whether the webapp acknowledged the final report.
    pub reported: bool,
}

/// Runs `job` to its end and reports it. Never fails: every problem ends up
/// in the job's output and exit code, or in the minion's log when the
/// webapp cannot be told.
pub async fn run_job(
    config: &MinionConfig,
    client: &WebappClient,
    job: Job,
    shutdown: &mut Shutdown,
) -> JobOutcome {
    let span = tracing::info_span!("job", job_id = job.job_id, path = %job.path);
    if let Some(parent) = &job.traceparent {
        lc_startup::traces::continue_trace(&span, parent);
    }
    job.run(config, client, shutdown).instrument(span).await
}

/// Output read from lorry and not yet taken.
#[derive(Default)]
struct Streams {
    stdout: StreamBuffer,
    stderr: StreamBuffer,
}

type Shared = Arc<Mutex<Streams>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Streams> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Room left in a job-update body for the fields other than the output
/// (`job_id`, `exit`, `disk_usage` and the field names).
const FORM_OVERHEAD: usize = 256;

/// The largest result file of lorry's that is sent; a larger one is left
/// out, with a note in the output.
const MAX_RESULT: u64 = 4 * 1024 * 1024;

/// strerror(ENOSPC), as git and the other tools print it.
const DISK_FULL: &str = "No space left on device";

/// The smallest body budget 413 answers shrink it to; below it the output
/// is dropped (with a note) so that the exit still gets through.
const MIN_BUDGET: usize = 4096;

/// Text not yet acknowledged by the webapp, and how big a body may be.
struct Pending {
    stdout: Unsent,
    stderr: Unsent,
    /// Most bytes of one form-encoded job-update body.
    budget: usize,
    /// The job's record in the state directory, once lorry runs.
    record: Option<(std::path::PathBuf, JobRecord)>,
    /// lorry's result (JSON), sent with the final update.
    result: Option<String>,
    /// Whether the output said a disk was full (ENOSPC).
    saw_disk_full: bool,
}

/// The output sent in one job-update.
struct Batch {
    stdout: Chunk,
    stderr: Chunk,
}

impl Pending {
    fn new(config: &MinionConfig) -> Self {
        Pending {
            stdout: Unsent::new(config.output_cap),
            stderr: Unsent::new(config.output_cap),
            budget: config.update_max_bytes.max(MIN_BUDGET),
            record: None,
            result: None,
            saw_disk_full: false,
        }
    }

    fn absorb(&mut self, shared: &Shared, all: bool, config: &MinionConfig) {
        let mut streams = lock(shared);
        let out = streams.stdout.take(all, &config.redactor);
        let err = streams.stderr.take(all, &config.redactor);
        drop(streams);
        // A phrase cut between two reads is missed; the free space is
        // measured at the end as well.
        self.saw_disk_full |= [&out, &err]
            .iter()
            .any(|text| text.contains(DISK_FULL) || text.contains("ENOSPC"));
        self.stdout.push(&out);
        self.stderr.push(&err);
    }

    /// As much of both streams as fits one body: each stream gets half the
    /// room, and what one does not need goes to the other.
    fn batch(&self) -> Batch {
        self.batch_leaving(0)
    }

    /// Like [`Pending::batch`], leaving `reserve` bytes of the body free.
    fn batch_leaving(&self, reserve: usize) -> Batch {
        let room = self.budget.saturating_sub(FORM_OVERHEAD + reserve);
        let half = room / 2;
        let err_need = self.stderr.encoded_len();
        let out_need = self.stdout.encoded_len();
        let (out_room, err_room) = if err_need <= half {
            (room - err_need, err_need)
        } else if out_need <= half {
            (out_need, room - out_need)
        } else {
            (room - half, half)
        };
        Batch {
            stdout: self.stdout.chunk(out_room),
            stderr: self.stderr.chunk(err_room),
        }
    }

    /// Whether `batch` is all there is to send.
    fn is_all(&self, batch: &Batch) -> bool {
        self.stdout.covered_by(&batch.stdout) && self.stderr.covered_by(&batch.stderr)
    }

    fn acknowledge(&mut self, batch: &Batch) {
        self.stdout.acknowledge(&batch.stdout);
        self.stderr.acknowledge(&batch.stderr);
    }

    fn is_empty(&self) -> bool {
        self.stdout.is_empty() && self.stderr.is_empty()
    }

    /// The result's encoded size, once it fits: a result taking more than
    /// half a body is left out (with a note), so that the output never goes
    /// in slivers beside it.
    fn result_reserve(&mut self) -> usize {
        let size = self.result.as_deref().map_or(0, crate::output::encoded_len);
        if size > self.budget / 2 {
            tracing::warn!(
                size,
                budget = self.budget,
                "lorry's result is too large for a job-update; left out"
            );
            self.result = None;
            self.stderr.push(&format!(
                "lorry-controller-minion: lorry's result ({size} bytes encoded) does not fit a job-update of {} bytes; left out\n",
                self.budget
            ));
            return 0;
        }
        size
    }

    /// After a 413: halves the budget. When it is already at its floor,
    /// drops the output instead (the exit matters more); false when even
    /// that was done already, so nothing smaller can be sent.
    fn shrink(&mut self) -> bool {
        if self.budget > MIN_BUDGET {
            self.budget = (self.budget / 2).max(MIN_BUDGET);
            tracing::warn!(
                budget = self.budget,
                "the webapp found a job-update too large; sending smaller ones"
            );
            return true;
        }
        if self.result.take().is_some() {
            tracing::error!(
                "the webapp refuses even small job-updates; leaving lorry's result out"
            );
            self.stderr.push(
                "lorry-controller-minion: lorry's result was left out: the webapp refused it as too large\n",
            );
            return true;
        }
        if self.stdout.has_text() || self.stderr.has_text() {
            tracing::error!(
                "the webapp refuses even small job-updates; dropping the output to report the exit"
            );
            let why = "because the webapp refused them as too large";
            self.stdout.drop_all(why);
            self.stderr.drop_all(why);
            return true;
        }
        false
    }
}

/// A kill in progress: SIGTERM sent, SIGKILL due at `deadline`.
struct Kill {
    reason: String,
    deadline: Instant,
    escalated: bool,
}

impl Job {
    async fn run(
        self,
        config: &MinionConfig,
        client: &WebappClient,
        shutdown: &mut Shutdown,
    ) -> JobOutcome {
        tracing::info!(lorry_timeout = self.lorry_timeout, "job received");
        let mut pending = Pending::new(config);
        if shutdown.is_requested() {
            pending
                .stderr
                .push("lorry-controller-minion: not started: the minion is stopping\n");
            let exit = 128 + Signal::SIGTERM as i32;
            return self
                .report_end(config, client, exit, &mut pending, None, shutdown)
                .await;
        }
        let spec = match write_spec(&self) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::error!(error = %e, "cannot write the spec file");
                pending.stderr.push(&format!(
                    "lorry-controller-minion: cannot write the spec file: {e}\n"
                ));
                return self
                    .report_end(config, client, 127, &mut pending, None, shutdown)
                    .await;
            }
        };
        let spec_file = spec
            .path()
            .join(format!("{}.lorry", self.path.replace('/', "_")));
        let marker = containment::new_marker(self.job_id);
        let result_file = spec.path().join("result.json");
        let prepared = match prepare(&self, config, spec.path(), &spec_file, &result_file) {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::error!(error = %e, "the job cannot be run");
                pending
                    .stderr
                    .push(&format!("lorry-controller-minion: {e}\n"));
                return self
                    .report_end(config, client, 127, &mut pending, None, shutdown)
                    .await;
            }
        };
        pending.stdout.push(&format!(
            "lorry-controller-minion: isolation: {}\n",
            prepared.isolation
        ));
        for note in &prepared.notes {
            pending
                .stderr
                .push(&format!("lorry-controller-minion: {note}\n"));
        }
        tracing::debug!(argv = ?prepared.argv, "the job's command");
        let cgroup = prepared.cgroup;
        let rlimits_only = cgroup.is_none();
        let cpu_limit = prepared.cpu_watch;
        let mut env = crate::sandbox::job_env(std::env::vars_os(), config.sandbox.is_some());
        env.push((containment::MARKER_VAR.into(), marker.clone().into()));
        if let Some(socket) = &config.agent_socket {
            env.push(("SSH_AUTH_SOCK".into(), socket.clone().into()));
        }
        let mut command = config.lorry.command_for(&prepared.argv, env);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let program = prepared.argv[0].to_string_lossy().into_owned();
                tracing::error!(%program, error = %e, "cannot start lorry");
                pending.stderr.push(&format!(
                    "lorry-controller-minion: cannot run {program}: {e}\n"
                ));
                if let Some(cgroup) = cgroup {
                    cgroup.remove();
                }
                return self
                    .report_end(config, client, 127, &mut pending, None, shutdown)
                    .await;
            }
        };
        let group = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        tracing::info!(pid = ?group, "lorry started");
        if let Some(dir) = &config.state_dir {
            let record = JobRecord::new(self.job_id, &self.path, &marker);
            match record.save(dir) {
                Ok(()) => pending.record = Some((dir.clone(), record)),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot record the job; a successor could not end it if this minion is killed")
                }
            }
        }
        // The webapp asks for the kill once the job outlives its
        // lorry-timeout; should it not be reachable, the minion does it
        // itself a little later.
        let own_deadline = u64::try_from(self.lorry_timeout)
            .ok()
            .filter(|&seconds| seconds > 0)
            .map(|seconds| {
                Instant::now()
                    + Duration::from_secs(seconds)
                    + (config.update_interval * 3).max(Duration::from_secs(1))
            });
        let shared: Shared = Arc::default();
        let readers = [
            child
                .stdout
                .take()
                .map(|pipe| pump(pipe, Arc::clone(&shared), false)),
            child
                .stderr
                .take()
                .map(|pipe| pump(pipe, Arc::clone(&shared), true)),
        ];

        let mut backoff = Backoff::new(config.update_interval, config.retry_max);
        let mut next_update = Instant::now() + config.update_interval;
        let mut in_flight: Option<JoinHandle<Result<lc_api::JobInfo, ClientError>>> = None;
        let mut sent: Option<Batch> = None;
        let mut reporting = true;
        let mut kill: Option<Kill> = None;
        let mut next_cpu_check = Instant::now() + CPU_CHECK;
        let status = loop {
            let kill_deadline = kill.as_ref().filter(|k| !k.escalated).map(|k| k.deadline);
            tokio::select! {
                status = child.wait() => break status,
                () = sleep_until(next_update), if reporting && in_flight.is_none() => {
                    pending.absorb(&shared, false, config);
                    let client = client.clone();
                    let batch = pending.batch();
                    let (job_id, out, err) = (
                        self.job_id,
                        batch.stdout.text.clone(),
                        batch.stderr.text.clone(),
                    );
                    sent = Some(batch);
                    // In the job's span: the update's trace is the job's.
                    in_flight = Some(tokio::spawn(
                        async move {
                            client.job_update(job_id, Exit::Running, &out, &err, None, None).await
                        }
                        .in_current_span(),
                    ));
                }
                answer = async {
                    match in_flight.as_mut() {
                        Some(handle) => handle.await,
                        None => std::future::pending().await,
                    }
                } => {
                    in_flight = None;
                    let answer = answer.unwrap_or_else(|e| Err(ClientError::Unreachable {
                        url: config.webapp.clone(),
                        reason: format!("update task failed: {e}"),
                    }));
                    match answer {
                        Ok(info) => {
                            if let Some(batch) = sent.take() {
                                pending.acknowledge(&batch);
                            }
                            backoff.reset();
                            // More waiting than one body holds goes at once.
                            next_update = if pending.is_empty() {
                                Instant::now() + config.update_interval
                            } else {
                                Instant::now()
                            };
                            if info.kill_job && kill.is_none() {
                                kill = start_kill(group, "the webapp asked for it (stop-job or lorry-timeout)", config);
                            }
                        }
                        Err(e) if e.job_is_gone() => {
                            tracing::warn!(error = %e, "the webapp has ended this job; stopping lorry");
                            reporting = false;
                            if kill.is_none() {
                                kill = start_kill(group, "the webapp no longer has this job running", config);
                            }
                        }
                        Err(e) if e.is_too_large() && pending.shrink() => {
                            next_update = Instant::now();
                        }
                        Err(e) => {
                            let wait = backoff.next_wait();
                            if e.is_transient() {
                                tracing::warn!(error = %e, retry_in = ?wait, "cannot send job output; kept for later");
                            } else {
                                tracing::error!(error = %e, retry_in = ?wait, "job update refused; output kept for the final report");
                            }
                            next_update = Instant::now() + wait;
                        }
                    }
                }
                () = shutdown.requested(), if kill.is_none() => {
                    kill = start_kill(group, "the minion is stopping", config);
                }
                () = sleep_until(next_cpu_check), if cpu_limit.is_some() && kill.is_none() => {
                    next_cpu_check = Instant::now() + CPU_CHECK;
                    if let (Some(max), Some(used)) = (cpu_limit, cgroup.as_ref().and_then(JobCgroup::cpu_seconds))
                        && used > max as f64
                    {
                        kill = start_kill(group, format!("the job used more than its cpu-seconds limit ({max} CPU seconds)"), config);
                    }
                }
                () = sleep_until(own_deadline.unwrap_or_else(Instant::now)), if own_deadline.is_some() && kill.is_none() => {
                    kill = start_kill(group, "it ran past its lorry-timeout and the webapp, which could not be reached, did not stop it", config);
                }
                () = sleep_until(kill_deadline.unwrap_or_else(Instant::now)), if kill_deadline.is_some() => {
                    if let Some(k) = kill.as_mut() {
                        tracing::warn!(grace = ?config.kill_grace, "lorry still running after SIGTERM; sending SIGKILL");
                        signal_group(group, Signal::SIGKILL);
                        k.escalated = true;
                    }
                }
            }
        };
        if let Some(handle) = in_flight.take()
            && let Ok(Ok(_)) = handle.await
            && let Some(batch) = sent.take()
        {
            pending.acknowledge(&batch);
        }
        // Whatever lorry left behind goes too: its process group, and every
        // process carrying the job's marker (those that left the group).
        signal_group(group, Signal::SIGKILL);
        let stragglers = containment::kill_marked(&marker).await;
        if stragglers > 0 {
            tracing::warn!(stragglers, "killed processes the job left behind");
        }
        if let Some(cgroup) = cgroup {
            let hit = tokio::task::spawn_blocking(move || {
                let hit = cgroup.limits_hit();
                cgroup.remove();
                hit
            })
            .await
            .unwrap_or_default();
            for line in hit {
                tracing::warn!(limit = %line, "the job ran into a limit");
                pending
                    .stderr
                    .push(&format!("lorry-controller-minion: {line}\n"));
            }
        }
        drain(readers, group).await;

        let exit = match &status {
            Ok(status) => exit_code(*status),
            Err(e) => {
                pending.stderr.push(&format!(
                    "lorry-controller-minion: lost track of lorry: {e}\n"
                ));
                127
            }
        };
        pending.absorb(&shared, true, config);
        if rlimits_only && let Some(line) = rlimit_hit(exit) {
            tracing::warn!(limit = %line, "the job ran into a limit");
            pending
                .stderr
                .push(&format!("lorry-controller-minion: {line}\n"));
        }
        if let Some(kill) = &kill {
            pending.stderr.push(&format!(
                "lorry-controller-minion: killed lorry (exit {exit}): {}\n",
                kill.reason
            ));
        }
        if exit != 0
            && let Some(note) = crate::disk::full_disk_note(
                config.working_area.as_deref(),
                config.min_free_disk,
                pending.saw_disk_full,
            )
        {
            tracing::warn!(note = note.trim_end(), "the job failed on a full disk");
            pending.stderr.push(&note);
        }
        tracing::info!(exit, killed = kill.is_some(), "lorry ended");
        pending.result = read_result(&result_file, &mut pending.stderr);
        drop(spec);
        if !reporting {
            return JobOutcome {
                exit,
                reported: false,
            };
        }
        let usage = match &config.working_area {
            Some(_) if self.batch => None,
            Some(area) => {
                let dir = working_dir(area, &self.path);
                tokio::task::spawn_blocking(move || match disk_usage(&dir) {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        tracing::debug!(dir = %dir.display(), error = %e, "no disk usage");
                        None
                    }
                })
                .await
                .ok()
                .flatten()
            }
            None => None,
        };
        self.report_end(config, client, exit, &mut pending, usage, shutdown)
            .await
    }

    /// Sends what output is left and then the final update, until the
    /// webapp has it. Output that does not fit one body goes first in
    /// `exit=no` updates; a 413 shrinks the bodies (see [`Pending::shrink`]).
    /// It is retried for as long as the webapp is unreachable, except once
    /// the minion is stopping: then for `shutdown_report_timeout` at most.
    async fn report_end(
        &self,
        config: &MinionConfig,
        client: &WebappClient,
        exit: i32,
        pending: &mut Pending,
        usage: Option<u64>,
        shutdown: &mut Shutdown,
    ) -> JobOutcome {
        let mut backoff = Backoff::new(config.update_interval, config.retry_max);
        let mut give_up_at = shutdown
            .is_requested()
            .then(|| Instant::now() + config.shutdown_report_timeout);
        let lost = |why: &str| {
            tracing::error!(exit, "{why}");
            JobOutcome {
                exit,
                reported: false,
            }
        };
        loop {
            let reserve = pending.result_reserve();
            let batch = pending.batch_leaving(reserve);
            let last = pending.is_all(&batch);
            let (state, usage, result) = if last {
                (Exit::Exited(exit), usage, pending.result.as_deref())
            } else {
                (Exit::Running, None, None)
            };
            let answer = client
                .job_update(
                    self.job_id,
                    state,
                    &batch.stdout.text,
                    &batch.stderr.text,
                    usage,
                    result,
                )
                .await;
            match answer {
                Ok(_) if last => {
                    pending.acknowledge(&batch);
                    if let Some((dir, record)) = &pending.record {
                        record.remove(dir);
                    }
                    tracing::info!(exit, disk_usage = ?usage, "job reported");
                    return JobOutcome {
                        exit,
                        reported: true,
                    };
                }
                Ok(_) => {
                    pending.acknowledge(&batch);
                    backoff.reset();
                }
                Err(e) if e.is_too_large() => {
                    if !pending.shrink() {
                        return lost(&format!(
                            "the webapp refuses even the smallest final report: {e}"
                        ));
                    }
                }
                Err(e) if !e.is_transient() => {
                    if let Some((dir, record)) = &pending.record {
                        record.remove(dir);
                    }
                    return lost(&format!("the webapp refused the job's final report: {e}"));
                }
                Err(e) => {
                    let wait = backoff.next_wait();
                    if let Some(deadline) = give_up_at
                        && Instant::now() + wait > deadline
                    {
                        if let Some((dir, record)) = &mut pending.record {
                            // The next minion to start reports it.
                            record.exit = Some(exit);
                            if record.save(dir).is_ok() {
                                return lost(&format!(
                                    "minion stopping and the webapp unreachable: the job's end is left in {} for the next minion ({e})",
                                    record.file(dir).display()
                                ));
                            }
                        }
                        return lost(&format!(
                            "minion stopping and the webapp unreachable: the job's final report is lost ({e})"
                        ));
                    }
                    tracing::warn!(exit, error = %e, retry_in = ?wait, "cannot report the job's end; will retry");
                    tokio::select! {
                        () = sleep(wait) => {}
                        () = shutdown.requested(), if give_up_at.is_none() => {
                            give_up_at = Some(Instant::now() + config.shutdown_report_timeout);
                        }
                    }
                }
            }
        }
    }
}

/// lorry's result file, when it wrote one that is JSON and not too large;
/// otherwise `None`, with a line in the job's stderr saying why (a missing
/// file needs no line: lorry may have died before writing it).
fn read_result(file: &std::path::Path, stderr: &mut Unsent) -> Option<String> {
    let size = std::fs::metadata(file).ok()?.len();
    if size > MAX_RESULT {
        stderr.push(&format!(
            "lorry-controller-minion: lorry's result ({size} bytes) is larger than {MAX_RESULT} bytes; not sent\n"
        ));
        return None;
    }
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            stderr.push(&format!(
                "lorry-controller-minion: cannot read lorry's result: {e}\n"
            ));
            return None;
        }
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        stderr.push(&format!(
            "lorry-controller-minion: lorry's result is not JSON ({e}); not sent\n"
        ));
        return None;
    }
    Some(text)
}

/// The line naming the rlimit that ended a job with `exit`, when its
/// signal says so: SIGXCPU for CPU seconds, SIGXFSZ for the file size.
/// (Memory past RLIMIT_AS shows as failed allocations, not as a signal.)
fn rlimit_hit(exit: i32) -> Option<String> {
    if exit == 128 + Signal::SIGXCPU as i32 {
        Some(
            "a process of the job reached its cpu-seconds limit (RLIMIT_CPU) and was killed".into(),
        )
    } else if exit == 128 + Signal::SIGXFSZ as i32 {
        Some(
            "a process of the job reached the file-size limit (RLIMIT_FSIZE) and was killed".into(),
        )
    } else {
        None
    }
}

/// How often a job's CPU seconds are checked against its limit.
const CPU_CHECK: Duration = Duration::from_secs(1);

/// The file lorry keeps in a working directory naming its spec
/// (`lc_lorry::workdir::NAME_FILE`).
const NAME_FILE: &str = "lorry-name";

/// What [`prepare`] sets up for a job.
struct Prepared {
    /// The whole command: the cgroup's join, prlimit, bwrap, lorry.
    argv: Vec<std::ffi::OsString>,
    cgroup: Option<JobCgroup>,
    /// The CPU seconds to watch in the cgroup.
    cpu_watch: Option<u64>,
    /// The job's isolation and limits, for its first output line.
    isolation: String,
    /// Lines for the job's stderr (what could not be set up as wished).
    notes: Vec<String>,
}

/// The job's limits (the minion's, lowered by the spec), its cgroup, its
/// sandbox and the command running lorry in them. An error is a spec whose
/// limits are not valid.
fn prepare(
    job: &Job,
    config: &MinionConfig,
    spec_dir: &std::path::Path,
    spec_file: &std::path::Path,
    result_file: &std::path::Path,
) -> Result<Prepared, String> {
    // A batch's file is no spec: no working directory, no local upstream
    // shown, the minion's limits.
    let spec: serde_json::Value = if job.batch {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&job.text).unwrap_or_default()
    };
    let limits = config.job_limits.lowered_by(&spec)?;
    let mut notes = Vec::new();
    let cgroup =
        config
            .cgroups
            .as_ref()
            .and_then(|cgroups| match cgroups.create(job.job_id, &limits) {
                Ok(cgroup) => Some(cgroup),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot make the job's cgroup; rlimits instead");
                    notes.push(format!(
                        "cannot make the job's cgroup ({e}); its limits are rlimits of each process"
                    ));
                    None
                }
            });
    let mut argv = cgroup
        .as_ref()
        .map(JobCgroup::join_argv)
        .unwrap_or_default();
    let cpu_watch = cgroup
        .as_ref()
        .filter(|c| c.cpu_seconds().is_some())
        .and(limits.cpu_seconds);
    let rlimits = match &cgroup {
        Some(_) => config
            .lorry
            .limits
            .with_job_limits(&crate::cgroup::JobLimits {
                cpu_seconds: if cpu_watch.is_some() {
                    None
                } else {
                    limits.cpu_seconds
                },
                ..Default::default()
            }),
        None => config.lorry.limits.with_job_limits(&limits),
    };
    argv.extend(rlimits.prlimit_argv(&config.lorry.prlimit));
    if let Some(sandbox) = &config.sandbox {
        let working_dirs = match &config.working_area {
            Some(area) => spec
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys())
                .map(|name| own_working_dir(area, name))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cannot make the lorry's working directory: {e}"))?,
            None => Vec::new(),
        };
        let paths = crate::sandbox::JobPaths {
            spec_dir: spec_dir.to_owned(),
            working_dirs,
            local_upstreams: crate::sandbox::local_upstreams(&spec),
        };
        argv.extend(sandbox.argv(&paths));
    }
    argv.extend(
        config
            .lorry
            .lorry_argv_for(spec_file, Some(result_file), job.batch),
    );
    let show = |n: Option<u64>| n.map_or_else(|| "none".to_owned(), |n| n.to_string());
    let isolation = format!(
        "{} (memory-max {}, tasks-max {}, cpu-seconds {})",
        if cgroup.is_some() || config.cgroups.is_none() {
            config.isolation()
        } else {
            config
                .isolation()
                .replace("cgroup v1", "rlimits only")
                .replace("cgroup v2", "rlimits only")
        },
        show(limits.memory_max),
        show(limits.tasks_max),
        show(limits.cpu_seconds),
    );
    Ok(Prepared {
        argv,
        cgroup,
        cpu_watch,
        isolation,
        notes,
    })
}

/// The working directory of spec `name` in `area`, made (mode 0700, named
/// for its spec as lorry names it) when missing, so that it can be shown
/// in the sandbox.
fn own_working_dir(area: &std::path::Path, name: &str) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = working_dir(area, name);
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        std::fs::write(dir.join(NAME_FILE), format!("{name}\n"))?;
    }
    Ok(dir)
}

/// What a job's spec directory is called: `lorry-minion-<pid>-<random>`
/// in the temporary directory, so a successor can tell a killed minion's.
const SPEC_DIR_PREFIX: &str = "lorry-minion-";

/// A private directory (mode 0700) holding the job's spec (mode 0600: it
/// holds the upstream's credentials), removed when dropped.
fn write_spec(job: &Job) -> std::io::Result<tempfile::TempDir> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{SPEC_DIR_PREFIX}{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()?;
    let file = dir
        .path()
        .join(format!("{}.lorry", job.path.replace('/', "_")));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?
        .write_all(job.text.as_bytes())?;
    Ok(dir)
}

/// Removes the spec directories that minions killed before they could
/// clean up left behind (their pid no longer runs), in `tmp`. Answers how
/// many were removed.
pub fn remove_stale_specs(tmp: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SPEC_DIR_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // Signal 0 only asks whether the process exists.
        let alive = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Ok(()) | Err(nix::errno::Errno::EPERM)
        );
        // Another user's directory cannot be removed (the temporary
        // directory is sticky), so only our own go.
        if !alive && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Reads one pipe into the shared buffer until end of file.
fn pump(
    mut pipe: impl AsyncRead + Unpin + Send + 'static,
    shared: Shared,
    stderr: bool,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = &buf[..n];
                    let mut streams = lock(&shared);
                    if stderr {
                        streams.stderr.push(data);
                    } else {
                        streams.stdout.push(data);
                    }
                }
            }
        }
    })
}

/// Waits for both pipes to close; a process still holding one after
/// lorry's end is killed with its group.
async fn drain(readers: [Option<JoinHandle<()>>; 2], group: Option<Pid>) {
    for mut reader in readers.into_iter().flatten() {
        if timeout(PIPE_DRAIN, &mut reader).await.is_err() {
            tracing::warn!("lorry's output still open after it exited; killing its process group");
            signal_group(group, Signal::SIGKILL);
            if timeout(PIPE_DRAIN, &mut reader).await.is_err() {
                // Held by a process outside the group: stop reading.
                reader.abort();
            }
        }
    }
}

fn start_kill(
    group: Option<Pid>,
    reason: impl Into<String>,
    config: &MinionConfig,
) -> Option<Kill> {
    let reason = reason.into();
    tracing::warn!(%reason, "killing lorry's process group");
    signal_group(group, Signal::SIGTERM);
    Some(Kill {
        reason,
        deadline: Instant::now() + config.kill_grace,
        escalated: false,
    })
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    if let Some(group) = group
        && let Err(e) = killpg(group, signal)
        && e != nix::errno::Errno::ESRCH
    {
        tracing::warn!(%signal, error = %e, "cannot signal lorry's process group");
    }
}

/// The exit code reported for `status`: lorry's own code, or 128 + the
/// signal number when a signal ended it (as shells report it).
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_spec_is_private() {
        let job = Job {
            job_id: 1,
            path: "up/a".into(),
            text: r#"{"up/a": {"type": "git", "url": "https://u:pw@h/a"}}"#.into(),
            lorry_timeout: 60,
            traceparent: None,
            batch: false,
        };
        let dir = write_spec(&job).expect("write");
        let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode();
        assert_eq!(mode(dir.path()) & 0o777, 0o700);
        assert_eq!(mode(&dir.path().join("up_a.lorry")) & 0o777, 0o600);
        let name = dir
            .path()
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(&format!("lorry-minion-{}-", std::process::id())),
            "{name}"
        );
    }

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "a process that has ended gives a pid that no longer runs"
    )]
    fn only_the_specs_of_minions_no_longer_running_are_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let dead = child.id();
        child.wait().expect("wait");
        let stale = tmp.path().join(format!("lorry-minion-{dead}-abc"));
        let ours = tmp
            .path()
            .join(format!("lorry-minion-{}-def", std::process::id()));
        let other = tmp.path().join("lorry-minion-notapid-x");
        for dir in [&stale, &ours, &other] {
            std::fs::create_dir(dir).expect("mkdir");
            std::fs::write(dir.join("x.lorry"), "{}").expect("write");
        }
        assert_eq!(remove_stale_specs(tmp.path()), 1);
        assert!(!stale.exists() && ours.exists() && other.exists());
    }
}
