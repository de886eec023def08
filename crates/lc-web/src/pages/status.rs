//! The status page, and its copy in `--status-html FILE`.
//!
//! At 100,000 lorries the page reads counts per state and the fleet's
//! freshness (one aggregate pass), one page of rows, and at most a week of
//! per-hour job counts for the charts; never the whole queue.
//!
//! # The status file
//! `GET /1.0/status` and `/1.0/status-html` also write the default view
//! (no filter, first page) to `--status-html FILE`, atomically: a
//! temporary file in the same directory, then a rename. Not on every
//! request, and never in the request's time: a request asks
//! ([`refresh_status_file`]) and a task of its own writes the file when
//! STATEDB has changed since it last did, or that was more than
//! [`STATUS_FILE_REFRESH`] ago (its relative times, "10 min ago", age),
//! and never within [`STATUS_FILE_GAP`] of the previous write: a change
//! asked for meanwhile is written when the gap is over. At 100,000
//! lorries one write costs about as much as the page (the status page
//! bench), so a webapp polled many times a second writes it at most
//! every 5 s. The original wrote it on every request; its timer polls
//! once a minute, which still rewrites it every time.
//!
//! The file is meant to be served by a plain web server while the webapp
//! may be down, so:
//! - the stylesheet is inlined: the copy looks right with no webapp;
//! - it has no buttons (they need the webapp) but a link to the live page;
//! - its links stay root-relative (`/1.0/lorry-html/...`): they work where
//!   the original's deployments served the file, on the same host name as
//!   the webapp behind one front server that proxies `/1.0/` to it. Absolute
//!   URLs would need a public name the webapp does not know, and relative
//!   ones would depend on where the front server puts the file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use lc_api::ConfigProblem;
use lc_base::timefmt;
use lc_core::db::status::{LorryState, QueueFilter, QueuePage};

use super::charts::{self, Chart};
use super::view::{CheckedWithoutJob, Chrome, PagerLink, When, encode_path, pager, range_text};
use super::{PAGE_SIZE, PageError, PageResult, builtin_css, page_number, query_pairs};
use crate::AppState;
use crate::api;
use crate::error::ApiError;

/// What the query string asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct StatusQuery {
    filter: QueueFilter,
    page: i64,
}

impl StatusQuery {
    fn parse(raw: Option<&str>) -> Result<StatusQuery, ApiError> {
        let pairs = query_pairs(raw);
        let get = |key: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let state = match get("state").map(str::trim) {
            None | Some("") | Some("all") => None,
            Some(name) => Some(LorryState::parse(name).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "state must be one of all, failed, due, running, fresh; not {name:?}"
                ))
            })?),
        };
        Ok(StatusQuery {
            filter: QueueFilter {
                prefix: get("prefix").unwrap_or_default().to_owned(),
                state,
            },
            page: page_number(get("page"))?,
        })
    }

    /// The status page's URL for this filter, on page `page`.
    fn href(&self, state: Option<LorryState>, page: i64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !self.filter.prefix.is_empty() {
            query.append_pair("prefix", &self.filter.prefix);
        }
        if let Some(state) = state {
            query.append_pair("state", state.name());
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/1.0/status-html".to_owned()
        } else {
            format!("/1.0/status-html?{query}")
        }
    }
}

/// A summary count that links to its filter.
struct Card {
    label: &'static str,
    class: &'static str,
    count: i64,
    note: String,
    href: String,
    selected: bool,
}

struct StateOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

struct Row {
    path: String,
    href: String,
    state: &'static str,
    failures: i64,
    due: When,
    interval: String,
    job: Option<i64>,
    last_run: When,
    /// The check without a job that was its latest run, if it was one.
    checked: Option<CheckedWithoutJob>,
    exit: String,
    disk: String,
    error: Option<String>,
}

/// One of the newest events.
struct EventRow {
    id: i64,
    when: When,
    kind: &'static str,
    about: String,
    /// A lorry page to link to, if it is about a lorry.
    href: Option<String>,
    details: String,
}

