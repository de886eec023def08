//! Benchmark: what recording events costs give-me-job + job-update (issue
//! 17 item 6), at 100,000 lorries, measured from outside over loopback HTTP
//! by several client processes against the real webapp binary.
//!
//! Two modes of the same binary on copies of the same seeded STATEDB:
//! events on (as shipped), and off: `--debug-bench-without-events`, a
//! hidden option (only this bench uses it) that makes `record_event`
//! return at once: no statement, no serialised body, no row. The callers
//! still build their bodies (small `json!` values of numbers and names)
//! before the call, so "off" keeps that part of the cost: the ratio is a
//! slight underestimate of what events cost. The modes alternate, `LC_BENCH_RUNS` times each, the order
//! swapped every run, so drift of the shared machine's load falls on both.
//!
//! Every pair is a minion's work for one job: give-me-job (a lorry
//! handed out: one `job-started` event) then the final job-update with
//! exit 0 and a line of output (one `job-ended` event), on one keep-alive
//! connection per client. No result JSON is sent, so the event is as large
//! a part of the pair as it can be. The downstream is `local` with every
//! repository handed out made beforehand, so no pair creates one. After
//! each run the bench checks the event log: two events a pair when on,
//! none when off.
//!
//! Printed: per run and mode the p50 and mean latency of a pair, the pairs
//! per second of all clients together and the webapp's CPU time per pair
//! (all its threads, from `/proc/PID/task/*/schedstat`: what the pair
//! costs the server, which the shared machine's load disturbs far less
//! than latency); then per mode all pairs pooled; then the ratios on/off,
//! pooled and the median of the runs' own ratios (each run's two modes
//! ran back to back, so they saw about the same load).
//! Target: events add < 10% (the median run's p50, mean and CPU ratios
//! < 1.10).
//!
//! `cargo bench --bench event_cost`; `LC_BENCH_LORRIES` (100000),
//! `LC_BENCH_PROCESSES` (4 client processes, this binary run again),
//! `LC_BENCH_PAIRS` (per process per run, 400), `LC_BENCH_RUNS` (8).

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp binary from client processes"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lc_core::db::{NewLorry, StateDb};

mod common;

fn env_or(name: &str, default: usize) -> usize {
    common::env_or(name, default as u64) as usize
}

fn path_of(i: usize) -> String {
    format!("bench/group{:03}/repo{i:06}", i % 1000)
}

/// A STATEDB with `n` lorries, all due alike (handed out in path order).
fn seed(db_path: &Path, n: usize) {
    let db = StateDb::open(db_path).expect("open STATEDB");
    db.write(|tx| {
        for i in 0..n {
            let path = path_of(i);
            tx.upsert_lorry(&NewLorry {
                text: format!(
                    r#"{{"{path}": {{"type": "git", "url": "git://example.invalid/{i}"}}}}"#
                ),
                path,
                from_host: String::new(),
                from_path: String::new(),
                interval: 86_400,
                lorry_timeout: 3_600,
            })?;
        }
        Ok(())
    })
    .expect("seed");
}

/// The downstream repositories of the first `count` lorries handed out.
fn precreate_repositories(downstream: &Path, n: usize, count: usize) {
    let mut paths: Vec<String> = (0..n).map(path_of).collect();
    paths.sort();
    for chunk in paths[..count.min(n)].chunks(200) {
        let mut script = String::from("set -e\n");
        for path in chunk {
            let repo = downstream.join(format!("{path}.git"));
            script.push_str(&format!("git init --bare --quiet '{}'\n", repo.display()));
        }
        let status = Command::new("sh")
            .args(["-c", &script])
            .status()
            .expect("git init");
        assert!(status.success());
    }
}

/// A minion's work for one job: give-me-job, then the final job-update
/// (exit 0, a line of output), on the connection's keep-alive client.
#[derive(Clone)]
struct Pairs;

