//! A GitLab REST API v4 double: the endpoints Lorry Controller uses, as
//! GitLab's API reference describes them.
//!
//! * Authentication: the `PRIVATE-TOKEN` header or `Authorization: Bearer`;
//!   a missing or wrong token is `401 {"message": "401 Unauthorized"}`
//!   (<https://docs.gitlab.com/api/rest/authentication/>).
//! * `GET /projects`: offset pagination (`page`, `per_page` up to 100,
//!   default 20) with `X-Page`, `X-Per-Page`, `X-Total`, `X-Total-Pages`,
//!   `X-Next-Page`, `X-Prev-Page` and a `Link` header (`prev`, `next`,
//!   `first`, `last`); `order_by=id` with `sort=asc|desc`. An offset of
//!   50,000 or more is refused with 405, keyset pagination
//!   (`pagination=keyset`, `order_by=id`: a `Link` `rel="next"` with
//!   `id_after`, no `X-` headers) has no limit
//!   (<https://docs.gitlab.com/api/rest/#pagination>,
//!   <https://docs.gitlab.com/administration/instance_limits/#max-offset-allowed-by-the-rest-api-for-offset-based-pagination>).
//! * `GET /projects/:id`, `GET /groups/:id`: a numeric id or the
//!   URL-encoded full path; `404 {"message": "404 Project Not Found"}`
//!   (Group). A private group is found only by its members.
//! * `GET /namespaces/:id`: only namespaces the user is a member of
//!   (<https://docs.gitlab.com/api/namespaces/#get-details-on-a-namespace>).
//! * `POST /groups` (`name`, `path`, `parent_id`, `visibility`): `201` with
//!   the group; `403 {"message": "403 Forbidden"}` when the user may not
//!   create top-level groups; `400 {"message": "Failed to save group
//!   {:path=>[\"has already been taken\"]}"}` when the path is taken
//!   (<https://docs.gitlab.com/api/groups/#create-a-group>).
//! * `POST /projects` (`name`, `path`, `namespace_id`, ...): `201` with the
//!   project; `404 Namespace Not Found`; `400` with the field errors when
//!   the path is taken. `default_branch` is ignored: the project is empty
//!   (<https://docs.gitlab.com/api/projects/#create-a-project>).
//! * Visibility: a group or project may not be more visible than its parent
//!   group, and levels the administrator restricted are refused: `400`
//!   naming `visibility_level`
//!   (<https://docs.gitlab.com/user/public_access/>,
//!   <https://docs.gitlab.com/administration/settings/visibility_and_access_controls/#restrict-visibility-levels>).
//! * Names of groups and projects must start with a letter, digit, emoji or
//!   `_`: `400` naming `name`
//!   (<https://docs.gitlab.com/user/reserved_names/#rules-for-usernames-project-and-group-names-and-slugs>).
//! * Paths (slugs) of groups and projects: only ASCII letters, digits, `_`,
//!   `.` and `-`, not starting with `-`, not ending in `.git` or `.atom`, and
//!   a group's not ending in `.`: `400` naming `path`. So no space and no
//!   letter outside a-z and A-Z (same page, and GitLab's `path_regex.rb`,
//!   <https://gitlab.com/gitlab-org/gitlab/-/blob/master/lib/gitlab/path_regex.rb>).
//!   GitLab.com may further refuse a special character at either end of a
//!   new project's path; self-managed instances accept `.github`, which the
//!   tests mirror, so the double keeps to the rule every version enforces.
//! * `PUT /projects/:id`: `default_branch` (`400` when no such branch
//!   exists, and then nothing of the request is applied), `description`.
//! * Pushes ([`GitlabV4::push`], as a test's stand-in for `git push`): the
//!   first push of an empty project sets its default branch and protects
//!   it, force pushes refused
//!   (<https://docs.gitlab.com/user/project/repository/branches/default/#default-branch-protection>);
//!   `GET /projects/:id/protected_branches` and `PATCH
//!   /projects/:id/protected_branches/:name` (`allow_force_push`)
//!   (<https://docs.gitlab.com/api/protected_branches/>).
//! * When told to be busy: `429` with `Retry-After` and "Retry later".

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::forge_git::{ForgeGit, forge_now, gitlab_last_activity_at, rfc3339};
use super::{Seen, Server, forge_double};

