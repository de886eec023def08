//! The fleet bench (issue 14 item 6): N generated repositories served by
//! `git daemon` (and their grokmirror manifest by Python's `http.server`),
//! mirrored four ways, each for three phases:
//!
//! * **git loop**: `git clone --mirror` + `git push` of heads and tags to a
//!   local bare repository, one repository after the other; refreshes are
//!   `git fetch --prune` + the same push;
//! * **grokmirror**: the real `grok-pull` (PyPI, pull only, two threads)
//!   reading the origin's manifest made by grokmirror's own
//!   `grok-manifest`;
//! * **lorries**: the real webapp with a plain `lorries` section in CONFGIT
//!   and two real minions running the real `lorry`, local downstream;
//! * **manifest**: the same with a `grokmirror` Upstream Host reading the
//!   origin's manifest instead.
//!
//! Phases: the first mirror of all, a refresh with nothing changed, and a
//! refresh after one new commit in every tenth repository. For the product
//! each phase is timed from the moment the lorries become due (the
//! read-configuration that makes them, or `POST /1.0/pretend-time` two
//! hours on; with the grokmirror host, the clock moves while the queue is
//! stopped and the phase is timed from `POST /1.0/ls-troves`, after which
//! the queue starts) to the moment `GET /1.0/status` shows every lorry with that run's
//! result (`last_run` at the pretended time, exit 0). grok-pull is timed to
//! its exit, or to the moment its replica holds every ref when it does not
//! exit (grokmirror 2.0.12 sometimes keeps waiting on its queues after the
//! work is done; it is then killed and the bench says so). After each phase the
//! refs of every destination are compared with the origin's. Each system
//! starts from nothing in each run; the table gives the median of the
//! runs and each run's time.
//!
//! `cargo bench --bench fleet`. Environment: `LC_FLEET_REPOS` (1000),
//! `LC_FLEET_RUNS` (3), `LC_FLEET_SYSTEMS` (`git,grokmirror,lorries,manifest`),
//! `LC_FLEET_MINION_SLEEP` (the minions' `--sleep`, 0.2 s: how long an idle
//! minion waits before asking again), `LC_FLEET_KEEP` (keep every run's
//! directory: STATEDB and logs), `LC_FLEET_BASELINE_PROTOCOL` (the git
//! protocol version of the git loop and grok-pull; unset, git's default
//! 2: lorry speaks version 0 to `git://` upstreams, see ARCH). grokmirror comes from
//! `scripts/test-deps` (a virtual environment under
//! `~/.cache/lorry-controller/grokmirror`), `$LORRY_TEST_GROKMIRROR` (a
//! bin directory) or PATH.

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp, minions, lorry, git, git daemon and grokmirror"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use common::mirrors::{
    Product, differing, fast_import, fill_small_repository, git, git_daemon, machine, median,
};
use common::{Proc, env_or, free_port, wait_until};

const PHASES: [&str; 3] = [
    "first mirror",
    "refresh, nothing changed",
    "refresh, 10% changed",
];
const TWO_HOURS: i64 = 7_200;

/// A grokmirror program: `$LORRY_TEST_GROKMIRROR`, the virtual environment
/// `scripts/test-deps` makes, or PATH.
fn grok_tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("LORRY_TEST_GROKMIRROR") {
        dirs.push(dir.into());
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cache/lorry-controller/grokmirror/bin"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found: run scripts/test-deps (pip installs grokmirror)")
        })
}

/// The origin: `top/pub/rNNNN.git`, served by git daemon, its manifest by
/// http.server.
struct Origin {
    top: PathBuf,
    names: Vec<String>,
    git_port: u16,
    http_port: u16,
    /// Each manifest gets a modification time a little later than the one
    /// before, so that If-Modified-Since (whole seconds) sees every change.
    manifest_mtime: SystemTime,
    changes: usize,
    _daemon: Proc,
    _http: Proc,
}

