//! Every URL the webapp serves.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::AppState;
use crate::error::ApiError;
use crate::{
    api, backup, confgit, events, hosts, manifest, metrics, pages, provenance, security, webhooks,
};
use std::sync::Arc;

/// Largest POST body of job-update, which carries job output (every other
/// route has `Security::body_limit`).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/1.0/status", get(pages::status))
        .route("/1.0/status-html", get(pages::status_html))
        .route("/1.0/manifest.js.gz", get(manifest::manifest))
        .route("/1.0/lorry-html/{*path}", get(pages::lorry_html))
        .route("/1.0/job-html/{job_id}", get(pages::job_html))
        .route("/1.0/list-jobs-html", get(pages::list_jobs_html))
        .route("/1.0/snapshots-html", get(pages::snapshots_html))
        .route("/1.0/job/{job_id}/output", get(pages::job_output))
        .route("/lc-static/{*file}", get(pages::static_file))
        .route("/1.0/list-queue", get(api::list_queue))
        .route("/1.0/start-queue", post(api::start_queue))
        .route("/1.0/stop-queue", post(api::stop_queue))
        .route("/1.0/move-to-top", post(api::move_to_top))
        .route("/1.0/move-to-bottom", post(api::move_to_bottom))
        .route("/1.0/lorry/{*path}", get(api::lorry))
        .route("/1.0/lorry-refs/{*path}", get(provenance::lorry_refs))
        .route("/1.0/lorry-history/{*path}", get(provenance::lorry_history))
        .route(
            "/1.0/snapshots",
            get(provenance::list_snapshots).post(provenance::create_snapshot),
        )
        .route("/1.0/snapshots/{name}", get(provenance::snapshot))
        .route(
            "/1.0/snapshots/{a}/diff/{b}",
            get(provenance::snapshot_diff),
        )
        .route(
            "/1.0/snapshots/{name}/delete",
            post(provenance::delete_snapshot),
        )
        .route("/1.0/channels", get(provenance::list_channels))
        .route(
            "/1.0/channels/{channel}",
            get(provenance::channel).post(provenance::promote),
        )
        .route("/1.0/list-running-jobs", get(api::list_running_jobs))
        .route("/1.0/list-jobs", get(api::list_jobs))
        .route("/1.0/job/{job_id}", get(api::job))
        .route("/1.0/stop-job", post(api::stop_job))
        .route("/1.0/remove-job", post(api::remove_job))
        .route("/1.0/remove-ghost-jobs", post(api::remove_ghost_jobs))
        .route("/1.0/remove-old-jobs", post(api::remove_old_jobs))
        .route("/1.0/get-max-jobs", get(api::get_max_jobs))
        .route("/1.0/set-max-jobs", post(api::set_max_jobs))
        .route("/1.0/give-me-job", post(api::give_me_job))
        .route("/1.0/job-update", post(api::job_update))
        .route("/1.0/pretend-time", post(api::pretend_time))
        // read-configuration: see confgit.rs
        .route("/1.0/read-configuration", post(confgit::handler))
        .route("/1.0/ls-troves", post(hosts::ls_troves))
        .route("/1.0/force-ls-troves", post(hosts::force_ls_troves))
        .route("/1.0/backup", post(backup::backup))
        .route("/1.0/events", get(events::events))
        .route("/1.0/webhooks", get(webhooks::webhooks))
        .route("/1.0/health-check", get(api::health_check))
        .route("/1.0/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Host, cross-site, token and body checks before any handler runs.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.security),
            security::guard,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not accept {method}", uri.path()))
}
