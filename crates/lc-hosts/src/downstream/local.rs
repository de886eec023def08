//! `local`: bare repositories at `<base>/<path>.git` on this machine.

use std::path::{Path, PathBuf};

use super::{PrepareError, Prepared, RepoMetadata};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    base: PathBuf,
}

impl Local {
    pub fn new(base: impl Into<PathBuf>) -> Local {
        Local { base: base.into() }
    }

    /// Where the repository of lorry `path` is (or will be).
    pub fn repo_dir(&self, path: &str) -> PathBuf {
        self.base.join(format!("{path}.git"))
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub(super) async fn prepare(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        // The path was checked by Downstream::prepare: it stays under base.
        let repo = self.base.join(format!("{path}.git"));
        // The steady state, checked here: one stat costs less than handing
        // the work to a blocking thread and back, which under load showed
        // in give-me-job's p99. Only creating goes to a blocking thread.
        if repo.join("HEAD").is_file() {
            return Ok(Prepared::Existing);
        }
        let metadata = metadata.clone();
        tokio::task::spawn_blocking(move || init_bare(&repo, &metadata))
            .await
            .map_err(|e| PrepareError::Local {
                repo: path.to_owned(),
                problem: e.to_string(),
            })?
    }
}

/// Creates a bare repository at `repo`, with missing parents, its HEAD on
/// the upstream's default branch and its description; an existing one is
/// left as it is.
///
/// In-process (libgit2) rather than `git init`: this runs inside
/// give-me-job before a lorry's first job, and spawning git would cost more
/// than the rest of the request. It touches only the local file system.
fn init_bare(repo: &Path, metadata: &RepoMetadata) -> Result<Prepared, PrepareError> {
    if repo.join("HEAD").is_file() {
        return Ok(Prepared::Existing);
    }
    let fail = |problem: String| PrepareError::Local {
        repo: repo.display().to_string(),
        problem,
    };
    let mut options = git2::RepositoryInitOptions::new();
    options.bare(true).mkpath(true).external_template(false);
    if let Some(head) = metadata.valid_head() {
        options.initial_head(head);
    }
    git2::Repository::init_opts(repo, &options).map_err(|e| fail(e.message().to_owned()))?;
    if let Some(description) = metadata.clean_description() {
        std::fs::write(repo.join("description"), format!("{description}\n"))
            .map_err(|e| fail(format!("cannot write its description: {e}")))?;
    }
    Ok(Prepared::Created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Downstream;

    #[expect(
        clippy::disallowed_methods,
        reason = "the test inspects created repositories with the real git"
    )]
    fn git(repo: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .expect("git");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[tokio::test]
    async fn creates_a_bare_repository_with_metadata_and_keeps_an_existing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Downstream::Local(Local::new(dir.path()));
        let meta = RepoMetadata {
            head: Some("trunk".into()),
            description: Some("The upstream's words".into()),
            upstream: None,
        };
        assert_eq!(
            d.prepare("a/b", &meta).await.expect("create"),
            Prepared::Created
        );
        let repo = dir.path().join("a/b.git");
        assert_eq!(git(&repo, &["rev-parse", "--is-bare-repository"]), "true");
        assert_eq!(git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/trunk");
        assert_eq!(
            std::fs::read_to_string(repo.join("description")).expect("read"),
            "The upstream's words\n"
        );
        std::fs::write(repo.join("description"), "kept").expect("write");
        assert_eq!(
            d.prepare("a/b", &meta).await.expect("again"),
            Prepared::Existing
        );
        assert_eq!(
            std::fs::read_to_string(repo.join("description")).expect("read"),
            "kept"
        );
    }

    #[tokio::test]
    async fn paths_that_would_leave_the_base_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Downstream::Local(Local::new(dir.path().join("base")));
        for bad in ["", "/abs", "a/../../x", "a//b", "./a", "a\nb"] {
            let err = d
                .prepare(bad, &RepoMetadata::default())
                .await
                .expect_err(bad);
            assert!(
                matches!(err, PrepareError::BadPath { .. }),
                "{bad:?}: {err}"
            );
        }
        assert!(!dir.path().join("base").exists());
    }

    #[tokio::test]
    async fn a_file_in_the_way_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), "not a directory").expect("write");
        let d = Downstream::Local(Local::new(dir.path()));
        let err = d
            .prepare("a/b", &RepoMetadata::default())
            .await
            .expect_err("cannot create");
        assert!(err.to_string().contains("cannot create"), "{err}");
        assert!(err.to_string().contains("a/b.git"), "{err}");
    }
}
