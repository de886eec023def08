//! Listing GitHub (or GitHub Enterprise Server), one owner at a time (the
//! first component of each prefixmap root): `GET /orgs/{org}/repos`, or
//! `GET /users/{username}/repos` when the owner is not an organisation
//! (<https://docs.github.com/en/rest/repos/repos#list-organization-repositories>,
//! <https://docs.github.com/en/rest/repos/repos#list-repositories-for-a-user>),
//! 100 a page, following the `Link` header's `rel="next"`
//! (<https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>),
//! its query on our own URL. The API is `https://api.github.com` for
//! `github.com`, `<protocol>://<host>/api/v3` otherwise. The token
//! (`private-token`) is optional: public repositories can be listed
//! without one, at GitHub's lower rate limit. Rate limits are waited out by
//! [`crate::Politeness`] (`X-RateLimit-Remaining`/`Reset`, `Retry-After`).
//! Archived repositories, forks and empty ones (`size` 0) are left out.

use std::collections::BTreeSet;

use reqwest::{Method, Url};
use serde_json::Value;

use super::{
    ListError, ListedRepo, Lister, MAX_PAGES, UpstreamHost, activity, roots, text_field,
    with_scheme,
};
use crate::api::{Api, Auth, link_next};
use crate::downstream::RepoMetadata;

/// Repositories per page: GitHub's maximum.
pub const PER_PAGE: usize = 100;

/// The REST API of the GitHub at `host`, reached over `scheme`.
pub fn api_root(host: &str, scheme: &str) -> (String, &'static str) {
    if host == "github.com" {
        ("https://api.github.com".to_owned(), "")
    } else {
        (format!("{scheme}://{host}"), "api/v3")
    }
}

pub(super) async fn list(
    lister: &Lister,
    host: &UpstreamHost,
) -> Result<Vec<ListedRepo>, ListError> {
    let (root, path) = api_root(&host.host, host.web_scheme());
    let auth = Auth::Github(host.token());
    let api =
        Api::new(&root, path, auth, lister.polite.clone()).map_err(|problem| ListError::Host {
            host: host.host.clone(),
            problem,
        })?;
    let owners: BTreeSet<String> = roots(&host.namespaces)
        .iter()
        .filter_map(|r| r.split('/').next())
        .map(str::to_owned)
        .collect();
    let mut repos = Vec::new();
    for owner in owners {
        let mut url = api.url(&["orgs", &owner, "repos"]);
        url.query_pairs_mut().append_pair("type", "all");
        match list_pages(host, &api, url, &mut repos).await {
            Err(ListError::Api(err)) if err.status() == Some(404) => {
                let mut url = api.url(&["users", &owner, "repos"]);
                url.query_pairs_mut().append_pair("type", "owner");
                match list_pages(host, &api, url, &mut repos).await {
                    Err(ListError::Api(err)) if err.status() == Some(404) => {
                        tracing::warn!(host = %host.host, owner, "no such organisation or user");
                    }
                    other => other?,
                }
            }
            other => other?,
        }
    }
    Ok(repos)
}

async fn list_pages(
    host: &UpstreamHost,
    api: &Api,
    mut url: Url,
    repos: &mut Vec<ListedRepo>,
) -> Result<(), ListError> {
    url.query_pairs_mut()
        .append_pair("sort", "full_name")
        .append_pair("per_page", &PER_PAGE.to_string());
    for _ in 0..MAX_PAGES {
        let answer = api.call_expect(Method::GET, url.clone(), None, 200).await?;
        let Some(data) = answer.body.as_array() else {
            return Err(api
                .bad_answer(&Method::GET, &url, "not a list of repositories")
                .into());
        };
        for repo in data {
            let Some(path) = text_field(repo, "full_name") else {
                return Err(api
                    .bad_answer(&Method::GET, &url, "a repository without full_name")
                    .into());
            };
            let flag = |key: &str| repo.get(key).and_then(Value::as_bool) == Some(true);
            let why = if flag("archived") && !host.includes("include-archived") {
                Some("archived")
            } else if flag("fork") && !host.includes("include-forks") {
                Some("a fork")
            } else if repo.get("size").and_then(Value::as_u64) == Some(0)
                && !host.includes("include-empty")
            {
                Some("empty")
            } else {
                None
            };
            if let Some(why) = why {
                tracing::debug!(host = %host.host, path, why, "repository left out");
                continue;
            }
            repos.push(ListedRepo {
                clone_url: clone_url(host, repo, &path),
                fingerprint: None,
                activity: activity(
                    host,
                    repo,
                    "pushed_at",
                    repo.get("mirror_url").is_none_or(Value::is_null),
                ),
                metadata: RepoMetadata {
                    head: text_field(repo, "default_branch"),
                    description: text_field(repo, "description"),
                    upstream: None,
                },
                path,
            });
        }
        url = match link_next(&answer.headers) {
            Some(link) => api.follow(&url, &link)?,
            None => return Ok(()),
        };
    }
    Err(ListError::Host {
        host: host.host.clone(),
        problem: format!("more than {MAX_PAGES} pages of repositories"),
    })
}

fn clone_url(host: &UpstreamHost, repo: &Value, path: &str) -> String {
    if host.protocol == "ssh" {
        text_field(repo, "ssh_url").unwrap_or_else(|| format!("ssh://git@{}/{path}.git", host.host))
    } else {
        text_field(repo, "clone_url")
            .map(|u| with_scheme(&u, &host.protocol))
            .unwrap_or_else(|| format!("{}://{}/{path}.git", host.protocol, host.host))
    }
}
