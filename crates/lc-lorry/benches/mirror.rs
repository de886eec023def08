//! Speed of `lorry` beside plain git doing the same work, in the same run,
//! and beside an older `lorry` when one is named (before/after a change).
//!
//! 1. First mirror of a generated repository (default 100,000 commits;
//!    `LORRY_BENCH_COMMITS=0` leaves this and case 2 out): lorry vs `git
//!    clone --mirror` + `git push` of heads and tags.
//! 2. One new commit upstream, then a refresh of that repository, median of
//!    `LORRY_BENCH_ROUNDS` (default 5) rounds: lorry vs `git fetch --prune`
//!    + `git push` of a plain mirror.
//! 3. First mirror of N small repositories (default 1,000, each 5 commits),
//!    one lorry run per repository as the minion does: lorry vs `git clone
//!    --mirror` + `git push` of each.
//! 4. Refresh of the N unchanged mirrors: lorry vs a bare `git ls-remote`
//!    of each upstream (the floor of any refresh), and vs `git fetch
//!    --prune` + `git push` of each.
//!
//! lorry runs as a process of its own, as the minion starts it (this bench
//! runs itself as lorry). In cases 2 to 4 the contenders take turns (per
//! round, per repository), so that the load of a shared machine falls on
//! all of them alike. With `LORRY_BENCH_BEFORE=PATH`, PATH (an older
//! `lorry`, or this bench built from an older tree, which also acts as
//! lorry under `LORRY_BENCH_AS_LORRY=1`) does every case too, on its own
//! working area and downstream, interleaved with the current one.
//!
//! Upstreams are served by `git daemon` on 127.0.0.1; downstreams are local
//! bare repositories reached through file://.
//!
//! `cargo bench -p lc-lorry --bench mirror`; smaller sizes with
//! `LORRY_BENCH_COMMITS=20000 LORRY_BENCH_MIRRORS=200`.
//!
//! Targets (issue 4, part 10; issue 14, item 4): first mirror ≤ 1.1× the
//! git baseline; an unchanged refresh ≤ 1.2× `git ls-remote`, with no
//! connection to the downstream at all; a one-new-commit refresh of the
//! big repository ≤ 1.2× fetch + push.

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

use lc_git::Git;

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

/// A lorry program: this bench (as lorry) or an older one.
#[derive(Clone)]
struct Lorry {
    label: &'static str,
    program: PathBuf,
    /// Where its mirrors and downstreams live.
    wa: PathBuf,
    down: PathBuf,
}

impl Lorry {
    /// Runs lorry on one .lorry file; panics unless it exits 0. Returns
    /// the git commands it ran (from its `--timings` line).
    fn run(&self, file: &Path) -> usize {
        let out = Command::new(&self.program)
            .env("LORRY_BENCH_AS_LORRY", "1")
            .arg("--allow-local-upstreams")
            .arg(format!("--working-area={}", self.wa.display()))
            .arg(format!(
                "--mirror-base-url-push=file://{}",
                self.down.display()
            ))
            .args(["--bundle=never", "--tarball=never"])
            .args(if self.label == "lorry" {
                &["--timings"][..]
            } else {
                &[][..]
            })
            .arg(file)
            .output()
            .expect("lorry");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} failed: {stdout}{}",
            self.label,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .filter(|l| l.starts_with("lorry: timings: "))
            .filter_map(|l| {
                l.rsplit_once("; total ")?
                    .1
                    .split_once('(')?
                    .1
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum()
    }
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    case: String,
    who: &'static str,
    took: Duration,
    baseline: &'static str,
    base: Duration,
    target: &'static str,
}

/// One more commit on main of the bare repository `repo`.
fn add_commit(repo: &Path, n: usize) {
    let mut child = lc_git::git()
        .arg(format!("--git-dir={}", repo.display()))
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("fast-import");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let content = format!("round {n}\n");
        write!(
            stdin,
            "commit refs/heads/main\ncommitter Bench <b@example.com> {} +0000\ndata 6\nround\nfrom refs/heads/main^0\nM 644 inline rounds.txt\ndata {}\n{content}\ndone\n",
            1_700_000_000 + n,
            content.len()
        )
        .expect("write");
    }
    assert!(child.wait().expect("wait").success());
}

