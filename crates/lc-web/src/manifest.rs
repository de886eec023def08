//! `GET /1.0/manifest.js.gz`: a grokmirror manifest of the mirrors we
//! keep, so that a grokmirror replica (or another lorry-controller with a
//! `grokmirror` Upstream Host) downstream of us asks only for what changed.
//!
//! Each lorry is an entry `/<path>.git` with `fingerprint` computed as
//! grokmirror computes it (`lc_hosts::upstream::grokmirror::fingerprint`,
//! SHA-1 of `git show-ref`), `modified` (its last success), `head` and
//! `reference: null`. Only a `local` Downstream Host is read (its bare
//! repositories, on a blocking thread); a repository not created yet, or
//! without refs, is left out, as grokmirror leaves it out. Also written to
//! `--manifest-file` atomically on each request, like the status page.
//!
//! `Last-Modified` is when the content last changed as this webapp has
//! seen it ([`ManifestClock`]); a request whose `If-Modified-Since` is not
//! older gets 304, so an unchanged fleet costs a replica one small answer.
//! grok-pull needs the header and sends the condition.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lc_hosts::Downstream;
use lc_hosts::upstream::grokmirror::{fingerprint, local_refs};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;

/// When the published manifest's content last changed, in whole seconds
/// since the epoch, with a digest of that content. Kept in memory: after a
/// restart the first answer is dated then, and replicas read it once more.
#[derive(Debug, Default)]
pub struct ManifestClock(Mutex<Option<(u64, u64)>>);

impl ManifestClock {
    /// The `Last-Modified` of `content` served at `now`. A change dates the
    /// new content at least a second after the old, so that two versions
    /// never share a date (HTTP dates have whole seconds).
    fn stamp(&self, content: &[u8], now: u64) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        content.hash(&mut hasher);
        let digest = hasher.finish();
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let at = match *seen {
            Some((d, at)) if d == digest => return at,
            Some((_, at)) => now.max(at + 1),
            None => now,
        };
        *seen = Some((digest, at));
        at
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
    let Downstream::Local(local) = state.config.downstream.clone() else {
        return Err(ApiError::NotFound(format!(
            "no manifest: the {} Downstream Host is not read for one (only local)",
            state.config.downstream.kind()
        )));
    };
    let lorries = state.read(|tx| tx.queue_lorries()).await?;
    let body = tokio::task::spawn_blocking(move || {
        let mut map = Map::new();
        for lorry in lorries {
            let dir = local.repo_dir(&lorry.path);
            let Ok(refs) = local_refs(&dir) else {
                continue;
            };
            let Some(fp) = fingerprint(&refs) else {
                continue;
            };
            let head = std::fs::read_to_string(dir.join("HEAD"))
                .ok()
                .map(|h| h.trim().to_owned());
            map.insert(
                format!("/{}.git", lorry.path),
                json!({
                    "fingerprint": fp,
                    "modified": lorry.last_success.unwrap_or(0),
                    "head": head,
                    "reference": null,
                }),
            );
        }
        let text = Value::Object(map).to_string();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes())?;
        Ok::<_, std::io::Error>((text, gz.finish()?))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let (text, body) = body;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let modified = state.manifest_clock.stamp(text.as_bytes(), now);
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(modified));
    if let Some(file) = &state.config.manifest_file
        && let Err(err) = crate::pages::write_atomically(file, body.clone()).await
    {
        tracing::warn!(file = %file.display(), %err, "cannot write the manifest file");
    }
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