impl Origin {
    fn new(top: &Path, repos: usize) -> Origin {
        let mut names = Vec::new();
        for i in 0..repos {
            let name = format!("pub/r{i:04}");
            let repo = top.join(format!("{name}.git"));
            std::fs::create_dir_all(&repo).expect("mkdir");
            git(&repo, &["init", "-q", "--bare", "-b", "main"]);
            fill_small_repository(&repo, i);
            names.push(name);
        }
        let (daemon, git_port) = git_daemon(top);
        let http_port = free_port();
        let http = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
            .arg(top)
            .arg(http_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        wait_until("the origin's http.server", || {
            std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        });
        let mut origin = Origin {
            top: top.to_owned(),
            names,
            git_port,
            http_port,
            manifest_mtime: SystemTime::now(),
            changes: 0,
            _daemon: daemon,
            _http: Proc(http),
        };
        origin.manifest();
        origin
    }

    fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.git_port)
    }

    fn manifest_url(&self) -> String {
        format!("http://127.0.0.1:{}/manifest.js.gz", self.http_port)
    }

    /// (Re)writes the manifest with grokmirror's own `grok-manifest`.
    fn manifest(&mut self) {
        let manifest = self.top.join("manifest.js.gz");
        let out = Command::new(grok_tool("grok-manifest"))
            .arg("-m")
            .arg(&manifest)
            .arg("-t")
            .arg(&self.top)
            .output()
            .expect("grok-manifest");
        assert!(
            out.status.success(),
            "grok-manifest: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.manifest_mtime = self
            .manifest_mtime
            .max(SystemTime::now())
            .checked_add(Duration::from_secs(2))
            .expect("time");
        std::fs::File::options()
            .write(true)
            .open(&manifest)
            .and_then(|f| f.set_modified(self.manifest_mtime))
            .expect("set the manifest's mtime");
    }

    /// One new commit on main of every tenth repository, then a new
    /// manifest, as the origin's post-update hook would write it.
    fn change(&mut self) {
        self.changes += 1;
        for (i, name) in self.names.iter().enumerate().filter(|(i, _)| i % 10 == 0) {
            let content = format!("repository {i} change {}\n", self.changes);
            fast_import(
                &self.top.join(format!("{name}.git")),
                &format!(
                    "commit refs/heads/main\ncommitter Bench <b@example.com> {} +0000\ndata 7\nchange\nfrom refs/heads/main^0\nM 644 inline file.txt\ndata {}\n{content}\ndone\n",
                    1_700_000_000 + self.changes,
                    content.len()
                ),
            );
        }
        self.manifest();
    }

    /// The repositories whose copy (`copy(name)`) lacks the origin's heads
    /// and tags, each with what it has.
    fn differing(&self, copy: impl Fn(&str) -> PathBuf) -> Vec<String> {
        differing(&self.top, &self.names, copy)
    }

    /// Panics unless every repository's copy (`copy(name)`) has the
    /// origin's heads and tags.
    fn verify(&self, system: &str, phase: &str, copy: impl Fn(&str) -> PathBuf) {
        let wrong = self.differing(copy);
        assert!(
            wrong.is_empty(),
            "{system}, {phase}: {} of {} repositories differ from the origin, e.g. {}",
            wrong.len(),
            self.names.len(),
            wrong[0]
        );
    }
}

