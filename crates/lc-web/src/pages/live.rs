//! `GET /1.0/job/<id>/output`: a job's output as server-sent events.
//!
//! Events: `output` (data: the new text as a JSON string, id: the last
//! output chunk's sequence number) and, once the job has ended, `end`
//! (data: its exit code), after which the stream closes. `?after=SEQ` (or a
//! reconnecting browser's `Last-Event-ID`) skips what the client already has.
//! A stream also closes after [`STREAM_LIFETIME`]; browsers reconnect with
//! `Last-Event-ID`, so nothing is lost, and a graceful shutdown never waits
//! on a long job.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use lc_core::db::status::OutputSince;

use super::query_pairs;
use crate::AppState;
use crate::error::{ApiError, JobId};

/// How often a running job's new output is looked for.
const POLL: Duration = Duration::from_millis(250);

/// How long one stream lasts before the client must reconnect.
const STREAM_LIFETIME: Duration = Duration::from_secs(30);

/// Where a stream is.
struct Cursor {
    state: AppState,
    job_id: i64,
    last_seq: i64,
    /// Already read, not yet sent.
    pending: Option<OutputSince>,
    ended: bool,
    opened: Instant,
}

pub async fn job_output(
    State(state): State<AppState>,
    JobId(job_id): JobId,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let from_header = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let from_query = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "after")
        .map(|(_, v)| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("after must be an integer, not {v:?}")))
        })
        .transpose()?;
    let after = from_header.or(from_query).unwrap_or(0).max(0);
    // Unknown jobs are a 404 now, not an empty stream.
    let first = state
        .read(move |tx| tx.job_output_since(job_id, after))
        .await?;
    let cursor = Cursor {
        state,
        job_id,
        last_seq: after,
        pending: Some(first),
        ended: false,
        opened: Instant::now(),
    };
    Ok(Sse::new(futures_util::stream::unfold(cursor, next_event)).keep_alive(KeepAlive::default()))
}

/// The next event of a stream, waiting for new output; `None` ends it.
async fn next_event(mut cursor: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    if cursor.ended {
        return None;
    }
    loop {
        let since = match cursor.pending.take() {
            Some(since) => since,
            None => {
                if cursor.opened.elapsed() >= STREAM_LIFETIME {
                    return None;
                }
                tokio::time::sleep(POLL).await;
                let (job_id, after) = (cursor.job_id, cursor.last_seq);
                match cursor
                    .state
                    .read(move |tx| tx.job_output_since(job_id, after))
                    .await
                {
                    Ok(since) => since,
                    Err(err) => {
                        // The job was removed, or STATEDB failed: say so and stop.
                        tracing::debug!(job_id, ?err, "job output stream ends");
                        cursor.ended = true;
                        let event = Event::default().event("end").data("gone");
                        return Some((Ok(event), cursor));
                    }
                }
            }
        };
        if !since.text.is_empty() {
            cursor.last_seq = since.last_seq;
            let event = Event::default()
                .event("output")
                .id(since.last_seq.to_string())
                .data(serde_json::to_string(&since.text).unwrap_or_default());
            // Send the end on the next call, without waiting.
            if since.exit.is_some() {
                cursor.pending = Some(OutputSince {
                    text: String::new(),
                    ..since
                });
            }
            return Some((Ok(event), cursor));
        }
        if let Some(exit) = since.exit {
            cursor.ended = true;
            return Some((Ok(Event::default().event("end").data(exit)), cursor));
        }
    }
}
