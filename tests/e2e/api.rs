//! The `/1.0/...` HTTP API of the real webapp binary, driven over HTTP.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{WEBAPP, Webapp, git_lorry};
use serde_json::Value;

const T0: i64 = 1_700_000_000;

fn webapp(extra: &[&str]) -> (tempfile::TempDir, Webapp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).with_args(extra).start();
    (dir, app)
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().expect("object").keys().cloned().collect()
}

fn assert_has_keys(value: &Value, wanted: &[&str]) {
    let have = keys(value);
    for key in wanted {
        assert!(have.contains(*key), "missing key {key} in {value}");
    }
}

#[test]
fn fresh_webapp_reports_an_empty_running_queue() {
    let (_dir, app) = webapp(&[]);
    let status = app.get_ok("/1.0/status");
    assert_has_keys(
        &status,
        &[
            "running_queue",
            "run_queue",
            "hosts",
            "max_jobs",
            "disk_free",
            "disk_free_mib",
            "disk_free_gib",
            "timestamp",
            "config_problems",
        ],
    );
    assert_eq!(status["running_queue"], true);
    assert_eq!(status["run_queue"], serde_json::json!([]));
    assert_eq!(status["hosts"], serde_json::json!([]));
    assert!(status["disk_free"].as_u64().expect("disk_free") > 0);
    assert_eq!(
        app.get_ok("/1.0/list-queue"),
        serde_json::json!({"queue": []})
    );
    assert_eq!(
        app.get_ok("/1.0/list-jobs"),
        serde_json::json!({"job_ids": []})
    );
    assert_eq!(
        app.get_ok("/1.0/list-running-jobs"),
        serde_json::json!({"running_jobs": []})
    );
    assert_eq!(
        app.get_ok("/1.0/get-max-jobs"),
        serde_json::json!({"max_jobs": null})
    );
    assert_eq!(app.get_ok("/1.0/health-check")["message"], "ok");
}

#[test]
fn queue_state_survives_a_restart() {
    let (_dir, app) = webapp(&[]);
    // Scripts post with an empty body.
    let answer = app.post_raw("/1.0/stop-queue", "");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], false);
    app.post_ok("/1.0/set-max-jobs", &[("max_jobs", "2")]);
    let app = app.restart();
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], false);
    assert_eq!(app.get_ok("/1.0/get-max-jobs")["max_jobs"], 2);
    app.post_ok("/1.0/start-queue", &[]);
    let app = app.restart();
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], true);
}

#[test]
fn stopped_queue_hands_out_no_jobs() {
    let (_dir, app) = webapp(&[]);
    app.seed(&[git_lorry("upstream/foo", 3600, 3600)]);
    app.post_ok("/1.0/stop-queue", &[]);
    let job = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    assert_eq!(job, serde_json::json!({"job_id": null}));
    app.post_ok("/1.0/start-queue", &[]);
    let job = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    assert_eq!(job["job_id"], 1);
}

