//! The event log (`/1.0/events`, JSON and server-sent events) from a real
//! scenario: the real `lorry` run by a real minion against `git
//! http-backend` upstreams reached with credentials in their URLs (the
//! planted secret), CONFGIT problems, an Upstream Host whose listing fails
//! and then shrinks too much, the queue stopped and started, overdue
//! lorries found by the housekeeping task.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common;
use common::http_backend::serve_http_with_auth;
use common::{READY_TIMEOUT, Webapp, git, wait_for};
use serde_json::{Value, json};

const SECRET: &str = "PLANTED-SECRET-7f3a";
const T0: i64 = 1_800_000_000;

/// Every event, read page by page with `limit`, checking the pages join up.
fn all_events(webapp: &Webapp, query: &str, limit: usize) -> Vec<Value> {
    let mut events: Vec<Value> = Vec::new();
    let mut since = 0;
    loop {
        let page = webapp.get_ok(&format!("/1.0/events?since={since}&limit={limit}{query}"));
        let got = page["events"].as_array().expect("events").clone();
        assert!(got.len() <= limit, "{page}");
        events.extend(got);
        since = page["next_since"].as_i64().expect("next_since");
        if page["more"] != true {
            return events;
        }
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn wait_for_event(webapp: &Webapp, kind: &str, path: &str) -> Value {
    wait_for(&format!("{kind} of {path}"), READY_TIMEOUT, || {
        all_events(webapp, &format!("&type={kind}&prefix={path}"), 100)
            .into_iter()
            .find(|e| e["path"] == path)
    })
}

/// The events of a server-sent event stream after `last_id`, read until
/// `count` have come.
fn stream(webapp: &Webapp, query: &str, last_id: Option<i64>, count: usize) -> Vec<Value> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mut request = client
        .get(webapp.url(&format!("/1.0/events{query}")))
        .header("accept", "text/event-stream");
    if let Some(id) = last_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().expect("stream");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    let mut events = Vec::new();
    let mut id = None;
    for line in BufReader::new(response).lines() {
        let line = line.expect("line");
        if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim().parse::<i64>().expect("id"));
        } else if let Some(data) = line.strip_prefix("data:") {
            let event: Value = serde_json::from_str(data.trim()).expect("json");
            assert_eq!(Some(event["id"].as_i64().expect("id")), id, "{event}");
            events.push(event);
            if events.len() == count {
                break;
            }
        }
    }
    events
}