/// Events shown on the status page.
const LAST_EVENTS: i64 = 10;

impl EventRow {
    fn new(event: lc_api::Event, now: i64) -> EventRow {
        let details = match &event.body {
            serde_json::Value::Object(fields) => fields
                .iter()
                .filter(|(_, v)| !v.is_null() && !v.is_array())
                .map(|(k, v)| match v {
                    serde_json::Value::String(text) => format!("{k}: {text}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        EventRow {
            id: event.id,
            when: When::ago(event.time, now),
            kind: event.event_type.name(),
            href: event.path.as_deref().map(encode_path),
            about: event.path.or(event.host).unwrap_or_default(),
            details: lc_base::redact::redact(&details).into_owned(),
        }
    }
}

/// A webhook and how its deliveries stand.
struct HookRow {
    name: String,
    failing: bool,
    failures: i64,
    last_success: When,
    error: Option<String>,
}

impl HookRow {
    fn new(row: lc_core::db::WebhookRow, now: i64) -> HookRow {
        HookRow {
            name: row.name,
            failing: row.failures >= crate::webhooks::FAILING_AFTER,
            failures: row.failures,
            last_success: When::ago(row.last_success.unwrap_or(0), now),
            error: row
                .last_error
                .map(|e| lc_base::redact::redact(&e).into_owned()),
        }
    }
}

struct HostRow {
    host: String,
    kind: String,
    last_run: When,
    interval: String,
    due: When,
    error: Option<String>,
    /// `3 of 120`: failed and all jobs of its lorries over the last week.
    failed_week: String,
}

/// A minion and how it isolates its jobs (from its job-updates).
struct MinionRow {
    minion: String,
    isolation: String,
    job_id: i64,
    seen: When,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    chrome: Chrome,
    /// The status file's copy: no buttons.
    snapshot: bool,
    back: String,
    running_queue: bool,
    warning: String,
    cards: Vec<Card>,
    disk_free: String,
    max_jobs: String,
    problems: Vec<ConfigProblem>,
    prefix: String,
    state_options: Vec<StateOption>,
    filtered: bool,
    range_text: String,
    rows: Vec<Row>,
    pager: Vec<PagerLink>,
    hosts: Vec<HostRow>,
    events: Vec<EventRow>,
    minions: Vec<MinionRow>,
    webhooks: Vec<HookRow>,
    /// Freshness and jobs per hour.
    fleet_charts: Vec<Chart>,
    /// Failures per day of each Upstream Host.
    host_charts: Vec<Chart>,
}

/// Hours of the jobs-per-hour chart, and days of the hosts' failures.
const CHART_HOURS: i64 = 24;
const CHART_DAYS: i64 = 7;

/// The most of a failed lorry's last error shown on the status page; its
/// lorry page has all of it.
const ERROR_TAIL: usize = 2000;

/// Everything the page shows, read in one transaction.
struct Snapshot {
    running_queue: bool,
    max_jobs: Option<i64>,
    hosts: Vec<lc_api::HostInfo>,
    problems: Vec<ConfigProblem>,
    page: QueuePage,
    events: Vec<lc_api::Event>,
    webhooks: Vec<lc_core::db::WebhookRow>,
    now: i64,
    minions: Vec<(String, crate::minions::Seen)>,
    jobs_per_hour: Vec<lc_core::db::JobCounts>,
    host_days: std::collections::BTreeMap<String, Vec<lc_core::db::JobCounts>>,
}

async fn read(state: &AppState, query: &StatusQuery) -> Result<Snapshot, ApiError> {
    let filter = query.filter.clone();
    let offset = (query.page - 1) * PAGE_SIZE;
    let minions = state.minions.list();
    state
        .read(move |tx| {
            Ok(Snapshot {
                running_queue: tx.running_queue()?,
                max_jobs: tx.max_jobs()?,
                hosts: tx.hosts()?,
                problems: tx.config_problems()?,
                page: tx.queue_page(&filter, offset, PAGE_SIZE)?,
                events: tx
                    .events(&lc_core::db::EventFilter {
                        limit: LAST_EVENTS,
                        last: true,
                        ..Default::default()
                    })?
                    .0,
                webhooks: tx.webhooks()?,
                now: tx.now(),
                minions,
                jobs_per_hour: tx.jobs_per_hour(CHART_HOURS)?,
                host_days: tx.host_jobs_per_day(CHART_DAYS)?,
            })
        })
        .await
}

fn build(
    query: &StatusQuery,
    snap: Snapshot,
    disk_free: u64,
    publish_failures: bool,
) -> StatusPage {
    let now = snap.now;
    let counts = snap.page.counts;
    let mut cards = vec![Card {
        label: "lorries",
        class: "all",
        count: counts.total(),
        note: String::new(),
        href: query.href(None, 1),
        selected: query.filter.state.is_none(),
    }];
    for state in LorryState::ALL {
        cards.push(Card {
            label: state.name(),
            class: state.name(),
            count: counts.get(state),
            note: if state == LorryState::Due && counts.overdue > 0 {
                format!("{} overdue", counts.overdue)
            } else {
                String::new()
            },
            href: query.href(Some(state), 1),
            selected: query.filter.state == Some(state),
        });
    }
    let mut state_options = vec![StateOption {
        value: "all",
        label: "all",
        selected: query.filter.state.is_none(),
    }];
    state_options.extend(LorryState::ALL.map(|s| StateOption {
        value: s.name(),
        label: s.name(),
        selected: query.filter.state == Some(s),
    }));
    let rows = snap
        .page
        .lorries
        .into_iter()
        .map(|lorry| {
            let lorry = api::shown(lorry);
            let state = LorryState::of(&lorry, now);
            let error = if publish_failures && state == LorryState::Failed {
                lorry.last_run_error.as_deref().map(tail)
            } else {
                None
            };
            Row {
                href: encode_path(&lorry.path),
                state: state.name(),
                failures: lorry.consecutive_failures,
                due: When::due(&lorry, now),
                interval: timefmt::span(lorry.interval),
                job: lorry.running_job,
                last_run: When::ago(lorry.last_run, now),
                checked: CheckedWithoutJob::of(&lorry, now).filter(|c| c.latest),
                exit: lorry.last_run_exit.clone().unwrap_or_default(),
                disk: timefmt::bytes(lorry.disk_usage),
                error,
                path: lorry.path,
            }
        })
        .collect::<Vec<_>>();
    let week = |host: &str| {
        let days = snap.host_days.get(host).map_or(&[][..], Vec::as_slice);
        let failed: i64 = days.iter().map(|d| d.failed).sum();
        let all: i64 = days.iter().map(|d| d.failed + d.succeeded).sum();
        format!("{failed} of {all}")
    };
    let hosts = snap
        .hosts
        .into_iter()
        .map(|h| HostRow {
            failed_week: week(&h.host),
            last_run: When::ago(h.ls_last_run, now),
            interval: timefmt::span(h.ls_interval),
            due: if h.ls_last_run <= 0 {
                When::unknown("now (never listed)")
            } else {
                When::until(h.ls_last_run + h.ls_interval, now)
            },
            error: h
                .ls_last_error
                .map(|e| lc_base::redact::redact(&e).into_owned()),
            kind: h.host_type,
            host: h.host,
        })
        .collect();
    let host_charts = snap
        .host_days
        .iter()
        .enumerate()
        .map(|(i, (host, days))| charts::host_failures(format!("chart-host-{i}"), host, days))
        .collect();
    let fleet_charts = vec![
        charts::freshness(&counts.freshness, &query.filter.prefix),
        charts::jobs_per_hour(&snap.jobs_per_hour),
    ];
    let first = (query.page - 1) * PAGE_SIZE;
    StatusPage {
        fleet_charts,
        host_charts,
        chrome: Chrome::new("Status", now),
        snapshot: false,
        back: query.href(query.filter.state, query.page),
        running_queue: snap.running_queue,
        warning: String::new(),
        cards,
        disk_free: timefmt::bytes(Some(i64::try_from(disk_free).unwrap_or(i64::MAX))),
        max_jobs: snap
            .max_jobs
            .map_or_else(|| "no limit".to_owned(), |n| n.to_string()),
        problems: snap.problems,
        prefix: query.filter.prefix.clone(),
        state_options,
        filtered: query.filter != QueueFilter::default(),
        range_text: range_text(first, rows.len(), snap.page.matching, "lorries"),
        rows,
        pager: pager(query.page, snap.page.matching, |n| {
            query.href(query.filter.state, n)
        }),
        hosts,
        events: snap
            .events
            .into_iter()
            .rev()
            .map(|e| EventRow::new(e, now))
            .collect(),
        minions: snap
            .minions
            .into_iter()
            .map(|(minion, seen)| MinionRow {
                minion,
                isolation: seen.isolation,
                job_id: seen.job_id,
                seen: When::ago(seen.at, now),
            })
            .collect(),
        webhooks: snap
            .webhooks
            .into_iter()
            .map(|h| HookRow::new(h, now))
            .collect(),
    }
}

/// The last [`ERROR_TAIL`] bytes of `text`, cut at a line start.
fn tail(text: &str) -> String {
    if text.len() <= ERROR_TAIL {
        return text.to_owned();
    }
    let mut start = text.len() - ERROR_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    let cut = cut.find('\n').map_or(cut, |nl| &cut[nl + 1..]);
    format!("[… earlier output on the lorry's page]\n{cut}")
}

/// Renders the status page for `query`.
pub async fn render(state: &AppState, raw_query: Option<&str>) -> Result<String, PageError> {
    let query = StatusQuery::parse(raw_query)?;
    let snap = read(state, &query).await?;
    let mut page = build(
        &query,
        snap,
        state.disk_free(),
        state.config.publish_failures,
    );
    page.warning = state.disk_warning().unwrap_or_default();
    Ok(page.render()?)
}

/// `GET /1.0/status-html`.
pub async fn status_html(State(state): State<AppState>, RawQuery(raw): RawQuery) -> PageResult {
    let html = render(&state, raw.as_deref()).await?;
    refresh_status_file(&state);
    Ok(Html(html))
}

/// `GET /1.0/status`: the JSON status, from memory while it is current
/// (see status_json.rs), gzipped for a client that accepts it; a 304 when
/// `If-None-Match` names the ETag of what would be sent. Asks for the
/// status file to be refreshed.
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let body = state.status_cache.current(&state).await?;
    refresh_status_file(&state);
    let (etag, bytes, gzip) = if crate::status_json::accepts_gzip(&headers) {
        let (etag, bytes) = body.gzipped().await?;
        (etag.clone(), bytes.clone(), true)
    } else {
        (body.etag.clone(), body.json.clone(), false)
    };
    let mut response = if crate::status_json::not_modified(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let length = bytes.len();
        let mut response = (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::CONTENT_LENGTH, HeaderValue::from(length)),
            ],
            state.status_cache.sending(body, bytes),
        )
            .into_response();
        if gzip {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    // Clients may keep it, but must ask before they use it again.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Ok(response)
}

/// Least time between two writes of the status file (`WebConfig::status_html_gap`).
pub const STATUS_FILE_GAP: Duration = Duration::from_secs(5);

/// Age after which the status file is written again though STATEDB has
/// not changed, for its relative times.
pub const STATUS_FILE_REFRESH: Duration = Duration::from_secs(30);

/// When the status file was written, and whether a write is under way.
#[derive(Default)]
pub struct StatusFile {
    inner: Mutex<FileState>,
    /// Writes so far, failed ones included.
    writes: AtomicU64,
}

impl StatusFile {
    /// Writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Whether a write is under way or waiting for the gap to end.
    pub fn is_writing(&self) -> bool {
        lock(&self.inner).writing
    }
}

#[derive(Default)]
struct FileState {
    /// A task is writing it, or waiting for the gap to end.
    writing: bool,
    /// A request asked while it was.
    asked_again: bool,
    /// STATEDB's generation before the last write read it, and when.
    written: Option<(Option<u64>, Instant)>,
}

fn lock(mutex: &Mutex<FileState>) -> std::sync::MutexGuard<'_, FileState> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Has the status file written, if one is configured and it is out of
/// date (see the module's documentation); returns at once.
fn refresh_status_file(state: &AppState) {
    if state.config.status_html.is_none() {
        return;
    }
    let generation = state.db.generation().ok();
    let mut file = lock(&state.status_file.inner);
    if file.writing {
        file.asked_again = true;
        return;
    }
    if let Some((written, at)) = file.written
        && written.is_some()
        && written == generation
        && at.elapsed() < STATUS_FILE_REFRESH
    {
        return;
    }
    file.writing = true;
    drop(file);
    tokio::spawn(status_file_task(state.clone()));
}

/// Writes the status file once the gap since the last write is over, and
/// again while requests that came meanwhile saw a newer STATEDB.
async fn status_file_task(state: AppState) {
    loop {
        let since = lock(&state.status_file.inner).written.map(|(_, at)| at);
        if let Some(at) = since {
            tokio::time::sleep_until((at + state.config.status_html_gap).into()).await;
        }
        let generation = state.db.generation().ok();
        let started = Instant::now();
        write_status_file(&state).await;
        state.status_file.writes.fetch_add(1, Ordering::Relaxed);
        let mut file = lock(&state.status_file.inner);
        file.written = Some((generation, started));
        let again = std::mem::take(&mut file.asked_again);
        if !(again && generation.is_some() && state.db.generation().ok() != generation) {
            file.writing = false;
            return;
        }
    }
}

/// Writes the default view to `--status-html`, if given. A failure is
/// logged, never the request's failure.
async fn write_status_file(state: &AppState) {
    let Some(file) = state.config.status_html.clone() else {
        return;
    };
    let html = async {
        let query = StatusQuery {
            page: 1,
            ..StatusQuery::default()
        };
        let snap = read(state, &query).await?;
        let mut page = build(
            &query,
            snap,
            state.disk_free(),
            state.config.publish_failures,
        );
        page.snapshot = true;
        page.warning = state.disk_warning().unwrap_or_default();
        page.chrome.inline_css = Some(builtin_css());
        Ok::<_, PageError>(page.render()?)
    }
    .await;
    let result = match html {
        Ok(html) => write_atomically(&file, html.into_bytes())
            .await
            .map_err(|e| e.to_string()),
        Err(PageError(err)) => Err(format!("{err:?}")),
    };
    if let Err(err) = result {
        tracing::warn!(file = %file.display(), %err, "cannot write the status file");
    }
}

/// Writes `bytes` to a fresh temporary file beside `file`, then renames it
/// over `file`: readers see the old page or the new one, never a part.
pub(crate) async fn write_atomically(file: &Path, bytes: Vec<u8>) -> std::io::Result<()> {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "status.html".into());
    let tmp: PathBuf = file.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    if let Err(err) = tokio::fs::write(&tmp, bytes).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(err);
    }
    if let Err(err) = tokio::fs::rename(&tmp, file).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(err);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_round_trip() {
        let q = StatusQuery::parse(Some("prefix=up%2F&state=failed&page=3")).expect("parse");
        assert_eq!(q.filter.prefix, "up/");
        assert_eq!(q.filter.state, Some(LorryState::Failed));
        assert_eq!(q.page, 3);
        assert_eq!(
            q.href(q.filter.state, 2),
            "/1.0/status-html?prefix=up%2F&state=failed&page=2"
        );
        assert_eq!(
            StatusQuery::parse(None).expect("empty").href(None, 1),
            "/1.0/status-html"
        );
        assert!(StatusQuery::parse(Some("state=bogus")).is_err());
        assert!(StatusQuery::parse(Some("page=0")).is_err());
        assert!(StatusQuery::parse(Some("page=x")).is_err());
    }

