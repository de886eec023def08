//! `gitlab`: projects on a GitLab instance, through its REST API v4.
//!
//! Preparing (before each job, in give-me-job):
//! * `GET /projects/:id` (the URL-encoded path) finds the project.
//! * Missing: each ancestor is looked up with `GET /groups/:id`, which
//!   answers every group the token can see, with its visibility (a user's
//!   own namespace, only at the top, with `GET /namespaces/:id`); a missing
//!   group is created with `POST /groups` (`name`, `path`, `visibility`,
//!   `parent_id`), level by level; then `POST /projects`.
//! * Visibility: GitLab refuses a group or project more visible than its
//!   parent group (<https://docs.gitlab.com/user/public_access/>), so each
//!   level gets the lowest of the configured visibility and its parents'.
//! * Names: a name must start with a letter, digit, emoji or `_`
//!   (<https://docs.gitlab.com/user/reserved_names/#rules-for-usernames-project-and-group-names-and-slugs>),
//!   so `.github` is named `_.github`; the path stays exact.
//! * A new project gets the upstream's description, or "Mirror of
//!   <upstream URL>" (credentials never included); CI/CD
//!   (`builds_access_level`), pages, the container registry and Auto
//!   DevOps off; LFS on. `default_branch` is not sent: GitLab ignores it
//!   when creating an empty project
//!   (<https://docs.gitlab.com/api/projects/#create-a-project>).
//! * Existing: only a changed upstream description is put, alone.
//!
//! After a successful job ([`Gitlab::after_push`], by the webapp, which
//! holds the token; the job never does):
//! * the upstream's default branch, now that it exists, with a `PUT
//!   /projects/:id` of `default_branch` alone (GitLab refuses a branch that
//!   does not exist, and a refused `PUT` changes nothing);
//! * force pushes allowed on every protected branch (`PATCH
//!   /projects/:id/protected_branches/:name` with `allow_force_push`): the
//!   first push protects the default branch
//!   (<https://docs.gitlab.com/user/project/repository/branches/default/#default-branch-protection>),
//!   which would refuse the forced update of an upstream rewrite forever.
//!
//! Once per project and webapp run; a failure there is logged and tried
//! again after the next successful job.
//!
//! A creation that loses a race (400 "has already been taken", or 409)
//! looks the thing up again rather than failing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};

use super::{PrepareError, Prepared, RepoMetadata};
use crate::Politeness;
use crate::Secret;
use crate::api::{Api, ApiError, Auth};

/// Visibility of created groups, projects and organisations, from the
/// least visible up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
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
    /// Projects whose settings after a push are done in this run.
    settled: Mutex<HashSet<String>>,
    /// Keep CI/CD on in new projects (`--downstream-ci`).
    ci: bool,
}

