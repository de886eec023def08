//! The admin pages: status, lorry, job and job list, rendered with askama
//! from `templates/`, styled by `static/`, and a job's live output.
//!
//! Handlers are thin: one read transaction, then a view model of plain
//! strings the templates only print (askama escapes every `{{ }}`; the only
//! `|safe` is our own CSS). Buttons are plain forms posting to the JSON
//! commands with a `redirect` field, so every page works without JavaScript.
//!
//! Links are root-relative (`/1.0/...`, `/lc-static/...`): the webapp serves
//! them at the root, and the redirect of a form must be a path on this server.

mod charts;
mod live;
mod status;
mod view;

use askama::Template;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use lc_base::timefmt;
use lc_core::db::status::LorryState;

use crate::AppState;
use crate::api;
use crate::error::{ApiError, JobId};
use view::{CheckedWithoutJob, Chrome, JobRow, PagerLink, When, encode_path, pager};

pub use live::job_output;
pub(crate) use status::write_atomically;
pub use status::{STATUS_FILE_GAP, StatusFile, status, status_html};

/// Rows per page of the status page and the job list.
pub const PAGE_SIZE: i64 = 100;

/// Jobs shown on a lorry's page, newest first.
const LORRY_JOBS: i64 = 50;

/// The built-in copies of `static/`: pages are styled out of the box.
const BUILTIN_STATIC: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../../static/style.css"),
    ),
    (
        "live-output.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../static/live-output.js"),
    ),
];

/// The error of a page: the same policy as [`ApiError`], as an HTML page.
#[derive(Debug)]
pub struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(err: ApiError) -> PageError {
        PageError(err)
    }
}

impl From<askama::Error> for PageError {
    fn from(err: askama::Error) -> PageError {
        PageError(ApiError::internal(format!("template: {err}")))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let parts = self.0.parts();
        let page = ErrorPage {
            chrome: Chrome::new(
                parts.status.canonical_reason().unwrap_or("Error"),
                lc_core::db::real_now(),
            ),
            message: parts.message.clone(),
        };
        match page.render() {
            Ok(html) => parts.respond(Html(html)),
            Err(_) => {
                let text = page.message;
                parts.respond(text)
            }
        }
    }
}

type PageResult = Result<Html<String>, PageError>;

/// Parses the query string of a page: never fails, unknown keys are ignored.
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `?page=N`, 1-based; absent or empty is 1.
fn page_number(value: Option<&str>) -> Result<i64, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Ok(1),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=1_000_000_000).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "page must be a whole number from 1, not {text:?}"
            ))),
        },
    }
}

#[derive(Template)]
#[template(path = "lorry.html")]
struct LorryPage {
    chrome: Chrome,
    path: String,
    back: String,
    state: &'static str,
    url: String,
    kind: String,
    from_host: String,
    from_path: String,
    interval: String,
    timeout: String,
    due: When,
    last_run: When,
    /// Its last check without a job, if it had one.
    checked: Option<CheckedWithoutJob>,
    exit: String,
    failures: i64,
    last_success: When,
    running_job: Option<i64>,
    disk: String,
    error: Option<String>,
    jobs: Vec<JobRow>,
    /// The jobs table has no path column here: they are all this lorry's.
    show_path: bool,
    jobs_total: usize,
    spec: String,
    /// Submodule URLs the last job found, each with the lorry mirroring it.
    submodules: Vec<lc_core::db::Submodule>,
    /// The LFS store's size after the last job, when it had one.
    lfs: Option<String>,
    /// The newest ref changes of the ledger.
    history: Vec<HistoryRow>,
    history_more: bool,
    history_href: String,
    /// Durations and exit codes of the jobs shown, and their disk usage.
    charts: Vec<charts::Chart>,
}

/// One ref change on a lorry's page.
struct HistoryRow {
    when: When,
    name: String,
    old: String,
    new: String,
    how: String,
    kept_as: String,
}

/// Ref changes shown on a lorry's page, newest first.
const LORRY_HISTORY: i64 = 20;

fn short(oid: Option<&str>) -> String {
    oid.map(|o| o.chars().take(12).collect())
        .unwrap_or_else(|| "—".into())
}