#[test]
fn a_job_runs_from_give_me_job_to_its_last_update() {
    let (dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[git_lorry("upstream/foo", 3600, 600)]);

    let job = app.post_ok("/1.0/give-me-job", &[("host", "testhost"), ("pid", "123")]);
    assert_eq!(job["job_id"], 1);
    assert_eq!(job["path"], "upstream/foo");
    assert_eq!(job["lorry_timeout"], 600);
    assert!(
        job["text"]
            .as_str()
            .expect("text")
            .contains("\"upstream/foo\"")
    );
    // The local downstream repository was prepared for the job.
    assert!(
        dir.path()
            .join("downstream/upstream/foo.git/HEAD")
            .is_file()
    );
    // Nothing else is due.
    assert_eq!(
        app.post_ok("/1.0/give-me-job", &[("host", "testhost"), ("pid", "124")]),
        serde_json::json!({"job_id": null})
    );
    assert_eq!(
        app.get_ok("/1.0/list-running-jobs")["running_jobs"],
        serde_json::json!([1])
    );

    let running = app.get_ok("/1.0/job/1");
    assert_has_keys(
        &running,
        &[
            "job_id",
            "host",
            "pid",
            "path",
            "exit",
            "kill_job",
            "output",
            "disk_usage",
            "job_started",
            "job_ended",
        ],
    );
    assert_eq!(running["exit"], "no");
    assert_eq!(running["host"], "testhost");
    assert_eq!(running["pid"], 123);
    assert_eq!(running["job_ended"], "");

    let update = app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", "1"),
            ("exit", "no"),
            ("stdout", "fetching\n"),
            ("stderr", ""),
        ],
    );
    assert_eq!(update["kill_job"], false);
    app.pretend_time(T0 + 5);
    // A result that is not lorry's JSON is refused, naming the field; the
    // job runs on.
    for bad in ["not json", "[1, 2]", "{\"specs\": []}"] {
        let refused = app.post(
            "/1.0/job-update",
            &[("job_id", "1"), ("exit", "0"), ("result", bad)],
        );
        assert_eq!(refused.status, 400, "{bad}");
        assert!(refused.text.contains("result"), "{}", refused.text);
    }
    let done = app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", "1"),
            ("exit", "0"),
            ("stdout", "pushed\n"),
            ("stderr", "warning\n"),
            ("disk_usage", "4096"),
            (
                "result",
                r#"{"version": 1, "specs": [], "from": "https://u:tok@example.com/x"}"#,
            ),
        ],
    );
    assert_eq!(done["result"]["version"], 1);
    assert_eq!(
        done["result"]["from"], "https://***@example.com/x",
        "credentials hidden"
    );
    assert_eq!(app.get_ok("/1.0/job/1")["result"], done["result"]);
    assert_eq!(done["exit"], "0");
    // The answer does not grow with the output: GET /1.0/job/<id> has it.
    assert_eq!(done["output"], "");
    assert_eq!(
        app.get_ok("/1.0/job/1")["output"],
        "fetching\npushed\nwarning\n"
    );
    assert_eq!(done["disk_usage"], 4096);
    assert_eq!(done["job_ended"], "2023-11-14 22:13:25 UTC");

    let lorry = app.get_ok("/1.0/lorry/upstream/foo");
    assert_has_keys(
        &lorry,
        &[
            "path",
            "text",
            "interval",
            "lorry_timeout",
            "last_run",
            "last_run_exit",
            "running_job",
            "disk_usage",
            "jobs",
        ],
    );
    assert_eq!(lorry["running_job"], Value::Null);
    assert_eq!(lorry["last_run"], T0);
    assert_eq!(lorry["last_run_exit"], "0");
    assert_eq!(lorry["disk_usage"], 4096);
    assert_eq!(lorry["jobs"], serde_json::json!([1]));
    assert_eq!(
        app.get_ok("/1.0/list-jobs")["job_ids"],
        serde_json::json!([1])
    );
    assert_eq!(
        app.get_ok("/1.0/list-running-jobs")["running_jobs"],
        serde_json::json!([])
    );

    // Due again after its interval, not before.
    app.pretend_time(T0 + 3599);
    assert_eq!(
        app.post_ok("/1.0/give-me-job", &[("host", "h"), ("pid", "1")])["job_id"],
        Value::Null
    );
    app.pretend_time(T0 + 3600);
    assert_eq!(
        app.post_ok("/1.0/give-me-job", &[("host", "h"), ("pid", "1")])["job_id"],
        2
    );

    // Finished jobs can be removed; running ones cannot.
    assert_eq!(app.post("/1.0/remove-job", &[("job_id", "2")]).status, 409);
    app.post_ok("/1.0/remove-job", &[("job_id", "1")]);
    assert_eq!(app.get("/1.0/job/1").status, 404);
}

