//! Provenance: `GET /1.0/lorry-refs/<path>?at=<time>` (the refs a lorry's
//! mirror held at a time) and `GET /1.0/lorry-history/<path>` (its ref
//! changes, newest first, paged), from the ref ledger in STATEDB.

use axum::Json;
use axum::extract::{Path as UrlPath, RawQuery, State};
use lc_api::{LorryHistory, LorryRefs};

use crate::AppState;
use crate::error::ApiError;

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
