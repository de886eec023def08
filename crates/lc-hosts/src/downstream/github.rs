//! `github`: repositories on GitHub (or GitHub Enterprise Server), through
//! its REST API.
//!
//! GitHub keeps repositories directly under a user or an organisation, so a
//! lorry path must be `owner/name`; organisations cannot be created
//! through the API, so the owner must exist.
//!
//! * `GET /repos/{owner}/{repo}` finds the repository.
//! * Missing: `GET /orgs/{org}`: an organisation gets
//!   `POST /orgs/{org}/repos`; otherwise, if the owner is the token's user
//!   (`GET /user`), `POST /user/repos`
//!   (<https://docs.github.com/en/rest/repos/repos#create-an-organization-repository>,
//!   <https://docs.github.com/en/rest/repos/repos#create-a-repository-for-the-authenticated-user>):
//!   `name`, `description` (the upstream's or "Mirror of <upstream>"),
//!   `private`, and issues, projects and the wiki off. Then GitHub Actions
//!   off with `PUT /repos/{owner}/{repo}/actions/permissions`
//!   (<https://docs.github.com/en/rest/actions/permissions#set-github-actions-permissions-for-a-repository>).
//! * Existing: a changed upstream description, alone, with `PATCH`.
//! * After a successful job (by the webapp): `PATCH` of `default_branch`
//!   alone when it differs from the upstream's (GitHub refuses a branch
//!   that does not exist yet). Once per repository and webapp run.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;

use super::owner_repo::OwnerRepos;
use super::{PrepareError, Prepared, RepoMetadata, Visibility};
use crate::Politeness;
use crate::Secret;
use crate::api::{Api, Auth};
use crate::upstream::github::api_root;

#[derive(Debug)]
pub struct Github {
    repos: OwnerRepos,
    visibility: Visibility,
    /// Keep Actions on in new repositories (`--downstream-ci`).
    ci: bool,
}

impl Github {
    /// `url`: the web address, `https://github.com` or a GitHub Enterprise
    /// Server's; the API is found from it.
    pub fn new(
        url: &str,
        token: Secret,
        visibility: Visibility,
        polite: Arc<Politeness>,
    ) -> Result<Github, String> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| format!("{}: not a URL: {e}", lc_base::redact::redact(url)))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(format!("{}: has no host", lc_base::redact::redact(url))),
        };
        let (root, path) = api_root(&host, parsed.scheme());
        Ok(Github {
            repos: OwnerRepos::new(
                Api::new(&root, path, Auth::Github(Some(token)), polite)?,
                "GitHub",
            ),
            visibility,
            ci: false,
        })
    }

    /// Keeps GitHub Actions on in the repositories it creates.
    pub fn with_ci(mut self, ci: bool) -> Github {
        self.ci = ci;
        self
    }

    pub(super) async fn prepare(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        let (owner, name) = self.repos.split("github", path)?;
        if let Some(repo) = self.repos.repo(owner, name).await? {
            return Ok(self
                .repos
                .update(path, (owner, name), &repo, metadata)
                .await);
        }
        let api = &self.repos.api;
        let create_url = if self.repos.org_exists(owner).await? {
            api.url(&["orgs", owner, "repos"])
        } else if self.repos.own_login().await?.as_deref() == Some(owner) {
            api.url(&["user", "repos"])
        } else {
            return Err(PrepareError::Refused {
                path: path.to_owned(),
                problem: format!(
                    "{owner:?} is neither an organisation on {} nor the token's user, \
                     and GitHub organisations cannot be created through the API",
                    api.host()
                ),
            });
        };
        let mut body = json!({
            "name": name,
            "private": self.visibility != Visibility::Public,
            "has_issues": false,
            "has_projects": false,
            "has_wiki": false,
        });
        if let Some(description) = metadata.mirror_description() {
            body["description"] = json!(description);
        }
        let prepared = self
            .repos
            .create(path, (owner, name), create_url, &body, 422)
            .await?;
        if prepared == Prepared::Created && !self.ci {
            self.disable_actions(path, owner, name).await;
        }
        Ok(prepared)
    }

    async fn disable_actions(&self, path: &str, owner: &str, name: &str) {
        let api = &self.repos.api;
        let url = api.url(&["repos", owner, name, "actions", "permissions"]);
        let body = json!({ "enabled": false });
        if let Err(err) = api.call_expect(Method::PUT, url, Some(&body), 204).await {
            tracing::warn!(path, %err, "cannot turn GitHub Actions off");
        }
    }

    /// After a successful job: see [`OwnerRepos::after_push`].
    pub(super) async fn after_push(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<(), PrepareError> {
        self.repos.after_push(path, metadata).await
    }
}
