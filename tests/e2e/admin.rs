//! `lorry-controller-admin` against the real webapp binary: every
//! subcommand, human and `--json` output, and the exit codes scripts rely on.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use clap::CommandFactory;
use common::{Webapp, git_lorry};
use serde_json::Value;

const ADMIN: &str = env!("CARGO_BIN_EXE_lorry-controller-admin");
const T0: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

/// What one run of the admin CLI did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:?}"))
    }
}

/// Runs the admin CLI with exactly `args`, without proxies from the environment.
fn admin_raw(args: &[&str]) -> Run {
    let output = Command::new(ADMIN)
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .output()
        .expect("run lorry-controller-admin");
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Runs the admin CLI against `app`; the command must succeed.
fn admin(app: &Webapp, args: &[&str]) -> Run {
    let run = admin_status(app, args);
    assert_eq!(run.code, 0, "{args:?}: {run:?}");
    assert!(run.stderr.is_empty(), "{args:?}: {run:?}");
    run
}

/// Runs the admin CLI against `app`, whatever its exit code.
fn admin_status(app: &Webapp, args: &[&str]) -> Run {
    let url = format!("--webapp-url=http://127.0.0.1:{}/", app.port);
    let mut all = vec![url.as_str()];
    all.extend_from_slice(args);
    admin_raw(&all)
}

/// Asserts the run failed with `code` and a one-line message containing `needle`.
fn assert_fails(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.contains(needle), "wanted {needle:?} in {run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
}

fn webapp(extra: &[&str]) -> (tempfile::TempDir, Webapp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).with_args(extra).start();
    (dir, app)
}