#[test]
fn failed_job_is_reported_in_status() {
    let (_dir, app) = webapp(&["--publish-failures"]);
    app.seed(&[git_lorry("a/b", 3600, 600)]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    app.post_ok(
        "/1.0/job-update",
        &[("job_id", "1"), ("exit", "1"), ("stderr", "cannot fetch\n")],
    );
    let status = app.get_ok("/1.0/status");
    let entry = &status["run_queue"][0];
    assert_eq!(entry["path"], "a/b");
    assert_eq!(entry["last_run_exit"], "1");
    assert_eq!(entry["last_run_error"], "cannot fetch\n");
    assert_eq!(status["publish_failures"], true);
    assert_has_keys(
        entry,
        &[
            "interval_nice",
            "due_nice",
            "last_run_nice",
            "disk_usage_nice",
        ],
    );
}

#[test]
fn queue_order_and_moves() {
    let (_dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[
        git_lorry("up/a", 60, 600),
        git_lorry("up/b", 60, 600),
        git_lorry("up/c", 86_400, 600),
        git_lorry("up/d", 60, 600),
    ]);
    // All are due; the longest overdue first (c, with its long interval, became due last).
    assert_eq!(app.queue(), ["up/a", "up/b", "up/d", "up/c"]);

    app.post_ok("/1.0/move-to-bottom", &[("path", "up/a")]);
    assert_eq!(app.queue(), ["up/b", "up/d", "up/c", "up/a"]);
    app.post_ok("/1.0/move-to-top", &[("path", "up/c")]);
    assert_eq!(app.queue(), ["up/c", "up/b", "up/d", "up/a"]);

    // Jobs follow the queue; a move lasts until the lorry's next run.
    let give = || app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    assert_eq!(give()["path"], "up/c");
    assert_eq!(give()["path"], "up/b");
    app.post_ok("/1.0/job-update", &[("job_id", "1"), ("exit", "0")]);
    assert_eq!(give()["path"], "up/d");
    assert_eq!(give()["path"], "up/a");
    assert_eq!(give()["job_id"], Value::Null);

    // A lorry not yet due can be moved to the top and then runs next.
    for id in 2..=4 {
        app.post_ok(
            "/1.0/job-update",
            &[("job_id", &id.to_string()), ("exit", "0")],
        );
    }
    app.post_ok("/1.0/move-to-top", &[("path", "up/c")]);
    assert_eq!(app.queue()[0], "up/c");
    assert_eq!(give()["path"], "up/c");

    let unknown = app.post("/1.0/move-to-top", &[("path", "no/such")]);
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body["error"]
            .as_str()
            .expect("error")
            .contains("no/such")
    );
}

#[test]
fn max_jobs_limits_running_jobs() {
    let (_dir, app) = webapp(&[]);
    app.seed(&[
        git_lorry("a", 60, 600),
        git_lorry("b", 60, 600),
        git_lorry("c", 60, 600),
    ]);
    assert_eq!(
        app.post_ok("/1.0/set-max-jobs", &[("max_jobs", "2")])["max_jobs"],
        2
    );
    let give = || app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")])["job_id"].clone();
    assert_eq!(give(), 1);
    assert_eq!(give(), 2);
    assert_eq!(give(), Value::Null);
    app.post_ok("/1.0/job-update", &[("job_id", "1"), ("exit", "0")]);
    assert_eq!(give(), 3);
    assert_eq!(
        app.post_ok("/1.0/set-max-jobs", &[("max_jobs", "")])["max_jobs"],
        Value::Null
    );
    assert_eq!(app.get_ok("/1.0/get-max-jobs")["max_jobs"], Value::Null);
}

#[test]
fn stop_job_and_timeout_set_the_kill_flag() {
    let (_dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[git_lorry("slow", 60, 100), git_lorry("stuck", 60, 100_000)]);
    let first = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    let second = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "2")]);
    let (slow, stuck) = if first["path"] == "slow" {
        (first, second)
    } else {
        (second, first)
    };
    let slow = slow["job_id"].to_string();
    let stuck = stuck["job_id"].to_string();
    let running = |id: &str| app.post_ok("/1.0/job-update", &[("job_id", id), ("exit", "no")]);

    app.pretend_time(T0 + 100);
    assert_eq!(running(&slow)["kill_job"], false);
    app.pretend_time(T0 + 101);
    assert_eq!(running(&slow)["kill_job"], true, "past its lorry-timeout");

    assert_eq!(running(&stuck)["kill_job"], false);
    app.post_ok("/1.0/stop-job", &[("job_id", &stuck)]);
    assert_eq!(app.get_ok(&format!("/1.0/job/{stuck}"))["kill_job"], true);
    assert_eq!(running(&stuck)["kill_job"], true);
    app.post_ok("/1.0/job-update", &[("job_id", &stuck), ("exit", "-9")]);
    assert_eq!(app.post("/1.0/stop-job", &[("job_id", &stuck)]).status, 409);
}

