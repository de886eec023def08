//! Router-level tests of the admin pages: a real STATEDB in a temporary
//! directory, requests through the whole router with `oneshot`.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use lc_core::db::{JobUpdate, NewLorry, StateDb};
use tower::ServiceExt;

use lc_hosts::Downstream;
use lc_hosts::downstream::Local;

use crate::{AppState, WebConfig, router};

const NOW: i64 = 1_700_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
}

fn config(dir: &Path, status_html: Option<PathBuf>, publish_failures: bool) -> WebConfig {
    let downstream = Downstream::Local(Local::new(dir.join("downstream")));
    WebConfig {
        debug_real_confgit: false,
        status_html,
        ghost_timeout: 3600,
        job_max_age: 86_400,
        publish_failures,
        allow_pretend_time: true,
        ..WebConfig::new(dir.join("confgit"), downstream)
    }
}

fn fixture_with(configure: impl FnOnce(&Path) -> WebConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = StateDb::open(&dir.path().join("state.db")).expect("open");
    db.set_pretend_time(NOW);
    let config = configure(dir.path());
    Fixture {
        _dir: dir,
        state: AppState::new(db, config),
    }
}

fn fixture() -> Fixture {
    fixture_with(|dir| config(dir, None, true))
}

fn lorry(path: &str, text: &str) -> NewLorry {
    NewLorry {
        path: path.into(),
        text: text.into(),
        from_host: String::new(),
        from_path: String::new(),
        interval: 3600,
        lorry_timeout: 600,
    }
}

fn git_spec(path: &str, url: &str) -> String {
    serde_json::json!({ path: { "type": "git", "url": url } }).to_string()
}

impl Fixture {
    fn seed(&self, lorries: &[NewLorry]) {
        self.state
            .db
            .write(|tx| {
                for l in lorries {
                    tx.upsert_lorry(l)?;
                }
                Ok(())
            })
            .expect("seed");
    }

    /// Starts the job of `path` and reports `output`, ending it with `exit` if given.
    fn run(&self, path: &str, output: &str, exit: Option<i64>) -> i64 {
        let path = path.to_owned();
        self.state
            .db
            .write(|tx| tx.move_to_top(&path))
            .expect("move");
        let (id, info) = self
            .state
            .db
            .write(|tx| tx.start_next_job("minion", 42))
            .expect("give")
            .expect("a job");
        assert_eq!(info.path, path);
        self.update(id, output, exit);
        id
    }

    fn update(&self, id: i64, output: &str, exit: Option<i64>) {
        let update = JobUpdate {
            exit,
            stdout: output.into(),
            ..JobUpdate::default()
        };
        self.state
            .db
            .write(|tx| tx.update_job(id, &update))
            .expect("update");
    }

    async fn get(&self, uri: &str) -> (StatusCode, String, String) {
        let response = router(self.state.clone())
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).expect("utf-8"),
        )
    }

    async fn page(&self, uri: &str) -> String {
        let (status, content_type, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
        assert!(content_type.starts_with("text/html"), "{content_type}");
        body
    }
}

fn rows(html: &str) -> Vec<&str> {
    html.split("<td class=\"path\"><a href=\"/1.0/lorry-html/")
        .skip(1)
        .map(|rest| &rest[rest.find('>').map_or(0, |i| i + 1)..rest.find("</a>").unwrap_or(0)])
        .collect()
}

#[tokio::test]
async fn html_in_paths_specs_and_output_renders_as_text() {
    let fx = fixture();
    let evil = "up/<script>alert(1)</script>";
    fx.seed(&[lorry(
        evil,
        &git_spec(evil, "https://bob:s3cret@example.com/<b>.git"),
    )]);
    let job = fx.run(evil, "<script>alert('out')</script>\n", Some(1));

    for uri in [
        "/1.0/status-html".to_owned(),
        format!("/1.0/lorry-html/{}", super::encode_path(evil)),
        format!("/1.0/job-html/{job}"),
        "/1.0/list-jobs-html".to_owned(),
    ] {
        let html = fx.page(&uri).await;
        assert!(
            !html.contains("<script>alert"),
            "{uri} has raw HTML: {html}"
        );
        assert!(
            html.contains("&#60;script&#62;alert"),
            "{uri} lost the text"
        );
        assert!(!html.contains("s3cret"), "{uri} shows a password");
    }
    let lorry_page = fx
        .page(&format!("/1.0/lorry-html/{}", super::encode_path(evil)))
        .await;
    assert!(lorry_page.contains("https://***@example.com/&#60;b&#62;.git"));
    // The redirect back to the lorry page is a path on this server.
    assert!(
        lorry_page.contains("value=\"/1.0/lorry-html/up/%3Cscript%3Ealert%281%29%3C/script%3E\"")
    );
}

