//! Keeping the local checkout of CONFGIT up to date.
//!
//! The checkout is the webapp's own: it is cloned when absent, otherwise
//! fetched and hard-reset to the remote branch, and cleaned of untracked
//! files, so local edits never survive a read. Errors name the URL with any
//! credential hidden.

use std::path::Path;
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
}

/// Below this many bytes per second for [`LOW_SPEED_TIME`] seconds, git
/// gives up a transfer over http(s) (`http.lowSpeedLimit`).
pub const LOW_SPEED_LIMIT: u32 = 1000;
/// See [`LOW_SPEED_LIMIT`] (`http.lowSpeedTime`).
pub const LOW_SPEED_TIME: u32 = 30;

/// What an update left checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfgitHead {
    /// The id of the checked-out commit's tree: the same id, the same files.
    pub tree: String,
}

/// Clones `url` at `branch` into `dir` if `dir` has no checkout yet,
/// otherwise fetches `branch` and resets the checkout to it (skipped when
/// the checkout already is that commit with nothing changed, untracked or
/// ignored in it: `git status` costs less than a reset of every file). The whole
/// update has `timeout`: a git command still running then is killed with
/// every process it started, and the update fails saying so. Over
/// http(s), a transfer slower than [`LOW_SPEED_LIMIT`] bytes per second for
/// [`LOW_SPEED_TIME`] seconds fails sooner.
pub fn update_confgit(
    url: &str,
    branch: &str,
    dir: &Path,
    timeout: Duration,
) -> Result<ConfgitHead, ConfgitError> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    // Credentials go to git through its environment, never its command line
    // nor the checkout's configuration.
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
    let has_checkout = dir.join(".git").exists();
    let is_empty_or_absent = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    };
    if !has_checkout {
        if !is_empty_or_absent {
            return Err(ConfgitError::NotACheckout { dir: shown_dir });
        }
        git.command()
            .args([
                "clone",
                "--quiet",
                "--no-tags",
                "--single-branch",
                "--branch",
            ])
            .arg(branch)
            .arg("--")
            .arg(&bare_url)
            .arg(dir.as_os_str())
            .run_with_timeout(left())
            .map_err(|err| {
                // A clone killed half-way leaves a directory that is not a
                // checkout; emptied, the next read clones again.
                empty_dir(dir);
                fail(err)
            })?;
        let tree = rev_parse(&git, dir, &["HEAD^{tree}"], left()).map_err(fail)?;
        return Ok(ConfgitHead {
            tree: tree.into_iter().next().unwrap_or_default(),
        });
    }
    let remote_ref = format!("refs/remotes/origin/{branch}");
    git.command()
        .current_dir(dir)
        .args(["remote", "set-url", "origin", "--"])
        .arg(&bare_url)
        .run_with_timeout(left())
        .map_err(fail)?;
    git.command()
        .current_dir(dir)
        .args(["fetch", "--quiet", "--no-tags", "--prune", "origin"])
        .arg(format!("+refs/heads/{branch}:{remote_ref}"))
        .run_with_timeout(left())
        .map_err(fail)?;
    let fetched = rev_parse(
        &git,
        dir,
        &[&remote_ref, &format!("{remote_ref}^{{tree}}")],
        left(),
    )
    .map_err(fail)?;
    let (Some(commit), Some(tree)) = (fetched.first(), fetched.get(1)) else {
        return Err(fail(GitError::Parse {
            args: format!("rev-parse {remote_ref}"),
            line: fetched.join(" "),
        }));
    };
    let head = ConfgitHead { tree: tree.clone() };
    if checked_out_as_is(&git, dir, commit, left()) {
        return Ok(head);
    }
    git.command()
        .current_dir(dir)
        .args(["reset", "--quiet", "--hard"])
        .arg(&remote_ref)
        .arg("--")
        .run_with_timeout(left())
        .map_err(fail)?;
    git.command()
        .current_dir(dir)
        .args(["clean", "--quiet", "-fdx"])
        .run_with_timeout(left())
        .map_err(fail)?;
    Ok(head)
}

