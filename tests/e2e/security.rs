//! End to end: the attacks of issue 11 against the real webapp, each refused
//! with state unchanged — tokens on every route class (Bearer and Basic),
//! cross-site and wrongly typed requests, a foreign `Host`, an open
//! redirect, oversized bodies, a half-header flood, and start-up refusals.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::common::{READY_TIMEOUT, WEBAPP, Webapp, git_lorry, wait_for};

const ADMIN: &str = "admin-7f3c9a";
const MINION: &str = "minion-41be07";
const REFRESH: &str = "refresh-99d2e1";

/// A private token file in `dir`.
fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, format!("{token}\n")).expect("write token");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    file
}

fn with_tokens(dir: &Path, extra: &[&str]) -> Webapp {
    let admin = token_file(dir, "admin.token", ADMIN);
    let minion = token_file(dir, "minion.token", MINION);
    // The refresh file in the form curl -H @FILE sends.
    let refresh = token_file(
        dir,
        "refresh.token",
        &format!("Authorization: Bearer {REFRESH}"),
    );
    let mut args = vec![
        format!("--admin-token-file={}", admin.display()),
        format!("--minion-token-file={}", minion.display()),
        format!("--refresh-token-file={}", refresh.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Webapp::init(dir).with_args(&args).start()
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

fn send(request: RequestBuilder) -> Reply {
    let resp = request.send().expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().expect("body");
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn form(app: &Webapp, path: &str, fields: &[(&str, &str)]) -> RequestBuilder {
    client().post(app.url(path)).form(fields)
}

/// What a job hand-out changes: the jobs table and the running lorries.
fn jobs(app: &Webapp) -> Value {
    let reply = send(client().get(app.url("/1.0/list-jobs")).bearer_auth(ADMIN));
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.body["job_ids"].clone()
}

#[test]
fn every_route_class_needs_its_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = with_tokens(dir.path(), &[]);
    app.seed(&[git_lorry("up/a", 3600, 600)]);
    let give = [("host", "m1"), ("pid", "1")];

    // Minion routes: nothing, a wrong token, another class's token.
    let reply = send(form(&app, "/1.0/give-me-job", &give));
    assert_eq!(reply.status, 401, "{reply:?}");
    let challenges: Vec<_> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect();
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic ")),
        "{challenges:?}"
    );
    assert!(reply.body["error"].is_string(), "{reply:?}");
    let reply = send(form(&app, "/1.0/give-me-job", &give).bearer_auth("guess"));
    assert_eq!(reply.status, 401, "{reply:?}");
    let reply = send(form(&app, "/1.0/give-me-job", &give).bearer_auth(REFRESH));
    assert_eq!(reply.status, 403, "{reply:?}");
    let reply = send(form(
        &app,
        "/1.0/job-update",
        &[("job_id", "1"), ("exit", "0")],
    ));
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(jobs(&app), serde_json::json!([]), "nothing handed out");

    // The minion token, as Bearer and as Basic with any user name.
    let reply = send(form(&app, "/1.0/give-me-job", &give).bearer_auth(MINION));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["job_id"], 1, "{reply:?}");
    let reply = send(
        form(&app, "/1.0/job-update", &[("job_id", "1"), ("exit", "0")])
            .basic_auth("anyone", Some(MINION)),
    );
    assert_eq!(reply.status, 200, "{reply:?}");

    // Admin routes: the minion and refresh tokens are not enough.
    for token in [None, Some("guess"), Some(MINION), Some(REFRESH)] {
        let mut request = form(&app, "/1.0/stop-queue", &[]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let reply = send(request);
        assert!(matches!(reply.status, 401 | 403), "{token:?}: {reply:?}");
    }
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], true);
    let reply = send(form(&app, "/1.0/stop-queue", &[]).bearer_auth(ADMIN));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], false);

    // Refresh routes: the refresh token (or the admin's), nothing else.
    let reply = send(form(&app, "/1.0/remove-ghost-jobs", &[]).bearer_auth(MINION));
    assert_eq!(reply.status, 403, "{reply:?}");
    let reply = send(form(&app, "/1.0/remove-ghost-jobs", &[]).bearer_auth(REFRESH));
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = send(form(&app, "/1.0/remove-old-jobs", &[]).bearer_auth(REFRESH));
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = send(form(&app, "/1.0/force-ls-troves", &[]).bearer_auth(REFRESH));
    assert_eq!(
        reply.status, 403,
        "force-ls-troves is an admin action: {reply:?}"
    );

    // Reading is open by default; health-check always.
    assert_eq!(app.get("/1.0/status").status, 200);
    assert_eq!(app.get("/1.0/status-html").status, 200);
    assert_eq!(app.get("/1.0/health-check").status, 200);
}