#[tokio::test]
async fn status_page_counts_orders_and_publishes_failures() {
    let fx = fixture();
    fx.seed(&[
        lorry("a/ok", &git_spec("a/ok", "git://x/ok")),
        lorry("a/broken", &git_spec("a/broken", "git://x/broken")),
        lorry("b/waiting", &git_spec("b/waiting", "git://x/waiting")),
        lorry("b/busy", &git_spec("b/busy", "git://x/busy")),
    ]);
    fx.run("a/ok", "fine\n", Some(0));
    fx.run("a/broken", "fatal: <repository> not found\n", Some(128));
    fx.run("b/busy", "counting\n", None);

    let html = fx.page("/1.0/status-html").await;
    // Failed first, then the queue: the due lorry, then by due time.
    assert_eq!(rows(&html), ["a/broken", "b/waiting", "a/ok", "b/busy"]);
    for (count, label) in [
        (4, "lorries"),
        (1, "failed"),
        (1, "due"),
        (1, "running"),
        (1, "fresh"),
    ] {
        assert!(
            html.contains(&format!(
                "<span class=\"count\">{count}</span><span class=\"label\">{label}</span>"
            )),
            "no count {count} {label}"
        );
    }
    assert!(html.contains("<pre class=\"output\">fatal: &#60;repository&#62; not found\n</pre>"));
    assert!(html.contains("Queue running"));
    assert!(html.contains("action=\"/1.0/stop-queue\""));
    assert!(html.contains("name=\"redirect\" value=\"/1.0/status-html\""));

    // Without --publish-failures the error stays off the status page.
    let quiet = fixture_with(|dir| config(dir, None, false));
    quiet.seed(&[lorry("x", &git_spec("x", "git://x/x"))]);
    quiet.run("x", "secret-ish failure text\n", Some(1));
    let html = quiet.page("/1.0/status-html").await;
    assert!(!html.contains("secret-ish failure text"));
    assert!(html.contains("badge failed"));
}

#[tokio::test]
async fn status_page_filters_and_pages() {
    let fx = fixture();
    let mut lorries: Vec<NewLorry> = (0..250)
        .map(|i| {
            let path = format!("up/r{i:03}");
            lorry(&path, &git_spec(&path, "git://x/r"))
        })
        .collect();
    lorries.push(lorry("other/z", &git_spec("other/z", "git://x/z")));
    fx.seed(&lorries);
    fx.run("up/r007", "no\n", Some(1));

    let first = fx.page("/1.0/status-html").await;
    assert_eq!(rows(&first).len(), 100);
    assert_eq!(rows(&first)[0], "up/r007");
    assert!(first.contains("Showing 1–100 of 251 lorries"));
    assert!(first.contains("href=\"/1.0/status-html?page=3\""));

    let third = fx.page("/1.0/status-html?page=3").await;
    assert_eq!(rows(&third).len(), 51);
    let beyond = fx.page("/1.0/status-html?page=9").await;
    assert!(rows(&beyond).is_empty());

    let other = fx.page("/1.0/status-html?prefix=other%2F").await;
    assert_eq!(rows(&other), ["other/z"]);
    assert!(other.contains("value=\"other/\""));

    let failed = fx.page("/1.0/status-html?prefix=up%2F&state=failed").await;
    assert_eq!(rows(&failed), ["up/r007"]);
    let fresh = fx.page("/1.0/status-html?state=fresh").await;
    assert!(rows(&fresh).is_empty());
    // Page links keep the filter.
    let due = fx.page("/1.0/status-html?prefix=up%2F&state=due").await;
    assert!(due.contains("Showing 1–100 of 249 lorries"));
    assert!(due.contains("href=\"/1.0/status-html?prefix=up%2F&#38;state=due&#38;page=2\""));
}

#[tokio::test]
async fn unknown_things_and_bad_queries_are_4xx_pages() {
    let fx = fixture();
    for (uri, status) in [
        ("/1.0/lorry-html/no/such", StatusCode::NOT_FOUND),
        ("/1.0/job-html/99", StatusCode::NOT_FOUND),
        ("/1.0/job-html/abc", StatusCode::NOT_FOUND),
        ("/1.0/job-html/-1", StatusCode::NOT_FOUND),
        (
            "/1.0/job-html/99999999999999999999999",
            StatusCode::NOT_FOUND,
        ),
        ("/1.0/status-html?state=%3Cb%3E", StatusCode::BAD_REQUEST),
        ("/1.0/status-html?page=-2", StatusCode::BAD_REQUEST),
        ("/1.0/list-jobs-html?page=x", StatusCode::BAD_REQUEST),
    ] {
        let (got, content_type, body) = fx.get(uri).await;
        assert_eq!(got, status, "GET {uri}: {body}");
        assert!(
            content_type.starts_with("text/html"),
            "{uri}: {content_type}"
        );
        assert!(!body.contains("<b>"), "{uri} echoes HTML: {body}");
    }
    let (status, _, _) = fx.get("/1.0/job/99/output").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = fx.get("/1.0/job/abc/output").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Percent-encoded garbage in a path is still only a 404.
    let (status, _, _) = fx.get("/1.0/lorry-html/%FF%FE").await;
    assert!(status.is_client_error(), "{status}");
}

