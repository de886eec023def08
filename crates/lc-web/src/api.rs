//! Handlers of the `/1.0/...` JSON API.

use std::borrow::Cow;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use lc_api::{
    GiveMeJob, JobIds, JobInfo, LorryInfo, MaxJobs, Message, QueueState, RemovedGhostJobs,
    RemovedJobs, RunningJobs,
};
use lc_base::redact::redact;
use lc_base::timefmt;
use lc_core::db::JobUpdate;
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiError, JobId};
use crate::form::Fields;

type ApiResult<T> = Result<T, ApiError>;

/// The answer to a command: JSON, or a 303 to where a form button asked to go.
pub enum Reply<T> {
    Json(T),
    Redirect(String),
}

impl<T> Reply<T> {
    pub(crate) fn new(redirect: Option<&str>, value: T) -> Reply<T> {
        match redirect {
            Some(to) => Reply::Redirect(to.to_owned()),
            None => Reply::Json(value),
        }
    }
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        match self {
            Reply::Json(value) => Json(value).into_response(),
            Reply::Redirect(to) => (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, to.clone())],
                Json(Message {
                    message: format!("see {to}"),
                }),
            )
                .into_response(),
        }
    }
}

/// A lorry as shown to admins: credentials in its spec and last error are
/// hidden. Only give-me-job hands the spec, as written, to a minion.
pub fn shown(mut lorry: LorryInfo) -> LorryInfo {
    if let Cow::Owned(text) = redact(&lorry.text) {
        lorry.text = text;
    }
    if let Some(Cow::Owned(error)) = lorry.last_run_error.as_deref().map(redact) {
        lorry.last_run_error = Some(error);
    }
    lorry
}