#[test]
fn reading_can_need_a_token_and_basic_auth_works_for_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = with_tokens(dir.path(), &["--read-access=token"]);
    for path in [
        "/1.0/status",
        "/1.0/status-html",
        "/1.0/list-queue",
        "/1.0/metrics",
    ] {
        let reply = send(client().get(app.url(path)));
        assert_eq!(reply.status, 401, "{path}: {reply:?}");
        for token in [ADMIN, MINION, REFRESH] {
            let reply = send(client().get(app.url(path)).basic_auth("me", Some(token)));
            assert_eq!(reply.status, 200, "{path} with {token}: {reply:?}");
        }
    }
    assert_eq!(app.get("/1.0/health-check").status, 200);
}

#[test]
fn cross_site_and_wrongly_typed_posts_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).start();
    app.seed(&[git_lorry("up/a", 3600, 600)]);
    let url = app.url("/1.0/give-me-job");
    let body = "host=evil&pid=1";

    // What a page elsewhere can send without CORS: text/plain, with the
    // browser's Origin and Sec-Fetch-Site.
    let reply = send(
        client()
            .post(&url)
            .header("content-type", "text/plain")
            .header("origin", "http://evil.example")
            .body(body),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    let reply = send(
        client()
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .body(body),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    for content_type in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json",
    ] {
        let reply = send(
            client()
                .post(&url)
                .header("content-type", content_type)
                .body(body),
        );
        assert_eq!(reply.status, 415, "{content_type}: {reply:?}");
    }
    let reply = send(client().post(&url).body(body));
    assert_eq!(reply.status, 415, "a body without a type: {reply:?}");
    assert_eq!(
        app.get_ok("/1.0/list-jobs")["job_ids"],
        serde_json::json!([])
    );
    assert!(app.get_ok("/1.0/lorry/up/a")["running_job"].is_null());

    // Scripts keep working: a form, or no body and no type.
    assert_eq!(send(client().post(app.url("/1.0/stop-queue"))).status, 200);
    assert_eq!(send(form(&app, "/1.0/start-queue", &[])).status, 200);
    let reply = send(form(
        &app,
        "/1.0/give-me-job",
        &[("host", "m"), ("pid", "1")],
    ));
    assert_eq!(reply.body["job_id"], 1, "{reply:?}");
}

#[test]
fn a_foreign_host_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path())
        .with_args(&["--allowed-host=lc.example.org"])
        .start();
    let port = app.port;
    for host in [format!("rebound.evil.example:{port}"), "evil".to_owned()] {
        let reply = send(
            client()
                .get(app.url("/1.0/status"))
                .header("host", host.as_str()),
        );
        assert_eq!(reply.status, 403, "{host}: {reply:?}");
        let reply = send(
            client()
                .post(app.url("/1.0/stop-queue"))
                .header("host", host.as_str()),
        );
        assert_eq!(reply.status, 403, "{host}: {reply:?}");
    }
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], true);
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LC.example.org".to_owned(),
    ] {
        let reply = send(
            client()
                .get(app.url("/1.0/status"))
                .header("host", host.as_str()),
        );
        assert_eq!(reply.status, 200, "{host}: {reply:?}");
    }
}

