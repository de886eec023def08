//! Batch checks at scale (issue 14 item 5): N unchanged repositories with
//! no manifest, cycled by two real minions with `--batch`, against the
//! `ls-remote` floor measured in the same run.
//!
//! Set-up: N bare repositories (one commit on `main`, an annotated tag
//! `v1`) copied from one template into a temporary directory and served by
//! `git daemon`; one git lorry each, seeded into STATEDB with its first
//! mirror recorded as the jobs of a real one would record it (an ordinary
//! job whose result reports the two refs whole), so every lorry has a whole
//! ref ledger and may be batched. Each run then measures, in turns:
//!
//! * **floor**: `git -c protocol.version=2 ls-remote --refs --heads --tags`
//!   of every repository, by a loop of `2 × LC_BATCH_PARALLEL` workers (the
//!   parallelism the two minions have together); and right after it the
//!   same in protocol version 0, which lorry speaks to `git://` upstreams
//!   (see ARCH: version 2 waits out git daemon's delayed ACK);
//! * **batch**: the real webapp and two real minions (`--batch
//!   LC_BATCH_SIZE --batch-parallel LC_BATCH_PARALLEL`) running the real
//!   `lorry --check-refs`, timed from `POST /1.0/pretend-time` making every
//!   lorry due to the moment the webapp's log has recorded every lorry
//!   checked unchanged (the "batch ended" lines' counts); then checked from
//!   outside: every lorry ran at that time with exit 0 and no job was added.
//!
//! `cargo bench --bench batch_checks`. Environment: `LC_BATCH_REPOS`
//! (10000), `LC_BATCH_RUNS` (3), `LC_BATCH_SIZE` (200), `LC_BATCH_PARALLEL`
//! (4). TMPDIR=/dev/shm keeps the repositories in memory.

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp, minions, lorry, git and git daemon"
)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::mirrors::{git, git_daemon, start_minion};
use common::{env_or, start_webapp};

const T0: i64 = 1_800_000_000;
const HOUR: i64 = 3600;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// N bare repositories `r<i>.git` under `root`, copies of one template;
/// answers the refs each holds (name, oid).
fn make_repos(root: &Path, n: usize) -> Vec<(String, String)> {
    let work = root.join("template-work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("f"), "x").expect("write");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "-a", "-m", "v1", "v1"]);
    let template = root.join("template.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &template.display().to_string(),
        ],
    );
    git(&template, &["gc", "-q"]);
    for dir in ["hooks", "info", "logs"] {
        let _ = std::fs::remove_dir_all(template.join(dir));
    }
    let refs: Vec<(String, String)> = git(
        &template,
        &["for-each-ref", "--format=%(refname) %(objectname)"],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(n, o)| (n.to_owned(), o.to_owned()))
    .collect();
    let repos = root.join("repos");
    for i in 0..n {
        copy_dir(&template, &repos.join(format!("r{i}.git")));
    }
    refs
}

/// One lorry per repository, each with a recorded first mirror (a job
/// that ended with exit 0 and reported `refs` whole).
fn seed(statedb: &Path, n: usize, port: u16, refs: &[(String, String)]) {
    let db = lc_core::db::StateDb::open(statedb).expect("open STATEDB");
    db.set_pretend_time(T0);
    db.write(|tx| {
        for i in 0..n {
            let path = format!("b/r{i}");
            tx.upsert_lorry(&lc_core::db::NewLorry {
                text: serde_json::json!({ &path: {
                    "type": "git", "url": format!("git://127.0.0.1:{port}/r{i}.git")
                }})
                .to_string(),
                path,
                from_host: String::new(),
                from_path: String::new(),
                interval: HOUR,
                lorry_timeout: 600,
            })?;
        }
        Ok(())
    })
    .expect("seed lorries");
    let held: serde_json::Map<String, serde_json::Value> = refs
        .iter()
        .map(|(n, o)| (n.clone(), serde_json::Value::from(o.as_str())))
        .collect();
    for chunk in 0..n.div_ceil(1000) {
        db.write(|tx| {
            for _ in 0..1000.min(n - chunk * 1000) {
                let Some((id, lorry)) = tx.start_next_job("seed", 1)? else {
                    break;
                };
                let result = serde_json::json!({"version": 1, "specs": [{
                    "name": lorry.path, "importer": "git", "ok": true, "refs": [],
                    "preserved": [], "bytes_received": 0, "pushed": "yes", "held": held,
                }]});
                tx.update_job(
                    id,
                    &lc_core::db::JobUpdate {
                        exit: Some(0),
                        result: Some(result.to_string()),
                        ..lc_core::db::JobUpdate::default()
                    },
                )?;
            }
            Ok(())
        })
        .expect("seed first mirrors");
    }
}

/// `git ls-remote` of every repository, `workers` at a time: seconds.
/// The `ls-remote` loop in git protocol `version`.
fn floor(port: u16, n: usize, workers: usize, scratch: &Path, version: &str) -> f64 {
    let protocol = format!("protocol.version={version}");
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let out = Command::new("git")
                        .current_dir(scratch)
                        .env("GIT_CONFIG_NOSYSTEM", "1")
                        .env("GIT_CONFIG_GLOBAL", "/dev/null")
                        .args([
                            "-c",
                            protocol.as_str(),
                            "ls-remote",
                            "--refs",
                            "--heads",
                            "--tags",
                        ])
                        .arg(format!("git://127.0.0.1:{port}/r{i}.git"))
                        .output()
                        .expect("ls-remote");
                    assert!(out.status.success(), "ls-remote r{i}");
                    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
                }
            });
        }
    });
    start.elapsed().as_secs_f64()
}

