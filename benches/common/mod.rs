//! What the benches that drive the real webapp binary from outside share:
//! starting it (or a baseline build of it), reading its memory from
//! `/proc`, and client processes.
//!
//! Client processes are the bench binary run again with `LC_LOAD_CLIENT`
//! set: the bench's `main` sees [`client_scenario`] and calls
//! [`client_process`] with the [`Scenario`] named. Each process runs its
//! connections as closed loops (the next request when the answer is in,
//! one keep-alive connection each) on one thread, for some seconds
//! ([`run_clients`]) or some requests each ([`run_client_rounds`]), and
//! writes a line per request (`route micros ok`) and one with the Unix
//! microseconds its measured work began and ended, which those read back.

#![allow(dead_code, reason = "each bench uses part of it")]

pub mod mirrors;

/// At `crate::common::git`, where the end-to-end doubles a bench borrows
/// (`tests/e2e/doubles/`) look for it.
#[allow(
    unused_imports,
    reason = "only the benches that borrow the doubles use it"
)]
pub use mirrors::git;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The environment variable `name` parsed, or `default` when it is unset
/// or does not parse.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(120), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the webapp binary on `dir/state.db` (CONFGIT `dir/confgit`, a
/// local downstream, log at warn level) with `extra` arguments, and waits
/// until it listens; answers it and its port.
pub fn start_webapp(dir: &Path, extra: &[String]) -> (Proc, u16) {
    std::fs::create_dir_all(dir.join("confgit")).expect("mkdir");
    let mut args = vec!["--no-debug-real-confgit".to_owned()];
    args.extend_from_slice(extra);
    start_webapp_binary(Path::new(WEBAPP), dir, &args)
}

/// Starts `binary` (a webapp) on STATEDB `dir/state.db`, CONFGIT directory
/// `dir/confgit` (a real CONFGIT unless `extra` says
/// `--no-debug-real-confgit`), local downstream `dir/downstream`, log
/// `dir/webapp.log` at warn level, with `extra` arguments; answers it and
/// its port once it listens.
pub fn start_webapp_binary(binary: &Path, dir: &Path, extra: &[String]) -> (Proc, u16) {
    let port_file = dir.join("port");
    let _ = std::fs::remove_file(&port_file);
    let child = Command::new(binary)
        .arg(format!("--statedb={}", dir.join("state.db").display()))
        .arg(format!(
            "--configuration-directory={}",
            dir.join("confgit").display()
        ))
        .args([
            "--git-server-type=local",
            "--log-level=warn",
            "--debug-port=0",
        ])
        .arg(format!(
            "--local-base-directory={}",
            dir.join("downstream").display()
        ))
        .arg(format!("--log={}", dir.join("webapp.log").display()))
        .arg(format!("--debug-port-file={}", port_file.display()))
        .args(extra)
        .stdin(Stdio::null())
        .spawn()
        .expect("start webapp");
    let mut port = 0;
    wait_until("the webapp listening", || {
        port = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        port != 0
    });
    (Proc(child), port)
}