#[derive(Debug, Clone)]
pub struct Namespace {
    pub id: i64,
    pub path: String,
    pub full_path: String,
    pub kind: &'static str,
    pub parent_id: Option<i64>,
    pub visibility: String,
    /// A namespace the token's user cannot see: lookups answer 404, but
    /// its path is taken.
    pub hidden: bool,
    /// Whether the token's user is a member (`GET /namespaces/:id` answers
    /// only then).
    pub member: bool,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub path: String,
    pub namespace_id: i64,
    pub path_with_namespace: String,
    pub default_branch: Option<String>,
    pub description: Option<String>,
    pub visibility: String,
    /// Branches pushed.
    pub branches: Vec<String>,
    /// Protected branches and whether they allow force pushes.
    pub protected: Vec<(String, bool)>,
    pub archived: bool,
    pub empty_repo: bool,
    /// By the forge's clock; `last_activity_at` starts there.
    pub created_at: i64,
}

#[derive(Debug)]
pub struct GitlabState {
    pub token: String,
    pub namespaces: Vec<Namespace>,
    pub projects: Vec<Project>,
    pub next_id: i64,
    /// Whether the user may create top-level groups.
    pub can_create_group: bool,
    /// Leave out `X-Next-Page` (as a proxy might), so clients must follow `Link`.
    pub omit_next_page_header: bool,
    /// Answer this many requests with 429 first.
    pub busy: u32,
    /// Visibility levels the administrator restricted.
    pub restricted_visibility: Vec<String>,
    /// Largest offset of offset pagination: 50,000 on GitLab; tests lower it.
    pub max_offset: usize,
    /// Answer every request with a `302 Found` to this URL + the request's
    /// path and query (as a moved instance or a hostile proxy might).
    pub redirect_to: Option<String>,
    /// The git repositories behind the double, if attached:
    /// `last_activity_at` follows their pushes, by GitLab's hourly rule.
    pub git: Option<Arc<ForgeGit>>,
    /// What to answer as `last_activity_at` instead of the real time: a
    /// broken or older GitLab (`Some(None)`: the field left out).
    pub activity_override: Option<Option<Value>>,
    pub seen: Vec<Seen>,
    pub base: String,
    /// Where `http_url_to_repo` points instead of `base`: a git server of
    /// the bench's own on the same host name (GitLab's `external_url`
    /// serves both; the double serves no git).
    pub clone_base: Option<String>,
}

pub struct GitlabV4 {
    pub server: Server,
    state: Arc<Mutex<GitlabState>>,
}

