//! The activity hint (issue 14 item 3: "one listing call per page
//! replaces one ls-remote per repo"), timed from outside with the real
//! binaries: N repositories in one GitLab group behind the GitLab double
//! of the end-to-end tests (`tests/e2e/doubles/gitlab_v4.rs`, each rule
//! citing GitLab's documentation; `last_activity_at` from the real
//! repositories' pushes by GitLab's hourly rule), their clones served
//! over smart HTTP by the real `git http-backend`. Two products (the real
//! webapp, two real minions running the real `lorry`, local downstream)
//! list that group as an Upstream Host, one with `"activity-hint": true`
//! and one without, and each mirrors every repository first.
//!
//! Then, in turns, an unchanged refresh cycle of each: with the queue
//! stopped, the pretended clock two hours on (every lorry due, the host
//! due a listing); then, timed, `POST /1.0/ls-troves` and `POST
//! /1.0/start-queue` until `GET /1.0/status` shows every lorry with that
//! run's successful result. Without the hint that is the listing plus a
//! job per repository (lorry's one fetch that brings nothing: the
//! `ls-remote` floor through the product); with it, the listing alone:
//! every lorry is checked without a job, which the bench checks
//! (`last_checked_without_job` at that time, "unchanged per host
//! activity"), as it checks that none without the hint was. For scale,
//! the same run times a plain `git ls-remote` of every repository, one
//! after the other, against the same server. After the first mirror every
//! downstream repository's refs are compared with the origin's.
//!
//! `cargo bench --bench activity_hint`. Environment: `LC_ACTIVITY_REPOS`
//! (1000), `LC_ACTIVITY_RUNS` (3 cycles each), `LC_ACTIVITY_MINION_SLEEP`
//! (the minions' `--sleep`, 0.2 s).

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp, minions, lorry, git and git http-backend"
)]

mod common;
#[path = "../tests/e2e/doubles/mod.rs"]
#[allow(dead_code, reason = "the GitLab double alone is used here")]
mod doubles;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use common::env_or;
use common::mirrors::{Product, differing, fill_small_repository, git, machine, median};
use doubles::gitlab_v4::GitlabV4;
use doubles::{Forge, Server};

const TOKEN: &str = "bench-gitlab-token";
const GROUP: &str = "bench";
const TWO_HOURS: i64 = 7_200;

/// `git http-backend` as a CGI program behind an HTTP server on
/// 127.0.0.1, serving every repository under `root` for fetching
/// (<https://git-scm.com/docs/git-http-backend>: `GIT_PROJECT_ROOT`,
/// `GIT_HTTP_EXPORT_ALL`, the CGI variables, `GIT_PROTOCOL` from the
/// `Git-Protocol` header for protocol v2, and the request body's
/// `Content-Encoding` as `HTTP_CONTENT_ENCODING`).
fn git_http(root: &Path) -> Server {
    let root = Arc::new(root.to_owned());
    let router = axum::Router::new().fallback(cgi).with_state(root);
    Server::start(router)
}

async fn cgi(State(root): State<Arc<PathBuf>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut child = match tokio::process::Command::new("git")
        .arg("http-backend")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root.as_os_str())
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let Ok(out) = child.wait_with_output().await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let _ = writer.await;
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.stdout.len());
    let head = String::from_utf8_lossy(&out.stdout[..split]).into_owned();
    let payload = out.stdout.get(split + 4..).unwrap_or_default().to_vec();
    let mut response = Response::builder().status(StatusCode::OK);
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            response = response.status(code.parse::<u16>().unwrap_or(500));
        } else {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(payload))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A product listing the group, with or without the hint; its lorries
/// mirrored once.
struct Side {
    name: &'static str,
    product: Product,
    now: i64,
}

impl Side {
    fn start(dir: &Path, gitlab: &GitlabV4, hint: bool, repos: usize, sleep: &str) -> Side {
        let product = Product::start(dir, 2, sleep);
        product.write_conf(&json!([{
            "type": "gitlab",
            "host": gitlab.server.host(),
            "protocol": "http",
            "private-token": TOKEN,
            "activity-hint": hint,
            "interval": "1h",
            "ls-interval": "1h",
            "prefixmap": {GROUP: "fleet"},
        }]));
        let now = 1_900_000_000;
        product.pretend_time(now);
        product.post("/1.0/read-configuration", &[]);
        let t = Instant::now();
        product.post("/1.0/ls-troves", &[]);
        product.wait_for_results(repos, now, t);
        Side {
            name: if hint { "hint on" } else { "hint off" },
            product,
            now,
        }
    }

