//! Listing a GitLab host, one configured namespace (a prefixmap root) at a
//! time, never the whole instance:
//! `GET /groups/:id/projects?include_subgroups=true`, or, for a user's
//! namespace, `GET /users/:id/projects`
//! (<https://docs.gitlab.com/api/groups/#list-projects>,
//! <https://docs.gitlab.com/api/projects/#list-a-users-projects>).
//! Neither offers keyset pagination, so offset pagination is used, 100 a
//! page, within its documented limit of an offset of 50,000
//! (<https://docs.gitlab.com/administration/instance_limits/#max-offset-allowed-by-the-rest-api-for-offset-based-pagination>):
//! a namespace with more fails its listing with that reason rather than
//! being cut short. Next pages follow `X-Next-Page`, or the `Link`
//! header's query, always on our own URL. Archived (`archived=false`) and
//! empty (`empty_repo`) projects are left out.

use std::collections::BTreeSet;

use reqwest::{Method, Url};
use serde_json::Value;

use super::{
    ListError, ListedRepo, Lister, MAX_PAGES, UpstreamHost, activity, roots, text_field,
    with_scheme,
};
use crate::api::{Api, Auth, link_next};
use crate::downstream::RepoMetadata;

/// Projects per page: GitLab's maximum.
pub const PER_PAGE: usize = 100;

/// The largest offset GitLab's offset pagination serves.
pub const MAX_OFFSET: usize = 50_000;

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
    let mut repos = Vec::new();
    let mut seen = BTreeSet::new();
    for namespace in roots(&host.namespaces) {
        let mut url = api.url(&["groups", &namespace, "projects"]);
        url.query_pairs_mut()
            .append_pair("include_subgroups", "true");
        let first = list_pages(host, &api, url, &mut repos, &mut seen).await;
        match first {
            Err(ListError::Api(err)) if err.status() == Some(404) => {
                // Not a group: a user's namespace, or nothing at all.
                let url = api.url(&["users", &namespace, "projects"]);
                match list_pages(host, &api, url, &mut repos, &mut seen).await {
                    Err(ListError::Api(err)) if err.status() == Some(404) => {
                        tracing::warn!(host = %host.host, namespace, "no such group or user");
                    }
                    other => other?,
                }
            }
            other => other?,
        }
    }
    Ok(repos)
}

/// Every page of projects from `url` into `repos`.
async fn list_pages(
    host: &UpstreamHost,
    api: &Api,
    mut url: Url,
    repos: &mut Vec<ListedRepo>,
    seen: &mut BTreeSet<String>,
) -> Result<(), ListError> {
    if !host.includes("include-archived") {
        url.query_pairs_mut().append_pair("archived", "false");
    }
    url.query_pairs_mut()
        .append_pair("order_by", "id")
        .append_pair("sort", "asc")
        .append_pair("per_page", &PER_PAGE.to_string())
        .append_pair("page", "1");
    for page in 1..=MAX_PAGES {
        if page * PER_PAGE > MAX_OFFSET {
            return Err(ListError::Host {
                host: host.host.clone(),
                problem: format!(
                    "{}: more than {MAX_OFFSET} projects, GitLab's limit of offset pagination; \
                     map smaller groups in the prefixmap",
                    url.path()
                ),
            });
        }
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
            let skip = [
                ("archived", "include-archived"),
                ("empty_repo", "include-empty"),
            ]
            .iter()
            .find(|(field, option)| {
                !host.includes(option) && project.get(*field).and_then(Value::as_bool) == Some(true)
            })
            .map(|(field, _)| field);
            if let Some(why) = skip {
                tracing::debug!(host = %host.host, path, why, "project left out");
                continue;
            }
            if !seen.insert(path.clone()) {
                continue;
            }
            repos.push(ListedRepo {
                clone_url: clone_url(host, project, &path),
                fingerprint: None,
                activity: activity(
                    host,
                    project,
                    "last_activity_at",
                    project.get("mirror").and_then(Value::as_bool) != Some(true),
                ),
                metadata: RepoMetadata {
                    head: text_field(project, "default_branch"),
                    description: text_field(project, "description"),
                    upstream: None,
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
            (Some(page), _) => with_page(&url, page),
            (None, Some(link)) => api.follow(&url, &link)?,
            (None, None) => return Ok(()),
        };
    }
    Err(ListError::Host {
        host: host.host.clone(),
        problem: format!("more than {MAX_PAGES} pages of projects"),
    })
}

fn with_page(url: &Url, page: &str) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("page", page);
    next
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
