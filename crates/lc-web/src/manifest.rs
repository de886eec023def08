//! `GET /1.0/manifest.js.gz`: a grokmirror manifest of the mirrors we
//! keep, so that a grokmirror replica (or another lorry-controller with a
//! `grokmirror` Upstream Host) downstream of us asks only for what changed.
//!
//! Each lorry is an entry `/<path>.git` with `fingerprint` computed as
//! grokmirror computes it (`lc_hosts::upstream::grokmirror::fingerprint`,
//! SHA-1 of `git show-ref`), `modified` (its last success), `head` and
//! `reference: null`. A `local` Downstream Host's repositories are read
//! (on a blocking thread); for a remote one (GitLab, Gitea...) the refs
//! come from STATEDB, as the jobs reported them in their results
//! (`ReadTx::published_mirrors`: the ledger's open refs, preserved tips and
//! pushed snapshot pins, for lorries whose ledger is whole). A repository
//! not created yet, without refs, or (remote) whose refs were never
//! reported whole, is left out, as grokmirror leaves out one without refs.
//! Written to `--manifest-file` atomically whenever its content changes.
//!
//! `Last-Modified` is when the content last changed as this webapp has
//! seen it ([`ManifestClock`]); a request whose `If-Modified-Since` is not
//! older gets 304, so an unchanged fleet costs a replica one small answer.
//! grok-pull needs the header and sends the condition.
//!
//! Caching: a remote downstream's manifest depends on STATEDB alone, so
//! it is served again as it was while `StateDb::generation` has not moved
//! (no query at all), and rebuilt only when `ReadTx::manifest_marker` (a
//! few aggregates) differs from the one it was built at: a job's output
//! moves the generation, not the marker. A local one is read from the repositories each time (they
//! change under us), but an unchanged text is neither compressed nor
//! written again.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lc_core::db::PublishedMirror;
use lc_hosts::Downstream;
use lc_hosts::upstream::grokmirror::{fingerprint, local_refs};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;

/// When the published manifest's content last changed, in whole seconds
/// since the epoch, with a digest of that content; and the manifest as
/// last served. Kept in memory: after a restart the first answer is dated
/// then, and replicas read it once more.
#[derive(Debug, Default)]
pub struct ManifestClock {
    stamped: Mutex<Option<(u64, u64)>>,
    served: Mutex<Option<Served>>,
}

/// The manifest as last served.
#[derive(Debug, Clone)]
struct Served {
    /// `manifest_marker` when it was built (remote downstreams only).
    marker: Option<String>,
    /// STATEDB's generation that marker was read at or after.
    generation: Option<u64>,
    digest: u64,
    body: Bytes,
    modified: u64,
}

fn digest(content: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    hasher.finish()
}

impl ManifestClock {
    /// The `Last-Modified` of `content` served at `now`. A change dates the
    /// new content at least a second after the old, so that two versions
    /// never share a date (HTTP dates have whole seconds).
    fn stamp(&self, content: &[u8], now: u64) -> u64 {
        let digest = digest(content);
        let mut seen = self.stamped.lock().unwrap_or_else(|p| p.into_inner());
        let at = match *seen {
            Some((d, at)) if d == digest => return at,
            Some((_, at)) => now.max(at + 1),
            None => now,
        };
        *seen = Some((digest, at));
        at
    }

    /// The manifest served still holds at STATEDB's `generation`.
    fn seen_at(&self, generation: Option<u64>) {
        if let Some(served) = self
            .served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            served.generation = generation;
        }
    }

    fn served(&self) -> Option<Served> {
        self.served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Whether `If-Modified-Since` in `headers` is `modified` or later.
fn not_modified_since(headers: &HeaderMap, modified: u64) -> bool {
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
        .is_some_and(|since| since.as_secs() >= modified)
}

pub async fn manifest(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (body, modified) = match state.config.downstream.clone() {
        Downstream::Local(local) => {
            let lorries = state.read(|tx| tx.queue_lorries()).await?;
            let text = tokio::task::spawn_blocking(move || {
                let mut map = Map::new();
                for lorry in lorries {
                    let dir = local.repo_dir(&lorry.path);
                    let Ok(refs) = local_refs(&dir) else {
                        continue;
                    };
                    let head = std::fs::read_to_string(dir.join("HEAD"))
                        .ok()
                        .map(|h| h.trim().to_owned());
                    entry(&mut map, &lorry.path, &refs, lorry.last_success, head);
                }
                Value::Object(map).to_string()
            })
            .await
            .map_err(ApiError::internal)?;
            publish(&state, text, None).await?
        }
        _ => {
            // Read before the transactions below, which then see at least
            // the state it stands for.
            let generation = state.db.generation().ok();
            let served = state.manifest_clock.served();
            match served {
                // Nothing written since: not even the marker is read.
                Some(served)
                    if served.marker.is_some()
                        && generation.is_some()
                        && served.generation == generation =>
                {
                    (served.body, served.modified)
                }
                served => {
                    let marker = state.read(|tx| tx.manifest_marker()).await?;
                    match served {
                        Some(served) if served.marker.as_ref() == Some(&marker) => {
                            state.manifest_clock.seen_at(generation);
                            (served.body, served.modified)
                        }
                        _ => {
                            let (marker, mirrors) = state
                                .read(|tx| Ok((tx.manifest_marker()?, tx.published_mirrors()?)))
                                .await?;
                            let text = tokio::task::spawn_blocking(move || remote_text(&mirrors))
                                .await
                                .map_err(ApiError::internal)?;
                            publish(&state, text, Some((marker, generation))).await?
                        }
                    }
                }
            }
        }
    };
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(modified));
    if not_modified_since(&headers, modified) {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::LAST_MODIFIED, last_modified)],
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::LAST_MODIFIED, last_modified),
        ],
        body,
    )
        .into_response())
}