/// The lines of `text` with runs of blanks squeezed, for layout-independent checks.
fn squeezed(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Header and rows of a table: each column starts where its header does
/// (headers are apart by two blanks at least; a header may hold one).
fn assert_aligned(table: &str) {
    let lines: Vec<&str> = table.lines().collect();
    let header = lines[0];
    let starts: Vec<usize> = header
        .match_indices(|c: char| c != ' ')
        .filter(|(i, _)| *i == 0 || (*i >= 2 && &header[i - 2..*i] == "  "))
        .map(|(i, _)| i)
        .collect();
    for line in &lines[1..] {
        for start in &starts[1..] {
            assert!(
                line.len() <= *start || line.as_bytes()[start - 1] == b' ',
                "column at {start} not aligned in {line:?}\n{table}"
            );
        }
        assert_eq!(line.trim_end(), *line, "trailing blanks in {line:?}");
    }
}

#[test]
fn every_subcommand_has_help_and_exits_0() {
    let command = lc_admin::Cli::command();
    let names: BTreeSet<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .filter(|n| n != "help")
        .collect();
    let wanted: BTreeSet<String> = [
        "status",
        "list-queue",
        "show-lorry",
        "list-jobs",
        "show-job",
        "stop-job",
        "move-to-top",
        "move-to-bottom",
        "stop-queue",
        "start-queue",
        "get-max-jobs",
        "set-max-jobs",
        "read-configuration",
        "remove-ghost-jobs",
        "remove-old-jobs",
        "backup",
        "events",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names, wanted);
    let top = admin_raw(&["--help"]);
    assert_eq!(top.code, 0, "{top:?}");
    for name in &names {
        assert!(
            top.stdout.contains(name.as_str()),
            "{name} missing: {top:?}"
        );
        let run = admin_raw(&[name, "--help"]);
        assert_eq!(run.code, 0, "{name} --help: {run:?}");
        assert!(
            run.stdout.contains("Usage: lorry-controller-admin"),
            "{run:?}"
        );
        assert!(run.stdout.contains("Exit codes:"), "{name}: {run:?}");
        assert!(
            run.stdout.contains("3  the webapp cannot be reached"),
            "{run:?}"
        );
        assert!(
            run.stdout.contains("--json"),
            "{name}: global options listed"
        );
        let run = admin_raw(&["help", name]);
        assert_eq!(run.code, 0, "help {name}: {run:?}");
    }
    let version = admin_raw(&["--version"]);
    assert_eq!(version.code, 0, "{version:?}");
    assert!(version.stdout.starts_with("lorry-controller-admin "));
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_ini = dir.path().join("bad.conf");
    std::fs::write(&bad_ini, "[config]\nno-such-option = 1\n").expect("write");
    let bad_ini = format!("--config={}", bad_ini.display());
    let cases: &[(&[&str], &str)] = &[
        (&[], "Usage"),
        (&["frobnicate"], "frobnicate"),
        (&["show-lorry"], "<PATH>"),
        (&["show-job", "abc"], "abc"),
        (&["stop-job", "1", "2"], "unexpected argument"),
        (
            &["set-max-jobs", "many"],
            "expected a number of jobs or \"none\"",
        ),
        (&["set-max-jobs", "-1"], "-1"),
        (&["remove-old-jobs", "--max-age", "3x"], "expected an age"),
        (&["remove-old-jobs", "--keep", "-2"], "-2"),
        (&["--timeout", "0", "status"], "0"),
        (
            &["--webapp-url", "ftp://example.org/", "status"],
            "only http",
        ),
        (&["--webapp-url", "localhost:12765", "status"], "only http"),
        (&["--webapp-port", "99999", "status"], "99999"),
        (&["--webapp-host", "a b", "status"], "not a host name"),
        (
            &["--config=/nonexistent/admin.conf", "status"],
            "/nonexistent/admin.conf",
        ),
        (&[bad_ini.as_str(), "status"], "no-such-option"),
    ];
    for (args, needle) in cases {
        let run = admin_raw(args);
        assert_fails(&run, 2, needle);
    }
}

#[test]
fn an_unreachable_webapp_exits_3() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let port = port.to_string();
    for args in [
        vec!["status"],
        vec!["--json", "list-queue"],
        vec!["stop-queue"],
        vec!["read-configuration", "--dry-run"],
    ] {
        let mut all = vec!["--webapp-host", "127.0.0.1", "--webapp-port", &port];
        all.extend(args);
        let run = admin_raw(&all);
        assert_fails(&run, 3, "cannot reach the webapp at http://127.0.0.1:");
        assert!(run.stderr.to_lowercase().contains("refused"), "{run:?}");
    }
}

#[test]
fn a_webapp_that_does_not_answer_times_out_with_3() {
    // Connections are accepted by the kernel but never answered.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "--webapp-url=http://127.0.0.1:{}/",
        listener.local_addr().expect("addr").port()
    );
    let run = admin_raw(&[&url, "--timeout=1", "status"]);
    assert_fails(&run, 3, "no answer from the webapp");
    assert!(run.stderr.contains("within 1 s"), "{run:?}");
}

/// Serves `response` (a whole HTTP/1.1 answer) to one connection.
fn serve_once(response: &'static str) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "--webapp-url=http://127.0.0.1:{}/",
        listener.local_addr().expect("addr").port()
    );
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = Vec::new();
        let mut buf = [0; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        stream.write_all(response.as_bytes()).expect("write");
    });
    (url, handle)
}

#[test]
fn answers_that_are_not_the_webapps_json_are_errors_not_panics() {
    let cases: &[(&str, i32, &str)] = &[
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\n<html></html",
            3,
            "not JSON",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"queue\": 42}",
            3,
            "unexpected answer",
        ),
        (
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 31\r\nConnection: close\r\n\r\n{\"error\":\"internal error, see\"}",
            3,
            "the webapp failed: internal error, see (HTTP 500",
        ),
        (
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad gateway",
            3,
            "not a JSON error: \"bad gateway\"",
        ),
        (
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n",
            1,
            "HTTP 404 Not Found, not a JSON error: \"not here\"",
        ),
    ];
    for (response, code, needle) in cases {
        let (url, server) = serve_once(response);
        let run = admin_raw(&[&url, "list-queue"]);
        server.join().expect("server thread");
        assert_fails(&run, *code, needle);
    }
}