impl GitlabV4 {
    /// A GitLab whose token's user is `lorry` (namespace id 1).
    pub fn start(token: &str) -> GitlabV4 {
        let state = Arc::new(Mutex::new(GitlabState {
            token: token.to_owned(),
            namespaces: vec![Namespace {
                id: 1,
                path: "lorry".into(),
                full_path: "lorry".into(),
                kind: "user",
                parent_id: None,
                visibility: "public".into(),
                hidden: false,
                member: true,
            }],
            projects: Vec::new(),
            next_id: 100,
            can_create_group: true,
            omit_next_page_header: false,
            busy: 0,
            restricted_visibility: Vec::new(),
            max_offset: 50_000,
            redirect_to: None,
            git: None,
            activity_override: None,
            seen: Vec::new(),
            base: String::new(),
            clone_base: None,
        }));
        let router = Router::new()
            .route("/api/v4/projects", get(list_projects).post(create_project))
            .route(
                "/api/v4/projects/{id}",
                get(get_project).put(update_project),
            )
            .route(
                "/api/v4/projects/{id}/protected_branches",
                get(list_protected),
            )
            .route(
                "/api/v4/projects/{id}/protected_branches/{name}",
                axum::routing::patch(update_protected),
            )
            .route("/api/v4/namespaces/{id}", get(get_namespace))
            .route("/api/v4/groups", axum::routing::post(create_group))
            .route("/api/v4/groups/{id}", get(get_group))
            .route("/api/v4/groups/{id}/projects", get(group_projects))
            .route("/api/v4/users/{id}/projects", get(user_projects))
            .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state.clone());
        let server = Server::start(router);
        state.lock().expect("lock").base = server.url();
        GitlabV4 { server, state }
    }

    pub fn state(&self) -> MutexGuard<'_, GitlabState> {
        self.state.lock().expect("lock")
    }

    /// Adds a group at `full_path` (its parent must exist); answers its id.
    pub fn add_group(&self, full_path: &str) -> i64 {
        let mut s = self.state();
        add_namespace(&mut s, full_path, "group", false)
    }

    pub fn add_hidden_group(&self, full_path: &str) -> i64 {
        let mut s = self.state();
        add_namespace(&mut s, full_path, "group", true)
    }

    /// Sets the visibility of the group at `full_path`.
    pub fn set_visibility(&self, full_path: &str, visibility: &str) {
        let mut s = self.state();
        let ns = s
            .namespaces
            .iter_mut()
            .find(|n| n.full_path == full_path)
            .expect("group");
        ns.visibility = visibility.into();
    }

    /// What `git push` of `branches` into the project at `path` does: the
    /// first push into an empty project makes `main` (if pushed) or the
    /// first branch the default and protects it, force pushes refused.
    pub fn push(&self, path: &str, branches: &[&str]) {
        let mut s = self.state();
        let p = s
            .projects
            .iter_mut()
            .find(|p| p.path_with_namespace == path)
            .expect("project");
        let first = p.branches.is_empty();
        for b in branches {
            if !p.branches.iter().any(|x| x == b) {
                p.branches.push((*b).to_owned());
            }
        }
        p.empty_repo = p.branches.is_empty();
        if first && let Some(default) = branches.iter().find(|b| **b == "main").or(branches.first())
        {
            p.default_branch = Some((*default).to_owned());
            p.protected.push(((*default).to_owned(), false));
        }
    }

    /// Marks the project at `path` archived or empty.
    pub fn set_project_state(&self, path: &str, archived: bool, empty: bool) {
        let mut s = self.state();
        let p = s
            .projects
            .iter_mut()
            .find(|p| p.path_with_namespace == path)
            .expect("project");
        p.archived = archived;
        p.empty_repo = empty;
    }

    /// Whether a force push to `branch` of the project at `path` is accepted.
    pub fn force_push_allowed(&self, path: &str, branch: &str) -> bool {
        let p = self.project(path).expect("project");
        p.protected
            .iter()
            .find(|(name, _)| name == branch)
            .is_none_or(|(_, allowed)| *allowed)
    }

    /// Adds a project at `path_with_namespace`, its groups too.
    pub fn add_project(
        &self,
        path_with_namespace: &str,
        head: Option<&str>,
        description: Option<&str>,
    ) {
        let mut s = self.state();
        let (ns_path, name) = path_with_namespace.rsplit_once('/').expect("a namespace");
        let namespace_id = match s.namespaces.iter().find(|n| n.full_path == ns_path) {
            Some(n) => n.id,
            None => {
                let mut parent = String::new();
                let mut id = 0;
                for part in ns_path.split('/') {
                    parent = if parent.is_empty() {
                        part.to_owned()
                    } else {
                        format!("{parent}/{part}")
                    };
                    id = match s.namespaces.iter().find(|n| n.full_path == parent) {
                        Some(n) => n.id,
                        None => add_namespace(&mut s, &parent, "group", false),
                    };
                }
                id
            }
        };
        s.next_id += 1;
        let id = s.next_id;
        let created_at = forge_now(s.git.as_ref());
        s.projects.push(Project {
            id,
            name: name.into(),
            path: name.into(),
            namespace_id,
            path_with_namespace: path_with_namespace.into(),
            default_branch: head.map(str::to_owned),
            description: description.map(str::to_owned),
            visibility: "private".into(),
            branches: head.map(str::to_owned).into_iter().collect(),
            protected: Vec::new(),
            archived: false,
            empty_repo: false,
            created_at,
        });
    }

    pub fn project(&self, path: &str) -> Option<Project> {
        self.state()
            .projects
            .iter()
            .find(|p| p.path_with_namespace == path)
            .cloned()
    }

    pub fn namespace(&self, path: &str) -> Option<Namespace> {
        self.state()
            .namespaces
            .iter()
            .find(|n| n.full_path == path)
            .cloned()
    }
}

