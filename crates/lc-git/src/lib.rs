//! The only crate that runs `git`.
//!
//! Every invocation is hermetic and non-interactive: no system or user git
//! configuration, no terminal prompts, `LC_ALL=C`. Settings (TLS
//! verification, proxies, credential helpers) reach git through
//! `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`, never through
//! argv, so a token in a setting cannot show up in a process listing; only
//! the protocol version of a listing or fetch (no secret) is a `-c` argument.
//! Everything that could hold a credential (argv, stderr) is redacted with
//! [`lc_base::redact`] before it reaches an error message.
//!
//! Results of network commands are parsed from their porcelain output into
//! typed values ([`RemoteRef`], [`FetchedRef`], [`PushedRef`]).
//!
//! Here: the commands lorry and the webapp run (fetch, push with leases,
//! ref transactions...). `command` is the hermetic runner they are built
//! on, `credentials` takes credentials off URLs, `porcelain` parses output,
//! `confgit` is the webapp's checkout of CONFGIT.

mod command;
pub mod confgit;
mod credentials;
mod porcelain;
pub mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use command::{Git, GitCommand, Trace, git};
pub use porcelain::{FetchStatus, FetchedRef, PushStatus, PushedRef, RemoteRef, is_oid};
use porcelain::{parse_fetch_line, parse_ls_remote_line, parse_push_line};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("git {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("git {args} printed a line that cannot be parsed: {line:?}")]
    Parse { args: String, line: String },
    #[error("git {args} did not finish within {seconds} s and was killed")]
    TimedOut { args: String, seconds: u64 },
}

impl GitError {
    /// Whether a push failed because a ref's lease did not hold (`stale
    /// info`: the remote ref is not what the pusher expected), rather than
    /// for any other reason (network, credentials, a hook's refusal).
    pub fn is_stale_lease(&self) -> bool {
        matches!(self, GitError::Failed { stderr, .. }
            if stderr.lines().any(|l| l.starts_with("rejected ") && l.contains("stale info")))
    }
}

/// A git object name, as 40 (SHA-1) or 64 (SHA-256) lower-case hex digits.
pub type Oid = String;

impl Git {
    /// Lists the refs of a remote repository (`git ls-remote --refs`, protocol
    /// v2 where the server speaks it), limited to the given ref prefixes when
    /// any are given. Peeled tags and `HEAD` are not listed.
    pub fn ls_remote(&self, url: &str, prefixes: &[&str]) -> Result<Vec<RemoteRef>, GitError> {
        self.ls_remote_within(url, prefixes, None)
    }

