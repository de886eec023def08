//! Keeping the webapp's copy of CONFGIT up to date, and listing it.
//!
//! The copy is a repository of the webapp's own, `.git` inside the
//! configuration directory, into which the branch is fetched; no working
//! tree is written (10,000 `.lorry` files cost seconds to check out and
//! nothing to read from the object store). Local edits cannot survive a
//! read, as there is nothing to edit: the files read are the fetched
//! commit's ([`ConfgitTree`]). Errors name the URL with any credential
//! hidden.
//!
//! A checkout left by an older version (the Python Lorry Controller cloned
//! CONFGIT there and reset it to the branch at each read) is fetched into
//! alike, and its files are never read; [`keep_checkout`] keeps them at
//! the fetched commit, for scripts that read them, without ever losing a
//! local change.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lc_base::redact::redact;

use crate::{Git, GitError};

#[derive(Debug, thiserror::Error)]
pub enum ConfgitError {
    #[error("cannot update CONFGIT from {url} (branch {branch}) into {dir}: {source}")]
    Git {
        /// Redacted.
        url: String,
        branch: String,
        dir: String,
        #[source]
        source: Box<GitError>,
    },
    #[error("{dir} exists and is not a git checkout; refusing to overwrite it with CONFGIT")]
    NotACheckout { dir: String },
    #[error("cannot read CONFGIT's fetched tree in {dir}: {problem}")]
    Read { dir: String, problem: String },
}

/// Below this many bytes per second for [`LOW_SPEED_TIME`] seconds, git
/// gives up a transfer over http(s) (`http.lowSpeedLimit`).
pub const LOW_SPEED_LIMIT: u32 = 1000;
/// See [`LOW_SPEED_LIMIT`] (`http.lowSpeedTime`).
pub const LOW_SPEED_TIME: u32 = 30;

/// Symbolic links followed one after another at most (as Linux's
/// `MAXSYMLINKS`); a longer chain is a file that is not there.
const MAX_LINKS: usize = 40;

/// What an update fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfgitHead {
    /// The id of the fetched commit's tree: the same id, the same files.
    pub tree: String,
}

/// The repository holding the copy of CONFGIT in `dir`.
pub fn git_dir(dir: &Path) -> PathBuf {
    dir.join(".git")
}

/// Fetches `branch` of `url` into the repository in `dir` (made, bare, when
/// `dir` is empty or absent; a `dir` holding anything else is refused), and
/// answers the fetched commit's tree. The whole update has `timeout`: a git
/// command still running then is killed with every process it started,
/// and the update fails saying so. Over http(s), a transfer slower than
/// [`LOW_SPEED_LIMIT`] bytes per second for [`LOW_SPEED_TIME`] seconds
/// fails sooner. One git process when the repository exists.
pub fn update_confgit(
    url: &str,
    branch: &str,
    dir: &Path,
    timeout: Duration,
) -> Result<ConfgitHead, ConfgitError> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    // Credentials go to git through its environment, never its command line
    // nor the repository's configuration.
    let (git, bare_url) = Git::new()
        .config("http.lowSpeedLimit", LOW_SPEED_LIMIT.to_string())
        .config("http.lowSpeedTime", LOW_SPEED_TIME.to_string())
        .with_url_credentials(url);
    let shown_dir = dir.display().to_string();
    let fail = |source: GitError| ConfgitError::Git {
        url: redact(url).into_owned(),
        branch: branch.to_owned(),
        dir: shown_dir.clone(),
        source: Box::new(source),
    };
    let repo = git_dir(dir);
    let read_fail = |problem: String| ConfgitError::Read {
        dir: dir.display().to_string(),
        problem,
    };
    let fresh = !repo.exists();
    let existed = dir.exists();
    // A first fetch failing or killed half-way leaves a repository with no
    // branch: the directory is put back as it was, and the next read
    // starts again.
    let undo = || {
        if existed {
            empty_dir(dir);
        } else if let Err(err) = std::fs::remove_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), %err, "cannot remove a failed copy of CONFGIT");
        }
    };
    if fresh {
        let is_empty_or_absent = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(_) => true,
        };
        if !is_empty_or_absent {
            return Err(ConfgitError::NotACheckout { dir: shown_dir });
        }
        // In-process: no git process for an empty repository.
        git2::Repository::init_bare(&repo).map_err(|e| {
            undo();
            read_fail(e.message().to_owned())
        })?;
    }
    let repository =
        git2::Repository::open_bare(&repo).map_err(|e| read_fail(e.message().to_owned()))?;
    // The URL (without credentials) as the origin remote of the
    // repository, as a checkout had it; written only when it changed.
    let mut config = repository
        .config()
        .and_then(|c| c.open_level(git2::ConfigLevel::Local))
        .map_err(|e| read_fail(e.message().to_owned()))?;
    if config.get_string("remote.origin.url").ok().as_deref() != Some(bare_url.as_str()) {
        config
            .set_str("remote.origin.url", &bare_url)
            .map_err(|e| read_fail(e.message().to_owned()))?;
    }
    let remote_ref = format!("refs/remotes/origin/{branch}");
    git.in_repo(&repo)
        .args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "origin",
        ])
        .arg(format!("+refs/heads/{branch}:{remote_ref}"))
        .run_with_timeout(left())
        .map_err(|err| {
            if fresh {
                undo();
            }
            fail(err)
        })?;
    let tree = repository
        .find_reference(&remote_ref)
        .and_then(|r| r.peel_to_tree())
        .map_err(|e| read_fail(format!("{remote_ref}: {}", e.message())))?;
    Ok(ConfgitHead {
        tree: tree.id().to_string(),
    })
}