fn add_namespace(s: &mut GitlabState, full_path: &str, kind: &'static str, hidden: bool) -> i64 {
    let (parent_id, path) = match full_path.rsplit_once('/') {
        Some((parent, path)) => (
            Some(
                s.namespaces
                    .iter()
                    .find(|n| n.full_path == parent)
                    .expect("parent group")
                    .id,
            ),
            path,
        ),
        None => (None, full_path),
    };
    s.next_id += 1;
    let id = s.next_id;
    s.namespaces.push(Namespace {
        id,
        path: path.into(),
        full_path: full_path.into(),
        kind,
        parent_id,
        visibility: "private".into(),
        hidden,
        member: !hidden,
    });
    id
}

forge_double!(GitlabV4, GitlabState);

type Shared = State<Arc<Mutex<GitlabState>>>;

fn message(status: StatusCode, message: Value) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// Records the request, then answers 429 when busy and 401 without the token.
async fn guard(State(state): Shared, request: Request, next: Next) -> Response {
    let (parts, bytes, seen) = Seen::record(request).await;
    {
        let mut s = state.lock().expect("lock");
        s.seen.push(seen);
        if s.busy > 0 {
            s.busy -= 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "Retry later\n",
            )
                .into_response();
        }
        if let Some(to) = &s.redirect_to {
            let location = format!(
                "{to}{}",
                parts.uri.path_and_query().map_or("/", |p| p.as_str())
            );
            return (StatusCode::FOUND, [("location", location)], "").into_response();
        }
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let token = header("private-token")
            .or_else(|| header("authorization").and_then(|v| v.strip_prefix("Bearer ")));
        if token != Some(s.token.as_str()) {
            return message(StatusCode::UNAUTHORIZED, json!("401 Unauthorized"));
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Percent-decodes a path as GitLab does for `:id`.
pub fn decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(query: &Option<String>) -> Vec<(String, String)> {
    form_pairs(query.as_deref().unwrap_or(""))
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(&k.replace('+', " ")), decode(&v.replace('+', " ")))
        })
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn project_json(s: &GitlabState, p: &Project) -> Value {
    let ns = s.namespaces.iter().find(|n| n.id == p.namespace_id);
    let host = s.base.trim_start_matches("http://");
    let pushes = s
        .git
        .as_ref()
        .map(|g| g.pushes(&p.path_with_namespace))
        .unwrap_or_default();
    let last_activity = gitlab_last_activity_at(p.created_at, &pushes);
    let mut project = json!({
        "created_at": rfc3339(p.created_at, 0, true),
        "last_activity_at": rfc3339(last_activity, 0, true),
        "id": p.id,
        "name": p.name,
        "path": p.path,
        "path_with_namespace": p.path_with_namespace,
        "description": p.description,
        "default_branch": p.default_branch,
        "visibility": p.visibility,
        "archived": p.archived,
        "empty_repo": p.empty_repo,
        "ssh_url_to_repo": format!("git@{}:{}.git", host.split(':').next().unwrap_or(host), p.path_with_namespace),
        "http_url_to_repo": format!("{}/{}.git", s.clone_base.as_deref().unwrap_or(&s.base), p.path_with_namespace),
        "web_url": format!("{}/{}", s.base, p.path_with_namespace),
        "namespace": ns.map(|n| json!({"id": n.id, "path": n.path, "full_path": n.full_path, "kind": n.kind})),
    });
    if let (Some(over), Some(fields)) = (&s.activity_override, project.as_object_mut()) {
        match over {
            None => fields.remove("last_activity_at"),
            Some(value) => fields.insert("last_activity_at".into(), value.clone()),
        };
    }
    project
}

fn namespace_json(n: &Namespace) -> Value {
    json!({
        "id": n.id,
        "name": n.path,
        "path": n.path,
        "kind": n.kind,
        "full_path": n.full_path,
        "parent_id": n.parent_id,
        "visibility": n.visibility,
    })
}

