//! Benchmark: provenance in STATEDB, in-process on a real SQLite file (the
//! same `StateDb` the webapp runs; HTTP adds the same per-request cost as
//! any other route, measured by the give_me_job bench).
//!
//! * ingest: each lorry's first whole report (`held`, 10 refs) through
//!   give-me-job and job-update (`start_next_job`, `update_job`), 1,000 jobs
//!   per transaction (baseline: 10% of the lorries' next jobs, with a result
//!   that moves nothing). Which lorries are due is set by their intervals,
//!   not by `move_to_top` (whose `MAX(move_seq)` reads every lorry: 100,000
//!   of them made the set-up quadratic);
//! * snapshot of N lorries (target ≤ 2 s at 100,000);
//! * manifest of two N-lorry snapshots and their diff (target ≤ 2 s);
//! * `refs?at=` on a lorry with 10,000 ledger rows (target ≤ 5 ms);
//! * ledger growth: 1,000 lorries of 10 refs, hourly runs with 1% of the
//!   refs moving per run, for `LC_BENCH_RUNS` runs (default 500),
//!   extrapolated to a year (8,760 runs; growth is linear: one row per move).
//!
//! `refs?at=` and the diff are also measured from outside, as a user sees
//! them: the real webapp binary started on the same STATEDB, `refs?at=`
//! asked by `LC_BENCH_PROCESSES` client processes (default 4) of 2
//! keep-alive connections each for `LC_BENCH_SECONDS` (default 10), and
//! `GET /1.0/snapshots/a/diff/b` five times in a row (the whole JSON body
//! read); the in-process figures are the diagnosis beside them.
//!
//! `cargo bench --bench provenance`; `LC_BENCH_LORRIES` (default 100000).

#![expect(
    clippy::disallowed_methods,
    reason = "the bench starts the real webapp and its own client processes"
)]

use std::collections::HashMap;
use std::time::Instant;

use lc_core::db::{JobUpdate, NewLorry, StateDb};

mod common;

/// A client connection asking `refs?at=` of the deep lorry, at the middle
/// of one of its 100 hours of history after another.
#[derive(Clone)]
struct RefsAt {
    first_hour: i64,
}

impl common::Scenario for RefsAt {
    async fn send(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        n: usize,
    ) -> (&'static str, bool) {
        let at = self.first_hour + (n % 100) as i64 * 3600 - 1800;
        let url = format!("{base}/1.0/lorry-refs/deep/one?at={at}");
        match client.get(url).send().await {
            Ok(answer) => {
                let ok = answer.status().is_success();
                ("refs-at", ok & answer.bytes().await.is_ok())
            }
            Err(_) => ("refs-at", false),
        }
    }
}

const REFS: usize = 10;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bench's first moment (pretend time).
const START: i64 = 1_800_000_000;

/// The seeded lorries' interval: due at once (never run: `last_run` 0),
/// then not again within the bench.
const NEVER: i64 = START;

fn lorry(path: &str) -> NewLorry {
    lorry_every(path, 3600)
}

fn lorry_every(path: &str, interval: i64) -> NewLorry {
    NewLorry {
        path: path.to_owned(),
        text: format!(
            "{{\"{path}\": {{\"type\": \"git\", \"url\": \"https://h.example/{path}\"}}}}"
        ),
        from_host: String::new(),
        from_path: String::new(),
        interval,
        lorry_timeout: 600,
    }
}

fn oid(n: usize) -> String {
    format!("{n:040x}")
}

