//! `gitea`: repositories on a Gitea instance, through its REST API v1.
//!
//! Gitea keeps repositories under a user or an organisation, one level
//! deep, so a lorry path must be `owner/name`.
//!
//! * `GET /repos/{owner}/{repo}` finds the repository.
//! * Missing: `GET /orgs/{org}`; if that is missing too, the owner is
//!   either the token's own user (`GET /user`), whose repositories are
//!   created with `POST /user/repos`, or an organisation to create with
//!   `POST /orgs` (`username`, `visibility`). Then
//!   `POST /orgs/{org}/repos` (`name`, `description`, `private`,
//!   `default_branch`), then `PATCH` of `has_actions: false`: Actions off.
//! * A 403 (a token without the scope, a user without the right) is
//!   reported with the scopes the token needs.
//! * Existing: `PATCH /repos/{owner}/{repo}` with the upstream's
//!   description, alone, when it differs.
//! * After a successful job (by the webapp): `PATCH` of `default_branch`
//!   alone when it differs from the upstream's.
//!
//! A creation answered 409 (repository) or 422 (organisation) lost a race
//! and is looked up again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};

use super::{PrepareError, Prepared, RepoMetadata, Visibility};
use crate::Politeness;
use crate::Secret;
use crate::api::{Api, ApiError, Auth};

#[derive(Debug)]
pub struct Gitea {
    api: Api,
    visibility: Visibility,
    /// Repositories whose default branch was seen to after a push in this run.
    settled: Mutex<HashSet<String>>,
    /// Keep Actions on in new repositories (`--downstream-ci`).
    ci: bool,
}

impl Gitea {
    pub fn new(
        url: &str,
        token: Secret,
        visibility: Visibility,
        polite: Arc<Politeness>,
    ) -> Result<Gitea, String> {
        Ok(Gitea {
            api: Api::new(url, "api/v1", Auth::Token(token), polite)?,
            visibility,
            settled: Mutex::default(),
            ci: false,
        })
    }

    /// Keeps Gitea Actions on in the repositories it creates.
    pub fn with_ci(mut self, ci: bool) -> Gitea {
        self.ci = ci;
        self
    }

    pub(super) async fn prepare(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        self.create(path, metadata).await.map_err(|err| match err {
            PrepareError::Api(api) if api.status() == Some(403) => PrepareError::Refused {
                path: path.to_owned(),
                problem: format!(
                    "{api} (the Gitea token needs the scopes write:organization and \
                     write:repository, and its user the right to create organisations \
                     or repositories in them; see INSTALL.md)"
                ),
            },
            other => other,
        })
    }

    async fn create(&self, path: &str, metadata: &RepoMetadata) -> Result<Prepared, PrepareError> {
        let Some((owner, name)) = path.split_once('/').filter(|(_, n)| !n.contains('/')) else {
            return Err(PrepareError::BadPath {
                kind: "gitea",
                path: path.to_owned(),
                problem: "Gitea repositories live directly under a user or organisation: \
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
            self.create_org(owner).await?;
            self.api.url(&["orgs", owner, "repos"])
        };
        let mut body = json!({
            "name": name,
            "private": self.visibility != Visibility::Public,
        });
        if let Some(head) = metadata.valid_head() {
            body["default_branch"] = json!(head);
        }
        if let Some(description) = metadata.mirror_description() {
            body["description"] = json!(description);
        }
        let answer = self
            .api
            .call(Method::POST, create_url.clone(), Some(&body))
            .await?;
        match answer.status {
            201 => {
                tracing::info!(host = self.api.host(), path, "created Gitea repository");
                if !self.ci {
                    self.disable_actions(path, owner, name).await;
                }
                Ok(Prepared::Created)
            }
            409 if self.repo(owner, name).await?.is_some() => Ok(Prepared::Existing),
            _ => Err(self
                .api
                .status_error(&Method::POST, &create_url, &answer)
                .into()),
        }
    }

    /// Turns Gitea Actions off on a new mirror (`has_actions`, Gitea 1.21
    /// and later; older versions ignore the field): workflows in mirrored
    /// code must not run. A failure is logged, not fatal.
    async fn disable_actions(&self, path: &str, owner: &str, name: &str) {
        let url = self.api.url(&["repos", owner, name]);
        let body = json!({ "has_actions": false });
        if let Err(err) = self
            .api
            .call_expect(Method::PATCH, url, Some(&body), 200)
            .await
        {
            tracing::warn!(path, %err, "cannot turn Gitea Actions off");
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

    /// The login of the token's user.
    async fn own_login(&self) -> Result<Option<String>, ApiError> {
        let url = self.api.url(&["user"]);
        let answer = self.api.call_expect(Method::GET, url, None, 200).await?;
        Ok(answer
            .body
            .get("login")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    async fn create_org(&self, org: &str) -> Result<(), ApiError> {
        let url = self.api.url(&["orgs"]);
        let visibility = match self.visibility {
            Visibility::Private => "private",
            Visibility::Internal => "limited",
            Visibility::Public => "public",
        };
        let body = json!({ "username": org, "visibility": visibility });
        let answer = self
            .api
            .call(Method::POST, url.clone(), Some(&body))
            .await?;
        match answer.status {
            201 => {
                tracing::info!(host = self.api.host(), org, "created Gitea organisation");
                Ok(())
            }
            422 | 409 if self.org_exists(org).await? => Ok(()),
            _ => Err(self.api.status_error(&Method::POST, &url, &answer)),
        }
    }

    /// Puts an existing repository's description when the upstream gives
    /// one that differs; a failure is logged, not fatal.
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
                tracing::warn!(path, %err, "cannot update the Gitea repository's description");
                Prepared::Existing
            }
        }
    }

    /// After a successful job: the upstream's default branch, now that it
    /// exists, with a `PATCH` of `default_branch` alone. Once per
    /// repository and webapp run.
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
            tracing::info!(path, head, "set the Gitea repository's default branch");
        }
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned());
        Ok(())
    }
}
