//! `GET /1.0/status` served from memory: its `ETag` changes with every
//! change of state (whatever made it), `If-None-Match` gets a 304 without
//! a body, hostile headers are harmless; and the status file follows the
//! changes, written atomically.

use std::time::Duration;

use serde_json::Value;

use crate::common::{Webapp, git_lorry, wait_for};

const T0: i64 = 1_700_000_000;

/// `GET /1.0/status` with these `If-None-Match` values: status, ETag, body.
fn status(app: &Webapp, if_none_match: &[&[u8]]) -> (u16, String, Vec<u8>) {
    let mut request = reqwest::blocking::Client::new().get(app.url("/1.0/status"));
    for tag in if_none_match {
        request = request.header(
            "if-none-match",
            reqwest::header::HeaderValue::from_bytes(tag).expect("header value"),
        );
    }
    let answer = request.send().expect("GET /1.0/status");
    let code = answer.status().as_u16();
    let etag = answer
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (code, etag, answer.bytes().expect("body").to_vec())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON status")
}

#[test]
fn the_status_etag_follows_every_change_and_answers_304_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("mkdir");
    let file = www.join("status.html");
    let app = Webapp::init(dir.path())
        .with_args(&[format!("--status-html={}", file.display())])
        .start();
    app.pretend_time(T0);
    let conf = serde_json::json!([{
        "type": "lorries", "prefix": "up", "interval": "1h", "globs": ["*.lorry"]
    }]);
    std::fs::write(
        dir.path().join("confgit/a.lorry"),
        r#"{"a": {"type": "git", "url": "git://example.invalid/a"}}"#,
    )
    .expect("a.lorry");
    app.configure(&conf);

    let (code, etag, body) = status(&app, &[]);
    assert_eq!(code, 200);
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let first = json(&body);
    assert_eq!(first["run_queue"][0]["path"], "up/a");
    assert_eq!(first["links"], true);

    // Unchanged: 304 with no body for the ETag, weak or in a list.
    for tags in [
        vec![etag.as_bytes().to_vec()],
        vec![format!("W/{etag}").into_bytes()],
        vec![b"\"old\"".to_vec(), format!(" {etag} ").into_bytes()],
    ] {
        let tags: Vec<&[u8]> = tags.iter().map(Vec::as_slice).collect();
        let (code, again, body) = status(&app, &tags);
        assert_eq!((code, &again), (304, &etag), "{tags:?}");
        assert!(body.is_empty(), "a 304 has no body");
    }
    assert_eq!(status(&app, &[b"\"stale\""]).0, 200);

    // Each change gives a new ETag and body; the previous ETag then gets
    // the whole body.
    let mut etags = vec![etag];
    let mut after = |what: &str| {
        let previous = etags.last().expect("an ETag").clone();
        let (code, etag, body) = status(&app, &[previous.as_bytes()]);
        assert_eq!(code, 200, "{what}: the old ETag is stale");
        assert!(!etags.contains(&etag), "{what}: the ETag did not change");
        etags.push(etag);
        json(&body)
    };

    // A lorry added by read-configuration.
    std::fs::write(
        dir.path().join("confgit/b.lorry"),
        r#"{"b": {"type": "git", "url": "git://example.invalid/b"}}"#,
    )
    .expect("b.lorry");
    assert_eq!(
        app.configure(&conf)["lorries_added"],
        serde_json::json!(["up/b"])
    );
    let status_now = after("lorry added");
    let paths: Vec<&str> = status_now["run_queue"]
        .as_array()
        .expect("run_queue")
        .iter()
        .filter_map(|l| l["path"].as_str())
        .collect();
    assert_eq!(paths, ["up/a", "up/b"]);

    // A job started, then ended.
    let (job, path) = app.give_me_job().expect("a job");
    let status_now = after("job started");
    let entry = |status: &Value| {
        status["run_queue"]
            .as_array()
            .expect("run_queue")
            .iter()
            .find(|l| l["path"] == path.as_str())
            .cloned()
            .expect("the job's lorry")
    };
    assert_eq!(entry(&status_now)["running_job"], job);
    app.finish(job, 0);
    let status_now = after("job ended");
    assert_eq!(entry(&status_now)["running_job"], Value::Null);
    assert_eq!(entry(&status_now)["last_run_exit"], "0");

    // The queue stopped.
    app.post_ok("/1.0/stop-queue", &[]);
    assert_eq!(after("queue stopped")["running_queue"], false);

    // STATEDB written by another process (as `lorry-controller-admin
    // restore` or a test would): seen too.
    app.seed(&[git_lorry("other/c", 60, 60)]);
    assert!(
        after("written by another process")["run_queue"]
            .as_array()
            .expect("run_queue")
            .iter()
            .any(|l| l["path"] == "other/c")
    );

    // Time alone: the timestamp and due times move.
    app.pretend_time(T0 + 61);
    assert_eq!(
        after("a minute later")["timestamp"],
        "2023-11-14 22:14:21 UTC"
    );

    // The status file follows, written atomically: no temporary file left,
    // and what it shows is whole.
    let page = wait_for(
        "the status file showing the last change",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&file)
                .ok()
                .filter(|page| page.contains("other/c") && page.contains("Queue stopped"))
        },
    );
    assert!(page.trim_end().ends_with("</html>"), "{page}");
    wait_for("no temporary file", Duration::from_secs(30), || {
        let names: Vec<_> = std::fs::read_dir(&www)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        (names == ["status.html"]).then_some(())
    });
}

#[test]
fn hostile_if_none_match_headers_are_harmless() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).start();
    app.pretend_time(T0);
    app.seed(&[git_lorry("up/a", 3600, 600)]);
    let (_, etag, body) = status(&app, &[]);
    let huge = format!("{}\"x\"", "\"x\", ".repeat(8_000));
    let tags: Vec<Vec<u8>> = (0..200).map(|i| format!("\"{i}\"").into_bytes()).collect();
    let tags: Vec<&[u8]> = tags.iter().map(Vec::as_slice).collect();
    let many = tags[..80].to_vec();
    for tags in [
        vec![&b"\"\xff\xfe\x80\""[..]],
        vec![b"W/"],
        vec![b",,, ,"],
        vec![b"\"unterminated"],
        vec![huge.as_bytes()],
        many,
    ] {
        let (code, again, answer) = status(&app, &tags);
        assert_eq!(
            (code, &again),
            (200, &etag),
            "{:?}",
            String::from_utf8_lossy(tags[0])
        );
        assert!(answer == body, "the whole body");
    }
    // More headers than the webapp reads: refused, not a 500.
    let (code, _, _) = status(&app, &tags);
    assert!((400..500).contains(&code), "{code}");
    // Bigger than any header the webapp reads: refused, not a 500.
    let enormous = "\"x\", ".repeat(200_000);
    match reqwest::blocking::Client::new()
        .get(app.url("/1.0/status"))
        .header("if-none-match", enormous)
        .send()
    {
        Ok(answer) => assert!(answer.status().is_client_error(), "{}", answer.status()),
        Err(err) => assert!(!err.is_timeout(), "{err}"),
    }
    assert_eq!(status(&app, &[]).0, 200, "still serving");
}