/// The webapp binary to compare with, from `LC_BENCH_BASELINE_WEBAPP` (a
/// build of an older commit), if set.
pub fn baseline_webapp() -> Option<PathBuf> {
    std::env::var_os("LC_BENCH_BASELINE_WEBAPP").map(PathBuf::from)
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts `VmHWM` of `pid` again from its current `VmRSS` (Linux's
/// `clear_refs` 5), so that a phase's peak can be read on its own.
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// What one connection of a client process asks, request after request.
/// Each connection has its own clone (and so its own state). Client
/// processes run their connections on one thread, so the futures need
/// not be `Send`.
pub trait Scenario: Clone + 'static {
    /// Readies a connection before the clock starts (by default nothing).
    async fn warm_up(&mut self, _client: &reqwest::Client, _base: &str) {}

    /// Sends request number `n` to `base`; answers the route's name for
    /// the table and whether it succeeded (the whole body read).
    async fn send(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        n: usize,
    ) -> (&'static str, bool);
}

/// The scenario a client process was started for, if this is one.
pub fn client_scenario() -> Option<String> {
    std::env::var_os("LC_LOAD_CLIENT")?;
    Some(std::env::var("LC_LOAD_SCENARIO").unwrap_or_default())
}

/// A client process: `LC_LOAD_CONNECTIONS` closed loops of `scenario`,
/// each for `LC_LOAD_ROUNDS` requests if set, else for `LC_LOAD_SECONDS`;
/// each latency written as `route micros ok` lines to `LC_LOAD_OUT`, and
/// the span line of its measured work (after the warm-up).
pub fn client_process<S: Scenario>(scenario: S) {
    let port = env_or("LC_LOAD_PORT", 0);
    let connections = env_or("LC_LOAD_CONNECTIONS", 50) as usize;
    let seconds = env_or("LC_LOAD_SECONDS", 60);
    let rounds = env_or("LC_LOAD_ROUNDS", 0);
    let offset = env_or("LC_LOAD_OFFSET", 0) as usize;
    let out = PathBuf::from(std::env::var("LC_LOAD_OUT").expect("LC_LOAD_OUT"));
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    // A client each: one connection each, kept alive.
    let mut clients: Vec<(reqwest::Client, S)> = (0..connections)
        .map(|_| {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            (client, scenario.clone())
        })
        .collect();
    local.block_on(&runtime, async {
        for (client, scenario) in &mut clients {
            scenario.warm_up(client, &base).await;
        }
    });
    let first = unix_micros();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let lines: Vec<String> = local.block_on(&runtime, async move {
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(c, (client, mut scenario))| {
                let base = base.clone();
                tokio::task::spawn_local(async move {
                    let mut lines = Vec::new();
                    let mut n = offset + c * 7919;
                    let mut round = 0;
                    while if rounds > 0 {
                        round < rounds
                    } else {
                        Instant::now() < deadline
                    } {
                        let t = Instant::now();
                        let (route, ok) = scenario.send(&client, &base, n).await;
                        lines.push(format!(
                            "{route}\t{}\t{}",
                            t.elapsed().as_micros(),
                            u8::from(ok)
                        ));
                        n += 1;
                        round += 1;
                    }
                    lines
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("client task"));
        }
        all
    });
    let last = unix_micros();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("out"));
    for line in lines {
        writeln!(file, "{line}").expect("write");
    }
    writeln!(file, "{SPAN}\t{first}\t{last}").expect("write");
}

/// The label of the span lines: `span<TAB>first start<TAB>last end`, in
/// Unix microseconds, one per client process.
const SPAN: &str = "span";

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Latencies per route: (micros sorted, errors).
pub type Samples = BTreeMap<String, (Vec<u64>, usize)>;

/// The samples of these files, and the span of their span lines.
fn read_samples(files: &[PathBuf]) -> (Samples, Duration) {
    let mut samples = Samples::new();
    let (mut first, mut last) = (u128::MAX, 0u128);
    for file in files {
        let text = std::fs::read_to_string(file).expect("client output");
        for line in text.lines() {
            let mut parts = line.split('\t');
            let (Some(route), Some(a), Some(b)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if route == SPAN {
                first = first.min(a.parse().unwrap_or(u128::MAX));
                last = last.max(b.parse().unwrap_or(0));
                continue;
            }
            let entry = samples.entry(route.to_owned()).or_default();
            entry.0.push(a.parse().unwrap_or(0));
            if b != "1" {
                entry.1 += 1;
            }
        }
    }
    for (times, _) in samples.values_mut() {
        times.sort_unstable();
    }
    let span = Duration::from_micros(u64::try_from(last.saturating_sub(first)).unwrap_or(0));
    (samples, span)
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// Runs `processes` client processes of `per_process` connections each
/// against `port` for `seconds`, asking `scenario`; their samples.
pub fn run_clients(
    port: u16,
    processes: u64,
    per_process: u64,
    seconds: u64,
    dir: &Path,
    tag: &str,
    scenario: &str,
) -> Samples {
    let bound = ("LC_LOAD_SECONDS", seconds);
    spawn_clients(port, processes, per_process, bound, dir, tag, scenario).0
}

/// Runs `processes` client processes of `per_process` connections each
/// against `port`, each connection warmed up and then asking `scenario`
/// `rounds` times; their samples, and the span from the first client's
/// start to the last one's end (for throughput).
pub fn run_client_rounds(
    port: u16,
    processes: u64,
    per_process: u64,
    rounds: u64,
    dir: &Path,
    tag: &str,
    scenario: &str,
) -> (Samples, Duration) {
    let bound = ("LC_LOAD_ROUNDS", rounds);
    spawn_clients(port, processes, per_process, bound, dir, tag, scenario)
}

/// [`run_clients`] and [`run_client_rounds`]: `bound` is the variable and
/// value that end each connection's loop.
fn spawn_clients(
    port: u16,
    processes: u64,
    per_process: u64,
    bound: (&str, u64),
    dir: &Path,
    tag: &str,
    scenario: &str,
) -> (Samples, Duration) {
    let exe = std::env::current_exe().expect("own executable");
    let mut children = Vec::new();
    let mut files = Vec::new();
    for p in 0..processes {
        let out = dir.join(format!("{tag}-{p}.tsv"));
        files.push(out.clone());
        children.push(Proc(
            Command::new(&exe)
                .env("LC_LOAD_CLIENT", "1")
                .env("LC_LOAD_SCENARIO", scenario)
                .env("LC_LOAD_PORT", port.to_string())
                .env("LC_LOAD_CONNECTIONS", per_process.to_string())
                .env(bound.0, bound.1.to_string())
                .env("LC_LOAD_OFFSET", (p * 104_729).to_string())
                .env("LC_LOAD_OUT", &out)
                .stdin(Stdio::null())
                .spawn()
                .expect("client process"),
        ));
    }
    for mut child in children {
        let status = child.0.wait().expect("wait client");
        assert!(status.success(), "a client process failed: {status}");
    }
    read_samples(&files)
}

/// The status benches' fleet, seeded at pretend time `at`: `n` lorries under 50 prefixes; one in 100 has a failed last job, one in
/// 500 a running one, the rest are due or fresh.
pub fn seed_status_fleet(db: &lc_core::db::StateDb, n: usize, at: i64) {
    db.set_pretend_time(at);
    db.write(|tx| {
        for i in 0..n {
            let path = format!("upstream/group-{:02}/project-{i:06}", i % 50);
            tx.upsert_lorry(&lc_core::db::NewLorry {
                text: format!(
                    "{{\"{path}\": {{\"type\": \"git\", \"url\": \"https://example.com/{path}.git\"}}}}"
                ),
                path,
                from_host: String::new(),
                from_path: String::new(),
                interval: if i % 3 == 0 { 300 } else { 86_400 },
                lorry_timeout: 3600,
            })?;
        }
        Ok(())
    })
    .expect("seed lorries");
    let jobs = n / 100 + n / 500;
    db.write(|tx| {
        for j in 0..jobs {
            let Some((id, _)) = tx.start_next_job("bench", 1)? else {
                break;
            };
            if j < n / 100 {
                tx.update_job(
                    id,
                    &lc_core::db::JobUpdate {
                        exit: Some(1),
                        stderr: "fatal: repository not found\n".repeat(20),
                        ..lc_core::db::JobUpdate::default()
                    },
                )?;
            }
        }
        Ok(())
    })
    .expect("seed jobs");
}
