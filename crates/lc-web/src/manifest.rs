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

use std::io::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lc_hosts::Downstream;
use lc_hosts::upstream::grokmirror::{fingerprint, local_refs};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::ApiError;

pub async fn manifest(State(state): State<AppState>) -> Result<Response, ApiError> {
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
        gz.finish()
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    if let Some(file) = &state.config.manifest_file
        && let Err(err) = crate::pages::write_atomically(file, body.clone()).await
    {
        tracing::warn!(file = %file.display(), %err, "cannot write the manifest file");
    }
    Ok(([(header::CONTENT_TYPE, "application/gzip")], body).into_response())
}
