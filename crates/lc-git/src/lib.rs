//! The only crate that runs `git`.
//!
//! Every invocation is hermetic and non-interactive: no system or user git
//! configuration, no terminal prompts, `LC_ALL=C`. Settings (TLS
//! verification, proxies, protocol version) reach git through
//! `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, never through
//! argv, so a token in a setting cannot show up in a process listing.
//! Everything that could hold a credential (argv, stderr) is redacted with
//! [`lc_core::redact`] before it reaches an error message.
//!
//! Results of network commands are parsed from their porcelain output into
//! typed values ([`RemoteRef`], [`FetchedRef`], [`PushedRef`]).

pub mod confgit;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use lc_core::redact::redact;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("git {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("git {args} printed a line that cannot be parsed: {line:?}")]
    Parse { args: String, line: String },
}

/// A git object name, as 40 (SHA-1) or 64 (SHA-256) lower-case hex digits.
pub type Oid = String;

/// The environment shared by the git commands of one run: settings passed
/// as `GIT_CONFIG_*` variables, extra environment variables, and an optional
/// trace that records every invocation (redacted).
#[derive(Clone, Default)]
pub struct Git {
    config: Vec<(String, String)>,
    env: Vec<(String, OsString)>,
    trace: Option<Trace>,
}

/// Names the environment variables without their values: they may hold
/// credentials (see [`Git::with_url_credentials`]).
impl std::fmt::Debug for Git {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("Git")
            .field("config", &self.config)
            .field("env", &env)
            .field("traced", &self.trace.is_some())
            .finish()
    }
}