/// A job result for `path`: `held` (every ref) and the changes.
fn result(
    path: &str,
    held: Option<&[(String, String)]>,
    moved: &[(String, String, String)],
) -> String {
    let refs: Vec<serde_json::Value> = moved
        .iter()
        .map(|(name, old, new)| serde_json::json!({"name": name, "old": old, "new": new}))
        .collect();
    let mut spec = serde_json::json!({
        "name": path, "importer": "git", "ok": true, "refs": refs, "preserved": [],
        "bytes_received": 0, "pushed": "yes"
    });
    if let (Some(held), Some(map)) = (held, spec.as_object_mut()) {
        let held: serde_json::Map<String, serde_json::Value> = held
            .iter()
            .map(|(n, o)| (n.clone(), serde_json::Value::from(o.clone())))
            .collect();
        map.insert("held".into(), serde_json::Value::Object(held));
    }
    serde_json::json!({"version": 1, "specs": [spec]}).to_string()
}

/// Runs one job per (path, result) pair, 1,000 per transaction.
fn run_jobs(db: &StateDb, jobs: &[(String, String)]) {
    for chunk in jobs.chunks(1000) {
        db.write(|tx| {
            for (path, result) in chunk {
                tx.move_to_top(path)?;
                let Some((job_id, _)) = tx.start_next_job("bench", 1)? else {
                    continue;
                };
                let update = JobUpdate {
                    exit: Some(0),
                    result: Some(result.clone()),
                    ..JobUpdate::default()
                };
                tx.update_job(job_id, &update)?;
            }
            Ok(())
        })
        .expect("jobs");
    }
}

/// Runs every due lorry's job, 1,000 per transaction, each with its result
/// in `results` (a due lorry without one is a bug of this bench). Answers
/// how many ran.
fn run_due(db: &StateDb, results: &HashMap<String, String>) -> usize {
    let mut ran = 0;
    loop {
        let n = db
            .write(|tx| {
                let mut n = 0;
                while n < 1000 {
                    let Some((job_id, lorry)) = tx.start_next_job("bench", 1)? else {
                        break;
                    };
                    let result = results
                        .get(&lorry.path)
                        .unwrap_or_else(|| panic!("{} is due but has no result", lorry.path));
                    let update = JobUpdate {
                        exit: Some(0),
                        result: Some(result.clone()),
                        ..JobUpdate::default()
                    };
                    tx.update_job(job_id, &update)?;
                    n += 1;
                }
                Ok(n)
            })
            .expect("jobs");
        ran += n;
        if n < 1000 {
            return ran;
        }
    }
}

/// Sets the interval of each of `paths`.
fn set_interval(db: &StateDb, paths: &[&String], interval: i64) {
    for chunk in paths.chunks(10_000) {
        db.write(|tx| {
            for path in chunk {
                tx.upsert_lorry(&lorry_every(path, interval))?;
            }
            Ok(())
        })
        .expect("interval");
    }
}

fn seed(db: &StateDb, paths: &[String]) {
    for chunk in paths.chunks(10_000) {
        db.write(|tx| {
            for path in chunk {
                tx.upsert_lorry(&lorry(path))?;
            }
            Ok(())
        })
        .expect("seed");
    }
}

fn held(i: usize, version: &[usize]) -> Vec<(String, String)> {
    (0..REFS)
        .map(|r| {
            (
                format!("refs/heads/b{r}"),
                oid(i * 1_000_000 + r * 10_000 + version[r]),
            )
        })
        .collect()
}