#[test]
fn ghost_jobs_are_ended_and_their_lorries_freed() {
    let (_dir, app) = webapp(&["--ghost-timeout=300"]);
    app.pretend_time(T0);
    app.seed(&[
        git_lorry("ghost", 60, 100_000),
        git_lorry("alive", 60, 100_000),
    ]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "2")]);
    let path_of = |id: i64| app.get_ok(&format!("/1.0/job/{id}"))["path"].clone();
    let (ghost, alive) = if path_of(1) == "ghost" {
        (1, 2)
    } else {
        (2, 1)
    };

    app.pretend_time(T0 + 200);
    app.post_ok(
        "/1.0/job-update",
        &[("job_id", &alive.to_string()), ("exit", "no")],
    );
    app.pretend_time(T0 + 301);
    assert_eq!(
        app.post_ok("/1.0/remove-ghost-jobs", &[])["removed_jobs"],
        serde_json::json!([ghost])
    );
    let job = app.get_ok(&format!("/1.0/job/{ghost}"));
    assert_eq!(job["exit"], "127");
    assert_eq!(app.get_ok("/1.0/lorry/ghost")["running_job"], Value::Null);
    assert_eq!(app.get_ok("/1.0/lorry/ghost")["last_run_exit"], "127");
    assert_eq!(app.get_ok(&format!("/1.0/job/{alive}"))["exit"], "no");
    // A late update from the lost minion is refused, not recorded.
    let late = app.post(
        "/1.0/job-update",
        &[("job_id", &ghost.to_string()), ("exit", "0")],
    );
    assert_eq!(late.status, 409, "{late:?}");
}

#[test]
fn concurrent_minions_never_share_a_lorry() {
    let (_dir, app) = webapp(&[]);
    let lorries: Vec<_> = (0..60)
        .map(|i| git_lorry(&format!("many/r{i:02}"), 86_400, 600))
        .collect();
    app.seed(&lorries);
    let handed: Vec<(i64, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..12)
            .map(|worker| {
                let app = &app;
                scope.spawn(move || {
                    let mut got = Vec::new();
                    loop {
                        let pid = worker.to_string();
                        let job = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", &pid)]);
                        let Some(id) = job["job_id"].as_i64() else {
                            break;
                        };
                        got.push((id, job["path"].as_str().expect("path").to_owned()));
                    }
                    got
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    assert_eq!(handed.len(), 60);
    let ids: BTreeSet<i64> = handed.iter().map(|(id, _)| *id).collect();
    let paths: BTreeSet<&str> = handed.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(ids, (1..=60).collect());
    assert_eq!(paths.len(), 60);
    assert_eq!(
        app.get_ok("/1.0/list-running-jobs")["running_jobs"]
            .as_array()
            .expect("ids")
            .len(),
        60
    );
}

#[test]
fn redirect_answers_303_to_a_local_path() {
    let (_dir, app) = webapp(&[]);
    let answer = app.post("/1.0/stop-queue", &[("redirect", "/1.0/status-html")]);
    assert_eq!(answer.status, 303);
    assert_eq!(answer.location.as_deref(), Some("/1.0/status-html"));
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], false);
    // Somewhere else is refused, and nothing changes.
    let answer = app.post(
        "/1.0/start-queue",
        &[("redirect", "https://example.invalid/")],
    );
    assert_eq!(answer.status, 400);
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], false);
}

