//! `gitlab`: projects on a GitLab instance, through its REST API v4.
//!
//! * `GET /projects/:id` (the URL-encoded path) finds the project.
//! * Missing: each ancestor namespace is looked up with
//!   `GET /namespaces/:id` (groups and users alike) and, if missing,
//!   created with `POST /groups` (`name`, `path`, `visibility`,
//!   `parent_id`), level by level; then `POST /projects` (`name`, `path`,
//!   `namespace_id`, `visibility`, `default_branch`, `description`; pages,
//!   container registry and Auto DevOps off, LFS on).
//! * Existing: `PUT /projects/:id` with the default branch and description
//!   when they differ from the upstream's.
//!
//! A creation that loses a race (400 "has already been taken", or 409)
//! looks the thing up again rather than failing.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use super::{PrepareError, Prepared, RepoMetadata};
use crate::Politeness;
use crate::Secret;
use crate::api::{Api, ApiError, Auth};

/// Visibility of created groups, projects and organisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    #[default]
    Private,
    Internal,
    Public,
}

impl Visibility {
    pub fn parse(text: &str) -> Result<Visibility, String> {
        match text {
            "private" => Ok(Visibility::Private),
            "internal" => Ok(Visibility::Internal),
            "public" => Ok(Visibility::Public),
            other => Err(format!(
                "{other:?} is not a visibility: private, internal or public"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    }
}

#[derive(Debug)]
pub struct Gitlab {
    api: Api,
    visibility: Visibility,
}

impl Gitlab {
    /// `url`: the instance's web address, e.g. `https://gitlab.example.com`.
    pub fn new(
        url: &str,
        token: Secret,
        visibility: Visibility,
        polite: Arc<Politeness>,
    ) -> Result<Gitlab, String> {
        Ok(Gitlab {
            api: Api::new(url, "api/v4", Auth::Bearer(token), polite)?,
            visibility,
        })
    }

    pub(super) async fn prepare(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 2 {
            return Err(PrepareError::BadPath {
                kind: "gitlab",
                path: path.to_owned(),
                problem: "GitLab projects live in a group or user namespace: \
                          the path needs at least two components"
                    .to_owned(),
            });
        }
        if let Some(project) = self.project(path).await? {
            return Ok(self.update(path, &project, metadata).await);
        }
        let mut parent: Option<i64> = None;
        for depth in 1..parts.len() {
            let namespace = parts[..depth].join("/");
            let id = match self.namespace(&namespace).await? {
                Some(id) => id,
                None => {
                    self.create_group(&namespace, parts[depth - 1], parent)
                        .await?
                }
            };
            parent = Some(id);
        }
        let Some(namespace_id) = parent else {
            return Err(PrepareError::Refused {
                path: path.to_owned(),
                problem: "no namespace".to_owned(),
            });
        };
        self.create_project(path, parts[parts.len() - 1], namespace_id, metadata)
            .await
    }

    /// The project at `path`, or `None` on a 404.
    async fn project(&self, path: &str) -> Result<Option<Value>, ApiError> {
        let url = self.api.url(&["projects", path]);
        let answer = self.api.call(Method::GET, url.clone(), None).await?;
        match answer.status {
            200 => Ok(Some(answer.body)),
            404 => Ok(None),
            _ => Err(self.api.status_error(&Method::GET, &url, &answer)),
        }
    }

    /// The id of the namespace (group or user) at `full_path`, or `None`.
    async fn namespace(&self, full_path: &str) -> Result<Option<i64>, ApiError> {
        let url = self.api.url(&["namespaces", full_path]);
        let answer = self.api.call(Method::GET, url.clone(), None).await?;
        match answer.status {
            200 => answer
                .body
                .get("id")
                .and_then(Value::as_i64)
                .map(Some)
                .ok_or_else(|| self.api.bad_answer(&Method::GET, &url, "no namespace id")),
            404 => Ok(None),
            _ => Err(self.api.status_error(&Method::GET, &url, &answer)),
        }
    }

    async fn create_group(
        &self,
        full_path: &str,
        name: &str,
        parent: Option<i64>,
    ) -> Result<i64, ApiError> {
        let url = self.api.url(&["groups"]);
        let mut body = json!({
            "name": name,
            "path": name,
            "visibility": self.visibility.as_str(),
        });
        if let Some(parent) = parent {
            body["parent_id"] = json!(parent);
        }
        let answer = self
            .api
            .call(Method::POST, url.clone(), Some(&body))
            .await?;
        if answer.status == 201 {
            tracing::info!(
                host = self.api.host(),
                group = full_path,
                "created GitLab group"
            );
            return answer
                .body
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| self.api.bad_answer(&Method::POST, &url, "no group id"));
        }
        if lost_race(&answer)
            && let Some(id) = self.namespace(full_path).await?
        {
            return Ok(id);
        }
        Err(self.api.status_error(&Method::POST, &url, &answer))
    }

    async fn create_project(
        &self,
        path: &str,
        name: &str,
        namespace_id: i64,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        let url = self.api.url(&["projects"]);
        let mut body = json!({
            "name": name,
            "path": name,
            "namespace_id": namespace_id,
            "visibility": self.visibility.as_str(),
            "lfs_enabled": true,
            "pages_access_level": "disabled",
            "container_registry_access_level": "disabled",
            "auto_devops_enabled": false,
        });
        if let Some(head) = metadata.valid_head() {
            body["default_branch"] = json!(head);
        }
        if let Some(description) = metadata.clean_description() {
            body["description"] = json!(description);
        }
        let answer = self
            .api
            .call(Method::POST, url.clone(), Some(&body))
            .await?;
        if answer.status == 201 {
            tracing::info!(host = self.api.host(), path, "created GitLab project");
            return Ok(Prepared::Created);
        }
        if lost_race(&answer) && self.project(path).await?.is_some() {
            return Ok(Prepared::Existing);
        }
        Err(self.api.status_error(&Method::POST, &url, &answer).into())
    }

    /// Brings an existing project's default branch and description in line
    /// with the upstream's; a failure is logged, not fatal.
    async fn update(&self, path: &str, project: &Value, metadata: &RepoMetadata) -> Prepared {
        let mut changes = serde_json::Map::new();
        if let Some(head) = metadata.valid_head()
            && project.get("default_branch").and_then(Value::as_str) != Some(head)
        {
            changes.insert("default_branch".into(), json!(head));
        }
        if let Some(description) = metadata.clean_description()
            && project.get("description").and_then(Value::as_str) != Some(description.as_str())
        {
            changes.insert("description".into(), json!(description));
        }
        if changes.is_empty() {
            return Prepared::Existing;
        }
        let id = match project.get("id").and_then(Value::as_i64) {
            Some(id) => id.to_string(),
            None => path.to_owned(),
        };
        let url = self.api.url(&["projects", &id]);
        match self
            .api
            .call_expect(Method::PUT, url, Some(&Value::Object(changes)), 200)
            .await
        {
            Ok(_) => Prepared::Updated,
            Err(err) => {
                tracing::warn!(path, %err, "cannot update the GitLab project's metadata");
                Prepared::Existing
            }
        }
    }
}

/// Whether a creation failed because the thing now exists.
fn lost_race(answer: &crate::api::Answer) -> bool {
    answer.status == 409
        || (answer.status == 400 && answer.body.to_string().contains("has already been taken"))
}