/// What [`keep_checkout`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkout {
    /// No working tree: `.git` is the webapp's own bare repository.
    None,
    /// The checkout is at the fetched commit already.
    UpToDate,
    /// Moved from commit `from` (none: unborn) to `to`, the fetched one.
    Updated { from: Option<String>, to: String },
    /// Left as it was: moving it would have lost a local change, or git
    /// failed; what git said (redacted).
    Kept { to: String, why: String },
}

/// Whether the configuration directory `dir` is a working tree: a checkout
/// left by the Python Lorry Controller or an older version, not only the
/// webapp's own bare repository.
pub fn is_checkout(dir: &Path) -> bool {
    git2::Repository::open(git_dir(dir)).is_ok_and(|repo| !repo.is_bare())
}

/// Brings a checkout left in `dir` by an older version to the commit of
/// `branch` that [`update_confgit`] fetched, as the original's
/// `git reset --hard origin/<branch>` did, but with `git reset --keep`:
/// the branch checked out moves, the files that differ between the two
/// commits are rewritten, and nothing happens at all when one of them has
/// local changes or an untracked file is in the way (then `Kept` says
/// why). Untracked files are never removed. Costs two reference lookups
/// when the checkout is already there or `dir` has none.
pub fn keep_checkout(dir: &Path, branch: &str, timeout: Duration) -> Checkout {
    let Ok(repo) = git2::Repository::open(git_dir(dir)) else {
        return Checkout::None;
    };
    if repo.is_bare() {
        return Checkout::None;
    }
    let remote_ref = format!("refs/remotes/origin/{branch}");
    let to = match repo
        .find_reference(&remote_ref)
        .and_then(|r| r.peel_to_commit())
    {
        Ok(commit) => commit.id(),
        Err(e) => {
            return Checkout::Kept {
                to: remote_ref,
                why: e.message().to_owned(),
            };
        }
    };
    let from = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .ok()
        .map(|c| c.id());
    if from == Some(to) {
        return Checkout::UpToDate;
    }
    let mut work_tree = std::ffi::OsString::from("--work-tree=");
    work_tree.push(dir.as_os_str());
    let reset = Git::new()
        .in_repo(&git_dir(dir))
        .arg(work_tree)
        .current_dir(dir)
        .args(["reset", "--quiet", "--keep"])
        .arg(to.to_string())
        .run_with_timeout(timeout);
    match reset {
        Ok(_) => Checkout::Updated {
            from: from.map(|c| c.to_string()),
            to: to.to_string(),
        },
        Err(err) => Checkout::Kept {
            to: to.to_string(),
            why: err.to_string(),
        },
    }
}

