//! Downstream Hosts: where mirrors are pushed, and preparing a repository
//! there before each job.
//!
//! | type | missing repository | metadata |
//! |---|---|---|
//! | `local` | `git init --bare` at `<base>/<path>.git` (in-process) | HEAD and `description` set at creation |
//! | `gitlab` | missing parent groups created level by level, then the project | description at creation, a changed one put alone; default branch and force pushes on protected branches after the first push |
//! | `gitea` | the organisation if missing, then the repository | description likewise; default branch after the first push |
//! | `github` | the repository, in an existing organisation or the token's user; issues, wiki, projects and Actions off | description at creation; default branch after the first push |
//! | `gerrit` | `gerrit create-project` over ssh | `--branch`, `--description` of the same call |
//! | `gitano` | `create` over ssh | `config <path> set project.head/description` at creation |
//!
//! An existing repository is otherwise left alone. Failing to create a
//! repository is an error (the job fails with it); failing to set metadata
//! is only logged.

mod gerrit;
mod gitano;
mod gitea;
mod github;
mod gitlab;
mod local;
mod owner_repo;

use std::sync::Arc;

pub use gerrit::Gerrit;
pub use gitano::Gitano;
pub use gitea::Gitea;
pub use github::Github;
pub use gitlab::{Gitlab, Visibility};
pub use local::Local;
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::ssh::SshError;

/// What is known of an upstream repository, to be copied downstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoMetadata {
    /// Default branch name (`main`, not `refs/heads/main`).
    pub head: Option<String>,
    pub description: Option<String>,
    /// Where the mirror comes from (the lorry's `url`), for the "Mirror
    /// of" description a host shows when the upstream gives none.
    #[serde(default)]
    pub upstream: Option<String>,
}

impl RepoMetadata {
    /// The default branch, if it is a valid branch name; a bad one is ignored.
    pub fn valid_head(&self) -> Option<&str> {
        let head = self.head.as_deref()?;
        let head = head.strip_prefix("refs/heads/").unwrap_or(head);
        git2::Reference::is_valid_name(&format!("refs/heads/{head}")).then_some(head)
    }

    /// The description, without control characters other than newlines
    /// and tabs, and not empty.
    pub fn clean_description(&self) -> Option<String> {
        let text: String = self
            .description
            .as_deref()?
            .chars()
            .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
            .collect();
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    }

    /// The upstream's description, or else "Mirror of <upstream URL>"
    /// with any credentials taken off the URL.
    pub fn mirror_description(&self) -> Option<String> {
        self.clean_description().or_else(|| {
            let upstream = self.upstream.as_deref()?.trim();
            if upstream.is_empty() || upstream.chars().any(char::is_control) {
                return None;
            }
            let shown = match reqwest::Url::parse(upstream) {
                Ok(mut url) if url.has_host() => {
                    let _ = url.set_username("");
                    let _ = url.set_password(None);
                    url.set_query(None);
                    url.set_fragment(None);
                    url.to_string()
                }
                _ => lc_base::redact::redact(upstream).into_owned(),
            };
            Some(format!("Mirror of {shown}"))
        })
    }

    /// The upstream URL of a lorry's single-entry spec map (as STATEDB
    /// keeps it), if it has one.
    pub fn upstream_of_spec(spec_text: &str) -> Option<String> {
        let spec: serde_json::Value = serde_json::from_str(spec_text).ok()?;
        let (_, body) = spec.as_object()?.iter().next()?;
        body.get("url")?.as_str().map(str::to_owned)
    }
}

/// What preparing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// The repository was created.
    Created,
    /// It existed; its metadata was brought up to date.
    Updated,
    /// It existed and was left as it was.
    Existing,
}

/// Why a repository could not be prepared. Messages name the host, the
/// path and what the host said; they never hold a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("{path:?} cannot be a repository on the {kind} Downstream Host: {problem}")]
    BadPath {
        kind: &'static str,
        path: String,
        problem: String,
    },
    #[error("cannot create {repo}: {problem}")]
    Local { repo: String, problem: String },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("cannot create {path:?}: {problem}")]
    Refused { path: String, problem: String },
}

/// A Downstream Host, chosen by `--git-server-type`.
#[derive(Debug, Clone)]
pub enum Downstream {
    Local(Local),
    Gitlab(Arc<Gitlab>),
    Gitea(Arc<Gitea>),
    Github(Arc<Github>),
    Gerrit(Gerrit),
    Gitano(Gitano),
}

