//! `GET /1.0/metrics`: Prometheus metrics.
//!
//! Two kinds: what the webapp counts as it serves (requests, their
//! latency, job durations), kept in memory since start-up; and what STATEDB
//! says at the moment of the scrape (the fleet: lorries by health, queue
//! depth, overdue lorries, per-lorry success time, failure streak and disk
//! usage). Lorry 2's fleet gauges keep their names so existing dashboards
//! work. The fleet's part is cheap at 100,000 lorries: see fleet.rs.

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lc_core::db::{FleetRow, FleetSnapshot};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::{ApiError, InternalDetail};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    endpoint: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    method: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// What the webapp counts as it runs. Cloning shares the counters.
#[derive(Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<EndpointLabels, Histogram>,
    job_durations: Family<ResultLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Family::default(),
            // 0.25 ms to about 4 s.
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
            }),
            // 1 s to about 1.5 days.
            job_durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 18))
            }),
        }
    }
}

impl Metrics {
    /// Records how long a job ran, once it has ended.
    pub fn observe_job(&self, seconds: i64, exit: i64) {
        let result = if exit == 0 { "success" } else { "failure" };
        self.job_durations
            .get_or_create(&ResultLabels { result })
            .observe(seconds.max(0) as f64);
    }
}

/// Middleware counting every request by the route it matched; it also
/// gives each request a tracing span (exported as a server span when traces
/// are on, the child of the caller's `traceparent`), and logs the detail
/// of an internal error, once (see `error.rs`).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let start = std::time::Instant::now();
    // A server span (OpenTelemetry's names): the route's template, never
    // the raw path or query, so no token or lorry path with secrets in it.
    let span = tracing::debug_span!(
        "request",
        otel.name = %format_args!("{method} {endpoint}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %endpoint,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if let Some(parent) = request
        .headers()
        .get(lc_startup::traces::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    {
        lc_startup::traces::continue_trace(&span, parent);
    }
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    if let Some(InternalDetail(detail)) = response.extensions().get::<InternalDetail>() {
        tracing::error!(%method, %endpoint, %detail, "internal error");
    }
    let metrics = &state.metrics;
    let status = response.status().as_u16();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            endpoint: endpoint.clone(),
            status,
        })
        .inc();
    metrics
        .latency
        .get_or_create(&EndpointLabels { method, endpoint })
        .observe(start.elapsed().as_secs_f64());
    response
}

/// Answers OpenMetrics to scrapers that ask for it (Prometheus does), and
/// the classic text format 0.0.4 to everyone else (curl, promtool).
///
/// The answer is three parts: the fleet's counts (per scrape: some move
/// with the clock), the per-lorry series (the bulk, rendered once per
/// state of STATEDB, see fleet.rs) and the webapp's own counters. The
/// per-lorry part holds gauges only, which both formats write alike.
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let fleet = state.fleet.metrics(&state).await?;
    let waiting = i64::try_from(state.queue.waiting()).unwrap_or(i64::MAX);
    let counts = fleet.health.at(state.db.now());
    let head = render_counts(&counts, waiting).map_err(ApiError::internal)?;
    let tail = render_counters(&state.metrics).map_err(ApiError::internal)?;
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, head, tail) = if wants_openmetrics {
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        (content_type, head, tail)
    } else {
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        (content_type, classic_text(&head), classic_text(&tail))
    };
    let parts = [
        Bytes::from(head),
        fleet.per_lorry.clone(),
        Bytes::from(tail),
    ];
    let length: usize = parts.iter().map(Bytes::len).sum();
    let body = Body::from_stream(futures_util::stream::iter(
        parts.map(Ok::<_, std::convert::Infallible>),
    ));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}

/// OpenMetrics text as the classic format reads it: a counter family is
/// named with its `_total` suffix in HELP and TYPE, and there is no `# EOF`.
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let gauge = Gauge::<i64>::default();
    gauge.set(value);
    registry.register(name, help, gauge);
}

/// The prefix of the webapp's own series.
const PREFIX: &str = "lorry_controller";

