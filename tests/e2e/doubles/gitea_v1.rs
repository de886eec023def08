//! A Gitea REST API v1 double: the endpoints Lorry Controller uses, as
//! Gitea's API reference (swagger) describes them.
//!
//! * Authentication: `Authorization: token <token>`; a wrong token is
//!   `401 {"message": "...", "url": "..."}` (APIUnauthorizedError)
//!   (<https://docs.gitea.com/development/api-usage#authentication>).
//! * Token scopes: each route needs its category's `read:` or `write:`
//!   scope, else `403` naming the scope
//!   (<https://docs.gitea.com/development/oauth2-provider#scopes>).
//! * `GET /repos/search` (`page`, `limit`; the limit capped at
//!   MAX_RESPONSE_ITEMS, 50): `{"ok": true, "data": [Repository...]}` with
//!   `X-Total-Count` and a `Link` header (`next`, `last`, `first`, `prev`)
//!   built from the server's `ROOT_URL`, whatever address the request came
//!   to (<https://docs.gitea.com/administration/config-cheat-sheet#server-server>,
//!   <https://docs.gitea.com/development/api-usage#pagination>).
//! * `GET /repos/{owner}/{repo}`, `PATCH /repos/{owner}/{repo}`
//!   (EditRepoOption: `description`, `default_branch`, `has_actions`).
//! * `GET /orgs/{org}`; `POST /orgs` (CreateOrgOption: `username`,
//!   `visibility` one of `public`, `limited`, `private`): 201, or 422 when
//!   the name is taken or a field is bad, 403 when the user may not create
//!   organisations.
//! * `POST /orgs/{org}/repos`, `POST /user/repos` (CreateRepoOption:
//!   `name`, `description`, `private`, `default_branch`): 201, or 409 when
//!   the repository exists, 404 when the organisation does not, 403 when
//!   the user may not create repositories in it.
//!   (API reference: <https://docs.gitea.com/api/1.22/>.)
//! * Names: a repository's `name` (CreateRepoOption, `binding:
//!   "Required;AlphaDashDot;MaxSize(100)"`) only ASCII letters, digits, `-`,
//!   `_` and `.`, at most 100, and not a reserved name (`.`, `..`, `-`) or
//!   pattern (`*.git`, `*.wiki`, `*.keys`, `*.gpg`, `*.rss`, `*.atom`); an
//!   organisation's `username` (CreateOrgOption, `binding:
//!   "Required;Username;MaxSize(40)"`) the same characters, starting and
//!   ending with a letter or digit, no two special characters in a row, at
//!   most 40: `422` naming the field
//!   (<https://github.com/go-gitea/gitea/blob/main/modules/structs/repo.go>,
//!   <https://github.com/go-gitea/gitea/blob/main/modules/structs/org.go>,
//!   <https://github.com/go-gitea/gitea/blob/main/models/repo/repo.go>,
//!   `IsUsableRepoName`).
//! * `GET /user`: the token's user.
//! * Not found: `404 {"errors": [], "message": "The target couldn't be
//!   found.", "url": "..."}` (APINotFound).

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::forge_git::{ForgeGit, forge_now, gitea_updated_at, rfc3339};
use super::gitlab_v4::decode;
use super::{Seen, Server, forge_double};

#[derive(Debug, Clone)]
pub struct Repo {
    /// A pull mirror: `updated_at` follows the newest commit it fetched.
    pub mirror: bool,
    /// By the forge's clock; `updated_at` starts there.
    pub created_at: i64,
    pub id: i64,
    pub owner: String,
    pub name: String,
    pub description: String,
    pub default_branch: String,
    pub private: bool,
    pub archived: bool,
    pub empty: bool,
}

#[derive(Debug)]
pub struct GiteaState {
    pub token: String,
    pub login: String,
    pub orgs: Vec<(String, String)>,
    pub repos: Vec<Repo>,
    pub can_create_org: bool,
    /// Organisations the user is not a member of: creating there is a 403.
    pub foreign_orgs: Vec<String>,
    /// The token's scopes; `None`: all.
    pub scopes: Option<Vec<String>>,
    /// `[server] ROOT_URL`, when it differs from the address served.
    pub root_url: Option<String>,
    /// `has_actions` as last set per repository (`owner/name`).
    pub has_actions: Vec<(String, bool)>,
    pub next_id: i64,
    /// The git repositories behind the double, if attached: `updated_at`
    /// follows their pushes.
    pub git: Option<Arc<ForgeGit>>,
    pub seen: Vec<Seen>,
    pub base: String,
}

pub struct GiteaV1 {
    pub server: Server,
    state: Arc<Mutex<GiteaState>>,
}

const SWAGGER: &str = "/api/swagger";
/// Gitea's default `[api] MAX_RESPONSE_ITEMS`.
pub const MAX_RESPONSE_ITEMS: usize = 50;

