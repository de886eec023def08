//! A Trove's `gitano-command.cgi` over HTTP: `GET
//! /gitano-command.cgi?cmd=<url-quoted command>` runs the Gitano command
//! and answers what it prints, as text; with a user configured, HTTP basic
//! authentication is required (401 with `WWW-Authenticate` otherwise).
//! Only `ls` is served, from a fixed list of repositories.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Server;
use super::gitlab_v4::decode;

pub struct TroveState {
    pub repos: Vec<String>,
    /// `user:password` required, if any.
    pub credentials: Option<String>,
    pub requests: Vec<(String, Option<String>)>,
}

pub struct TroveHttp {
    pub server: Server,
    pub state: Arc<Mutex<TroveState>>,
}

impl TroveHttp {
    pub fn start(repos: &[&str], credentials: Option<&str>) -> TroveHttp {
        let state = Arc::new(Mutex::new(TroveState {
            repos: repos.iter().map(|r| (*r).to_owned()).collect(),
            credentials: credentials.map(str::to_owned),
            requests: Vec::new(),
        }));
        let router = Router::new()
            .route("/gitano-command.cgi", get(command))
            .with_state(state.clone());
        TroveHttp {
            server: Server::start(router),
            state,
        }
    }
}

fn basic(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let bytes = base64_decode(encoded)?;
    String::from_utf8(bytes).ok()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

async fn command(
    State(state): State<Arc<Mutex<TroveState>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut s = state.lock().expect("lock");
    let given = basic(&headers);
    s.requests
        .push((query.clone().unwrap_or_default(), given.clone()));
    if let Some(wanted) = &s.credentials
        && given.as_ref() != Some(wanted)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"Trove\"")],
            "Authorization required\n",
        )
            .into_response();
    }
    let cmd = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("cmd="))
        .map(|c| decode(&c.replace('+', " ")));
    if cmd.as_deref() != Some("ls") {
        return (StatusCode::BAD_REQUEST, "Unknown command\n").into_response();
    }
    let mut out = String::new();
    for repo in &s.repos {
        out.push_str(&format!("RW  {repo}\n"));
    }
    ([("content-type", "text/plain")], out).into_response()
}