async fn list_projects(State(state): Shared, RawQuery(query): RawQuery) -> Response {
    let s = state.lock().expect("lock");
    let q = query_map(&query);
    let per_page: usize = param(&q, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page: usize = param(&q, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut projects: Vec<&Project> = s.projects.iter().collect();
    projects.sort_by_key(|p| p.id);
    let ascending = param(&q, "order_by") == Some("id") && param(&q, "sort") == Some("asc");
    if !ascending {
        projects.reverse();
    }
    if param(&q, "pagination") == Some("keyset") {
        // Keyset pagination: by id only; the next page's link carries
        // `id_after` and there are no X- headers.
        if param(&q, "order_by") != Some("id") {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(json!({"error": "Keyset pagination is not yet available for this type of request"})),
            )
                .into_response();
        }
        let after: i64 = param(&q, "id_after")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let page: Vec<&Project> = projects
            .iter()
            .filter(|p| !ascending || p.id > after)
            .take(per_page)
            .copied()
            .collect();
        let items: Vec<Value> = page.iter().map(|p| project_json(&s, p)).collect();
        let mut headers = HeaderMap::new();
        if let Some(last) = page.last()
            && projects.iter().any(|p| p.id > last.id)
            && page.len() == per_page
        {
            let mut pairs: Vec<(String, String)> =
                q.iter().filter(|(k, _)| k != "id_after").cloned().collect();
            pairs.push(("id_after".into(), last.id.to_string()));
            let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let link = format!(
                "<{}/api/v4/projects?{}>; rel=\"next\"",
                s.base,
                query.join("&")
            );
            headers.insert("link", link.parse().expect("header"));
        }
        return (headers, axum::Json(Value::Array(items))).into_response();
    }
    offset_page(&s, &q, &projects, "projects", page, per_page)
}

/// One page of offset pagination of `projects` at `endpoint` (under
/// `/api/v4/`), with GitLab's headers; refused past the offset limit.
fn offset_page(
    s: &GitlabState,
    q: &[(String, String)],
    projects: &[&Project],
    endpoint: &str,
    page: usize,
    per_page: usize,
) -> Response {
    if page * per_page > s.max_offset {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({"error": format!("Offset pagination has a maximum allowed offset of {} for requests that return objects of type Project. Remaining records can be retrieved using keyset pagination.", s.max_offset)})),
        )
            .into_response();
    }
    let total = projects.len();
    let total_pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = projects
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| project_json(s, p))
        .collect();
    let link_to = |n: usize| {
        let mut pairs: Vec<(String, String)> =
            q.iter().filter(|(k, _)| k != "page").cloned().collect();
        pairs.push(("page".into(), n.to_string()));
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("<{}/api/v4/{endpoint}?{}>", s.base, query.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link_to(page - 1)));
    }
    if page < total_pages {
        links.push(format!("{}; rel=\"next\"", link_to(page + 1)));
    }
    links.push(format!("{}; rel=\"first\"", link_to(1)));
    links.push(format!("{}; rel=\"last\"", link_to(total_pages)));
    let next = if page < total_pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        headers.insert(k, v.parse().expect("header"));
    };
    set("x-page", page.to_string());
    set("x-per-page", per_page.to_string());
    set("x-total", total.to_string());
    set("x-total-pages", total_pages.to_string());
    if !s.omit_next_page_header {
        set("x-next-page", next);
    }
    set("x-prev-page", prev);
    set("link", links.join(", "));
    (headers, axum::Json(Value::Array(items))).into_response()
}

fn find_project<'a>(s: &'a GitlabState, id: &str) -> Option<&'a Project> {
    match id.parse::<i64>() {
        Ok(n) => s.projects.iter().find(|p| p.id == n),
        Err(_) => s.projects.iter().find(|p| p.path_with_namespace == id),
    }
}

fn find_namespace<'a>(s: &'a GitlabState, id: &str) -> Option<&'a Namespace> {
    let found = match id.parse::<i64>() {
        Ok(n) => s.namespaces.iter().find(|ns| ns.id == n),
        Err(_) => s.namespaces.iter().find(|ns| ns.full_path == id),
    };
    found.filter(|ns| !ns.hidden)
}