    #[test]
    fn hosts_and_configuration_problems_are_shown_escaped() {
        let host = |name: &str, last: i64, error: Option<&str>| lc_api::HostInfo {
            host: name.into(),
            host_type: "gitlab".into(),
            protocol: "https".into(),
            lorry_interval: 3600,
            lorry_timeout: 600,
            ls_interval: 7200,
            ls_last_run: last,
            ls_last_error: error.map(str::to_owned),
            last_run_nice: String::new(),
            ls_interval_nice: String::new(),
            due_nice: String::new(),
            prefixmap: serde_json::json!({}),
            ignore: Vec::new(),
        };
        let now = 1_700_000_000;
        let snap = Snapshot {
            running_queue: false,
            max_jobs: Some(4),
            events: Vec::new(),
            minions: vec![(
                "m1:42".into(),
                crate::minions::Seen {
                    isolation: "bwrap + cgroup v1 <b>".into(),
                    job_id: 7,
                    at: now - 5,
                },
            )],
            webhooks: Vec::new(),
            hosts: vec![
                host("<i>git.example</i>", 0, None),
                host(
                    "gl.example",
                    now - 600,
                    Some("GET https://u:tok3n@gl.example/api: <b>401</b>"),
                ),
            ],
            problems: vec![ConfigProblem {
                file: "lorries/<x>.lorry".into(),
                item: Some("up/<y>".into()),
                problem: "url is <missing>".into(),
            }],
            page: QueuePage {
                counts: Default::default(),
                matching: 0,
                lorries: Vec::new(),
            },
            now,
            jobs_per_hour: Vec::new(),
            host_days: [(
                "<i>git.example</i>".to_owned(),
                vec![lc_core::db::JobCounts {
                    start: now,
                    succeeded: 1,
                    failed: 2,
                }],
            )]
            .into(),
        };
        let query = StatusQuery {
            page: 1,
            ..StatusQuery::default()
        };
        let html = build(&query, snap, 1 << 30, false)
            .render()
            .expect("render");
        for raw in ["<i>", "<b>", "<x>", "<y>", "<missing>", "tok3n"] {
            assert!(!html.contains(raw), "{raw} shown raw: {html}");
        }
        for shown in [
            "&#60;i&#62;git.example&#60;/i&#62;",
            "now (never listed)",
            "in 1 h 50 min",
            "10 min ago",
            "https://***@gl.example/api: &#60;b&#62;401&#60;/b&#62;",
            "lorries/&#60;x&#62;.lorry",
            "url is &#60;missing&#62;",
            "Queue stopped",
            "action=\"/1.0/start-queue\"",
            "<strong>4</strong>",
            "<strong>1.0 GiB</strong>",
            "No lorries.",
            "<td>m1:42</td><td>bwrap + cgroup v1 &#60;b&#62;</td>",
            "<td class=\"num\">2 of 3</td>",
            "<figcaption>&#60;i&#62;git.example&#60;/i&#62;: failed jobs per day, last 1 day</figcaption>",
        ] {
            assert!(html.contains(shown), "{shown} missing: {html}");
        }
    }

    #[test]
    fn long_errors_keep_their_tail() {
        let text = format!("{}\nlast line\n", "x".repeat(5000));
        let shown = tail(&text);
        assert!(shown.ends_with("last line\n"));
        assert!(shown.len() < 2100);
        assert_eq!(tail("short"), "short");
    }
}
