//! Listing a Gitea instance: `GET /api/v1/repos/search`, every repository
//! the token can see, 50 a page (Gitea's default maximum), following the
//! `Link` header's `rel="next"`.

use reqwest::Method;
use serde_json::Value;

use super::{ListError, ListedRepo, Lister, MAX_PAGES, UpstreamHost, text_field, with_scheme};
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
    let mut url = api.url(&["repos", "search"]);
    url.query_pairs_mut()
        .append_pair("sort", "id")
        .append_pair("order", "asc")
        .append_pair("limit", &LIMIT.to_string())
        .append_pair("page", "1");
    let mut repos = Vec::new();
    for page in 1..=MAX_PAGES {
        let answer = api.call_expect(Method::GET, url.clone(), None, 200).await?;
        if answer.body.get("ok").and_then(Value::as_bool) == Some(false) {
            return Err(api
                .bad_answer(&Method::GET, &url, "the search answered ok: false")
                .into());
        }
        let Some(data) = answer.body.get("data").and_then(Value::as_array) else {
            return Err(api.bad_answer(&Method::GET, &url, "no data list").into());
        };
        for repo in data {
            let Some(path) = text_field(repo, "full_name") else {
                return Err(api
                    .bad_answer(&Method::GET, &url, "a repository without full_name")
                    .into());
            };
            repos.push(ListedRepo {
                clone_url: clone_url(host, repo, &path),
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
                let mut next = url.clone();
                let pairs: Vec<(String, String)> = next
                    .query_pairs()
                    .filter(|(k, _)| k != "page")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                next.query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs)
                    .append_pair("page", &(page + 1).to_string());
                next
            }
            None => return Ok(repos),
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