async fn get_project(State(state): Shared, Path(id): Path<String>) -> Response {
    let s = state.lock().expect("lock");
    match find_project(&s, &id) {
        Some(p) => axum::Json(project_json(&s, p)).into_response(),
        None => message(StatusCode::NOT_FOUND, json!("404 Project Not Found")),
    }
}

async fn get_namespace(State(state): Shared, Path(id): Path<String>) -> Response {
    let s = state.lock().expect("lock");
    // Only namespaces the user is a member of.
    match find_namespace(&s, &id).filter(|n| n.member) {
        Some(n) => axum::Json(namespace_json(n)).into_response(),
        None => message(StatusCode::NOT_FOUND, json!("404 Namespace Not Found")),
    }
}

async fn get_group(State(state): Shared, Path(id): Path<String>) -> Response {
    let s = state.lock().expect("lock");
    match find_namespace(&s, &id).filter(|n| n.kind == "group") {
        Some(n) => axum::Json(namespace_json(n)).into_response(),
        None => message(StatusCode::NOT_FOUND, json!("404 Group Not Found")),
    }
}

/// Attributes from a JSON or form body.
fn attributes(headers: &HeaderMap, body: &[u8]) -> serde_json::Map<String, Value> {
    let json_body = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json_body {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    } else {
        form_pairs(&String::from_utf8_lossy(body))
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    }
}

fn text(attrs: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    match attrs.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The levels from the least visible up.
fn level(visibility: &str) -> u8 {
    match visibility {
        "public" => 20,
        "internal" => 10,
        _ => 0,
    }
}

/// GitLab's refusal of a name that does not start with a letter, digit,
/// emoji or `_`.
fn bad_name(name: &str) -> Option<Response> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_');
    (!ok).then(|| {
        message(
            StatusCode::BAD_REQUEST,
            json!({"name": ["can contain only letters, digits, emoji, '_', '.', '+', dashes, or spaces. It must start with a letter, digit, emoji, or '_'."]}),
        )
    })
}

/// What GitLab says of a path that breaks its rules.
const PATH_RULE: &str = "can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', end in '.git' or end in '.atom'";

/// Whether `path` breaks GitLab's path rules (see the module
/// documentation); a group's path may not end in `.` either.
fn bad_path(path: &str, group: bool) -> bool {
    let chars_ok = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    !chars_ok
        || path.starts_with('-')
        || path.ends_with(".git")
        || path.ends_with(".atom")
        || (group && path.ends_with('.'))
}

/// GitLab's refusal of a visibility the administrator restricted or the
/// parent group does not allow.
fn bad_visibility(
    s: &GitlabState,
    visibility: &str,
    parent: Option<&Namespace>,
    what: &str,
) -> Option<Response> {
    if s.restricted_visibility.iter().any(|v| v == visibility) {
        return Some(message(
            StatusCode::BAD_REQUEST,
            json!({"visibility_level": [format!("{visibility} has been restricted by your GitLab administrator")]}),
        ));
    }
    let parent = parent.filter(|p| p.kind == "group")?;
    (level(visibility) > level(&parent.visibility)).then(|| {
        let why = if what == "group" {
            format!(
                "{visibility} is not allowed since the parent group has a {} visibility.",
                parent.visibility
            )
        } else {
            format!(
                "{visibility} is not allowed in a {} group.",
                parent.visibility
            )
        };
        message(StatusCode::BAD_REQUEST, json!({"visibility_level": [why]}))
    })
}