#[test]
fn bad_requests_get_4xx_with_a_json_error() {
    let (_dir, app) = webapp(&[]);
    app.seed(&[git_lorry("a", 60, 600)]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    app.post_ok("/1.0/job-update", &[("job_id", "1"), ("exit", "0")]);

    // (method, path, form fields, expected status, what the error must mention)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("POST", "/1.0/give-me-job", vec![("pid", "1")], 400, "host"),
        (
            "POST",
            "/1.0/give-me-job",
            vec![("host", "m"), ("pid", "x")],
            400,
            "pid",
        ),
        (
            "POST",
            "/1.0/job-update",
            vec![("exit", "0")],
            400,
            "job_id",
        ),
        (
            "POST",
            "/1.0/job-update",
            vec![("job_id", "1")],
            400,
            "exit",
        ),
        (
            "POST",
            "/1.0/job-update",
            vec![("job_id", "1"), ("exit", "zero")],
            400,
            "exit",
        ),
        (
            "POST",
            "/1.0/job-update",
            vec![("job_id", "1"), ("exit", "0")],
            409,
            "ended",
        ),
        (
            "POST",
            "/1.0/job-update",
            vec![("job_id", "99"), ("exit", "0")],
            404,
            "99",
        ),
        (
            "POST",
            "/1.0/job-update",
            vec![("job_id", "1"), ("exit", "no"), ("disk_usage", "lots")],
            400,
            "disk_usage",
        ),
        ("POST", "/1.0/stop-job", vec![], 400, "job_id"),
        ("POST", "/1.0/stop-job", vec![("job_id", "42")], 404, "42"),
        ("POST", "/1.0/remove-job", vec![("job_id", "-1")], 404, "-1"),
        ("POST", "/1.0/move-to-bottom", vec![], 400, "path"),
        (
            "POST",
            "/1.0/move-to-bottom",
            vec![("path", "")],
            400,
            "path",
        ),
        ("POST", "/1.0/set-max-jobs", vec![], 400, "max_jobs"),
        (
            "POST",
            "/1.0/set-max-jobs",
            vec![("max_jobs", "-3")],
            400,
            "max_jobs",
        ),
        (
            "POST",
            "/1.0/set-max-jobs",
            vec![("max_jobs", "many")],
            400,
            "max_jobs",
        ),
        (
            "POST",
            "/1.0/pretend-time",
            vec![("now", "soon")],
            400,
            "now",
        ),
        (
            "GET",
            "/1.0/lorry/no/such/lorry",
            vec![],
            404,
            "no/such/lorry",
        ),
        ("GET", "/1.0/job/abc", vec![], 404, "abc"),
        ("GET", "/1.0/job/12345", vec![], 404, "12345"),
        (
            "GET",
            "/1.0/no-such-endpoint",
            vec![],
            404,
            "no-such-endpoint",
        ),
        ("GET", "/1.0/give-me-job", vec![], 405, "GET"),
        ("POST", "/1.0/status", vec![], 405, "POST"),
    ];
    for (method, path, form, status, mention) in cases {
        let answer = if method == "GET" {
            app.get(path)
        } else {
            app.post(path, &form)
        };
        assert_eq!(
            answer.status, status,
            "{method} {path} {form:?}: {answer:?}"
        );
        assert!(
            answer.content_type.starts_with("application/json"),
            "{path}: {answer:?}"
        );
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(mention),
            "{method} {path} {form:?}: error {error:?} lacks {mention:?}"
        );
    }
    // Garbage bodies are just fields that are missing.
    let answer = app.post_raw("/1.0/give-me-job", "%%%&&&==\u{1}");
    assert_eq!(answer.status, 400, "{answer:?}");
}

#[test]
fn pretend_time_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let statedb = format!("--statedb={}", dir.path().join("x.db").display());
    let app = Webapp::init(dir.path())
        .without_defaults()
        .with_args(&[&statedb])
        .start();
    let answer = app.post("/1.0/pretend-time", &[("now", "1")]);
    assert_eq!(answer.status, 404, "{answer:?}");
}

