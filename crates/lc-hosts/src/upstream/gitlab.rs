//! Listing a GitLab instance: `GET /api/v4/projects`, every project the
//! token can see, 100 a page, following `X-Next-Page` (or the `Link`
//! header's `rel="next"` when a proxy dropped the former).

use reqwest::{Method, Url};
use serde_json::Value;

use super::{ListError, ListedRepo, Lister, MAX_PAGES, UpstreamHost, text_field, with_scheme};
use crate::api::{Api, Auth, link_next};
use crate::downstream::RepoMetadata;

/// Projects per page: GitLab's maximum.
pub const PER_PAGE: usize = 100;

pub(super) async fn list(
    lister: &Lister,
    host: &UpstreamHost,
) -> Result<Vec<ListedRepo>, ListError> {
    let root = format!("{}://{}", host.web_scheme(), host.host);
    let auth = host.token().map(Auth::Bearer).unwrap_or(Auth::None);
    let api = Api::new(&root, "api/v4", auth, lister.polite.clone()).map_err(|problem| {
        ListError::Host {
            host: host.host.clone(),
            problem,
        }
    })?;
    let mut url = api.url(&["projects"]);
    url.query_pairs_mut()
        .append_pair("simple", "true")
        .append_pair("order_by", "id")
        .append_pair("sort", "asc")
        .append_pair("per_page", &PER_PAGE.to_string())
        .append_pair("page", "1");
    let mut repos = Vec::new();
    for _ in 0..MAX_PAGES {
        let answer = api.call_expect(Method::GET, url.clone(), None, 200).await?;
        let Some(projects) = answer.body.as_array() else {
            return Err(api
                .bad_answer(&Method::GET, &url, "not a list of projects")
                .into());
        };
        for project in projects {
            let Some(path) = text_field(project, "path_with_namespace") else {
                return Err(api
                    .bad_answer(&Method::GET, &url, "a project without path_with_namespace")
                    .into());
            };
            repos.push(ListedRepo {
                clone_url: clone_url(host, project, &path),
                metadata: RepoMetadata {
                    head: text_field(project, "default_branch"),
                    description: text_field(project, "description"),
                },
                path,
            });
        }
        let next_page = answer
            .headers
            .get("x-next-page")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        url = match (next_page, link_next(&answer.headers)) {
            (Some(page), _) => {
                let mut next = url.clone();
                set_page(&mut next, page);
                next
            }
            (None, Some(link)) => api.follow(&url, &link)?,
            (None, None) => return Ok(repos),
        };
    }
    Err(ListError::Host {
        host: host.host.clone(),
        problem: format!("more than {MAX_PAGES} pages of projects"),
    })
}

fn set_page(url: &mut Url, page: &str) {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut query = url.query_pairs_mut();
    query.clear();
    for (k, v) in &pairs {
        query.append_pair(k, v);
    }
    query.append_pair("page", page);
}

fn clone_url(host: &UpstreamHost, project: &Value, path: &str) -> String {
    if host.protocol == "ssh" {
        text_field(project, "ssh_url_to_repo")
            .unwrap_or_else(|| format!("ssh://git@{}/{path}.git", host.host))
    } else {
        text_field(project, "http_url_to_repo")
            .map(|u| with_scheme(&u, &host.protocol))
            .unwrap_or_else(|| format!("{}://{}/{path}.git", host.protocol, host.host))
    }
}
