//! A big upstream: first mirror with the resident memory of lorry and every
//! git it runs (peak of the process tree's summed RSS, sampled from /proc),
//! a first mirror killed in the middle and the run after it, and the
//! refresh after one new commit.
//!
//! `cargo bench -p lc-lorry --bench big_upstream`; the size with
//! `LORRY_BENCH_COMMITS` (default 300,000 commits of about 1 KiB of
//! barely compressible text each). The bench runs itself as `lorry` (with
//! `LORRY_BENCH_AS_LORRY=1`) so that lorry is a process of its own to
//! measure and kill. The upstream is served by `git daemon`, whose
//! processes are not counted.

#![expect(
    clippy::disallowed_methods,
    reason = "the bench runs git, git daemon and itself as lorry"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) -> String {
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
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `commits` commits on main, each rewriting one of 500 files with 1 KiB
/// of pseudo-random hex, and a tag every 1,000 commits.
fn generate(repo: &Path, commits: usize) {
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
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 1..=commits {
            let mut content = String::with_capacity(1100);
            for _ in 0..64 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                content.push_str(&format!("{state:016x}"));
            }
            content.push('\n');
            let message = format!("commit {i}\n");
            write!(
                stdin,
                "commit refs/heads/main\nmark :{i}\ncommitter Bench <b@example.com> {} +0000\ndata {}\n{message}M 644 inline d{}/f{}.txt\ndata {}\n{content}\n",
                1_600_000_000 + i,
                message.len(),
                i % 20,
                i % 500,
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
        let exec_path = git(base, &["--exec-path"]);
        let mut child = Command::new(PathBuf::from(exec_path).join("git-daemon"))
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
            std::thread::sleep(Duration::from_millis(10));
        }
        Self(child, port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (pid → (ppid, rss bytes)) of every process.
fn processes() -> BTreeMap<u32, (u32, u64)> {
    let page = 4096;
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the ")" closing the command name: state ppid ... rss is field 24.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
        let rss: u64 = fields.get(21).and_then(|f| f.parse().ok()).unwrap_or(0);
        all.insert(pid, (ppid, rss * page));
    }
    all
}

/// `root` and all its descendants.
fn tree_pids(root: u32) -> BTreeSet<u32> {
    let all = processes();
    let mut tree = BTreeSet::from([root]);
    loop {
        let before = tree.len();
        for (pid, (ppid, _)) in &all {
            if tree.contains(ppid) {
                tree.insert(*pid);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    tree
}

/// The summed RSS of `root` and all its descendants.
fn tree_rss(root: u32) -> u64 {
    let all = processes();
    tree_pids(root)
        .iter()
        .filter_map(|p| all.get(p))
        .map(|(_, r)| r)
        .sum()
}

struct Outcome {
    seconds: f64,
    peak_rss: u64,
    ok: bool,
}

/// Runs lorry (this program, as lorry) on `file`; with `kill_when`, kills
/// its process group as soon as that holds.
fn lorry(wa: &Path, down: &Path, file: &Path, kill_when: Option<&dyn Fn() -> bool>) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new(std::env::current_exe().expect("self"))
        .env("LORRY_BENCH_AS_LORRY", "1")
        .arg("--allow-local-upstreams")
        .arg(format!("--working-area={}", wa.display()))
        .arg(format!("--mirror-base-url-push=file://{}", down.display()))
        .args(["--bundle=never", "--tarball=never"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lorry");
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Outcome {
                seconds: start.elapsed().as_secs_f64(),
                peak_rss: peak,
                ok: status.success(),
            };
        }
        peak = peak.max(tree_rss(pid));
        if kill_when.is_some_and(|f| f()) {
            // As a minion's kill would: lorry and every git under it. Each
            // by its own positive pid, never a group or a negative number.
            for p in tree_pids(pid) {
                if p > 1 && p != pid && p != std::process::id() {
                    let _ = Command::new("kill")
                        .args(["-s", "KILL", &p.to_string()])
                        .status();
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            return Outcome {
                seconds: start.elapsed().as_secs_f64(),
                peak_rss: peak,
                ok: false,
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    if std::env::var_os("LORRY_BENCH_AS_LORRY").is_some() {
        let args: Vec<OsString> = std::iter::once(OsString::from("lorry"))
            .chain(std::env::args_os().skip(1))
            .collect();
        let code = lc_lorry::run(
            args,
            lc_git::Git::new(),
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        );
        std::process::exit(code);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let commits: usize = std::env::var("LORRY_BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    let t = Instant::now();
    generate(&served.join("big.git"), commits);
    let pack = dir_bytes(&served.join("big.git/objects"));
    println!(
        "generated {commits} commits, {:.0} MiB of objects, in {:.0} s",
        mib(pack),
        t.elapsed().as_secs_f64()
    );
    let daemon = Daemon::start(&served);
    let spec = format!(
        r#"{{"big/repo": {{"type": "git", "url": "git://127.0.0.1:{}/big.git"}}}}"#,
        daemon.1
    );
    let file = tmp.path().join("big.lorry");
    std::fs::write(&file, spec).expect("write");
    let init_down = |down: &Path| {
        std::fs::create_dir_all(down.join("big")).expect("mkdir");
        git(down, &["init", "-q", "--bare", "big/repo.git"]);
    };

    // 1. First mirror, measured.
    let (wa, down) = (tmp.path().join("wa1"), tmp.path().join("down1"));
    init_down(&down);
    let first = lorry(&wa, &down, &file, None);
    assert!(first.ok, "first mirror failed");
    println!(
        "first mirror: {:.1} s, peak RSS of lorry + git {:.0} MiB",
        first.seconds,
        mib(first.peak_rss)
    );

    // 2. Killed while the pack is arriving (git sends it after counting
    //    and compressing, and indexes it after), then run again.
    let (wa2, down2) = (tmp.path().join("wa2"), tmp.path().join("down2"));
    init_down(&down2);
    let mirror_objects = wa2.join("big%2Frepo/git/objects");
    let packs = mirror_objects.join("pack");
    let half = pack / 5;
    let arrived = || {
        std::fs::read_dir(&packs)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("tmp_pack_"))
            .any(|e| e.metadata().is_ok_and(|m| m.len() >= half))
    };
    let killed = lorry(&wa2, &down2, &file, Some(&arrived));
    let kept = dir_bytes(&mirror_objects);
    let resumed = lorry(&wa2, &down2, &file, None);
    assert!(resumed.ok, "the run after the kill failed");
    println!(
        "killed after {:.1} s with {:.0} MiB received; {:.0} MiB left after the kill; \
         next run {:.1} s (peak RSS {:.0} MiB)",
        killed.seconds,
        mib(half),
        mib(kept),
        resumed.seconds,
        mib(resumed.peak_rss)
    );

    // 3. One new commit upstream: the refresh.
    let work = tmp.path().join("work");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--branch",
            "main",
            &format!("file://{}", served.join("big.git").display()),
            "work",
        ],
    );
    std::fs::write(work.join("new.txt"), "one more\n").expect("write");
    git(&work, &["add", "new.txt"]);
    git(
        &work,
        &[
            "-c",
            "user.name=B",
            "-c",
            "user.email=b@example.com",
            "commit",
            "-q",
            "-m",
            "one more",
        ],
    );
    git(&work, &["push", "-q", "origin", "main"]);
    let before = dir_bytes(&wa.join("big%2Frepo/git/objects"));
    let refresh = lorry(&wa, &down, &file, None);
    assert!(refresh.ok, "refresh failed");
    let after = dir_bytes(&wa.join("big%2Frepo/git/objects"));
    println!(
        "refresh after one commit: {:.2} s, {} bytes more in the mirror, peak RSS {:.0} MiB",
        refresh.seconds,
        after.saturating_sub(before),
        mib(refresh.peak_rss)
    );
}