/// A file of a [`ConfgitTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// A blob, by id (hex).
    Blob(String),
    /// A symbolic link leading out of the tree: the path a checkout in
    /// the configuration directory would have reached.
    Outside(PathBuf),
}

/// The files of a fetched CONFGIT tree, and its repository to read them.
pub struct ConfgitTree {
    repo: Mutex<git2::Repository>,
    /// Every regular file, symbolic links followed, by its path from the
    /// top (`/` between components). Links to directories are not
    /// followed, nor are submodules: a checkout had neither as a file.
    pub files: BTreeMap<String, TreeEntry>,
}

impl std::fmt::Debug for ConfgitTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfgitTree")
            .field("files", &self.files.len())
            .finish()
    }
}

/// What a tree holds at a path, before links are followed.
enum Raw {
    File(git2::Oid),
    Link(Vec<u8>),
    Dir,
}

impl ConfgitTree {
    /// Lists tree `tree` (an id [`update_confgit`] answered) of the
    /// repository in `dir`.
    pub fn read(dir: &Path, tree: &str) -> Result<ConfgitTree, ConfgitError> {
        let fail = |problem: String| ConfgitError::Read {
            dir: dir.display().to_string(),
            problem,
        };
        let repo =
            git2::Repository::open_bare(git_dir(dir)).map_err(|e| fail(e.message().to_owned()))?;
        let mut raw: BTreeMap<String, Raw> = BTreeMap::new();
        {
            let oid = git2::Oid::from_str(tree).map_err(|e| fail(e.message().to_owned()))?;
            let tree = repo
                .find_tree(oid)
                .map_err(|e| fail(e.message().to_owned()))?;
            let mut failure = None;
            tree.walk(git2::TreeWalkMode::PreOrder, |parent, entry| {
                let Ok(name) = entry.name() else {
                    // Not UTF-8: no glob of the conf file names it.
                    return git2::TreeWalkResult::Skip;
                };
                let path = format!("{parent}{name}");
                match entry.filemode() {
                    0o100644 | 0o100755 => {
                        raw.insert(path, Raw::File(entry.id()));
                    }
                    0o120000 => match repo.find_blob(entry.id()) {
                        Ok(blob) => {
                            raw.insert(path, Raw::Link(blob.content().to_vec()));
                        }
                        Err(e) => {
                            failure = Some(e.message().to_owned());
                            return git2::TreeWalkResult::Abort;
                        }
                    },
                    0o040000 => {
                        raw.insert(path, Raw::Dir);
                    }
                    _ => {}
                }
                git2::TreeWalkResult::Ok
            })
            .map_err(|e| fail(failure.clone().unwrap_or_else(|| e.message().to_owned())))?;
        }
        let mut files = BTreeMap::new();
        for (path, entry) in &raw {
            let resolved = match entry {
                Raw::File(oid) => Some(TreeEntry::Blob(oid.to_string())),
                Raw::Link(_) => follow(&raw, path, dir),
                Raw::Dir => None,
            };
            if let Some(resolved) = resolved {
                files.insert(path.clone(), resolved);
            }
        }
        Ok(ConfgitTree {
            repo: Mutex::new(repo),
            files,
        })
    }

    /// The content of blob `id`.
    pub fn read_blob(&self, id: &str) -> Result<Vec<u8>, String> {
        let repo = self
            .repo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let oid = git2::Oid::from_str(id).map_err(|e| e.message().to_owned())?;
        let blob = repo.find_blob(oid).map_err(|e| e.message().to_owned())?;
        Ok(blob.content().to_vec())
    }
}

