//! Traces: OpenTelemetry spans exported over OTLP/HTTP (protobuf) when the
//! standard variables ask for it.
//!
//! On when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (a base, `/v1/traces` appended) is set and
//! not empty, unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the service
//! (default: the program's name); `OTEL_EXPORTER_OTLP_HEADERS` and
//! `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, default 10 s) are honoured.
//! Off, there is no exporter and no OpenTelemetry layer: the spans are the
//! log's and cost what they did.
//!
//! Exporting never holds up a request or a job: finished spans go into the
//! SDK's batch processor (a queue of 2,048, dropped when full), whose own
//! thread posts them; a collector that fails is logged at most once a
//! minute ([`Quiet`]). Only spans of our crates (targets `lc_*`) and their
//! warnings and errors are exported, never their other log lines.
//!
//! The W3C `traceparent` header carries a trace from the minion to the
//! webapp: [`traceparent`] gives the one of a span, [`continue_trace`] makes
//! a span the child of one received.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::{Resource, error::OTelSdkResult};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::{Layer, Registry};

/// How long a stopping program waits for its last spans to be sent.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// A failing collector is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The OTLP request timeout when `OTEL_EXPORTER_OTLP_TIMEOUT` is not set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";

/// Holds the exporter while the program runs; dropping it sends the spans
/// still queued (waiting at most a few seconds) and stops the exporter.
#[derive(Debug, Default)]
#[must_use = "dropping Traces stops the exporter"]
pub struct Traces {
    provider: Option<SdkTracerProvider>,
}

impl Traces {
    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown_with_timeout(SHUTDOWN_WAIT)
        {
            tracing::warn!(error = %err, "traces: the last spans may not have been sent");
        }
    }
}

/// Whether the environment asks for traces (see the module's doc).
pub fn configured() -> bool {
    configured_by(|name| std::env::var(name).ok())
}

fn configured_by(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled && (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// The OpenTelemetry layer (type-erased, over the registry the logging
/// layers share).
pub(crate) type SpanLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The OpenTelemetry layer and the guard that keeps its exporter, or none
/// when traces are not [`configured`]. `service` is the default
/// `service.name`.
pub(crate) fn layer(service: &str) -> anyhow::Result<(Option<SpanLayer>, Traces)> {
    if !configured() {
        return Ok((None, Traces::default()));
    }
    let timeout = std::env::var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .ok()
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    use opentelemetry_otlp::WithHttpConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(BlockingClient::new(timeout))
        .build()
        .map_err(|err| anyhow::anyhow!("OTEL_EXPORTER_OTLP_*: {err}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(Quiet::new(exporter))
        .with_resource(resource(service))
        .build();
    let tracer = provider.tracer("lorry-controller");
    let ours = filter_fn(|meta| {
        meta.target().starts_with("lc_")
            && if meta.is_span() {
                *meta.level() <= tracing::Level::DEBUG
            } else {
                *meta.level() <= tracing::Level::WARN
            }
    });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_filter(ours)
        .boxed();
    Ok((
        Some(layer),
        Traces {
            provider: Some(provider),
        },
    ))
}

/// `service.name` from `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`,
/// else `service`.
fn resource(service: &str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(service.to_owned())
            .build()
    }
}

/// The `traceparent` header value naming `span` as the parent, or `None`
/// when traces are off (or the span is disabled).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` (created and not yet entered) the child of the remote span
/// that `traceparent` names. A malformed value, or traces off, leaves the
/// span a root: a caller's header must never fail a request.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    // Errors: no OpenTelemetry layer (traces off) or a disabled span.
    let _ = span.set_parent(cx);
}

/// The exporter's HTTP client: our reqwest 0.12, blocking, used on the
/// batch processor's own thread (not a tokio one). opentelemetry-otlp's
/// built-in clients would bring reqwest 0.13 or hyper glue. Built on first
/// use, on that thread, since a blocking client may not be created or
/// dropped inside the webapp's runtime.
#[derive(Debug)]
struct BlockingClient {
    timeout: Duration,
    client: std::sync::OnceLock<Result<reqwest::blocking::Client, String>>,
}

impl BlockingClient {
    fn new(timeout: Duration) -> Self {
        BlockingClient {
            timeout,
            client: std::sync::OnceLock::new(),
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for BlockingClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self
            .client
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .timeout(self.timeout)
                    .build()
                    .map_err(|err| err.to_string())
            })
            .as_ref()
            .map_err(|err| format!("cannot build the OTLP client: {err}"))?;
        let (parts, body) = request.into_parts();
        let response = client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()
            // The URL may hold credentials: reqwest's error without it.
            .map_err(|err| err.without_url().to_string())?;
        let status = response.status();
        let body = response
            .bytes()
            .map_err(|err| err.without_url().to_string())?;
        Ok(http::Response::builder().status(status).body(body)?)
    }
}

/// The OTLP exporter, with failures logged at most once per [`WARN_EVERY`]
/// (with how many batches failed since) rather than once per batch.
#[derive(Debug)]
struct Quiet<E> {
    inner: E,
    failures: Mutex<(Option<Instant>, u64)>,
}

impl<E> Quiet<E> {
    fn new(inner: E) -> Self {
        Quiet {
            inner,
            failures: Mutex::new((None, 0)),
        }
    }

    fn note(&self, result: &OTelSdkResult) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let (last, count) = &mut *failures;
        match result {
            Ok(()) => {
                if *count > 0 && last.is_some() {
                    tracing::info!(
                        failed_batches = *count,
                        "traces: the collector takes spans again"
                    );
                }
                *last = None;
                *count = 0;
            }
            Err(err) => {
                *count += 1;
                if last.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(error = %err, failed_batches = *count, "traces: cannot send spans to the collector; they are dropped (at most one such line a minute)");
                    *last = Some(Instant::now());
                }
            }
        }
    }
}

