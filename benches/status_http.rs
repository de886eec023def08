//! Benchmark (issue 14 item 7): `GET /1.0/status` of the real webapp
//! binary at 1,000, 10,000 and 100,000 lorries in a real STATEDB,
//! measured from outside over HTTP, as a user sees it.
//!
//! Per size, against one webapp (with `--status-html`, as deployed):
//! - one keep-alive client, one request at a time: the first status
//!   (cold), a status right after a write of this bench's own connection
//!   to STATEDB (as another process's: every row read again, the full
//!   build, the baseline), right after a `set-max-jobs` (the webapp's own
//!   write: built from the last body, no lorry changed), right after a
//!   `move-to-top` (one lorry changed), an unchanged status (from memory,
//!   built again every 5 s), and `If-None-Match` with its ETag (304);
//! - 8 and 64 keep-alive connections in client processes (2 and 4
//!   processes of this binary, see `common`), closed loops for
//!   `LC_BENCH_SECONDS` (10): with `If-None-Match` (each connection sends
//!   the last ETag it got), with full bodies, and with full bodies
//!   gzipped (`Accept-Encoding: gzip`, as Python's requests sends; read
//!   whole, not inflated): requests/s, p50, p99, the webapp's peak memory;
//! - the webapp's resident memory from `/proc` (`VmRSS` idle and after,
//!   `VmHWM` its peak);
//! - `GET /1.0/list-queue` and `/1.0/metrics`, one client: after another
//!   process's write, after the webapp's own change, unchanged (see
//!   `fleet_reads`; with `LC_BENCH_FLEET_BASELINE`, against that build
//!   too, interleaved).
//!
//! Targets: status ≤ 2 / 20 / 200 ms at 1,000 / 10,000 / 100,000; at
//! 1,000 from 64 clients ≥ 5,000/s with `If-None-Match`, ≥ 1,500/s full;
//! resident ≤ 150 MB at 100,000.
//!
//! `cargo bench --bench status_http`; `LC_BENCH_SIZES` (1000,10000,100000),
//! `LC_BENCH_SECONDS` (10); `LC_BENCH_BASELINE_WEBAPP`: measure that
//! webapp binary instead (an older build, for before/after comparisons);
//! `LC_BENCH_FLEET_BASELINE`: a webapp binary of an older commit that
//! answers list-queue and metrics beside this one, interleaved.

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp binary and client processes"
)]

mod common;

use std::time::{Duration, Instant};

use common::{Samples, Scenario, env_or, memory, percentile, reset_peak, run_clients};
use lc_core::db::StateDb;
use reqwest::header::{ACCEPT_ENCODING, ETAG, HeaderValue, IF_NONE_MATCH};

/// A connection asking for the status, with or without `If-None-Match`,
/// accepting gzip or not (a gzipped body is read whole, not inflated: that
/// is the client's work, not the webapp's).
#[derive(Clone)]
struct StatusClient {
    if_none_match: bool,
    gzip: bool,
    etag: Option<HeaderValue>,
}

impl Scenario for StatusClient {
    async fn send(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        _: usize,
    ) -> (&'static str, bool) {
        let mut request = client.get(format!("{base}/1.0/status"));
        if self.gzip {
            request = request.header(ACCEPT_ENCODING, "gzip");
        }
        if self.if_none_match
            && let Some(tag) = &self.etag
        {
            request = request.header(IF_NONE_MATCH, tag.clone());
        }
        match request.send().await {
            Ok(answer) => {
                let code = answer.status().as_u16();
                if let Some(tag) = answer.headers().get(ETAG) {
                    self.etag = Some(tag.clone());
                }
                let ok = (code == 200 || code == 304) && answer.bytes().await.is_ok();
                (if code == 304 { "304" } else { "200" }, ok)
            }
            Err(_) => ("error", false),
        }
    }
}

