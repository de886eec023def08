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

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};

use super::{PrepareError, Prepared, RepoMetadata, Visibility};
use crate::Politeness;
use crate::Secret;
use crate::api::{Api, ApiError, Auth};
use crate::upstream::github::api_root;

#[derive(Debug)]
pub struct Github {
    api: Api,
    visibility: Visibility,
    settled: Mutex<HashSet<String>>,
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
            api: Api::new(&root, path, Auth::Github(Some(token)), polite)?,
            visibility,
            settled: Mutex::default(),
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
        let Some((owner, name)) = path.split_once('/').filter(|(_, n)| !n.contains('/')) else {
            return Err(PrepareError::BadPath {
                kind: "github",
                path: path.to_owned(),
                problem: "GitHub repositories live directly under a user or organisation: \
                          the path needs exactly two components"
                    .to_owned(),
            });
        };
        if let Some(repo) = self.repo(owner, name).await? {
            return Ok(self.update(path, owner, name, &repo, metadata).await);
        }
        let create_url = if self.org_exists(owner).await? {
            self.api.url(&["orgs", owner, "repos"])
        } else if self.own_login().await?.as_deref() == Some(owner) {
            self.api.url(&["user", "repos"])
        } else {
            return Err(PrepareError::Refused {
                path: path.to_owned(),
                problem: format!(
                    "{owner:?} is neither an organisation on {} nor the token's user, \
                     and GitHub organisations cannot be created through the API",
                    self.api.host()
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
        let answer = self
            .api
            .call(Method::POST, create_url.clone(), Some(&body))
            .await?;
        match answer.status {
            201 => {
                tracing::info!(host = self.api.host(), path, "created GitHub repository");
                if !self.ci {
                    self.disable_actions(path, owner, name).await;
                }
                Ok(Prepared::Created)
            }
            422 if self.repo(owner, name).await?.is_some() => Ok(Prepared::Existing),
            _ => Err(self
                .api
                .status_error(&Method::POST, &create_url, &answer)
                .into()),
        }
    }

    async fn disable_actions(&self, path: &str, owner: &str, name: &str) {
        let url = self
            .api
            .url(&["repos", owner, name, "actions", "permissions"]);
        let body = json!({ "enabled": false });
        if let Err(err) = self
            .api
            .call_expect(Method::PUT, url, Some(&body), 204)
            .await
        {
            tracing::warn!(path, %err, "cannot turn GitHub Actions off");
        }
    }

    async fn repo(&self, owner: &str, name: &str) -> Result<Option<Value>, ApiError> {
        let url = self.api.url(&["repos", owner, name]);
        let answer = self.api.call(Method::GET, url.clone(), None).await?;
        match answer.status {
            200 => Ok(Some(answer.body)),
            404 => Ok(None),
            _ => Err(self.api.status_error(&Method::GET, &url, &answer)),
        }
    }

    async fn org_exists(&self, org: &str) -> Result<bool, ApiError> {
        let url = self.api.url(&["orgs", org]);
        let answer = self.api.call(Method::GET, url.clone(), None).await?;
        match answer.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.api.status_error(&Method::GET, &url, &answer)),
        }
    }

    async fn own_login(&self) -> Result<Option<String>, ApiError> {
        let url = self.api.url(&["user"]);
        let answer = self.api.call_expect(Method::GET, url, None, 200).await?;
        Ok(answer
            .body
            .get("login")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    async fn update(
        &self,
        path: &str,
        owner: &str,
        name: &str,
        repo: &Value,
        metadata: &RepoMetadata,
    ) -> Prepared {
        let Some(description) = metadata.clean_description() else {
            return Prepared::Existing;
        };
        if repo.get("description").and_then(Value::as_str) == Some(description.as_str()) {
            return Prepared::Existing;
        }
        let url = self.api.url(&["repos", owner, name]);
        let body = json!({ "description": description });
        match self
            .api
            .call_expect(Method::PATCH, url, Some(&body), 200)
            .await
        {
            Ok(_) => Prepared::Updated,
            Err(err) => {
                tracing::warn!(path, %err, "cannot update the GitHub repository's description");
                Prepared::Existing
            }
        }
    }

    pub(super) async fn after_push(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<(), PrepareError> {
        let Some(head) = metadata.valid_head() else {
            return Ok(());
        };
        let Some((owner, name)) = path.split_once('/') else {
            return Ok(());
        };
        if self
            .settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(path)
        {
            return Ok(());
        }
        let Some(repo) = self.repo(owner, name).await? else {
            return Ok(());
        };
        if repo.get("default_branch").and_then(Value::as_str) != Some(head) {
            let url = self.api.url(&["repos", owner, name]);
            let body = json!({ "default_branch": head });
            self.api
                .call_expect(Method::PATCH, url, Some(&body), 200)
                .await?;
            tracing::info!(path, head, "set the GitHub repository's default branch");
        }
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned());
        Ok(())
    }
}