fn main() {
    if let Some(scenario) = common::client_scenario() {
        // `refs-at:<first hour>`
        let first_hour = scenario
            .strip_prefix("refs-at:")
            .and_then(|v| v.parse().ok())
            .expect("a refs-at scenario");
        common::client_process(RefsAt { first_hour });
        return;
    }
    let n = env("LC_BENCH_LORRIES", 100_000);
    let runs = env("LC_BENCH_RUNS", 500);
    let dir = tempfile::tempdir().expect("tempdir");
    let statedb = dir.path().join("state.db");
    let db = StateDb::open(&statedb).expect("open");
    let mut now = START;
    db.set_pretend_time(now);
    let paths: Vec<String> = (0..n).map(|i| format!("g{}/p{i}", i % 100)).collect();
    let t = Instant::now();
    for chunk in paths.chunks(10_000) {
        db.write(|tx| {
            for path in chunk {
                tx.upsert_lorry(&lorry_every(path, NEVER))?;
            }
            Ok(())
        })
        .expect("seed");
    }
    let seed_s = t.elapsed().as_secs_f64();

    // Ingest: the first whole reports.
    let first: HashMap<String, String> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), result(p, Some(&held(i, &[0; REFS])), &[])))
        .collect();
    let t = Instant::now();
    let ran = run_due(&db, &first);
    assert_eq!(ran, n, "every lorry ran its first job");
    let first_s = t.elapsed().as_secs_f64();
    let first_per_job = first_s / n as f64;
    drop(first);
    // Lorry i % 10 == 0 runs again after 1,800 s (1% of all refs move),
    // i % 10 == 1 after 900 s (the baseline); the others never.
    let movers: Vec<&String> = paths.iter().step_by(10).collect();
    let idle_paths: Vec<&String> = paths.iter().skip(1).step_by(10).collect();
    set_interval(&db, &movers, 1800);
    set_interval(&db, &idle_paths, 900);

    // Baseline: the i % 10 == 1 lorries' next jobs, moving nothing.
    now += 900;
    db.set_pretend_time(now);
    let idle: HashMap<String, String> = idle_paths
        .iter()
        .map(|p| ((*p).clone(), result(p, None, &[])))
        .collect();
    let t = Instant::now();
    let base = run_due(&db, &idle);
    assert_eq!(base, idle_paths.len(), "the baseline lorries ran");
    let idle_per_job = t.elapsed().as_secs_f64() / base.max(1) as f64;
    set_interval(&db, &idle_paths, NEVER);

    now += 60;
    db.set_pretend_time(now);
    let t = Instant::now();
    let a = db
        .write(|tx| tx.take_snapshot("a", ""))
        .expect("snapshot a");
    let snapshot_s = t.elapsed().as_secs_f64();
    assert_eq!(a.lorries as usize, n, "the snapshot has every lorry");

    // 1% of the refs move (one of ten refs of every tenth lorry), then
    // snapshot b.
    now += 900;
    db.set_pretend_time(now);
    let moves: HashMap<String, String> = (0..n)
        .step_by(10)
        .map(|i| {
            let mut version = [0; REFS];
            version[i % REFS] = 1;
            let name = format!("refs/heads/b{}", i % REFS);
            let old = held(i, &[0; REFS])[i % REFS].1.clone();
            let new = held(i, &version)[i % REFS].1.clone();
            (
                paths[i].clone(),
                result(&paths[i], Some(&held(i, &version)), &[(name, old, new)]),
            )
        })
        .collect();
    let moved = run_due(&db, &moves);
    assert_eq!(moved, moves.len(), "every moving lorry ran");
    set_interval(&db, &movers, NEVER);
    now += 60;
    db.set_pretend_time(now);
    db.write(|tx| tx.take_snapshot("b", ""))
        .expect("snapshot b");
    let t = Instant::now();
    let diff = db.read(|tx| tx.snapshot_diff("a", "b")).expect("diff");
    let diff_s = t.elapsed().as_secs_f64();
    assert_eq!(
        diff.changed.len(),
        moved,
        "the diff names every moved lorry"
    );

    // A lorry with 10,000 ledger rows: due again at once (interval 0),
    // 100 jobs an hour, each moving one ref.
    db.write(|tx| tx.upsert_lorry(&lorry_every("deep/one", 0)))
        .expect("deep lorry");
    let mut version = [0; REFS];
    let mut times = Vec::new();
    for chunk in 0..100 {
        now += 3600;
        times.push(now);
        db.set_pretend_time(now);
        db.write(|tx| {
            for j in 0..100 {
                let k = chunk * 100 + j;
                let r = k % REFS;
                let old = held(7, &version)[r].1.clone();
                version[r] += 1;
                let new = held(7, &version)[r].1.clone();
                let text = result(
                    "deep/one",
                    (k == 0).then(|| held(7, &version)).as_deref(),
                    &[(format!("refs/heads/b{r}"), old, new)],
                );
                let Some((job_id, lorry)) = tx.start_next_job("bench", 1)? else {
                    panic!("deep/one is not due");
                };
                assert_eq!(lorry.path, "deep/one");
                let update = JobUpdate {
                    exit: Some(0),
                    result: Some(text),
                    ..JobUpdate::default()
                };
                tx.update_job(job_id, &update)?;
            }
            Ok(())
        })
        .expect("deep jobs");
    }
    let mut lat: Vec<f64> = Vec::new();
    for k in 0..1000 {
        let at = times[k % times.len()] - 1800;
        let t = Instant::now();
        let refs = db.read(|tx| tx.ledger_refs("deep/one", at)).expect("refs");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(refs.len() <= REFS);
    }
    lat.sort_by(f64::total_cmp);
    let rows = db
        .read(|tx| tx.ledger_stats(Some("deep/one")))
        .expect("stats")
        .0;
    let (all_rows, _) = db.read(|tx| tx.ledger_stats(None)).expect("stats");
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let db_bytes = size(&statedb) + size(&dir.path().join("state.db-wal"));
    let (p50, p99) = (lat[lat.len() / 2], lat[lat.len() * 99 / 100]);

    // From outside: the real webapp on this STATEDB.
    drop(db);
    let (webapp, port) = common::start_webapp(dir.path(), &[]);
    let processes = env("LC_BENCH_PROCESSES", 4) as u64;
    let seconds = env("LC_BENCH_SECONDS", 10) as u64;
    // The client processes learn the first hour of the deep history from
    // the scenario's name.
    let outside = common::run_clients(
        port,
        processes,
        2,
        seconds,
        dir.path(),
        "refs-at",
        &format!("refs-at:{}", times[0]),
    );
    let (refs_times, refs_errors) = outside.get("refs-at").cloned().unwrap_or_default();
    assert_eq!(refs_errors, 0, "refs?at= answered with errors");
    let http = reqwest::blocking::Client::new();
    let mut diff_http: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let answer = http
                .get(format!("http://127.0.0.1:{port}/1.0/snapshots/a/diff/b"))
                .send()
                .expect("diff");
            assert!(answer.status().is_success(), "diff over HTTP");
            let body: serde_json::Value = answer.json().expect("diff JSON");
            assert_eq!(body["changed"].as_object().map(|m| m.len()), Some(moved));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    diff_http.sort_by(f64::total_cmp);
    let (rss_kib, hwm_kib) = common::memory(webapp.0.id());
    drop(webapp);

    // Ledger growth: 1,000 lorries, `runs` hourly runs, 1% of refs moving.
    let gdir = tempfile::tempdir().expect("tempdir");
    let g = StateDb::open(&gdir.path().join("state.db")).expect("open");
    let mut now = 1_800_000_000;
    g.set_pretend_time(now);
    let lorries = 1000;
    let gpaths: Vec<String> = (0..lorries).map(|i| format!("grow/p{i}")).collect();
    seed(&g, &gpaths);
    let mut versions = vec![[0usize; REFS]; lorries];
    let firsts: Vec<(String, String)> = gpaths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), result(p, Some(&held(i, &versions[i])), &[])))
        .collect();
    run_jobs(&g, &firsts);
    let (rows0, bytes0) = g.read(|tx| tx.ledger_stats(None)).expect("stats");
    // 1% of 10,000 refs = 100 moves per run, spread over the lorries.
    let mut next = 0usize;
    let t = Instant::now();
    for _ in 0..runs {
        now += 3600;
        g.set_pretend_time(now);
        let mut jobs = Vec::new();
        for _ in 0..(lorries * REFS / 100) {
            let i = (next * 7919) % lorries;
            let r = (next / lorries) % REFS;
            next += 1;
            let old = held(i, &versions[i])[r].1.clone();
            versions[i][r] += 1;
            let new = held(i, &versions[i])[r].1.clone();
            jobs.push((
                gpaths[i].clone(),
                result(
                    &gpaths[i],
                    Some(&held(i, &versions[i])),
                    &[(format!("refs/heads/b{r}"), old, new)],
                ),
            ));
        }
        run_jobs(&g, &jobs);
    }
    let (rows1, bytes1) = g.read(|tx| tx.ledger_stats(None)).expect("stats");
    let per_run = (bytes1 - bytes0) as f64 / runs as f64 / lorries as f64;
    let growth_s = t.elapsed().as_secs_f64();
    let year_bytes = per_run * 8760.0;
    let year_rows = (rows1 - rows0) as f64 / runs as f64 / lorries as f64 * 8760.0;

    println!(
        "set-up: {n} lorries seeded in {seed_s:.1} s; first whole reports (10 refs each) in {first_s:.1} s; \
         STATEDB {:.0} MB, {all_rows} ledger rows",
        db_bytes as f64 / 1e6
    );
    println!();
    println!("| figure | measured | target | ratio (measured / target) |");
    println!("|---|---|---|---|");
    println!(
        "| snapshot of {n} lorries (`take_snapshot`) | {:.0} ms | ≤ 2,000 ms | {:.2} |",
        snapshot_s * 1e3,
        snapshot_s / 2.0
    );
    println!(
        "| diff of two {n}-lorry snapshots ({} lorries changed; both manifests read from the ledger) | {:.0} ms | ≤ 2,000 ms | {:.2} |",
        diff.changed.len(),
        diff_s * 1e3,
        diff_s / 2.0
    );
    println!(
        "| diff of the same two snapshots over HTTP (`GET /1.0/snapshots/a/diff/b`, whole body, 5 in a row) | median {:.0} ms, worst {:.0} ms | ≤ 2,000 ms | {:.2} (worst) |",
        diff_http[diff_http.len() / 2],
        diff_http[diff_http.len() - 1],
        diff_http[diff_http.len() - 1] / 2000.0
    );
    let (rp50, rp99) = (
        common::percentile(&refs_times, 0.5),
        common::percentile(&refs_times, 0.99),
    );
    println!(
        "| `refs?at=` on a lorry with {rows} ledger rows over HTTP: {processes} client processes × 2 keep-alive connections, {seconds} s ({} requests) | p50 {rp50:.3} ms, p99 {rp99:.3} ms | ≤ 5 ms | {:.3} (p99) |",
        refs_times.len(),
        rp99 / 5.0
    );
    println!(
        "| the same in-process (`ledger_refs`, no HTTP: the diagnosis), 1,000 reads | p50 {p50:.3} ms, p99 {p99:.3} ms | – | – |"
    );
    println!(
        "| webapp resident memory after the HTTP phases (`VmRSS` / `VmHWM`) | {:.0} / {:.0} MiB | – | – |",
        rss_kib as f64 / 1024.0,
        hwm_kib as f64 / 1024.0
    );
    println!(
        "| ledger growth, 1,000 lorries × 10 refs, hourly runs, 1% of refs moving per run ({runs} runs in {growth_s:.1} s, × 8,760 / {runs}) | {year_bytes:.0} bytes ({year_rows:.1} rows) per lorry per year | printed (no target) | – |"
    );
    println!(
        "| ingest: a job with a lorry's first whole report (10 refs), give-me-job + job-update | {:.3} ms/job | (baseline) | {:.2} × baseline |",
        first_per_job * 1e3,
        first_per_job / idle_per_job
    );
    println!(
        "| baseline, same run: a job whose result moves nothing | {:.3} ms/job | – | 1.00 |",
        idle_per_job * 1e3
    );
}