/// `$LC_FLEET_BASELINE_PROTOCOL`: the git protocol version the git loop
/// and grok-pull use (unset: git's default, version 2).
fn baseline_protocol() -> Option<String> {
    std::env::var("LC_FLEET_BASELINE_PROTOCOL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// [`git`] with `-c protocol.version=` [`baseline_protocol`] when set.
fn baseline_git(dir: &Path, args: &[&str]) -> String {
    match baseline_protocol() {
        Some(version) => {
            let setting = format!("protocol.version={version}");
            let mut all = vec!["-c", setting.as_str()];
            all.extend_from_slice(args);
            git(dir, &all)
        }
        None => git(dir, args),
    }
}

/// The plain git loop: clone --mirror (or fetch --prune) and push, one
/// repository after the other.
fn git_loop(origin: &mut Origin, dir: &Path) -> [Duration; 3] {
    let mirrors = dir.join("mirrors");
    let down = dir.join("down");
    for name in &origin.names {
        std::fs::create_dir_all(mirrors.join(name)).expect("mkdir");
        git(dir, &["init", "-q", "--bare", &format!("down/{name}.git")]);
    }
    let push = |name: &str| {
        git(
            &mirrors.join(format!("{name}.git")),
            &[
                "push",
                "-q",
                &format!("file://{}", down.join(format!("{name}.git")).display()),
                "refs/heads/*:refs/heads/*",
                "refs/tags/*:refs/tags/*",
            ],
        );
    };
    let mut times = [Duration::ZERO; 3];
    for (phase, time) in times.iter_mut().enumerate() {
        if phase == 2 {
            origin.change();
        }
        let t = Instant::now();
        for name in &origin.names {
            let mirror = mirrors.join(format!("{name}.git"));
            if phase == 0 {
                baseline_git(
                    dir,
                    &[
                        "clone",
                        "-q",
                        "--mirror",
                        &origin.url(name),
                        &mirror.display().to_string(),
                    ],
                );
            } else {
                baseline_git(&mirror, &["fetch", "-q", "--prune", "origin"]);
            }
            push(name);
        }
        *time = t.elapsed();
        origin.verify("git loop", PHASES[phase], |name| {
            down.join(format!("{name}.git"))
        });
    }
    times
}

/// grokmirror's own `grok-pull` (pull only).
fn grokmirror(origin: &mut Origin, dir: &Path) -> [Duration; 3] {
    let replica = dir.join("replica");
    std::fs::create_dir_all(&replica).expect("mkdir");
    let config = dir.join("pull.conf");
    std::fs::write(
        &config,
        format!(
            "[core]\ntoplevel = {top}\nmanifest = {top}/manifest.js.gz\nlog = {top}/grok.log\n\
             [remote]\nsite = git://127.0.0.1:{port}\nmanifest = {manifest}\n\
             [pull]\npull_threads = 2\nrefresh = 0\n",
            top = replica.display(),
            port = origin.git_port,
            manifest = origin.manifest_url(),
        ),
    )
    .expect("write pull.conf");
    let mut times = [Duration::ZERO; 3];
    for (phase, time) in times.iter_mut().enumerate() {
        if phase == 2 {
            origin.change();
        }
        let log = dir.join(format!("grok-pull-{phase}.out"));
        let t = Instant::now();
        let mut command = Command::new(grok_tool("grok-pull"));
        if let Some(version) = baseline_protocol() {
            // grok-pull runs git: the version through git's environment.
            command
                .env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "protocol.version")
                .env("GIT_CONFIG_VALUE_0", version);
        }
        let mut child = command
            .arg("-c")
            .arg(&config)
            .stdout(std::fs::File::create(&log).expect("grok-pull output"))
            .stderr(Stdio::null())
            .spawn()
            .expect("grok-pull");
        // grok-pull 2.0.12 does not always exit once its work is done (its
        // main loop keeps waiting on its queues; seen on this loaded
        // machine): the time is then the moment the replica holds every
        // ref, after which it is killed.
        let mut next_check = Duration::from_millis(100);
        *time = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let took = t.elapsed();
                assert!(
                    status.success(),
                    "grok-pull: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                break took;
            }
            if phase != 1 && t.elapsed() >= next_check {
                next_check = t.elapsed() + (t.elapsed() / 50).max(Duration::from_millis(100));
                if origin
                    .differing(|name| replica.join(format!("{name}.git")))
                    .is_empty()
                {
                    let took = t.elapsed();
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if child.try_wait().expect("wait").is_none() {
                        eprintln!(
                            "grok-pull ({}) did not exit 10 s after the replica was complete: killed",
                            PHASES[phase]
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    break took;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(3_600),
                "grok-pull ({}) still running after an hour",
                PHASES[phase]
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        origin.verify("grokmirror", PHASES[phase], |name| {
            replica.join(format!("{name}.git"))
        });
    }
    times
}

/// The product with a plain `lorries` section (`manifest: false`) or with
/// a `grokmirror` Upstream Host reading the origin's manifest.
fn product(origin: &mut Origin, dir: &Path, manifest: bool) -> [Duration; 3] {
    let sleep: String = env_or("LC_FLEET_MINION_SLEEP", "0.2".to_owned());
    let product = Product::start(dir, 2, &sleep);
    let confgit = dir.join("confgit");
    let (conf, prefix) = if manifest {
        (
            json!([{
                "type": "grokmirror",
                "manifest-url": origin.manifest_url(),
                "clone-base": format!("git://127.0.0.1:{}/", origin.git_port),
                "prefixmap": {"pub": "fleet"},
                "interval": "1h",
                "ls-interval": "1h",
            }]),
            "fleet",
        )
    } else {
        for (chunk, names) in origin.names.chunks(100).enumerate() {
            let specs: serde_json::Map<String, Value> = names
                .iter()
                .map(|name| {
                    let short = name.strip_prefix("pub/").unwrap_or(name);
                    (
                        short.to_owned(),
                        json!({"type": "git", "url": origin.url(name)}),
                    )
                })
                .collect();
            std::fs::write(
                confgit.join(format!("fleet{chunk:02}.lorry")),
                serde_json::to_string_pretty(&specs).expect("json"),
            )
            .expect("write .lorry");
        }
        (
            json!([{"type": "lorries", "interval": "1h", "prefix": "fleet", "globs": ["*.lorry"]}]),
            "fleet",
        )
    };
    product.write_conf(&conf);
    let count = origin.names.len();
    let mut now = 1_900_000_000;
    product.pretend_time(now);
    let mut times = [Duration::ZERO; 3];
    for (phase, time) in times.iter_mut().enumerate() {
        if phase == 2 {
            origin.change();
        }
        let t = if phase == 0 {
            let t = Instant::now();
            product.post("/1.0/read-configuration", &[]);
            if manifest {
                product.post("/1.0/ls-troves", &[]);
            }
            t
        } else if manifest {
            // The queue is stopped while the clock moves, so that no minion
            // takes a lorry due before the listing of the new manifest says
            // whether it changed (it would be judged by the old one).
            product.post("/1.0/stop-queue", &[]);
            now += TWO_HOURS;
            product.pretend_time(now);
            let t = Instant::now();
            product.post("/1.0/ls-troves", &[]);
            product.post("/1.0/start-queue", &[]);
            t
        } else {
            let t = Instant::now();
            now += TWO_HOURS;
            product.pretend_time(now);
            t
        };
        product.wait_for_results(count, now, t);
        *time = t.elapsed();
        let system = if manifest { "manifest" } else { "lorries" };
        origin.verify(system, PHASES[phase], |name| {
            let short = name.strip_prefix("pub/").unwrap_or(name);
            dir.join(format!("downstream/{prefix}/{short}.git"))
        });
    }
    times
}

/// The machine, and the grokmirror the bench runs.
fn machine_and_grokmirror() -> String {
    let grok = Command::new(grok_tool("grok-pull"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{}, grok-pull {grok}", machine())
}

fn main() {
    // `cargo test --benches` runs this too: only as a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("fleet benchmark: run with `cargo bench --bench fleet`");
        return;
    }
    let repos: usize = env_or("LC_FLEET_REPOS", 1_000);
    let runs: usize = env_or("LC_FLEET_RUNS", 3).max(1);
    let systems: Vec<String> = env_or(
        "LC_FLEET_SYSTEMS",
        "git,grokmirror,lorries,manifest".to_owned(),
    )
    .split(',')
    .map(|s| s.trim().to_owned())
    .collect();
    println!("machine: {}", machine_and_grokmirror());
    println!(
        "git loop and grok-pull: git protocol {}",
        baseline_protocol().unwrap_or_else(|| "git's default (2)".to_owned())
    );
    let keep = std::env::var_os("LC_FLEET_KEEP").is_some();
    let tmp = tempfile::tempdir().expect("tempdir");
    // With LC_FLEET_KEEP every system's directory (STATEDB, logs) stays
    // for a look at where the time went.
    let (top, _removed_at_the_end) = if keep {
        let top = tmp.keep();
        println!("kept in {}", top.display());
        (top, None)
    } else {
        (tmp.path().to_owned(), Some(tmp))
    };
    let t = Instant::now();
    let mut origin = Origin::new(&top.join("origin"), repos);
    println!(
        "{repos} repositories (3 commits and a tag each) generated, with their manifest, in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // system → phase → the runs' times
    let mut results: BTreeMap<String, [Vec<Duration>; 3]> = BTreeMap::new();
    for run in 0..runs {
        for system in &systems {
            let dir = top.join(format!("run{run}-{system}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let times = match system.as_str() {
                "git" => git_loop(&mut origin, &dir),
                "grokmirror" => grokmirror(&mut origin, &dir),
                "lorries" => product(&mut origin, &dir, false),
                "manifest" => product(&mut origin, &dir, true),
                other => panic!("LC_FLEET_SYSTEMS: no system {other:?}"),
            };
            eprintln!(
                "run {}: {system}: {}",
                run + 1,
                times
                    .iter()
                    .map(|d| format!("{:.2} s", d.as_secs_f64()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let entry = results.entry(system.clone()).or_default();
            for (phase, time) in times.into_iter().enumerate() {
                entry[phase].push(time);
            }
            // Free the disk: each run starts from nothing.
            if !keep {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }

    let label = |s: &str| match s {
        "git" => "plain git loop".to_owned(),
        "grokmirror" => "grokmirror (pull only)".to_owned(),
        "lorries" => "lorry-controller, lorries".to_owned(),
        "manifest" => "lorry-controller, grokmirror host".to_owned(),
        other => other.to_owned(),
    };
    println!();
    println!(
        "{repos} repositories, median of {runs} runs (each run's time in brackets); refs verified after every phase"
    );
    println!();
    let mut header = String::from("| phase |");
    let mut rule = String::from("|---|");
    for system in &systems {
        header.push_str(&format!(" {} |", label(system)));
        rule.push_str("---|");
    }
    println!("{header}");
    println!("{rule}");
    for (phase, name) in PHASES.iter().enumerate() {
        let mut line = format!("| {name} |");
        let git = results.get("git").map(|r| median(r[phase].clone()));
        for system in &systems {
            let times = &results[system][phase];
            let m = median(times.clone());
            let all: Vec<String> = times
                .iter()
                .map(|d| format!("{:.2}", d.as_secs_f64()))
                .collect();
            let ratio = match git {
                Some(g) if system != "git" => {
                    format!(" = {:.2}× git", m.as_secs_f64() / g.as_secs_f64().max(1e-9))
                }
                _ => String::new(),
            };
            line.push_str(&format!(
                " {:.2} s{ratio} [{}] |",
                m.as_secs_f64(),
                all.join(", ")
            ));
        }
        println!("{line}");
    }
}