#[test]
fn ls_troves_lists_due_hosts_and_force_ls_troves_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path())
        .with_fake_host(&["a/one", "a/two", "b/other"])
        .start();
    app.pretend_time(T0);
    app.configure(&serde_json::json!([{
        "type": "trove", "host": "fake.example", "protocol": "ssh",
        "prefixmap": {"a": "up/a"}, "interval": "1H", "ls-interval": "1H"
    }]));

    let first = app.post_ok("/1.0/ls-troves", &[]);
    assert_eq!(
        first,
        serde_json::json!({"hosts": [{
            "host": "fake.example", "listed": true, "repositories": 3,
            "ignored": 0, "unmapped": 1,
            "lorries_added": ["up/a/one", "up/a/two"], "lorries_changed": [],
            "lorries_removed": [], "lorries_unchanged": 0, "errors": []
        }]}),
    );
    assert_eq!(app.queue(), ["up/a/one", "up/a/two"]);
    // Listed a moment ago: not due, so ls-troves lists nothing...
    app.pretend_time(T0 + 60);
    assert_eq!(
        app.post_ok("/1.0/ls-troves", &[]),
        serde_json::json!({"hosts": []})
    );
    // ... and force-ls-troves lists it anyway.
    let forced = app.post_ok("/1.0/force-ls-troves", &[]);
    let host = &forced["hosts"][0];
    assert_eq!(host["listed"], true, "{forced}");
    assert_eq!(host["lorries_unchanged"], 2, "{forced}");
    assert_eq!(host["lorries_added"], serde_json::json!([]), "{forced}");
    // Due again after its ls-interval.
    app.pretend_time(T0 + 60 + 3600);
    let due = app.post_ok("/1.0/ls-troves", &[]);
    assert_eq!(due["hosts"][0]["host"], "fake.example", "{due}");
}

#[test]
fn command_line_help_errors_and_config_file() {
    let help = Command::new(WEBAPP).arg("--help").output().expect("run");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--statedb",
        "--confgit-url",
        "--debug-port-file",
        "--ghost-timeout",
        "--git-server-type",
    ] {
        assert!(text.contains(option), "--help lacks {option}");
    }

    let unknown = Command::new(WEBAPP)
        .args(["--statedb=x", "--no-such-option"])
        .output()
        .expect("run");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("--no-such-option"));

    let missing = Command::new(WEBAPP)
        .args(["--config", "/no/such/webapp.conf"])
        .output()
        .expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/webapp.conf"));

    // Settings from a configuration file, with the original's key names.
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("webapp.conf");
    std::fs::write(
        &conf,
        format!(
            "[config]\nstatedb = {}\ndebug-real-confgit = no\ngit-server-type = local\n\
             local-base-directory = {}\ndebug-allow-pretend-time = yes\n",
            dir.path().join("from-conf.db").display(),
            dir.path().join("down").display()
        ),
    )
    .expect("write conf");
    let app = Webapp::init(dir.path())
        .without_defaults()
        .with_args(&[&format!("--config={}", conf.display())])
        .start();
    app.pretend_time(T0);
    assert!(dir.path().join("from-conf.db").is_file());

    let bad_key = dir.path().join("bad.conf");
    std::fs::write(&bad_key, "[config]\nstate-db = /tmp/x\n").expect("write");
    let out = Command::new(WEBAPP)
        .arg(format!("--config={}", bad_key.display()))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("state-db") && stderr.contains("bad.conf"),
        "{stderr}"
    );
}