#[test]
fn state_changes_become_events_in_the_log_and_the_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstreams = dir.path().join("upstreams");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    common::one_commit_upstream(&upstreams, &work, "good");
    let (_http, port) =
        serve_http_with_auth(&upstreams, dir.path(), Some(&format!("mirror:{SECRET}")));
    let fake = dir.path().join("fake.json");
    let webapp = Webapp::init(dir.path())
        .with_args(&[
            "--housekeeping-interval=1".to_owned(),
            "--overdue-factor=2".into(),
            format!("--debug-fake-upstream-host=fake.example={}", fake.display()),
        ])
        .start();
    webapp.pretend_time(T0);

    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(confgit.join("lorries")).expect("mkdir");
    let url = |name: &str| format!("http://mirror:{SECRET}@127.0.0.1:{port}/{name}.git");
    std::fs::write(
        confgit.join("lorries/ev.lorry"),
        json!({
            "good": {"type": "git", "url": url("good")},
            "later": {"type": "git", "url": url("later")},
        })
        .to_string(),
    )
    .expect("ev.lorry");
    std::fs::write(
        confgit.join("lorries/bad.lorry"),
        json!({"bad": {"type": "nonsense", "url": url("bad")}}).to_string(),
    )
    .expect("bad.lorry");
    let conf = json!([
        {"type": "lorries", "prefix": "ev", "interval": "1h", "globs": ["lorries/*.lorry"]},
        {"type": "trove", "host": "fake.example", "protocol": "ssh",
         "prefixmap": {"up": "up"}, "ls-interval": "1H"},
    ]);
    webapp.configure(&conf);

    // The listing fails (no file yet), twice with the same error: one event.
    webapp.post_ok("/1.0/force-ls-troves", &[]);
    webapp.post_ok("/1.0/force-ls-troves", &[]);
    // Then it works, then it would remove 3 of 4: the shrink guard.
    let listing = |n: usize| {
        let list: Vec<String> = (0..n).map(|i| format!("up/r{i}")).collect();
        std::fs::write(&fake, json!({ "ls-output": list }).to_string()).expect("fake");
    };
    listing(4);
    webapp.post_ok("/1.0/force-ls-troves", &[]);
    listing(1);
    webapp.post_ok("/1.0/force-ls-troves", &[]);
    // The host's lorries would only fail here: out of the queue's way.
    webapp.configure(&json!([conf[0]]));

    let _minion = common::RealMinion::start(&webapp, dir.path());
    let ended = wait_for_event(&webapp, "job-ended", "ev/good");
    assert_eq!(ended["body"]["exit"], 0, "{ended}");
    let failed = wait_for_event(&webapp, "lorry-failed", "ev/later");
    assert_eq!(failed["body"]["consecutive_failures"], 1, "{failed}");
    // The job's output names the URL (hidden); the events never do.
    let job = webapp.job(failed["body"]["job_id"].as_i64().expect("job id"));
    assert!(
        job["output"]
            .as_str()
            .expect("output")
            .contains("later.git"),
        "{job}"
    );

    // Never mirrored and failed twice (the factor): overdue, once, found by
    // the housekeeping task.
    webapp.pretend_time(T0 + 3_601);
    let failed = wait_for("a second failure of ev/later", READY_TIMEOUT, || {
        of_type(&all_events(&webapp, "&prefix=ev/later", 7), "lorry-failed")
            .last()
            .filter(|e| e["body"]["consecutive_failures"] == 2)
            .map(|e| (*e).clone())
    });
    let overdue = wait_for_event(&webapp, "lorry-overdue", "ev/later");
    assert!(overdue["id"].as_i64() > failed["id"].as_i64());
    assert_eq!(overdue["body"]["consecutive_failures"], 2, "{overdue}");

    // The upstream appears: the next run recovers.
    common::one_commit_upstream(&upstreams, &work, "later");
    webapp.pretend_time(T0 + 2 * 3_601);
    let recovered = wait_for_event(&webapp, "lorry-recovered", "ev/later");
    assert_eq!(recovered["body"]["failures"], 2, "{recovered}");

    webapp.post_ok("/1.0/stop-queue", &[]);
    webapp.post_ok("/1.0/stop-queue", &[]);
    webapp.post_ok("/1.0/start-queue", &[]);

    // Let housekeeping go round again: still one overdue event per spell.
    std::thread::sleep(Duration::from_millis(2_500));
    let events = all_events(&webapp, "", 3);
    let count = |kind: &str| of_type(&events, kind).len();
    assert_eq!(count("host-listing-failed"), 1, "{events:#?}");
    assert_eq!(count("host-shrink-refused"), 1, "{events:#?}");
    assert_eq!(count("config-problems"), 1, "{events:#?}");
    assert_eq!(count("queue-stopped"), 1, "{events:#?}");
    assert_eq!(count("queue-started"), 1, "{events:#?}");
    assert_eq!(of_type(&events, "lorry-overdue").len(), 1, "{events:#?}");
    assert_eq!(
        count("job-started"),
        count("job-ended"),
        "every job that started has ended: {events:#?}"
    );
    let shrink = of_type(&events, "host-shrink-refused")[0];
    assert_eq!(
        (
            &shrink["host"],
            &shrink["body"]["known"],
            &shrink["body"]["vanished"]
        ),
        (&json!("fake.example"), &json!(4), &json!(3))
    );
    let problems = of_type(&events, "config-problems")[0];
    assert!(
        problems["body"]["problems"][0]["problem"]
            .as_str()
            .expect("problem")
            .contains("nonsense"),
        "{problems}"
    );
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let raw = webapp.get("/1.0/events?limit=1000").text;
    assert!(!raw.contains(SECRET), "a secret in the events: {raw}");

    // Filters: types (repeated and comma-separated) and prefixes.
    let jobs = all_events(
        &webapp,
        "&type=job-started,job-ended&type=lorry-failed",
        100,
    );
    assert!(!jobs.is_empty());
    assert!(
        jobs.iter()
            .all(|e| ["job-started", "job-ended", "lorry-failed"]
                .contains(&e["type"].as_str().unwrap_or(""))),
        "{jobs:#?}"
    );
    let good = all_events(&webapp, "&prefix=ev/good", 100);
    assert!(good.iter().all(|e| e["path"] == "ev/good"), "{good:#?}");
    let host = all_events(&webapp, "&prefix=fake.", 100);
    assert_eq!(host.len(), 2, "{host:#?}");

    // The stream: from the start, and resumed after a Last-Event-ID.
    let streamed = stream(&webapp, "", None, events.len());
    assert_eq!(streamed, events);
    let third = ids[2];
    let resumed = stream(&webapp, "", Some(third), 2);
    assert_eq!(resumed, events[3..5]);
    let streamed = stream(&webapp, "?type=queue-started", None, 1);
    assert_eq!(streamed[0]["type"], "queue-started");
    // A live event reaches a waiting stream.
    let last = *ids.last().expect("ids");
    let live = std::thread::scope(|scope| {
        let reader = scope.spawn(|| stream(&webapp, "?type=queue-stopped", Some(last), 1));
        std::thread::sleep(Duration::from_millis(300));
        webapp.post_ok("/1.0/stop-queue", &[]);
        reader.join().expect("reader")
    });
    assert_eq!(live[0]["type"], "queue-stopped");
    assert!(live[0]["id"].as_i64() > Some(last));
}

