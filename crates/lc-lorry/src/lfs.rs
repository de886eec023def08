//! Git LFS: the large files a git spec's refs point to, kept in the bare
//! mirror's own LFS store (`git/lfs/objects/`) and handed downstream; and
//! the files of a raw-file spec with `lfs: true`, stored there by lorry.
//!
//! Invariants:
//! * the objects of every mirrored ref are fetched (`git lfs fetch --all`
//!   over the run's new tips: their whole history, only objects the store
//!   lacks) before anything is pushed; an object the upstream cannot give
//!   fails the run, and no ref moves;
//! * they reach the downstream's LFS store (`git lfs push --all` over the
//!   tips about to be pushed) before any ref push; a failed LFS push fails
//!   the run before a ref is pushed;
//! * git-lfs runs through lc-git's hermetic `Git`: URL credentials reach it
//!   through the same environment credential helper as git's, and the
//!   remote is named by a setting in the environment, never written to the
//!   mirror's configuration.
//!
//! git-lfs finds a remote's LFS server as its documentation says
//! (server-discovery.md: `<url>/info/lfs`, `.git` added when missing); a
//! `file://` remote is served by git-lfs's standalone file transfer agent
//! (`git lfs standalone-file`), which reads and writes the bare
//! repository's `lfs/objects/` directly.

use std::path::Path;

use lc_git::{Git, GitError};

/// The remote name git-lfs is given; its URL is set in the environment.
const REMOTE: &str = "lorry-lfs";

/// Tips named on git-lfs's command line at most; beyond it, every ref of
/// the mirror is scanned (the same objects, more history walked).
const MAX_TIPS: usize = 1000;

/// What one LFS step did, for the log and the job summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LfsStore {
    /// Objects in the mirror's LFS store.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The objects and bytes in `repo`'s LFS store (nothing when there is no
/// store yet).
pub fn store(repo: &Path) -> LfsStore {
    let mut total = LfsStore::default();
    let mut stack = vec![repo.join("lfs").join("objects")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file()
                && let Ok(meta) = entry.metadata()
            {
                total.objects += 1;
                total.bytes += meta.len();
            }
        }
    }
    total
}

/// The `.gitattributes` line that makes `path` an LFS file, as `git lfs
/// track` writes one: the path anchored at the top, git's pattern
/// characters escaped, white space as `[[:space:]]`.
pub fn attribute_line(path: &str) -> String {
    let mut pattern = String::from("/");
    for c in path.chars() {
        match c {
            c if c.is_whitespace() => pattern.push_str("[[:space:]]"),
            '*' | '?' | '[' | ']' | '\\' => {
                pattern.push('\\');
                pattern.push(c);
            }
            c => pattern.push(c),
        }
    }
    format!("{pattern} filter=lfs diff=lfs merge=lfs -text")
}

/// Puts `file` (whose SHA-256 is `oid`, hex) into `repo`'s LFS store,
/// unless it holds it already, and answers the pointer file that stands
/// for it in a commit (git-lfs's docs/spec.md: `version`, then the other
/// keys in order, each line ending in a newline). The object arrives
/// whole or not at all: linked (or copied) beside its place, then renamed.
pub fn store_file(repo: &Path, file: &Path, oid: &str, size: u64) -> std::io::Result<String> {
    if oid.len() != 64 || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(std::io::Error::other(format!(
            "{oid:?} is not a SHA-256 object id"
        )));
    }
    let oid = oid.to_ascii_lowercase();
    let dir = repo
        .join("lfs")
        .join("objects")
        .join(&oid[0..2])
        .join(&oid[2..4]);
    let dest = dir.join(&oid);
    if !dest.is_file() {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("{oid}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(file, &tmp).is_err() {
            std::fs::copy(file, &tmp)?;
        }
        if let Err(e) = std::fs::rename(&tmp, &dest) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    }
    Ok(format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
    ))
}

/// `git lfs <action> --all lorry-lfs <tips>` in `repo`, the remote being `url`.
fn run(git: &Git, repo: &Path, action: &str, url: &str, tips: &[&str]) -> Result<(), GitError> {
    let (git, url) = git.with_url_credentials(url);
    let git = git.config(format!("remote.{REMOTE}.url"), url);
    let mut cmd = git.in_repo(repo);
    cmd.args(["lfs", action, "--all", REMOTE]);
    // Without tips, git-lfs takes every ref of the mirror.
    if tips.len() <= MAX_TIPS {
        cmd.args(tips);
    }
    cmd.run()?;
    Ok(())
}

/// Fetches the LFS objects of the history of `tips` from `url` into
/// `repo`'s store, only those it lacks. Nothing to do without tips.
pub fn fetch(git: &Git, repo: &Path, url: &str, tips: &[&str]) -> Result<(), GitError> {
    if tips.is_empty() {
        return Ok(());
    }
    run(git, repo, "fetch", url, tips)
}

/// Pushes the LFS objects of the history of `tips` to `url`'s store (the
/// server is asked first which it has; only missing ones are sent). Fails
/// when the mirror's store lacks one (git-lfs refuses an incomplete push).
pub fn push(git: &Git, repo: &Path, url: &str, tips: &[&str]) -> Result<(), GitError> {
    if tips.is_empty() {
        return Ok(());
    }
    run(
        &git.clone().config("lfs.allowincompletepush", "false"),
        repo,
        "push",
        url,
        tips,
    )
}
