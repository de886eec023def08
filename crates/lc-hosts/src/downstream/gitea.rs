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

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;

use super::owner_repo::OwnerRepos;
use super::{PrepareError, Prepared, RepoMetadata, Visibility};
use crate::Politeness;
use crate::Secret;
use crate::api::{Api, ApiError, Auth};

#[derive(Debug)]
pub struct Gitea {
    repos: OwnerRepos,
    visibility: Visibility,
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
            repos: OwnerRepos::new(
                Api::new(url, "api/v1", Auth::Token(token), polite)?,
                "Gitea",
            ),
            visibility,
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
            PrepareError::Api(api) if api.status() == Some(422) => PrepareError::Refused {
                path: path.to_owned(),
                problem: format!(
                    "{api} (Gitea organisation and repository names hold only ASCII letters, \
                     digits, '-', '_' and '.', and some names are reserved; rename the lorry)"
                ),
            },
            other => other,
        })
    }

    async fn create(&self, path: &str, metadata: &RepoMetadata) -> Result<Prepared, PrepareError> {
        let (owner, name) = self.repos.split("gitea", path)?;
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
            self.create_org(owner).await?;
            api.url(&["orgs", owner, "repos"])
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
        let prepared = self
            .repos
            .create(path, (owner, name), create_url, &body, 409)
            .await?;
        if prepared == Prepared::Created && !self.ci {
            self.disable_actions(path, owner, name).await;
        }
        Ok(prepared)
    }

    /// Turns Gitea Actions off on a new mirror (`has_actions`, Gitea 1.21
    /// and later; older versions ignore the field): workflows in mirrored
    /// code must not run. A failure is logged, not fatal.
    async fn disable_actions(&self, path: &str, owner: &str, name: &str) {
        let api = &self.repos.api;
        let url = api.url(&["repos", owner, name]);
        let body = json!({ "has_actions": false });
        if let Err(err) = api.call_expect(Method::PATCH, url, Some(&body), 200).await {
            tracing::warn!(path, %err, "cannot turn Gitea Actions off");
        }
    }

    async fn create_org(&self, org: &str) -> Result<(), ApiError> {
        let api = &self.repos.api;
        let url = api.url(&["orgs"]);
        let visibility = match self.visibility {
            Visibility::Private => "private",
            Visibility::Internal => "limited",
            Visibility::Public => "public",
        };
        let body = json!({ "username": org, "visibility": visibility });
        let answer = api.call(Method::POST, url.clone(), Some(&body)).await?;
        match answer.status {
            201 => {
                tracing::info!(host = api.host(), org, "created Gitea organisation");
                Ok(())
            }
            422 | 409 if self.repos.org_exists(org).await? => Ok(()),
            _ => Err(api.status_error(&Method::POST, &url, &answer)),
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
