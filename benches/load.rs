//! Benchmark under load (issue 12 item 9): 200 concurrent API clients for
//! 60 s, reads and admin writes mixed, against the real webapp binary
//! while two real minions run real `lorry` jobs (50 lorries over five
//! upstreams served by `git daemon`, each due again as soon as it ends).
//!
//! The clients are `LC_BENCH_PROCESSES` processes (default 4: this binary
//! run again) of `LC_BENCH_CLIENTS / LC_BENCH_PROCESSES` connections each,
//! every connection a closed loop (the next request when the answer is
//! in), not 200 separate processes: on a 2-core machine 200 processes
//! would measure the scheduler more than the webapp.
//!
//! Baseline, measured in the same run against the same webapp before the
//! load: every route asked by one client in turn, minions stopped. The
//! table gives per route the requests, errors (non-2xx or no answer),
//! p50 and p99 under load, the baseline's, and the p99 ratio; then the
//! webapp's resident memory (`VmRSS`, and `VmHWM` its peak) from `/proc`,
//! and the jobs that ran meanwhile. Every job must end with exit 0 once
//! the queue is stopped: a lost job-update would leave one running.
//!
//! `cargo bench --bench load`; `LC_BENCH_SECONDS` (60), `LC_BENCH_CLIENTS`
//! (200), `LC_BENCH_PROCESSES` (4).

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp, minions, lorry and git daemon"
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::mirrors::{self, git, git_daemon};
use common::{Proc, Scenario, env_or, memory, percentile, run_clients, wait_until};
use lc_core::db::{NewLorry, StateDb};

const LORRIES: usize = 50;
const UPSTREAMS: usize = 5;

/// Upstream repositories `r0.git`... with a few commits, and `git daemon`.
fn upstreams(dir: &Path) -> (Proc, u16) {
    let base = dir.join("upstreams");
    for i in 0..UPSTREAMS {
        let work = dir.join(format!("work{i}"));
        std::fs::create_dir_all(&work).expect("mkdir");
        git(&work, &["init", "-q", "-b", "main"]);
        for c in 0..5 {
            std::fs::write(work.join("file"), format!("{i} {c}")).expect("write");
            git(&work, &["add", "."]);
            git(&work, &["commit", "-q", "-m", "c"]);
        }
        let bare = base.join(format!("r{i}.git"));
        std::fs::create_dir_all(&base).expect("mkdir");
        git(
            dir,
            &[
                "clone",
                "-q",
                "--bare",
                &work.display().to_string(),
                &bare.display().to_string(),
            ],
        );
    }
    git_daemon(&base)
}

fn start_minion(dir: &Path, port: u16, name: &str) -> Proc {
    mirrors::start_minion(
        dir,
        port,
        name,
        &["--sleep=0.2".to_owned(), "--update-interval=1".to_owned()],
    )
}

fn lorry_path(i: usize) -> String {
    format!("load/g{}/repo{i:03}", i % 7)
}

/// One request of the mix: its route name and how to send it.
#[derive(Clone, Copy)]
enum Route {
    Status,
    StatusHtml,
    ListQueue,
    Lorry,
    ListJobs,
    Job,
    Metrics,
    Events,
    Health,
    MoveToTop,
    MoveToBottom,
    SetMaxJobs,
}