/// A shared record of the git commands run, one redacted line each (the
/// arguments joined by spaces). Tests use it to prove what did, and what did
/// not, happen.
#[derive(Clone, Debug, Default)]
pub struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    /// The commands recorded so far.
    pub fn lines(&self) -> Vec<String> {
        match self.0.lock() {
            Ok(lines) => lines.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn push(&self, line: String) {
        match self.0.lock() {
            Ok(mut lines) => lines.push(line),
            Err(poisoned) => poisoned.into_inner().push(line),
        }
    }
}

impl Git {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a git setting, passed through the environment.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Adds an environment variable for every command.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// For an `http(s)` URL that carries credentials (`https://user:pass@host/`):
    /// the URL without them, and a `Git` that hands them to git through its
    /// environment, with a credential helper that reads two variables. So
    /// they appear neither in a command line, which every user of the
    /// machine can read, nor in a repository's configuration. Any other URL
    /// comes back as it is, with this `Git`.
    pub fn with_url_credentials(&self, url: &str) -> (Git, String) {
        let Some((bare, user, password)) = split_credentials(url) else {
            return (self.clone(), url.to_owned());
        };
        let git = self
            .clone()
            .config("credential.helper", "")
            .config(
                "credential.helper",
                "!f() { test \"$1\" = get || exit 0; \
                 printf 'username=%s\\npassword=%s\\n' \"$LORRY_GIT_USERNAME\" \"$LORRY_GIT_PASSWORD\"; }; f",
            )
            .env("LORRY_GIT_USERNAME", user)
            .env("LORRY_GIT_PASSWORD", password);
        (git, bare)
    }

    /// Records every command in `trace`.
    pub fn traced(mut self, trace: Trace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// A new `git` command with this environment.
    pub fn command(&self) -> GitCommand {
        let mut cmd = git();
        let mut count = 0usize;
        for (key, value) in &self.config {
            cmd.env(format!("GIT_CONFIG_KEY_{count}"), key);
            cmd.env(format!("GIT_CONFIG_VALUE_{count}"), value);
            count += 1;
        }
        cmd.env("GIT_CONFIG_COUNT", count.to_string());
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        GitCommand {
            cmd,
            shown: Vec::new(),
            trace: self.trace.clone(),
        }
    }

    /// A new `git --git-dir=<repo>` command.
    pub fn in_repo(&self, repo: &Path) -> GitCommand {
        let mut cmd = self.command();
        let mut dir = OsString::from("--git-dir=");
        dir.push(repo.as_os_str());
        cmd.arg(dir);
        cmd
    }

    /// Lists the refs of a remote repository (`git ls-remote --refs`, protocol
    /// v2 where the server speaks it), limited to the given ref prefixes when
    /// any are given. Peeled tags and `HEAD` are not listed.
    pub fn ls_remote(&self, url: &str, prefixes: &[&str]) -> Result<Vec<RemoteRef>, GitError> {
        let (git, url) = self.with_url_credentials(url);
        let url = url.as_str();
        let mut cmd = git.command();
        cmd.arg("-c").arg("protocol.version=2");
        cmd.arg("ls-remote").arg("--refs");
        // With protocol v2 the server lists only the asked-for namespaces;
        // --heads and --tags are the only prefixes ls-remote can send
        // (its patterns match the tail of a name, client side), so narrower
        // prefixes are also filtered here.
        let under = |ns: &str| {
            prefixes
                .iter()
                .all(|p| p.starts_with("refs/heads/") || p.starts_with("refs/tags/"))
                && prefixes.iter().any(|p| p.starts_with(ns))
        };
        if !prefixes.is_empty() && under("refs/heads/") {
            cmd.arg("--heads");
        }
        if !prefixes.is_empty() && under("refs/tags/") {
            cmd.arg("--tags");
        }
        cmd.arg("--").arg(url);
        let out = cmd.run()?;
        let mut refs = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((oid, name)) = line.split_once('\t') else {
                return Err(cmd.parse_error(line));
            };
            if !is_oid(oid) {
                return Err(cmd.parse_error(line));
            }
            if prefixes.is_empty() || prefixes.iter().any(|p| name.starts_with(p)) {
                refs.push(RemoteRef {
                    name: name.to_owned(),
                    oid: oid.to_owned(),
                });
            }
        }
        Ok(refs)
    }

    /// Fetches `refspecs` from `url` into the bare repository `repo`, pruning
    /// the local refs that the refspecs cover and the remote no longer has.
    /// Ref updates are atomic: a fetch that fails changes no ref. No tags are
    /// fetched beyond those the refspecs name.
    pub fn fetch(
        &self,
        repo: &Path,
        url: &str,
        refspecs: &[String],
    ) -> Result<Vec<FetchedRef>, GitError> {
        let (git, url) = self.with_url_credentials(url);
        let mut cmd = git.in_repo(repo);
        cmd.arg("-c").arg("protocol.version=2");
        cmd.args([
            "fetch",
            "--porcelain",
            "--prune",
            "--atomic",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-auto-gc",
            "--no-auto-maintenance",
            "--no-progress",
            "--",
        ]);
        cmd.arg(url);
        cmd.args(refspecs);
        let out = cmd.run()?;
        let mut fetched = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match parse_fetch_line(line) {
                Some(r) => fetched.push(r),
                None => return Err(cmd.parse_error(line)),
            }
        }
        Ok(fetched)
    }

    /// Pushes explicit `refspecs` from `repo` to `url`, atomically when
    /// `atomic`, with each of `push_options` as `--push-option`. Returns the
    /// status of each ref; a push that the remote rejected in part is an
    /// error naming the rejected refs.
    pub fn push(
        &self,
        repo: &Path,
        url: &str,
        refspecs: &[String],
        push_options: &[String],
        atomic: bool,
    ) -> Result<Vec<PushedRef>, GitError> {
        self.push_inner(repo, url, refspecs, &[], push_options, atomic)
    }

    /// Pushes `refspecs` atomically, each ref allowed to move only from the
    /// value its [`Lease`] expects (`--force-with-lease`), so a downstream
    /// changed since it was listed makes the whole push fail.
    pub fn push_with_leases(
        &self,
        repo: &Path,
        url: &str,
        refspecs: &[String],
        leases: &[Lease],
        push_options: &[String],
    ) -> Result<Vec<PushedRef>, GitError> {
        match self.push_inner(repo, url, refspecs, leases, push_options, true) {
            // Old servers cannot do atomic pushes; the refs still go in one
            // session, each checked against its lease.
            Err(GitError::Failed { stderr, .. })
                if stderr.contains("does not support --atomic") =>
            {
                self.push_inner(repo, url, refspecs, leases, push_options, false)
            }
            other => other,
        }
    }

    fn push_inner(
        &self,
        repo: &Path,
        url: &str,
        refspecs: &[String],
        leases: &[Lease],
        push_options: &[String],
        atomic: bool,
    ) -> Result<Vec<PushedRef>, GitError> {
        let (git, url) = self.with_url_credentials(url);
        let mut cmd = git.in_repo(repo);
        cmd.args(["push", "--porcelain", "--no-progress"]);
        if atomic {
            cmd.arg("--atomic");
        }
        for lease in leases {
            cmd.arg(format!(
                "--force-with-lease={}:{}",
                lease.name,
                lease.expect.as_deref().unwrap_or("")
            ));
        }
        for option in push_options {
            cmd.arg(format!("--push-option={option}"));
        }
        cmd.arg("--").arg(url);
        cmd.args(refspecs);
        let out = cmd.output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut pushed = Vec::new();
        for line in stdout.lines() {
            if line.starts_with("To ") || line == "Done" || line.is_empty() {
                continue;
            }
            match parse_push_line(line) {
                Some(r) => pushed.push(r),
                None => return Err(cmd.parse_error(line)),
            }
        }
        let rejected: Vec<&PushedRef> = pushed
            .iter()
            .filter(|r| r.status == PushStatus::Rejected)
            .collect();
        if !out.status.success() || !rejected.is_empty() {
            let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            for r in rejected {
                if !stderr.is_empty() {
                    stderr.push('\n');
                }
                stderr.push_str(&format!("rejected {}: {}", r.remote, r.summary));
            }
            return Err(cmd.failed(&stderr));
        }
        Ok(pushed)
    }

    /// The refs of `repo` under the given prefixes (all refs when none is
    /// given), by name.
    pub fn for_each_ref(
        &self,
        repo: &Path,
        prefixes: &[&str],
    ) -> Result<BTreeMap<String, Oid>, GitError> {
        let mut cmd = self.in_repo(repo);
        cmd.args(["for-each-ref", "--format=%(objectname) %(refname)", "--"]);
        cmd.args(prefixes);
        let out = cmd.run()?;
        let mut refs = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.split_once(' ') {
                Some((oid, name)) if is_oid(oid) => {
                    refs.insert(name.to_owned(), oid.to_owned());
                }
                _ => return Err(cmd.parse_error(line)),
            }
        }
        Ok(refs)
    }

    /// Applies `updates` to the refs of `repo` in one transaction: either all
    /// of them happen or none does.
    pub fn update_refs(&self, repo: &Path, updates: &[RefUpdate]) -> Result<(), GitError> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut input = String::new();
        input.push_str("start\n");
        for update in updates {
            match update {
                RefUpdate::Set { name, oid } => {
                    input.push_str(&format!("update {name} {oid}\n"));
                }
                RefUpdate::Delete { name } => input.push_str(&format!("delete {name}\n")),
            }
        }
        input.push_str("prepare\ncommit\n");
        let mut cmd = self.in_repo(repo);
        cmd.args(["update-ref", "--stdin"]);
        cmd.run_with_input(input.as_bytes())?;
        Ok(())
    }

    /// Whether `ancestor` is an ancestor of (or equal to) `descendant` in
    /// `repo`. Both objects must be present.
    pub fn is_ancestor(
        &self,
        repo: &Path,
        ancestor: &str,
        descendant: &str,
    ) -> Result<bool, GitError> {
        let mut cmd = self.in_repo(repo);
        cmd.args(["merge-base", "--is-ancestor", ancestor, descendant]);
        let out = cmd.output()?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(cmd.failed(String::from_utf8_lossy(&out.stderr).trim())),
        }
    }

    /// Those of `oids` that are not present in `repo`.
    pub fn missing_objects(&self, repo: &Path, oids: &[&str]) -> Result<Vec<Oid>, GitError> {
        if oids.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = String::new();
        for oid in oids {
            input.push_str(oid);
            input.push('\n');
        }
        let mut cmd = self.in_repo(repo);
        cmd.args(["cat-file", "--batch-check=%(objectname)"]);
        let out = cmd.run_with_input(input.as_bytes())?;
        let mut missing = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(oid) = line.strip_suffix(" missing") {
                missing.push(oid.to_owned());
            }
        }
        Ok(missing)
    }

    /// `git init --bare` at `path` (missing parents are made); an existing
    /// repository is left as it is.
    pub fn init_bare(&self, path: &Path) -> Result<(), GitError> {
        if path.join("HEAD").is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(path)?;
        let mut cmd = self.command();
        cmd.args(["init", "--bare", "--quiet"]).arg(path);
        cmd.run()?;
        Ok(())
    }

    /// Packs all objects of `repo` into one pack, as the original Lorry did
    /// (`repack -a -d --depth=250 --window=250`, window memory 128 MiB), and
    /// removes loose objects that are now packed.
    pub fn repack(&self, repo: &Path) -> Result<(), GitError> {
        let mut cmd = self.in_repo(repo);
        cmd.args(["-c", "pack.windowMemory=128m"]);
        cmd.args(["repack", "-a", "-d", "-q", "--depth=250", "--window=250"]);
        cmd.run()?;
        let mut prune = self.in_repo(repo);
        prune.args(["prune-packed", "-q"]);
        prune.run()?;
        Ok(())
    }

    /// Writes a bundle of the branches and tags of `repo` to `file`.
    pub fn bundle_create(&self, repo: &Path, file: &Path) -> Result<(), GitError> {
        let mut cmd = self.in_repo(repo);
        cmd.args(["bundle", "create", "-q"]).arg(file);
        cmd.args(["--branches", "--tags"]);
        cmd.run()?;
        Ok(())
    }

    /// Runs `git fast-import` in `repo` with `stream` as its input.
    pub fn fast_import(&self, repo: &Path, stream: &[u8]) -> Result<(), GitError> {
        let mut cmd = self.in_repo(repo);
        cmd.args(["fast-import", "--quiet", "--done"]);
        cmd.run_with_input(stream)?;
        Ok(())
    }
}

