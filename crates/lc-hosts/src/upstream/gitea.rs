//! Listing a Gitea host, one owner at a time (the first component of each
//! prefixmap root), never the whole instance: `GET /orgs/{org}/repos`, or
//! `GET /users/{user}/repos` when the owner is not an organisation
//! (<https://docs.gitea.com/api/1.22/#tag/organization/operation/orgListRepos>,
//! <https://docs.gitea.com/api/1.22/#tag/user/operation/userListRepos>).
//! 50 a page (Gitea's default `MAX_RESPONSE_ITEMS`), following the `Link`
//! header's `rel="next"`: its query, on our own URL, since Gitea builds it
//! from its `ROOT_URL`. Archived and empty repositories are left out.

use std::collections::BTreeSet;

use reqwest::{Method, Url};
use serde_json::Value;

use super::{
    ListError, ListedRepo, Lister, MAX_PAGES, UpstreamHost, activity, roots, text_field,
    with_scheme,
};
use crate::api::{Api, Auth, link_next};
use crate::downstream::RepoMetadata;

/// Repositories per page.
pub const LIMIT: usize = 50;

pub(super) async fn list(
    lister: &Lister,
    host: &UpstreamHost,
) -> Result<Vec<ListedRepo>, ListError> {
    let root = format!("{}://{}", host.web_scheme(), host.host);
    let auth = host.token().map(Auth::Token).unwrap_or(Auth::None);
    let api = Api::new(&root, "api/v1", auth, lister.polite.clone()).map_err(|problem| {
        ListError::Host {
            host: host.host.clone(),
            problem,
        }
    })?;
    let owners: BTreeSet<String> = roots(&host.namespaces)
        .iter()
        .filter_map(|r| r.split('/').next())
        .map(str::to_owned)
        .collect();
    let mut repos = Vec::new();
    for owner in owners {
        let url = api.url(&["orgs", &owner, "repos"]);
        match list_pages(host, &api, url, &mut repos).await {
            Err(ListError::Api(err)) if err.status() == Some(404) => {
                let url = api.url(&["users", &owner, "repos"]);
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
        .append_pair("limit", &LIMIT.to_string())
        .append_pair("page", "1");
    for page in 1..=MAX_PAGES {
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
            let skip = [("archived", "include-archived"), ("empty", "include-empty")]
                .iter()
                .find(|(field, option)| {
                    !host.includes(option)
                        && repo.get(*field).and_then(Value::as_bool) == Some(true)
                })
                .map(|(field, _)| field);
            if let Some(why) = skip {
                tracing::debug!(host = %host.host, path, why, "repository left out");
                continue;
            }
            repos.push(ListedRepo {
                clone_url: clone_url(host, repo, &path),
                fingerprint: None,
                activity: activity(
                    host,
                    repo,
                    "updated_at",
                    repo.get("mirror").and_then(Value::as_bool) != Some(true),
                ),
                metadata: RepoMetadata {
                    head: text_field(repo, "default_branch"),
                    description: text_field(repo, "description"),
                    upstream: None,
                },
                path,
            });
        }
        let has_link = answer.headers.contains_key(reqwest::header::LINK);
        url = match link_next(&answer.headers) {
            Some(link) => api.follow(&url, &link)?,
            // No Link header at all (a proxy may drop it): a full page
            // means there may be more.
            None if !has_link && data.len() >= LIMIT => {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != "page")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let mut next = url.clone();
                next.query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs)
                    .append_pair("page", &(page + 1).to_string());
                next
            }
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
