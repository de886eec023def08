//! Benchmark: give-me-job + job-update round trips over loopback, from
//! several concurrent clients, against the real webapp binary with 1,000,
//! 10,000 and 100,000 lorries in STATEDB.
//!
//! Baseline, measured in the same run against the same webapp: a round trip
//! of `GET /1.0/get-max-jobs` (HTTP plus one trivial read transaction), the
//! floor under any request. Target: p99 of a job round trip ≤ 5 ms at
//! 100,000 lorries.
//!
//! `cargo bench --bench give_me_job`; `LC_BENCH_SIZES=1000,10000` picks sizes,
//! `LC_BENCH_ROUNDS` the round trips per client (default 300),
//! `LC_BENCH_CLIENTS` the concurrent clients (default 4). Every size runs in
//! the two downstream modes of [`Mode`].

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp binary from client processes"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lc_core::db::{NewLorry, StateDb};

const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");

struct Webapp {
    child: Child,
    port: u16,
}

impl Drop for Webapp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Webapp {
    let port_file = dir.join("port");
    let child = Command::new(WEBAPP)
        .arg(format!("--statedb={}", dir.join("state.db").display()))
        .arg(format!(
            "--configuration-directory={}",
            dir.join("confgit").display()
        ))
        .arg("--no-debug-real-confgit")
        .arg("--git-server-type=local")
        .arg(format!(
            "--local-base-directory={}",
            dir.join("downstream").display()
        ))
        .arg("--log-level=warn")
        .args([
            "--debug-port=0",
            &format!("--debug-port-file={}", port_file.display()),
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("start webapp");
    let start = Instant::now();
    let port = loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break port;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "webapp did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    Webapp { child, port }
}

fn seed(dir: &Path, n: usize) {
    let db = StateDb::open(&dir.join("state.db")).expect("open STATEDB");
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

fn path_of(i: usize) -> String {
    format!("bench/group{:03}/repo{i:06}", i % 1000)
}

/// Runs `clients` concurrent connections doing `rounds` of `op` each;
/// answers sorted latencies. The clients are tasks of one single-threaded
/// runtime, so that on a small machine they take as little CPU from the
/// webapp as possible (a thread and a runtime per client made the client
/// side's scheduling noise show in the p99).
fn measure<F, Fut>(clients: usize, rounds: usize, op: F) -> Vec<Duration>
where
    F: Fn(reqwest::Client) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let mut all: Vec<Duration> = local.block_on(&runtime, async move {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                let op = op.clone();
                tokio::task::spawn_local(async move {
                    let client = reqwest::Client::new();
                    let mut times = Vec::with_capacity(rounds);
                    for _ in 0..rounds {
                        let t = Instant::now();
                        op(client.clone()).await;
                        times.push(t.elapsed());
                    }
                    times
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.expect("client"));
        }
        all
    });
    all.sort();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How the downstream is prepared in a run of the benchmark.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Local downstream whose repositories exist already: the steady state.
    LocalExisting,
    /// Local downstream, each job a lorry's first: the repository is created.
    LocalNew,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::LocalExisting => "local, repo exists",
            Mode::LocalNew => "local, creates repo",
        }
    }
}

/// Creates the downstream repositories of the lorries a run will hand out:
/// all are due alike, so they go in path order.
fn precreate_repositories(dir: &Path, n: usize, count: usize) {
    let mut paths: Vec<String> = (0..n).map(path_of).collect();
    paths.sort();
    for path in paths.iter().take(count) {
        let repo = dir.join("downstream").join(format!("{path}.git"));
        let status = Command::new("git")
            .args(["init", "--bare", "--quiet"])
            .arg(&repo)
            .status()
            .expect("git init");
        assert!(status.success());
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("LC_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let clients: usize = std::env::var("LC_BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let rounds: usize = std::env::var("LC_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);

    println!("give-me-job + job-update round trips, {clients} concurrent clients, {rounds} each");
    println!("floor: GET /1.0/get-max-jobs on the same webapp (HTTP + one read transaction)");
    println!("target: job p99 <= 5 ms at 100,000 lorries");
    println!();
    println!(
        "{:>8} | {:<20} | {:>10} {:>10} | {:>10} {:>10} | {:>9} | {:>6}",
        "lorries",
        "downstream",
        "floor p50",
        "floor p99",
        "job p50",
        "job p99",
        "p99/floor",
        "target"
    );
    for n in sizes {
        for mode in [Mode::LocalExisting, Mode::LocalNew] {
            let rounds = rounds.min(n / clients);
            let dir = tempfile::tempdir().expect("tempdir");
            seed(dir.path(), n);
            if mode == Mode::LocalExisting {
                precreate_repositories(dir.path(), n, rounds * clients);
            }
            let app = start(dir.path());
            let base = format!("http://127.0.0.1:{}", app.port);

            let floor = measure(clients, rounds, {
                let base = base.clone();
                move |client: reqwest::Client| {
                    let url = format!("{base}/1.0/get-max-jobs");
                    async move {
                        let r = client.get(url).send().await.expect("GET");
                        assert!(r.status().is_success());
                    }
                }
            });
            // Every round trip runs a different lorry: they are not due again for a day.
            let jobs = measure(clients, rounds, {
                let base = base.clone();
                move |client: reqwest::Client| {
                    let base = base.clone();
                    async move {
                        let job: serde_json::Value = client
                            .post(format!("{base}/1.0/give-me-job"))
                            .form(&[("host", "bench"), ("pid", "1")])
                            .send()
                            .await
                            .expect("give-me-job")
                            .json()
                            .await
                            .expect("give-me-job answer");
                        let id = job["job_id"].as_i64().expect("a lorry was due").to_string();
                        let r = client
                            .post(format!("{base}/1.0/job-update"))
                            .form(&[("job_id", id.as_str()), ("exit", "0"), ("stdout", "done\n")])
                            .send()
                            .await
                            .expect("job-update");
                        assert!(r.status().is_success());
                    }
                }
            });
            let (f50, f99) = (percentile(&floor, 0.5), percentile(&floor, 0.99));
            let (j50, j99) = (percentile(&jobs, 0.5), percentile(&jobs, 0.99));
            // The target is the steady state; a first job's cost is the
            // file system creating a repository, reported for information.
            let target = match (mode, n >= 100_000, ms(j99) <= 5.0) {
                (Mode::LocalNew, _, _) => "n/a",
                (_, _, true) => "met",
                (_, true, false) => "MISSED",
                (_, false, false) => "over",
            };
            println!(
                "{n:>8} | {:<20} | {:>7.3} ms {:>7.3} ms | {:>7.3} ms {:>7.3} ms | {:>8.1}x | {target:>6}",
                mode.name(),
                ms(f50),
                ms(f99),
                ms(j50),
                ms(j99),
                ms(j99) / ms(f99)
            );
        }
    }
    println!();
    println!("'local, creates repo' is a lorry's first job only: its downstream repository");
    println!("is created in give-me-job; every later job finds it and costs like 'repo exists'.");
}