#[test]
fn status_and_list_queue() {
    let (_dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[
        git_lorry("upstream/alpha", 3600, 600),
        git_lorry("upstream/beta", 2 * DAY, 600),
    ]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);

    let run = admin(&app, &["status"]);
    let lines = squeezed(&run.stdout);
    assert!(lines.contains(&"queue: running".to_owned()), "{run:?}");
    assert!(lines.contains(&"max jobs: no limit".to_owned()), "{run:?}");
    assert!(
        lines.contains(&"lorries: 2 (1 running)".to_owned()),
        "{run:?}"
    );
    assert!(
        lines.contains(&"time: 2023-11-14 22:13:20 UTC".to_owned()),
        "{run:?}"
    );
    let table_start = run.stdout.find("PATH").expect("queue table");
    let table = &run.stdout[table_start..];
    assert_aligned(table);
    let rows = squeezed(table);
    assert_eq!(rows[0], "PATH DUE LAST RUN EXIT INTERVAL DISK");
    assert_eq!(rows[1], "upstream/beta now never 2 d");
    assert_eq!(
        rows[2],
        "upstream/alpha running 2023-11-14 22:13:20 UTC 1 h"
    );

    let json = admin(&app, &["--json", "status"]).json();
    let direct = app.get_ok("/1.0/status");
    assert_eq!(json["run_queue"], direct["run_queue"]);
    assert_eq!(json["running_queue"], true);
    assert_eq!(json["timestamp"], direct["timestamp"]);

    let run = admin(&app, &["list-queue"]);
    assert_eq!(
        squeezed(&run.stdout),
        ["# PATH", "1 upstream/beta", "2 upstream/alpha"]
    );
    assert_aligned(&run.stdout);
    let json = admin(&app, &["list-queue", "--json"]).json();
    assert_eq!(json, app.get_ok("/1.0/list-queue"));
    assert_eq!(json["queue"][0], "upstream/beta");

    let (_dir2, empty) = webapp(&[]);
    assert_eq!(
        admin(&empty, &["list-queue"]).stdout,
        "The run queue is empty.\n"
    );
    assert!(
        admin(&empty, &["status"])
            .stdout
            .contains("\nThe run queue is empty.\n")
    );
}

#[test]
fn moves_and_the_queue_switch() {
    let (_dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[
        git_lorry("a", 3600, 600),
        git_lorry("b", 3600, 600),
        git_lorry("c", 3600, 600),
    ]);
    assert_eq!(app.queue(), ["a", "b", "c"]);
    let run = admin(&app, &["move-to-top", "c"]);
    assert_eq!(run.stdout, "Lorry c moved to the top\n");
    assert_eq!(app.queue(), ["c", "a", "b"]);
    let run = admin(&app, &["move-to-bottom", "a"]);
    assert_eq!(run.stdout, "Lorry a moved to the bottom\n");
    assert_eq!(app.queue(), ["c", "b", "a"]);
    let json = admin(&app, &["--json", "move-to-top", "a"]).json();
    assert_eq!(json["message"], "Lorry a moved to the top");
    assert_eq!(app.queue(), ["a", "c", "b"]);

    let run = admin_status(&app, &["move-to-top", "nonexistent/lorry"]);
    let error = app.post("/1.0/move-to-top", &[("path", "nonexistent/lorry")]);
    assert_eq!(error.status, 404);
    let message = error.body["error"].as_str().expect("error message");
    assert_fails(&run, 1, message);
    assert!(run.stderr.contains("(HTTP 404"), "{run:?}");

    let run = admin(&app, &["stop-queue"]);
    assert_eq!(run.stdout, "Queue set to not run\n");
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], false);
    assert!(
        admin(&app, &["status"])
            .stdout
            .contains("stopped (no jobs are handed out)")
    );
    let job = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    assert_eq!(job["job_id"], Value::Null);
    let json = admin(&app, &["--json", "start-queue"]).json();
    assert_eq!(
        json,
        serde_json::json!({"running_queue": true, "message": "Queue set to run"})
    );
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], true);
}

