//! `GET /1.0/metrics` against the real webapp, checked by `promtool`.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Webapp, git_lorry};
use lc_core::db::StateDb;

fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_describe_the_fleet_and_pass_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).start();
    app.pretend_time(1_700_000_000);
    app.seed(&[
        git_lorry("up/good", 3600, 600),
        git_lorry("up/bad", 3600, 600),
        git_lorry("up/new", 3600, 600),
    ]);
    for _ in 0..2 {
        let job = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
        let id = job["job_id"].to_string();
        let exit = if job["path"] == "up/good" { "0" } else { "1" };
        app.pretend_time(1_700_000_030);
        app.post_ok(
            "/1.0/job-update",
            &[("job_id", &id), ("exit", exit), ("disk_usage", "2048")],
        );
    }

    let answer = app.get("/1.0/metrics");
    assert_eq!(answer.status, 200);
    assert!(
        answer.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        answer.content_type
    );
    let text = answer.text;
    assert_eq!(metric(&text, "lorry2_total_lorries"), Some(3.0), "{text}");
    assert_eq!(metric(&text, "lorry2_total_lorries_successful"), Some(1.0));
    assert_eq!(metric(&text, "lorry2_total_lorries_errors"), Some(1.0));
    assert_eq!(metric(&text, "lorry2_total_lorries_degraded"), Some(0.0));
    assert_eq!(metric(&text, "lorry_controller_queue_depth"), Some(1.0));
    assert_eq!(metric(&text, "lorry_controller_jobs_running"), Some(0.0));
    assert_eq!(
        metric(
            &text,
            r#"lorry_controller_lorry_last_success_timestamp_seconds{path="up/good"}"#
        ),
        Some(1_700_000_030.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"lorry_controller_lorry_consecutive_failures{path="up/bad"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"lorry_controller_lorry_disk_usage_bytes{path="up/bad"}"#
        ),
        Some(2048.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"lorry_controller_job_duration_seconds_count{result="failure"}"#
        ),
        Some(1.0)
    );
    assert!(
        text.contains(r#"lorry_controller_http_requests_total{method="POST",endpoint="/1.0/give-me-job",status="200"} 2"#),
        "{text}"
    );

    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut promtool) = promtool else {
        panic!("promtool is missing: install Debian's prometheus package (.ci/run does)");
    };
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `/1.0/metrics` and `/1.0/list-queue` are kept between requests (see
/// lc-web fleet.rs): each answer must still be the one of the moment,
/// after writes of another process (which the webapp's own change
/// tracking cannot see: only STATEDB's generation tells) and as the
/// pretended clock moves with nothing written.
#[test]
fn kept_metrics_and_queue_follow_other_writers_and_the_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).start();
    app.pretend_time(50);
    // Never run: due at their interval (last run 0).
    app.seed(&[
        git_lorry("up/a", 100, 600),
        git_lorry("up/b", 200, 600),
        git_lorry("up/c", 400, 600),
    ]);
    let metrics = || app.get("/1.0/metrics").text;
    let text = metrics();
    assert_eq!(metric(&text, "lorry2_total_lorries"), Some(3.0), "{text}");
    assert_eq!(metric(&text, "lorry_controller_queue_depth"), Some(0.0));
    assert_eq!(app.queue(), ["up/a", "up/b", "up/c"]);
    // Asked again, unchanged: the same answers, from memory.
    assert_eq!(metric(&metrics(), "lorry2_total_lorries"), Some(3.0));
    assert_eq!(app.queue(), ["up/a", "up/b", "up/c"]);

    // Another process adds a lorry that is due and moves one to the bottom.
    app.seed(&[git_lorry("up/d", 10, 600)]);
    let other = StateDb::open(&app.statedb).expect("open STATEDB");
    other
        .write(|tx| tx.move_to_bottom("up/a"))
        .expect("other process");
    let text = metrics();
    assert_eq!(metric(&text, "lorry2_total_lorries"), Some(4.0), "{text}");
    assert_eq!(metric(&text, "lorry_controller_queue_depth"), Some(1.0));
    assert_eq!(
        metric(
            &text,
            r#"lorry_controller_lorry_consecutive_failures{path="up/d"}"#
        ),
        Some(0.0)
    );
    assert_eq!(app.queue(), ["up/d", "up/a", "up/b", "up/c"]);
    other
        .write(|tx| tx.remove_lorry("up/d"))
        .expect("other process removes");
    let text = metrics();
    assert_eq!(metric(&text, "lorry2_total_lorries"), Some(3.0), "{text}");
    assert!(!text.contains(r#"path="up/d""#), "{text}");
    assert_eq!(app.queue(), ["up/a", "up/b", "up/c"]);

    // Only the clock moves: nothing is written meanwhile (checked), so
    // only the time can change the answers. At 250, b and a (moved to the
    // bottom) are due, a for more than its interval; at 900 all three
    // are, a still last.
    let before = other.generation().expect("generation");
    app.pretend_time(250);
    let text = metrics();
    assert_eq!(
        metric(&text, "lorry_controller_queue_depth"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(metric(&text, "lorry_controller_lorries_overdue"), Some(1.0));
    assert_eq!(
        metric(&text, "lorry_controller_oldest_waiting_seconds"),
        Some(150.0)
    );
    assert_eq!(app.queue(), ["up/b", "up/a", "up/c"]);
    app.pretend_time(900);
    let text = metrics();
    assert_eq!(
        metric(&text, "lorry_controller_queue_depth"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(metric(&text, "lorry_controller_lorries_overdue"), Some(3.0));
    assert_eq!(
        metric(&text, "lorry_controller_oldest_waiting_seconds"),
        Some(800.0)
    );
    assert_eq!(app.queue(), ["up/b", "up/c", "up/a"]);
    assert_eq!(
        other.generation().expect("generation"),
        before,
        "something wrote STATEDB while only the clock was to move"
    );
}

#[test]
fn prometheus_gets_openmetrics_when_it_asks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).start();
    let response = reqwest::blocking::Client::new()
        .get(app.url("/1.0/metrics"))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .expect("GET");
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(response.text().expect("body").ends_with("# EOF\n"));
}
