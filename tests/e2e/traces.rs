//! Traces over OTLP/HTTP: the real webapp and a real minion running the
//! real `lorry` against a `git http-backend` upstream, both exporting to
//! an OTLP receiver in this test (POST /v1/traces, protobuf decoded with
//! opentelemetry-proto). One job's give-me-job, job-updates and the job's
//! span form one trace, linked across the two processes by `traceparent`;
//! no span carries the minion token or the upstream's password; and a
//! collector that refuses or never answers changes nothing for the job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::json;

use crate::common::http_backend::{HttpServer, serve_http_with_auth};
use crate::common::{
    READY_TIMEOUT, RealMinion, Webapp, closed_port, git, one_commit_upstream, wait_for,
};
use crate::doubles::Server;

const MINION_TOKEN: &str = "minion-token-5e1d0c";
const PASSWORD: &str = "UPSTREAM-PASSWORD-c41b";

/// One exported span, as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    name: String,
    kind: i32,
    attributes: Vec<(String, String)>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn text(value: Option<&Any>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// An OTLP/HTTP receiver: decodes each protobuf export request, keeps its
/// spans and every attribute (resource's too), answers as a collector does.
struct Receiver {
    server: Server,
    spans: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Got>>> = Arc::default();
        let kept = Arc::clone(&spans);
        let router = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let kept = Arc::clone(&kept);
                    async move {
                        // OTLP/HTTP with the binary protobuf encoding.
                        assert_eq!(
                            headers.get("content-type").and_then(|v| v.to_str().ok()),
                            Some("application/x-protobuf")
                        );
                        let request =
                            ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
                        let mut kept = kept.lock().expect("lock");
                        for resource in request.resource_spans {
                            let resource_attrs = resource
                                .resource
                                .map(|r| pairs(&r.attributes))
                                .unwrap_or_default();
                            let service = resource_attrs
                                .iter()
                                .find(|(k, _)| k == "service.name")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            for scope in resource.scope_spans {
                                for span in scope.spans {
                                    let mut attributes = pairs(&span.attributes);
                                    attributes.extend(resource_attrs.iter().cloned());
                                    for event in &span.events {
                                        attributes.push(("event".into(), event.name.clone()));
                                        attributes.extend(pairs(&event.attributes));
                                    }
                                    kept.push(Got {
                                        service: service.clone(),
                                        trace: span.trace_id,
                                        id: span.span_id,
                                        parent: span.parent_span_id,
                                        name: span.name,
                                        kind: span.kind,
                                        attributes,
                                    });
                                }
                            }
                        }
                        (
                            [("content-type", "application/x-protobuf")],
                            axum::body::Bytes::new(),
                        )
                    }
                },
            ),
        );
        Receiver {
            server: Server::start(router),
            spans,
        }
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().expect("lock").clone()
    }
}