#[test]
fn show_lorry() {
    let (_dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[git_lorry("upstream/with space", 3600, 600)]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", "1"),
            ("exit", "1"),
            ("stderr", "fatal: no such repository\n"),
            ("disk_usage", "4096"),
        ],
    );

    let run = admin(&app, &["show-lorry", "upstream/with space"]);
    let lines = squeezed(&run.stdout);
    for wanted in [
        "path: upstream/with space",
        "interval: 1 h",
        "timeout: 10 min",
        "state: idle",
        "last run: 2023-11-14 22:13:20 UTC",
        "last exit: 1",
        "last success: never",
        "failures in a row: 1",
        "due: 2023-11-14 23:13:20 UTC",
        "disk usage: 4.0 KiB",
        "jobs: 1",
        "spec:",
        "last error:",
        "fatal: no such repository",
    ] {
        assert!(lines.contains(&wanted.to_owned()), "{wanted:?} in {run:?}");
    }
    assert!(
        run.stdout
            .contains("\"url\": \"git://example.invalid/upstream/with space\"")
    );

    let json = admin(&app, &["show-lorry", "--json", "upstream/with space"]).json();
    assert_eq!(json, app.get_ok("/1.0/lorry/upstream/with%20space"));

    let run = admin_status(&app, &["show-lorry", "upstream/missing"]);
    let error = app.get("/1.0/lorry/upstream/missing");
    assert_eq!(error.status, 404);
    assert_fails(&run, 1, error.body["error"].as_str().expect("error"));
    let run = admin_status(&app, &["--json", "show-lorry", "upstream/missing"]);
    assert_fails(&run, 1, "upstream/missing");
}