/// Splits the credentials off an `http(s)` URL: the URL without them, the
/// user name and the password, percent-decoded. `None` when there are none.
fn split_credentials(url: &str) -> Option<(String, String, String)> {
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let at = authority.rfind('@')?;
    let (user, password) = match authority[..at].split_once(':') {
        Some((user, password)) => (user, password),
        None => (&authority[..at], ""),
    };
    let bare = format!(
        "{scheme}://{}{}",
        &authority[at + 1..],
        &rest[authority_end..]
    );
    Some((bare, percent_decode(user), percent_decode(password)))
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A bare `git` command with a hermetic environment and no settings.
pub fn git() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_CONFIG_PARAMETERS")
        .env_remove("GIT_CONFIG")
        .stdin(Stdio::null());
    cmd
}

/// Creates a bare repository at `path`, with missing parents; an existing
/// repository is left as it is.
pub fn init_bare(path: &Path) -> Result<(), GitError> {
    Git::new().init_bare(path)
}

/// One `git` invocation; its arguments are kept, redacted, for messages.
pub struct GitCommand {
    cmd: Command,
    shown: Vec<String>,
    trace: Option<Trace>,
}

impl std::fmt::Debug for GitCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "git {}", self.shown())
    }
}

impl GitCommand {
    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Self {
        let arg = arg.into();
        if !arg.to_string_lossy().starts_with("--git-dir=") {
            self.shown.push(redact(&arg.to_string_lossy()).into_owned());
        }
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    /// Sets an environment variable for this command only.
    pub fn env(&mut self, key: &str, value: impl Into<OsString>) -> &mut Self {
        self.cmd.env(key, value.into());
        self
    }

    /// Runs in `dir` rather than the current directory.
    pub fn current_dir(&mut self, dir: &Path) -> &mut Self {
        self.cmd.current_dir(dir);
        self
    }

    /// The arguments, redacted, joined by spaces.
    pub fn shown(&self) -> String {
        self.shown.join(" ")
    }

    fn record(&self) {
        if let Some(trace) = &self.trace {
            trace.push(self.shown());
        }
    }

    fn failed(&self, stderr: &str) -> GitError {
        GitError::Failed {
            args: self.shown(),
            stderr: redact(stderr.trim()).into_owned(),
        }
    }

    fn parse_error(&self, line: &str) -> GitError {
        GitError::Parse {
            args: self.shown(),
            line: redact(line).into_owned(),
        }
    }

    /// Runs to completion and returns the output whatever the exit status.
    pub fn output(&mut self) -> Result<Output, GitError> {
        self.record();
        Ok(self.cmd.output()?)
    }

    /// Runs to completion; a non-zero exit is an error carrying stderr.
    pub fn run(&mut self) -> Result<Output, GitError> {
        let out = self.output()?;
        if !out.status.success() {
            return Err(self.failed(&String::from_utf8_lossy(&out.stderr)));
        }
        Ok(out)
    }

    /// Runs to completion with `input` on stdin; a non-zero exit is an
    /// error carrying stderr.
    pub fn run_with_input(&mut self, input: &[u8]) -> Result<Output, GitError> {
        self.record();
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn()?;
        let stdin = child.stdin.take();
        // Write from another thread so that a child that fills its stdout
        // pipe before reading all of stdin cannot deadlock us.
        let owned = input.to_vec();
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            if let Some(mut stdin) = stdin {
                stdin.write_all(&owned)?;
            }
            Ok(())
        });
        let out = child.wait_with_output()?;
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("stdin writer panicked")));
        if !out.status.success() {
            return Err(self.failed(&String::from_utf8_lossy(&out.stderr)));
        }
        written?;
        Ok(out)
    }

    /// Starts the command with `stdin` connected to a pipe the caller
    /// writes, and stdout and stderr captured. Finish with
    /// [`GitCommand::wait`].
    pub fn spawn_with_stdin(&mut self, stdin: Stdio) -> Result<Child, GitError> {
        self.record();
        self.cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(self.cmd.spawn()?)
    }

    /// Waits for a child from [`GitCommand::spawn_with_stdin`]; a non-zero
    /// exit is an error carrying stderr.
    pub fn wait(&self, child: Child) -> Result<Output, GitError> {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(self.failed(&String::from_utf8_lossy(&out.stderr)));
        }
        Ok(out)
    }
}

