//! give-me-job, and its long poll.
//!
//! A minion may ask with `wait=<seconds>`: then, when nothing can start,
//! the request is held open (at most `--give-me-job-max-wait`) until a
//! lorry becomes due or a job becomes startable, and is answered with that
//! job, or with `{"job_id": null}` at the end of the wait. Without `wait`
//! (the original's minions) the answer comes at once, as before.
//!
//! What wakes a waiting request ([`QueueWake::wake`]): the earliest due
//! time of the idle lorries reached (each waiter sleeps until it), and the
//! handlers that change what may start: a job ended (job-update, ghosts,
//! a job nobody received), read-configuration, an Upstream Host listing,
//! start-queue, set-max-jobs, move-to-top/bottom, pretend-time. A job end
//! also frees a slot under `--max-jobs-per-host`.
//!
//! Safety:
//! * At most [`MAX_WAITING`] requests wait; more are answered at once.
//! * The job is started only when it is handed out, in the write
//!   transaction of the attempt that answers. The attempt runs in a task of
//!   its own, so a request dropped mid-way (hyper drops it when its client
//!   hangs up) cannot leave it half done: if nobody is left to take the
//!   answer, the task ends the job at once (exit 127, a line saying why).
//!   A client that hangs up after the answer is sent is the `idle=yes`
//!   case of the next request, as before.
//! * Waiting requests are answered at once when the webapp shuts down
//!   ([`QueueWake::stop`]), so a graceful shutdown does not wait for them.
//! * Low disk is checked before every attempt: no job is handed out then.
//! * Woken waiters try one at a time ([`QueueWake::turn`]) and a waiter
//!   whose wake-up another waiter has already tried without finding a job
//!   does not try again: a wake-up costs one transaction, not one per waiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lc_api::GiveMeJob;
use lc_base::redact::redact;
use lc_core::db::{Handout, JobUpdate};
use tokio::sync::oneshot::channel as oneshot_channel;
use tokio::sync::{Mutex, oneshot, watch};
use tokio::time::Instant;

use crate::AppState;
use crate::error::ApiError;

/// `--give-me-job-max-wait` unless given: the longest a give-me-job is held.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);

/// Requests that may wait at once; beyond them a request is answered at once.
pub const MAX_WAITING: usize = 128;

/// Who asks for a job.
#[derive(Debug, Clone)]
pub struct Asker {
    pub host: String,
    pub pid: i64,
    /// The minion says it runs no job (`idle=yes`).
    pub idle: bool,
    /// The most lorries it takes as one batch check (`batch=N`; 0: jobs
    /// only, as every minion before batches).
    pub batch: usize,
}

/// What wakes waiting give-me-jobs, and what the last fruitless try found.
#[derive(Debug)]
pub struct QueueWake {
    /// Counts changes that may let a job start.
    changes: watch::Sender<u64>,
    /// Set once the webapp stops serving.
    stopping: watch::Sender<bool>,
    /// Requests waiting now.
    waiting: AtomicUsize,
    /// Held by a waiter while it tries; what the last fruitless try saw.
    turn: Mutex<Tried>,
}

/// The last try of a waiter that found no job.
#[derive(Debug, Default)]
struct Tried {
    /// The change count it saw before its transaction.
    changes: u64,
    /// When the next idle lorry becomes due, as it found.
    next_due: Option<Instant>,
    /// Whether a try has been made at all.
    made: bool,
}

impl Default for QueueWake {
    fn default() -> QueueWake {
        QueueWake {
            changes: watch::Sender::new(0),
            stopping: watch::Sender::new(false),
            waiting: AtomicUsize::new(0),
            turn: Mutex::new(Tried::default()),
        }
    }
}

impl QueueWake {
    /// Something changed that may let a job start: waiting requests look again.
    pub fn wake(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The webapp stops serving: waiting requests are answered now.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A place among the waiting requests, if one is free.
    fn enter(&self) -> Option<Waiting<'_>> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WAITING).then_some(n + 1)
            })
            .ok()
            .map(|_| Waiting(self))
    }
}

/// A waiting request; leaves its place when dropped.
struct Waiting<'a>(&'a QueueWake);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The answer with no job.
fn no_job() -> GiveMeJob {
    GiveMeJob {
        job_id: None,
        lorry: None,
        batch: None,
    }
}

