//! Mirroring from outside, for the benches that time whole refreshes:
//! small generated git repositories, `git daemon` or `git http-backend`
//! serving them, and the real webapp with real minions running the real
//! `lorry`, timed until `GET /1.0/status` shows each lorry's result.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Proc, free_port, start_webapp, wait_until};

pub const MINION: &str = env!("CARGO_BIN_EXE_lorry-controller-minion");
pub const LORRY: &str = env!("CARGO_BIN_EXE_lorry");

/// A hermetic `git`, with an identity for commits.
pub fn git_command() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "b@example.com");
    cmd
}

/// Runs git in `dir`; its standard output. Panics naming the command when
/// it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_command()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `git fast-import` in the bare repository `repo` on `stream`.
pub fn fast_import(repo: &Path, stream: &str) {
    let mut child = git_command()
        .arg(format!("--git-dir={}", repo.display()))
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success(), "fast-import");
}

/// Fills the empty bare repository `repo` with repository number `i` of a
/// fleet: three commits on `main` and the tag `v1`.
pub fn fill_small_repository(repo: &Path, i: usize) {
    let mut stream = String::new();
    for c in 1..=3 {
        let content = format!("repository {i} commit {c}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\nmark :{c}\ncommitter Bench <b@example.com> {} +0000\ndata 7\ncommit\nM 644 inline file.txt\ndata {}\n{content}\n",
            1_600_000_000 + c,
            content.len()
        ));
    }
    stream.push_str("reset refs/tags/v1\nfrom :3\n\ndone\n");
    fast_import(repo, &stream);
}

/// `git daemon` exporting every repository under `base` on 127.0.0.1,
/// with no cap on connections (its default of 32 would throttle parallel
/// listings); answers it and its port once it listens. The `git-daemon`
/// program is started itself, not through `git`, so that killing it ends
/// it.
pub fn git_daemon(base: &Path) -> (Proc, u16) {
    let port = free_port();
    let exec = git(base, &["--exec-path"]);
    let daemon = Command::new(Path::new(exec.trim()).join("git-daemon"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
        .arg("--max-connections=0")
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon");
    wait_until("git daemon listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (Proc(daemon), port)
}

/// The heads and tags of a bare repository, read from its files (loose
/// refs over `packed-refs`): a thousand repositories are compared in
/// milliseconds, with no process per repository.
pub fn refs_of(repo: &Path) -> BTreeMap<String, String> {
    let mut refs = BTreeMap::new();
    if let Ok(packed) = std::fs::read_to_string(repo.join("packed-refs")) {
        for line in packed.lines() {
            if line.starts_with('#') || line.starts_with('^') {
                continue;
            }
            if let Some((oid, name)) = line.split_once(' ') {
                refs.insert(name.to_owned(), oid.to_owned());
            }
        }
    }
    let mut todo = vec![repo.join("refs/heads"), repo.join("refs/tags")];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                let name = path
                    .strip_prefix(repo)
                    .expect("under repo")
                    .to_string_lossy()
                    .into_owned();
                refs.insert(name, text.trim().to_owned());
            }
        }
    }
    refs.retain(|name, _| name.starts_with("refs/heads/") || name.starts_with("refs/tags/"));
    refs
}

/// The names (relative to `top`, without `.git`) whose copy (`copy(name)`)
/// lacks the heads and tags of `top/<name>.git`, each with what it has.
pub fn differing(top: &Path, names: &[String], copy: impl Fn(&str) -> PathBuf) -> Vec<String> {
    let mut wrong = Vec::new();
    for name in names {
        let want = refs_of(&top.join(format!("{name}.git")));
        let got = refs_of(&copy(name));
        if want != got {
            wrong.push(format!("{name}: {got:?} instead of {want:?}"));
        }
    }
    wrong
}

