//! Benchmark of bounded output (issue 12 item 1): one job writing 1 GB of
//! output, among 1,000 lorries, into the real webapp binary with the
//! default `--job-output-max` (8 MiB).
//!
//! The job's output goes in 4 MiB job-updates, as a minion sends them; the
//! job then fails, so its lorry's `last_run_error` is shown by the status.
//! Printed: the webapp's peak resident memory (`VmHWM` of
//! `/proc/<pid>/status`) and its resident memory at the end, the size of
//! `/1.0/status` and of the stored output, STATEDB's size with its WAL, and
//! the throughput. Targets: under 100 MB resident, `/1.0/status` under
//! 1 MB.
//!
//! `cargo bench --bench runaway_output`; `LC_BENCH_OUTPUT_MB` sets the
//! output written (default 1024).

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp binary"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lc_core::db::{NewLorry, StateDb};

const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");
const MIB: usize = 1024 * 1024;

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
        .args([
            "--no-debug-real-confgit",
            "--git-server-type=local",
            "--publish-failures",
            "--log-level=warn",
            "--debug-port=0",
        ])
        .arg(format!(
            "--local-base-directory={}",
            dir.join("downstream").display()
        ))
        .arg(format!("--debug-port-file={}", port_file.display()))
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

/// `VmHWM` and `VmRSS` of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("memory field")
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn main() {
    let total_mb: usize = std::env::var("LC_BENCH_OUTPUT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = StateDb::open(&dir.path().join("state.db")).expect("open STATEDB");
    db.write(|tx| {
        for i in 0..1000 {
            let path = format!("bench/group{:02}/repo{i:04}", i % 50);
            tx.upsert_lorry(&NewLorry {
                text: format!(
                    r#"{{"{path}": {{"type": "git", "url": "git://example.invalid/{i}"}}}}"#
                ),
                path,
                from_host: String::new(),
                from_path: String::new(),
                interval: 86_400,
                lorry_timeout: 86_400,
            })?;
        }
        Ok(())
    })
    .expect("seed");
    drop(db);
    let app = start(dir.path());
    let pid = app.child.id();
    let (hwm_idle, _) = memory(pid);
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", app.port);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let job: serde_json::Value = client
        .post(url("/1.0/give-me-job"))
        .form(&[("host", "bench"), ("pid", "1")])
        .send()
        .and_then(|r| r.json())
        .expect("give-me-job");
    let job_id = job["job_id"].to_string();
    let line = format!(
        "{}\n",
        "remote: Counting objects: 100% (12345/12345), done. ".repeat(2)
    );
    let chunk = line.repeat(4 * MIB / line.len());
    let updates = total_mb * MIB / chunk.len();
    let started = Instant::now();
    let mut answer_max = 0;
    for i in 0..updates {
        let last = i + 1 == updates;
        let body = client
            .post(url("/1.0/job-update"))
            .form(&[
                ("job_id", job_id.as_str()),
                ("exit", if last { "1" } else { "no" }),
                ("stdout", chunk.as_str()),
                ("stderr", ""),
            ])
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .expect("job-update");
        answer_max = answer_max.max(body.len());
    }
    let elapsed = started.elapsed();
    let written = updates * chunk.len();
    let status_started = Instant::now();
    let status = client
        .get(url("/1.0/status"))
        .send()
        .and_then(|r| r.text())
        .expect("status");
    let status_time = status_started.elapsed();
    let output_len = client
        .get(url(&format!("/1.0/job/{job_id}")))
        .send()
        .and_then(|r| r.json::<serde_json::Value>())
        .expect("job")["output"]
        .as_str()
        .map_or(0, str::len);
    let (hwm, rss) = memory(pid);
    let db_size = file_size(&dir.path().join("state.db"));
    let wal_size = file_size(&dir.path().join("state.db-wal"));
    let mb = |b: u64| b as f64 / MIB as f64;
    println!("runaway output: one job among 1,000 lorries, --job-output-max 8 MiB");
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| output written | {:.0} MiB in {} updates, {:.1} s ({:.0} MiB/s) | |",
        mb(written as u64),
        updates,
        elapsed.as_secs_f64(),
        mb(written as u64) / elapsed.as_secs_f64()
    );
    println!(
        "| output stored | {:.2} MiB | ≤ 8 MiB + marker |",
        mb(output_len as u64)
    );
    println!("| largest job-update answer | {answer_max} B | constant |");
    println!(
        "| webapp peak resident (VmHWM) | {:.1} MiB (idle {:.1} MiB) | < 100 MB |",
        mb(hwm),
        mb(hwm_idle)
    );
    println!("| webapp resident at the end | {:.1} MiB | |", mb(rss));
    println!(
        "| /1.0/status | {:.1} KiB in {:.1} ms | < 1 MB |",
        status.len() as f64 / 1024.0,
        status_time.as_secs_f64() * 1000.0
    );
    println!(
        "| STATEDB + WAL | {:.1} MiB + {:.1} MiB | |",
        mb(db_size),
        mb(wal_size)
    );
}