/// Answers a give-me-job of `asker` that may wait up to `wait`.
pub async fn answer(state: &AppState, asker: Asker, wait: Duration) -> Result<GiveMeJob, ApiError> {
    if low_disk(state) {
        return Ok(no_job());
    }
    let wake = Arc::clone(&state.queue);
    let waiting = if wait.is_zero() || *wake.stopping.borrow() {
        None
    } else {
        wake.enter()
    };
    let Some(_waiting) = waiting else {
        // Answered at once: one try, as the original did.
        return Ok(match attempt(state, &asker, false).await? {
            Attempt::Started(handed) => handed.answer().await?,
            Attempt::Nothing { .. } => no_job(),
        });
    };
    let deadline = Instant::now() + wait;
    let mut changes = wake.changes.subscribe();
    let mut stopping = wake.stopping.subscribe();
    let mut first = true;
    loop {
        let seen = *changes.borrow_and_update();
        let next_due = {
            let mut tried = wake.turn.lock().await;
            let still_true = tried.made
                && tried.changes >= seen
                && tried.next_due.is_none_or(|due| due > Instant::now());
            // A request's first try is always made: it also ends the jobs
            // its minion never received (idle=yes).
            if still_true && !first {
                tried.next_due
            } else if low_disk(state) {
                return Ok(no_job());
            } else {
                let before = *wake.changes.borrow();
                match attempt(state, &asker, true).await? {
                    Attempt::Started(handed) => {
                        drop(tried);
                        return handed.answer().await;
                    }
                    Attempt::Nothing { next_due } => {
                        *tried = Tried {
                            changes: before,
                            next_due,
                            made: true,
                        };
                        next_due
                    }
                }
            }
        };
        first = false;
        let until = next_due.map_or(deadline, |due| due.min(deadline));
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(no_job());
                }
            }
            () = tokio::time::sleep_until(until) => {
                if Instant::now() >= deadline {
                    return Ok(no_job());
                }
                // A lorry has become due: a change for every waiter.
                wake.wake();
            }
            _ = stopping.wait_for(|stop| *stop) => return Ok(no_job()),
        }
    }
}

fn low_disk(state: &AppState) -> bool {
    let Some(warning) = state.disk_warning() else {
        return false;
    };
    if state.logs.due("low-disk") {
        tracing::warn!(%warning, "no job handed out");
    }
    true
}

/// What one try found.
enum Attempt {
    /// A job was started; its answer once its repository is prepared.
    Started(Handed),
    /// Nothing may start now; when the next idle lorry becomes due.
    Nothing { next_due: Option<Instant> },
}

/// The answer handing out a started job, once its downstream repository
/// is prepared (or the job has ended because it could not be).
struct Handed(oneshot::Receiver<Result<GiveMeJob, ApiError>>);

impl Handed {
    async fn answer(self) -> Result<GiveMeJob, ApiError> {
        self.0
            .await
            .map_err(|_| ApiError::internal("the task handing out a job ended without an answer"))?
    }
}

/// What the transaction of a try found.
enum Found {
    Job(Box<(i64, lc_api::LorryInfo, lc_core::db::UpstreamMetadata)>),
    /// Lorries held for a batch check: nothing to prepare.
    Batch(lc_api::BatchJob),
    Nothing {
        next_due: Option<i64>,
        now: i64,
    },
}