async fn create_group(
    State(state): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let attrs = attributes(&headers, &body);
    let mut s = state.lock().expect("lock");
    let (Some(name), Some(path)) = (text(&attrs, "name"), text(&attrs, "path")) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "name is missing, path is missing"})),
        )
            .into_response();
    };
    let parent = match text(&attrs, "parent_id") {
        Some(id) => match find_namespace(&s, &id).filter(|n| n.kind == "group") {
            Some(n) => Some(n.clone()),
            None => return message(StatusCode::NOT_FOUND, json!("404 Group Not Found")),
        },
        None => None,
    };
    if parent.is_none() && !s.can_create_group {
        return message(StatusCode::FORBIDDEN, json!("403 Forbidden"));
    }
    let full_path = match &parent {
        Some(p) => format!("{}/{path}", p.full_path),
        None => path.clone(),
    };
    if bad_path(&path, true) {
        return message(
            StatusCode::BAD_REQUEST,
            json!(format!("Failed to save group {{:path=>[\"{PATH_RULE}\"]}}")),
        );
    }
    if s.namespaces.iter().any(|n| n.full_path == full_path) {
        return message(
            StatusCode::BAD_REQUEST,
            json!("Failed to save group {:path=>[\"has already been taken\"]}"),
        );
    }
    if let Some(refusal) = bad_name(&name) {
        return refusal;
    }
    // Groups are private unless asked otherwise.
    let visibility = text(&attrs, "visibility").unwrap_or_else(|| "private".into());
    if let Some(refusal) = bad_visibility(&s, &visibility, parent.as_ref(), "group") {
        return refusal;
    }
    s.next_id += 1;
    let ns = Namespace {
        id: s.next_id,
        path,
        full_path,
        kind: "group",
        parent_id: parent.map(|p| p.id),
        visibility,
        hidden: false,
        member: true,
    };
    let answer = namespace_json(&ns);
    s.namespaces.push(ns);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn create_project(
    State(state): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let attrs = attributes(&headers, &body);
    let mut s = state.lock().expect("lock");
    let name = text(&attrs, "name");
    let path = text(&attrs, "path").or_else(|| name.clone());
    let Some(path) = path else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "name is missing, path is missing"})),
        )
            .into_response();
    };
    let namespace = match text(&attrs, "namespace_id") {
        Some(id) => match find_namespace(&s, &id) {
            Some(n) => n.clone(),
            None => return message(StatusCode::NOT_FOUND, json!("404 Namespace Not Found")),
        },
        None => s.namespaces[0].clone(),
    };
    if bad_path(&path, false) {
        return message(StatusCode::BAD_REQUEST, json!({"path": [PATH_RULE]}));
    }
    let full = format!("{}/{path}", namespace.full_path);
    if s.projects.iter().any(|p| p.path_with_namespace == full) {
        return message(
            StatusCode::BAD_REQUEST,
            json!({"name": ["has already been taken"], "path": ["has already been taken"]}),
        );
    }
    let name = name.unwrap_or_else(|| path.clone());
    if let Some(refusal) = bad_name(&name) {
        return refusal;
    }
    let visibility = text(&attrs, "visibility").unwrap_or_else(|| "private".into());
    if let Some(refusal) = bad_visibility(&s, &visibility, Some(&namespace), "project") {
        return refusal;
    }
    s.next_id += 1;
    let project = Project {
        id: s.next_id,
        name,
        path,
        namespace_id: namespace.id,
        path_with_namespace: full,
        // Ignored: an empty project has no branch to be the default.
        default_branch: None,
        description: text(&attrs, "description"),
        visibility,
        branches: Vec::new(),
        protected: Vec::new(),
        archived: false,
        empty_repo: true,
        created_at: forge_now(s.git.as_ref()),
    };
    let answer = project_json(&s, &project);
    s.projects.push(project);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

fn project_index(s: &GitlabState, id: &str) -> Option<usize> {
    find_project(s, id)
        .map(|p| p.id)
        .and_then(|pid| s.projects.iter().position(|p| p.id == pid))
}

async fn update_project(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let attrs = attributes(&headers, &body);
    let mut s = state.lock().expect("lock");
    let Some(index) = project_index(&s, &id) else {
        return message(StatusCode::NOT_FOUND, json!("404 Project Not Found"));
    };
    // Checked before anything is applied: a refused request changes nothing.
    if let Some(b) = text(&attrs, "default_branch")
        && !s.projects[index].branches.contains(&b)
    {
        return message(
            StatusCode::BAD_REQUEST,
            json!({"base": [format!("Could not change HEAD: branch '{b}' does not exist")]}),
        );
    }
    if let Some(b) = text(&attrs, "default_branch") {
        s.projects[index].default_branch = Some(b);
    }
    if let Some(d) = text(&attrs, "description") {
        s.projects[index].description = Some(d);
    }
    let project = s.projects[index].clone();
    axum::Json(project_json(&s, &project)).into_response()
}