/// A ref listed by `ls-remote`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub oid: Oid,
}

/// How `fetch --porcelain` says a local ref changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchStatus {
    FastForward,
    Forced,
    Pruned,
    TagUpdate,
    New,
    Rejected,
    UpToDate,
}

/// One line of `fetch --porcelain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedRef {
    pub status: FetchStatus,
    pub old: Oid,
    pub new: Oid,
    pub local: String,
}

fn parse_fetch_line(line: &str) -> Option<FetchedRef> {
    let flag = line.chars().next()?;
    let status = match flag {
        ' ' => FetchStatus::FastForward,
        '+' => FetchStatus::Forced,
        '-' => FetchStatus::Pruned,
        't' => FetchStatus::TagUpdate,
        '*' => FetchStatus::New,
        '!' => FetchStatus::Rejected,
        '=' => FetchStatus::UpToDate,
        _ => return None,
    };
    let rest = line.get(1..)?.strip_prefix(' ')?;
    let mut parts = rest.splitn(3, ' ');
    let old = parts.next()?;
    let new = parts.next()?;
    let local = parts.next()?;
    if !is_oid(old) || !is_oid(new) || local.is_empty() {
        return None;
    }
    Some(FetchedRef {
        status,
        old: old.to_owned(),
        new: new.to_owned(),
        local: local.to_owned(),
    })
}