/// One try: in a task of its own, which finishes whatever becomes of the
/// request. A started job whose answer nobody takes is ended at once.
/// `waiting`: the asker waits, so when nothing starts it wants to know when
/// the next lorry is due.
async fn attempt(state: &AppState, asker: &Asker, waiting: bool) -> Result<Attempt, ApiError> {
    let (found_tx, found_rx) = oneshot_channel::<Result<Option<Option<Instant>>, ApiError>>();
    let (handed_tx, handed_rx) = oneshot_channel();
    let (state, asker) = (state.clone(), asker.clone());
    tokio::spawn(async move {
        let found = find(&state, asker, waiting).await;
        let (job_id, lorry, upstream) = match found {
            Err(err) => {
                let _ = found_tx.send(Err(err));
                return;
            }
            Ok(Found::Nothing { next_due, now }) => {
                let _ = found_tx.send(Ok(Some(next_due.map(|due| due_instant(due, now)))));
                return;
            }
            Ok(Found::Job(job)) => *job,
            Ok(Found::Batch(batch)) => {
                let _ = found_tx.send(Ok(None));
                let (job_id, lorries) = (batch.job_id, batch.lorries.len());
                let answer = Ok(GiveMeJob {
                    batch: Some(batch),
                    ..no_job()
                });
                if handed_tx.send(answer).is_err() {
                    tracing::warn!(
                        job_id,
                        lorries,
                        "the request was gone before its batch could be handed out: batch released"
                    );
                    let ended = state.write(move |tx| tx.end_job_unanswered(job_id)).await;
                    if let Err(err) = ended {
                        tracing::warn!(job_id, ?err, "cannot release a batch nobody received");
                    }
                    state.queue.wake();
                } else {
                    tracing::debug!(job_id, lorries, "batch handed out");
                }
                return;
            }
        };
        let _ = found_tx.send(Ok(None));
        let answer = prepare(&state, job_id, lorry, upstream).await;
        if let Err(Ok(GiveMeJob {
            job_id: Some(job_id),
            lorry: Some(lorry),
            ..
        })) = handed_tx.send(answer)
        {
            tracing::warn!(job_id, path = %lorry.path, "the request was gone before its job could be handed out: job ended");
            let ended = state.write(move |tx| tx.end_job_unanswered(job_id)).await;
            if let Err(err) = ended {
                tracing::warn!(job_id, ?err, "cannot end a job nobody received");
            }
            state.queue.wake();
        }
    });
    let found = found_rx
        .await
        .map_err(|_| ApiError::internal("the task handing out a job ended without an answer"))??;
    Ok(match found {
        Some(next_due) => Attempt::Nothing { next_due },
        None => Attempt::Started(Handed(handed_rx)),
    })
}

/// The write transaction of a try: ends the jobs an idle minion never
/// received, then starts the next job, or says when the next lorry is due.
async fn find(state: &AppState, asker: Asker, waiting: bool) -> Result<Found, ApiError> {
    let Asker {
        host,
        pid,
        idle,
        batch,
    } = asker;
    let (never_received, found) = state
        .write(move |tx| {
            let never_received = if idle {
                tx.end_jobs_never_received(&host, pid)?
            } else {
                Vec::new()
            };
            let (job_id, mut lorry) = match tx.start_next(&host, pid, batch)? {
                Some(Handout::Job(job_id, lorry)) => (job_id, *lorry),
                Some(Handout::Batch(batch)) => return Ok((never_received, Found::Batch(batch))),
                None => {
                    let next_due = if waiting { tx.next_due_time()? } else { None };
                    return Ok((
                        never_received,
                        Found::Nothing {
                            next_due,
                            now: tx.now(),
                        },
                    ));
                }
            };
            let upstream = tx.upstream_metadata(&lorry.path)?;
            // The snapshot pins this job is to make ride in its spec.
            let pins = tx.pins_todo(&lorry.path)?;
            lorry.text = crate::provenance::with_pins(&lorry.text, &lorry.path, &pins);
            Ok((
                never_received,
                Found::Job(Box::new((job_id, lorry, upstream))),
            ))
        })
        .await?;
    if !never_received.is_empty() {
        tracing::warn!(
            jobs = ?never_received,
            "ended jobs whose minion never received them (it asks for another)"
        );
        state.queue.wake();
    }
    Ok(found)
}

/// Prepares the started job's downstream repository; the answer handing
/// it out, or no job when that failed (the job then ends with exit 1).
async fn prepare(
    state: &AppState,
    job_id: i64,
    lorry: lc_api::LorryInfo,
    upstream: lc_core::db::UpstreamMetadata,
) -> Result<GiveMeJob, ApiError> {
    let metadata = lc_hosts::RepoMetadata {
        head: upstream.head,
        description: upstream.description,
        upstream: lc_hosts::RepoMetadata::upstream_of_spec(&lorry.text),
    };
    if let Err(err) = crate::prepare(&state.config.downstream, &lorry.path, &metadata).await {
        let problem = redact(&err.to_string()).into_owned();
        tracing::warn!(job_id, path = %lorry.path, %problem, "cannot prepare downstream repository");
        let update = JobUpdate {
            exit: Some(1),
            stderr: format!(
                "lorry-controller: cannot prepare the downstream repository: {problem}\n"
            ),
            ..JobUpdate::default()
        };
        state
            .write(move |tx| tx.update_job(job_id, &update))
            .await?;
        state.queue.wake();
        return Ok(no_job());
    }
    tracing::info!(job_id, path = %lorry.path, "job started");
    Ok(GiveMeJob {
        job_id: Some(job_id),
        lorry: Some(lorry),
        batch: None,
    })
}

