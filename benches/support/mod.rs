//! What the benches that drive the real webapp from outside share: child
//! processes killed on drop, starting a webapp binary, and client
//! processes (the bench binary run again) whose latencies come back as
//! `label<TAB>micros<TAB>ok` lines in a file each.
//!
//! A bench calls [`client_mode`] first thing in `main`: in a client
//! process it gets the client's settings and writes its lines.

#![allow(dead_code, reason = "each bench uses a part of this module")]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The webapp built with this bench.
pub const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(120), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `binary` (a webapp) on STATEDB `dir/state.db`, CONFGIT directory
/// `dir/confgit`, local downstream `dir/downstream`, log `dir/webapp.log`,
/// with `extra` options; answers it and its port once it listens.
pub fn start_webapp(binary: &Path, dir: &Path, extra: &[String]) -> (Proc, u16) {
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

/// Latencies per label: (micros sorted, errors).
pub type Samples = BTreeMap<String, (Vec<u64>, usize)>;

/// The label of the span lines: `span<TAB>first start<TAB>last end`, in
/// Unix microseconds, one per client process.
const SPAN: &str = "span";

/// Runs `processes` client processes, each told its index and `env`;
/// answers their samples, and the span from the first client's start to
/// the last one's end (for throughput).
pub fn run_clients(
    processes: u64,
    env: &[(&str, String)],
    dir: &Path,
    tag: &str,
) -> (Samples, Duration) {
    let exe = std::env::current_exe().expect("own executable");
    let mut children = Vec::new();
    let mut files = Vec::new();
    for p in 0..processes {
        let out = dir.join(format!("{tag}-{p}.tsv"));
        files.push(out.clone());
        children.push(Proc(
            Command::new(&exe)
                .env("LC_BENCH_CLIENT_OUT", &out)
                .env("LC_BENCH_CLIENT_INDEX", p.to_string())
                .envs(env.iter().map(|(k, v)| (k, v)))
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

/// In a client process (started by [`run_clients`]): its index, and a
/// writer for its lines; `None` in the bench itself.
pub fn client_mode() -> Option<(u64, ClientOut)> {
    let out = std::env::var_os("LC_BENCH_CLIENT_OUT")?;
    Some((
        env_or("LC_BENCH_CLIENT_INDEX", 0),
        ClientOut {
            path: PathBuf::from(out),
            lines: Vec::new(),
            first: None,
            last: None,
        },
    ))
}

/// A client process's samples, written when it is dropped.
pub struct ClientOut {
    path: PathBuf,
    lines: Vec<String>,
    first: Option<u128>,
    last: Option<u128>,
}

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

impl ClientOut {
    /// Marks the start of the measured work.
    pub fn start(&mut self) {
        self.first = Some(unix_micros());
    }

    /// Marks its end.
    pub fn end(&mut self) {
        self.last = Some(unix_micros());
    }

    pub fn extend(&mut self, lines: impl IntoIterator<Item = String>) {
        self.lines.extend(lines);
    }
}

impl Drop for ClientOut {
    fn drop(&mut self) {
        let mut file = std::fs::File::create(&self.path).expect("client output");
        for line in &self.lines {
            writeln!(file, "{line}").expect("write");
        }
        if let (Some(first), Some(last)) = (self.first, self.last) {
            writeln!(file, "{SPAN}\t{first}\t{last}").expect("write");
        }
    }
}

/// One sample line.
pub fn line(label: &str, took: Duration, ok: bool) -> String {
    format!("{label}\t{}\t{}", took.as_micros(), u8::from(ok))
}

/// The samples of these files, and the span of their span lines.
pub fn read_samples(files: &[PathBuf]) -> (Samples, Duration) {
    let mut samples = Samples::new();
    let (mut first, mut last) = (u128::MAX, 0u128);
    for file in files {
        let text = std::fs::read_to_string(file).expect("client output");
        for line in text.lines() {
            let mut parts = line.split('\t');
            let (Some(label), Some(a), Some(b)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if label == SPAN {
                first = first.min(a.parse().unwrap_or(u128::MAX));
                last = last.max(b.parse().unwrap_or(0));
                continue;
            }
            let entry = samples.entry(label.to_owned()).or_default();
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

/// A runtime for a client process: single-threaded, so that on a small
/// machine the clients take as little CPU from the webapp as they can.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A keep-alive HTTP client of one connection.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(1)
        .build()
        .expect("client")
}

/// The webapp binary to compare with, from `LC_BENCH_BASELINE_WEBAPP` (a
/// build of an older commit), if set.
pub fn baseline_webapp() -> Option<PathBuf> {
    std::env::var_os("LC_BENCH_BASELINE_WEBAPP").map(PathBuf::from)
}