/// Where the link at `path` leads, as a checkout in `dir` would have
/// followed it: a regular file of the tree, a path out of it, or nothing
/// (dangling, a directory, a loop).
fn follow(raw: &BTreeMap<String, Raw>, path: &str, dir: &Path) -> Option<TreeEntry> {
    let mut at = path.to_owned();
    for _ in 0..MAX_LINKS {
        let target = match raw.get(&at)? {
            Raw::File(oid) => return Some(TreeEntry::Blob(oid.to_string())),
            Raw::Dir => return None,
            Raw::Link(target) => target,
        };
        let target = Path::new(std::ffi::OsStr::from_bytes(target));
        let parent = Path::new(&at).parent().unwrap_or(Path::new(""));
        if target.is_absolute() {
            return Some(TreeEntry::Outside(target.to_owned()));
        }
        // Lexically, from the link's directory; out of the top, the file
        // system beyond the configuration directory (lexically too: the
        // directories of the tree are not on disk).
        let joined = parent.join(target);
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for component in joined.components() {
            match component {
                Component::Normal(part) => parts.push(part),
                // `..` takes a part off; with none left, it leaves the tree.
                Component::ParentDir if parts.pop().is_none() => {
                    let mut outside = dir.to_path_buf();
                    for component in joined.components() {
                        match component {
                            Component::Normal(part) => outside.push(part),
                            Component::ParentDir => {
                                outside.pop();
                            }
                            _ => {}
                        }
                    }
                    return Some(TreeEntry::Outside(outside));
                }
                _ => {}
            }
        }
        let next: PathBuf = parts.iter().collect();
        at = next.to_str()?.to_owned();
    }
    None
}