/// The mix: mostly reads, one request in six an admin write.
const MIX: &[Route] = &[
    Route::Status,
    Route::ListQueue,
    Route::ListQueue,
    Route::Lorry,
    Route::Lorry,
    Route::Lorry,
    Route::ListJobs,
    Route::Job,
    Route::Job,
    Route::Job,
    Route::Metrics,
    Route::Events,
    Route::Health,
    Route::Health,
    Route::StatusHtml,
    Route::MoveToTop,
    Route::MoveToBottom,
    Route::SetMaxJobs,
];

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Status => "GET /1.0/status",
            Route::StatusHtml => "GET /1.0/status-html",
            Route::ListQueue => "GET /1.0/list-queue",
            Route::Lorry => "GET /1.0/lorry/<path>",
            Route::ListJobs => "GET /1.0/list-jobs",
            Route::Job => "GET /1.0/job/<id>",
            Route::Metrics => "GET /1.0/metrics",
            Route::Events => "GET /1.0/events?last=20",
            Route::Health => "GET /1.0/health-check",
            Route::MoveToTop => "POST /1.0/move-to-top",
            Route::MoveToBottom => "POST /1.0/move-to-bottom",
            Route::SetMaxJobs => "POST /1.0/set-max-jobs",
        }
    }

    async fn send(self, client: &reqwest::Client, base: &str, n: usize) -> bool {
        let path = lorry_path(n % LORRIES);
        let request = match self {
            Route::Status => client.get(format!("{base}/1.0/status")),
            Route::StatusHtml => client.get(format!("{base}/1.0/status-html")),
            Route::ListQueue => client.get(format!("{base}/1.0/list-queue")),
            Route::Lorry => client.get(format!("{base}/1.0/lorry/{path}")),
            Route::ListJobs => client.get(format!("{base}/1.0/list-jobs")),
            Route::Job => client.get(format!("{base}/1.0/job/{}", 1 + n % 20)),
            Route::Metrics => client.get(format!("{base}/1.0/metrics")),
            Route::Events => client.get(format!("{base}/1.0/events?last=20")),
            Route::Health => client.get(format!("{base}/1.0/health-check")),
            Route::MoveToTop => client
                .post(format!("{base}/1.0/move-to-top"))
                .form(&[("path", path.as_str())]),
            Route::MoveToBottom => client
                .post(format!("{base}/1.0/move-to-bottom"))
                .form(&[("path", path.as_str())]),
            Route::SetMaxJobs => client
                .post(format!("{base}/1.0/set-max-jobs"))
                .form(&[("max_jobs", "8")]),
        };
        match request.send().await {
            Ok(answer) => {
                let ok = answer.status().is_success();
                // Read the whole body: a client that hangs up early
                // measures less than the webapp does.
                ok & answer.bytes().await.is_ok()
            }
            Err(_) => false,
        }
    }
}

/// Every connection asks the mix in turn, from its own place in it.
#[derive(Clone)]
struct Mix;

impl Scenario for Mix {
    async fn send(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        n: usize,
    ) -> (&'static str, bool) {
        let route = MIX[n % MIX.len()];
        (route.name(), route.send(client, base, n).await)
    }
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    reqwest::blocking::get(format!("http://127.0.0.1:{port}{path}"))
        .and_then(|r| r.json())
        .expect("GET")
}

fn post(port: u16, path: &str) {
    let answer = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .expect("POST");
    assert!(answer.status().is_success(), "POST {path}");
}

