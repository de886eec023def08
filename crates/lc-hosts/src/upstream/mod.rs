//! Upstream Hosts: listing every repository a host offers.
//!
//! | type | listing | clone URL |
//! |---|---|---|
//! | `trove` | Gitano `ls` over ssh (`git@host`), or `GET /gitano-command.cgi?cmd=ls` over http(s) with basic auth | `ssh://git@host/path`, `http(s)://[user:pass@]host/git/path` |
//! | `gitlab` | per prefixmap root: `GET /api/v4/groups/:id/projects?include_subgroups=true` (or `/users/:id/projects`), 100 a page | `ssh_url_to_repo`, or `http_url_to_repo` in the host's protocol |
//! | `gitea` | per owner of a prefixmap root: `GET /api/v1/orgs/{org}/repos` (or `/users/{user}/repos`), 50 a page | `ssh_url`, or `clone_url` in the host's protocol |
//!
//! | `github` | per owner of a prefixmap root: `GET /orgs/{org}/repos` (or `/users/{user}/repos`) of `https://api.github.com` or `<host>/api/v3`, 100 a page; rate limits waited out; forks left out too | `ssh_url`, or `clone_url` in the host's protocol |
//!
//! GitLab, Gitea and GitHub are listed only where the prefixmap could map
//! something, never as a whole instance; archived and empty repositories
//! (and GitHub forks) are left out unless the host section includes them
//! (`include-archived`, `include-empty`, `include-forks`).
//!
//! | `grokmirror` | `GET manifest-url` (gzip JSON as grokmirror writes it), conditional on the last read's `ETag`/`Last-Modified` | `clone-base` + the manifest's key |
//!
//! `--debug-fake-upstream-host HOST=FILE` replaces the listing of HOST by
//! the `ls-output` list of the JSON file FILE.

mod gitea;
pub(crate) mod github;
mod gitlab;
pub mod grokmirror;
pub(crate) mod trove;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::Politeness;
use crate::Secret;
use crate::api::ApiError;
use crate::downstream::RepoMetadata;
use crate::ssh::{Ssh, SshError};

/// An Upstream Host as configured in CONFGIT (and stored in STATEDB).
#[derive(Debug, Clone)]
pub struct UpstreamHost {
    pub host: String,
    /// `trove`, `gitlab` or `gitea`.
    pub host_type: String,
    /// `ssh`, `http` or `https`: how repositories are cloned (and, for
    /// http(s), how the API is reached).
    pub protocol: String,
    /// `auth` (`username`, `password`) and `private-token`: secrets.
    pub type_params: Value,
    /// The prefixmap's roots (its keys): what is listed of a GitLab or
    /// Gitea host.
    pub namespaces: Vec<String>,
}

impl UpstreamHost {
    /// The HTTP basic authentication of a Trove, if configured.
    fn basic_auth(&self) -> Option<(String, Secret)> {
        let auth = self.type_params.get("auth")?;
        let user = auth.get("username")?.as_str()?;
        let password = auth.get("password").and_then(Value::as_str).unwrap_or("");
        Some((user.to_owned(), Secret::new(password)))
    }

    /// The API token of a GitLab or Gitea host, if configured.
    fn token(&self) -> Option<Secret> {
        ["private-token", "access-token", "token"]
            .iter()
            .find_map(|key| self.type_params.get(*key)?.as_str())
            .filter(|t| !t.is_empty())
            .map(Secret::new)
    }

    /// Whether the host section says to list what is left out by default
    /// (`include-archived`, `include-empty`, `include-forks`).
    fn includes(&self, key: &str) -> bool {
        self.type_params.get(key).and_then(Value::as_bool) == Some(true)
    }

    /// `http` for a host reached over http, otherwise `https`.
    fn web_scheme(&self) -> &'static str {
        if self.protocol == "http" {
            "http"
        } else {
            "https"
        }
    }
}

/// One repository of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRepo {
    /// Path on the Upstream Host (`group/sub/repo`).
    pub path: String,
    /// What lorry clones.
    pub clone_url: String,
    pub metadata: RepoMetadata,
    /// The fingerprint of its refs, when the host publishes one (grokmirror).
    pub fingerprint: Option<String>,
    /// When the host says it last changed, in seconds since the epoch by
    /// the host's clock: only with `"activity-hint": true`, and only when
    /// the field is there, readable and trustworthy (see [`activity`]).
    pub activity: Option<i64>,
}

/// Why a listing failed. Never holds a token or password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("{host}: fake listing {file}: {problem}")]
    Fake {
        host: String,
        file: String,
        problem: String,
    },
    #[error("{host}: {problem}")]
    Host { host: String, problem: String },
}