#[test]
fn pages_are_not_framed_and_their_forms_carry_the_csrf_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = with_tokens(dir.path(), &[]);
    app.seed(&[git_lorry("up/a", 3600, 600), git_lorry("up/b", 3600, 600)]);
    let page = send(client().get(app.url("/1.0/status-html")));
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("frame-ancestors 'none'")
    );
    assert!(page.headers.contains_key("referrer-policy"));
    let marker = "name=\"csrf\" value=\"";
    let at = page.text.find(marker).expect("a csrf field") + marker.len();
    let csrf = &page.text[at..at + 32];

    // The browser's Basic login without the form's token: refused.
    let queue_before = app.queue();
    let reply = send(
        form(
            &app,
            "/1.0/move-to-bottom",
            &[("path", "up/a"), ("redirect", "/1.0/status-html")],
        )
        .basic_auth("admin", Some(ADMIN)),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(app.queue(), queue_before);
    // An open redirect: refused before anything moves, token or not.
    for to in [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "/x\r\nSet-Cookie: a=b",
    ] {
        let reply = send(
            form(
                &app,
                "/1.0/move-to-bottom",
                &[("path", "up/a"), ("redirect", to), ("csrf", csrf)],
            )
            .basic_auth("admin", Some(ADMIN)),
        );
        assert_eq!(reply.status, 400, "{to:?}: {reply:?}");
        assert_eq!(app.queue(), queue_before, "{to:?}");
    }
    let reply = send(
        form(
            &app,
            "/1.0/move-to-bottom",
            &[
                ("path", "up/a"),
                ("redirect", "/1.0/status-html"),
                ("csrf", csrf),
            ],
        )
        .basic_auth("admin", Some(ADMIN)),
    );
    assert_eq!(reply.status, 303, "{reply:?}");
    assert_eq!(reply.headers["location"], "/1.0/status-html");
    assert_eq!(app.queue(), ["up/b", "up/a"]);
}

#[test]
fn bodies_and_field_counts_are_capped_except_job_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).start();
    app.seed(&[git_lorry("up/a", 3600, 600)]);
    let big = "x".repeat(100 * 1024);
    let reply = send(form(
        &app,
        "/1.0/move-to-top",
        &[("path", "up/a"), ("pad", &big)],
    ));
    assert_eq!(reply.status, 413, "{reply:?}");
    let many: Vec<(String, String)> = (0..500).map(|i| (format!("f{i}"), "1".into())).collect();
    let reply = send(client().post(app.url("/1.0/stop-queue")).form(&many));
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], true);

    app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    let reply = send(form(
        &app,
        "/1.0/job-update",
        &[("job_id", "1"), ("exit", "no"), ("stdout", &big)],
    ));
    assert_eq!(reply.status, 200, "job-update carries output: {reply:?}");
}

#[test]
fn half_sent_headers_neither_block_others_nor_stay_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path())
        .with_args(&["--header-read-timeout=2"])
        .start();
    let addr = format!("127.0.0.1:{}", app.port);
    let mut flood: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET /1.0/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .expect("half a header");
            s
        })
        .collect();
    // An ordinary client is answered meanwhile.
    assert_eq!(app.get("/1.0/health-check").status, 200);
    // And the half-sent ones are closed once the timeout passes.
    for stream in &mut flood {
        stream
            .set_read_timeout(Some(READY_TIMEOUT))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let closed = match stream.read(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "a half-sent request was left open");
    }
}

