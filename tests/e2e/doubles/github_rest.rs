//! A GitHub REST API double (API version 2022-11-28): the endpoints Lorry
//! Controller uses, as GitHub's REST reference describes them.
//!
//! * Authentication: `Authorization: Bearer <token>` (or `token <token>`);
//!   none at all reads public data; a wrong token is `401 {"message": "Bad
//!   credentials"}`
//!   (<https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api>).
//! * Every answer carries `X-RateLimit-Limit`, `-Remaining`, `-Used`,
//!   `-Reset` (UTC epoch seconds) and `-Resource`. Past the primary limit:
//!   `403` with `X-RateLimit-Remaining: 0` until the reset time; a
//!   secondary limit: `403` with `Retry-After`
//!   (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>).
//! * `GET /orgs/{org}/repos` (`type`, `sort`, `per_page` up to 100, default
//!   30, `page`), `GET /users/{username}/repos`: a list, with a `Link`
//!   header (`next`, `last`, `first`, `prev`)
//!   (<https://docs.github.com/en/rest/repos/repos#list-organization-repositories>,
//!   <https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api>).
//! * `GET /repos/{owner}/{repo}`; `PATCH /repos/{owner}/{repo}`
//!   (`description`, `default_branch`: `422` when the branch does not exist;
//!   `has_issues`, `has_wiki`, `has_projects`)
//!   (<https://docs.github.com/en/rest/repos/repos#update-a-repository>).
//! * `POST /orgs/{org}/repos` (`403` unless the user may create there),
//!   `POST /user/repos`: `201`; a taken name is `422` "name already exists
//!   on this account"
//!   (<https://docs.github.com/en/rest/repos/repos#create-an-organization-repository>).
//! * `PUT /repos/{owner}/{repo}/actions/permissions` (`enabled`): `204`
//!   (<https://docs.github.com/en/rest/actions/permissions#set-github-actions-permissions-for-a-repository>).
//! * `GET /orgs/{org}`, `GET /user`.
//! * Not found: `404 {"message": "Not Found", "documentation_url": ...}`.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::{Value, json};

use super::forge_git::{ForgeGit, forge_now, github_pushed_at, rfc3339};
use super::gitlab_v4::decode;
use super::{Seen, Server, forge_double};

const DOCS: &str = "https://docs.github.com/rest";

#[derive(Debug, Clone)]
pub struct Repo {
    pub owner: String,
    pub name: String,
    pub description: Option<String>,
    pub default_branch: String,
    pub private: bool,
    pub archived: bool,
    pub fork: bool,
    /// KiB; 0 for an empty repository.
    pub size: u64,
    pub branches: Vec<String>,
    pub has_issues: bool,
    pub actions_enabled: bool,
    /// By the forge's clock; `pushed_at` starts there.
    pub created_at: i64,
}

#[derive(Debug)]
pub struct GithubState {
    /// `None`: no token is accepted (only anonymous reads).
    pub token: Option<String>,
    pub login: String,
    /// Organisations and whether the user may create repositories there.
    pub orgs: Vec<(String, bool)>,
    pub repos: Vec<Repo>,
    /// Requests left before the primary limit; `reset_at` (epoch seconds)
    /// puts it back to `limit`.
    pub remaining: u32,
    pub limit: u32,
    pub reset_at: i64,
    /// Answer this many requests with a secondary-limit 403 and
    /// `Retry-After: 1`.
    pub secondary: u32,
    /// The git repositories behind the double, if attached: `pushed_at`
    /// follows their pushes.
    pub git: Option<Arc<ForgeGit>>,
    pub seen: Vec<Seen>,
    /// Answers given: status of each request, in order.
    pub statuses: Vec<u16>,
    pub base: String,
}

