//! Benchmark: provenance in STATEDB, in-process on a real SQLite file (the
//! same `StateDb` the webapp runs; HTTP adds the same per-request cost as
//! any other route, measured by the give_me_job bench).
//!
//! * ingest: each lorry's first whole report (`held`, 10 refs) through
//!   give-me-job and job-update, 1,000 jobs per transaction (baseline: the
//!   same jobs with a result that moves nothing).
//! * snapshot of N lorries (target ≤ 2 s at 100,000);
//! * manifest of two N-lorry snapshots and their diff (target ≤ 2 s);
//! * `refs?at=` on a lorry with 10,000 ledger rows (target ≤ 5 ms);
//! * ledger growth: 1,000 lorries of 10 refs, hourly runs with 1% of the
//!   refs moving per run, for `LC_BENCH_RUNS` runs (default 500),
//!   extrapolated to a year (8,760 runs; growth is linear: one row per move).
//!
//! `cargo bench --bench provenance`; `LC_BENCH_LORRIES` (default 100000).

use std::time::Instant;

use lc_core::db::{JobUpdate, NewLorry, StateDb};

const REFS: usize = 10;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn lorry(path: &str) -> NewLorry {
    NewLorry {
        path: path.to_owned(),
        text: format!(
            "{{\"{path}\": {{\"type\": \"git\", \"url\": \"https://h.example/{path}\"}}}}"
        ),
        from_host: String::new(),
        from_path: String::new(),
        interval: 3600,
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
    let n = env("LC_BENCH_LORRIES", 100_000);
    let runs = env("LC_BENCH_RUNS", 500);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = StateDb::open(&dir.path().join("state.db")).expect("open");
    let mut now = 1_800_000_000;
    db.set_pretend_time(now);
    let paths: Vec<String> = (0..n).map(|i| format!("g{}/p{i}", i % 100)).collect();
    seed(&db, &paths);

    // Ingest: baseline (nothing moves), then the first whole reports.
    let base = 10_000.min(n);
    let idle: Vec<(String, String)> = paths[..base]
        .iter()
        .map(|p| (p.clone(), result(p, None, &[])))
        .collect();
    let t = Instant::now();
    run_jobs(&db, &idle);
    let idle_per_job = t.elapsed().as_secs_f64() / base as f64;
    now += 60;
    db.set_pretend_time(now);
    let first: Vec<(String, String)> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), result(p, Some(&held(i, &[0; REFS])), &[])))
        .collect();
    let t = Instant::now();
    run_jobs(&db, &first);
    let first_per_job = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "ingest: first whole report (10 refs) {:.3} ms/job; baseline, a job whose result moves nothing, {:.3} ms/job",
        first_per_job * 1e3,
        idle_per_job * 1e3
    );

    now += 60;
    db.set_pretend_time(now);
    let t = Instant::now();
    let a = db
        .write(|tx| tx.take_snapshot("a", ""))
        .expect("snapshot a");
    println!(
        "snapshot of {} lorries: {:.1} ms (target ≤ 2 s)",
        a.lorries,
        t.elapsed().as_secs_f64() * 1e3
    );

    // 1% of the refs move, then snapshot b.
    now += 3600;
    db.set_pretend_time(now);
    let moves: Vec<(String, String)> = (0..n)
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
    run_jobs(&db, &moves);
    now += 60;
    db.set_pretend_time(now);
    db.write(|tx| tx.take_snapshot("b", ""))
        .expect("snapshot b");
    let t = Instant::now();
    let diff = db.read(|tx| tx.snapshot_diff("a", "b")).expect("diff");
    println!(
        "diff of two {n}-lorry snapshots (both manifests read from the ledger): {:.1} ms, {} lorries changed (target ≤ 2 s)",
        t.elapsed().as_secs_f64() * 1e3,
        diff.changed.len()
    );

    // A lorry with 10,000 ledger rows.
    seed(&db, &["deep/one".to_owned()]);
    let mut version = [0; REFS];
    let mut deep = Vec::new();
    let mut times = Vec::new();
    for k in 0..10_000 {
        let r = k % REFS;
        let old = held(7, &version)[r].1.clone();
        version[r] += 1;
        let new = held(7, &version)[r].1.clone();
        deep.push((
            "deep/one".to_owned(),
            result(
                "deep/one",
                (k == 0).then(|| held(7, &version)).as_deref(),
                &[(format!("refs/heads/b{r}"), old, new)],
            ),
        ));
    }
    for chunk in deep.chunks(100) {
        now += 3600;
        times.push(now);
        db.set_pretend_time(now);
        run_jobs(&db, chunk);
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
    println!(
        "refs?at= on a lorry with {rows} ledger rows: p50 {:.3} ms, p99 {:.3} ms (target ≤ 5 ms)",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );

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
    println!(
        "ledger growth, 1,000 lorries × 10 refs, 1% of refs moving per hourly run: {} rows and {} bytes over {runs} runs ({:.1} s); \
         {:.0} bytes and {:.1} rows per lorry per year (8,760 runs)",
        rows1 - rows0,
        bytes1 - bytes0,
        t.elapsed().as_secs_f64(),
        per_run * 8760.0,
        (rows1 - rows0) as f64 / runs as f64 / lorries as f64 * 8760.0
    );
}