/// Lists Upstream Hosts.
#[derive(Debug, Clone, Default)]
pub struct Lister {
    pub polite: Arc<Politeness>,
    /// `--debug-fake-upstream-host`: host → JSON file.
    pub fake: BTreeMap<String, PathBuf>,
    pub ssh: Ssh,
}

/// Pages read at most from one host in one listing: 10,000 pages of 100.
const MAX_PAGES: usize = 10_000;

impl Lister {
    /// Every repository of `host`.
    pub async fn list(&self, host: &UpstreamHost) -> Result<Vec<ListedRepo>, ListError> {
        if let Some(file) = self.fake.get(&host.host) {
            return fake_listing(host, file).await;
        }
        match host.host_type.as_str() {
            "trove" => trove::list(self, host).await,
            "gitlab" => gitlab::list(self, host).await,
            "gitea" => gitea::list(self, host).await,
            "github" => github::list(self, host).await,
            "grokmirror" => match grokmirror::read(self, host, None).await? {
                grokmirror::ManifestRead::Read { repos, .. } => Ok(repos),
                grokmirror::ManifestRead::Unchanged => Err(ListError::Host {
                    host: host.host.clone(),
                    problem: "answered 304 to an unconditional request".into(),
                }),
            },
            other => Err(ListError::Host {
                host: host.host.clone(),
                problem: format!("unknown Upstream Host type {other:?}"),
            }),
        }
    }
}

/// A listing read from `{"ls-output": ["path", ...]}`.
async fn fake_listing(
    host: &UpstreamHost,
    file: &std::path::Path,
) -> Result<Vec<ListedRepo>, ListError> {
    let fail = |problem: String| ListError::Fake {
        host: host.host.clone(),
        file: file.display().to_string(),
        problem,
    };
    let text = tokio::fs::read_to_string(file)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let Some(list) = value.get("ls-output").and_then(Value::as_array) else {
        return Err(fail("no \"ls-output\" list".to_owned()));
    };
    let mut repos = Vec::with_capacity(list.len());
    for item in list {
        let Some(path) = item.as_str() else {
            return Err(fail(format!("{item} is not a repository path")));
        };
        let clone_url = match host.host_type.as_str() {
            "trove" => trove::clone_url(host, path),
            _ if host.protocol == "ssh" => format!("ssh://git@{}/{path}.git", host.host),
            _ => format!("{}://{}/{path}.git", host.protocol, host.host),
        };
        repos.push(ListedRepo {
            path: path.to_owned(),
            clone_url,
            metadata: RepoMetadata::default(),
            fingerprint: None,
            activity: None,
        });
    }
    Ok(repos)
}

/// The namespaces to list: the roots without trailing `/`, empty ones
/// dropped (they map nothing), and a root inside another left out (the
/// outer one's listing has it).
fn roots(namespaces: &[String]) -> Vec<String> {
    let trimmed: std::collections::BTreeSet<&str> = namespaces
        .iter()
        .map(|n| n.trim_matches('/'))
        .filter(|n| !n.is_empty())
        .collect();
    trimmed
        .iter()
        .filter(|n| {
            !trimmed.iter().any(|outer| {
                n.len() > outer.len() && n.starts_with(*outer) && n[outer.len()..].starts_with('/')
            })
        })
        .map(|n| (*n).to_owned())
        .collect()
}

/// `url` with its scheme replaced by `scheme` (GitLab and Gitea give
/// http(s) clone URLs in their own external scheme).
fn with_scheme(url: &str, scheme: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => format!("{scheme}://{rest}"),
        None => url.to_owned(),
    }
}

/// How much later than the activity time a host reports a change may
/// happen without moving it, by host type; `None`: the type reports none.
///
/// * GitLab's `last_activity_at` is moved by an event only when it is at
///   least an hour old (`Event::RESET_PROJECT_ACTIVITY_INTERVAL`, `1.hour`,
///   in `app/models/event.rb`; introduced by
///   <https://gitlab.com/gitlab-org/gitlab-foss/-/merge_requests/6391>,
///   "Restrict last_activity_at updates to one per hour"): 3,600 s.
/// * Gitea's `updated_at` is set to the time a push is processed
///   (`UpdateRepositoryUpdatedTime(ctx, repo.ID, time.Now())` at the end of
///   `pushUpdates` in `services/repository/push.go`), for branches and
///   tags alike: 0.
/// * GitHub's `pushed_at` is documented only as a date-time in the
///   repository schema
///   (<https://docs.github.com/en/rest/repos/repos#list-organization-repositories>);
///   GitHub support describes it as moved by pushes to the repository's
///   refs (<https://github.com/orgs/community/discussions/24442>): 0. Which
///   pushes move it is not documented (a push of tags alone, in
///   particular), so a lorry whose upstream only adds tags may wait for
///   the full check (`--full-check-every`).
///
/// lc-core adds `ACTIVITY_MARGIN` to each for clock skew.
pub fn activity_granularity(host_type: &str) -> Option<i64> {
    match host_type {
        "gitlab" => Some(3_600),
        "gitea" | "github" => Some(0),
        _ => None,
    }
}