    /// [`Git::ls_remote`] killed (with everything it started) once
    /// `timeout` has passed, when one is given.
    pub fn ls_remote_within(
        &self,
        url: &str,
        prefixes: &[&str],
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<RemoteRef>, GitError> {
        let (git, url) = self.with_url_credentials(url);
        let url = url.as_str();
        let git = git.through_proxy(url);
        let mut cmd = git.command();
        cmd.arg("-c").arg(protocol_setting(url));
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
        let out = match timeout {
            Some(timeout) => cmd.run_with_timeout(timeout)?,
            None => cmd.run()?,
        };
        let mut refs = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(r) = parse_ls_remote_line(line) else {
                return Err(cmd.parse_error(line));
            };
            if prefixes.is_empty() || prefixes.iter().any(|p| r.name.starts_with(p)) {
                refs.push(r);
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
        self.fetch_inner(repo, url, refspecs, false)
    }

    /// [`Git::fetch`] that also reports every ref that was already up to
    /// date (`--verbose`): the answer lists every remote ref the refspecs
    /// cover, so the fetch doubles as `ls-remote` over the same connection.
    pub fn fetch_listing(
        &self,
        repo: &Path,
        url: &str,
        refspecs: &[String],
    ) -> Result<Vec<FetchedRef>, GitError> {
        self.fetch_inner(repo, url, refspecs, true)
    }

    fn fetch_inner(
        &self,
        repo: &Path,
        url: &str,
        refspecs: &[String],
        verbose: bool,
    ) -> Result<Vec<FetchedRef>, GitError> {
        let (git, url) = self.with_url_credentials(url);
        let git = git.through_proxy(&url);
        let mut cmd = git.in_repo(repo);
        cmd.arg("-c").arg(protocol_setting(&url));
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
        ]);
        if verbose {
            cmd.arg("--verbose");
        }
        cmd.args([
            // Refspecs on stdin: a spec with `include` names every
            // wanted ref, more than argv may hold.
            "--stdin", "--",
        ]);
        cmd.arg(url);
        let mut input = refspecs.join("\n");
        input.push('\n');
        let out = cmd.run_with_input(input.as_bytes())?;
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
        // git gives a pushed ref the first lease whose name matches it by
        // its shorthand rules (`main` matches `refs/heads/main`, and so does
        // `refs/heads/main` match `refs/heads/refs/heads/main`): a lease
        // only ever matches a ref of its own name or a longer one, so the
        // longest names go first and every ref meets its own lease first.
        let mut leases: Vec<&Lease> = leases.iter().collect();
        leases.sort_by(|a, b| b.name.len().cmp(&a.name.len()).then(a.name.cmp(&b.name)));
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

    /// The blobs at `path` in the trees of `tips` (commits, or tags peeled
    /// to theirs), each once; a tip that is missing or has no blob there
    /// adds nothing. Read in-process (libgit2: no git process); should
    /// libgit2 fail on the repository, one `git cat-file --batch-check`
    /// answers instead.
    pub fn blobs_at(
        &self,
        repo: &Path,
        tips: &[&str],
        path: &str,
    ) -> Result<BTreeSet<Oid>, GitError> {
        let mut found = BTreeSet::new();
        if tips.is_empty() {
            return Ok(found);
        }
        let in_process = || -> Result<BTreeSet<Oid>, git2::Error> {
            let repository = git2::Repository::open_bare(repo)?;
            let mut found = BTreeSet::new();
            for tip in tips {
                let oid = git2::Oid::from_str(tip)?;
                let Ok(tree) = repository
                    .find_object(oid, None)
                    .and_then(|o| o.peel_to_tree())
                else {
                    continue;
                };
                if let Ok(entry) = tree.get_path(Path::new(path))
                    && entry.kind() == Some(git2::ObjectType::Blob)
                {
                    found.insert(entry.id().to_string());
                }
            }
            Ok(found)
        };
        if let Ok(blobs) = in_process() {
            return Ok(blobs);
        }
        let input: String = tips.iter().map(|t| format!("{t}:{path}\n")).collect();
        let out = self
            .in_repo(repo)
            .args(["cat-file", "--batch-check=%(objectname) %(objecttype)"])
            .run_with_input(input.as_bytes())?;
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|line| line.strip_suffix(" blob").map(str::to_owned)),
        );
        Ok(found)
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

    /// A bare repository at `path` for lorry's own mirror, made in-process
    /// (libgit2: no git process, none of git's sample hooks copied; HEAD
    /// names `master`, as a hermetic `git init` does); missing parents are
    /// made, an existing repository is left as it is. Answers whether the
    /// directory was new, so that a caller knows it holds no refs but what
    /// it writes itself. Not in the [`Trace`], which records git processes.
    pub fn init_mirror(&self, path: &Path) -> Result<bool, GitError> {
        if path.join("HEAD").is_file() {
            return Ok(false);
        }
        let fresh = !path.exists();
        let mut options = git2::RepositoryInitOptions::new();
        options
            .bare(true)
            .mkpath(true)
            // Neither the user's templates nor git's: lorry's hermetic git
            // reads no user configuration.
            .external_template(false)
            .initial_head("master");
        git2::Repository::init_opts(path, &options).map_err(|e| GitError::Failed {
            args: format!("init --bare (in-process) {}", path.display()),
            stderr: e.message().to_owned(),
        })?;
        Ok(fresh)
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

/// Whether `url` is a `git://` URL.
fn is_git_scheme(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("git://"))
}

/// The protocol git speaks to `url` when listing or fetching: version 2
/// (the server lists only the namespaces asked for), except over
/// `git://`. There each exchange where one side writes a request or
/// answer in several small packets waits out the other side's delayed ACK
/// (about 40 ms on Linux, see [`proxy`]); version 2 has more of them:
/// listing a small repository through `git daemon` took 48 ms in version 2
/// and 5 ms in version 0, in which the server speaks first. Through the
/// proxy (Nagle off on the client's side) version 2 still waited 40 ms in a
/// fetch, on the server's two writes (`acknowledgments`, then the `ACK`s)
/// while version 0 did not: a one-commit fetch 60 ms against 14 ms. The
/// price of version 0 is the advertisement of every ref of the
/// repository, `refs/changes/*` too.
fn protocol_setting(url: &str) -> &'static str {
    if is_git_scheme(url) {
        "protocol.version=0"
    } else {
        "protocol.version=2"
    }
}

