//! The only crate that runs `git`.
//!
//! Every invocation is hermetic and non-interactive: no system or user git
//! configuration, no terminal prompts, `LC_ALL=C`.

use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("git {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
}

/// A `git` command with a hermetic environment.
pub fn git() -> Command {
    let mut cmd = Command::new("git");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C");
    cmd
}

/// Creates a bare repository at `path`, with missing parents; an existing
/// repository is left as it is.
pub fn init_bare(path: &Path) -> Result<(), GitError> {
    if path.join("HEAD").is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(path)?;
    let output = git()
        .arg("init")
        .arg("--bare")
        .arg("--quiet")
        .arg(path)
        .output()?;
    if !output.status.success() {
        return Err(GitError::Failed {
            args: format!("init --bare {}", path.display()),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