/// `GET /1.0/lorry-html/<path>`.
pub async fn lorry_html(
    State(state): State<AppState>,
    UrlPath(path): UrlPath<String>,
) -> PageResult {
    let (lorry, (jobs, jobs_total), now, submodules, last) = state
        .read(move |tx| {
            let lorry = tx.lorry(&path)?;
            let jobs = tx.job_summaries(Some(&path), 0, LORRY_JOBS)?;
            let submodules = tx.lorry_submodules(&path)?;
            let last = tx.last_spec_result(&path)?;
            let history = tx.ledger_history(&path, LORRY_HISTORY, 0)?;
            Ok((lorry, jobs, tx.now(), submodules, (last, history)))
        })
        .await?;
    let (last, (history, history_more)) = last;
    let lorry = api::shown(lorry);
    let (url, kind) = view::spec_source(&lorry.text, &lorry.path);
    let charts = [
        charts::job_durations(&lorry.path, &jobs),
        charts::disk_usage(&lorry.path, &jobs),
    ]
    .into_iter()
    .flatten()
    .collect();
    let page = LorryPage {
        charts,
        chrome: Chrome::new(&lorry.path, now),
        back: format!("/1.0/lorry-html/{}", encode_path(&lorry.path)),
        history: history
            .into_iter()
            .map(|c| HistoryRow {
                when: When::ago(c.time, now),
                old: short(c.old.as_deref()),
                new: short(c.new.as_deref()),
                kept_as: c.kept_as.unwrap_or_default(),
                how: c.how,
                name: c.name,
            })
            .collect(),
        history_more,
        history_href: format!("/1.0/lorry-history/{}", encode_path(&lorry.path)),
        state: LorryState::of(&lorry, now).name(),
        url,
        kind,
        interval: timefmt::span(lorry.interval),
        timeout: timefmt::span(lorry.lorry_timeout),
        due: When::due(&lorry, now),
        last_run: When::ago(lorry.last_run, now),
        checked: CheckedWithoutJob::of(&lorry, now),
        exit: lorry.last_run_exit.clone().unwrap_or_else(|| "—".into()),
        failures: lorry.consecutive_failures,
        last_success: When::ago(lorry.last_success.unwrap_or(0), now),
        running_job: lorry.running_job,
        disk: or_dash(timefmt::bytes(lorry.disk_usage)),
        error: lorry
            .last_run_error
            .clone()
            .filter(|_| lorry.last_run_exit.as_deref().is_some_and(|e| e != "0")),
        jobs: jobs.iter().map(|j| JobRow::new(j, now)).collect(),
        show_path: false,
        jobs_total: usize::try_from(jobs_total).unwrap_or(0),
        spec: lorry.text,
        submodules,
        lfs: last
            .filter(|spec| spec.lfs_bytes > 0)
            .map(|spec| timefmt::bytes(i64::try_from(spec.lfs_bytes).ok())),
        from_host: lorry.from_host,
        from_path: lorry.from_path,
        path: lorry.path,
    };
    Ok(Html(page.render()?))
}

#[derive(Template)]
#[template(path = "snapshots.html")]
struct SnapshotsPage {
    chrome: Chrome,
    snapshots: Vec<SnapshotRow>,
    from: String,
    to: String,
    diff: Option<lc_api::SnapshotDiff>,
    diff_rows: Vec<DiffRow>,
}

struct SnapshotRow {
    name: String,
    taken: When,
    prefix: String,
    lorries: i64,
    pinned_lorries: i64,
    pending: i64,
    pushed: i64,
    reachable: i64,
    lost: i64,
    /// The channels pointing at it, comma-separated.
    channels: String,
}

struct DiffRow {
    path: String,
    name: String,
    change: &'static str,
    from: String,
    to: String,
}

/// The rows of a diff's table: each changed lorry's refs, added, moved,
/// then removed.
fn diff_rows(diff: &lc_api::SnapshotDiff) -> Vec<DiffRow> {
    let mut rows = Vec::new();
    for (path, lorry) in &diff.changed {
        for (name, oid) in &lorry.added {
            rows.push(DiffRow {
                path: path.clone(),
                name: name.clone(),
                change: "added",
                from: "—".into(),
                to: short(Some(oid)),
            });
        }
        for (name, moved) in &lorry.moved {
            rows.push(DiffRow {
                path: path.clone(),
                name: name.clone(),
                change: "moved",
                from: short(Some(&moved.from)),
                to: short(Some(&moved.to)),
            });
        }
        for (name, oid) in &lorry.removed {
            rows.push(DiffRow {
                path: path.clone(),
                name: name.clone(),
                change: "removed",
                from: short(Some(oid)),
                to: "—".into(),
            });
        }
    }
    rows
}