/// When Unix second `due` comes, seen from a transaction that ran at `now`:
/// by the clock to the millisecond when `now` is the clock's, else (a
/// pretended time) `due - now` seconds from now.
fn due_instant(due: i64, now: i64) -> Instant {
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let seconds = if (clock - now as f64).abs() < 2.0 {
        due as f64 - clock
    } else {
        (due - now) as f64
    };
    // Never less than a few milliseconds: a due time that has just passed
    // is tried again at once by the wake-up it causes, not in a spin.
    let wait = Duration::try_from_secs_f64(seconds.max(0.005)).unwrap_or(Duration::MAX);
    Instant::now()
        .checked_add(wait)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
}

/// The `wait` field of give-me-job: seconds (a decimal number) to hold the
/// request when nothing can start, capped at `max`; absent or empty: 0.
pub fn wait_field(fields: &crate::Fields, max: Duration) -> Result<Duration, ApiError> {
    let Some(text) = fields.optional("wait").filter(|t| !t.trim().is_empty()) else {
        return Ok(Duration::ZERO);
    };
    let seconds: f64 = text.trim().parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "field wait must be a number of seconds, not {text:?}"
        ))
    })?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(ApiError::BadRequest(format!(
            "field wait must be a number of seconds from 0, not {text:?}"
        )));
    }
    Ok(Duration::try_from_secs_f64(seconds)
        .unwrap_or(Duration::MAX)
        .min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> crate::Fields {
        crate::Fields::parse(body.as_bytes())
    }

    #[test]
    fn wait_is_seconds_capped_and_bad_values_are_400s() {
        let max = Duration::from_secs(10);
        assert_eq!(wait_field(&fields(""), max).ok(), Some(Duration::ZERO));
        assert_eq!(wait_field(&fields("wait="), max).ok(), Some(Duration::ZERO));
        assert_eq!(
            wait_field(&fields("wait=2.5"), max).ok(),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(wait_field(&fields("wait=3600"), max).ok(), Some(max));
        assert_eq!(wait_field(&fields("wait=1e300"), max).ok(), Some(max));
        for bad in ["wait=-1", "wait=soon", "wait=NaN", "wait=inf"] {
            let err = wait_field(&fields(bad), max).expect_err(bad);
            assert!(
                matches!(&err, ApiError::BadRequest(m) if m.contains("field wait")),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn waiting_places_are_bounded_and_given_back() {
        let wake = QueueWake::default();
        let places: Vec<_> = (0..MAX_WAITING).map(|_| wake.enter()).collect();
        assert!(places.iter().all(Option::is_some));
        assert!(wake.enter().is_none(), "one more than the bound");
        drop(places);
        assert_eq!(wake.waiting(), 0);
        assert!(wake.enter().is_some());
    }

    #[test]
    fn due_instants_follow_the_clock_or_the_pretended_time() {
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        // The clock may pass a second between `clock` and the call.
        let soon = due_instant(clock + 10, clock) - Instant::now();
        assert!(soon <= Duration::from_secs(10), "{soon:?}");
        assert!(soon >= Duration::from_secs(7), "{soon:?}");
        // Pretended: a day back, due in 100 s of it.
        let pretended = due_instant(clock - 86_400 + 100, clock - 86_400) - Instant::now();
        assert!(pretended > Duration::from_secs(99), "{pretended:?}");
        assert!(pretended <= Duration::from_secs(100), "{pretended:?}");
        let passed = due_instant(clock - 10, clock) - Instant::now();
        assert!(passed <= Duration::from_millis(5), "{passed:?}");
    }
}