/// A webapp with a minion token and one lorry whose upstream URL holds a
/// password, and the minion options that send the token.
fn scene(dir: &std::path::Path, env: &[(&str, &str)]) -> (Webapp, Vec<String>, HttpServer) {
    let upstreams = dir.join("upstreams");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    one_commit_upstream(&upstreams, &work, "traced");
    let (http, port) = serve_http_with_auth(&upstreams, dir, Some(&format!("mirror:{PASSWORD}")));
    let token = dir.join("minion.token");
    std::fs::write(&token, format!("{MINION_TOKEN}\n")).expect("token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let webapp = Webapp::init(dir)
        .with_args(&[format!("--minion-token-file={}", token.display())])
        .with_env(env)
        .start();
    let confgit = dir.join("confgit");
    std::fs::create_dir_all(confgit.join("lorries")).expect("mkdir");
    std::fs::write(
        confgit.join("lorries/t.lorry"),
        json!({"traced": {"type": "git",
            "url": format!("http://mirror:{PASSWORD}@127.0.0.1:{port}/traced.git")}})
        .to_string(),
    )
    .expect("t.lorry");
    webapp.configure(&json!([
        {"type": "lorries", "prefix": "tr", "interval": "1h", "globs": ["lorries/*.lorry"]},
    ]));
    let minion_args = vec![format!("--webapp-token-file={}", token.display())];
    (webapp, minion_args, http)
}

fn wait_for_job_end(webapp: &Webapp) -> serde_json::Value {
    wait_for("job 1 to end", READY_TIMEOUT, || {
        let job = webapp.get("/1.0/job/1");
        (job.status == 200 && job.body["exit"] != "no").then_some(job.body)
    })
}

#[test]
fn a_jobs_requests_and_run_form_one_trace_across_minion_and_webapp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start();
    let endpoint = receiver.server.url();
    let (webapp, minion_args, _http) = scene(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    // A client's malformed traceparent is ignored, never an error.
    let client = reqwest::blocking::Client::new();
    let answer = client
        .get(webapp.url("/1.0/status"))
        .header("traceparent", "00-not-a-trace-01")
        .send()
        .expect("status");
    assert_eq!(answer.status(), 200);

    let minion = RealMinion::start_with(
        &webapp,
        dir.path(),
        &minion_args,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "minion-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    let job = wait_for_job_end(&webapp);
    assert_eq!(job["exit"], "0", "{job}");
    // Stopping sends what is still queued.
    drop(minion);
    webapp.stop();

    let spans = receiver.spans();
    let by_id: HashMap<&[u8], &Got> = spans.iter().map(|s| (s.id.as_slice(), s)).collect();
    let job_span = spans
        .iter()
        .find(|s| s.name == "job" && s.attr("job_id") == Some("1"))
        .unwrap_or_else(|| panic!("no span of job 1 in {spans:#?}"));
    assert_eq!(job_span.service, "minion-under-test", "OTEL_SERVICE_NAME");
    assert_eq!(job_span.attr("path"), Some("tr/traced"));
    let trace = &job_span.trace;
    let in_trace: Vec<&Got> = spans.iter().filter(|s| &s.trace == trace).collect();

    // The job's span is the child of the give-me-job that brought it.
    let asked = by_id
        .get(job_span.parent.as_slice())
        .unwrap_or_else(|| panic!("the job span's parent was not exported: {in_trace:#?}"));
    assert_eq!(asked.name, "POST /1.0/give-me-job");
    assert_eq!(asked.kind, SpanKind::Client as i32);
    assert_eq!(asked.service, "minion-under-test");
    assert_eq!(&asked.trace, trace);
    assert!(asked.parent.is_empty(), "the give-me-job starts the trace");

    // Each minion request has the webapp's server span as its child.
    let served = |client: &Got| -> Vec<&Got> {
        in_trace
            .iter()
            .copied()
            .filter(|s| s.parent == client.id && s.kind == SpanKind::Server as i32)
            .collect()
    };
    let server = served(asked);
    assert_eq!(server.len(), 1, "{in_trace:#?}");
    assert_eq!(server[0].name, "POST /1.0/give-me-job");
    assert_eq!(server[0].service, "lorry-controller-webapp");
    assert_eq!(server[0].attr("http.route"), Some("/1.0/give-me-job"));
    assert_eq!(server[0].attr("http.response.status_code"), Some("200"));

    // The job-updates (running ones and the final report) are the job
    // span's children, each served in the same trace.
    let updates: Vec<&Got> = in_trace
        .iter()
        .copied()
        .filter(|s| s.parent == job_span.id && s.name == "POST /1.0/job-update")
        .collect();
    assert!(!updates.is_empty(), "{in_trace:#?}");
    for update in &updates {
        assert_eq!(update.kind, SpanKind::Client as i32);
        let server = served(update);
        assert_eq!(server.len(), 1, "{update:#?} in {in_trace:#?}");
        assert_eq!(server[0].name, "POST /1.0/job-update");
        assert_eq!(server[0].attr("http.response.status_code"), Some("200"));
    }
    // The webapp answered every job-update of job 1 in this one trace.
    let all_updates = spans
        .iter()
        .filter(|s| s.name == "POST /1.0/job-update" && s.kind == SpanKind::Server as i32)
        .count();
    assert_eq!(all_updates, updates.len(), "{spans:#?}");

    // No span anywhere carries a secret.
    for span in &spans {
        for (key, value) in &span.attributes {
            for secret in [MINION_TOKEN, PASSWORD] {
                assert!(
                    !value.contains(secret) && !key.contains(secret),
                    "{secret} in {key}={value} of {span:#?}"
                );
            }
        }
        assert!(!span.name.contains(PASSWORD), "{span:#?}");
    }
}

#[test]
fn a_collector_that_refuses_or_never_answers_changes_nothing_for_the_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The webapp's collector accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    let refused_url = format!("http://127.0.0.1:{}", closed_port());
    let (webapp, minion_args, _http) = scene(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", silent_url.as_str()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    // The minion's collector refuses connections: every batch fails.
    let minion = RealMinion::start_with(
        &webapp,
        dir.path(),
        &minion_args,
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", refused_url.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let job = wait_for_job_end(&webapp);
    assert_eq!(job["exit"], "0", "{job}");
    let pushed = git(
        &dir.path().join("downstream/tr/traced.git"),
        &["rev-parse", "refs/heads/main"],
    );
    assert_eq!(pushed.trim().len(), 40, "{pushed}");
    // Idle polls go on meanwhile, each failing to export: one warning.
    let log = dir.path().join("minion.log");
    wait_for("the minion's export warning", READY_TIMEOUT, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("cannot send spans"))
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(minion);
    webapp.stop();
    let log = std::fs::read_to_string(&log).expect("minion log");
    assert_eq!(
        log.matches("cannot send spans").count(),
        1,
        "at most one warning a minute:\n{log}"
    );
    assert!(
        !log.contains(MINION_TOKEN) && !log.contains(PASSWORD),
        "{log}"
    );
    drop(silent);
}