impl GiteaV1 {
    /// A Gitea whose token's user is `lorry`.
    pub fn start(token: &str) -> GiteaV1 {
        let state = Arc::new(Mutex::new(GiteaState {
            token: token.to_owned(),
            login: "lorry".into(),
            orgs: Vec::new(),
            repos: Vec::new(),
            can_create_org: true,
            foreign_orgs: Vec::new(),
            scopes: None,
            root_url: None,
            has_actions: Vec::new(),
            git: None,
            next_id: 0,
            seen: Vec::new(),
            base: String::new(),
        }));
        let router = Router::new()
            .route("/api/v1/repos/search", get(search))
            .route(
                "/api/v1/repos/{owner}/{repo}",
                get(get_repo).patch(edit_repo),
            )
            .route("/api/v1/orgs", post(create_org))
            .route("/api/v1/orgs/{org}", get(get_org))
            .route(
                "/api/v1/orgs/{org}/repos",
                get(org_repos).post(create_org_repo),
            )
            .route("/api/v1/users/{user}/repos", get(user_repos))
            .route("/api/v1/user", get(get_user))
            .route("/api/v1/user/repos", post(create_user_repo))
            .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state.clone());
        let server = Server::start(router);
        state.lock().expect("lock").base = server.url();
        GiteaV1 { server, state }
    }

    pub fn state(&self) -> MutexGuard<'_, GiteaState> {
        self.state.lock().expect("lock")
    }

    pub fn add_org(&self, name: &str) {
        let mut s = self.state();
        if !s.orgs.iter().any(|(n, _)| n == name) {
            s.orgs.push((name.into(), "public".into()));
        }
    }

    /// Marks the repository `full_name` archived or empty.
    pub fn set_repo_state(&self, full_name: &str, archived: bool, empty: bool) {
        let mut s = self.state();
        let r = s
            .repos
            .iter_mut()
            .find(|r| format!("{}/{}", r.owner, r.name) == full_name)
            .expect("repo");
        r.archived = archived;
        r.empty = empty;
    }

    /// Adds a repository; its owner becomes an organisation unless it is
    /// the token's user.
    pub fn add_repo(&self, owner: &str, name: &str, branch: &str, description: &str) {
        if owner != self.state().login {
            self.add_org(owner);
        }
        let mut s = self.state();
        s.next_id += 1;
        let id = s.next_id;
        let created_at = forge_now(s.git.as_ref());
        s.repos.push(Repo {
            mirror: false,
            created_at,
            id,
            owner: owner.into(),
            name: name.into(),
            description: description.into(),
            default_branch: branch.into(),
            private: false,
            archived: false,
            empty: false,
        });
    }

    pub fn repo(&self, full_name: &str) -> Option<Repo> {
        self.state()
            .repos
            .iter()
            .find(|r| format!("{}/{}", r.owner, r.name) == full_name)
            .cloned()
    }
}

forge_double!(GiteaV1, GiteaState);

type Shared = State<Arc<Mutex<GiteaState>>>;

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "message": message, "url": SWAGGER })),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            json!({ "errors": [], "message": "The target couldn't be found.", "url": SWAGGER }),
        ),
    )
        .into_response()
}