fn protected_json(name: &str, allow_force_push: bool) -> Value {
    json!({
        "name": name,
        "allow_force_push": allow_force_push,
        "push_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}],
        "merge_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}],
    })
}

async fn list_protected(State(state): Shared, Path(id): Path<String>) -> Response {
    let s = state.lock().expect("lock");
    match find_project(&s, &id) {
        Some(p) => axum::Json(Value::Array(
            p.protected
                .iter()
                .map(|(n, f)| protected_json(n, *f))
                .collect(),
        ))
        .into_response(),
        None => message(StatusCode::NOT_FOUND, json!("404 Project Not Found")),
    }
}

async fn update_protected(
    State(state): Shared,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let attrs = attributes(&headers, &body);
    let mut s = state.lock().expect("lock");
    let Some(index) = project_index(&s, &id) else {
        return message(StatusCode::NOT_FOUND, json!("404 Project Not Found"));
    };
    let Some(entry) = s.projects[index]
        .protected
        .iter_mut()
        .find(|(n, _)| *n == name)
    else {
        return message(StatusCode::NOT_FOUND, json!("404 Not found"));
    };
    if let Some(allow) = attrs.get("allow_force_push") {
        entry.1 = allow == &json!(true) || allow == &json!("true");
    }
    let answer = protected_json(&entry.0, entry.1);
    axum::Json(answer).into_response()
}

/// Page and page size of an offset-paginated request (20 a page by
/// default, at most 100).
fn page_params(q: &[(String, String)]) -> (usize, usize) {
    let per_page: usize = param(q, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page: usize = param(q, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    (page, per_page)
}

/// The projects of a namespace list: by id, ascending when asked, archived
/// ones left out with `archived=false`.
fn namespace_projects<'a>(
    s: &'a GitlabState,
    q: &[(String, String)],
    within: impl Fn(&Project) -> bool,
) -> Vec<&'a Project> {
    let mut projects: Vec<&Project> = s
        .projects
        .iter()
        .filter(|p| within(p))
        .filter(|p| param(q, "archived") != Some("false") || !p.archived)
        .collect();
    projects.sort_by_key(|p| p.id);
    if !(param(q, "order_by") == Some("id") && param(q, "sort") == Some("asc")) {
        projects.reverse();
    }
    projects
}

/// `GET /groups/:id/projects`: the group's projects, and with
/// `include_subgroups=true` those of its subgroups
/// (<https://docs.gitlab.com/api/groups/#list-projects>).
async fn group_projects(
    State(state): Shared,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let s = state.lock().expect("lock");
    let q = query_map(&query);
    let Some(group) = find_namespace(&s, &id)
        .filter(|n| n.kind == "group")
        .cloned()
    else {
        return message(StatusCode::NOT_FOUND, json!("404 Group Not Found"));
    };
    let subgroups = param(&q, "include_subgroups") == Some("true");
    let under = format!("{}/", group.full_path);
    let projects = namespace_projects(&s, &q, |p| {
        let ns = s.namespaces.iter().find(|n| n.id == p.namespace_id);
        ns.is_some_and(|n| n.id == group.id || (subgroups && n.full_path.starts_with(&under)))
    });
    let (page, per_page) = page_params(&q);
    let endpoint = format!("groups/{}/projects", id.replace('/', "%2F"));
    offset_page(&s, &q, &projects, &endpoint, page, per_page)
}

/// `GET /users/:id/projects`: a user's own projects
/// (<https://docs.gitlab.com/api/projects/#list-a-users-projects>).
async fn user_projects(
    State(state): Shared,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let s = state.lock().expect("lock");
    let q = query_map(&query);
    let Some(user) = s
        .namespaces
        .iter()
        .find(|n| n.kind == "user" && (n.full_path == id || n.id.to_string() == id))
        .cloned()
    else {
        return message(StatusCode::NOT_FOUND, json!("404 User Not Found"));
    };
    let projects = namespace_projects(&s, &q, |p| p.namespace_id == user.id);
    let (page, per_page) = page_params(&q);
    let endpoint = format!("users/{}/projects", id.replace('/', "%2F"));
    offset_page(&s, &q, &projects, &endpoint, page, per_page)
}