/// The per-lorry gauge families: name (after [`PREFIX`]) and help.
const PER_LORRY: [(&str, &str); 3] = [
    (
        "lorry_last_success_timestamp_seconds",
        "Unix time the lorry's last successful job ended",
    ),
    (
        "lorry_consecutive_failures",
        "Failed jobs of the lorry since its last success",
    ),
    (
        "lorry_disk_usage_bytes",
        "Working area of the lorry after its last job",
    ),
];

/// The fleet's counts (first part of the answer; OpenMetrics, without
/// `# EOF`). `waiting`: give-me-jobs held open now (see longpoll.rs).
fn render_counts(f: &FleetSnapshot, waiting: i64) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    gauge(
        &mut registry,
        "lorry2_total_lorries",
        "Lorries in the run queue",
        f.total,
    );
    gauge(
        &mut registry,
        "lorry2_total_lorries_successful",
        "Lorries whose last job succeeded",
        f.successful,
    );
    gauge(
        &mut registry,
        "lorry2_total_lorries_degraded",
        "Lorries whose last job failed after a recent success",
        f.degraded,
    );
    gauge(
        &mut registry,
        "lorry2_total_lorries_errors",
        "Lorries failing repeatedly or that never succeeded",
        f.errors,
    );
    let lc = registry.sub_registry_with_prefix(PREFIX);
    gauge(
        lc,
        "lorries_never_run",
        "Lorries that have not run yet",
        f.never_run,
    );
    gauge(lc, "jobs_running", "Jobs running now", f.running_jobs);
    gauge(
        lc,
        "give_me_job_waiting",
        "give-me-job requests held open until a job can start",
        waiting,
    );
    gauge(
        lc,
        "queue_depth",
        "Idle lorries that are due and waiting for a minion",
        f.waiting,
    );
    gauge(
        lc,
        "lorries_overdue",
        "Waiting lorries due for longer than their interval",
        f.overdue,
    );
    gauge(
        lc,
        "oldest_waiting_seconds",
        "How long the longest-waiting lorry has been due",
        f.oldest_waiting_seconds,
    );
    without_eof(&registry)
}

/// The webapp's own counters (last part of the answer, with `# EOF`).
fn render_counters(metrics: &Metrics) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    let lc = registry.sub_registry_with_prefix(PREFIX);
    lc.register(
        "job_duration_seconds",
        "Duration of ended jobs",
        metrics.job_durations.clone(),
    );
    lc.register(
        "http_requests",
        "HTTP requests served",
        metrics.requests.clone(),
    );
    lc.register(
        "http_request_duration_seconds",
        "Time to answer HTTP requests",
        metrics.latency.clone(),
    );
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

fn without_eof(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    encode(&mut text, registry)?;
    if text.ends_with("# EOF\n") {
        text.truncate(text.len() - "# EOF\n".len());
    }
    Ok(text)
}

/// The per-lorry series of `rows` (in their order), as prometheus-client
/// writes a `Family` of `Gauge`s labelled `path`: HELP (with its added
/// full stop) and TYPE lines, then a sample per lorry that has a value; a
/// family without samples is not written at all. Written here rather than
/// through a `Family` because at 100,000 lorries the family's map of
/// 300,000 labels cost most of a scrape;
/// `per_lorry_text_is_what_prometheus_client_writes` holds the two equal.
pub fn per_lorry_text(rows: &[FleetRow]) -> Result<String, std::fmt::Error> {
    use std::fmt::Write;
    let mut text = String::with_capacity(rows.iter().map(|r| r.path.len() + 60).sum::<usize>() * 3);
    for (i, (name, help)) in PER_LORRY.into_iter().enumerate() {
        let value = |row: &FleetRow| match i {
            0 => row.last_success,
            1 => Some(row.consecutive_failures),
            _ => row.disk_usage,
        };
        if !rows.iter().any(|row| value(row).is_some()) {
            continue;
        }
        write!(
            text,
            "# HELP {PREFIX}_{name} {help}.\n# TYPE {PREFIX}_{name} gauge\n"
        )?;
        for row in rows {
            let Some(value) = value(row) else { continue };
            text.push_str(PREFIX);
            text.push('_');
            text.push_str(name);
            text.push_str("{path=\"");
            escape_label_value(&mut text, &row.path);
            writeln!(text, "\"}} {value}")?;
        }
    }
    Ok(text)
}

