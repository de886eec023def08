//! Speed of `lorry` beside plain git doing the same work, in the same run.
//!
//! 1. First mirror of a generated repository (default 100,000 commits):
//!    lorry vs `git clone --mirror` + `git push` of heads and tags.
//! 2. Refresh of N unchanged mirrors (default 1,000), one lorry run per
//!    mirror as the minion does: lorry vs a bare `git ls-remote` of each
//!    upstream (the floor of any refresh), and vs `git fetch --prune` +
//!    `git push` of each (what a plain-git mirror script does).
//!
//! Upstreams are served by `git daemon` on 127.0.0.1; downstreams are local
//! bare repositories reached through file://.
//!
//! `cargo bench -p lc-lorry --bench mirror`; smaller sizes with
//! `LORRY_BENCH_COMMITS=20000 LORRY_BENCH_MIRRORS=200`.
//!
//! Targets (issue 4, part 10): first mirror ≤ 1.1× the git baseline; an
//! unchanged refresh ≤ 1.2× `git ls-remote`, with no connection to the
//! downstream at all.

#![expect(
    clippy::disallowed_methods,
    reason = "the bench compares lorry with the git programs it stands beside"
)]

use std::ffi::OsString;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lc_git::{Git, Trace};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn git(dir: &Path, args: &[&str]) {
    let out = lc_git::git()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("spawn git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bare repository with `commits` commits on main (each changing one of
/// a few hundred files) and a tag every 1,000 commits, made by fast-import.
fn generate(repo: &Path, commits: usize, seed: usize) {
    git(
        repo.parent().expect("parent"),
        &["init", "-q", "--bare", repo.to_str().expect("utf8")],
    );
    let mut child = lc_git::git()
        .arg(format!("--git-dir={}", repo.display()))
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    {
        let mut stdin = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
        for i in 1..=commits {
            let content = format!("seed {seed} change {i}\n");
            let message = format!("commit {i}\n");
            write!(
                stdin,
                "commit refs/heads/main\nmark :{i}\ncommitter Bench <b@example.com> {} +0000\ndata {}\n{message}M 644 inline dir{}/file{}.txt\ndata {}\n{content}\n",
                1_600_000_000 + i,
                message.len(),
                i % 17,
                i % 301,
                content.len()
            )
            .expect("write");
            if i % 1000 == 0 {
                write!(stdin, "reset refs/tags/v{i}\nfrom :{i}\n\n").expect("write");
            }
        }
        writeln!(stdin, "done").expect("write");
    }
    assert!(child.wait().expect("wait").success());
}

struct Daemon(Child, u16);

impl Daemon {
    fn start(base: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        // git-daemon itself: `git daemon` would leave it orphaned when killed.
        let exec_path = lc_git::git()
            .arg("--exec-path")
            .output()
            .expect("git --exec-path");
        let program =
            PathBuf::from(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon");
        let mut child = Command::new(program)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().expect("try_wait").is_none(), "daemon died");
            assert!(Instant::now() < deadline, "daemon not listening");
            std::thread::yield_now();
        }
        Self(child, port)
    }

    fn url(&self, path: &str) -> String {
        format!("git://127.0.0.1:{}/{path}", self.1)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs lorry in-process on one .lorry file; panics unless it exits 0.
fn lorry(wa: &Path, push_base: &Path, file: &Path, trace: &Trace) {
    let argv: Vec<OsString> = vec![
        "lorry".into(),
        format!("--working-area={}", wa.display()).into(),
        format!("--mirror-base-url-push=file://{}", push_base.display()).into(),
        "--allow-local-upstreams".into(),
        "--bundle=never".into(),
        "--tarball=never".into(),
        file.as_os_str().to_owned(),
    ];
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = lc_lorry::run(argv, Git::new().traced(trace.clone()), &mut out, &mut err);
    assert_eq!(
        code,
        0,
        "lorry failed: {}{}",
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&err)
    );
}

fn write_spec(path: &Path, name: &str, url: &str) {
    std::fs::write(
        path,
        format!("{{\"{name}\": {{\"type\": \"git\", \"url\": \"{url}\"}}}}"),
    )
    .expect("write spec");
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

struct Row {
    case: String,
    lorry: Duration,
    baseline: String,
    base: Duration,
    target: &'static str,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either way: run only when invoked as a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("mirror benchmark: run with `cargo bench -p lc-lorry --bench mirror`");
        return;
    }
    let commits = env_usize("LORRY_BENCH_COMMITS", 100_000);
    let mirrors = env_usize("LORRY_BENCH_MIRRORS", 1_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let served = root.join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    let mut rows = Vec::new();

    // ---- 1. First mirror of a large repository.
    eprintln!("generating a repository of {commits} commits...");
    let t = Instant::now();
    generate(&served.join("big.git"), commits, 0);
    git(&served.join("big.git"), &["repack", "-a", "-d", "-q"]);
    eprintln!("  generated in {}", secs(t.elapsed()));
    let daemon = Daemon::start(&served);
    let big_url = daemon.url("big.git");

    // Plain git: clone --mirror, then push heads and tags.
    let base_down = root.join("base-down");
    let base_dest = base_down.join("big.git");
    lc_git::init_bare(&base_dest).expect("init");
    let t = Instant::now();
    git(
        root,
        &[
            "clone",
            "-q",
            "--mirror",
            &big_url,
            root.join("base-mirror.git").to_str().expect("utf8"),
        ],
    );
    git(
        &root.join("base-mirror.git"),
        &[
            "push",
            "-q",
            &format!("file://{}", base_dest.display()),
            "refs/heads/*:refs/heads/*",
            "refs/tags/*:refs/tags/*",
        ],
    );
    let base_first = t.elapsed();

    let wa = root.join("wa");
    let down = root.join("down");
    lc_git::init_bare(&down.join("big.git")).expect("init");
    let spec = root.join("big.lorry");
    write_spec(&spec, "big", &big_url);
    let t = Instant::now();
    lorry(&wa, &down, &spec, &Trace::new());
    let lorry_first = t.elapsed();
    rows.push(Row {
        case: format!("first mirror, {commits} commits"),
        lorry: lorry_first,
        baseline: "git clone --mirror + git push".into(),
        base: base_first,
        target: "≤ 1.1×",
    });

    // ---- 2. Refresh of N unchanged mirrors.
    eprintln!("generating {mirrors} small upstreams...");
    let mut specs = Vec::new();
    for i in 0..mirrors {
        let name = format!("small{i}");
        generate(&served.join(format!("{name}.git")), 5, i + 1);
        lc_git::init_bare(&down.join(format!("{name}.git"))).expect("init");
        let file = root.join(format!("{name}.lorry"));
        write_spec(&file, &name, &daemon.url(&format!("{name}.git")));
        specs.push((name, file));
    }
    eprintln!("first mirror of each...");
    for (_, file) in &specs {
        lorry(&wa, &down, file, &Trace::new());
    }
    // Plain git mirrors of the same, for the fetch + push baseline.
    let plain = root.join("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let plain_down = root.join("plain-down");
    for (name, _) in &specs {
        git(
            &plain,
            &[
                "clone",
                "-q",
                "--mirror",
                &daemon.url(&format!("{name}.git")),
                &format!("{name}.git"),
            ],
        );
        lc_git::init_bare(&plain_down.join(format!("{name}.git"))).expect("init");
    }

    // Bare ls-remote of each upstream: the floor.
    let t = Instant::now();
    for (name, _) in &specs {
        git(root, &["ls-remote", &daemon.url(&format!("{name}.git"))]);
    }
    let ls_remote = t.elapsed();

    // Plain git fetch --prune + push of each.
    let t = Instant::now();
    for (name, _) in &specs {
        let repo = plain.join(format!("{name}.git"));
        git(&repo, &["fetch", "-q", "--prune", "origin"]);
        git(
            &repo,
            &[
                "push",
                "-q",
                &format!(
                    "file://{}",
                    plain_down.join(format!("{name}.git")).display()
                ),
                "refs/heads/*:refs/heads/*",
                "refs/tags/*:refs/tags/*",
            ],
        );
    }
    let fetch_push = t.elapsed();

    // lorry, one run per mirror; count what it ran.
    let trace = Trace::new();
    let t = Instant::now();
    for (_, file) in &specs {
        lorry(&wa, &down, file, &trace);
    }
    let lorry_refresh = t.elapsed();
    let lines = trace.lines();
    let downstream_contacts = lines
        .iter()
        .filter(|l| l.contains(&down.display().to_string()))
        .count();
    let fetches = lines.iter().filter(|l| l.contains(" fetch ")).count();

    rows.push(Row {
        case: format!("refresh of {mirrors} unchanged mirrors"),
        lorry: lorry_refresh,
        baseline: "git ls-remote of each".into(),
        base: ls_remote,
        target: "≤ 1.2×",
    });
    rows.push(Row {
        case: format!("refresh of {mirrors} unchanged mirrors"),
        lorry: lorry_refresh,
        baseline: "git fetch --prune + git push of each".into(),
        base: fetch_push,
        target: "(for reference)",
    });

    println!();
    println!(
        "| {:<38} | {:>10} | {:<38} | {:>10} | {:>7} | {:<15} |",
        "case", "lorry", "plain git", "git time", "ratio", "target"
    );
    println!("|{}|", "-".repeat(38 + 10 + 38 + 10 + 7 + 15 + 17));
    for row in &rows {
        println!(
            "| {:<38} | {:>10} | {:<38} | {:>10} | {:>6.2}× | {:<15} |",
            row.case,
            secs(row.lorry),
            row.baseline,
            secs(row.base),
            row.lorry.as_secs_f64() / row.base.as_secs_f64().max(1e-9),
            row.target
        );
    }
    println!();
    println!(
        "unchanged refresh: {} git commands for {mirrors} mirrors, {fetches} fetches, {downstream_contacts} contacts with the downstream",
        lines.len()
    );
}