/// A namespace found or created: its id and the highest visibility it
/// allows below it (`None`: no limit, a user's namespace).
#[derive(Debug, Clone, Copy)]
struct Parent {
    id: i64,
    cap: Option<Visibility>,
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
            settled: Mutex::default(),
            ci: false,
        })
    }

    /// Keeps CI/CD (`builds_access_level`) on in the projects it creates.
    pub fn with_ci(mut self, ci: bool) -> Gitlab {
        self.ci = ci;
        self
    }

    pub(super) async fn prepare(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        self.create(path, metadata).await.map_err(|err| match err {
            // A path component GitLab will not take: say which rule.
            PrepareError::Api(api) if api.to_string().contains("can contain only") => {
                PrepareError::Refused {
                    path: path.to_owned(),
                    problem: format!(
                        "{api} (each component of a GitLab path may hold only ASCII \
                         letters, digits, '_', '.' and '-'; rename the lorry)"
                    ),
                }
            }
            other => other,
        })
    }

    async fn create(&self, path: &str, metadata: &RepoMetadata) -> Result<Prepared, PrepareError> {
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
        let mut parent: Option<Parent> = None;
        for depth in 1..parts.len() {
            let namespace = parts[..depth].join("/");
            let found = match self.group(&namespace).await? {
                Some(found) => Some(found),
                None if depth == 1 => self.user_namespace(&namespace).await?,
                None => None,
            };
            parent = Some(match found {
                Some(found) => found,
                None => {
                    self.create_group(&namespace, parts[depth - 1], parent)
                        .await?
                }
            });
        }
        let Some(parent) = parent else {
            return Err(PrepareError::Refused {
                path: path.to_owned(),
                problem: "no namespace".to_owned(),
            });
        };
        self.create_project(path, parts[parts.len() - 1], parent, metadata)
            .await
    }

    /// The visibility a new group or project under `parent` gets.
    fn visibility_under(&self, parent: Option<Parent>) -> Visibility {
        match parent.and_then(|p| p.cap) {
            Some(cap) => self.visibility.min(cap),
            None => self.visibility,
        }
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

    /// The group at `full_path`, if the token can see it
    /// (<https://docs.gitlab.com/api/groups/#get-a-single-group>).
    async fn group(&self, full_path: &str) -> Result<Option<Parent>, ApiError> {
        let mut url = self.api.url(&["groups", full_path]);
        // Only the group's own attributes, not its projects.
        url.query_pairs_mut().append_pair("with_projects", "false");
        let answer = self.api.call(Method::GET, url.clone(), None).await?;
        match answer.status {
            200 => {
                let id = answer.body.get("id").and_then(Value::as_i64);
                let cap = answer
                    .body
                    .get("visibility")
                    .and_then(Value::as_str)
                    .and_then(|v| Visibility::parse(v).ok());
                match (id, cap) {
                    (Some(id), Some(cap)) => Ok(Some(Parent { id, cap: Some(cap) })),
                    _ => Err(self.api.bad_answer(
                        &Method::GET,
                        &url,
                        "a group without id or visibility",
                    )),
                }
            }
            404 => Ok(None),
            _ => Err(self.api.status_error(&Method::GET, &url, &answer)),
        }
    }

    /// A user's namespace at `path` (the token's own, or any to an
    /// administrator): `GET /namespaces/:id` answers only namespaces the
    /// user is a member of (<https://docs.gitlab.com/api/namespaces/>).
    async fn user_namespace(&self, path: &str) -> Result<Option<Parent>, ApiError> {
        let url = self.api.url(&["namespaces", path]);
        let answer = self.api.call(Method::GET, url.clone(), None).await?;
        match answer.status {
            200 if answer.body.get("kind").and_then(Value::as_str) == Some("user") => {
                let id = answer
                    .body
                    .get("id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| self.api.bad_answer(&Method::GET, &url, "no namespace id"))?;
                Ok(Some(Parent { id, cap: None }))
            }
            200 | 404 => Ok(None),
            _ => Err(self.api.status_error(&Method::GET, &url, &answer)),
        }
    }

    async fn create_group(
        &self,
        full_path: &str,
        path: &str,
        parent: Option<Parent>,
    ) -> Result<Parent, ApiError> {
        let url = self.api.url(&["groups"]);
        let visibility = self.visibility_under(parent);
        let mut body = json!({
            "name": valid_name(path),
            "path": path,
            "visibility": visibility.as_str(),
        });
        if let Some(parent) = parent {
            body["parent_id"] = json!(parent.id);
        }
        let answer = self
            .api
            .call(Method::POST, url.clone(), Some(&body))
            .await?;
        if answer.status == 201 {
            tracing::info!(
                host = self.api.host(),
                group = full_path,
                visibility = visibility.as_str(),
                "created GitLab group"
            );
            let id = answer
                .body
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| self.api.bad_answer(&Method::POST, &url, "no group id"))?;
            return Ok(Parent {
                id,
                cap: Some(visibility),
            });
        }
        if lost_race(&answer)
            && let Some(found) = self.group(full_path).await?
        {
            return Ok(found);
        }
        Err(self.api.status_error(&Method::POST, &url, &answer))
    }

    async fn create_project(
        &self,
        path: &str,
        name: &str,
        parent: Parent,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        let url = self.api.url(&["projects"]);
        let visibility = self.visibility_under(Some(parent));
        let mut body = json!({
            "name": valid_name(name),
            "path": name,
            "namespace_id": parent.id,
            "visibility": visibility.as_str(),
            "lfs_enabled": true,
            "builds_access_level": if self.ci { "enabled" } else { "disabled" },
            "pages_access_level": "disabled",
            "container_registry_access_level": "disabled",
            "auto_devops_enabled": false,
        });
        if let Some(description) = metadata.mirror_description() {
            body["description"] = json!(description);
        }
        let answer = self
            .api
            .call(Method::POST, url.clone(), Some(&body))
            .await?;
        if answer.status == 201 {
            tracing::info!(
                host = self.api.host(),
                path,
                visibility = visibility.as_str(),
                "created GitLab project"
            );
            return Ok(Prepared::Created);
        }
        if lost_race(&answer) && self.project(path).await?.is_some() {
            return Ok(Prepared::Existing);
        }
        Err(self.api.status_error(&Method::POST, &url, &answer).into())
    }

    /// Puts an existing project's description when the upstream gives one
    /// that differs (alone: a field GitLab refuses takes the whole `PUT`
    /// down); a failure is logged, not fatal.
    async fn update(&self, path: &str, project: &Value, metadata: &RepoMetadata) -> Prepared {
        let Some(description) = metadata.clean_description() else {
            return Prepared::Existing;
        };
        if project.get("description").and_then(Value::as_str) == Some(description.as_str()) {
            return Prepared::Existing;
        }
        let id = project_id(project, path);
        let url = self.api.url(&["projects", &id]);
        let body = json!({ "description": description });
        match self
            .api
            .call_expect(Method::PUT, url, Some(&body), 200)
            .await
        {
            Ok(_) => Prepared::Updated,
            Err(err) => {
                tracing::warn!(path, %err, "cannot update the GitLab project's description");
                Prepared::Existing
            }
        }
    }

    /// After a successful job: the upstream's default branch, and force
    /// pushes allowed on protected branches. Once per project and run.
    pub(super) async fn after_push(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<(), PrepareError> {
        if self.is_settled(path) {
            return Ok(());
        }
        let Some(project) = self.project(path).await? else {
            return Ok(());
        };
        let id = project_id(&project, path);
        if let Some(head) = metadata.valid_head()
            && project.get("default_branch").and_then(Value::as_str) != Some(head)
        {
            let url = self.api.url(&["projects", &id]);
            let body = json!({ "default_branch": head });
            self.api
                .call_expect(Method::PUT, url, Some(&body), 200)
                .await?;
            tracing::info!(path, head, "set the GitLab project's default branch");
        }
        let url = self.api.url(&["projects", &id, "protected_branches"]);
        let answer = self
            .api
            .call_expect(Method::GET, url.clone(), None, 200)
            .await?;
        let Some(protected) = answer.body.as_array() else {
            return Err(self
                .api
                .bad_answer(&Method::GET, &url, "not a list of protected branches")
                .into());
        };
        for branch in protected {
            let Some(name) = branch.get("name").and_then(Value::as_str) else {
                continue;
            };
            if branch.get("allow_force_push").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let url = self.api.url(&["projects", &id, "protected_branches", name]);
            let body = json!({ "allow_force_push": true });
            self.api
                .call_expect(Method::PATCH, url, Some(&body), 200)
                .await?;
            tracing::info!(
                path,
                branch = name,
                "allowed force pushes on a protected branch"
            );
        }
        self.settle(path);
        Ok(())
    }

    fn is_settled(&self, path: &str) -> bool {
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(path)
    }

    fn settle(&self, path: &str) {
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned());
    }
}