#[test]
fn bad_queries_are_refused_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = Webapp::init(dir.path()).start();
    for (query, named) in [
        ("type=nonsense", "nonsense"),
        ("since=abc", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("colour=red", "colour"),
    ] {
        let answer = webapp.get(&format!("/1.0/events?{query}"));
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
        assert!(
            answer.body["error"].as_str().unwrap_or("").contains(named),
            "{query}: {answer:?}"
        );
    }
    let page = webapp.get_ok("/1.0/events?since=-5&prefix=");
    assert_eq!(page, json!({"events": [], "next_since": 0, "more": false}));
}

/// Old events go after `--event-max-age`; ids are never reused.
#[test]
fn old_events_are_forgotten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = Webapp::init(dir.path())
        .with_args(&["--housekeeping-interval=1", "--event-max-age=100"])
        .start();
    webapp.pretend_time(T0);
    webapp.post_ok("/1.0/stop-queue", &[]);
    webapp.pretend_time(T0 + 50);
    webapp.post_ok("/1.0/start-queue", &[]);
    webapp.pretend_time(T0 + 120);
    let left = wait_for("the first event to go", READY_TIMEOUT, || {
        let events = all_events(&webapp, "", 10);
        (events.len() == 1).then_some(events)
    });
    assert_eq!(left[0]["type"], "queue-started");
    assert_eq!(left[0]["id"], 2);
    webapp.post_ok("/1.0/stop-queue", &[]);
    let newest = all_events(&webapp, "&since=2", 10);
    assert_eq!(newest[0]["id"], 3);
}

const ADMIN: &str = env!("CARGO_BIN_EXE_lorry-controller-admin");

fn admin(webapp: &Webapp, args: &[&str]) -> std::process::Output {
    Command::new(ADMIN)
        .arg(format!("--webapp-port={}", webapp.port))
        .args(args)
        .env_remove("LORRY_CONTROLLER_ADMIN_TOKEN")
        .output()
        .expect("run admin")
}