fn main() {
    if std::env::var_os("LORRY_BENCH_AS_LORRY").is_some() {
        let args: Vec<OsString> = std::iter::once(OsString::from("lorry"))
            .chain(std::env::args_os().skip(1))
            .collect();
        let code = lc_lorry::run(
            args,
            Git::new(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        );
        std::process::exit(code);
    }
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either way: run only when invoked as a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("mirror benchmark: run with `cargo bench -p lc-lorry --bench mirror`");
        return;
    }
    let commits = env_usize("LORRY_BENCH_COMMITS", 100_000);
    let mirrors = env_usize("LORRY_BENCH_MIRRORS", 1_000);
    let rounds = env_usize("LORRY_BENCH_ROUNDS", 5).max(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let served = root.join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    let daemon = Daemon::start(&served);
    let mut lorries = vec![Lorry {
        label: "lorry",
        program: std::env::current_exe().expect("self"),
        wa: root.join("wa"),
        down: root.join("down"),
    }];
    if let Some(before) = std::env::var_os("LORRY_BENCH_BEFORE") {
        lorries.push(Lorry {
            label: "before",
            program: PathBuf::from(before),
            wa: root.join("wa-before"),
            down: root.join("down-before"),
        });
    }
    let mut rows = Vec::new();

    if commits > 0 {
        // ---- 1. First mirror of a large repository.
        eprintln!("generating a repository of {commits} commits...");
        let t = Instant::now();
        let big = served.join("big.git");
        generate(&big, commits, 0);
        git(&big, &["repack", "-a", "-d", "-q"]);
        eprintln!("  generated in {}", secs(t.elapsed()));
        let big_url = daemon.url("big.git");

        // Plain git: clone --mirror, then push heads and tags.
        let base_dest = root.join("base-down").join("big.git");
        lc_git::init_bare(&base_dest).expect("init");
        let base_mirror = root.join("base-mirror.git");
        let base_push = |mirror: &Path| {
            git(
                mirror,
                &[
                    "push",
                    "-q",
                    &format!("file://{}", base_dest.display()),
                    "refs/heads/*:refs/heads/*",
                    "refs/tags/*:refs/tags/*",
                ],
            )
        };
        let t = Instant::now();
        git(
            root,
            &[
                "clone",
                "-q",
                "--mirror",
                &big_url,
                base_mirror.to_str().expect("utf8"),
            ],
        );
        base_push(&base_mirror);
        let base_first = t.elapsed();

        let spec = root.join("big.lorry");
        write_spec(&spec, "big", &big_url);
        for l in &lorries {
            lc_git::init_bare(&l.down.join("big.git")).expect("init");
            let t = Instant::now();
            l.run(&spec);
            rows.push(Row {
                case: format!("first mirror, {commits} commits"),
                who: l.label,
                took: t.elapsed(),
                baseline: "git clone --mirror + git push",
                base: base_first,
                target: "≤ 1.1×",
            });
        }

        // ---- 2. One new commit, then a refresh; rounds interleaved.
        let mut base_times = Vec::new();
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); lorries.len()];
        for round in 0..rounds {
            add_commit(&big, round);
            let t = Instant::now();
            git(&base_mirror, &["fetch", "-q", "--prune", "origin"]);
            base_push(&base_mirror);
            base_times.push(t.elapsed());
            for (i, l) in lorries.iter().enumerate() {
                let t = Instant::now();
                l.run(&spec);
                times[i].push(t.elapsed());
            }
        }
        let base = median(base_times);
        for (l, t) in lorries.iter().zip(times) {
            rows.push(Row {
                case: format!("refresh after 1 commit, {commits} commits (median of {rounds})"),
                who: l.label,
                took: median(t),
                baseline: "git fetch --prune + git push",
                base,
                target: "≤ 1.2×",
            });
        }
    }

    // ---- 3. First mirror of N small repositories.
    eprintln!("generating {mirrors} small upstreams...");
    let mut specs = Vec::new();
    for i in 0..mirrors {
        let name = format!("small{i}");
        generate(&served.join(format!("{name}.git")), 5, i + 1);
        for l in &lorries {
            lc_git::init_bare(&l.down.join(format!("{name}.git"))).expect("init");
        }
        let file = root.join(format!("{name}.lorry"));
        write_spec(&file, &name, &daemon.url(&format!("{name}.git")));
        specs.push((name, file));
    }
    let plain = root.join("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let plain_down = root.join("plain-down");
    for (name, _) in &specs {
        lc_git::init_bare(&plain_down.join(format!("{name}.git"))).expect("init");
    }
    let plain_push = |name: &str| {
        git(
            &plain.join(format!("{name}.git")),
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
    };
    // Each repository in turn by every contender, so that the load of a
    // shared machine falls on all of them alike.
    eprintln!("first mirror of each...");
    let mut git_first = Duration::ZERO;
    let mut firsts = vec![Duration::ZERO; lorries.len()];
    for (name, file) in &specs {
        let t = Instant::now();
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
        plain_push(name);
        git_first += t.elapsed();
        for (l, total) in lorries.iter().zip(firsts.iter_mut()) {
            let t = Instant::now();
            l.run(file);
            *total += t.elapsed();
        }
    }
    for (l, took) in lorries.iter().zip(firsts) {
        rows.push(Row {
            case: format!("first mirror of {mirrors} small repositories"),
            who: l.label,
            took,
            baseline: "git clone --mirror + git push of each",
            base: git_first,
            target: "≤ 1.1×",
        });
    }

    // ---- 4. Refresh of N unchanged mirrors.
    eprintln!("refresh of each...");
    let mut ls_remote = Duration::ZERO;
    let mut fetch_push = Duration::ZERO;
    let mut refreshes = vec![Duration::ZERO; lorries.len()];
    let mut unchanged_gits = 0;
    for (name, file) in &specs {
        let t = Instant::now();
        git(root, &["ls-remote", &daemon.url(&format!("{name}.git"))]);
        ls_remote += t.elapsed();
        let t = Instant::now();
        git(
            &plain.join(format!("{name}.git")),
            &["fetch", "-q", "--prune", "origin"],
        );
        plain_push(name);
        fetch_push += t.elapsed();
        for (l, total) in lorries.iter().zip(refreshes.iter_mut()) {
            let t = Instant::now();
            let gits = l.run(file);
            *total += t.elapsed();
            if l.label == "lorry" {
                unchanged_gits += gits;
            }
        }
    }
    for (l, took) in lorries.iter().zip(refreshes) {
        rows.push(Row {
            case: format!("refresh of {mirrors} unchanged mirrors"),
            who: l.label,
            took,
            baseline: "git ls-remote of each",
            base: ls_remote,
            target: "≤ 1.2×",
        });
        rows.push(Row {
            case: format!("refresh of {mirrors} unchanged mirrors"),
            who: l.label,
            took,
            baseline: "git fetch --prune + git push of each",
            base: fetch_push,
            target: "(for reference)",
        });
    }

    println!();
    println!(
        "| {:<52} | {:<6} | {:>10} | {:<38} | {:>10} | {:>7} | {:<15} |",
        "case", "who", "time", "plain git", "git time", "ratio", "target"
    );
    println!("|{}|", "-".repeat(52 + 6 + 10 + 38 + 10 + 7 + 15 + 20));
    for row in &rows {
        println!(
            "| {:<52} | {:<6} | {:>10} | {:<38} | {:>10} | {:>6.2}× | {:<15} |",
            row.case,
            row.who,
            secs(row.took),
            row.baseline,
            secs(row.base),
            row.took.as_secs_f64() / row.base.as_secs_f64().max(1e-9),
            row.target
        );
    }
    println!();
    println!(
        "unchanged refresh: {unchanged_gits} git commands for {mirrors} mirrors (lorry --timings)"
    );
}