fn main() {
    if common::client_scenario().is_some() {
        common::client_process(Mix);
        return;
    }
    let seconds: u64 = env_or("LC_BENCH_SECONDS", 60);
    let clients: u64 = env_or("LC_BENCH_CLIENTS", 200);
    let processes: u64 = env_or("LC_BENCH_PROCESSES", 4).max(1);
    let per_process = clients.div_ceil(processes);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_daemon, git_port) = upstreams(dir.path());
    let (webapp, port) = common::start_webapp(dir.path(), &[]);
    let webapp_pid = webapp.0.id();
    {
        let db = StateDb::open(&dir.path().join("state.db")).expect("STATEDB");
        db.write(|tx| {
            for i in 0..LORRIES {
                let path = lorry_path(i);
                let url = format!("git://127.0.0.1:{git_port}/r{}.git", i % UPSTREAMS);
                tx.upsert_lorry(&NewLorry {
                    text: serde_json::json!({ path.clone(): { "type": "git", "url": url } })
                        .to_string(),
                    path,
                    from_host: String::new(),
                    from_path: String::new(),
                    interval: 0,
                    lorry_timeout: 600,
                })?;
            }
            Ok(())
        })
        .expect("seed");
    }
    // A first round of jobs, so that job ids and mirrors exist.
    let minions = [
        start_minion(dir.path(), port, "m1"),
        start_minion(dir.path(), port, "m2"),
    ];
    wait_until("20 jobs", || {
        get_json(port, "/1.0/list-jobs")["job_ids"]
            .as_array()
            .is_some_and(|ids| ids.len() >= 20)
    });
    post(port, "/1.0/stop-queue");
    wait_until("the first jobs ending", || {
        get_json(port, "/1.0/list-running-jobs")["running_jobs"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    let (idle_rss, _) = memory(webapp_pid);

    // Baseline: one client, every route in turn, nothing else running.
    let baseline_seconds = (seconds / 6).max(5);
    eprintln!("baseline: 1 client for {baseline_seconds} s");
    let baseline = run_clients(port, 1, 1, baseline_seconds, dir.path(), "baseline", "mix");
    post(port, "/1.0/start-queue");
    let jobs_before = get_json(port, "/1.0/list-jobs")["job_ids"]
        .as_array()
        .map_or(0, Vec::len);
    eprintln!(
        "load: {clients} connections in {processes} processes for {seconds} s, two minions running jobs"
    );
    let sampler = std::thread::spawn(move || {
        let mut peak_rss = 0;
        let end = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < end {
            peak_rss = peak_rss.max(memory(webapp_pid).0);
            std::thread::sleep(Duration::from_millis(200));
        }
        peak_rss
    });
    let load = run_clients(
        port,
        processes,
        per_process,
        seconds,
        dir.path(),
        "load",
        "mix",
    );
    let peak_rss = sampler.join().expect("sampler");
    let (end_rss, hwm) = memory(webapp_pid);

    // Every job must end, each with exit 0: a lost job-update would leave
    // one running (or failed).
    post(port, "/1.0/stop-queue");
    wait_until("every job ended", || {
        get_json(port, "/1.0/list-running-jobs")["running_jobs"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    let ids: Vec<i64> =
        serde_json::from_value(get_json(port, "/1.0/list-jobs")["job_ids"].clone()).expect("ids");
    let failed: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| get_json(port, &format!("/1.0/job/{id}"))["exit"] != "0")
        .collect();
    drop(minions);

    println!(
        "\nload: {clients} connections ({processes} processes × {per_process}), {seconds} s, \
         closed loops; two minions running real jobs; baseline: 1 connection, idle"
    );
    println!(
        "| route | requests | errors | p50 ms | p99 ms | baseline p50 | baseline p99 | p99 / baseline |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut total = 0;
    let mut errors = 0;
    for (route, (times, errs)) in &load {
        let (base_times, _) = baseline.get(route).cloned().unwrap_or_default();
        let p99 = percentile(times, 0.99);
        let base_p99 = percentile(&base_times, 0.99);
        total += times.len();
        errors += errs;
        println!(
            "| {route} | {} | {errs} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1}× |",
            times.len(),
            percentile(times, 0.5),
            p99,
            percentile(&base_times, 0.5),
            base_p99,
            if base_p99 > 0.0 { p99 / base_p99 } else { 0.0 },
        );
    }
    println!(
        "\nrequests {total} ({:.0}/s), errors {errors}",
        total as f64 / seconds as f64
    );
    println!(
        "webapp resident: idle {:.1} MiB, under load peak {:.1} MiB (VmHWM {:.1} MiB), at the end {:.1} MiB; ratio peak/idle {:.1}×",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        end_rss as f64 / 1024.0,
        peak_rss as f64 / idle_rss.max(1) as f64,
    );
    println!(
        "jobs during the load: {}; jobs not ending with exit 0: {:?}",
        ids.len() - jobs_before,
        failed
    );
    drop(webapp);
    assert_eq!(errors, 0, "errors under load");
    assert!(failed.is_empty(), "jobs failed or lost: {failed:?}");
}