/// Removes everything inside `dir`, keeping `dir` (it may be a mount point
/// or have its owner set by an administrator). Failures are only logged:
/// the next read reports a directory that is not a checkout.
fn empty_dir(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(err) = removed {
            tracing::warn!(path = %path.display(), %err, "cannot remove a failed clone of CONFGIT");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, args: &[&str]) {
        let out = crate::git()
            .current_dir(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example")
            .output()
            .expect("git");
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    fn file(tree: &ConfgitTree, path: &str) -> Option<String> {
        match tree.files.get(path)? {
            TreeEntry::Blob(id) => {
                Some(String::from_utf8(tree.read_blob(id).expect("blob")).expect("utf-8"))
            }
            TreeEntry::Outside(path) => Some(format!("outside {}", path.display())),
        }
    }

    fn upstream_tree(upstream: &Path) -> String {
        let out = crate::git()
            .current_dir(upstream)
            .args(["rev-parse", "HEAD^{tree}"])
            .output()
            .expect("git rev-parse");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn fetches_then_follows_the_branch_and_writes_no_checkout() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let upstream = tmp.path().join("up");
        std::fs::create_dir(&upstream).expect("mkdir");
        sh(&upstream, &["init", "--quiet", "-b", "main"]);
        std::fs::write(upstream.join("lorry-controller.conf"), "[]").expect("write");
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "--quiet", "-m", "one"]);
        let url = format!("file://{}", upstream.display());
        let copy = tmp.path().join("confgit");
        let update = || update_confgit(&url, "main", &copy, Duration::from_secs(60));

        let head = update().expect("first");
        assert_eq!(head.tree, upstream_tree(&upstream));
        let tree = ConfgitTree::read(&copy, &head.tree).expect("tree");
        assert_eq!(file(&tree, "lorry-controller.conf").as_deref(), Some("[]"));
        let on_disk: Vec<_> = std::fs::read_dir(&copy)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(on_disk, [".git"], "no working tree");

        std::fs::write(upstream.join("lorry-controller.conf"), "[1]").expect("write");
        sh(&upstream, &["commit", "--quiet", "-am", "two"]);
        // Files written beside the repository are never read.
        std::fs::write(copy.join("stray.lorry"), "x").expect("stray");
        std::fs::write(copy.join("lorry-controller.conf"), "local").expect("edit");
        let head = update().expect("fetch");
        let tree = ConfgitTree::read(&copy, &head.tree).expect("tree");
        assert_eq!(file(&tree, "lorry-controller.conf").as_deref(), Some("[1]"));
        assert_eq!(tree.files.len(), 1, "{:?}", tree.files);
        assert_eq!(
            update().expect("same"),
            head,
            "nothing changed: the same tree"
        );

        // History rewritten upstream: still followed.
        sh(
            &upstream,
            &["commit", "--quiet", "--amend", "-m", "rewritten"],
        );
        std::fs::write(upstream.join("b"), "b").expect("write");
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "--quiet", "-m", "b"]);
        let head = update().expect("forced");
        assert_eq!(head.tree, upstream_tree(&upstream));

        // A checkout an older version cloned is fetched into alike.
        let old = tmp.path().join("old");
        sh(tmp.path(), &["clone", "--quiet", &url, "old"]);
        let head = update_confgit(&url, "main", &old, Duration::from_secs(60)).expect("old");
        assert_eq!(head.tree, upstream_tree(&upstream));
        let tree = ConfgitTree::read(&old, &head.tree).expect("tree");
        assert_eq!(file(&tree, "b").as_deref(), Some("b"));
    }

    /// A checkout left by an older version follows the fetched commit,
    /// keeping untracked files, and is left alone (saying why) when a
    /// local change would be lost; the webapp's own bare copy has none.
    #[test]
    fn a_checkout_left_by_an_older_version_follows_without_losing_local_changes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let upstream = tmp.path().join("up");
        std::fs::create_dir(&upstream).expect("mkdir");
        sh(&upstream, &["init", "--quiet", "-b", "main"]);
        std::fs::write(upstream.join("a.lorry"), "a1").expect("write");
        std::fs::write(upstream.join("b.lorry"), "b1").expect("write");
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "--quiet", "-m", "one"]);
        let url = format!("file://{}", upstream.display());
        let old = tmp.path().join("old");
        sh(tmp.path(), &["clone", "--quiet", "-b", "main", &url, "old"]);
        assert!(is_checkout(&old));
        let fetch_and_keep = || {
            update_confgit(&url, "main", &old, Duration::from_secs(60)).expect("fetch");
            keep_checkout(&old, "main", Duration::from_secs(60))
        };
        assert_eq!(fetch_and_keep(), Checkout::UpToDate);

        // Changed, added and removed upstream; an operator's own file beside.
        std::fs::write(upstream.join("a.lorry"), "a2").expect("write");
        std::fs::write(upstream.join("c.lorry"), "c").expect("write");
        sh(&upstream, &["rm", "--quiet", "b.lorry"]);
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "--quiet", "-m", "two"]);
        std::fs::write(old.join("notes.txt"), "mine").expect("write");
        assert!(matches!(
            fetch_and_keep(),
            Checkout::Updated { from: Some(_), .. }
        ));
        let read = |name: &str| std::fs::read_to_string(old.join(name)).ok();
        assert_eq!(read("a.lorry").as_deref(), Some("a2"));
        assert_eq!(read("c.lorry").as_deref(), Some("c"));
        assert_eq!(read("b.lorry"), None);
        assert_eq!(read("notes.txt").as_deref(), Some("mine"), "untracked kept");
        assert_eq!(fetch_and_keep(), Checkout::UpToDate);

        // A local edit of a file the next commit changes: nothing moves.
        std::fs::write(old.join("a.lorry"), "edited here").expect("edit");
        std::fs::write(upstream.join("a.lorry"), "a3").expect("write");
        sh(&upstream, &["commit", "--quiet", "-am", "three"]);
        let kept = fetch_and_keep();
        let Checkout::Kept { why, .. } = &kept else {
            panic!("{kept:?}");
        };
        assert!(why.contains("a.lorry"), "{why}");
        assert_eq!(read("a.lorry").as_deref(), Some("edited here"));
        // Undone by the operator: followed at the next read.
        sh(&old, &["checkout", "--quiet", "a.lorry"]);
        assert!(matches!(fetch_and_keep(), Checkout::Updated { .. }));
        assert_eq!(read("a.lorry").as_deref(), Some("a3"));

        // The webapp's own copy has no working tree.
        let own = tmp.path().join("own");
        update_confgit(&url, "main", &own, Duration::from_secs(60)).expect("own");
        assert!(!is_checkout(&own));
        assert_eq!(
            keep_checkout(&own, "main", Duration::from_secs(60)),
            Checkout::None
        );
    }

    /// Symbolic links lead where a checkout's would have: to a file of
    /// the tree, out of it (read from the file system), or nowhere
    /// (dangling, a loop, a directory).
    #[test]
    fn symbolic_links_are_followed_as_in_a_checkout() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let upstream = tmp.path().join("up");
        std::fs::create_dir_all(upstream.join("l/sub")).expect("mkdir");
        sh(&upstream, &["init", "--quiet", "-b", "main"]);
        std::fs::write(upstream.join("real.lorry"), "real").expect("write");
        std::fs::write(upstream.join("l/sub/x.lorry"), "x").expect("write");
        for (link, target) in [
            ("l/in.lorry", "../real.lorry"),
            ("l/twice.lorry", "in.lorry"),
            ("l/abs.lorry", "/etc/hostname"),
            ("l/out.lorry", "../../outside.lorry"),
            ("l/dir", "sub"),
            ("l/dangling.lorry", "nope.lorry"),
            ("l/loop1.lorry", "loop2.lorry"),
            ("l/loop2.lorry", "loop1.lorry"),
        ] {
            std::os::unix::fs::symlink(target, upstream.join(link)).expect("symlink");
        }
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "--quiet", "-m", "links"]);
        let copy = tmp.path().join("confgit");
        let url = format!("file://{}", upstream.display());
        let head = update_confgit(&url, "main", &copy, Duration::from_secs(60)).expect("fetch");
        let tree = ConfgitTree::read(&copy, &head.tree).expect("tree");
        assert_eq!(file(&tree, "l/in.lorry").as_deref(), Some("real"));
        assert_eq!(file(&tree, "l/twice.lorry").as_deref(), Some("real"));
        assert_eq!(
            tree.files.get("l/abs.lorry"),
            Some(&TreeEntry::Outside(PathBuf::from("/etc/hostname")))
        );
        assert_eq!(
            tree.files.get("l/out.lorry"),
            Some(&TreeEntry::Outside(tmp.path().join("outside.lorry"))),
            "as from a checkout in {}",
            copy.display()
        );
        for none in [
            "l/dir",
            "l/dangling.lorry",
            "l/loop1.lorry",
            "l/loop2.lorry",
            "l/sub",
        ] {
            assert!(!tree.files.contains_key(none), "{none}");
        }
        assert_eq!(file(&tree, "l/sub/x.lorry").as_deref(), Some("x"));
    }

    #[test]
    fn errors_name_the_url_without_credentials() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let url = "http://user:hunter2@127.0.0.1:9/confgit.git";
        let err = update_confgit(url, "main", &tmp.path().join("c"), Duration::from_secs(60))
            .expect_err("no server");
        let text = err.to_string();
        assert!(text.contains("http://"), "{text}");
        assert!(text.contains("127.0.0.1:9/confgit.git"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let err = update_confgit(
            "file:///nonexistent/repo",
            "main",
            tmp.path(),
            Duration::from_secs(60),
        )
        .expect_err("not empty");
        std::fs::write(tmp.path().join("f"), "x").expect("write");
        let err2 = update_confgit(
            "file:///nonexistent/repo",
            "main",
            tmp.path(),
            Duration::from_secs(60),
        )
        .expect_err("not a checkout");
        assert!(matches!(err, ConfgitError::Git { .. }), "{err}");
        assert!(matches!(err2, ConfgitError::NotACheckout { .. }), "{err2}");
    }

    #[test]
    fn an_upstream_that_never_answers_is_given_up_at_the_timeout() {
        // Accepts connections and never says a word.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                held.push(conn);
            }
        });
        let tmp = tempfile::tempdir().expect("tempdir");
        for url in [
            format!("git://127.0.0.1:{port}/conf.git"),
            format!("http://user:hunter2@127.0.0.1:{port}/conf.git"),
        ] {
            let err = update_confgit(&url, "main", &tmp.path().join("c"), Duration::from_secs(2))
                .expect_err("silent upstream");
            let message = err.to_string();
            assert!(message.contains("did not finish within 2 s"), "{message}");
            let left: Vec<_> = std::fs::read_dir(tmp.path().join("c"))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "a killed clone left {left:?}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
