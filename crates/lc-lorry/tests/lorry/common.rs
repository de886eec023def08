//! Fixtures: real upstream repositories in temp dirs, `git daemon` on
//! loopback, a local bare downstream, and `lorry` run in-process with a
//! traced git.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lc_git::{Git, Trace};

/// A hermetic git for building fixtures.
pub fn git_cmd(dir: &Path) -> Command {
    let mut cmd = lc_git::git();
    cmd.current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com");
    cmd
}

/// Runs git in `dir`; panics with stderr on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().expect("spawn git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Every ref of a repository (bare or not), name → oid.
pub fn refs(repo: &Path) -> BTreeMap<String, String> {
    let text = git(repo, &["for-each-ref", "--format=%(refname) %(objectname)"]);
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

/// Refs under `prefix`.
pub fn refs_under(repo: &Path, prefix: &str) -> BTreeMap<String, String> {
    refs(repo)
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .collect()
}

/// Branches and tags.
pub fn heads_and_tags(repo: &Path) -> BTreeMap<String, String> {
    refs(repo)
        .into_iter()
        .filter(|(name, _)| name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
        .collect()
}

/// An upstream repository with a work tree, on branch `main`.
pub struct Upstream {
    pub dir: PathBuf,
    counter: usize,
}

impl Upstream {
    pub fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("mkdir upstream");
        git(&dir, &["init", "-q", "-b", "main"]);
        let mut up = Self { dir, counter: 0 };
        up.commit("first");
        up
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// A new commit on the current branch; returns its oid.
    pub fn commit(&mut self, message: &str) -> String {
        self.counter += 1;
        std::fs::write(
            self.dir.join("file.txt"),
            format!("{message} {}\n", self.counter),
        )
        .expect("write");
        git(&self.dir, &["add", "file.txt"]);
        git(&self.dir, &["commit", "-q", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.dir, &["rev-parse", "HEAD"])
    }

    pub fn branch(&self, name: &str) {
        git(&self.dir, &["branch", name]);
    }

    pub fn checkout(&self, name: &str) {
        git(&self.dir, &["checkout", "-q", name]);
    }

    pub fn tag(&self, name: &str) {
        git(&self.dir, &["tag", "-a", "-m", name, name]);
    }

    /// Rewrites the current branch: drops its last commit, adds another.
    pub fn force_rewrite(&mut self) -> String {
        git(&self.dir, &["reset", "-q", "--hard", "HEAD~1"]);
        self.commit("rewritten")
    }

    pub fn delete_branch(&self, name: &str) {
        git(&self.dir, &["branch", "-q", "-D", name]);
    }

    pub fn heads_and_tags(&self) -> BTreeMap<String, String> {
        heads_and_tags(&self.dir)
    }
}

/// `<git --exec-path>/git-daemon`.
/// Pushes (with force) a stranger's unrelated one-commit history onto the
/// `main` of the bare repository `down`, as someone working behind lorry's
/// back would; answers the stranger's commit. The stranger's repository is
/// made in `dir`.
pub fn stranger_pushes_main(dir: PathBuf, down: &Path) -> String {
    let mut other = Upstream::new(dir);
    other.commit("a stranger's work");
    git(
        &other.dir,
        &[
            "push",
            "-q",
            "--force",
            &format!("file://{}", down.display()),
            "main:main",
        ],
    );
    other.head()
}

pub fn git_daemon_program() -> PathBuf {
    let exec_path = lc_git::git()
        .arg("--exec-path")
        .output()
        .expect("git --exec-path");
    PathBuf::from(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon")
}

/// A `git daemon` serving `base` on 127.0.0.1 and an ephemeral port; killed
/// on drop.
pub struct Daemon {
    child: Child,
    pub port: u16,
}

impl Daemon {
    pub fn start(base: &Path) -> Self {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        // Run git-daemon itself: `git daemon` would leave it running as an
        // orphan when killed.
        let child = Command::new(git_daemon_program())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args([
                "--reuseaddr",
                "--export-all",
                "--informative-errors",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn git daemon");
        let mut daemon = Self { child, port };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("git daemon exited early: {status}");
            }
            assert!(Instant::now() < deadline, "git daemon not listening");
            std::thread::yield_now();
        }
    }

    /// `git://127.0.0.1:<port>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("git://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One run of lorry: exit code, stdout, stderr and the git commands run.
pub struct Run {
    pub code: i32,
    pub out: String,
    pub err: String,
    pub git: Vec<String>,
}

impl Run {
    pub fn all_output(&self) -> String {
        format!("{}{}", self.out, self.err)
    }
}

/// Runs lorry in-process with `args` (no program name).
/// Runs lorry in-process with `--allow-local-upstreams` (most upstreams
/// here are file:// URLs) and `args`.
pub fn lorry(args: &[&str]) -> Run {
    let mut all = vec!["--allow-local-upstreams"];
    all.extend_from_slice(args);
    lorry_strict(&all)
}

/// Runs lorry in-process with exactly `args`.
pub fn lorry_strict(args: &[&str]) -> Run {
    let trace = Trace::new();
    let git = Git::new().traced(trace.clone());
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv: Vec<OsString> = std::iter::once("lorry")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    let code = lc_lorry::run(argv, git, &mut out, &mut err);
    Run {
        code,
        out: String::from_utf8(out).expect("utf8 stdout"),
        err: String::from_utf8(err).expect("utf8 stderr"),
        git: trace.lines(),
    }
}

/// A test area: working area, downstream base, lorry files.
pub struct Area {
    pub tmp: tempfile::TempDir,
}

impl Area {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn working_area(&self) -> PathBuf {
        self.path().join("wa")
    }

    pub fn downstream_base(&self) -> PathBuf {
        self.path().join("down")
    }

    /// The downstream repository of `name`, created bare (as the webapp
    /// would).
    pub fn downstream(&self, name: &str) -> PathBuf {
        let repo = self.downstream_base().join(format!("{name}.git"));
        lc_git::init_bare(&repo).expect("init downstream");
        repo
    }

    /// The bare mirror lorry keeps for `name`.
    pub fn mirror(&self, name: &str) -> PathBuf {
        self.working_area()
            .join(lc_base::spec::working_dir_name(name))
            .join("git")
    }

    /// Writes a .lorry file.
    pub fn lorry_file(&self, file: &str, json: &serde_json::Value) -> PathBuf {
        let path = self.path().join(file);
        std::fs::write(&path, serde_json::to_string_pretty(json).expect("json")).expect("write");
        path
    }

    /// Runs lorry on `files` with the standard working area and downstream,
    /// plus `extra` options.
    pub fn run(&self, files: &[&Path], extra: &[&str]) -> Run {
        let wa = format!("--working-area={}", self.working_area().display());
        let push = format!(
            "--mirror-base-url-push=file://{}",
            self.downstream_base().display()
        );
        let mut args: Vec<String> =
            vec![wa, push, "--bundle=never".into(), "--tarball=never".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(files.iter().map(|f| f.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        lorry(&refs)
    }
}

/// Whether any traced git command did `what` (e.g. "fetch", "push").
pub fn ran(run: &Run, what: &str) -> bool {
    run.git.iter().any(|line| {
        line.split_whitespace().next() == Some(what) || line.contains(&format!(" {what} "))
    })
}