/// One request with a blocking client: time, status, body length, ETag.
fn get(
    client: &reqwest::blocking::Client,
    url: &str,
    etag: Option<&str>,
) -> (Duration, u16, usize, String) {
    let start = Instant::now();
    let mut request = client.get(url);
    if let Some(tag) = etag {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let answer = request.send().expect("GET");
    let code = answer.status().as_u16();
    let tag = answer
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let len = answer.bytes().expect("body").len();
    (start.elapsed(), code, len, tag)
}

fn sorted_micros(times: &[Duration]) -> Vec<u64> {
    let mut micros: Vec<u64> = times.iter().map(|t| t.as_micros() as u64).collect();
    micros.sort_unstable();
    micros
}

fn p50_p99(times: &[Duration]) -> String {
    let sorted = sorted_micros(times);
    format!(
        "{:.2} / {:.2}",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99)
    )
}

struct Sequential {
    n: usize,
    body: usize,
    first: Duration,
    full: Vec<Duration>,
    rebuilt: Vec<Duration>,
    moved: Vec<Duration>,
    unchanged: Vec<Duration>,
    not_modified: Vec<Duration>,
}

struct Loaded {
    n: usize,
    clients: u64,
    mode: &'static str,
    seconds: u64,
    samples: Samples,
    /// The webapp's peak resident memory during the run, KiB.
    peak: u64,
}

struct Memory {
    n: usize,
    idle: u64,
    /// Peak of the one-client requests.
    sequential_peak: u64,
    after: u64,
    /// Peak of all phases.
    hwm: u64,
}

