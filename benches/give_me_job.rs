//! Benchmark: give-me-job + job-update pairs against the real webapp
//! binary, measured from outside over loopback by client processes (this
//! bench run again, see `common`), each holding keep-alive connections
//! that ask for a job and end it, in closed loops; with 1,000, 10,000 and
//! 100,000 lorries in STATEDB.
//!
//! Per size and webapp: the pairs' p50 and p99 latency and their
//! throughput (pairs over the span from the first client's start to the
//! last one's end); and the floor, measured the same way against the same
//! webapp: `GET /1.0/get-max-jobs` (HTTP plus one trivial read
//! transaction). Targets (issue 14 item 7, 8 keep-alive clients): p99 ≤
//! 10 ms and ≥ 2,000 pairs/s at 100,000 lorries.
//!
//! STATEDB is filled by the webapp itself from a CONFGIT directory (so a
//! baseline of an older schema works). Steady state: the downstream repositories exist (a lorry's first job
//! creates its repository; `LC_BENCH_NEW_REPOS=1` measures that instead).
//! Every pair runs a different lorry: none is due again for a day.
//!
//! `LC_BENCH_BASELINE_WEBAPP=/path/to/lorry-controller-webapp` (a build of
//! an older commit) runs every size against it too, in the same run, and
//! prints the ratios.
//!
//! `cargo bench --bench give_me_job`; `LC_BENCH_SIZES=1000,10000`,
//! `LC_BENCH_PROCESSES` (4) × `LC_BENCH_CONNECTIONS` (2) clients,
//! `LC_BENCH_ROUNDS` pairs per connection (500).

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp binary from client processes"
)]

mod common;

use std::path::{Path, PathBuf};

use common::{Scenario, env_or, percentile};

/// A CONFGIT directory of `n` lorries, 1,000 per `.lorry` file, each due
/// at once and then not for an hour. Read by the webapp itself (`POST
/// /1.0/read-configuration`), so that a baseline binary of an older
/// schema gets a STATEDB of its own making.
fn write_confgit(dir: &Path, n: usize) {
    let confgit = dir.join("confgit");
    std::fs::create_dir_all(&confgit).expect("mkdir");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "bench", "interval": "1h", "globs": ["*.lorry"]}]"#,
    )
    .expect("conf");
    for (file, chunk) in (0..n).collect::<Vec<_>>().chunks(1000).enumerate() {
        let specs: serde_json::Map<String, serde_json::Value> = chunk
            .iter()
            .map(|i| {
                (
                    name_of(*i),
                    serde_json::json!({"type": "git", "url": format!("git://example.invalid/{i}")}),
                )
            })
            .collect();
        std::fs::write(
            confgit.join(format!("f{file:04}.lorry")),
            serde_json::Value::Object(specs).to_string(),
        )
        .expect("lorry file");
    }
}

fn name_of(i: usize) -> String {
    format!("group{:03}/repo{i:06}", i % 1000)
}

fn path_of(i: usize) -> String {
    format!("bench/{}", name_of(i))
}

/// Makes the downstream repositories of the lorries a run hands out (all
/// are due alike, so they go in path order) as the local Downstream Host
/// recognises them: a `HEAD` file.
fn precreate_repositories(dir: &Path, n: usize, count: usize) {
    let mut paths: Vec<String> = (0..n).map(path_of).collect();
    paths.sort();
    for path in paths.iter().take(count) {
        let repo = dir.join("downstream").join(format!("{path}.git"));
        std::fs::create_dir_all(&repo).expect("mkdir");
        std::fs::write(repo.join("HEAD"), "ref: refs/heads/master\n").expect("HEAD");
    }
}

/// What a client connection does, request after request: a pair
/// (`pairs`) or the floor. Each connection is opened and warm before the
/// clock starts.
#[derive(Clone, Copy)]
struct Queue {
    pairs: bool,
}

impl Scenario for Queue {
    async fn warm_up(&mut self, client: &reqwest::Client, base: &str) {
        let r = client
            .get(format!("{base}/1.0/get-max-jobs"))
            .send()
            .await
            .expect("warm-up");
        assert!(r.status().is_success());
    }

    async fn send(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        _n: usize,
    ) -> (&'static str, bool) {
        if self.pairs {
            ("pair", pair(client, base).await)
        } else {
            ("floor", floor(client, base).await)
        }
    }
}