#[test]
fn jobs_listed_shown_and_stopped() {
    let (_dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[git_lorry("one", 3600, 600), git_lorry("two", 3600, 600)]);
    app.post_ok("/1.0/give-me-job", &[("host", "minion-a"), ("pid", "101")]);
    app.post_ok("/1.0/give-me-job", &[("host", "minion-b"), ("pid", "202")]);
    app.pretend_time(T0 + 90);
    app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", "1"),
            ("exit", "0"),
            ("stdout", "fetched\npushed\n"),
        ],
    );

    let run = admin(&app, &["list-jobs"]);
    assert_aligned(&run.stdout);
    assert_eq!(
        squeezed(&run.stdout),
        [
            "JOB PATH STATE STARTED ENDED HOST PID",
            "1 one exit 0 2023-11-14 22:13:20 UTC 2023-11-14 22:14:50 UTC minion-a 101",
            "2 two running 2023-11-14 22:13:20 UTC minion-b 202",
        ]
    );
    let run = admin(&app, &["list-jobs", "--running"]);
    assert_eq!(
        squeezed(&run.stdout),
        [
            "JOB PATH STATE STARTED ENDED HOST PID",
            "2 two running 2023-11-14 22:13:20 UTC minion-b 202",
        ]
    );
    assert_eq!(
        admin(&app, &["--json", "list-jobs"]).json(),
        app.get_ok("/1.0/list-jobs")
    );
    assert_eq!(
        admin(&app, &["--json", "list-jobs", "--running"]).json(),
        serde_json::json!({"running_jobs": [2]})
    );

    let run = admin(&app, &["show-job", "1"]);
    let lines = squeezed(&run.stdout);
    for wanted in [
        "job: 1",
        "path: one",
        "state: exit 0",
        "minion: minion-a pid 101",
        "started: 2023-11-14 22:13:20 UTC",
        "ended: 2023-11-14 22:14:50 UTC",
        "took: 1 min 30 s",
        "output:",
        "fetched",
        "pushed",
    ] {
        assert!(lines.contains(&wanted.to_owned()), "{wanted:?} in {run:?}");
    }
    assert_eq!(
        admin(&app, &["show-job", "1", "--output"]).stdout,
        "fetched\npushed\n"
    );
    assert_eq!(
        admin(&app, &["--json", "show-job", "1"]).json(),
        app.get_ok("/1.0/job/1")
    );

    let run = admin(&app, &["stop-job", "2"]);
    assert_eq!(run.stdout, "Job 2 will be stopped\n");
    assert_eq!(app.get_ok("/1.0/job/2")["kill_job"], true);
    let run = admin(&app, &["show-job", "2"]);
    assert!(run.stdout.contains("running, stop requested"), "{run:?}");
    assert!(run.stdout.contains("output: none"), "{run:?}");
    assert!(
        admin(&app, &["list-jobs", "--running"])
            .stdout
            .contains("running, stop requested")
    );

    // The webapp's refusals: an ended job cannot be stopped, an unknown one not shown.
    let run = admin_status(&app, &["stop-job", "1"]);
    assert_fails(&run, 1, "(HTTP 409");
    for args in [
        &["show-job", "999"][..],
        &["show-job", "999", "--output"],
        &["stop-job", "999"],
    ] {
        let run = admin_status(&app, args);
        assert_fails(&run, 1, "999");
        assert!(run.stderr.contains("(HTTP 404"), "{run:?}");
    }

    let (_dir2, empty) = webapp(&[]);
    assert_eq!(admin(&empty, &["list-jobs"]).stdout, "No jobs.\n");
    assert_eq!(
        admin(&empty, &["list-jobs", "--running"]).stdout,
        "No jobs are running.\n"
    );
}

#[test]
fn max_jobs() {
    let (_dir, app) = webapp(&[]);
    assert_eq!(
        admin(&app, &["get-max-jobs"]).stdout,
        "max jobs: no limit\n"
    );
    assert_eq!(admin(&app, &["set-max-jobs", "3"]).stdout, "max jobs: 3\n");
    assert_eq!(app.get_ok("/1.0/get-max-jobs")["max_jobs"], 3);
    assert_eq!(admin(&app, &["get-max-jobs"]).stdout, "max jobs: 3\n");
    assert_eq!(
        admin(&app, &["--json", "get-max-jobs"]).json(),
        serde_json::json!({"max_jobs": 3})
    );
    assert_eq!(
        admin(&app, &["--json", "set-max-jobs", "none"]).json(),
        serde_json::json!({"max_jobs": null})
    );
    assert_eq!(app.get_ok("/1.0/get-max-jobs")["max_jobs"], Value::Null);
    assert!(admin(&app, &["status"]).stdout.contains("no limit"));
}

#[test]
fn remove_ghost_jobs() {
    let (_dir, app) = webapp(&["--ghost-timeout=600"]);
    app.pretend_time(T0);
    app.seed(&[
        git_lorry("lost", 3600, 100_000),
        git_lorry("alive", 3600, 100_000),
    ]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "2")]);
    assert_eq!(
        admin(&app, &["remove-ghost-jobs"]).stdout,
        "No ghost jobs to remove.\n"
    );
    app.pretend_time(T0 + 1000);
    app.post_ok("/1.0/job-update", &[("job_id", "2"), ("exit", "no")]);
    assert_eq!(
        admin(&app, &["remove-ghost-jobs"]).stdout,
        "Removed 1 ghost job: 1\n"
    );
    assert_eq!(app.get_ok("/1.0/job/1")["exit"], "127");
    assert_eq!(app.get_ok("/1.0/job/2")["exit"], "no");
    assert_eq!(
        admin(&app, &["--json", "remove-ghost-jobs"]).json(),
        serde_json::json!({"removed_jobs": []})
    );
}

