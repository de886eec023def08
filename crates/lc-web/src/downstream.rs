//! The Downstream Host: where mirrors are pushed, and preparing a
//! repository there before each job.

use std::path::{Path, PathBuf};

/// Where mirrors go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Downstream {
    /// Bare repositories at `<base>/<path>.git` on this machine.
    Local { base: PathBuf },
    /// A host type whose repository creation lives outside the webapp core.
    /// Jobs are handed out; `lorry` pushes to whatever its configuration says.
    External { kind: String },
}

impl Downstream {
    /// Makes sure the repository for `path` exists; an existing one is left as it is.
    pub async fn prepare(&self, path: &str) -> Result<(), String> {
        match self {
            Downstream::Local { base } => {
                let repo = local_repo_path(base, path)?;
                tokio::task::spawn_blocking(move || init_bare(&repo))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Downstream::External { .. } => Ok(()),
        }
    }
}

/// Creates a bare repository at `repo`, with missing parents; an existing
/// one is left as it is.
///
/// In-process (libgit2) rather than `git init`: this runs inside
/// give-me-job before a lorry's first job, and spawning git would cost more
/// than the rest of the request. It touches only the local file system.
fn init_bare(repo: &Path) -> Result<(), String> {
    if repo.join("HEAD").is_file() {
        return Ok(());
    }
    let mut options = git2::RepositoryInitOptions::new();
    options.bare(true).mkpath(true).external_template(false);
    git2::Repository::init_opts(repo, &options)
        .map(drop)
        .map_err(|err| format!("cannot create {}: {}", repo.display(), err.message()))
}

/// `<base>/<path>.git`, refusing a path that would leave `base`.
fn local_repo_path(base: &Path, path: &str) -> Result<PathBuf, String> {
    let escapes = path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        || path.chars().any(char::is_control);
    if escapes {
        return Err(format!(
            "lorry path {path:?} cannot be a repository under {}",
            base.display()
        ));
    }
    Ok(base.join(format!("{path}.git")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_bare_makes_a_repository_git_accepts_and_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("a/b.git");
        init_bare(&repo).expect("init");
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["rev-parse", "--is-bare-repository"])
            .output()
            .expect("git");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true");
        std::fs::write(repo.join("description"), "kept").expect("write");
        init_bare(&repo).expect("again");
        assert_eq!(
            std::fs::read_to_string(repo.join("description")).expect("read"),
            "kept"
        );
    }

    #[test]
    fn local_paths_stay_under_the_base() {
        let base = Path::new("/srv/git");
        assert_eq!(
            local_repo_path(base, "a/b").expect("ok"),
            Path::new("/srv/git/a/b.git")
        );
        for bad in ["", "/abs", "a/../../x", "a//b", "./a", "a\nb"] {
            assert!(local_repo_path(base, bad).is_err(), "{bad:?}");
        }
    }
}