#[test]
fn remove_old_jobs_keeps_recent_and_running_jobs() {
    let (_dir, app) = webapp(&["--job-max-age=3600", "--job-keep-per-lorry=0"]);
    app.pretend_time(T0);
    app.seed(&[git_lorry("a", 60, 600), git_lorry("b", 60, 600)]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    app.post_ok("/1.0/job-update", &[("job_id", "1"), ("exit", "0")]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    app.pretend_time(T0 + 3601);
    // Job 1 ended an hour and a second ago; job 2 still runs.
    let answer = app.post_ok("/1.0/remove-old-jobs", &[]);
    assert_eq!(answer["removed_jobs"], serde_json::json!([1]));
    assert_eq!(
        app.get_ok("/1.0/list-jobs")["job_ids"],
        serde_json::json!([2])
    );
    // The form fields override the options.
    app.post_ok("/1.0/job-update", &[("job_id", "2"), ("exit", "0")]);
    let kept = app.post_ok("/1.0/remove-old-jobs", &[("max_age", "0"), ("keep", "1")]);
    assert_eq!(kept["removed_jobs"], serde_json::json!([]));
    let bad = app.post("/1.0/remove-old-jobs", &[("max_age", "old")]);
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[test]
fn json_logs_carry_job_id_and_path() {
    let (dir, app) = webapp(&["--log-format=json"]);
    app.seed(&[git_lorry("logged/repo", 60, 600)]);
    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    app.post_ok("/1.0/job-update", &[("job_id", "1"), ("exit", "0")]);
    app.stop();
    let log = std::fs::read_to_string(dir.path().join("webapp.log")).expect("log");
    let events: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let ended = events
        .iter()
        .find(|e| e["fields"]["message"] == "job ended")
        .expect("a 'job ended' event");
    assert_eq!(ended["fields"]["job_id"], 1);
    assert_eq!(ended["fields"]["path"], "logged/repo");
}

#[test]
fn credentials_are_hidden_from_admins_but_given_to_minions() {
    let (_dir, app) = webapp(&["--publish-failures"]);
    let mut lorry = git_lorry("secret/repo", 60, 600);
    lorry.text = lorry.text.replace(
        "git://example.invalid",
        "https://mirror:s3cr3t@example.invalid",
    );
    app.seed(&[lorry]);
    let job = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    assert!(
        job["text"]
            .as_str()
            .expect("text")
            .contains("mirror:s3cr3t@"),
        "the minion needs it"
    );
    app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", "1"),
            ("exit", "1"),
            (
                "stderr",
                "fatal: could not read https://mirror:s3cr3t@example.invalid/secret/repo\n",
            ),
        ],
    );
    for path in ["/1.0/lorry/secret/repo", "/1.0/status", "/1.0/job/1"] {
        let text = app.get(path).text;
        assert!(
            !text.contains("s3cr3t"),
            "{path} shows the password: {text}"
        );
        assert!(text.contains("***"), "{path}: {text}");
    }
}

/// A lorry removed from CONFGIT and added back while its job runs takes that
/// job up again: give-me-job does not hand it out a second time, and the
/// job's end is recorded on it (issue 19).
#[test]
fn a_lorry_re_added_while_its_job_runs_gets_no_second_job() {
    let (dir, app) = webapp(&[]);
    app.pretend_time(T0);
    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(&confgit).expect("mkdir");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "up", "interval": "1h", "globs": ["*.lorry"]}]"#,
    )
    .expect("conf");
    let lorry_file = confgit.join("a.lorry");
    let spec = r#"{"a": {"type": "git", "url": "file:///nowhere/a"}}"#;
    std::fs::write(&lorry_file, spec).expect("lorry");
    let read = || app.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(read()["lorries_added"], serde_json::json!(["up/a"]));
    let give = || app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    assert_eq!(give()["job_id"], 1);

    std::fs::remove_file(&lorry_file).expect("rm");
    assert_eq!(read()["lorries_removed"], serde_json::json!(["up/a"]));
    std::fs::write(&lorry_file, spec).expect("lorry again");
    assert_eq!(read()["lorries_added"], serde_json::json!(["up/a"]));
    assert_eq!(give(), serde_json::json!({"job_id": null}));
    assert_eq!(app.get_ok("/1.0/lorry/up/a")["running_job"], 1);

    app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", "1"),
            ("exit", "0"),
            ("stdout", ""),
            ("stderr", ""),
        ],
    );
    let lorry = app.get_ok("/1.0/lorry/up/a");
    assert_eq!(
        (&lorry["running_job"], &lorry["last_run_exit"]),
        (&Value::Null, &Value::from("0"))
    );
    assert_eq!(give(), serde_json::json!({"job_id": null}));
    app.pretend_time(T0 + 3600);
    assert_eq!(give()["job_id"], 2);
}