/// The manifest entry of `path` with `refs`, unless it has none.
fn entry(
    map: &mut Map<String, Value>,
    path: &str,
    refs: &[(String, String)],
    last_success: Option<i64>,
    head: Option<String>,
) {
    let Some(fp) = fingerprint(refs) else {
        return;
    };
    map.insert(
        format!("/{path}.git"),
        json!({
            "fingerprint": fp,
            "modified": last_success.unwrap_or(0),
            "head": head,
            "reference": null,
        }),
    );
}

/// A remote downstream's manifest text from what the jobs reported.
fn remote_text(mirrors: &[PublishedMirror]) -> String {
    let mut map = Map::new();
    for mirror in mirrors {
        let head = mirror.head.as_ref().map(|h| format!("ref: refs/heads/{h}"));
        entry(
            &mut map,
            &mirror.path,
            &mirror.refs,
            mirror.last_success,
            head,
        );
    }
    Value::Object(map).to_string()
}

/// Dates, compresses and records `text` (built at `marker`, read at or
/// after STATEDB's generation), and writes
/// it to `--manifest-file`, unless it is the text last served: then the
/// body already made is used again. Answers the body and its date.
async fn publish(
    state: &AppState,
    text: String,
    marker: Option<(String, Option<u64>)>,
) -> Result<(Bytes, u64), ApiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let modified = state.manifest_clock.stamp(text.as_bytes(), now);
    let digest = digest(text.as_bytes());
    let body = match state.manifest_clock.served() {
        Some(served) if served.digest == digest => served.body,
        _ => {
            let body = tokio::task::spawn_blocking(move || {
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(text.as_bytes())?;
                gz.finish()
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
            let body = Bytes::from(body);
            if let Some(file) = &state.config.manifest_file
                && let Err(err) = crate::pages::write_atomically(file, body.to_vec()).await
            {
                tracing::warn!(file = %file.display(), %err, "cannot write the manifest file");
            }
            body
        }
    };
    *state
        .manifest_clock
        .served
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(Served {
        generation: marker.as_ref().and_then(|(_, g)| *g),
        marker: marker.map(|(m, _)| m),
        digest,
        body: body.clone(),
        modified,
    });
    Ok((body, modified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_dated_after_the_last_one_and_the_same_content_keeps_its_date() {
        let clock = ManifestClock::default();
        assert_eq!(clock.stamp(b"one", 100), 100);
        assert_eq!(clock.stamp(b"one", 150), 100);
        // Changed within the same second as the last date: one later.
        assert_eq!(clock.stamp(b"two", 100), 101);
        assert_eq!(clock.stamp(b"three", 200), 200);
        assert_eq!(clock.stamp(b"three", 300), 200);
    }

    #[test]
    fn if_modified_since_is_honoured_only_when_not_older() {
        let mut headers = HeaderMap::new();
        assert!(!not_modified_since(&headers, 0));
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_000_000));
        headers.insert(header::IF_MODIFIED_SINCE, date.parse().expect("header"));
        assert!(not_modified_since(&headers, 1_000_000));
        assert!(not_modified_since(&headers, 999_999));
        assert!(!not_modified_since(&headers, 1_000_001));
        headers.insert(
            header::IF_MODIFIED_SINCE,
            "not a date".parse().expect("header"),
        );
        assert!(!not_modified_since(&headers, 0));
    }
}