impl Downstream {
    /// The `--git-server-type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Downstream::Local(_) => "local",
            Downstream::Gitlab(_) => "gitlab",
            Downstream::Gitea(_) => "gitea",
            Downstream::Github(_) => "github",
            Downstream::Gerrit(_) => "gerrit",
            Downstream::Gitano(_) => "gitano",
        }
    }

    /// Makes sure the repository for the lorry `path` exists, creating it
    /// with `metadata` if it does not.
    pub async fn prepare(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        check_path(self.kind(), path)?;
        match self {
            Downstream::Local(local) => local.prepare(path, metadata).await,
            Downstream::Gitlab(gitlab) => gitlab.prepare(path, metadata).await,
            Downstream::Gitea(gitea) => gitea.prepare(path, metadata).await,
            Downstream::Github(github) => github.prepare(path, metadata).await,
            Downstream::Gerrit(gerrit) => gerrit.prepare(path, metadata).await,
            Downstream::Gitano(gitano) => gitano.prepare(path, metadata).await,
        }
    }

    /// After a job pushed to the repository of `path`: the settings that
    /// need a pushed branch (GitLab's and Gitea's default branch, force
    /// pushes on GitLab's protected branches). The webapp calls this, as
    /// the holder of the host's token; other hosts need nothing.
    /// Whether [`Downstream::after_push`] has anything to do on this host.
    pub fn acts_after_push(&self) -> bool {
        matches!(
            self,
            Downstream::Gitlab(_) | Downstream::Gitea(_) | Downstream::Github(_)
        )
    }

    pub async fn after_push(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<(), PrepareError> {
        match self {
            Downstream::Gitlab(gitlab) => gitlab.after_push(path, metadata).await,
            Downstream::Gitea(gitea) => gitea.after_push(path, metadata).await,
            Downstream::Github(github) => github.after_push(path, metadata).await,
            Downstream::Local(_) | Downstream::Gerrit(_) | Downstream::Gitano(_) => Ok(()),
        }
    }
}

/// Refuses a lorry path that no host could take as a repository path: empty
/// or `.`/`..` components, absolute, control characters.
fn check_path(kind: &'static str, path: &str) -> Result<(), PrepareError> {
    let problem = if path.is_empty() {
        Some("it is empty")
    } else if path.starts_with('/') {
        Some("it is absolute")
    } else if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        Some("it has an empty, '.' or '..' component")
    } else if path.chars().any(char::is_control) {
        Some("it has control characters")
    } else if path.starts_with('-') {
        Some("it starts with '-'")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(PrepareError::BadPath {
            kind,
            path: path.to_owned(),
            problem: problem.to_owned(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_cleaned() {
        let m = RepoMetadata {
            head: Some("refs/heads/main".into()),
            description: Some("  A\u{7}B \n".into()),
            upstream: Some("https://u:tok@h/x".into()),
        };
        assert_eq!(m.valid_head(), Some("main"));
        assert_eq!(m.clean_description().as_deref(), Some("AB"));
        assert_eq!(m.mirror_description().as_deref(), Some("AB"));
        let bad = RepoMetadata {
            head: Some("a..b".into()),
            description: Some("   ".into()),
            upstream: None,
        };
        assert_eq!(bad.valid_head(), None);
        assert_eq!(bad.clean_description(), None);
        assert_eq!(bad.mirror_description(), None);
        let plain = |upstream: &str| RepoMetadata {
            upstream: Some(upstream.into()),
            ..RepoMetadata::default()
        };
        assert_eq!(
            plain("https://user:tok@git.example.com/a.git?private_token=x")
                .mirror_description()
                .as_deref(),
            Some("Mirror of https://git.example.com/a.git")
        );
        assert_eq!(
            plain("git://h/a").mirror_description().as_deref(),
            Some("Mirror of git://h/a")
        );
        assert_eq!(
            RepoMetadata::upstream_of_spec(r#"{"a/b": {"type": "git", "url": "git://h/a"}}"#)
                .as_deref(),
            Some("git://h/a")
        );
        assert_eq!(RepoMetadata::upstream_of_spec("not json"), None);
    }

    #[test]
    fn paths_are_checked() {
        for bad in ["", "/abs", "a/../../x", "a//b", "./a", "a\nb", "-x/y"] {
            assert!(check_path("local", bad).is_err(), "{bad:?}");
        }
        assert!(check_path("local", "a/b.c/d").is_ok());
    }
}
