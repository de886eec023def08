//! A GitLab REST API v4 double: the endpoints Lorry Controller uses, as
//! GitLab's API reference describes them.
//!
//! * Authentication: the `PRIVATE-TOKEN` header or `Authorization: Bearer`;
//!   a missing or wrong token is `401 {"message": "401 Unauthorized"}`
//!   (<https://docs.gitlab.com/api/rest/authentication/>).
//! * `GET /projects`: offset pagination (`page`, `per_page` up to 100,
//!   default 20) with `X-Page`, `X-Per-Page`, `X-Total`, `X-Total-Pages`,
//!   `X-Next-Page`, `X-Prev-Page` and a `Link` header (`prev`, `next`,
//!   `first`, `last`); `order_by=id` with `sort=asc|desc`.
//! * `GET /projects/:id`, `GET /namespaces/:id`, `GET /groups/:id`: a
//!   numeric id or the URL-encoded full path; `404 {"message": "404 Project
//!   Not Found"}` (Namespace, Group).
//! * `POST /groups` (`name`, `path`, `parent_id`, `visibility`): `201` with
//!   the group; `403 {"message": "403 Forbidden"}` when the user may not
//!   create top-level groups; `400 {"message": "Failed to save group
//!   {:path=>[\"has already been taken\"]}"}` when the path is taken.
//! * `POST /projects` (`name`, `path`, `namespace_id`, ...): `201` with the
//!   project; `404 Namespace Not Found`; `409` with the field errors when
//!   the path is taken ("a conflicting resource already exists").
//! * `PUT /projects/:id`: `default_branch`, `description`.
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

use super::{Seen, Server};

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
    /// Answer every request with a `302 Found` to this URL + the request's
    /// path and query (as a moved instance or a hostile proxy might).
    pub redirect_to: Option<String>,
    pub seen: Vec<Seen>,
    pub base: String,
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
            }],
            projects: Vec::new(),
            next_id: 100,
            can_create_group: true,
            omit_next_page_header: false,
            busy: 0,
            redirect_to: None,
            seen: Vec::new(),
            base: String::new(),
        }));
        let router = Router::new()
            .route("/api/v4/projects", get(list_projects).post(create_project))
            .route(
                "/api/v4/projects/{id}",
                get(get_project).put(update_project),
            )
            .route("/api/v4/namespaces/{id}", get(get_namespace))
            .route("/api/v4/groups", axum::routing::post(create_group))
            .route("/api/v4/groups/{id}", get(get_group))
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
        s.projects.push(Project {
            id,
            name: name.into(),
            path: name.into(),
            namespace_id,
            path_with_namespace: path_with_namespace.into(),
            default_branch: head.map(str::to_owned),
            description: description.map(str::to_owned),
            visibility: "private".into(),
        });
    }

    /// The requests that changed something: `METHOD path` and the body.
    pub fn changes(&self) -> Vec<(String, Value)> {
        self.state()
            .seen
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| (r.line(), r.body.clone()))
            .collect()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
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
    });
    id
}

type Shared = State<Arc<Mutex<GitlabState>>>;

fn message(status: StatusCode, message: Value) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// Records the request, then answers 429 when busy and 401 without the token.
async fn guard(State(state): Shared, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let body_json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    {
        let mut s = state.lock().expect("lock");
        s.seen.push(Seen {
            method: parts.method.to_string(),
            path: decode(parts.uri.path()),
            query: parts.uri.query().unwrap_or("").to_owned(),
            body: body_json,
            at: std::time::Instant::now(),
        });
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
    json!({
        "id": p.id,
        "name": p.name,
        "path": p.path,
        "path_with_namespace": p.path_with_namespace,
        "description": p.description,
        "default_branch": p.default_branch,
        "visibility": p.visibility,
        "ssh_url_to_repo": format!("git@{}:{}.git", host.split(':').next().unwrap_or(host), p.path_with_namespace),
        "http_url_to_repo": format!("{}/{}.git", s.base, p.path_with_namespace),
        "web_url": format!("{}/{}", s.base, p.path_with_namespace),
        "namespace": ns.map(|n| json!({"id": n.id, "path": n.path, "full_path": n.full_path, "kind": n.kind})),
    })
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
    if !(param(&q, "order_by") == Some("id") && param(&q, "sort") == Some("asc")) {
        projects.reverse();
    }
    let total = projects.len();
    let total_pages = total.div_ceil(per_page).max(1);
    let items: Vec<Value> = projects
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| project_json(&s, p))
        .collect();
    let link_to = |n: usize| {
        let mut pairs: Vec<(String, String)> =
            q.iter().filter(|(k, _)| k != "page").cloned().collect();
        pairs.push(("page".into(), n.to_string()));
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("<{}/api/v4/projects?{}>", s.base, query.join("&"))
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
    match find_namespace(&s, &id) {
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
    if s.namespaces.iter().any(|n| n.full_path == full_path) {
        return message(
            StatusCode::BAD_REQUEST,
            json!("Failed to save group {:path=>[\"has already been taken\"]}"),
        );
    }
    s.next_id += 1;
    let ns = Namespace {
        id: s.next_id,
        path,
        full_path,
        kind: "group",
        parent_id: parent.map(|p| p.id),
        visibility: text(&attrs, "visibility").unwrap_or_else(|| "private".into()),
        hidden: false,
    };
    let _ = name;
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
    let full = format!("{}/{path}", namespace.full_path);
    if s.projects.iter().any(|p| p.path_with_namespace == full) {
        return message(
            StatusCode::CONFLICT,
            json!({"name": ["has already been taken"], "path": ["has already been taken"]}),
        );
    }
    s.next_id += 1;
    let project = Project {
        id: s.next_id,
        name: name.unwrap_or_else(|| path.clone()),
        path,
        namespace_id: namespace.id,
        path_with_namespace: full,
        default_branch: text(&attrs, "default_branch"),
        description: text(&attrs, "description"),
        visibility: text(&attrs, "visibility").unwrap_or_else(|| "private".into()),
    };
    let answer = project_json(&s, &project);
    s.projects.push(project);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn update_project(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let attrs = attributes(&headers, &body);
    let mut s = state.lock().expect("lock");
    let Some(index) = find_project(&s, &id)
        .map(|p| p.id)
        .and_then(|pid| s.projects.iter().position(|p| p.id == pid))
    else {
        return message(StatusCode::NOT_FOUND, json!("404 Project Not Found"));
    };
    if let Some(b) = text(&attrs, "default_branch") {
        s.projects[index].default_branch = Some(b);
    }
    if let Some(d) = text(&attrs, "description") {
        s.projects[index].description = Some(d);
    }
    let project = s.projects[index].clone();
    axum::Json(project_json(&s, &project)).into_response()
}