fn post(
    client: &reqwest::blocking::Client,
    port: u16,
    path: &str,
    form: &[(&str, &str)],
) -> serde_json::Value {
    let answer = client
        .post(format!("http://127.0.0.1:{port}{path}"))
        .form(form)
        .send()
        .expect("request");
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().expect("json")
}

/// The number of lorries the webapp's log says were checked unchanged.
fn checked(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("batch ended"))
        .filter_map(|l| {
            let (_, rest) = l.split_once(" lorries: ")?;
            rest.split_once(" unchanged")?.0.parse::<usize>().ok()
        })
        .sum()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let n = usize::try_from(env_or("LC_BATCH_REPOS", 10_000)).unwrap_or(10_000);
    let runs = usize::try_from(env_or("LC_BATCH_RUNS", 3))
        .unwrap_or(3)
        .clamp(1, 20);
    let size = env_or("LC_BATCH_SIZE", 200);
    let parallel = env_or("LC_BATCH_PARALLEL", 4);
    let workers = usize::try_from(2 * parallel).unwrap_or(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let set_up = Instant::now();
    let refs = make_repos(root, n);
    let (_daemon, port) = git_daemon(&root.join("repos"));
    let web = root.join("web");
    std::fs::create_dir_all(&web).expect("mkdir");
    seed(&web.join("state.db"), n, port, &refs);
    println!(
        "batch_checks: {n} repositories made and their first mirrors recorded in {:.1} s",
        set_up.elapsed().as_secs_f64()
    );
    let (_webapp, web_port) = start_webapp(
        &web,
        &[
            "--debug-allow-pretend-time".to_owned(),
            "--log-level=info".into(),
        ],
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    post(
        &client,
        web_port,
        "/1.0/pretend-time",
        &[("now", &T0.to_string())],
    );
    let minion = |name: &str| {
        start_minion(
            &web,
            web_port,
            name,
            &[
                "--sleep=1".into(),
                format!("--batch={size}"),
                format!("--batch-parallel={parallel}"),
                "--batch-ls-remote-timeout=60".into(),
                format!(
                    "--state-dir={}",
                    web.join(format!("{name}-state")).display()
                ),
            ],
        )
    };
    let _minions = [minion("m1"), minion("m2")];
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let log = web.join("webapp.log");
    let (mut floors, mut floors_v0, mut batches) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let floor_first = run % 2 == 0;
        let mut measure_floor = || {
            let f = floor(port, n, workers, &scratch, "2");
            floors.push(f);
            floors_v0.push(floor(port, n, workers, &scratch, "0"));
            f
        };
        let f1 = if floor_first {
            Some(measure_floor())
        } else {
            None
        };
        let at = T0 + (run as i64 + 1) * HOUR;
        let before = checked(&log);
        let start = Instant::now();
        post(
            &client,
            web_port,
            "/1.0/pretend-time",
            &[("now", &at.to_string())],
        );
        let mut last_seen = 0;
        let mut last_change = Instant::now();
        loop {
            let done = checked(&log) - before;
            if done >= n {
                break;
            }
            if done != last_seen {
                last_seen = done;
                last_change = Instant::now();
            }
            assert!(
                last_change.elapsed() < Duration::from_secs(300),
                "no progress: {done} of {n} checked"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let took = start.elapsed().as_secs_f64();
        batches.push(took);
        let f2 = if floor_first {
            None
        } else {
            Some(measure_floor())
        };
        // Every lorry ran at `at`, succeeded, and has its one seeded job.
        let status: serde_json::Value = client
            .get(format!("http://127.0.0.1:{web_port}/1.0/status"))
            .send()
            .and_then(|r| r.json())
            .expect("status");
        let queue = status["run_queue"].as_array().expect("run_queue");
        assert_eq!(queue.len(), n);
        for l in queue {
            assert_eq!(
                (l["last_run"].as_i64(), l["last_run_exit"].as_str()),
                (Some(at), Some("0")),
                "{l}"
            );
        }
        let jobs: serde_json::Value = client
            .get(format!("http://127.0.0.1:{web_port}/1.0/list-jobs"))
            .send()
            .and_then(|r| r.json())
            .expect("jobs");
        assert_eq!(
            jobs["job_ids"].as_array().map(Vec::len),
            Some(n),
            "no job added"
        );
        println!(
            "run {}: floor {:.2} s (protocol 0: {:.2} s), batch {took:.2} s ({:.2}x protocol 2)",
            run + 1,
            f1.or(f2).unwrap_or(0.0),
            floors_v0.last().copied().unwrap_or(0.0),
            took / f1.or(f2).unwrap_or(took)
        );
    }
    let (floor_m, floor_v0_m, batch_m) = (
        median(&mut floors.clone()),
        median(&mut floors_v0.clone()),
        median(&mut batches.clone()),
    );
    println!();
    println!(
        "| repositories | parallel ls-remotes | `ls-remote` floor, protocol 2 (git's default; median) | floor, protocol 0 (median) | two minions, batch checks (median) | ratio to protocol 2 | ratio to protocol 0 | target |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {workers} (2 × {parallel}) | {floor_m:.2} s {floors:.2?} | {floor_v0_m:.2} s {floors_v0:.2?} | {batch_m:.2} s {batches:.2?} | {:.2}× | {:.2}× | ≤ 1.1× |",
        batch_m / floor_m,
        batch_m / floor_v0_m
    );
    println!("batch size {size}, {runs} runs, floor and batch in turns");
}