/// How `push --porcelain` says a remote ref changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushStatus {
    FastForward,
    Forced,
    Deleted,
    New,
    Rejected,
    UpToDate,
}

/// One ref line of `push --porcelain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedRef {
    pub status: PushStatus,
    pub local: String,
    pub remote: String,
    pub summary: String,
}

fn parse_push_line(line: &str) -> Option<PushedRef> {
    let mut chars = line.chars();
    let status = match chars.next()? {
        ' ' => PushStatus::FastForward,
        '+' => PushStatus::Forced,
        '-' => PushStatus::Deleted,
        '*' => PushStatus::New,
        '!' => PushStatus::Rejected,
        '=' => PushStatus::UpToDate,
        _ => return None,
    };
    let rest = line.get(1..)?.strip_prefix('\t')?;
    let (refs, summary) = rest.split_once('\t')?;
    let (local, remote) = refs.split_once(':')?;
    Some(PushedRef {
        status,
        local: local.to_owned(),
        remote: remote.to_owned(),
        summary: summary.to_owned(),
    })
}

/// What a pushed ref must be on the remote for the push to go ahead:
/// `expect: None` means it must not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub expect: Option<Oid>,
}

/// One change in a ref transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefUpdate {
    Set { name: String, oid: Oid },
    Delete { name: String },
}