/// `{"queue": [paths]}`, as `Json(Queue)` writes it (see fleet.rs).
pub async fn list_queue(State(state): State<AppState>) -> ApiResult<Response> {
    let json = state.fleet.queue_json(&state).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

pub async fn start_queue(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<QueueState>> {
    set_queue(state, fields, true).await
}

pub async fn stop_queue(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<QueueState>> {
    set_queue(state, fields, false).await
}

async fn set_queue(state: AppState, fields: Fields, running: bool) -> ApiResult<Reply<QueueState>> {
    let redirect = fields.redirect()?;
    state.write(move |tx| tx.set_running_queue(running)).await?;
    if running {
        state.queue.wake();
    }
    let message = if running {
        "Queue set to run"
    } else {
        "Queue set to not run"
    };
    Ok(Reply::new(
        redirect,
        QueueState {
            running_queue: running,
            message: message.to_owned(),
        },
    ))
}

pub async fn move_to_top(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<Message>> {
    move_lorry(state, fields, true).await
}

pub async fn move_to_bottom(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<Message>> {
    move_lorry(state, fields, false).await
}

async fn move_lorry(state: AppState, fields: Fields, top: bool) -> ApiResult<Reply<Message>> {
    let redirect = fields.redirect()?;
    let path = fields.required("path")?.to_owned();
    let message = format!(
        "Lorry {path} moved to the {}",
        if top { "top" } else { "bottom" }
    );
    state
        .write(move |tx| {
            if top {
                tx.move_to_top(&path)
            } else {
                tx.move_to_bottom(&path)
            }
        })
        .await?;
    state.queue.wake();
    Ok(Reply::new(redirect, Message { message }))
}

pub async fn lorry(
    State(state): State<AppState>,
    UrlPath(path): UrlPath<String>,
) -> ApiResult<Json<LorryInfo>> {
    Ok(Json(shown(state.read(move |tx| tx.lorry(&path)).await?)))
}

pub async fn list_running_jobs(State(state): State<AppState>) -> ApiResult<Json<RunningJobs>> {
    let running_jobs = state.read(|tx| tx.running_job_ids()).await?;
    Ok(Json(RunningJobs { running_jobs }))
}

pub async fn list_jobs(State(state): State<AppState>) -> ApiResult<Json<JobIds>> {
    let job_ids = state.read(|tx| tx.job_ids()).await?;
    Ok(Json(JobIds { job_ids }))
}

pub async fn job(State(state): State<AppState>, JobId(job_id): JobId) -> ApiResult<Json<JobInfo>> {
    Ok(Json(state.read(move |tx| tx.job(job_id)).await?))
}

pub async fn stop_job(State(state): State<AppState>, fields: Fields) -> ApiResult<Reply<Message>> {
    let redirect = fields.redirect()?;
    let job_id = fields.required_int("job_id")?;
    state.write(move |tx| tx.stop_job(job_id)).await?;
    Ok(Reply::new(
        redirect,
        Message {
            message: format!("Job {job_id} will be stopped"),
        },
    ))
}

pub async fn remove_job(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<Message>> {
    let redirect = fields.redirect()?;
    let job_id = fields.required_int("job_id")?;
    state.write(move |tx| tx.remove_job(job_id)).await?;
    Ok(Reply::new(
        redirect,
        Message {
            message: format!("Job {job_id} removed"),
        },
    ))
}

pub async fn remove_ghost_jobs(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<RemovedGhostJobs>> {
    let redirect = fields.redirect()?;
    let timeout = state.config.ghost_timeout;
    let removed_jobs = state.write(move |tx| tx.remove_ghost_jobs(timeout)).await?;
    if !removed_jobs.is_empty() {
        tracing::warn!(?removed_jobs, "ended ghost jobs");
        state.queue.wake();
    }
    Ok(Reply::new(redirect, RemovedGhostJobs { removed_jobs }))
}

/// Forgets finished jobs older than `max_age` seconds (default
/// `--job-max-age`), keeping the newest `keep` of each lorry (default
/// `--job-keep-per-lorry`).
pub async fn remove_old_jobs(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<RemovedJobs>> {
    let redirect = fields.redirect()?;
    let max_age = fields
        .optional_int("max_age")?
        .unwrap_or(state.config.job_max_age);
    let keep = fields
        .optional_int("keep")?
        .unwrap_or(state.config.job_keep_per_lorry);
    let removed_jobs = state
        .write(move |tx| tx.remove_old_jobs(max_age, keep))
        .await?;
    tracing::info!(
        count = removed_jobs.len(),
        max_age,
        keep,
        "removed old jobs"
    );
    Ok(Reply::new(redirect, RemovedJobs { removed_jobs }))
}

pub async fn get_max_jobs(State(state): State<AppState>) -> ApiResult<Json<MaxJobs>> {
    let max_jobs = state.read(|tx| tx.max_jobs()).await?;
    Ok(Json(MaxJobs { max_jobs }))
}

/// `max_jobs` is a number of jobs; empty or `none` removes the limit.
pub async fn set_max_jobs(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<MaxJobs>> {
    let redirect = fields.redirect()?;
    let max_jobs = match fields.optional("max_jobs") {
        None => return Err(ApiError::BadRequest("field max_jobs is missing".into())),
        Some(v) if v.trim().is_empty() || v.eq_ignore_ascii_case("none") => None,
        Some(_) => fields.optional_int("max_jobs")?,
    };
    state.write(move |tx| tx.set_max_jobs(max_jobs)).await?;
    state.queue.wake();
    Ok(Reply::new(redirect, MaxJobs { max_jobs }))
}

/// Hands the first job that may start to a minion; with `wait=<seconds>`
/// the request is held until one may (see longpoll.rs).
pub async fn give_me_job(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Json<GiveMeJob>> {
    let asker = crate::longpoll::Asker {
        host: fields.required("host")?.to_owned(),
        pid: fields.required_int("pid")?,
        // Our minion says `idle=yes`: it runs no job, so any still recorded
        // as its own never reached it (the original's minions do not say it).
        idle: fields.optional("idle") == Some("yes"),
        // A newer minion may take a batch of lorries to check (see
        // lc_core's batches.rs); others are answered exactly as before.
        batch: {
            let n = fields.optional_int("batch")?.unwrap_or(0);
            usize::try_from(n).map_err(|_| {
                ApiError::BadRequest(format!(
                    "field batch must be a number of lorries from 0, not {n}"
                ))
            })?
        },
    };
    let wait = crate::longpoll::wait_field(&fields, state.config.give_me_job_max_wait)?;
    Ok(Json(crate::longpoll::answer(&state, asker, wait).await?))
}

/// After a successful job, in the background (the minion does not wait):
/// the Downstream Host's settings that need a pushed branch. The webapp
/// does this because it holds the host's token; a job never does.
fn after_push(state: &AppState, path: String) {
    // A local, Gerrit or Gitano downstream has nothing to settle: no task,
    // no read of STATEDB per job.
    if !state.config.downstream.acts_after_push() {
        return;
    }
    let host = state.config.downstream.clone();
    let state = state.clone();
    tokio::spawn(async move {
        let read_path = path.clone();
        let upstream = match state.read(move |tx| tx.upstream_metadata(&read_path)).await {
            Ok(upstream) => upstream,
            Err(err) => {
                tracing::warn!(path, ?err, "cannot read the upstream's metadata");
                return;
            }
        };
        let metadata = lc_hosts::RepoMetadata {
            head: upstream.head,
            description: upstream.description,
            upstream: None,
        };
        let settle = tokio::time::timeout(
            crate::downstream::PREPARE_TIMEOUT,
            host.after_push(&path, &metadata),
        );
        match settle.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let err = redact(&err.to_string()).into_owned();
                tracing::warn!(path, %err, "cannot settle the downstream repository after a push");
            }
            Err(_) => tracing::warn!(path, "settling the downstream repository timed out"),
        }
    });
}

pub async fn job_update(State(state): State<AppState>, fields: Fields) -> ApiResult<Json<JobInfo>> {
    let job_id = fields.required_int("job_id")?;
    let exit = match fields.required("exit")? {
        lc_api::EXIT_RUNNING => None,
        _ => Some(fields.required_int("exit")?),
    };
    let update = JobUpdate {
        exit,
        // lorry hides credentials itself; this is the second line of defence.
        stdout: redact(fields.optional("stdout").unwrap_or_default()).into_owned(),
        stderr: redact(fields.optional("stderr").unwrap_or_default()).into_owned(),
        disk_usage: fields.optional_int("disk_usage")?,
        result: job_result(&fields)?,
    };
    let isolation = fields.optional("isolation").filter(|t| !t.is_empty());
    if let Some(text) = isolation {
        crate::minions::check(text).map_err(ApiError::BadRequest)?;
    }
    let job = state
        .write(move |tx| tx.update_job(job_id, &update))
        .await?;
    if let Some(text) = isolation {
        state.minions.record(
            format!("{}:{}", job.host, job.pid),
            crate::minions::Seen {
                isolation: text.to_owned(),
                job_id,
                at: job.updated,
            },
        );
    }
    if let (Some(exit), Some(_)) = (exit, job.ended)
        && job.path.is_empty()
    {
        // A batch check (its answer names no lorry): its lorries were
        // checked or handed back; nothing was pushed.
        tracing::info!(job_id, exit, verdicts = %job.output, "batch ended");
        state.queue.wake();
    } else if let (Some(exit), Some(ended)) = (exit, job.ended) {
        tracing::info!(job_id, path = %job.path, exit, "job ended");
        state.queue.wake();
        state
            .metrics
            .observe_job(ended.saturating_sub(job.started), exit);
        if exit == 0 {
            after_push(&state, job.path.clone());
        }
    }
    Ok(Json(job))
}

/// The optional `result` field of job-update: lorry's result (see
/// [`lc_api::JobResult`]), a JSON object with a numeric `version`. Any
/// version is stored, so that minions may be newer than the webapp.
/// Credentials are hidden in it as in output.
fn job_result(fields: &Fields) -> ApiResult<Option<String>> {
    let Some(text) = fields.optional("result").filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let text = redact(text).into_owned();
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::BadRequest(format!("field result is not JSON: {e}")))?;
    if !value.get("version").is_some_and(serde_json::Value::is_u64) {
        return Err(ApiError::BadRequest(
            "field result: a JSON object with a numeric \"version\" is expected".into(),
        ));
    }
    Ok(Some(text))
}

pub async fn pretend_time(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Json<Message>> {
    if !state.config.allow_pretend_time {
        return Err(ApiError::NotFound(
            "no such endpoint: /1.0/pretend-time (start with --debug-allow-pretend-time)".into(),
        ));
    }
    let now = fields.required_int("now")?;
    // Times are Unix seconds within years 1970..=9999 everywhere else; a
    // pretended time outside them would only overflow the arithmetic.
    if !(0..=MAX_TIME).contains(&now) {
        return Err(ApiError::BadRequest(format!(
            "field now must be a Unix time from 0 to {MAX_TIME} (year 9999), not {now}"
        )));
    }
    state.db.set_pretend_time(now);
    state.queue.wake();
    Ok(Json(Message {
        message: format!("Pretending it is {}", timefmt::utc(now)),
    }))
}

/// `GET /1.0/health-check`: 200 when STATEDB can be written (a write
/// transaction that changes nothing is committed) and its file system has
/// at least `--min-free-disk` free; 503 naming the problem otherwise,
/// logged once per minute.
/// The last second of year 9999, the latest time pretend-time accepts.
const MAX_TIME: i64 = 253_402_300_799;

pub async fn health_check(State(state): State<AppState>) -> Response {
    let db = std::sync::Arc::clone(&state.db);
    let writable = tokio::task::spawn_blocking(move || db.probe_write())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let problems: Vec<String> = [
        writable
            .err()
            .map(|err| format!("STATEDB cannot be written: {err}")),
        state.disk_warning(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    match problem {
        None => Json(Message {
            message: "ok".into(),
        })
        .into_response(),
        Some(problem) => {
            if state.logs.due("health-check") {
                tracing::warn!(%problem, "health check fails");
            }
            ApiError::Unavailable(problem).into_response()
        }
    }
}