/// `GET /1.0/snapshots-html?from=A&to=B`: the snapshots, a form to take
/// one, and the difference between two of them when asked.
pub async fn snapshots_html(State(state): State<AppState>, RawQuery(raw): RawQuery) -> PageResult {
    let pairs = query_pairs(raw.as_deref());
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (from, to) = (get("from"), get("to"));
    let asked = from.clone().zip(to.clone());
    let (snapshots, channels, diff, now) = state
        .read(move |tx| {
            let diff = match &asked {
                Some((a, b)) => Some(tx.snapshot_diff(a, b)?),
                None => None,
            };
            Ok((tx.snapshots()?, tx.channels()?, diff, tx.now()))
        })
        .await?;
    let view = SnapshotsPage {
        chrome: Chrome::new("Snapshots", now),
        diff_rows: diff.as_ref().map(diff_rows).unwrap_or_default(),
        diff,
        from: from
            .or_else(|| snapshots.get(1).map(|s| s.name.clone()))
            .unwrap_or_default(),
        to: to
            .or_else(|| snapshots.first().map(|s| s.name.clone()))
            .unwrap_or_default(),
        snapshots: snapshots
            .into_iter()
            .map(|s| SnapshotRow {
                channels: channels
                    .iter()
                    .filter(|c| c.snapshot == s.name)
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                taken: When::ago(s.taken, now),
                lorries: s.lorries,
                pinned_lorries: s.pinned_lorries,
                pending: s.pins.pending,
                pushed: s.pins.pushed,
                reachable: s.pins.reachable,
                lost: s.pins.lost,
                prefix: s.prefix,
                name: s.name,
            })
            .collect(),
    };
    Ok(Html(view.render()?))
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    id: i64,
    back: String,
    path: String,
    href: String,
    running: bool,
    state: &'static str,
    state_text: String,
    minion: String,
    started: When,
    ended: When,
    updated: When,
    took: String,
    exit: String,
    disk: String,
    output: String,
    last_seq: i64,
}

/// `GET /1.0/job-html/<id>`.
pub async fn job_html(
    State(state): State<AppState>,
    job_id: Result<JobId, ApiError>,
) -> PageResult {
    let JobId(job_id) = job_id?;
    let (job, output, now) = state
        .read(move |tx| {
            let job = tx.job(job_id)?;
            let output = tx.job_output_since(job_id, 0)?;
            Ok((job, output, tx.now()))
        })
        .await?;
    let running = job.ended.is_none();
    let (state_name, state_text) = view::job_state(running, job.kill_job, Some(&job.exit));
    let page = JobPage {
        chrome: Chrome::new(&format!("Job {job_id}"), now),
        id: job_id,
        back: format!("/1.0/job-html/{job_id}"),
        href: encode_path(&job.path),
        running,
        state: state_name,
        state_text,
        minion: format!("{}:{}", job.host, job.pid),
        started: When::ago(job.started, now),
        ended: match job.ended {
            Some(ended) => When::ago(ended, now),
            None => When::unknown("still running"),
        },
        updated: When::ago(job.updated, now),
        took: timefmt::span(job.ended.unwrap_or(now).saturating_sub(job.started)),
        exit: if running {
            "—".into()
        } else {
            job.exit.clone()
        },
        disk: or_dash(job.disk_usage_nice),
        output: output.text,
        last_seq: output.last_seq,
        path: job.path,
    };
    Ok(Html(page.render()?))
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    chrome: Chrome,
    range_text: String,
    jobs: Vec<JobRow>,
    show_path: bool,
    pager: Vec<PagerLink>,
}

/// `GET /1.0/list-jobs-html?page=N`: every job remembered, newest first.
pub async fn list_jobs_html(State(state): State<AppState>, RawQuery(raw): RawQuery) -> PageResult {
    let pairs = query_pairs(raw.as_deref());
    let page = page_number(
        pairs
            .iter()
            .find(|(k, _)| k == "page")
            .map(|(_, v)| v.as_str()),
    )?;
    let ((jobs, total), now) = state
        .read(move |tx| {
            Ok((
                tx.job_summaries(None, (page - 1) * PAGE_SIZE, PAGE_SIZE)?,
                tx.now(),
            ))
        })
        .await?;
    let first = (page - 1) * PAGE_SIZE;
    let view = JobsPage {
        chrome: Chrome::new("Jobs", now),
        range_text: view::range_text(first, jobs.len(), total, "jobs"),
        jobs: jobs.iter().map(|j| JobRow::new(j, now)).collect(),
        show_path: true,
        pager: pager(page, total, |n| format!("/1.0/list-jobs-html?page={n}")),
    };
    Ok(Html(view.render()?))
}

/// `GET /lc-static/<file>`: from `--static-files` when it has the file,
/// otherwise the built-in copy.
pub async fn static_file(
    State(state): State<AppState>,
    UrlPath(file): UrlPath<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no static file {file:?}"));
    let safe = !file.is_empty()
        && std::path::Path::new(&file)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe {
        return Err(not_found());
    }
    if let Some(dir) = &state.config.static_files {
        match tokio::fs::read(dir.join(&file)).await {
            Ok(bytes) => {
                return Ok(([(header::CONTENT_TYPE, content_type(&file))], bytes).into_response());
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) if err.kind() == std::io::ErrorKind::IsADirectory => return Err(not_found()),
            Err(err) => {
                tracing::warn!(file, %err, "cannot read static file");
                return Err(not_found());
            }
        }
    }
    match BUILTIN_STATIC.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "max-age=300"),
            ],
            *body,
        )
            .into_response()),
        None => Err(not_found()),
    }
}

/// The built-in stylesheet, for the status file's inline copy.
fn builtin_css() -> &'static str {
    BUILTIN_STATIC[0].2
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn or_dash(text: String) -> String {
    if text.is_empty() { "—".into() } else { text }
}

#[cfg(test)]
mod tests;