/// A real minion of the webapp on `port`, running the real `lorry` with
/// `dir/wa` as working area and `dir/downstream` as local downstream;
/// log `dir/<name>.log`; `extra` arguments.
pub fn start_minion(dir: &Path, port: u16, name: &str, extra: &[String]) -> Proc {
    let conf = dir.join("lorry.conf");
    std::fs::write(
        &conf,
        format!(
            "[config]\nworking-area = {}\nmirror-base-url-push = {}\n",
            dir.join("wa").display(),
            dir.join("downstream").display()
        ),
    )
    .expect("lorry.conf");
    Proc(
        Command::new(MINION)
            .args([
                "--webapp-host=127.0.0.1".to_owned(),
                format!("--webapp-port={port}"),
                format!("--lorry-path={LORRY}"),
                format!("--lorry-config={}", conf.display()),
                format!("--log={}", dir.join(format!("{name}.log")).display()),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start a minion"),
    )
}

/// The real webapp (pretended time allowed, local downstream) and real
/// minions in `dir`.
pub struct Product {
    pub dir: PathBuf,
    pub port: u16,
    client: reqwest::blocking::Client,
    _minions: Vec<Proc>,
    _webapp: Proc,
}

impl Product {
    /// `minions` minions that sleep `sleep` seconds between asks when idle,
    /// with the arguments in `$LC_BENCH_MINION_ARGS` (split at white
    /// space; to see what an option costs, e.g. `--sandbox=none`).
    pub fn start(dir: &Path, minions: usize, sleep: &str) -> Product {
        let (webapp, port) = start_webapp(dir, &["--debug-allow-pretend-time".to_owned()]);
        let mut extra = vec![format!("--sleep={sleep}")];
        extra.extend(
            std::env::var("LC_BENCH_MINION_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned),
        );
        let minions = (0..minions)
            .map(|m| start_minion(dir, port, &format!("minion{m}"), &extra))
            .collect();
        Product {
            dir: dir.to_owned(),
            port,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("client"),
            _minions: minions,
            _webapp: webapp,
        }
    }

    /// Writes CONFGIT's `lorry-controller.conf` (the directory is not a
    /// git repository: the webapp runs with `--no-debug-real-confgit`).
    pub fn write_conf(&self, conf: &Value) {
        std::fs::write(
            self.dir.join("confgit/lorry-controller.conf"),
            serde_json::to_string_pretty(conf).expect("json"),
        )
        .expect("write the conf");
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let answer = self
            .client
            .post(format!("http://127.0.0.1:{}{path}", self.port))
            .form(form)
            .send()
            .expect("POST");
        let status = answer.status();
        let body = answer.text().unwrap_or_default();
        assert!(status.is_success(), "POST {path}: {status} {body}");
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    pub fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .and_then(|a| a.json())
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub fn pretend_time(&self, now: i64) {
        self.post("/1.0/pretend-time", &[("now", &now.to_string())]);
    }

    /// Waits until every one of `count` lorries shows a successful run that
    /// started at `since` or later; answers the run queue then.
    pub fn wait_for_results(&self, count: usize, since: i64, started: Instant) -> Vec<Value> {
        loop {
            let status = self.get("/1.0/status");
            let queue = status["run_queue"].as_array().cloned().unwrap_or_default();
            let mut done = 0;
            for entry in &queue {
                if entry["last_run"].as_i64().unwrap_or(0) >= since
                    && entry["running_job"].is_null()
                {
                    let exit = entry["last_run_exit"].as_str().unwrap_or("");
                    assert_eq!(
                        exit, "0",
                        "{} failed: {}",
                        entry["path"], entry["last_run_error"]
                    );
                    done += 1;
                }
            }
            if queue.len() >= count && done == queue.len() {
                return queue;
            }
            assert!(
                started.elapsed() < Duration::from_secs(3_600),
                "{done} of {count} lorries done after an hour; see {}",
                self.dir.display()
            );
            // Asking costs the webapp too: about one poll per 2% of the
            // time so far, between 20 and 250 ms.
            let wait = (started.elapsed() / 50)
                .clamp(Duration::from_millis(20), Duration::from_millis(250));
            std::thread::sleep(wait);
        }
    }
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The machine, for the table's caption: cores, CPU, memory, load average
/// now, git's version.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|m| m.trim().to_owned()))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let git_version = git(Path::new("/"), &["--version"]);
    format!(
        "{cores} cores ({cpu}), {mem} memory, load average at the start {}, {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        git_version.trim()
    )
}
