//! Provenance: `GET /1.0/lorry-refs/<path>?at=<time>` (the refs a lorry's
//! mirror held at a time) and `GET /1.0/lorry-history/<path>` (its ref
//! changes, newest first, paged), from the ref ledger in STATEDB; and
//! snapshots: `POST /1.0/snapshots`, `GET /1.0/snapshots`, `GET
//! /1.0/snapshots/<name>`, `GET /1.0/snapshots/<a>/diff/<b>`, `POST
//! /1.0/snapshots/<name>/delete`.

use axum::Json;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use lc_api::{
    ChannelInfo, Channels, LorryHistory, LorryRefs, Message, SnapshotDiff, SnapshotInfo,
    SnapshotManifest, Snapshots,
};
use lc_core::db::PinsTodo;

use crate::AppState;
use crate::api::Reply;
use crate::error::ApiError;
use crate::form::Fields;

type ApiResult<T> = Result<T, ApiError>;

/// History entries per page unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 100;

/// A time in a query: Unix seconds, RFC 3339 (`2026-03-03T12:00:00Z`), a
/// date (`2026-03-03`, its start in UTC) or the snapshot stamp form
/// `20260303T120000Z`.
pub(crate) fn parse_time(name: &str, text: &str) -> Result<i64, ApiError> {
    let text = text.trim();
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_second());
    }
    if let Ok(t) = jiff::Timestamp::strptime("%Y%m%dT%H%M%S%#z", text.replace('Z', "+0000")) {
        return Ok(t.as_second());
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>()
        && let Ok(z) = d.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(z.timestamp().as_second());
    }
    Err(ApiError::BadRequest(format!(
        "{name} must be Unix seconds, an RFC 3339 time, a date or YYYYMMDDTHHMMSSZ, not {text:?}"
    )))
}

fn query(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn number(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("{name} must be a whole number, not {value:?}")))
}

/// `GET /1.0/lorry-refs/<path>?at=`: `at` defaults to now.
pub async fn lorry_refs(
    State(state): State<AppState>,
    UrlPath(path): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<LorryRefs>> {
    let mut at = None;
    for (key, value) in query(raw.as_deref()) {
        match key.as_str() {
            "at" => at = Some(parse_time("at", &value)?),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?}; lorry-refs takes at"
                )));
            }
        }
    }
    let refs = state
        .read(move |tx| {
            tx.ledger_known(&path)?;
            let at = at.unwrap_or(tx.now());
            let since = tx.ledger_whole_at(&path, at)?;
            Ok(LorryRefs {
                refs: tx.ledger_refs(&path, at)?,
                complete: since.is_some(),
                since,
                at,
                path,
            })
        })
        .await?;
    Ok(Json(refs))
}

/// `GET /1.0/lorry-history/<path>?limit=&offset=`.
pub async fn lorry_history(
    State(state): State<AppState>,
    UrlPath(path): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<LorryHistory>> {
    let (mut limit, mut offset) = (DEFAULT_LIMIT, 0);
    for (key, value) in query(raw.as_deref()) {
        match key.as_str() {
            "limit" => limit = number("limit", &value)?,
            "offset" => offset = number("offset", &value)?,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?}; lorry-history takes limit and offset"
                )));
            }
        }
    }
    if !(1..=lc_core::db::HISTORY_MAX_LIMIT).contains(&limit) || offset < 0 {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {}, offset at least 0",
            lc_core::db::HISTORY_MAX_LIMIT
        )));
    }
    let history = state
        .read(move |tx| {
            tx.ledger_known(&path)?;
            let (changes, more) = tx.ledger_history(&path, limit, offset)?;
            Ok(LorryHistory {
                path,
                offset,
                limit,
                more,
                changes,
            })
        })
        .await?;
    Ok(Json(history))
}

/// `POST /1.0/snapshots`: `name` (default: now as `YYYYMMDDTHHMMSSZ`),
/// `prefix` (default: every lorry).
pub async fn create_snapshot(
    State(state): State<AppState>,
    fields: Fields,
) -> ApiResult<Reply<SnapshotInfo>> {
    let name = fields
        .optional("name")
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let prefix = fields.optional("prefix").unwrap_or_default().to_owned();
    let redirect = fields.redirect()?.map(str::to_owned);
    let info = state
        .write(move |tx| {
            let name = name.unwrap_or_else(|| stamp(tx.now()));
            tx.take_snapshot(&name, &prefix)
        })
        .await?;
    Ok(Reply::new(redirect.as_deref(), info))
}