/// The project's numeric id, or its path.
fn project_id(project: &Value, path: &str) -> String {
    match project.get("id").and_then(Value::as_i64) {
        Some(id) => id.to_string(),
        None => path.to_owned(),
    }
}

/// A group or project name GitLab takes for the path component `path`:
/// names must start with a letter, digit, emoji or `_`, so one that does
/// not gets a `_` in front (`.github` → `_.github`); path characters are
/// all allowed in names otherwise.
pub fn valid_name(path: &str) -> String {
    match path.chars().next() {
        Some(c) if c.is_alphanumeric() || c == '_' => path.to_owned(),
        _ => format!("_{path}"),
    }
}

/// Whether a creation failed because the thing now exists.
fn lost_race(answer: &crate::api::Answer) -> bool {
    answer.status == 409
        || (answer.status == 400 && answer.body.to_string().contains("has already been taken"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_as_gitlab_wants_and_visibility_is_ordered() {
        assert_eq!(valid_name(".github"), "_.github");
        assert_eq!(valid_name("-x"), "_-x");
        assert_eq!(valid_name("repo.git2"), "repo.git2");
        assert_eq!(valid_name("_x"), "_x");
        assert!(Visibility::Private < Visibility::Internal);
        assert_eq!(
            Visibility::Public.min(Visibility::Internal),
            Visibility::Internal
        );
    }
}