/// A STATEDB once served with `--debug-allow-pretend-time`, served again
/// without it, runs on the real clock: the pretended time was never stored
/// (issue 19).
#[test]
fn pretended_time_does_not_outlive_the_webapp() {
    let (dir, app) = webapp(&[]);
    app.pretend_time(T0);
    app.seed(&[git_lorry("upstream/foo", 3600, 600)]);
    assert_eq!(
        app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")])["job_id"],
        1
    );
    assert_eq!(app.get_ok("/1.0/job/1")["started"], T0);
    app.stop();

    let d = dir.path();
    let app = Webapp::init(d)
        .without_defaults()
        .with_args(&[
            &format!("--statedb={}", d.join("webapp.db").display()),
            &format!("--configuration-directory={}", d.join("confgit").display()),
            "--no-debug-real-confgit",
            "--git-server-type=local",
            &format!("--local-base-directory={}", d.join("downstream").display()),
        ])
        .start();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let done = app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", "1"),
            ("exit", "0"),
            ("stdout", ""),
            ("stderr", ""),
        ],
    );
    let ended = done["ended"].as_i64().expect("ended");
    assert!(ended >= before, "job ended at {ended}, before {before}");
}

/// Two read-configuration calls at once, racing force-ls-troves and
/// give-me-job, against the real webapp: every answer is a 200 (or 202 for
/// a read coalesced into the next), and in the
/// end every lorry of CONFGIT and of the host's listing is there once, and
/// no lorry was handed out twice.
#[test]
fn read_configuration_races_itself_ls_troves_and_give_me_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed: Vec<String> = (0..30).map(|i| format!("h/r{i:02}")).collect();
    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(&confgit).expect("confgit");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "c", "interval": "1h", "globs": ["*.lorry"]},
            {"type": "trove", "host": "fake.example", "protocol": "ssh",
             "prefixmap": {"h": "h"}, "interval": "1h", "ls-interval": "1h"}]"#,
    )
    .expect("conf");
    let mut expected: BTreeSet<String> = listed.iter().cloned().collect();
    for file in 0..3 {
        let mut text = String::new();
        for i in 0..10 {
            let name = format!("l{file}{i}");
            text.push_str(&format!(
                "{name}: {{type: git, url: 'git://example.invalid/{name}'}}\n"
            ));
            expected.insert(format!("c/{name}"));
        }
        std::fs::write(confgit.join(format!("f{file}.lorry")), text).expect("lorry");
    }
    let app = Webapp::init(dir.path()).with_fake_host(&listed).start();
    app.pretend_time(T0);

    let post = |path: &str, form: &[(&str, &str)]| {
        let answer = app.post(path, form);
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        answer.body
    };
    let handed: Vec<String> = std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..5 {
                    // 202: coalesced into one more read after the running one.
                    let answer = app.post("/1.0/read-configuration", &[]);
                    assert!(
                        [200, 202].contains(&answer.status),
                        "read-configuration: {answer:?}"
                    );
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..5 {
                post("/1.0/force-ls-troves", &[]);
            }
        });
        scope
            .spawn(|| {
                let mut got = Vec::new();
                for _ in 0..40 {
                    let job = post("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
                    if let Some(path) = job["path"].as_str() {
                        got.push(path.to_owned());
                    }
                }
                got
            })
            .join()
            .expect("give-me-job thread")
    });
    let unique: BTreeSet<&String> = handed.iter().collect();
    assert_eq!(unique.len(), handed.len(), "handed out twice: {handed:?}");

    // Settled: one more read and listing change nothing.
    let read = post("/1.0/read-configuration", &[]);
    assert_eq!(read["lorries_added"], serde_json::json!([]), "{read}");
    assert_eq!(read["lorries_removed"], serde_json::json!([]), "{read}");
    let listing = post("/1.0/force-ls-troves", &[]);
    assert_eq!(
        listing["hosts"][0]["lorries_added"],
        serde_json::json!([]),
        "{listing}"
    );
    assert_eq!(listing["hosts"][0]["lorries_unchanged"], 30, "{listing}");
    let queue = app.queue();
    assert_eq!(queue.len(), expected.len(), "{queue:?}");
    assert_eq!(queue.iter().cloned().collect::<BTreeSet<_>>(), expected);
    // Every lorry handed out still has its job running, and only those.
    let running = app.get_ok("/1.0/list-running-jobs")["running_jobs"]
        .as_array()
        .expect("running")
        .len();
    assert_eq!(running, handed.len());
    for path in &handed {
        let lorry = app.get_ok(&format!("/1.0/lorry/{path}"));
        assert!(lorry["running_job"].is_i64(), "{path}: {lorry}");
    }
}