/// `lorry-controller-admin events` (the newest, filtered, followed) and
/// the status page's last events.
#[test]
fn the_admin_cli_and_the_status_page_show_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = Webapp::init(dir.path()).start();
    webapp.pretend_time(T0);
    for _ in 0..3 {
        webapp.post_ok("/1.0/stop-queue", &[]);
        webapp.post_ok("/1.0/start-queue", &[]);
    }
    let out = admin(&webapp, &["events", "--last", "2"]);
    assert!(out.status.success(), "{}", common::all_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("#5  queue-stopped"), "{text}");
    assert!(lines[1].contains("#6  queue-started"), "{text}");
    assert!(lines[0].contains("2027-01-15"), "{text}");

    let out = admin(
        &webapp,
        &[
            "--json",
            "events",
            "--type",
            "queue-stopped",
            "--since",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", common::all_output(&out));
    let page: Value = serde_json::from_slice(&out.stdout).expect("json");
    let ids: Vec<i64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [3, 5]);

    let out = admin(&webapp, &["events", "--type", "nonsense"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::all_output(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));

    // --follow prints what happens after it started.
    let mut follow = Command::new(ADMIN)
        .arg(format!("--webapp-port={}", webapp.port))
        .args([
            "--json",
            "events",
            "--follow",
            "--last",
            "1",
            "--type",
            "queue-stopped",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("follow");
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let first: Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("json");
    assert_eq!(first["id"], 5);
    webapp.post_ok("/1.0/stop-queue", &[]);
    let next: Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("json");
    assert_eq!(
        (next["id"].clone(), next["type"].clone()),
        (json!(7), json!("queue-stopped"))
    );
    let _ = follow.kill();
    let _ = follow.wait();

    let page = webapp.get("/1.0/status-html").text;
    assert!(page.contains("Last events"), "{page}");
    assert!(page.contains("queue-stopped"), "{page}");
}

/// Upstream force-pushes a branch and deletes another: the next job's
/// job-ended carries its summary and an upstream-refs-rewritten event says
/// which refs, with where their old tips were preserved.
#[test]
fn a_rewritten_upstream_is_an_event_with_what_was_preserved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstreams = dir.path().join("upstreams");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    common::one_commit_upstream(&upstreams, &work, "rw");
    let clone = work.join("rw");
    git(&clone, &["push", "-q", "origin", "main:refs/heads/gone"]);
    let (_http, port) =
        serve_http_with_auth(&upstreams, dir.path(), Some(&format!("mirror:{SECRET}")));
    let webapp = Webapp::init(dir.path()).start();
    webapp.pretend_time(T0);
    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(confgit.join("lorries")).expect("mkdir");
    std::fs::write(
        confgit.join("lorries/rw.lorry"),
        json!({"rw": {"type": "git",
                      "url": format!("http://mirror:{SECRET}@127.0.0.1:{port}/rw.git")}})
        .to_string(),
    )
    .expect("rw.lorry");
    webapp.configure(&json!([
        {"type": "lorries", "prefix": "ev", "interval": "1h", "globs": ["lorries/*.lorry"]},
    ]));
    let _minion = common::RealMinion::start(&webapp, dir.path());
    let first = wait_for_event(&webapp, "job-ended", "ev/rw");
    let summary = &first["body"]["summary"];
    assert_eq!(first["body"]["exit"], 0, "{first}");
    assert_eq!(summary["specs"][0]["name"], "ev/rw", "{first}");
    assert_eq!(summary["specs"][0]["importer"], "git", "{first}");
    assert_eq!(summary["specs"][0]["ok"], true, "{first}");
    assert_eq!(summary["specs"][0]["refs_updated"], 2, "{first}");
    assert_eq!(summary["specs"][0]["pushed"], "yes", "{first}");
    assert_eq!(summary["more"], 0, "{first}");

    // Upstream rewrites main and deletes gone.
    git(&clone, &["commit", "-q", "--amend", "-m", "rewritten"]);
    git(&clone, &["push", "-q", "--force", "origin", "main"]);
    git(&clone, &["push", "-q", "origin", ":refs/heads/gone"]);
    webapp.pretend_time(T0 + 3_601);
    let rewritten = wait_for_event(&webapp, "upstream-refs-rewritten", "ev/rw");
    let body = &rewritten["body"];
    assert_eq!(body["more"], 0, "{rewritten}");
    let refs = body["refs"].as_array().expect("refs");
    let find = |name: &str| {
        refs.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {rewritten}"))
    };
    let main = find("refs/heads/main");
    let gone = find("refs/heads/gone");
    assert_eq!(refs.len(), 2, "{rewritten}");
    assert_eq!(main["spec"], "ev/rw");
    assert!(
        main["new"].is_string() && main["old"] != main["new"],
        "{main}"
    );
    assert!(gone["new"].is_null(), "{gone}");
    for r in [main, gone] {
        assert!(
            r["kept_as"]
                .as_str()
                .is_some_and(|k| k.starts_with("refs/lorry/preserved/")),
            "{r}"
        );
    }
    // The kept tip is really in the mirror downstream.
    let downstream = dir.path().join("downstream/ev/rw.git");
    let kept = main["kept_as"].as_str().expect("kept_as");
    let oid = git(&downstream, &["rev-parse", kept]);
    assert_eq!(oid.trim(), main["old"].as_str().expect("old"));
    let job = rewritten["body"]["job_id"].as_i64().expect("job id");
    let ended = wait_for_event(&webapp, "job-ended", "ev/rw");
    let ended = all_events(&webapp, "&type=job-ended", 100)
        .into_iter()
        .find(|e| e["body"]["job_id"] == job)
        .unwrap_or(ended);
    assert_eq!(ended["body"]["job_id"], job, "{ended}");
    assert_eq!(
        ended["body"]["summary"]["specs"][0]["refs_preserved"], 2,
        "{ended}"
    );
    assert!(
        rewritten["id"].as_i64() > ended["id"].as_i64(),
        "{rewritten} {ended}"
    );
    let raw = webapp.get("/1.0/events?limit=1000").text;
    assert!(!raw.contains(SECRET), "a secret in the events: {raw}");
}

/// Less free space than `--min-free-disk` on STATEDB's file system is a
/// disk-low event, more again a disk-ok; a restart records no repeat.
#[test]
fn low_disk_is_an_event_once_per_spell() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk_events = |webapp: &Webapp| all_events(webapp, "&type=disk-low,disk-ok", 100);
    // More than any disk here has: low.
    let webapp = Webapp::init(dir.path())
        .with_args(&["--housekeeping-interval=1", "--min-free-disk=1000000TiB"])
        .start();
    let low = wait_for("disk-low", READY_TIMEOUT, || {
        disk_events(&webapp).into_iter().next()
    });
    assert_eq!(low["type"], "disk-low", "{low}");
    assert!(low["body"]["free"].as_u64().is_some(), "{low}");
    assert_eq!(
        low["body"]["min_free_disk"].as_u64(),
        Some(1_000_000u64 << 40),
        "{low}"
    );
    // Looked again: still one.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(disk_events(&webapp).len(), 1);
    let webapp = webapp.restart();
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(disk_events(&webapp).len(), 1, "a restart repeats nothing");
    drop(webapp);
    // A byte is always free: ok again, once.
    let webapp = Webapp::init(dir.path())
        .with_args(&["--housekeeping-interval=1", "--min-free-disk=1"])
        .start();
    let ok = wait_for("disk-ok", READY_TIMEOUT, || {
        disk_events(&webapp)
            .into_iter()
            .find(|e| e["type"] == "disk-ok")
    });
    assert_eq!(ok["body"]["min_free_disk"], 1, "{ok}");
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(disk_events(&webapp).len(), 2);
}