#[tokio::test]
async fn job_pages_show_output_and_a_stop_button_while_running() {
    let fx = fixture();
    fx.seed(&[lorry("a", &git_spec("a", "git://x/a"))]);
    let job = fx.run("a", "first line\n", None);
    let html = fx.page(&format!("/1.0/job-html/{job}")).await;
    assert!(html.contains("action=\"/1.0/stop-job\""));
    assert!(html.contains(&format!("name=\"job_id\" value=\"{job}\"")));
    assert!(html.contains("first line"));
    assert!(html.contains("data-stream=\"/1.0/job/1/output\""));
    assert!(html.contains("http-equiv=\"refresh\""), "no-JS fallback");
    fx.update(job, "done\n", Some(0));
    let html = fx.page(&format!("/1.0/job-html/{job}")).await;
    assert!(!html.contains("stop-job"));
    assert!(!html.contains("data-stream"));
    assert!(html.contains("first line\ndone\n"));
    assert!(html.contains("exit 0"));

    let list = fx.page("/1.0/list-jobs-html").await;
    assert!(list.contains("href=\"/1.0/job-html/1\""));
    let lorry_page = fx.page("/1.0/lorry-html/a").await;
    assert!(lorry_page.contains("href=\"/1.0/job-html/1\""));
    assert!(lorry_page.contains("action=\"/1.0/move-to-top\""));
    assert!(lorry_page.contains("action=\"/1.0/move-to-bottom\""));
}