/// The ids `git rev-parse` gives for `names`, one per name.
fn rev_parse(
    git: &Git,
    dir: &Path,
    names: &[&str],
    timeout: Duration,
) -> Result<Vec<String>, GitError> {
    let out = git
        .command()
        .current_dir(dir)
        // The names are HEAD or start with refs/: never taken for options.
        .arg("rev-parse")
        .args(names)
        .run_with_timeout(timeout)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Whether the checkout in `dir` is commit `commit` with nothing changed,
/// untracked or ignored: then a reset and a clean would change nothing.
/// Any doubt (git failing, output not understood) answers false.
fn checked_out_as_is(git: &Git, dir: &Path, commit: &str, timeout: Duration) -> bool {
    let Ok(out) = git
        .command()
        .current_dir(dir)
        .args([
            "status",
            "--porcelain=v2",
            "--branch",
            "-z",
            "--untracked-files=all",
            "--ignored",
        ])
        .run_with_timeout(timeout)
    else {
        return false;
    };
    let mut head_is_commit = false;
    for entry in out.stdout.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        match entry.strip_prefix(b"# branch.oid ") {
            Some(oid) => head_is_commit = oid == commit.as_bytes(),
            // Other headers say nothing of the files; any entry is a change.
            None if entry.starts_with(b"# ") => {}
            None => return false,
        }
    }
    head_is_commit
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

    #[test]
    fn clones_then_follows_the_branch_and_drops_local_changes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let upstream = tmp.path().join("up");
        std::fs::create_dir(&upstream).expect("mkdir");
        sh(&upstream, &["init", "--quiet", "-b", "main"]);
        std::fs::write(upstream.join("lorry-controller.conf"), "[]").expect("write");
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "--quiet", "-m", "one"]);
        let url = format!("file://{}", upstream.display());
        let checkout = tmp.path().join("confgit");

        update_confgit(&url, "main", &checkout, Duration::from_secs(60)).expect("clone");
        assert_eq!(
            std::fs::read_to_string(checkout.join("lorry-controller.conf")).expect("read"),
            "[]"
        );

        std::fs::write(upstream.join("lorry-controller.conf"), "[1]").expect("write");
        sh(&upstream, &["commit", "--quiet", "-am", "two"]);
        std::fs::write(checkout.join("stray.lorry"), "x").expect("stray");
        std::fs::write(checkout.join("lorry-controller.conf"), "local").expect("edit");
        update_confgit(&url, "main", &checkout, Duration::from_secs(60)).expect("fetch");
        assert_eq!(
            std::fs::read_to_string(checkout.join("lorry-controller.conf")).expect("read"),
            "[1]"
        );
        assert!(!checkout.join("stray.lorry").exists());

        // Upstream unchanged: a local edit, an untracked file and an
        // ignored one are dropped all the same, and the tree is the same.
        std::fs::write(upstream.join(".gitignore"), "*.ignored\n").expect("write");
        sh(&upstream, &["add", "."]);
        sh(&upstream, &["commit", "--quiet", "-m", "ignore"]);
        let head = update_confgit(&url, "main", &checkout, Duration::from_secs(60)).expect("fetch");
        let same = update_confgit(&url, "main", &checkout, Duration::from_secs(60)).expect("same");
        assert_eq!(head, same, "nothing changed: the same tree");
        let tree = crate::git()
            .current_dir(&checkout)
            .args(["rev-parse", "HEAD^{tree}"])
            .output()
            .expect("git rev-parse");
        assert_eq!(
            head.tree,
            String::from_utf8_lossy(&tree.stdout).trim(),
            "the checked-out tree"
        );
        for (file, text) in [
            ("lorry-controller.conf", "local"),
            ("stray.lorry", "x"),
            ("junk.ignored", "y"),
        ] {
            std::fs::write(checkout.join(file), text).expect("local change");
            let again =
                update_confgit(&url, "main", &checkout, Duration::from_secs(60)).expect("again");
            assert_eq!(again, head, "{file}");
            assert_eq!(
                std::fs::read_to_string(checkout.join("lorry-controller.conf")).expect("read"),
                "[1]",
                "{file}"
            );
            assert!(!checkout.join("stray.lorry").exists(), "{file}");
            assert!(!checkout.join("junk.ignored").exists(), "{file}");
        }

        // History rewritten upstream: still followed.
        sh(
            &upstream,
            &["commit", "--quiet", "--amend", "-m", "rewritten"],
        );
        update_confgit(&url, "main", &checkout, Duration::from_secs(60)).expect("forced");
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
