//! What the GitHub and Gitea Downstream Hosts share. Gitea's API v1 takes
//! GitHub's REST shapes for these calls, and both keep repositories
//! directly under an owner (a user or an organisation):
//!
//! * `GET /repos/{owner}/{repo}` and `GET /orgs/{org}`: 200 found, 404 not;
//! * `GET /user`: the token's own `login`;
//! * `PATCH /repos/{owner}/{repo}` with one field: `description`, or
//!   `default_branch` after a push.
//!
//! Each forge keeps its own creation rules (gitea.rs, github.rs).

use std::collections::HashSet;
use std::sync::Mutex;

use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::{PrepareError, Prepared, RepoMetadata};
use crate::api::{Api, ApiError};

#[derive(Debug)]
pub(super) struct OwnerRepos {
    pub(super) api: Api,
    /// "Gitea" or "GitHub", for messages.
    forge: &'static str,
    /// Repositories whose default branch was seen to after a push in this run.
    settled: Mutex<HashSet<String>>,
}

impl OwnerRepos {
    pub(super) fn new(api: Api, forge: &'static str) -> OwnerRepos {
        OwnerRepos {
            api,
            forge,
            settled: Mutex::default(),
        }
    }

    /// `owner/name` of a lorry path, or why the path cannot be one.
    pub(super) fn split<'p>(
        &self,
        kind: &'static str,
        path: &'p str,
    ) -> Result<(&'p str, &'p str), PrepareError> {
        path.split_once('/')
            .filter(|(_, name)| !name.contains('/'))
            .ok_or_else(|| PrepareError::BadPath {
                kind,
                path: path.to_owned(),
                problem: format!(
                    "{} repositories live directly under a user or organisation: \
                     the path needs exactly two components",
                    self.forge
                ),
            })
    }

    /// GET `url`: its body when 200, None when 404, else an error.
    async fn get_optional(&self, url: Url) -> Result<Option<Value>, ApiError> {
        let answer = self.api.call(Method::GET, url.clone(), None).await?;
        match answer.status {
            200 => Ok(Some(answer.body)),
            404 => Ok(None),
            _ => Err(self.api.status_error(&Method::GET, &url, &answer)),
        }
    }

    pub(super) async fn repo(&self, owner: &str, name: &str) -> Result<Option<Value>, ApiError> {
        self.get_optional(self.api.url(&["repos", owner, name]))
            .await
    }

    pub(super) async fn org_exists(&self, org: &str) -> Result<bool, ApiError> {
        Ok(self
            .get_optional(self.api.url(&["orgs", org]))
            .await?
            .is_some())
    }

    /// The login of the token's user.
    pub(super) async fn own_login(&self) -> Result<Option<String>, ApiError> {
        let url = self.api.url(&["user"]);
        let answer = self.api.call_expect(Method::GET, url, None, 200).await?;
        Ok(answer
            .body
            .get("login")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// `POST`s `body` to `url` to create `owner/name`: `Created` on 201,
    /// `Existing` when the forge answers `lost_race` (the status it gives a
    /// name that is taken) and the repository is there now.
    pub(super) async fn create(
        &self,
        path: &str,
        (owner, name): (&str, &str),
        url: Url,
        body: &Value,
        lost_race: u16,
    ) -> Result<Prepared, PrepareError> {
        let answer = self.api.call(Method::POST, url.clone(), Some(body)).await?;
        match answer.status {
            201 => {
                tracing::info!(
                    host = self.api.host(),
                    path,
                    forge = self.forge,
                    "created repository"
                );
                Ok(Prepared::Created)
            }
            status if status == lost_race && self.repo(owner, name).await?.is_some() => {
                Ok(Prepared::Existing)
            }
            _ => Err(self.api.status_error(&Method::POST, &url, &answer).into()),
        }
    }

    /// Puts an existing repository's description when the upstream gives
    /// one that differs; a failure is logged, not fatal.
    pub(super) async fn update(
        &self,
        path: &str,
        (owner, name): (&str, &str),
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
                tracing::warn!(path, %err, forge = self.forge, "cannot update the repository's description");
                Prepared::Existing
            }
        }
    }

    /// After a successful job: the upstream's default branch, now that it
    /// exists, with a `PATCH` of `default_branch` alone (both forges refuse
    /// a branch that does not exist yet). Once per repository and webapp run.
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
        if self.settled().contains(path) {
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
            tracing::info!(
                path,
                head,
                forge = self.forge,
                "set the repository's default branch"
            );
        }
        self.settled().insert(path.to_owned());
        Ok(())
    }

    fn settled(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.settled.lock().unwrap_or_else(|p| p.into_inner())
    }
}
