//! `POST /1.0/backup`: a consistent copy of STATEDB, streamed to the caller.
//!
//! STATEDB holds the Upstream Hosts' tokens, so the copy is for the admin
//! token alone: with no admin token configured the endpoint is refused
//! (403) whoever asks, and with one the access layer in front of every
//! route has already checked it. The copy is made by SQLite (`VACUUM INTO`,
//! see `lc_core::db::backup`) into a private (0700) temporary directory
//! beside STATEDB, opened, and unlinked before the first byte is sent: it
//! goes only to the client, never to a path a client names, and nothing is
//! left behind if the client goes away.

use std::io;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::io::AsyncReadExt;

use crate::AppState;
use crate::error::ApiError;

/// Bytes read from the copy per chunk of the answer.
const CHUNK: usize = 256 * 1024;

pub async fn backup(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.security.tokens.admin.is_none() {
        return Err(ApiError::Forbidden(
            "backups are refused when no admin token is configured: STATEDB holds the hosts' \
             tokens (start the webapp with --admin-token-file)"
                .to_owned(),
        ));
    }
    let db = std::sync::Arc::clone(&state.db);
    let (file, len, stamp) = tokio::task::spawn_blocking(move || {
        let dir = match db.path().parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".lorry-controller-backup-")
            .tempdir_in(&dir)
            .map_err(|e| ApiError::internal(format!("backup: {}: {e}", dir.display())))?;
        let copy = tmp.path().join("statedb.sqlite");
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        db.backup_to(&copy)?;
        let file = std::fs::File::open(&copy)
            .map_err(|e| ApiError::internal(format!("backup: {}: {e}", copy.display())))?;
        let len = file
            .metadata()
            .map_err(|e| ApiError::internal(format!("backup: {}: {e}", copy.display())))?
            .len();
        // The open file outlives its name: removed now, read while sent.
        drop(tmp);
        Ok::<_, ApiError>((file, len, stamp))
    })
    .await
    .map_err(ApiError::internal)??;
    tracing::info!(bytes = len, "STATEDB backup sent");
    let file = tokio::fs::File::from_std(file);
    let body = stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.sqlite3".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"statedb-{stamp}.sqlite\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
