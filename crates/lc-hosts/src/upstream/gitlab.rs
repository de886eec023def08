//! Listing a GitLab instance: `GET /api/v4/projects`, every project the
//! token can see, 100 a page with keyset pagination, following the `Link`
//! header's `rel="next"` (its query, on our own URL).

use reqwest::Method;
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
    // Keyset pagination: offset pagination of /projects stops at an offset
    // of 50,000 (<https://docs.gitlab.com/api/rest/#keyset-based-pagination>).
    url.query_pairs_mut()
        .append_pair("simple", "true")
        .append_pair("pagination", "keyset")
        .append_pair("order_by", "id")
        .append_pair("sort", "asc")
        .append_pair("per_page", &PER_PAGE.to_string());
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
                    upstream: None,
                },
                path,
            });
        }
        url = match link_next(&answer.headers) {
            Some(link) => api.follow(&url, &link)?,
            None => return Ok(repos),
        };
    }
    Err(ListError::Host {
        host: host.host.clone(),
        problem: format!("more than {MAX_PAGES} pages of projects"),
    })
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