#[tokio::test]
async fn live_output_streams_until_the_job_ends() {
    let fx = fixture();
    fx.seed(&[lorry("a", &git_spec("a", "git://x/a"))]);
    let job = fx.run("a", "one\n", None);
    let response = router(fx.state.clone())
        .oneshot(
            Request::get(format!("/1.0/job/{job}/output"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("content-type").expect("type"),
        "text/event-stream"
    );
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    let mut next = async || {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .expect("an event in time");
        chunk.map(|c| String::from_utf8(c.expect("chunk").to_vec()).expect("utf-8"))
    };
    while !seen.contains("\"one\\n\"") {
        seen.push_str(&next().await.expect("more"));
    }
    assert!(seen.contains("event: output"), "{seen}");
    // New output arrives on the open stream, then the end.
    fx.update(job, "two <b>\n", Some(3));
    while let Some(chunk) = next().await {
        seen.push_str(&chunk);
    }
    assert!(seen.contains("data: \"two <b>\\n\""), "{seen}");
    assert!(seen.contains("event: end\ndata: 3"), "{seen}");

    // Asking after the last chunk gives only the end.
    let (status, _, body) = fx.get(&format!("/1.0/job/{job}/output?after=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("event: output"), "{body}");
    assert!(body.contains("event: end"), "{body}");

    // A reconnecting browser's Last-Event-ID wins over the page's ?after=.
    let response = router(fx.state.clone())
        .oneshot(
            Request::get(format!("/1.0/job/{job}/output?after=0"))
                .header("last-event-id", "1")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = String::from_utf8(body.to_vec()).expect("utf-8");
    assert!(!body.contains("one"), "{body}");
    assert!(body.contains("two <b>"), "{body}");

    let (status, _, _) = fx.get(&format!("/1.0/job/{job}/output?after=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Waits (up to 30 s) until the file at `path` satisfies `ready`.
async fn file_until(path: &Path, what: &str, ready: impl Fn(&str) -> bool) -> String {
    for _ in 0..3000 {
        if let Ok(text) = std::fs::read_to_string(path)
            && ready(&text)
        {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{}: {what}", path.display());
}

#[tokio::test]
async fn status_requests_write_the_status_file_atomically() {
    let fx = fixture_with(|dir| WebConfig {
        // Short, so the test does not wait; still a gap to honour.
        status_html_gap: std::time::Duration::from_millis(200),
        ..config(dir, Some(dir.join("www/status.html")), false)
    });
    let file = fx.state.config.status_html.clone().expect("configured");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    fx.seed(&[lorry("up/<i>x", &git_spec("up/<i>x", "git://x/x"))]);

    let (status, _, _) = fx.get("/1.0/status").await;
    assert_eq!(status, StatusCode::OK);
    let copy = file_until(&file, "the first copy", |t| t.contains("up/&#60;i&#62;x")).await;
    assert!(copy.contains("<style>"), "stylesheet inlined");
    assert!(
        !copy.contains("<form method=\"post\""),
        "no buttons in the copy"
    );
    assert!(copy.contains("href=\"/1.0/lorry-html/up/%3Ci%3Ex\""));
    wait_idle(&fx).await;
    let writes = fx.state.status_file.writes();
    assert_eq!(writes, 1);

    // Nothing changed: asking again writes nothing.
    fx.get("/1.0/status").await;
    fx.page("/1.0/status-html").await;
    assert!(!fx.state.status_file.is_writing());
    assert_eq!(fx.state.status_file.writes(), writes);

    // A hard link to the page as it is: an in-place rewrite would change
    // what it shows too; an atomic one (new file renamed over) does not.
    let link = file.with_file_name("../old-status.html");
    std::fs::hard_link(&file, &link).expect("hard link");

    fx.seed(&[lorry("up/second", &git_spec("up/second", "git://x/s"))]);
    // A filtered status-html request still writes the default view.
    fx.page("/1.0/status-html?prefix=nothing").await;
    file_until(&file, "the change", |t| t.contains("up/second")).await;
    let old = std::fs::read_to_string(&link).expect("old page");
    assert!(
        old.contains("up/&#60;i&#62;x") && !old.contains("up/second"),
        "the file was rewritten in place"
    );
    wait_idle(&fx).await;
    let names: Vec<_> = std::fs::read_dir(file.parent().expect("dir"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["status.html"], "temporary files left behind");

    // Changes asked for within the gap are written once it is over, the
    // last one included.
    for i in 0..5 {
        let path = format!("up/burst-{i}");
        fx.seed(&[lorry(&path, &git_spec(&path, "git://x/b"))]);
        fx.get("/1.0/status").await;
    }
    file_until(&file, "the last change", |t| t.contains("up/burst-4")).await;
    wait_idle(&fx).await;
    assert!(
        fx.state.status_file.writes() <= writes + 3,
        "one write per change in a burst"
    );

    // A status file that cannot be written does not fail the request.
    let broken = fixture_with(|dir| config(dir, Some(dir.join("missing/dir/s.html")), false));
    let (status, _, _) = broken.get("/1.0/status").await;
    assert_eq!(status, StatusCode::OK);
}

/// Waits until no write of the status file is under way or due.
async fn wait_idle(fx: &Fixture) {
    for _ in 0..3000 {
        if !fx.state.status_file.is_writing() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the status file is still being written");
}

/// `GET /1.0/status` with `If-None-Match`: (status, ETag, body).
async fn status_json(fx: &Fixture, if_none_match: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::get("/1.0/status");
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    let response = router(fx.state.clone())
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        etag,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

#[tokio::test]
async fn the_json_status_is_gzipped_for_who_accepts_it() {
    use std::io::Read;
    let fx = fixture();
    fx.seed(&[lorry("up/a", &git_spec("up/a", "git://x/a"))]);
    let (_, plain_etag, plain) = status_json(&fx, None).await;
    let get = |accept: &'static str, tag: Option<String>| {
        let mut request = Request::get("/1.0/status").header("accept-encoding", accept);
        if let Some(tag) = tag {
            request = request.header("if-none-match", tag);
        }
        router(fx.state.clone()).oneshot(request.body(Body::empty()).expect("request"))
    };
    let response = get("gzip, br", None).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["vary"], "accept-encoding");
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    assert_ne!(etag, plain_etag, "each representation its own ETag");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let mut json = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut json)
        .expect("gunzip");
    assert_eq!(json, plain);

    let again = get("gzip", Some(etag.clone())).await.expect("response");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.headers().get("content-encoding").is_none());
    // The plain body's ETag is not the gzipped one's, and the other way.
    let other = get("gzip", Some(plain_etag.clone()))
        .await
        .expect("response");
    assert_eq!(other.status(), StatusCode::OK);
    let (status, _, _) = status_json(&fx, Some(&etag)).await;
    assert_eq!(status, StatusCode::OK);
    let refused = get("gzip;q=0", None).await.expect("response");
    assert!(refused.headers().get("content-encoding").is_none());
    assert_eq!(builds(&fx), 1, "one body, two representations");
}

fn builds(fx: &Fixture) -> u64 {
    fx.state
        .status_cache
        .builds
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Slow clients of full bodies keep at most two alive: while an older
/// body is still being sent and nothing changed, the current one is
/// served up to `SENDING_MAX` seconds old; a change is always seen. What
/// a response sends is the body, whole.
#[tokio::test]
async fn slow_clients_keep_at_most_two_status_bodies_alive() {
    use crate::status_json::{SENDING_MAX, TIME_STEP};
    let fx = fixture();
    fx.seed(&[lorry("up/a", &git_spec("up/a", "git://x/a"))]);
    let cache = &fx.state.status_cache;
    let at = |t: i64| fx.state.db.set_pretend_time(NOW + t);
    let first = cache.current(&fx.state).await.expect("first");
    let slow = cache.sending(std::sync::Arc::clone(&first), first.json.clone());
    at(TIME_STEP);
    let second = cache.current(&fx.state).await.expect("second");
    assert_eq!(builds(&fx), 2, "only the current body was being sent");
    let also_slow = cache.sending(std::sync::Arc::clone(&second), second.json.clone());
    at(3 * TIME_STEP);
    let held = cache.current(&fx.state).await.expect("held");
    assert_eq!(held.etag, second.etag, "an older body is still being sent");
    assert_eq!(builds(&fx), 2);
    at(TIME_STEP + SENDING_MAX + 1);
    let old_enough = cache.current(&fx.state).await.expect("too old");
    assert_ne!(old_enough.etag, second.etag);
    assert_eq!(builds(&fx), 3);
    let third = cache.sending(std::sync::Arc::clone(&old_enough), old_enough.json.clone());
    fx.seed(&[lorry("up/b", &git_spec("up/b", "git://x/b"))]);
    let changed = cache.current(&fx.state).await.expect("changed");
    assert!(String::from_utf8_lossy(&changed.json.to_vec()).contains("\"up/b\""));
    assert_eq!(builds(&fx), 4, "a change is built whatever is being sent");

    // Sent whole; once sent, nothing older holds the next build back.
    for (response, body) in [(slow, &first), (also_slow, &second), (third, &old_enough)] {
        let sent = axum::body::to_bytes(response, usize::MAX)
            .await
            .expect("sent");
        assert_eq!(sent, body.json.to_vec());
    }
    drop((first, second, held, old_enough));
    at(TIME_STEP + SENDING_MAX + 1 + TIME_STEP);
    cache.current(&fx.state).await.expect("next");
    assert_eq!(builds(&fx), 5);
}

#[tokio::test]
async fn the_json_status_is_built_once_per_state_and_second() {
    let fx = fixture();
    fx.seed(&[lorry("up/a", &git_spec("up/a", "git://x/a"))]);
    let (status, etag, body) = status_json(&fx, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"up/a\""));
    assert_eq!(builds(&fx), 1);

    // Unchanged: the same body, not built again; 304 for its ETag.
    assert_eq!(
        status_json(&fx, None).await,
        (StatusCode::OK, etag.clone(), body.clone())
    );
    for tag in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
        assert_eq!(
            status_json(&fx, Some(&tag)).await,
            (StatusCode::NOT_MODIFIED, etag.clone(), String::new()),
            "{tag}"
        );
    }
    for tag in ["\"stale\"", "garbage", ""] {
        assert_eq!(status_json(&fx, Some(tag)).await.0, StatusCode::OK, "{tag}");
    }
    assert_eq!(builds(&fx), 1);

    // Each change, a new body and ETag; the old ETag gets the body.
    let mut seen = vec![etag.clone()];
    let mut changed = |what: &str, etag: String, body: &str, shows: &str| {
        assert!(!seen.contains(&etag), "{what}: ETag unchanged");
        assert!(body.contains(shows), "{what}: {body}");
        seen.push(etag);
    };
    fx.seed(&[lorry("up/b", &git_spec("up/b", "git://x/b"))]);
    let (status, etag2, body) = status_json(&fx, Some(&etag)).await;
    assert_eq!(status, StatusCode::OK);
    changed("lorry added", etag2, &body, "\"up/b\"");

    fx.run("up/a", "done\n", Some(0));
    let (_, etag3, body) = status_json(&fx, None).await;
    changed("job ended", etag3, &body, "\"last_run_exit\":\"0\"");

    fx.state
        .db
        .write(|tx| tx.set_running_queue(false))
        .expect("stop the queue");
    let (_, etag4, body) = status_json(&fx, None).await;
    changed("queue stopped", etag4, &body, "\"running_queue\":false");

    // The time alone: the same snapshot for a few seconds, then a new
    // one, its timestamp and due times moved.
    let (_, etag4, _) = status_json(&fx, None).await;
    fx.state
        .db
        .set_pretend_time(NOW + crate::status_json::TIME_STEP - 1);
    assert_eq!(
        status_json(&fx, Some(&etag4)).await.0,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(builds(&fx), 4);
    fx.state
        .db
        .set_pretend_time(NOW + crate::status_json::TIME_STEP);
    let (_, etag5, body) = status_json(&fx, None).await;
    changed(
        "seconds later",
        etag5,
        &body,
        "\"timestamp\":\"2023-11-14 22:13:25 UTC\"",
    );
    // A clock set back is no reason to serve a body from the future: built
    // again, it is the body of that moment, with its ETag.
    fx.state.db.set_pretend_time(NOW);
    let (_, etag6, body) = status_json(&fx, None).await;
    assert_eq!(etag6, etag4);
    assert!(body.contains("\"timestamp\":\"2023-11-14 22:13:20 UTC\""));
    assert_eq!(builds(&fx), 6);
}

#[tokio::test]
async fn static_files_are_built_in_or_from_the_directory() {
    let fx = fixture();
    let (status, content_type, css) = fx.get("/lc-static/style.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/css"));
    assert!(css.contains(".badge"));
    for uri in [
        "/lc-static/nope.css",
        "/lc-static/../Cargo.toml",
        "/lc-static/%2e%2e/Cargo.toml",
        "/lc-static//etc/passwd",
    ] {
        let (status, _, _) = fx.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }

    let custom = fixture_with(|dir| {
        std::fs::create_dir_all(dir.join("static")).expect("mkdir");
        std::fs::write(dir.join("static/style.css"), "body { color: red }").expect("css");
        std::fs::write(dir.join("secret.txt"), "no").expect("secret");
        WebConfig {
            static_files: Some(dir.join("static")),
            ..config(dir, None, false)
        }
    });
    let (_, _, css) = custom.get("/lc-static/style.css").await;
    assert_eq!(css, "body { color: red }");
    let (status, _, js) = custom.get("/lc-static/live-output.js").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "built-in copy when the directory lacks it"
    );
    assert!(js.contains("EventSource"));
    let (status, _, _) = custom.get("/lc-static/%2E%2E/secret.txt").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_lorry_page_lists_submodules_marking_those_no_lorry_mirrors() {
    let fx = fixture();
    fx.seed(&[
        lorry("top", &git_spec("top", "https://h.example/top.git")),
        lorry("deps/lib", &git_spec("deps/lib", "https://h.example/lib")),
    ]);
    let html = fx.page("/1.0/lorry-html/top").await;
    assert!(!html.contains("Submodules"), "no job yet");
    let job = fx.run("top", "", None);
    let result = serde_json::json!({ "version": 1, "specs": [{
        "name": "top", "importer": "git", "ok": true, "refs": [], "preserved": [],
        "bytes_received": 0, "pushed": "unchanged", "lfs_bytes": 3_145_728, "lfs_bytes_received": 0,
        "submodules": ["https://h.example/lib.git", "https://other.example/<b>x</b>.git"]
    }]});
    let update = JobUpdate {
        exit: Some(0),
        disk_usage: Some(5 << 20),
        result: Some(result.to_string()),
        ..JobUpdate::default()
    };
    fx.state
        .db
        .write(|tx| tx.update_job(job, &update))
        .expect("update");
    let html = fx.page("/1.0/lorry-html/top").await;
    assert!(html.contains("<h2>Submodules</h2>"), "{html}");
    assert!(
        html.contains(
            "<code>https://h.example/lib.git</code> mirrored by <a href=\"/1.0/lorry-html/deps/lib\">deps/lib</a>"
        ),
        "{html}"
    );
    assert!(
        html.contains("<code>https://other.example/&#60;b&#62;x&#60;/b&#62;.git</code> <span class=\"badge failed\">not mirrored</span>"),
        "{html}"
    );
    assert!(html.contains("(LFS objects: 3.0 MiB)"), "{html}");
}

/// Ends `job` with lorry's `result`.
fn end_with(fx: &Fixture, job: i64, result: serde_json::Value) {
    let update = JobUpdate {
        exit: Some(0),
        result: Some(result.to_string()),
        ..JobUpdate::default()
    };
    fx.state
        .db
        .write(|tx| tx.update_job(job, &update))
        .expect("update");
}

fn spec_result(path: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "name": path, "importer": "git", "ok": true, "refs": [], "preserved": [],
        "bytes_received": 0, "pushed": "yes"
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::json!({ "version": 1, "specs": [spec] })
}

#[tokio::test]
async fn the_ref_ledger_answers_refs_at_a_time_and_history_and_the_page_marks_rewrites() {
    let fx = fixture();
    fx.seed(&[lorry("up/a", &git_spec("up/a", "git://x/a"))]);
    let (a1, a2, t1, t2) = (
        "a".repeat(40),
        "b".repeat(40),
        "c".repeat(40),
        "d".repeat(40),
    );
    let job = fx.run("up/a", "", None);
    end_with(
        &fx,
        job,
        spec_result(
            "up/a",
            serde_json::json!({
                "refs": [{"name": "refs/heads/main", "old": null, "new": a1},
                         {"name": "refs/heads/topic", "old": null, "new": t1}],
                "held": {"refs/heads/main": a1, "refs/heads/topic": t1}
            }),
        ),
    );
    fx.state.db.set_pretend_time(NOW + 86_400);
    let job = fx.run("up/a", "", None);
    end_with(
        &fx,
        job,
        spec_result(
            "up/a",
            serde_json::json!({
                "refs": [{"name": "refs/heads/main", "old": a1, "new": a2},
                         {"name": "refs/heads/topic", "old": t1, "new": t2}],
                "preserved": [{"name": "refs/heads/topic", "oid": t1,
                               "kept_as": "refs/lorry/preserved/20261207T000000Z/refs/heads/topic"}],
                "held": {"refs/heads/main": a2, "refs/heads/topic": t2}
            }),
        ),
    );
    let json = |body: &str| -> serde_json::Value { serde_json::from_str(body).expect("json") };
    let tips = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["refs"]
            .as_array()
            .expect("refs")
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or_default().to_owned(),
                    r["oid"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    // The same moment in each accepted form.
    let day1 = "2023-11-14T22:13:20Z"; // NOW
    for at in [NOW.to_string(), day1.into(), "20231114T221320Z".into()] {
        let (status, _, body) = fx.get(&format!("/1.0/lorry-refs/up/a?at={at}")).await;
        assert_eq!(status, StatusCode::OK, "{at}: {body}");
        let v = json(&body);
        assert_eq!(v["at"], NOW);
        assert_eq!(v["complete"], true);
        assert_eq!(
            tips(&v),
            [
                ("refs/heads/main".to_owned(), a1.clone()),
                ("refs/heads/topic".to_owned(), t1.clone())
            ]
        );
        assert_eq!(v["refs"][0]["ended"], NOW + 86_400);
    }
    let (_, _, body) = fx.get("/1.0/lorry-refs/up/a").await;
    let v = json(&body);
    assert_eq!(v["at"], NOW + 86_400);
    assert_eq!(v["refs"][1]["oid"], t2.as_str());
    let (_, _, body) = fx.get("/1.0/lorry-refs/up/a?at=2023-11-14").await;
    let v = json(&body);
    assert_eq!(
        (v["complete"].clone(), v["refs"].clone()),
        (false.into(), serde_json::json!([]))
    );

    let (status, _, body) = fx.get("/1.0/lorry-history/up/a?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json(&body);
    assert_eq!(v["more"], true);
    assert_eq!(v["changes"][0]["how"], "moved");
    let (_, _, body) = fx.get("/1.0/lorry-history/up/a?limit=1&offset=1").await;
    let v = json(&body);
    assert_eq!(v["changes"][0]["how"], "rewritten");
    assert_eq!(
        v["changes"][0]["kept_as"],
        "refs/lorry/preserved/20261207T000000Z/refs/heads/topic"
    );

    for (uri, status) in [
        ("/1.0/lorry-refs/up/a?at=yesterday", StatusCode::BAD_REQUEST),
        ("/1.0/lorry-refs/up/a?when=1", StatusCode::BAD_REQUEST),
        ("/1.0/lorry-history/up/a?limit=0", StatusCode::BAD_REQUEST),
        (
            "/1.0/lorry-history/up/a?limit=1001",
            StatusCode::BAD_REQUEST,
        ),
        ("/1.0/lorry-history/up/a?offset=-1", StatusCode::BAD_REQUEST),
        ("/1.0/lorry-history/up/a?limit=x", StatusCode::BAD_REQUEST),
        ("/1.0/lorry-refs/no/such", StatusCode::NOT_FOUND),
        ("/1.0/lorry-history/no/such", StatusCode::NOT_FOUND),
    ] {
        let (got, _, body) = fx.get(uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert!(json(&body)["error"].is_string(), "{uri}: {body}");
    }

    let html = fx.page("/1.0/lorry-html/up/a").await;
    assert!(html.contains("<h2>Ref history</h2>"), "{html}");
    assert!(
        html.contains("<span class=\"badge failed\">rewritten</span> <span class=\"muted\">old tip kept as <code>refs/lorry/preserved/20261207T000000Z/refs/heads/topic</code>"),
        "{html}"
    );
    assert!(
        html.contains(&format!("<code>{}</code>", &a2[..12])),
        "{html}"
    );
}

#[tokio::test]
async fn the_snapshots_page_lists_snapshots_and_shows_a_diff() {
    let fx = fixture();
    fx.seed(&[lorry("up/a", &git_spec("up/a", "git://x/a"))]);
    let html = fx.page("/1.0/snapshots-html").await;
    assert!(html.contains("No snapshots yet."), "{html}");
    let (a1, a2) = ("a".repeat(40), "b".repeat(40));
    let job = fx.run("up/a", "", None);
    end_with(
        &fx,
        job,
        spec_result("up/a", serde_json::json!({"held": {"refs/heads/main": a1}})),
    );
    fx.state
        .db
        .write(|tx| tx.take_snapshot("one", ""))
        .expect("one");
    fx.state.db.set_pretend_time(NOW + 60);
    let job = fx.run("up/a", "", None);
    end_with(
        &fx,
        job,
        spec_result(
            "up/a",
            serde_json::json!({"refs": [{"name": "refs/heads/main", "old": a1, "new": a2}],
                               "held": {"refs/heads/main": a2, "refs/tags/<v2>": a2}}),
        ),
    );
    fx.state
        .db
        .write(|tx| {
            tx.take_snapshot("two", "")?;
            tx.promote("release", "two")
        })
        .expect("two");
    let html = fx.page("/1.0/snapshots-html").await;
    assert!(html.contains("<td><code>two</code></td>"), "{html}");
    assert!(html.contains("<td>release</td>"), "{html}");
    assert!(
        html.contains("href=\"/1.0/snapshots/one?format=repo\""),
        "{html}"
    );
    assert!(html.contains("action=\"/1.0/snapshots\""), "{html}");
    let html = fx.page("/1.0/snapshots-html?from=one&to=two").await;
    assert!(
        html.contains(&format!(
            "<td><code>refs/heads/main</code></td><td>moved</td><td><code>{}</code></td><td><code>{}</code></td>",
            &a1[..12],
            &a2[..12]
        )),
        "{html}"
    );
    assert!(
        html.contains("<code>refs/tags/&#60;v2&#62;</code></td><td>added</td>"),
        "{html}"
    );
    let (status, _, _) = fx.get("/1.0/snapshots-html?from=one&to=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The chart `<figure id="{id}">` of a page, as XML.
fn chart<'h>(html: &'h str, id: &str) -> roxmltree::Document<'h> {
    let start = html
        .find(&format!("<figure class=\"chart\" id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let end = start + html[start..].find("</figure>").expect("end of figure") + "</figure>".len();
    roxmltree::Document::parse(&html[start..end])
        .unwrap_or_else(|e| panic!("chart {id} is not well-formed: {e}"))
}

/// The data-values of a chart's bars (or points), in order.
fn marks(doc: &roxmltree::Document<'_>, name: &str) -> Vec<i64> {
    doc.descendants()
        .filter(|n| n.tag_name().name() == name)
        .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("mark ")))
        .map(|n| {
            n.attribute("data-value")
                .and_then(|v| v.parse().ok())
                .expect("data-value")
        })
        .collect()
}

/// The text table's cells, row by row.
fn numbers(doc: &roxmltree::Document<'_>) -> Vec<Vec<String>> {
    doc.descendants()
        .filter(|n| n.tag_name().name() == "tr")
        .map(|tr| {
            tr.children()
                .filter(|c| c.tag_name().name() == "td")
                .map(|td| td.text().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|row| !row.is_empty())
        .collect()
}

/// A known history through the real job life cycle: the status page's
/// freshness and jobs-per-hour charts, the host's failures, and the lorry
/// page's durations and disk usage, with their numbers as text.
#[tokio::test]
async fn charts_show_a_known_history_on_the_status_and_lorry_pages() {
    let fx = fixture();
    let hostile = r#"up/<i>&"x'"#;
    fx.seed(&[
        NewLorry {
            from_host: "git.example.org".into(),
            ..lorry("up/hosted", &git_spec("up/hosted", "git://x/h"))
        },
        lorry(hostile, &git_spec(hostile, "git://x/hostile")),
        lorry("up/never", &git_spec("up/never", "git://x/never")),
    ]);
    // Jobs of `path` started at `start`, ended `took` seconds later.
    let job = |path: &str, start: i64, took: i64, exit: i64, disk: i64| {
        fx.state.db.set_pretend_time(start);
        let path = path.to_owned();
        fx.state.db.write(|tx| tx.move_to_top(&path)).expect("move");
        let (id, info) = fx
            .state
            .db
            .write(|tx| tx.start_next_job("minion", 42))
            .expect("give")
            .expect("a job");
        assert_eq!(info.path, path);
        fx.state.db.set_pretend_time(start + took);
        let update = JobUpdate {
            exit: Some(exit),
            disk_usage: Some(disk),
            ..JobUpdate::default()
        };
        fx.state
            .db
            .write(|tx| tx.update_job(id, &update))
            .expect("end");
    };
    let hour0 = NOW - NOW % 3600;
    job("up/hosted", hour0 - 5 * 3600, 60, 0, 1000);
    job("up/hosted", hour0 - 5 * 3600 + 100, 60, 128, 1000);
    job(hostile, hour0 - 2 * 3600, 30, 0, 2048);
    job(hostile, hour0 - 3600, 90, 1, 4096);
    job(hostile, hour0 + 10, 60, 0, 3072);
    fx.state.db.set_pretend_time(NOW);

    let html = fx.page("/1.0/status-html").await;
    let jobs = chart(&html, "chart-jobs");
    // Oldest hour first: 5 hours ago 1 succeeded + 1 failed, then one job
    // 2 hours ago, a failure 1 hour ago and a success this hour.
    assert_eq!(marks(&jobs, "rect"), [1, 1, 1, 1, 1]);
    let rows = numbers(&jobs);
    assert_eq!(rows.len(), 24);
    let counts: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(counts[18], ("1", "1"));
    assert_eq!(counts[21..], [("1", "0"), ("0", "1"), ("1", "0")]);
    assert_eq!(
        counts.iter().filter(|c| **c != ("0", "0")).count(),
        4,
        "{counts:?}"
    );
    // Freshness: up/hosted failed last but succeeded 5 h ago (interval
    // 1 h): more than 4×; the hostile one just now; up/never never.
    let fresh = chart(&html, "chart-freshness");
    assert_eq!(marks(&fresh, "rect"), [1, 1, 1]);
    assert_eq!(
        numbers(&fresh)
            .iter()
            .map(|r| r[1].as_str())
            .collect::<Vec<_>>(),
        ["1", "0", "0", "1", "1"]
    );
    // The host's week: one failure, today, of two jobs; also in its row.
    let host = chart(&html, "chart-host-0");
    assert_eq!(marks(&host, "rect"), [1]);
    assert!(html.contains("git.example.org: failed jobs per day, last 7 days"));

    let page = fx
        .page(&format!("/1.0/lorry-html/{}", super::encode_path(hostile)))
        .await;
    assert!(!page.contains("<i>&"), "markup from the path");
    let durations = chart(&page, "chart-durations");
    assert_eq!(marks(&durations, "rect"), [30, 90, 60]);
    assert_eq!(
        numbers(&durations)
            .iter()
            .map(|r| r[4].as_str())
            .collect::<Vec<_>>(),
        ["0", "1", "0"]
    );
    let caption = durations
        .descendants()
        .find(|n| n.tag_name().name() == "figcaption")
        .and_then(|n| n.text())
        .expect("caption");
    assert!(caption.contains(hostile), "{caption}");
    let disk = chart(&page, "chart-disk");
    assert_eq!(marks(&disk, "circle"), [2048, 4096, 3072]);
    // A lorry without ended jobs has no job charts.
    let never = fx.page("/1.0/lorry-html/up/never").await;
    assert!(!never.contains("<figure class=\"chart\""));
}

/// The host table says how many of each configured host's jobs failed in
/// the last week, and the host gets its chart even with none.
#[tokio::test]
async fn configured_hosts_get_a_week_of_failures_even_without_jobs() {
    let fx = fixture();
    let confgit = fx._dir.path().join("confgit");
    std::fs::create_dir_all(&confgit).expect("mkdir");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "trove", "trovehost": "quiet.example.org", "protocol": "https",
             "prefixmap": {"q": "q"}, "ls-interval": "1H", "interval": "1H"}]"#,
    )
    .expect("conf");
    let loaded = lc_core::config::load_config(&confgit).expect("load");
    fx.state
        .db
        .write(|tx| tx.apply_config(&loaded))
        .expect("a configured host");
    let html = fx.page("/1.0/status-html").await;
    assert!(html.contains("<td class=\"num\">0 of 0</td>"), "{html}");
    let host = chart(&html, "chart-host-0");
    assert!(marks(&host, "rect").is_empty());
    assert_eq!(numbers(&host).len(), 7);
}