pub struct GithubRest {
    pub server: Server,
    state: Arc<Mutex<GithubState>>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl GithubRest {
    /// A GitHub whose token's user is `lorry`; the API lives under
    /// `/api/v3`, as on GitHub Enterprise Server.
    pub fn start(token: Option<&str>) -> GithubRest {
        let state = Arc::new(Mutex::new(GithubState {
            token: token.map(str::to_owned),
            login: "lorry".into(),
            orgs: Vec::new(),
            repos: Vec::new(),
            remaining: 5000,
            limit: 5000,
            reset_at: now() + 3600,
            secondary: 0,
            git: None,
            seen: Vec::new(),
            statuses: Vec::new(),
            base: String::new(),
        }));
        let api = Router::new()
            .route("/orgs/{org}", get(get_org))
            .route("/orgs/{org}/repos", get(org_repos).post(create_org_repo))
            .route("/users/{user}/repos", get(user_repos))
            .route("/user", get(get_user))
            .route("/user/repos", axum::routing::post(create_user_repo))
            .route("/repos/{owner}/{repo}", get(get_repo).patch(edit_repo))
            .route(
                "/repos/{owner}/{repo}/actions/permissions",
                put(set_actions),
            );
        let router = Router::new()
            .nest("/api/v3", api)
            .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
            .with_state(state.clone());
        let server = Server::start(router);
        state.lock().expect("lock").base = format!("{}/api/v3", server.url());
        GithubRest { server, state }
    }

    pub fn state(&self) -> MutexGuard<'_, GithubState> {
        self.state.lock().expect("lock")
    }

    /// An organisation; `member`: whether the user may create repositories in it.
    pub fn add_org(&self, name: &str, member: bool) {
        let mut s = self.state();
        if !s.orgs.iter().any(|(n, _)| n == name) {
            s.orgs.push((name.into(), member));
        }
    }

    /// A repository with one branch, its default; its owner becomes an
    /// organisation unless it is the user.
    pub fn add_repo(&self, owner: &str, name: &str, description: Option<&str>) {
        if owner != self.state().login {
            self.add_org(owner, true);
        }
        let created_at = forge_now(self.state().git.as_ref());
        self.state().repos.push(Repo {
            owner: owner.into(),
            name: name.into(),
            description: description.map(str::to_owned),
            default_branch: "main".into(),
            private: false,
            archived: false,
            fork: false,
            size: 10,
            branches: vec!["main".into()],
            has_issues: true,
            actions_enabled: true,
            created_at,
        });
    }

    pub fn repo(&self, full_name: &str) -> Option<Repo> {
        self.state()
            .repos
            .iter()
            .find(|r| format!("{}/{}", r.owner, r.name) == full_name)
            .cloned()
    }

    pub fn update_repo(&self, full_name: &str, change: impl FnOnce(&mut Repo)) {
        let mut s = self.state();
        let r = s
            .repos
            .iter_mut()
            .find(|r| format!("{}/{}", r.owner, r.name) == full_name)
            .expect("repo");
        change(r);
    }
}

forge_double!(GithubRest, GithubState);

type Shared = State<Arc<Mutex<GithubState>>>;

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "message": message, "documentation_url": DOCS })),
    )
        .into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not Found")
}

fn rate_headers(s: &GithubState, headers: &mut HeaderMap) {
    let mut set = |k: &'static str, v: String| {
        headers.insert(k, HeaderValue::from_str(&v).expect("header"));
    };
    set("x-ratelimit-limit", s.limit.to_string());
    set("x-ratelimit-remaining", s.remaining.to_string());
    set("x-ratelimit-used", (s.limit - s.remaining).to_string());
    set("x-ratelimit-reset", s.reset_at.to_string());
    set("x-ratelimit-resource", "core".into());
}