/// No repository changed before git existed (2005-04-07): an activity time
/// earlier than this is nonsense (a zero date, a wrong field), not a hint.
const EARLIEST_ACTIVITY: i64 = 1_112_832_000;

/// The activity time in the field `key` of `repo` (RFC 3339, any offset),
/// when the host section asks for the hint and `trusted` (the host moves
/// the field on pushes for this repository: not a pull mirror). Missing,
/// unreadable or absurd: `None`, so the lorry gets its job.
fn activity(host: &UpstreamHost, repo: &Value, key: &str, trusted: bool) -> Option<i64> {
    if !trusted || !host.includes("activity-hint") {
        return None;
    }
    let text = repo.get(key).and_then(Value::as_str);
    let at = text
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(jiff::Timestamp::as_second)
        .filter(|at| *at >= EARLIEST_ACTIVITY);
    if at.is_none() {
        tracing::debug!(host = %host.host, key, value = ?repo.get(key), "no usable activity time");
    }
    at
}

/// A string field of a JSON object, if present and not empty.
fn text_field(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(kind: &str, protocol: &str) -> UpstreamHost {
        UpstreamHost {
            host: "up.example.com".into(),
            host_type: kind.into(),
            protocol: protocol.into(),
            type_params: serde_json::json!({}),
            namespaces: Vec::new(),
        }
    }

    #[test]
    fn roots_are_the_outermost_non_empty_prefixes() {
        let r = roots(&[
            "a/".into(),
            "a/b".into(),
            "ab".into(),
            "".into(),
            "/c/d/".into(),
        ]);
        assert_eq!(r, ["a", "ab", "c/d"]);
    }

    #[tokio::test]
    async fn fake_listings_come_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ls.json");
        std::fs::write(&file, r#"{"ls-output": ["a/b", "c/d/e"]}"#).expect("write");
        let mut lister = Lister::default();
        lister.fake.insert("up.example.com".into(), file.clone());
        let repos = lister.list(&host("trove", "ssh")).await.expect("list");
        let paths: Vec<_> = repos.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["a/b", "c/d/e"]);
        assert_eq!(repos[0].clone_url, "ssh://git@up.example.com/a/b");
        let repos = lister.list(&host("gitlab", "https")).await.expect("list");
        assert_eq!(repos[1].clone_url, "https://up.example.com/c/d/e.git");

        std::fs::write(&file, r#"{"ls": []}"#).expect("write");
        let err = lister.list(&host("trove", "ssh")).await.expect_err("bad");
        assert!(err.to_string().contains("ls-output"), "{err}");
        std::fs::write(&file, r#"{"ls-output": [1]}"#).expect("write");
        assert!(lister.list(&host("trove", "ssh")).await.is_err());
        std::fs::remove_file(&file).expect("rm");
        assert!(lister.list(&host("trove", "ssh")).await.is_err());
    }

    #[test]
    fn activity_is_read_only_when_asked_for_trusted_and_sane() {
        let mut h = host("gitea", "https");
        let repo = serde_json::json!({
            "updated_at": "2024-01-02T03:04:05+01:00",
            "z": "2024-01-02T02:04:05.250Z",
            "bad": "yesterday", "zero": "0001-01-01T00:00:00Z", "num": 1_700_000_000,
        });
        assert_eq!(activity(&h, &repo, "updated_at", true), None);
        h.type_params = serde_json::json!({"activity-hint": true});
        assert_eq!(activity(&h, &repo, "updated_at", true), Some(1_704_161_045));
        assert_eq!(activity(&h, &repo, "z", true), Some(1_704_161_045));
        assert_eq!(activity(&h, &repo, "updated_at", false), None);
        for key in ["bad", "zero", "num", "missing"] {
            assert_eq!(activity(&h, &repo, key, true), None, "{key}");
        }
        assert_eq!(activity_granularity("gitlab"), Some(3_600));
        assert_eq!(activity_granularity("trove"), None);
    }

    #[test]
    fn schemes_are_replaced() {
        assert_eq!(with_scheme("https://h/a.git", "http"), "http://h/a.git");
        assert_eq!(with_scheme("nonsense", "http"), "nonsense");
    }
}