#[test]
fn remove_old_jobs_sends_its_age_and_keep() {
    let (_dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[git_lorry("x", 60, 600)]);
    for job in 1..=3 {
        app.pretend_time(T0 + job * 100);
        let given = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
        assert_eq!(given["job_id"], job);
        app.post_ok(
            "/1.0/job-update",
            &[("job_id", &job.to_string()), ("exit", "0")],
        );
    }
    app.pretend_time(T0 + 2 * DAY);
    let run = admin(&app, &["remove-old-jobs", "--max-age", "3d", "--keep", "0"]);
    assert_eq!(run.stdout, "No old jobs to remove.\n");
    let run = admin(&app, &["remove-old-jobs", "--max-age=1d", "--keep=1"]);
    assert_eq!(run.stdout, "Removed 2 old jobs: 1, 2\n");
    assert_eq!(
        app.get_ok("/1.0/list-jobs")["job_ids"],
        serde_json::json!([3])
    );
    let json = admin(
        &app,
        &[
            "--json",
            "remove-old-jobs",
            "--max-age",
            "1h 30min",
            "--keep",
            "0",
        ],
    )
    .json();
    assert_eq!(json, serde_json::json!({"removed_jobs": [3]}));
    // Without options the webapp's defaults (3 days, 3 per lorry) apply.
    assert_eq!(
        admin(&app, &["remove-old-jobs"]).stdout,
        "No old jobs to remove.\n"
    );
}

#[test]
fn read_configuration_and_its_dry_run() {
    let (dir, app) = webapp(&[]);
    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(&confgit).expect("confgit");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "interval": "1h", "prefix": "upstream", "globs": ["*.lorry"]}]"#,
    )
    .expect("conf");
    std::fs::write(
        confgit.join("demo.lorry"),
        r#"{"hello": {"type": "git", "url": "https://example.org/hello.git"}}"#,
    )
    .expect("lorry");

    let run = admin(&app, &["read-configuration", "--dry-run"]);
    let lines = squeezed(&run.stdout);
    for line in [
        "dry_run: true",
        "lorries_added: upstream/hello",
        "lorries_changed: none",
        "lorries_removed: none",
        "lorries_unchanged: 0",
        "hosts_added: none",
        "problems: none",
    ] {
        assert!(lines.iter().any(|l| l == line), "{line:?} in {lines:#?}");
    }
    assert_eq!(
        app.queue(),
        Vec::<String>::new(),
        "a dry run changes nothing"
    );
    let json = admin(&app, &["--json", "read-configuration"]).json();
    assert_eq!(
        json,
        serde_json::json!({
            "dry_run": false, "lorries_added": ["upstream/hello"],
            "lorries_changed": [], "lorries_removed": [], "lorries_unchanged": 0,
            "hosts_added": [], "hosts_changed": [], "hosts_removed": [], "problems": []
        })
    );
    assert_eq!(app.queue(), ["upstream/hello"]);
    let run = admin(&app, &["read-configuration"]);
    let lines = squeezed(&run.stdout);
    for line in [
        "dry_run: false",
        "lorries_added: none",
        "lorries_unchanged: 1",
    ] {
        assert!(lines.iter().any(|l| l == line), "{line:?} in {lines:#?}");
    }
}

