//! `GET /1.0/events`: the event log, as JSON pages or, asked with
//! `Accept: text/event-stream`, as server-sent events; and the
//! housekeeping task that records overdue lorries and forgets old events.
//!
//! Query: `since=ID` (events after it), `type=T` (repeatable, or
//! comma-separated), `prefix=P` (lorry path, or host name for host
//! events), `limit=N` (a page, 1 to 1000, default 100), `last=N` (the
//! newest N instead of the oldest, still oldest first). The stream sends
//! each event as `data:` (its JSON) with `id:` its id, resumes after a
//! reconnecting client's `Last-Event-ID`, and closes after
//! [`STREAM_LIFETIME`] (the client reconnects; a graceful shutdown never
//! waits on it).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use lc_api::{Event, EventType, Events};
use lc_core::db::{EventFilter, StateDb};

use crate::AppState;
use crate::error::ApiError;

/// How often a stream looks for new events.
const POLL: Duration = Duration::from_millis(250);

/// How long one stream lasts before the client must reconnect.
const STREAM_LIFETIME: Duration = Duration::from_secs(30);

/// The events asked for by a query string (and `Last-Event-ID`).
pub(crate) fn filter(raw: Option<&str>, headers: &HeaderMap) -> Result<EventFilter, ApiError> {
    let mut filter = EventFilter {
        limit: EventFilter::DEFAULT_LIMIT,
        ..EventFilter::default()
    };
    let number = |name: &str, value: &str| {
        value.trim().parse::<i64>().map_err(|_| {
            ApiError::BadRequest(format!("{name} must be a whole number, not {value:?}"))
        })
    };
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "since" => filter.since = number("since", &value)?.max(0),
            "limit" => {
                filter.limit = number("limit", &value)?;
                if !(1..=EventFilter::MAX_LIMIT).contains(&filter.limit) {
                    return Err(ApiError::BadRequest(format!(
                        "limit must be from 1 to {}, not {}",
                        EventFilter::MAX_LIMIT,
                        filter.limit
                    )));
                }
            }
            "last" => {
                filter.last = true;
                filter.limit = number("last", &value)?;
                if !(1..=EventFilter::MAX_LIMIT).contains(&filter.limit) {
                    return Err(ApiError::BadRequest(format!(
                        "last must be from 1 to {}, not {}",
                        EventFilter::MAX_LIMIT,
                        filter.limit
                    )));
                }
            }
            "prefix" if !value.is_empty() => filter.prefix = Some(value.into_owned()),
            "prefix" => {}
            "type" => {
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let event_type = EventType::parse(name).ok_or_else(|| {
                        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
                        ApiError::BadRequest(format!(
                            "no event type {name:?}; the types are {}",
                            known.join(", ")
                        ))
                    })?;
                    filter.types.push(event_type);
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {other:?}: since, type, prefix, limit and last are known"
                )));
            }
        }
    }
    if let Some(last) = headers.get("last-event-id") {
        let text = last.to_str().unwrap_or_default();
        filter.since = number("Last-Event-ID", text)?.max(0);
    }
    Ok(filter)
}

pub async fn events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let filter = filter(raw.as_deref(), &headers)?;
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        return Ok(stream(state, filter).into_response());
    }
    let since = filter.since;
    let (events, more) = state.read(move |tx| tx.events(&filter)).await?;
    let next_since = events.last().map_or(since, |e| e.id);
    Ok(Json(Events {
        events,
        next_since,
        more,
    })
    .into_response())
}

/// Where a stream is.
struct Cursor {
    state: AppState,
    filter: EventFilter,
    pending: std::collections::VecDeque<Event>,
    opened: Instant,
    first: bool,
}

fn stream(
    state: AppState,
    filter: EventFilter,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let cursor = Cursor {
        state,
        filter,
        pending: Default::default(),
        opened: Instant::now(),
        first: true,
    };
    Sse::new(futures_util::stream::unfold(cursor, next_event)).keep_alive(KeepAlive::default())
}

async fn next_event(mut cursor: Cursor) -> Option<(Result<SseEvent, Infallible>, Cursor)> {
    loop {
        if let Some(event) = cursor.pending.pop_front() {
            cursor.filter.since = event.id;
            let data = serde_json::to_string(&event).unwrap_or_default();
            let sse = SseEvent::default().id(event.id.to_string()).data(data);
            return Some((Ok(sse), cursor));
        }
        if cursor.opened.elapsed() >= STREAM_LIFETIME {
            return None;
        }
        if !cursor.first {
            tokio::time::sleep(POLL).await;
        }
        cursor.first = false;
        let filter = EventFilter {
            limit: EventFilter::MAX_LIMIT,
            last: false,
            ..cursor.filter.clone()
        };
        match cursor.state.read(move |tx| tx.events(&filter)).await {
            Ok((events, _)) => cursor.pending.extend(events),
            Err(err) => {
                tracing::warn!(?err, "event stream ends");
                return None;
            }
        }
    }
}