async fn guard(State(state): Shared, request: Request, next: Next) -> Response {
    let (parts, bytes, seen) = Seen::record(request).await;
    {
        let mut s = state.lock().expect("lock");
        s.seen.push(seen);
        let auth = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if auth != Some(format!("token {}", s.token).as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "user does not exist [uid: 0, name: ]",
            );
        }
        let path = parts.uri.path();
        let category = if path.starts_with("/api/v1/orgs") {
            "organization"
        } else if path == "/api/v1/user" {
            "user"
        } else {
            "repository"
        };
        let access = if parts.method == axum::http::Method::GET {
            "read"
        } else {
            "write"
        };
        if let Some(scopes) = &s.scopes {
            // A write scope includes the read one.
            let ok = scopes.iter().any(|have| {
                *have == format!("{access}:{category}") || *have == format!("write:{category}")
            });
            if !ok {
                return error(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "token does not have at least one of required scope(s), required=[{access}:{category}], token scope={}",
                        scopes.join(",")
                    ),
                );
            }
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn repo_json(s: &GiteaState, r: &Repo) -> Value {
    // Clone URLs come from ROOT_URL too.
    let base = s.root_url.as_deref().unwrap_or(&s.base);
    let host = base.split_once("://").map_or(base, |(_, rest)| rest);
    let host = host.split(':').next().unwrap_or(host);
    let full_name = format!("{}/{}", r.owner, r.name);
    let pushes = s
        .git
        .as_ref()
        .map(|g| g.pushes(&full_name))
        .unwrap_or_default();
    // Gitea writes times in its server's zone: this one is an hour east.
    let updated = gitea_updated_at(r.created_at, &pushes, r.mirror);
    json!({
        "mirror": r.mirror,
        "created_at": rfc3339(r.created_at, 1, false),
        "updated_at": rfc3339(updated, 1, false),
        "id": r.id,
        "name": r.name,
        "full_name": format!("{}/{}", r.owner, r.name),
        "owner": {"login": r.owner, "username": r.owner},
        "description": r.description,
        "default_branch": r.default_branch,
        "private": r.private,
        "empty": r.empty,
        "archived": r.archived,
        "clone_url": format!("{base}/{}/{}.git", r.owner, r.name),
        "ssh_url": format!("git@{host}:{}/{}.git", r.owner, r.name),
        "html_url": format!("{base}/{}/{}", r.owner, r.name),
    })
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// One page of `repos` (by id) at `endpoint` (under `/api/v1/`): the limit
/// capped at MAX_RESPONSE_ITEMS, `X-Total-Count` and a `Link` header built
/// from ROOT_URL.
fn paged(
    s: &GiteaState,
    pairs: &[(String, String)],
    repos: &[&Repo],
    endpoint: &str,
) -> (HeaderMap, Vec<Value>) {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let limit = get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(30)
        .min(MAX_RESPONSE_ITEMS);
    let page = get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = repos.len();
    let data: Vec<Value> = repos
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|r| repo_json(s, r))
        .collect();
    let last = total.div_ceil(limit).max(1);
    let link = |n: usize| {
        let mut q: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        q.push(format!("page={n}"));
        let root = s.root_url.as_deref().unwrap_or(&s.base);
        format!("<{root}/api/v1/{endpoint}?{}>", q.join("&"))
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("{}; rel=\"next\"", link(page + 1)));
        links.push(format!("{}; rel=\"last\"", link(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link(1)));
        links.push(format!("{}; rel=\"prev\"", link(page - 1)));
    }
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", total.to_string().parse().expect("header"));
    if !links.is_empty() {
        headers.insert("link", links.join(",").parse().expect("header"));
    }
    (headers, data)
}

async fn search(State(state): Shared, RawQuery(query): RawQuery) -> Response {
    let s = state.lock().expect("lock");
    let pairs = query_pairs(query.as_deref());
    let mut repos: Vec<&Repo> = s.repos.iter().collect();
    repos.sort_by_key(|r| r.id);
    let (headers, data) = paged(&s, &pairs, &repos, "repos/search");
    (headers, axum::Json(json!({"ok": true, "data": data}))).into_response()
}

/// `GET /orgs/{org}/repos`: an organisation's repositories, a plain list.
async fn org_repos(
    State(state): Shared,
    Path(org): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let s = state.lock().expect("lock");
    if !s.orgs.iter().any(|(n, _)| *n == org) {
        return not_found();
    }
    owner_repos(&s, &org, query.as_deref(), &format!("orgs/{org}/repos"))
}

/// `GET /users/{user}/repos`: a user's own repositories.
async fn user_repos(
    State(state): Shared,
    Path(user): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let s = state.lock().expect("lock");
    if s.login != user || s.orgs.iter().any(|(n, _)| *n == user) {
        return not_found();
    }
    owner_repos(&s, &user, query.as_deref(), &format!("users/{user}/repos"))
}

fn owner_repos(s: &GiteaState, owner: &str, query: Option<&str>, endpoint: &str) -> Response {
    let pairs = query_pairs(query);
    let mut repos: Vec<&Repo> = s.repos.iter().filter(|r| r.owner == owner).collect();
    repos.sort_by_key(|r| r.id);
    let (headers, data) = paged(s, &pairs, &repos, endpoint);
    (headers, axum::Json(Value::Array(data))).into_response()
}

async fn get_repo(State(state): Shared, Path((owner, repo)): Path<(String, String)>) -> Response {
    let s = state.lock().expect("lock");
    match s.repos.iter().find(|r| r.owner == owner && r.name == repo) {
        Some(r) => axum::Json(repo_json(&s, r)).into_response(),
        None => not_found(),
    }
}

async fn edit_repo(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let edit: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().expect("lock");
    let Some(i) = s
        .repos
        .iter()
        .position(|r| r.owner == owner && r.name == repo)
    else {
        return not_found();
    };
    if let Some(d) = edit.get("description").and_then(Value::as_str) {
        s.repos[i].description = d.into();
    }
    if let Some(b) = edit.get("default_branch").and_then(Value::as_str) {
        s.repos[i].default_branch = b.into();
    }
    if let Some(a) = edit.get("has_actions").and_then(Value::as_bool) {
        let key = format!("{owner}/{repo}");
        s.has_actions.retain(|(k, _)| *k != key);
        s.has_actions.push((key, a));
    }
    let r = s.repos[i].clone();
    axum::Json(repo_json(&s, &r)).into_response()
}

async fn get_org(State(state): Shared, Path(org): Path<String>) -> Response {
    let s = state.lock().expect("lock");
    match s.orgs.iter().find(|(name, _)| *name == org) {
        Some((name, visibility)) => {
            axum::Json(json!({"id": 1, "username": name, "name": name, "visibility": visibility}))
                .into_response()
        }
        None => not_found(),
    }
}

async fn create_org(State(state): Shared, body: axum::body::Bytes) -> Response {
    let option: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().expect("lock");
    let Some(name) = option.get("username").and_then(Value::as_str) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "[UserName]: Required");
    };
    if let Some(problem) = bad_org_name(name) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &problem);
    }
    if !s.can_create_org {
        return error(
            StatusCode::FORBIDDEN,
            "user not allowed to create organizations",
        );
    }
    if s.orgs.iter().any(|(n, _)| n == name) || s.login == name {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("user already exists [name: {name}]"),
        );
    }
    let visibility = option
        .get("visibility")
        .and_then(Value::as_str)
        .unwrap_or("public")
        .to_owned();
    if !["public", "limited", "private"].contains(&visibility.as_str()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "[Visibility]: Visibility is not valid",
        );
    }
    s.orgs.push((name.to_owned(), visibility.clone()));
    (
        StatusCode::CREATED,
        axum::Json(json!({"id": 2, "username": name, "visibility": visibility})),
    )
        .into_response()
}