#[test]
fn options_from_a_config_file_and_host_and_port() {
    let (dir, app) = webapp(&[]);
    app.seed(&[git_lorry("from/ini", 3600, 600)]);
    let ini = dir.path().join("admin.conf");
    std::fs::write(
        &ini,
        format!(
            "[config]\nwebapp-host = 127.0.0.1\nwebapp-port = {}\njson = yes\n",
            app.port
        ),
    )
    .expect("write ini");
    let config = format!("--config={}", ini.display());
    let run = admin_raw(&[&config, "list-queue"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json(), serde_json::json!({"queue": ["from/ini"]}));
    // The command line wins over the file.
    let closed = common::closed_port();
    let run = admin_raw(&["list-queue", &config, &format!("--webapp-port={closed}")]);
    assert_fails(
        &run,
        3,
        &format!("cannot reach the webapp at http://127.0.0.1:{closed}/"),
    );

    let port = app.port.to_string();
    let run = admin_raw(&[
        "--webapp-host=127.0.0.1",
        "--webapp-port",
        &port,
        "list-queue",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(squeezed(&run.stdout), ["# PATH", "1 from/ini"]);
}

/// Job output is an upstream's text: an escape sequence in it must not reach
/// the admin's terminal unless `--raw` asks for the bytes as recorded.
#[test]
fn terminal_control_in_job_output_is_removed_unless_raw() {
    let (_dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[git_lorry("one", 3600, 600)]);
    app.post_ok("/1.0/give-me-job", &[("host", "minion-a"), ("pid", "101")]);
    let hostile = "fetched \x1b]0;owned\x07\x1b[31mred\x1b[0m\tok\rcover\n";
    app.post_ok(
        "/1.0/job-update",
        &[("job_id", "1"), ("exit", "0"), ("stdout", hostile)],
    );

    let run = admin(&app, &["show-job", "1", "--output"]);
    assert_eq!(run.stdout, "fetched red\tok\ncover\n");
    let run = admin(&app, &["show-job", "1"]);
    assert!(!run.stdout.contains('\x1b'), "{run:?}");
    assert!(
        run.stdout.contains("  fetched red\tok\n  cover\n"),
        "{run:?}"
    );
    let run = admin(&app, &["show-job", "1", "--output", "--raw"]);
    assert_eq!(run.stdout, hostile);
}

/// A lorry name with non-ASCII letters and spaces, end to end: CONFGIT,
/// the queue, the pages, give-me-job and the local downstream, the admin CLI.
#[test]
fn unicode_and_spaces_in_lorry_names_end_to_end() {
    let (dir, app) = webapp(&[]);
    let confgit = dir.path().join("confgit");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "interval": "1h", "prefix": "up", "globs": ["*.lorry"]}]"#,
    )
    .expect("conf");
    std::fs::write(
        confgit.join("names.lorry"),
        r#"{"ünï cöde/ré po": {"type": "git", "url": "git://example.invalid/u"}}"#,
    )
    .expect("lorry");
    let name = "up/ünï cöde/ré po";
    app.pretend_time(T0);
    let read = app.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(read["lorries_added"], serde_json::json!([name]), "{read}");
    assert_eq!(app.queue(), [name]);

    // The pages show it and link to it.
    let status = app.get("/1.0/status-html");
    assert_eq!(status.status, 200);
    assert!(status.text.contains("ünï cöde/ré po"), "{}", status.text);
    let page = app.get(&format!("/1.0/lorry-html/{name}"));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.text.contains("ünï cöde/ré po"), "{}", page.text);

    // Handed out, and its local downstream repository made under its name.
    let (id, path) = app.give_me_job().expect("a job");
    assert_eq!(path, name);
    let repo = dir.path().join("downstream").join(format!("{name}.git"));
    assert!(repo.join("HEAD").is_file(), "{}", repo.display());
    assert_eq!(app.job(id)["path"], name);

    // The admin CLI takes and shows it.
    let run = admin(&app, &["--json", "show-lorry", name]);
    assert_eq!(run.json()["path"], name, "{run:?}");
    let run = admin(&app, &["show-lorry", name]);
    assert!(run.stdout.contains(name), "{run:?}");
    let run = admin(&app, &["list-queue"]);
    assert!(run.stdout.contains(name), "{run:?}");
    app.finish(id, 0);
    let run = admin(&app, &["show-job", &id.to_string()]);
    assert!(run.stdout.contains(name), "{run:?}");
}