/// A label value as the exposition formats escape it (and
/// prometheus-client does): backslash, double quote and line feed.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lc_core::db::LorryHealth;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct LorryLabels {
        path: String,
    }

    /// The whole answer as it was rendered before the per-lorry part was
    /// written by hand: every series through prometheus-client. The
    /// reference the new rendering is held to.
    fn reference_render(
        metrics: &Metrics,
        fleet: &FleetSnapshot,
        waiting: i64,
    ) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        let f = fleet;
        gauge(
            &mut registry,
            "lorry2_total_lorries",
            "Lorries in the run queue",
            f.total,
        );
        gauge(
            &mut registry,
            "lorry2_total_lorries_successful",
            "Lorries whose last job succeeded",
            f.successful,
        );
        gauge(
            &mut registry,
            "lorry2_total_lorries_degraded",
            "Lorries whose last job failed after a recent success",
            f.degraded,
        );
        gauge(
            &mut registry,
            "lorry2_total_lorries_errors",
            "Lorries failing repeatedly or that never succeeded",
            f.errors,
        );
        let lc = registry.sub_registry_with_prefix("lorry_controller");
        gauge(
            lc,
            "lorries_never_run",
            "Lorries that have not run yet",
            f.never_run,
        );
        gauge(lc, "jobs_running", "Jobs running now", f.running_jobs);
        gauge(
            lc,
            "give_me_job_waiting",
            "give-me-job requests held open until a job can start",
            waiting,
        );
        gauge(
            lc,
            "queue_depth",
            "Idle lorries that are due and waiting for a minion",
            f.waiting,
        );
        gauge(
            lc,
            "lorries_overdue",
            "Waiting lorries due for longer than their interval",
            f.overdue,
        );
        gauge(
            lc,
            "oldest_waiting_seconds",
            "How long the longest-waiting lorry has been due",
            f.oldest_waiting_seconds,
        );

        let last_success = Family::<LorryLabels, Gauge>::default();
        let failures = Family::<LorryLabels, Gauge>::default();
        let disk = Family::<LorryLabels, Gauge>::default();
        for lorry in &f.lorries {
            let labels = LorryLabels {
                path: lorry.path.clone(),
            };
            if let Some(t) = lorry.last_success {
                last_success.get_or_create(&labels).set(t);
            }
            failures
                .get_or_create(&labels)
                .set(lorry.consecutive_failures);
            if let Some(bytes) = lorry.disk_usage {
                disk.get_or_create(&labels).set(bytes);
            }
        }
        lc.register(
            "lorry_last_success_timestamp_seconds",
            "Unix time the lorry's last successful job ended",
            last_success,
        );
        lc.register(
            "lorry_consecutive_failures",
            "Failed jobs of the lorry since its last success",
            failures,
        );
        lc.register(
            "lorry_disk_usage_bytes",
            "Working area of the lorry after its last job",
            disk,
        );
        lc.register(
            "job_duration_seconds",
            "Duration of ended jobs",
            metrics.job_durations.clone(),
        );
        lc.register(
            "http_requests",
            "HTTP requests served",
            metrics.requests.clone(),
        );
        lc.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            metrics.latency.clone(),
        );
        let mut text = String::new();
        encode(&mut text, &registry)?;
        Ok(text)
    }

    #[test]
    fn renders_fleet_and_counters() {
        let metrics = Metrics::default();
        metrics.observe_job(30, 0);
        let labels = RequestLabels {
            method: "GET".into(),
            endpoint: "/1.0/status".into(),
            status: 200,
        };
        metrics.requests.get_or_create(&labels).inc();
        let fleet = FleetSnapshot {
            total: 2,
            successful: 1,
            errors: 1,
            lorries: vec![LorryHealth {
                path: "a/\"quoted\"".into(),
                last_success: Some(1_700_000_000),
                consecutive_failures: 0,
                disk_usage: Some(4096),
            }],
            ..FleetSnapshot::default()
        };
        let text = render(&metrics, &fleet, 0).expect("render");
        assert!(text.contains("lorry2_total_lorries 2\n"), "{text}");
        assert!(text.contains("lorry2_total_lorries_errors 1\n"), "{text}");
        assert!(
            text.contains(r#"lorry_controller_lorry_disk_usage_bytes{path="a/\"quoted\""} 4096"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lorry_controller_job_duration_seconds_count{result="success"} 1"#)
        );
        assert!(text.ends_with("# EOF\n"));

        let classic = classic_text(&text);
        assert!(!classic.contains("# EOF"));
        assert!(classic.contains("# TYPE lorry_controller_http_requests_total counter"));
    }

    /// The answer as the handler puts it together (OpenMetrics).
    fn render(
        metrics: &Metrics,
        fleet: &FleetSnapshot,
        waiting: i64,
    ) -> Result<String, std::fmt::Error> {
        let rows: Vec<FleetRow> = fleet
            .lorries
            .iter()
            .enumerate()
            .map(|(i, l)| FleetRow {
                rowid: i as i64,
                path: l.path.clone(),
                running: false,
                move_kind: 0,
                move_seq: 0,
                due: 0,
                interval: 0,
                last_exit: lc_core::db::LastExit::Never,
                last_success: l.last_success,
                consecutive_failures: l.consecutive_failures,
                disk_usage: l.disk_usage,
            })
            .collect();
        Ok(render_counts(fleet, waiting)? + &per_lorry_text(&rows)? + &render_counters(metrics)?)
    }

    /// The text cut at each `# HELP`, the lines of each family sorted (a
    /// `Family` writes its series in no particular order).
    fn families(text: &str) -> Vec<Vec<&str>> {
        let mut families: Vec<Vec<&str>> = Vec::new();
        for line in text.lines() {
            match families.last_mut() {
                Some(family) if !line.starts_with("# HELP ") => family.push(line),
                _ => families.push(vec![line]),
            }
        }
        for family in &mut families {
            family.sort_unstable();
        }
        families
    }

    /// Every name, label, value, HELP and TYPE line as prometheus-client
    /// wrote them all before, in the same order of families, for both
    /// formats: paths that need escaping, lorries without a success or a
    /// disk usage, an empty fleet.
    #[test]
    fn per_lorry_text_is_what_prometheus_client_writes() {
        let metrics = Metrics::default();
        metrics.observe_job(3, 1);
        metrics
            .requests
            .get_or_create(&RequestLabels {
                method: "POST".into(),
                endpoint: "/1.0/job-update".into(),
                status: 200,
            })
            .inc();
        let paths = [
            "up/plain",
            "back\\slash",
            "quo\"te",
            "new\nline",
            "ünïcode/€",
            "",
            "a b{c}=d,e",
        ];
        let fleet = FleetSnapshot {
            total: 7,
            successful: 3,
            degraded: 1,
            errors: 2,
            never_run: 1,
            running_jobs: 2,
            waiting: 4,
            overdue: 1,
            oldest_waiting_seconds: 77,
            lorries: paths
                .iter()
                .enumerate()
                .map(|(i, path)| LorryHealth {
                    path: (*path).to_owned(),
                    last_success: (i % 2 == 0).then_some(1_700_000_000 + i as i64),
                    consecutive_failures: i as i64 - 3,
                    disk_usage: (i % 3 != 0).then_some(1 << (i * 9)),
                })
                .collect(),
        };
        let empty = FleetSnapshot::default();
        // Families with no sample are not written: no success, no disk usage.
        let never_run = FleetSnapshot {
            total: 1,
            never_run: 1,
            lorries: vec![LorryHealth {
                path: "up/new".into(),
                last_success: None,
                consecutive_failures: 0,
                disk_usage: None,
            }],
            ..FleetSnapshot::default()
        };
        for (fleet, waiting) in [(&fleet, 5), (&empty, 0), (&never_run, 1)] {
            let ours = render(&metrics, fleet, waiting).expect("render");
            let reference = reference_render(&metrics, fleet, waiting).expect("reference");
            assert_eq!(families(&ours), families(&reference), "{ours}");
            assert_eq!(
                families(&classic_text(&ours)),
                families(&classic_text(&reference))
            );
        }
    }
}