/// Gitea's AlphaDashDot binding: ASCII letters, digits, `-`, `_`, `.`.
fn alpha_dash_dot(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Why Gitea refuses `name` as a repository name, if it does.
fn bad_repo_name(name: &str) -> Option<String> {
    if !alpha_dash_dot(name) {
        return Some("[Name]: AlphaDashDot".into());
    }
    if name.chars().count() > 100 {
        return Some("[Name]: MaxSize".into());
    }
    let patterns = [".git", ".wiki", ".keys", ".gpg", ".rss", ".atom"];
    if [".", "..", "-"].contains(&name) {
        return Some(format!("name is reserved [name: {name}]"));
    }
    if patterns.iter().any(|p| name.ends_with(p)) {
        return Some(format!("name pattern is not allowed [pattern: {name}]"));
    }
    None
}

/// Why Gitea refuses `name` as an organisation name, if it does.
fn bad_org_name(name: &str) -> Option<String> {
    let special = |c: char| matches!(c, '-' | '_' | '.');
    let ends_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    let no_runs = !name
        .chars()
        .zip(name.chars().skip(1))
        .any(|(a, b)| special(a) && special(b));
    if !(alpha_dash_dot(name) && ends_ok && no_runs) {
        return Some("[UserName]: Username".into());
    }
    (name.chars().count() > 40).then(|| "[UserName]: MaxSize".into())
}

fn create_repo(s: &mut GiteaState, owner: &str, option: &Value) -> Response {
    let Some(name) = option.get("name").and_then(Value::as_str) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "[Name]: Required");
    };
    if let Some(problem) = bad_repo_name(name) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, &problem);
    }
    if s.repos.iter().any(|r| r.owner == owner && r.name == name) {
        return error(
            StatusCode::CONFLICT,
            "The repository with the same name already exists.",
        );
    }
    s.next_id += 1;
    let repo = Repo {
        id: s.next_id,
        owner: owner.to_owned(),
        name: name.to_owned(),
        description: option
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        default_branch: option
            .get("default_branch")
            .and_then(Value::as_str)
            .unwrap_or("main")
            .into(),
        private: option
            .get("private")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        archived: false,
        empty: true,
        mirror: false,
        created_at: forge_now(s.git.as_ref()),
    };
    let answer = repo_json(s, &repo);
    s.repos.push(repo);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn create_org_repo(
    State(state): Shared,
    Path(org): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let option: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().expect("lock");
    if !s.orgs.iter().any(|(n, _)| *n == org) {
        return not_found();
    }
    if s.foreign_orgs.contains(&org) {
        return error(
            StatusCode::FORBIDDEN,
            &format!("Given user is not allowed to create repository in organization {org}."),
        );
    }
    create_repo(&mut s, &org, &option)
}

async fn create_user_repo(State(state): Shared, body: axum::body::Bytes) -> Response {
    let option: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().expect("lock");
    let login = s.login.clone();
    create_repo(&mut s, &login, &option)
}

async fn get_user(State(state): Shared) -> Response {
    let s = state.lock().expect("lock");
    axum::Json(json!({"id": 1, "login": s.login, "username": s.login})).into_response()
}