impl<E: SpanExporter> SpanExporter for Quiet<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.note(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_only_by_an_endpoint_and_not_when_disabled() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(!configured_by(env(&[])));
        assert!(!configured_by(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(!configured_by(env(&[("OTEL_SERVICE_NAME", "x")])));
        assert!(configured_by(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(configured_by(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!configured_by(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])));
        assert!(!configured_by(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    #[test]
    fn without_the_layer_there_is_no_traceparent_and_continuing_is_harmless() {
        let span = tracing::info_span!("request");
        assert_eq!(traceparent(&span), None);
        continue_trace(
            &span,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        );
        continue_trace(&span, "garbage");
    }

    #[test]
    fn a_continued_span_is_in_the_callers_trace_and_names_itself_as_parent() {
        use tracing_subscriber::layer::SubscriberExt;
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
            let span = tracing::info_span!("request");
            continue_trace(&span, incoming);
            let own = traceparent(&span).expect("a traceparent once the layer is on");
            let parts: Vec<&str> = own.split('-').collect();
            assert_eq!(parts.len(), 4, "{own}");
            assert_eq!(parts[1], "0af7651916cd43dd8448eb211c80319c", "same trace");
            assert_ne!(parts[2], "b7ad6b7169203331", "its own span id");
            assert_eq!(parts[3], "01", "sampled, as the caller said");
            // A child inherits the trace; a malformed header starts a new one.
            let child = span.in_scope(|| tracing::info_span!("child"));
            let child_tp = traceparent(&child).expect("child");
            assert!(
                child_tp.contains("0af7651916cd43dd8448eb211c80319c"),
                "{child_tp}"
            );
            let lone = tracing::info_span!("lone");
            continue_trace(&lone, "00-zz-yy-01");
            let lone_tp = traceparent(&lone).expect("lone");
            assert!(
                !lone_tp.contains("0af7651916cd43dd8448eb211c80319c"),
                "{lone_tp}"
            );
        });
    }
}