fn main() {
    if let Some(scenario) = common::client_scenario() {
        common::client_process(StatusClient {
            if_none_match: scenario == "if-none-match",
            gzip: scenario == "full-gzip",
            etag: None,
        });
        return;
    }
    let sizes: Vec<usize> = std::env::var("LC_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("LC_BENCH_SIZES: numbers"))
        .collect();
    let seconds = env_or("LC_BENCH_SECONDS", 10);
    let mut sequential = Vec::new();
    let mut loaded = Vec::new();
    let mut memories = Vec::new();
    let mut others = Vec::new();
    for n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let db = StateDb::open(&dir.path().join("state.db")).expect("open STATEDB");
        common::seed_status_fleet(&db, n, lc_core::db::real_now() - 600);
        drop(db);
        eprintln!(
            "{n} lorries seeded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www).expect("mkdir");
        let status_html = format!("--status-html={}", www.join("status.html").display());
        let (webapp, port) = match common::baseline_webapp() {
            // Another build of the webapp (before/after comparisons).
            Some(binary) => {
                std::fs::create_dir_all(dir.path().join("confgit")).expect("mkdir");
                common::start_webapp_binary(
                    &binary,
                    dir.path(),
                    &["--no-debug-real-confgit".to_owned(), status_html],
                )
            }
            None => common::start_webapp(dir.path(), &[status_html]),
        };
        let pid = webapp.0.id();
        let (idle, _) = memory(pid);
        reset_peak(pid);
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        let url = format!("http://127.0.0.1:{port}/1.0/status");
        let (first, code, body, _) = get(&client, &url, None);
        assert_eq!(code, 200);

        // After a change: every request builds the body; after another
        // connection's write, from every row.
        let rounds = if n >= 100_000 { 15 } else { 40 };
        let other = StateDb::open(&dir.path().join("state.db")).expect("open STATEDB");
        let mut full = Vec::new();
        let mut rebuilt = Vec::new();
        let mut moved = Vec::new();
        for i in 0..rounds {
            other
                .write(|tx| tx.set_max_jobs(Some((i % 2 + 3) as i64)))
                .expect("other write");
            full.push(get(&client, &url, None).0);
            let answer = client
                .post(format!("http://127.0.0.1:{port}/1.0/set-max-jobs"))
                .form(&[("max_jobs", (i % 2 + 1).to_string())])
                .send()
                .expect("set-max-jobs");
            assert!(answer.status().is_success());
            rebuilt.push(get(&client, &url, None).0);
            let path = format!("upstream/group-{:02}/project-{:06}", (i * 7) % 50, i * 7);
            let answer = client
                .post(format!("http://127.0.0.1:{port}/1.0/move-to-top"))
                .form(&[("path", path)])
                .send()
                .expect("move-to-top");
            assert!(answer.status().is_success());
            moved.push(get(&client, &url, None).0);
        }
        drop(other);
        // Unchanged: from memory, rebuilt when the second changes.
        let mut unchanged = Vec::new();
        let mut not_modified = Vec::new();
        let until = Instant::now() + Duration::from_secs(3);
        let mut etag = String::new();
        while Instant::now() < until || unchanged.len() < 20 {
            let (t, code, _, tag) = get(&client, &url, None);
            assert_eq!(code, 200);
            unchanged.push(t);
            etag = tag;
            let (t, code, _, tag) = get(&client, &url, Some(&etag));
            assert!(code == 304 || code == 200, "{code}");
            not_modified.push(t);
            etag = tag;
        }
        let _ = etag;
        let (_, sequential_peak) = memory(pid);
        sequential.push(Sequential {
            n,
            body,
            first,
            full,
            rebuilt,
            moved,
            unchanged,
            not_modified,
        });

        for (clients, processes) in [(8, 2), (64, 4)] {
            for mode in ["if-none-match", "full", "full-gzip"] {
                eprintln!("{n} lorries: {clients} clients, {mode}, {seconds} s");
                reset_peak(pid);
                let samples = run_clients(
                    port,
                    processes,
                    clients / processes,
                    seconds,
                    dir.path(),
                    &format!("{clients}-{mode}"),
                    mode,
                );
                loaded.push(Loaded {
                    n,
                    clients,
                    mode,
                    seconds,
                    samples,
                    peak: memory(pid).1,
                });
            }
        }
        let (after, last) = memory(pid);
        let hwm = loaded
            .iter()
            .filter(|l| l.n == n)
            .map(|l| l.peak)
            .chain([sequential_peak, last])
            .max()
            .unwrap_or(0);
        memories.push(Memory {
            n,
            idle,
            sequential_peak,
            after,
            hwm,
        });
        others.extend(fleet_reads(n, dir.path(), port, &client));
        drop(webapp);
    }

    println!("\nGET /1.0/status, one keep-alive client, one request at a time (ms, p50 / p99)");
    println!(
        "| lorries | body | first (cold) | after another process's write (full build; baseline) | after set-max-jobs | after move-to-top | unchanged | If-None-Match (304) | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for s in &sequential {
        let target = match s.n {
            n if n <= 1_000 => "≤ 2 ms",
            n if n <= 10_000 => "≤ 20 ms",
            _ => "≤ 200 ms",
        };
        println!(
            "| {} | {:.1} MiB | {:.1} | {} | {} | {} | {} | {} | {target} |",
            s.n,
            s.body as f64 / (1024.0 * 1024.0),
            s.first.as_secs_f64() * 1000.0,
            p50_p99(&s.full),
            p50_p99(&s.rebuilt),
            p50_p99(&s.moved),
            p50_p99(&s.unchanged),
            p50_p99(&s.not_modified),
        );
    }
    println!("\nfrom client processes, keep-alive connections in closed loops");
    println!(
        "| lorries | clients | mode | requests/s | p50 ms | p99 ms | 304s | errors | webapp peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for l in &loaded {
        let mut all: Vec<u64> = Vec::new();
        let mut errors = 0;
        for (times, errs) in l.samples.values() {
            all.extend(times);
            errors += errs;
        }
        all.sort_unstable();
        let not_modified = l.samples.get("304").map_or(0, |(t, _)| t.len());
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1}% | {errors} | {:.1} |",
            l.n,
            l.clients,
            l.mode,
            all.len() as f64 / l.seconds as f64,
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            100.0 * not_modified as f64 / all.len().max(1) as f64,
            l.peak as f64 / 1024.0,
        );
    }
    println!("\nwebapp resident memory (MiB)");
    println!(
        "| lorries | idle | peak, one client | after the runs | peak of the whole run (VmHWM) |"
    );
    println!("|---|---|---|---|---|");
    for m in &memories {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            m.n,
            m.idle as f64 / 1024.0,
            m.sequential_peak as f64 / 1024.0,
            m.after as f64 / 1024.0,
            m.hwm as f64 / 1024.0
        );
    }
    println!("\nother whole-fleet reads, one client (ms, p50 / p99)");
    println!(
        "| lorries | route | webapp | after another process's write | after the webapp's own move-to-top | unchanged | body |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &others {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} KiB |",
            r.n,
            r.route,
            r.webapp,
            p50_p99(&r.other_write),
            p50_p99(&r.own_change),
            p50_p99(&r.unchanged),
            r.body / 1024
        );
    }
}