impl Git {
    /// This environment for listing or fetching `url`: through the proxy
    /// program, when one is set ([`Git::git_proxy`]) and `url` is a
    /// `git://` one. Pushes never go through it.
    fn through_proxy(&self, url: &str) -> Git {
        match &self.proxy {
            Some(program) if is_git_scheme(url) => self
                .clone()
                .config("core.gitProxy", program.clone())
                .env(proxy::CHILD_ENV, "1"),
            _ => self.clone(),
        }
    }
}

/// Creates a bare repository at `path`, with missing parents; an existing
/// repository is left as it is.
pub fn init_bare(path: &Path) -> Result<(), GitError> {
    Git::new().init_bare(path)
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
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";

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

    /// The mirror's repository is made without a git process or git's
    /// sample hooks, is one git uses as it uses its own, and is made once.
    #[test]
    fn init_mirror_makes_a_plain_bare_repository_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("a/git");
        let trace = Trace::new();
        let git = Git::new().traced(trace.clone());
        assert!(git.init_mirror(&repo).expect("init"), "a new directory");
        assert!(trace.is_empty(), "{:?}", trace.lines());
        let hooks: Vec<_> = std::fs::read_dir(repo.join("hooks"))
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            !hooks
                .iter()
                .any(|h| h.to_string_lossy().starts_with("pre-")),
            "{hooks:?}"
        );
        let head = std::fs::read_to_string(repo.join("HEAD")).expect("HEAD");
        assert_eq!(head.trim(), "ref: refs/heads/master");
        let stream = b"commit refs/heads/main\ncommitter T <t@e> 0 +0000\ndata 2\nm\ndone\n";
        git.fast_import(&repo, stream).expect("git writes to it");
        let out = git
            .in_repo(&repo)
            .args(["rev-parse", "--is-bare-repository"])
            .run()
            .expect("rev-parse");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true");
        assert!(!git.init_mirror(&repo).expect("again"), "already there");
        assert_eq!(git.for_each_ref(&repo, &[]).expect("refs").len(), 1);
        // A directory that existed without a repository is not "new": it
        // may hold refs from a run cut short.
        let half = dir.path().join("half");
        std::fs::create_dir_all(half.join("refs/heads")).expect("mkdir");
        assert!(!git.init_mirror(&half).expect("init half"));
        assert!(half.join("HEAD").is_file());
    }

    /// `.gitmodules` found at branch tips in-process, and through git when
    /// libgit2 cannot read the repository (here: git's reftable refs).
    #[test]
    fn blobs_at_tips_in_process_and_through_git() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = Git::new();
        let stream = b"commit refs/heads/with\ncommitter T <t@e> 0 +0000\ndata 2\nm\nM 644 inline .gitmodules\ndata 4\nmods\nM 644 inline sub/.gitmodules\ndata 5\nother\n\ncommit refs/heads/without\ncommitter T <t@e> 0 +0000\ndata 2\nn\nM 644 inline README\ndata 2\nhi\n\ntag t\nfrom refs/heads/with\ntagger T <t@e> 0 +0000\ndata 2\nt\ndone\n";
        let files = git2::Repository::init_bare(dir.path().join("files.git")).expect("init");
        drop(files);
        let reftable = dir.path().join("reftable.git");
        git.command()
            .args(["init", "-q", "--bare", "--ref-format=reftable"])
            .arg(reftable.as_os_str())
            .run()
            .expect("init reftable");
        for name in ["files.git", "reftable.git"] {
            let repo = dir.path().join(name);
            git.fast_import(&repo, stream).expect("fast-import");
            let refs = git.for_each_ref(&repo, &[]).expect("refs");
            let trace = Trace::new();
            let traced = git.clone().traced(trace.clone());
            let tips = [
                refs["refs/heads/with"].as_str(),
                refs["refs/heads/without"].as_str(),
                refs["refs/tags/t"].as_str(),
                A,
            ];
            let blobs = traced.blobs_at(&repo, &tips, ".gitmodules").expect("blobs");
            let out = git
                .in_repo(&repo)
                .args(["rev-parse", "refs/heads/with:.gitmodules"])
                .run()
                .expect("rev-parse");
            let want = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert_eq!(blobs.into_iter().collect::<Vec<_>>(), vec![want], "{name}");
            let gits = trace.len();
            assert_eq!(gits, usize::from(name == "reftable.git"), "{name}");
        }
    }

    #[test]
    fn git_urls_are_spoken_to_in_protocol_version_0_and_through_the_proxy() {
        let proxied = Git::new().git_proxy("/usr/bin/lorry");
        for url in ["git://h/x.git", "GIT://h/x.git"] {
            assert_eq!(protocol_setting(url), "protocol.version=0");
            assert!(proxied.through_proxy(url).has_config("core.gitProxy"));
            assert!(!Git::new().through_proxy(url).has_config("core.gitProxy"));
        }
        for url in [
            "https://h/x.git",
            "ssh://h/x",
            "h:x",
            "file:///x",
            "/x",
            "git",
        ] {
            assert_eq!(protocol_setting(url), "protocol.version=2", "{url}");
            assert!(!proxied.through_proxy(url).has_config("core.gitProxy"));
        }
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

    /// A push refused for a lease that does not hold is told apart from
    /// one a hook refuses.
    #[test]
    fn stale_leases_are_told_from_other_push_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (up, down) = (dir.path().join("up.git"), dir.path().join("down.git"));
        let git = Git::new();
        git.init_bare(&up).expect("init up");
        git.init_bare(&down).expect("init down");
        let stream = b"commit refs/heads/main\ncommitter T <t@e> 0 +0000\ndata 2\nm\nM 644 inline f\ndata 1\nx\ndone\n";
        git.fast_import(&up, stream).expect("fast-import");
        let url = format!("file://{}", down.display());
        let main = vec!["refs/heads/main:refs/heads/main".to_owned()];
        // The downstream lacks main, the lease expects it at A: stale.
        let lease = |expect: Option<&str>| Lease {
            name: "refs/heads/main".into(),
            expect: expect.map(str::to_owned),
        };
        let err = git
            .push_with_leases(&up, &url, &main, &[lease(Some(A))], &[])
            .expect_err("stale");
        assert!(err.is_stale_lease(), "{err}");
        // A hook's refusal is not.
        let hook = down.join("hooks/pre-receive");
        std::fs::write(&hook, "#!/bin/sh\necho 'no pushes today' >&2\nexit 1\n").expect("hook");
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let err = git
            .push_with_leases(&up, &url, &main, &[lease(None)], &[])
            .expect_err("refused");
        assert!(!err.is_stale_lease(), "{err}");
        assert!(err.to_string().contains("no pushes today"), "{err}");
        // Nor is a downstream that is not there.
        let gone = format!("file://{}", dir.path().join("gone.git").display());
        let err = git
            .push_with_leases(&up, &gone, &main, &[lease(None)], &[])
            .expect_err("no repository");
        assert!(!err.is_stale_lease(), "{err}");
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