    /// One unchanged refresh cycle, timed; checks that every lorry was
    /// checked without a job (hint on) or by a job (hint off).
    fn cycle(&mut self, repos: usize, hint: bool) -> Duration {
        // The queue is stopped while the clock moves, so that no minion
        // takes a lorry due before the listing that says it is unchanged.
        self.product.post("/1.0/stop-queue", &[]);
        self.now += TWO_HOURS;
        self.product.pretend_time(self.now);
        let t = Instant::now();
        let ls = self.product.post("/1.0/ls-troves", &[]);
        assert_eq!(ls["hosts"][0]["listed"], true, "{ls}");
        self.product.post("/1.0/start-queue", &[]);
        let queue = self.product.wait_for_results(repos, self.now, t);
        let took = t.elapsed();
        for entry in &queue {
            let checked = entry["last_checked_without_job"].as_i64() == Some(self.now);
            assert_eq!(checked, hint, "{}: {entry}", self.name);
            if hint {
                assert_eq!(
                    entry["checked_without_job_how"], "unchanged per host activity",
                    "{entry}"
                );
            }
        }
        took
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn main() {
    // `cargo test --benches` runs this too: only as a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("activity hint benchmark: run with `cargo bench --bench activity_hint`");
        return;
    }
    let repos = env_or("LC_ACTIVITY_REPOS", 1_000) as usize;
    let runs = env_or("LC_ACTIVITY_RUNS", 3).max(1) as usize;
    let sleep = std::env::var("LC_ACTIVITY_MINION_SLEEP").unwrap_or_else(|_| "0.2".into());
    println!("machine: {}", machine());
    let tmp = tempfile::tempdir().expect("tempdir");

    // The forge: the double's clock a day before the products' pretended
    // time, so every repository was last active long before its first job.
    let gitlab = GitlabV4::start(TOKEN);
    let forge = gitlab.attach_git(&tmp.path().join("forge"));
    forge.set_clock(1_900_000_000 - 86_400);
    let t = Instant::now();
    let names: Vec<String> = (0..repos).map(|i| format!("{GROUP}/r{i:04}")).collect();
    for (i, name) in names.iter().enumerate() {
        gitlab.add_project(name, Some("main"), None);
        fill_small_repository(&forge.create(name), i);
    }
    let http = git_http(&tmp.path().join("forge"));
    // Clones come from the git server, on the same host name as the API
    // (a listing may only lead to its own host; the port may differ).
    gitlab.state().clone_base = Some(http.url());
    println!(
        "{repos} repositories (3 commits and a tag each) in one GitLab group, made in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut sides = [false, true].map(|hint| {
        let dir = tmp.path().join(if hint { "on" } else { "off" });
        std::fs::create_dir_all(&dir).expect("mkdir");
        let side = Side::start(&dir, &gitlab, hint, repos, &sleep);
        let wrong = differing(&tmp.path().join("forge"), &names, |name| {
            let short = name.strip_prefix(&format!("{GROUP}/")).unwrap_or(name);
            dir.join(format!("downstream/fleet/{short}.git"))
        });
        assert!(
            wrong.is_empty(),
            "{}: {} of {repos} differ from the origin, e.g. {}",
            side.name,
            wrong.len(),
            wrong[0]
        );
        side
    });
    println!(
        "both products mirrored every repository (refs verified) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let listed = |gitlab: &GitlabV4| gitlab.state().seen.len();
    let mut times: [Vec<Duration>; 3] = Default::default();
    let mut requests = [0; 2];
    for run in 0..runs {
        for (s, side) in sides.iter_mut().enumerate() {
            let before = listed(&gitlab);
            times[s].push(side.cycle(repos, s == 1));
            requests[s] = listed(&gitlab) - before;
        }
        let t = Instant::now();
        for name in &names {
            git(
                tmp.path(),
                &["ls-remote", &format!("{}/{name}.git", http.url())],
            );
        }
        times[2].push(t.elapsed());
        eprintln!(
            "run {}: hint off {} s, hint on {} s, ls-remote loop {} s",
            run + 1,
            secs(times[0][run]),
            secs(times[1][run]),
            secs(times[2][run])
        );
    }

    let [off, on, floor] = times.map(|t| (median(t.clone()), t));
    let all = |t: &[Duration]| t.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ");
    println!();
    println!(
        "An unchanged refresh cycle of {repos} repositories, from `ls-troves` to every \
         lorry's result; median of {runs} (each in brackets):"
    );
    println!();
    println!("| | GitLab API requests | time | per repository | ratio to hint on |");
    println!("|---|---|---|---|---|");
    let per = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1_000.0 / repos as f64);
    let ratio = |d: Duration| format!("{:.1}×", d.as_secs_f64() / on.0.as_secs_f64().max(1e-9));
    println!(
        "| hint off: a job per repository (lorry's fetch) | {} | {} s [{}] | {} | {} |",
        requests[0],
        secs(off.0),
        all(&off.1),
        per(off.0),
        ratio(off.0)
    );
    println!(
        "| hint on: checked without a job | {} | {} s [{}] | {} | 1.0× |",
        requests[1],
        secs(on.0),
        all(&on.1),
        per(on.0)
    );
    println!(
        "| plain `git ls-remote` loop, same server | 0 | {} s [{}] | {} | {} |",
        secs(floor.0),
        all(&floor.1),
        per(floor.0),
        ratio(floor.0)
    );
}