/// One route of [`fleet_reads`] on one webapp.
struct FleetRead {
    n: usize,
    route: &'static str,
    webapp: &'static str,
    other_write: Vec<Duration>,
    own_change: Vec<Duration>,
    unchanged: Vec<Duration>,
    body: usize,
}

/// `GET /1.0/list-queue` and `/1.0/metrics`, one client, each round: after
/// a write of this bench's own connection (another process's: every row
/// read again), after a `move-to-top` through the webapp (one lorry
/// changed), and unchanged. With `LC_BENCH_FLEET_BASELINE`, a webapp
/// built from that binary on the same STATEDB answers the same requests,
/// interleaved round by round (same machine load for both).
fn fleet_reads(
    n: usize,
    dir: &std::path::Path,
    port: u16,
    client: &reqwest::blocking::Client,
) -> Vec<FleetRead> {
    let baseline = std::env::var_os("LC_BENCH_FLEET_BASELINE").map(|binary| {
        common::start_webapp_binary(
            std::path::Path::new(&binary),
            dir,
            &["--no-debug-real-confgit".to_owned()],
        )
    });
    let mut webapps = vec![("this", port)];
    if let Some((_, port)) = &baseline {
        webapps.push(("baseline", *port));
    }
    let other = StateDb::open(&dir.join("state.db")).expect("open STATEDB");
    let rounds = if n >= 100_000 { 15 } else { 40 };
    let mut reads = Vec::new();
    for route in ["/1.0/list-queue", "/1.0/metrics"] {
        let mut runs: Vec<FleetRead> = webapps
            .iter()
            .map(|(webapp, _)| FleetRead {
                n,
                route,
                webapp,
                other_write: Vec::new(),
                own_change: Vec::new(),
                unchanged: Vec::new(),
                body: 0,
            })
            .collect();
        for i in 0..rounds {
            for ((_, port), run) in webapps.iter().zip(&mut runs) {
                let url = format!("http://127.0.0.1:{port}{route}");
                let timed = |times: &mut Vec<Duration>| {
                    let (t, code, len, _) = get(client, &url, None);
                    assert_eq!(code, 200, "{route}");
                    times.push(t);
                    len
                };
                other
                    .write(|tx| tx.set_max_jobs(Some((i % 2 + 3) as i64)))
                    .expect("other write");
                run.body = timed(&mut run.other_write);
                let path = format!("upstream/group-{:02}/project-{:06}", (i * 7) % 50, i * 7);
                let answer = client
                    .post(format!("http://127.0.0.1:{port}/1.0/move-to-top"))
                    .form(&[("path", path)])
                    .send()
                    .expect("move-to-top");
                assert!(answer.status().is_success());
                timed(&mut run.own_change);
                timed(&mut run.unchanged);
            }
        }
        reads.extend(runs);
    }
    reads
}