impl common::Scenario for Pairs {
    async fn send(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        _: usize,
    ) -> (&'static str, bool) {
        let pid = std::process::id().to_string();
        let job: Option<serde_json::Value> = match client
            .post(format!("{base}/1.0/give-me-job"))
            .form(&[("host", "bench"), ("pid", pid.as_str())])
            .send()
            .await
        {
            Ok(answer) if answer.status().is_success() => answer.json().await.ok(),
            _ => None,
        };
        let Some(id) = job.and_then(|job| job["job_id"].as_i64()) else {
            return ("pair", false);
        };
        let id = id.to_string();
        match client
            .post(format!("{base}/1.0/job-update"))
            .form(&[("job_id", id.as_str()), ("exit", "0"), ("stdout", "done\n")])
            .send()
            .await
        {
            Ok(answer) => {
                let ok = answer.status().is_success();
                ("pair", ok & answer.bytes().await.is_ok())
            }
            Err(_) => ("pair", false),
        }
    }
}

/// Nanoseconds on a CPU of all threads of process `pid` so far (the first
/// field of each `/proc/PID/task/TID/schedstat`). A thread that ends is no
/// longer counted: the webapp's threads (tokio's workers, its blocking
/// pool, kept 10 s idle, the checkpointer) outlive a run.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Bytes process `pid` has passed to write calls so far (`wchar` of
/// `/proc/PID/io`): mostly the WAL's frames (4 KiB and a 24-byte header
/// per page a transaction changed), and the HTTP answers.
fn written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("wchar:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What one run measured.
struct Measured {
    /// Each pair's microseconds.
    samples: Vec<u64>,
    /// From the first client's start to the last one's end.
    wall: Duration,
    /// The webapp's CPU time meanwhile.
    cpu: Duration,
    /// The bytes it wrote meanwhile.
    written: u64,
}

/// One run: the clients against a webapp on a fresh copy of STATEDB.
fn run(
    template: &Path,
    downstream: &Path,
    events: bool,
    processes: usize,
    pairs: usize,
) -> Measured {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(template, dir.path().join("state.db")).expect("copy STATEDB");
    // Every run hands out repositories made once, beforehand.
    std::os::unix::fs::symlink(downstream, dir.path().join("downstream")).expect("symlink");
    let mut extra = vec![
        // The housekeeping task's first pass runs at start; none during a run.
        "--housekeeping-interval=86400".to_owned(),
    ];
    if !events {
        extra.push("--debug-bench-without-events".to_owned());
    }
    let (webapp, port) = common::start_webapp(dir.path(), &extra);
    // The housekeeping task's first pass ends before the clock starts.
    std::thread::sleep(Duration::from_secs(1));
    let pid = webapp.0.id();
    let cpu_before = cpu_ns(pid);
    let written_before = written(pid);
    let (samples, wall) = common::run_client_rounds(
        port,
        processes as u64,
        1,
        pairs as u64,
        dir.path(),
        "pairs",
        "pairs",
    );
    let cpu = Duration::from_nanos(cpu_ns(pid).saturating_sub(cpu_before));
    let written = written(pid).saturating_sub(written_before);
    let (samples, errors) = samples.get("pair").cloned().unwrap_or_default();
    assert_eq!(
        errors, 0,
        "pairs failed (is the disk low? the webapp's log says)"
    );
    assert_eq!(samples.len(), processes * pairs);
    // Events as the mode says: two a pair, or none.
    let page: serde_json::Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/1.0/events?last=1"))
            .and_then(|r| r.json())
            .expect("GET /1.0/events");
    let newest = page["events"][0]["id"].as_i64().unwrap_or(0) as usize;
    if events {
        assert!(newest >= 2 * processes * pairs, "too few events: {page}");
    } else {
        assert_eq!(newest, 0, "events recorded with events off: {page}");
    }
    Measured {
        samples,
        wall,
        cpu,
        written,
    }
}

struct Figures {
    pairs: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    mean: f64,
    per_second: f64,
    /// The webapp's CPU time per pair, in microseconds.
    cpu: f64,
    /// The bytes it wrote per pair, in KiB.
    written: f64,
}

fn figures(m: Measured) -> Figures {
    let Measured {
        mut samples,
        wall,
        cpu,
        written,
    } = m;
    samples.sort_unstable();
    let at = |p: f64| {
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[index] as f64 / 1000.0
    };
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
    Figures {
        pairs: samples.len(),
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        mean,
        per_second: samples.len() as f64 / wall.as_secs_f64(),
        cpu: cpu.as_secs_f64() * 1e6 / samples.len() as f64,
        written: written as f64 / 1024.0 / samples.len() as f64,
    }
}

/// The median of some ratios.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn main() {
    if common::client_scenario().is_some() {
        common::client_process(Pairs);
        return;
    }
    let lorries = env_or("LC_BENCH_LORRIES", 100_000);
    let processes = env_or("LC_BENCH_PROCESSES", 4).max(1);
    let pairs = env_or("LC_BENCH_PAIRS", 400).max(1);
    let runs = env_or("LC_BENCH_RUNS", 8).max(1);
    assert!(processes * pairs <= lorries, "more pairs than lorries");

    let work = tempfile::tempdir().expect("tempdir");
    let template = work.path().join("template.db");
    let t = Instant::now();
    seed(&template, lorries);
    let downstream = work.path().join("downstream");
    precreate_repositories(&downstream, lorries, processes * pairs);
    println!(
        "event cost: give-me-job + job-update pairs, {lorries} lorries, {processes} client processes x {pairs} pairs, {runs} runs per mode (set-up {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    let pooled = || Measured {
        samples: Vec::new(),
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
        written: 0,
    };
    let (mut on, mut off) = (pooled(), pooled());
    // Per run: the on/off ratios of p50, mean and CPU per pair.
    let mut ratios: Vec<[f64; 3]> = Vec::new();
    for r in 0..runs {
        let order = if r % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut this_run = [None, None];
        for events in order {
            let m = run(&template, &downstream, events, processes, pairs);
            let into = if events { &mut on } else { &mut off };
            into.samples.extend_from_slice(&m.samples);
            into.wall += m.wall;
            into.cpu += m.cpu;
            into.written += m.written;
            let f = figures(m);
            println!(
                "  run {} events {:<3}: p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms, {:.0} pairs/s, webapp CPU {:.0} us/pair, {:.1} KiB written/pair (load {})",
                r + 1,
                if events { "on" } else { "off" },
                f.p50,
                f.p99,
                f.mean,
                f.per_second,
                f.cpu,
                f.written,
                load_average()
            );
            this_run[usize::from(events)] = Some(f);
        }
        if let [Some(off), Some(on)] = this_run {
            ratios.push([on.p50 / off.p50, on.mean / off.mean, on.cpu / off.cpu]);
        }
    }
    let on = figures(on);
    let off = figures(off);
    println!();
    println!(
        "{:<10} | {:>6} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} | {:>11} | {:>9}",
        "events",
        "pairs",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "mean ms",
        "pairs/s",
        "CPU us/pair",
        "KiB/pair"
    );
    for (name, f) in [("off", &off), ("on", &on)] {
        println!(
            "{name:<10} | {:>6} | {:>9.3} | {:>9.3} | {:>9.3} | {:>9.3} | {:>8.0} | {:>11.1} | {:>9.1}",
            f.pairs, f.p50, f.p90, f.p99, f.mean, f.per_second, f.cpu, f.written
        );
    }
    println!(
        "{:<10} | {:>6} | {:>9.3} | {:>9.3} | {:>9.3} | {:>9.3} | {:>8.3} | {:>11.3} | {:>9.3}",
        "on / off",
        "pooled",
        on.p50 / off.p50,
        on.p90 / off.p90,
        on.p99 / off.p99,
        on.mean / off.mean,
        off.per_second / on.per_second,
        on.cpu / off.cpu,
        on.written / off.written
    );
    let column = |i: usize| median(ratios.iter().map(|r| r[i]).collect());
    let (p50, mean, cpu) = (column(0), column(1), column(2));
    println!(
        "{:<10} | {:>6} | {:>9.3} | {:>9} | {:>9} | {:>9.3} | {:>8} | {:>11.3} |",
        "on / off", "median", p50, "", "", mean, "", cpu
    );
    println!();
    println!(
        "target: events add < 10% to a pair (median run's ratios: p50 {p50:.3}, mean {mean:.3}, webapp CPU {cpu:.3}): {}",
        if p50 < 1.10 && mean < 1.10 && cpu < 1.10 {
            "met"
        } else {
            "MISSED"
        }
    );
}

/// The 1-minute load average, as `/proc/loadavg` says.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}