/// What the housekeeping task does, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Housekeeping {
    /// Seconds between rounds.
    pub interval: u64,
    /// A lorry is overdue when not mirrored within this many intervals.
    pub overdue_factor: i64,
    /// Events older than this many seconds are forgotten.
    pub event_max_age: i64,
    /// How long snapshots and ended ref ledger rows are kept.
    pub retention: lc_core::db::Retention,
}

/// `--housekeeping-interval` unless given.
pub const DEFAULT_HOUSEKEEPING_INTERVAL: u64 = 60;
/// `--overdue-factor` unless given.
pub const DEFAULT_OVERDUE_FACTOR: i64 = 3;
/// `--event-max-age` unless given: thirty days.
pub const DEFAULT_EVENT_MAX_AGE: i64 = 30 * 86_400;

impl Default for Housekeeping {
    fn default() -> Housekeeping {
        Housekeeping {
            interval: DEFAULT_HOUSEKEEPING_INTERVAL,
            overdue_factor: DEFAULT_OVERDUE_FACTOR,
            event_max_age: DEFAULT_EVENT_MAX_AGE,
            retention: lc_core::db::Retention::default(),
        }
    }
}

/// One round: overdue lorries recorded, old events forgotten, snapshots
/// and ledger rows past their retention removed, old per-hour job counts
/// forgotten, each in a transaction of its own.
pub fn housekeeping_round(db: &StateDb, settings: Housekeeping) -> lc_core::Result<()> {
    let overdue = db.write(|tx| tx.record_overdue_lorries(settings.overdue_factor))?;
    if !overdue.is_empty() {
        tracing::info!(count = overdue.len(), "lorries overdue");
    }
    let removed = db.write(|tx| tx.remove_old_events(settings.event_max_age))?;
    if removed > 0 {
        tracing::debug!(removed, "old events removed");
    }
    let (snapshots, rows) = db.write(|tx| tx.apply_retention(&settings.retention))?;
    if !snapshots.is_empty() || rows > 0 {
        tracing::info!(
            ?snapshots,
            ledger_rows = rows,
            "retention: snapshots and ledger rows removed"
        );
    }
    let removed = db.write(|tx| tx.remove_old_job_stats(lc_core::db::JOB_STATS_MAX_AGE))?;
    if removed > 0 {
        tracing::debug!(removed, "old per-hour job counts removed");
    }
    Ok(())
}

/// Runs [`housekeeping_round`] every `settings.interval` seconds, first
/// right away, on a blocking thread, until dropped.
pub async fn housekeeping(db: Arc<StateDb>, settings: Housekeeping) {
    let mut ticks = tokio::time::interval(Duration::from_secs(settings.interval.max(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let db = Arc::clone(&db);
        match tokio::task::spawn_blocking(move || housekeeping_round(&db, settings)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "housekeeping failed"),
            Err(err) => tracing::warn!(%err, "housekeeping task failed"),
        }
    }
}

/// Records disk-low when STATEDB's file system has less free space than
/// `--min-free-disk` (0: never), and disk-ok when it has enough again,
/// looking every `--housekeeping-interval`; only changes are recorded, also
/// across restarts (the newest disk event says where things stood).
pub async fn watch_disk(state: AppState) {
    let min = state.config.min_free_disk;
    let mut ticks = tokio::time::interval(Duration::from_secs(
        state.config.housekeeping.interval.max(1),
    ));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recorded_low = None;
    loop {
        ticks.tick().await;
        let recorded = match recorded_low {
            Some(low) => low,
            None => match state.read(|tx| tx.disk_low_recorded()).await {
                Ok(low) => *recorded_low.insert(low),
                Err(err) => {
                    tracing::warn!(?err, "cannot read the last disk event");
                    continue;
                }
            },
        };
        let free = state.disk_free();
        let low = min > 0 && free < min;
        if low == recorded {
            continue;
        }
        match state.write(move |tx| tx.record_disk(low, free, min)).await {
            Ok(()) => recorded_low = Some(low),
            Err(err) => tracing::warn!(?err, "cannot record a disk event"),
        }
    }
}