/// Whether `s` looks like a full object name.
pub fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The number of pack files in the bare repository `repo`.
pub fn pack_count(repo: &Path) -> std::io::Result<usize> {
    let dir: PathBuf = repo.join("objects/pack");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut count = 0;
    for entry in entries {
        if entry?.path().extension().is_some_and(|ext| ext == "pack") {
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod credential_tests {
    use super::*;

    #[test]
    fn credentials_are_split_off_http_urls_only() {
        let split = |url: &str| split_credentials(url);
        assert_eq!(
            split("https://alice:s%40cret@git.example.com:8443/a/b.git?x=1"),
            Some((
                "https://git.example.com:8443/a/b.git?x=1".into(),
                "alice".into(),
                "s@cret".into()
            ))
        );
        assert_eq!(
            split("HTTP://tok@h/x"),
            Some(("HTTP://h/x".into(), "tok".into(), String::new()))
        );
        assert_eq!(
            split("https://h/path@with-at"),
            None,
            "an @ after the host is not userinfo"
        );
        assert_eq!(split("ssh://git@h/x"), None);
        assert_eq!(split("git://h/x"), None);
        assert_eq!(split("/local/path"), None);
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn credentials_go_through_the_environment() {
        let (git, url) = Git::new().with_url_credentials("https://u:pw@h/x.git");
        assert_eq!(url, "https://h/x.git");
        let cmd = git.command();
        let env: Vec<(String, String)> = cmd
            .cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
            .collect();
        assert!(env.contains(&("LORRY_GIT_PASSWORD".into(), "pw".into())));
        assert!(env.contains(&("LORRY_GIT_USERNAME".into(), "u".into())));
        assert!(
            env.iter().any(
                |(k, v)| k.starts_with("GIT_CONFIG_VALUE_") && v.contains("LORRY_GIT_PASSWORD")
            )
        );
        assert!(
            !cmd.cmd
                .get_args()
                .any(|a| a.to_string_lossy().contains("pw"))
        );
        let shown = format!("{git:?}");
        assert!(
            shown.contains("LORRY_GIT_PASSWORD") && !shown.contains("pw\""),
            "{shown}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn init_bare_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("a/b.git");
        init_bare(&repo).expect("init");
        assert!(repo.join("HEAD").is_file());
        std::fs::write(repo.join("description"), "kept").expect("write");
        init_bare(&repo).expect("again");
        assert_eq!(
            std::fs::read_to_string(repo.join("description")).expect("read"),
            "kept"
        );
    }

    #[test]
    fn fetch_porcelain_lines_parse() {
        let line = format!("  {A} {B} refs/heads/main");
        let r = parse_fetch_line(&line).expect("ff");
        assert_eq!(r.status, FetchStatus::FastForward);
        assert_eq!(r.local, "refs/heads/main");
        let r = parse_fetch_line(&format!("+ {A} {B} refs/x")).expect("forced");
        assert_eq!(r.status, FetchStatus::Forced);
        assert_eq!((r.old.as_str(), r.new.as_str()), (A, B));
        assert!(parse_fetch_line("? a b c").is_none());
        assert!(parse_fetch_line(&format!("* {A} nothex refs/x")).is_none());
        assert!(parse_fetch_line("").is_none());
    }

    #[test]
    fn push_porcelain_lines_parse() {
        let r = parse_push_line("*\trefs/heads/a:refs/heads/a\t[new branch]").expect("new");
        assert_eq!(r.status, PushStatus::New);
        assert_eq!(r.remote, "refs/heads/a");
        let r = parse_push_line("!\trefs/heads/b:refs/heads/b\t[rejected] (non-fast-forward)")
            .expect("rejected");
        assert_eq!(r.status, PushStatus::Rejected);
        let r = parse_push_line("-\t:refs/heads/c\t[deleted]").expect("deleted");
        assert_eq!((r.local.as_str(), r.remote.as_str()), ("", "refs/heads/c"));
        assert!(parse_push_line("x\ta:b\tc").is_none());
        assert!(parse_push_line("*").is_none());
    }

    #[test]
    fn settings_travel_in_the_environment_not_argv() {
        let git = Git::new().config("http.extraHeader", "Authorization: secret-token");
        let cmd = git.command();
        let envs: Vec<_> = cmd
            .cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(envs.contains(&("GIT_CONFIG_COUNT".into(), Some("1".into()))));
        assert!(envs.contains(&(
            "GIT_CONFIG_VALUE_0".into(),
            Some("Authorization: secret-token".into())
        )));
        assert!(cmd.cmd.get_args().next().is_none());
    }

    #[test]
    fn errors_are_redacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("r.git");
        init_bare(&repo).expect("init");
        let err = Git::new()
            .fetch(
                &repo,
                "http://user:hunter2@127.0.0.1:1/x.git",
                &["refs/heads/*:refs/heads/*".into()],
            )
            .expect_err("no server on port 1");
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        // Credentials went to git through its environment: not even masked
        // in its command line.
        assert!(text.contains("-- http://127.0.0.1:1/x.git"), "{text}");
    }

    #[test]
    fn local_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let up = dir.path().join("up.git");
        let down = dir.path().join("down.git");
        let git = Git::new();
        git.init_bare(&up).expect("init up");
        git.init_bare(&down).expect("init down");
        let stream = b"commit refs/heads/main\ncommitter T <t@e> 0 +0000\ndata 2\nm\nM 644 inline f\ndata 1\nx\ndone\n";
        git.fast_import(&up, stream).expect("fast-import");
        let url = format!("file://{}", up.display());
        let remote = git.ls_remote(&url, &["refs/heads/"]).expect("ls-remote");
        assert_eq!(remote.len(), 1);
        assert_eq!(remote[0].name, "refs/heads/main");

        let fetched = git
            .fetch(&down, &url, &["+refs/heads/*:refs/staging/*".into()])
            .expect("fetch");
        assert_eq!(fetched.len(), 1);
        assert_eq!(fetched[0].status, FetchStatus::New);
        assert_eq!(fetched[0].new, remote[0].oid);
        let refs = git.for_each_ref(&down, &["refs/staging/"]).expect("refs");
        assert_eq!(refs.get("refs/staging/main"), Some(&remote[0].oid));

        git.update_refs(
            &down,
            &[
                RefUpdate::Set {
                    name: "refs/heads/copy".into(),
                    oid: remote[0].oid.clone(),
                },
                RefUpdate::Delete {
                    name: "refs/staging/main".into(),
                },
            ],
        )
        .expect("update");
        let refs = git.for_each_ref(&down, &[]).expect("refs");
        assert_eq!(refs.len(), 1);
        assert!(
            git.is_ancestor(&down, &remote[0].oid, &remote[0].oid)
                .expect("anc")
        );
        assert_eq!(
            git.missing_objects(&down, &[&remote[0].oid, A])
                .expect("missing"),
            vec![A.to_owned()]
        );

        let pushed = git
            .push(
                &down,
                &url,
                &[format!("{}:refs/heads/pushed", remote[0].oid)],
                &[],
                true,
            )
            .expect("push");
        assert_eq!(pushed[0].status, PushStatus::New);
        assert_eq!(git.ls_remote(&url, &[]).expect("ls").len(), 2);

        // A rejected update (not a fast-forward, no '+') is an error.
        git.fast_import(
            &down,
            b"commit refs/heads/other\ncommitter T <t@e> 1 +0000\ndata 2\no\ndone\n",
        )
        .expect("import");
        let err = git
            .push(
                &down,
                &url,
                &["refs/heads/other:refs/heads/main".into()],
                &[],
                true,
            )
            .expect_err("non-ff");
        assert!(err.to_string().contains("refs/heads/main"), "{err}");
        git.repack(&down).expect("repack");
        assert_eq!(pack_count(&down).expect("count"), 1);
        let bundle = dir.path().join("b.bndl");
        git.bundle_create(&down, &bundle).expect("bundle");
        assert!(bundle.is_file());
    }
}