#[test]
fn start_up_refuses_what_would_be_unsafe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[String]| {
        Command::new(WEBAPP)
            .arg(format!("--statedb={}", dir.path().join("db").display()))
            .arg("--debug-port=0")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run webapp")
    };
    // No token on a non-loopback address.
    let out = run(&["--debug-host=0.0.0.0".to_owned()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--insecure-no-auth"), "{stderr}");
    // A token file others can read.
    let file = token_file(dir.path(), "admin.token", ADMIN);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run(&[format!("--admin-token-file={}", file.display())]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin.token") && !stderr.contains(ADMIN),
        "{stderr}"
    );
    // Reading by token with no token at all.
    let out = run(&["--read-access=token".to_owned()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--read-access"), "{stderr}");
}

const MINION_BIN: &str = env!("CARGO_BIN_EXE_lorry-controller-minion");
const ADMIN_BIN: &str = env!("CARGO_BIN_EXE_lorry-controller-admin");

/// A stand-in for lorry: hangs for specs named `*slow*`, succeeds otherwise.
fn fake_lorry(dir: &Path) -> PathBuf {
    let file = dir.join("fake-lorry");
    std::fs::write(
        &file,
        format!(
            "#!/bin/sh\nfor a; do spec=$a; done\ncase \"$(cat \"$spec\")\" in\n\
             *slow*) echo $$ > {}/slow.pid; exec sleep 1000;;\nesac\necho mirrored\n",
            dir.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    file
}

fn minion(app: &Webapp, dir: &Path, tmp: &Path, extra: &[String]) -> std::process::Child {
    Command::new(MINION_BIN)
        .args([
            "--webapp-host=127.0.0.1".to_owned(),
            format!("--webapp-port={}", app.port),
            "--sleep=0.1".into(),
            "--update-interval=0.2".into(),
            format!("--lorry-path={}", fake_lorry(dir).display()),
            format!("--log={}", dir.join("minion.log").display()),
            // The stand-in lorry writes its pid beside it, which a sandbox hides.
            "--sandbox=none".into(),
        ])
        .args(extra)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .spawn()
        .expect("start minion")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn the_minion_and_the_admin_cli_send_their_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = with_tokens(dir.path(), &[]);
    app.seed(&[git_lorry("up/a", 3600, 600)]);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir");
    let token = format!(
        "--webapp-token-file={}",
        dir.path().join("minion.token").display()
    );
    let mut child = minion(&app, dir.path(), &tmp, &[token]);
    let job = wait_for("the job's end", READY_TIMEOUT, || {
        let job = app.get("/1.0/job/1");
        (job.status == 200 && job.body["exit"] != "no").then_some(job.body)
    });
    assert_eq!(job["exit"], "0", "{job}");
    crate::common::terminate(&mut child);

    let admin = |extra: &[String]| {
        Command::new(ADMIN_BIN)
            .arg(format!("--webapp-url={}", app.url("/")))
            .args(extra)
            .arg("stop-queue")
            .env_remove("LORRY_CONTROLLER_ADMIN_TOKEN")
            .output()
            .expect("run admin")
    };
    let out = admin(&[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], true);
    let out = admin(&[format!(
        "--token-file={}",
        dir.path().join("admin.token").display()
    )]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], false);
}

#[test]
fn secrets_are_in_private_files_even_after_a_minion_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).start();
    assert_eq!(mode(&app.statedb) & 0o077, 0, "STATEDB");
    app.seed(&[git_lorry("up/slow", 3600, 600)]);
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir");
    let mut first = minion(&app, dir.path(), &tmp, &[]);
    let spec_dir = wait_for("the job's spec", READY_TIMEOUT, || {
        std::fs::read_dir(&tmp)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("up%2Fslow.lorry").exists() || p.join("up_slow.lorry").exists())
    });
    assert_eq!(mode(&spec_dir), 0o700);
    for entry in std::fs::read_dir(&spec_dir).expect("read") {
        assert_eq!(mode(&entry.expect("entry").path()), 0o600);
    }
    let lorry: i32 = wait_for("the stand-in lorry's pid", READY_TIMEOUT, || {
        std::fs::read_to_string(dir.path().join("slow.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    // kill -9: the minion cannot clean up; its successor does.
    first.kill().expect("kill -9");
    first.wait().expect("wait");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lorry),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(spec_dir.exists());
    let mut second = minion(&app, dir.path(), &tmp, &[]);
    wait_for("the stale spec to go", READY_TIMEOUT, || {
        (!spec_dir.exists()).then_some(())
    });
    crate::common::terminate(&mut second);
}