/// Records the request; the rate limits, then authentication.
async fn guard(State(state): Shared, request: Request, next: Next) -> Response {
    let (parts, bytes, seen) = Seen::record(request).await;
    let refusal = {
        let mut s = state.lock().expect("lock");
        s.seen.push(seen);
        if now() >= s.reset_at {
            s.remaining = s.limit;
            s.reset_at = now() + 3600;
        }
        let auth = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let token = auth.and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
        });
        if s.secondary > 0 {
            s.secondary -= 1;
            let mut r = error(
                StatusCode::FORBIDDEN,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            r.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            Some(r)
        } else if s.remaining == 0 {
            let mut r = error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1.",
            );
            rate_headers(&s, r.headers_mut());
            Some(r)
        } else if token.is_some() && token != s.token.as_deref() {
            Some(error(StatusCode::UNAUTHORIZED, "Bad credentials"))
        } else if token.is_none() && parts.method != axum::http::Method::GET {
            Some(error(StatusCode::UNAUTHORIZED, "Requires authentication"))
        } else {
            s.remaining -= 1;
            None
        }
    };
    let mut response = match refusal {
        Some(r) => r,
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    let mut s = state.lock().expect("lock");
    s.statuses.push(response.status().as_u16());
    if !response.headers().contains_key("x-ratelimit-limit") {
        rate_headers(&s, response.headers_mut());
    }
    response
}

fn repo_json(s: &GithubState, r: &Repo) -> Value {
    let web = s.base.trim_end_matches("/api/v3");
    let host = web.split_once("://").map_or(web, |(_, h)| h);
    let host = host.split(':').next().unwrap_or(host);
    let full_name = format!("{}/{}", r.owner, r.name);
    let pushes = s
        .git
        .as_ref()
        .map(|g| g.pushes(&full_name))
        .unwrap_or_default();
    json!({
        "name": r.name,
        "full_name": format!("{}/{}", r.owner, r.name),
        "owner": {"login": r.owner},
        "private": r.private,
        "visibility": if r.private { "private" } else { "public" },
        "description": r.description,
        "fork": r.fork,
        "archived": r.archived,
        "size": r.size,
        "default_branch": r.default_branch,
        "has_issues": r.has_issues,
        "clone_url": format!("{web}/{}/{}.git", r.owner, r.name),
        "ssh_url": format!("git@{host}:{}/{}.git", r.owner, r.name),
        "html_url": format!("{web}/{}/{}", r.owner, r.name),
        "mirror_url": null,
        "created_at": rfc3339(r.created_at, 0, false),
        "pushed_at": rfc3339(github_pushed_at(r.created_at, &pushes), 0, false),
    })
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
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

/// One page of `repos` at `endpoint`, with GitHub's `Link` header.
fn page_of(s: &GithubState, query: Option<&str>, repos: Vec<&Repo>, endpoint: &str) -> Response {
    let q = pairs(query);
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let per_page = get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = repos.len().div_ceil(per_page).max(1);
    let data: Vec<Value> = repos
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| repo_json(s, r))
        .collect();
    let link = |n: usize| {
        let mut parts: Vec<String> = q
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.push(format!("page={n}"));
        format!("<{}/{endpoint}?{}>", s.base, parts.join("&"))
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link(page - 1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", link(page + 1)));
        links.push(format!("{}; rel=\"last\"", link(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link(1)));
    }
    let mut headers = HeaderMap::new();
    if !links.is_empty() {
        headers.insert("link", links.join(", ").parse().expect("header"));
    }
    (headers, axum::Json(Value::Array(data))).into_response()
}

fn sorted<'a>(s: &'a GithubState, owner: &str) -> Vec<&'a Repo> {
    let mut repos: Vec<&Repo> = s.repos.iter().filter(|r| r.owner == owner).collect();
    repos.sort_by(|a, b| a.name.cmp(&b.name));
    repos
}

async fn org_repos(
    State(state): Shared,
    Path(org): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = state.lock().expect("lock");
    if !s.orgs.iter().any(|(n, _)| *n == org) {
        return not_found();
    }
    page_of(
        &s,
        q.as_deref(),
        sorted(&s, &org),
        &format!("orgs/{org}/repos"),
    )
}