async fn floor(client: &reqwest::Client, base: &str) -> bool {
    match client.get(format!("{base}/1.0/get-max-jobs")).send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn pair(client: &reqwest::Client, base: &str) -> bool {
    let Ok(answer) = client
        .post(format!("{base}/1.0/give-me-job"))
        .form(&[("host", "bench"), ("pid", "1")])
        .send()
        .await
    else {
        return false;
    };
    let Ok(job) = answer.json::<serde_json::Value>().await else {
        return false;
    };
    let Some(id) = job["job_id"].as_i64() else {
        return false;
    };
    let id = id.to_string();
    match client
        .post(format!("{base}/1.0/job-update"))
        .form(&[("job_id", id.as_str()), ("exit", "0"), ("stdout", "done\n")])
        .send()
        .await
    {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// One size against one webapp binary.
struct Row {
    floor50: f64,
    floor99: f64,
    p50: f64,
    p99: f64,
    per_second: f64,
    errors: usize,
}

fn measure(binary: &Path, n: usize, processes: u64, connections: u64, rounds: u64) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    write_confgit(dir.path(), n);
    let pairs_total = (processes * connections * rounds) as usize;
    if std::env::var_os("LC_BENCH_NEW_REPOS").is_none() {
        precreate_repositories(dir.path(), n, pairs_total);
    }
    let (_webapp, port) =
        common::start_webapp_binary(binary, dir.path(), &["--no-debug-real-confgit".to_owned()]);
    let read: serde_json::Value = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .expect("client")
        .post(format!("http://127.0.0.1:{port}/1.0/read-configuration"))
        .send()
        .and_then(reqwest::blocking::Response::json)
        .expect("read-configuration");
    assert_eq!(
        read["lorries_added"].as_array().map(Vec::len),
        Some(n),
        "every lorry added"
    );
    let run = |mode: &str| {
        common::run_client_rounds(port, processes, connections, rounds, dir.path(), mode, mode)
    };
    let (floor, _) = run("floor");
    let (pairs, span) = run("pairs");
    let (floor, _) = &floor["floor"];
    let (pairs, errors) = &pairs["pair"];
    Row {
        floor50: percentile(floor, 0.5),
        floor99: percentile(floor, 0.99),
        p50: percentile(pairs, 0.5),
        p99: percentile(pairs, 0.99),
        per_second: pairs.len() as f64 / span.as_secs_f64().max(1e-9),
        errors: *errors,
    }
}

fn main() {
    if let Some(mode) = common::client_scenario() {
        common::client_process(Queue {
            pairs: mode == "pairs",
        });
        return;
    }
    let sizes: Vec<usize> = std::env::var("LC_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let processes = env_or("LC_BENCH_PROCESSES", 4).max(1);
    let connections = env_or("LC_BENCH_CONNECTIONS", 2).max(1);
    let rounds = env_or("LC_BENCH_ROUNDS", 500).max(1);
    let mut binaries: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(baseline) = common::baseline_webapp() {
        binaries.push(("baseline", baseline));
    }
    binaries.push(("this build", PathBuf::from(common::WEBAPP)));

    let clients = processes * connections;
    println!(
        "give-me-job + job-update pairs from {clients} keep-alive clients \
         ({processes} processes x {connections}), closed loops"
    );
    println!("floor: GET /1.0/get-max-jobs, the same clients and webapp");
    println!("targets at 100,000 lorries: pair p99 <= 10 ms, >= 2,000 pairs/s");
    println!();
    println!(
        "| lorries | webapp | floor p50 / p99 ms | pair p50 ms | pair p99 ms | pairs/s | errors | p99 vs baseline | pairs/s vs baseline | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let rounds = rounds.min((n as u64 / clients).max(1));
        let mut baseline: Option<Row> = None;
        for (name, binary) in &binaries {
            let row = measure(binary, n, processes, connections, rounds);
            let ratios = match &baseline {
                Some(b) => (
                    format!("{:.2}x", row.p99 / b.p99),
                    format!("{:.2}x", row.per_second / b.per_second),
                ),
                None => ("-".into(), "-".into()),
            };
            let met = row.p99 <= 10.0 && row.per_second >= 2000.0;
            let target = match (n >= 100_000, met) {
                (_, true) => "met",
                (true, false) => "MISSED",
                (false, false) => "over",
            };
            println!(
                "| {n} | {name} | {:.2} / {:.2} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {target} |",
                row.floor50,
                row.floor99,
                row.p50,
                row.p99,
                row.per_second,
                row.errors,
                ratios.0,
                ratios.1,
            );
            if *name == "baseline" {
                baseline = Some(row);
            }
        }
    }
}