/// A time as a snapshot's default name: `20260303T120000Z`.
fn stamp(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// `GET /1.0/snapshots`.
pub async fn list_snapshots(State(state): State<AppState>) -> ApiResult<Json<Snapshots>> {
    let snapshots = state.read(|tx| tx.snapshots()).await?;
    Ok(Json(Snapshots { snapshots }))
}

/// `GET /1.0/snapshots/<name>?format=json|repo|text`: the manifest as
/// JSON (lorry → ref → commit), as a `repo` tool manifest, or as `name
/// commit url` lines (see export.rs).
pub async fn snapshot(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let format = export_format(raw.as_deref())?;
    let manifest = state.read(move |tx| tx.snapshot_manifest(&name)).await?;
    exported(&state, manifest, &format)
}

/// The `format` of a manifest request: `json` (the default), `repo` or `text`.
fn export_format(raw: Option<&str>) -> Result<String, ApiError> {
    let mut format = "json".to_owned();
    for (key, value) in query(raw) {
        match key.as_str() {
            "format" => format = value,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {other:?}; a manifest takes format"
                )));
            }
        }
    }
    if matches!(format.as_str(), "json" | "repo" | "text") {
        Ok(format)
    } else {
        Err(ApiError::BadRequest(format!(
            "format must be json, repo or text, not {format:?}"
        )))
    }
}

/// `manifest` in `format`.
fn exported(state: &AppState, manifest: SnapshotManifest, format: &str) -> ApiResult<Response> {
    if format == "json" {
        return Ok(Json(manifest).into_response());
    }
    let base = fetch_base(state)?;
    Ok(if format == "repo" {
        (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            crate::export::repo_manifest(&manifest, &base),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            crate::export::text_manifest(&manifest, &base),
        )
            .into_response()
    })
}

/// Where consumers fetch the downstream repositories from:
/// `--export-fetch-base`, or for a local downstream its directory as a
/// `file://` URL.
fn fetch_base(state: &AppState) -> Result<String, ApiError> {
    if let Some(base) = &state.config.export_fetch_base {
        return Ok(base.clone());
    }
    match &state.config.downstream {
        lc_hosts::Downstream::Local(local) => Ok(format!("file://{}", local.base().display())),
        _ => Err(ApiError::Conflict(
            "exported manifests need --export-fetch-base (the URL consumers fetch the \
             downstream's repositories from)"
                .into(),
        )),
    }
}

/// `GET /1.0/snapshots/<a>/diff/<b>`.
pub async fn snapshot_diff(
    State(state): State<AppState>,
    UrlPath((a, b)): UrlPath<(String, String)>,
) -> ApiResult<Json<SnapshotDiff>> {
    Ok(Json(state.read(move |tx| tx.snapshot_diff(&a, &b)).await?))
}

/// `POST /1.0/snapshots/<name>/delete`.
pub async fn delete_snapshot(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    fields: Fields,
) -> ApiResult<Reply<Message>> {
    let redirect = fields.redirect()?.map(str::to_owned);
    let message = format!("Deleted snapshot {name}; its pins go at each lorry's next job");
    state.write(move |tx| tx.delete_snapshot(&name)).await?;
    Ok(Reply::new(redirect.as_deref(), Message { message }))
}

/// The spec `text` of `path` (`{path: spec}`) with the pins its job is to
/// make: `snapshot-pins` and `snapshot-unpins` are set from `todo`, or
/// removed when there is nothing to do (a CONFGIT cannot ask for pins).
pub(crate) fn with_pins(text: &str, path: &str, todo: &PinsTodo) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(text) else {
        return text.to_owned();
    };
    let Some(serde_json::Value::Object(spec)) = map.get_mut(path) else {
        return text.to_owned();
    };
    let had = spec.remove("snapshot-pins").is_some() | spec.remove("snapshot-unpins").is_some();
    if !todo.pin.is_empty() {
        spec.insert("snapshot-pins".into(), serde_json::json!(todo.pin));
    }
    if !todo.unpin.is_empty() {
        spec.insert("snapshot-unpins".into(), serde_json::json!(todo.unpin));
    }
    if !had && todo.pin.is_empty() && todo.unpin.is_empty() {
        return text.to_owned();
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(map))
        .unwrap_or_else(|_| text.to_owned())
}

/// `POST /1.0/channels/<channel>` with `snapshot=<name>` (admin): points
/// the channel at the snapshot.
pub async fn promote(
    State(state): State<AppState>,
    UrlPath(channel): UrlPath<String>,
    fields: Fields,
) -> ApiResult<Reply<ChannelInfo>> {
    let snapshot = fields.required("snapshot")?.to_owned();
    let redirect = fields.redirect()?.map(str::to_owned);
    let info = state
        .write(move |tx| tx.promote(&channel, &snapshot))
        .await?;
    Ok(Reply::new(redirect.as_deref(), info))
}

/// `GET /1.0/channels`.
pub async fn list_channels(State(state): State<AppState>) -> ApiResult<Json<Channels>> {
    let channels = state.read(|tx| tx.channels()).await?;
    Ok(Json(Channels { channels }))
}

/// `GET /1.0/channels/<channel>?format=json|repo|text`: the manifest of
/// the snapshot the channel points at.
pub async fn channel(
    State(state): State<AppState>,
    UrlPath(channel): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let format = export_format(raw.as_deref())?;
    let manifest = state
        .read(move |tx| {
            let info = tx.channel(&channel)?;
            tx.snapshot_manifest(&info.snapshot)
        })
        .await?;
    exported(&state, manifest, &format)
}