async fn user_repos(
    State(state): Shared,
    Path(user): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let s = state.lock().expect("lock");
    if user != s.login {
        return not_found();
    }
    page_of(
        &s,
        q.as_deref(),
        sorted(&s, &user),
        &format!("users/{user}/repos"),
    )
}

async fn get_org(State(state): Shared, Path(org): Path<String>) -> Response {
    let s = state.lock().expect("lock");
    match s.orgs.iter().find(|(n, _)| *n == org) {
        Some((name, _)) => axum::Json(json!({"login": name, "id": 7})).into_response(),
        None => not_found(),
    }
}

async fn get_user(State(state): Shared) -> Response {
    let s = state.lock().expect("lock");
    axum::Json(json!({"login": s.login, "id": 1})).into_response()
}

async fn get_repo(State(state): Shared, Path((owner, repo)): Path<(String, String)>) -> Response {
    let s = state.lock().expect("lock");
    match s.repos.iter().find(|r| r.owner == owner && r.name == repo) {
        Some(r) => axum::Json(repo_json(&s, r)).into_response(),
        None => not_found(),
    }
}

fn create(s: &mut GithubState, owner: &str, option: &Value) -> Response {
    let Some(name) = option.get("name").and_then(Value::as_str) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request.\n\n\"name\" wasn't supplied.",
        );
    };
    if s.repos
        .iter()
        .any(|r| r.owner == owner && r.name.eq_ignore_ascii_case(name))
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({
                "message": "Repository creation failed.",
                "errors": [{"resource": "Repository", "code": "custom", "field": "name",
                            "message": "name already exists on this account"}],
                "documentation_url": DOCS,
            })),
        )
            .into_response();
    }
    let private = option
        .get("private")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || option.get("visibility").and_then(Value::as_str) == Some("private");
    let repo = Repo {
        owner: owner.into(),
        name: name.into(),
        description: option
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        // An empty repository: GitHub's default name, no branch yet.
        default_branch: "main".into(),
        private,
        archived: false,
        fork: false,
        size: 0,
        branches: Vec::new(),
        has_issues: option
            .get("has_issues")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        actions_enabled: true,
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
    match s.orgs.iter().find(|(n, _)| *n == org) {
        None => not_found(),
        Some((_, false)) => error(
            StatusCode::FORBIDDEN,
            "You need admin access to the organization before adding a repository to it.",
        ),
        Some(_) => create(&mut s, &org, &option),
    }
}

async fn create_user_repo(State(state): Shared, body: axum::body::Bytes) -> Response {
    let option: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().expect("lock");
    let login = s.login.clone();
    create(&mut s, &login, &option)
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
    if let Some(b) = edit.get("default_branch").and_then(Value::as_str)
        && !s.repos[i].branches.iter().any(|x| x == b)
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "Repository", "code": "invalid", "field": "default_branch"}],
                "documentation_url": DOCS,
            })),
        )
            .into_response();
    }
    let r = &mut s.repos[i];
    if let Some(b) = edit.get("default_branch").and_then(Value::as_str) {
        r.default_branch = b.into();
    }
    if let Some(d) = edit.get("description").and_then(Value::as_str) {
        r.description = Some(d.into());
    }
    if let Some(v) = edit.get("has_issues").and_then(Value::as_bool) {
        r.has_issues = v;
    }
    let r = s.repos[i].clone();
    axum::Json(repo_json(&s, &r)).into_response()
}

async fn set_actions(
    State(state): Shared,
    Path((owner, repo)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let option: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().expect("lock");
    let Some(r) = s
        .repos
        .iter_mut()
        .find(|r| r.owner == owner && r.name == repo)
    else {
        return not_found();
    };
    let Some(enabled) = option.get("enabled").and_then(Value::as_bool) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request.\n\n\"enabled\" wasn't supplied.",
        );
    };
    r.actions_enabled = enabled;
    StatusCode::NO_CONTENT.into_response()
}
