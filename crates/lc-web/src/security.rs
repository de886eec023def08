//! Who may call what, and from where: one middleware ([`guard`]) in front of
//! every route, checking in this order, each before anything is changed:
//!
//! 1. **Host.** The `Host` header must name this webapp (`--allowed-host`),
//!    so a page on a rebinding DNS name cannot talk to it (403).
//! 2. **Cross-site.** A state-changing request whose `Origin` or
//!    `Sec-Fetch-Site` says another origin sent it is refused (403).
//! 3. **Tokens.** Each route class needs one of the tokens that may grant it
//!    ([`Class`]); `Authorization: Bearer TOKEN` or HTTP Basic with the token
//!    as password, compared in constant time; 401 with `WWW-Authenticate`
//!    when none fits, 403 when a token fits but is not enough.
//! 4. **Body.** POST bodies are forms (`application/x-www-form-urlencoded`)
//!    or empty without a type (415 otherwise), at most `body_limit` bytes
//!    (413) and `max_fields` fields, a `redirect` field is a same-site path,
//!    and a request from a browser (HTTP Basic, or `Origin`, `Referer`,
//!    `Sec-Fetch-Site`, `Cookie`) carries the pages' CSRF token. job-update
//!    is exempt from the size and field rules (its output has its own limit).
//!
//! Every answer also carries headers that keep pages out of frames and stop
//! content sniffing.
//!
//! A class whose tokens are all unconfigured is open: with no token at all
//! the webapp behaves as the original did (the binary refuses that on a
//! non-loopback address unless `--insecure-no-auth`).

use std::sync::Arc;

use crate::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lc_base::redact::Secret;
use subtle::ConstantTimeEq;

/// Largest POST body of every route but job-update.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Most form fields in a POST body of every route but job-update.
pub const DEFAULT_MAX_FIELDS: usize = 64;
/// The form field that carries the CSRF token of the pages' forms.
pub const CSRF_FIELD: &str = "csrf";

/// Which token a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `health-check`: always open.
    Open,
    /// Reading: open unless `--read-access token`; then any token.
    Read,
    /// give-me-job, job-update: the minion token (or the admin token).
    Minion,
    /// read-configuration, ls-troves, remove-ghost-jobs, remove-old-jobs:
    /// the refresh token (or the admin token).
    Refresh,
    /// Every other change: the admin token.
    Admin,
}

impl Class {
    pub fn of(method: &Method, path: &str) -> Class {
        let read = *method == Method::GET || *method == Method::HEAD;
        match path {
            "/1.0/health-check" if read => Class::Open,
            _ if read => Class::Read,
            "/1.0/give-me-job" | "/1.0/job-update" => Class::Minion,
            "/1.0/read-configuration"
            | "/1.0/ls-troves"
            | "/1.0/remove-ghost-jobs"
            | "/1.0/remove-old-jobs" => Class::Refresh,
            _ => Class::Admin,
        }
    }
}

/// The tokens configured; `None` when not set.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub admin: Option<Secret>,
    pub minion: Option<Secret>,
    pub refresh: Option<Secret>,
}

impl Tokens {
    pub fn any(&self) -> bool {
        self.admin.is_some() || self.minion.is_some() || self.refresh.is_some()
    }
}

/// Whether reading needs a token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadAccess {
    #[default]
    Open,
    Token,
}

/// The webapp's access rules; the default is the original's: anyone may do
/// anything, any `Host`.
#[derive(Debug, Clone)]
pub struct Security {
    pub tokens: Tokens,
    pub read_access: ReadAccess,
    /// Host names (lower case, no port) a request's `Host` may name; `None`
    /// accepts any.
    pub allowed_hosts: Option<Vec<String>>,
    pub body_limit: usize,
    pub max_fields: usize,
}

impl Default for Security {
    fn default() -> Security {
        Security {
            tokens: Tokens::default(),
            read_access: ReadAccess::Open,
            allowed_hosts: None,
            body_limit: DEFAULT_BODY_LIMIT,
            max_fields: DEFAULT_MAX_FIELDS,
        }
    }
}

/// Which tokens grant a class: the configured ones among those that may.
fn granting<'a>(tokens: &'a Tokens, read_access: ReadAccess, class: Class) -> Vec<&'a Secret> {
    let pick = |list: &[&'a Option<Secret>]| list.iter().filter_map(|t| t.as_ref()).collect();
    match class {
        Class::Open => Vec::new(),
        Class::Read if read_access == ReadAccess::Open => Vec::new(),
        Class::Read => pick(&[&tokens.admin, &tokens.minion, &tokens.refresh]),
        Class::Minion => pick(&[&tokens.minion, &tokens.admin]),
        Class::Refresh => pick(&[&tokens.refresh, &tokens.admin]),
        Class::Admin => pick(&[&tokens.admin]),
    }
}

/// What a class is open to when no token for it is set, for the start-up log.
pub fn open_classes(security: &Security) -> Vec<&'static str> {
    let mut open = Vec::new();
    for (class, name) in [
        (Class::Admin, "admin actions"),
        (
            Class::Minion,
            "give-me-job and job-update (which hand out upstream credentials)",
        ),
        (
            Class::Refresh,
            "refreshes (read-configuration, ls-troves, remove-*-jobs)",
        ),
    ] {
        if granting(&security.tokens, security.read_access, class).is_empty() {
            open.push(name);
        }
    }
    open
}

/// The CSRF token of the pages' forms: random, made once per start of the
/// webapp (pages loaded before a restart must be reloaded). It is not a
/// secret from those who may read the pages; it only proves that a form
/// came from one of them.
pub fn csrf() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(random_token)
}

/// 128 bits from the kernel, in hex.
fn random_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: fall back on the hasher's per-process random keys.
        use std::hash::{BuildHasher, RandomState};
        let a = RandomState::new().hash_one(std::process::id());
        let b = RandomState::new().hash_one(std::time::SystemTime::now());
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token an `Authorization` header carries: `Bearer TOKEN`, or Basic
/// with any user name and the token as password.
fn presented(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.to_owned())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_user, password) = text.split_once(':')?;
        Some(password.to_owned())
    } else {
        None
    }
}

fn is_basic(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
        })
}

/// Constant-time equality of a presented token and a configured one.
fn matches(presented: &str, secret: &Secret) -> bool {
    let expected = secret.expose().as_bytes();
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected))
}

/// The name a `Host` header gives, lower case, without port or final dot.
pub fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() > 1 {
        // A bare IPv6 address (a Host header brackets it).
        host
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Checks the `Host` header against the allowed names.
fn host_allowed(security: &Security, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(allowed) = &security.allowed_hosts else {
        return Ok(());
    };
    let Some(host) = headers.get(header::HOST) else {
        return Ok(());
    };
    let name = host_name(host.to_str().unwrap_or(""));
    if allowed.contains(&name) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "this webapp does not serve the host name {name:?} (add it with --allowed-host)"
    )))
}

/// Whether `Origin` or `Sec-Fetch-Site` says another origin sent the request.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?");
        if !matches!(site, "same-origin" | "none") {
            return Some(format!("Sec-Fetch-Site: {site}"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("?");
        let own = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.trim().to_ascii_lowercase());
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/').to_ascii_lowercase());
        let same = match (&origin_host, &own) {
            (Some(o), Some(h)) => o == h || host_name(o) == host_name(h) && default_port(origin, h),
            _ => false,
        };
        if !same {
            return Some(format!("Origin: {origin}"));
        }
    }
    None
}

/// `Origin: https://name` and `Host: name:443` (or `http` and `:80`) are
/// the same origin as far as a port can tell.
fn default_port(origin: &str, host: &str) -> bool {
    let port = host.rsplit_once(':').map(|(_, p)| p);
    match port {
        None => true,
        Some("443") => origin.starts_with("https://"),
        Some("80") => origin.starts_with("http://"),
        Some(_) => false,
    }
}

/// Whether a browser sent the request (so the CSRF token is required).
fn from_browser(headers: &HeaderMap) -> bool {
    is_basic(headers)
        || [header::ORIGIN, header::REFERER, header::COOKIE]
            .iter()
            .any(|h| headers.contains_key(h))
        || headers.contains_key("sec-fetch-site")
}

/// A `redirect` field: a same-site absolute path only.
pub fn redirect_ok(to: &str) -> bool {
    to.starts_with('/')
        && !to.starts_with("//")
        && !to.contains('\\')
        && !to.chars().any(char::is_control)
}

/// The middleware: see the module documentation.
pub async fn guard(State(security): State<Arc<Security>>, req: Request, next: Next) -> Response {
    let mut resp = match check(&security, req).await {
        Ok(req) => next.run(req).await,
        Err(refusal) => refusal.into_response(),
    };
    let headers = resp.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

async fn check(security: &Security, req: Request) -> Result<Request, ApiError> {
    let headers = req.headers();
    host_allowed(security, headers)?;
    let class = Class::of(req.method(), req.uri().path());
    let changes = !matches!(class, Class::Open | Class::Read);
    if changes && let Some(what) = cross_site(headers) {
        return Err(ApiError::Forbidden(format!(
            "cross-site request refused ({what})"
        )));
    }
    let granting = granting(&security.tokens, security.read_access, class);
    if !granting.is_empty() {
        let Some(token) = presented(headers) else {
            return Err(ApiError::Unauthorized("this request needs a token (Authorization: Bearer TOKEN, or HTTP Basic with the token as password)".to_owned()));
        };
        if !granting.iter().any(|secret| matches(&token, secret)) {
            let known = [
                &security.tokens.admin,
                &security.tokens.minion,
                &security.tokens.refresh,
            ]
            .iter()
            .filter_map(|t| t.as_ref())
            .any(|secret| matches(&token, secret));
            return Err(if known {
                ApiError::Forbidden("this token does not allow this request".to_owned())
            } else {
                ApiError::Unauthorized("wrong token".to_owned())
            });
        }
    }
    if !changes || req.method() == Method::OPTIONS {
        return Ok(req);
    }
    check_body(security, req).await
}

/// Content type, size, field count, `redirect` and CSRF token of a POST.
async fn check_body(security: &Security, req: Request) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?").to_ascii_lowercase());
    let form = match content_type.as_deref() {
        None => false,
        Some(t) => {
            let essence = t.split(';').next().unwrap_or("").trim();
            if essence != "application/x-www-form-urlencoded" {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Type {essence:?} is not accepted: send application/x-www-form-urlencoded, or no body"
                )));
            }
            true
        }
    };
    if parts.uri.path() == "/1.0/job-update" {
        return Ok(Request::from_parts(parts, body));
    }
    let bytes: Bytes = match axum::body::to_bytes(body, security.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Err(ApiError::PayloadTooLarge(format!(
                "request body larger than {} bytes (or unreadable)",
                security.body_limit
            )));
        }
    };
    if !form && !bytes.is_empty() {
        return Err(ApiError::UnsupportedMediaType(
            "a request body needs Content-Type: application/x-www-form-urlencoded".to_owned(),
        ));
    }
    let fields: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
    if fields.len() > security.max_fields {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} form fields; at most {} are accepted",
            fields.len(),
            security.max_fields
        )));
    }
    for (name, value) in &fields {
        if name == "redirect" && !value.is_empty() && !redirect_ok(value) {
            return Err(ApiError::BadRequest(format!(
                "field redirect must be a path on this server starting with '/', not {value:?}"
            )));
        }
    }
    if from_browser(&parts.headers) {
        let sent = fields.iter().find(|(n, _)| n == CSRF_FIELD).map(|(_, v)| v);
        let ok = sent.is_some_and(|v| bool::from(v.as_bytes().ct_eq(csrf().as_bytes())));
        if !ok {
            return Err(ApiError::Forbidden(
                "a form sent by a browser must carry the page's csrf field (reload the page)"
                    .to_owned(),
            ));
        }
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        map
    }

    #[test]
    fn classes_of_routes() {
        assert_eq!(Class::of(&Method::GET, "/1.0/health-check"), Class::Open);
        assert_eq!(Class::of(&Method::GET, "/1.0/status"), Class::Read);
        assert_eq!(Class::of(&Method::HEAD, "/1.0/give-me-job"), Class::Read);
        assert_eq!(Class::of(&Method::POST, "/1.0/give-me-job"), Class::Minion);
        assert_eq!(Class::of(&Method::POST, "/1.0/job-update"), Class::Minion);
        assert_eq!(Class::of(&Method::POST, "/1.0/ls-troves"), Class::Refresh);
        assert_eq!(
            Class::of(&Method::POST, "/1.0/force-ls-troves"),
            Class::Admin
        );
        assert_eq!(Class::of(&Method::POST, "/1.0/stop-queue"), Class::Admin);
        assert_eq!(Class::of(&Method::DELETE, "/1.0/status"), Class::Admin);
        assert_eq!(Class::of(&Method::GET, "/1.0/lorry-refs/a/b"), Class::Read);
        assert_eq!(Class::of(&Method::GET, "/1.0/lorry-history/a"), Class::Read);
        assert_eq!(Class::of(&Method::GET, "/1.0/snapshots/s"), Class::Read);
        assert_eq!(Class::of(&Method::POST, "/1.0/snapshots"), Class::Admin);
        assert_eq!(
            Class::of(&Method::POST, "/1.0/channels/release"),
            Class::Admin
        );
        assert_eq!(
            Class::of(&Method::GET, "/1.0/channels/release"),
            Class::Read
        );
        assert_eq!(
            Class::of(&Method::POST, "/1.0/snapshots/s/delete"),
            Class::Admin
        );
    }

    #[test]
    fn tokens_come_as_bearer_or_basic_password() {
        assert_eq!(
            presented(&headers(&[("authorization", "Bearer abc")])).as_deref(),
            Some("abc")
        );
        // "anyone:s3cr:et"
        assert_eq!(
            presented(&headers(&[("authorization", "Basic YW55b25lOnMzY3I6ZXQ=")])).as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(presented(&headers(&[("authorization", "Digest x")])), None);
        assert_eq!(presented(&headers(&[("authorization", "Basic !!")])), None);
        assert_eq!(presented(&headers(&[])), None);
        assert!(!matches("", &Secret::new("")));
        assert!(matches("t", &Secret::new("t")));
        assert!(!matches("t2", &Secret::new("t")));
    }

    #[test]
    fn a_class_is_open_only_without_any_token_that_grants_it() {
        let tokens = Tokens {
            admin: None,
            minion: Some(Secret::new("m")),
            refresh: None,
        };
        assert_eq!(granting(&tokens, ReadAccess::Open, Class::Minion).len(), 1);
        assert!(granting(&tokens, ReadAccess::Open, Class::Admin).is_empty());
        assert!(granting(&tokens, ReadAccess::Open, Class::Read).is_empty());
        assert_eq!(granting(&tokens, ReadAccess::Token, Class::Read).len(), 1);
        assert!(granting(&tokens, ReadAccess::Token, Class::Open).is_empty());
    }

    #[test]
    fn host_names_and_origins() {
        assert_eq!(host_name("LC.Example.:12765"), "lc.example");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("::1"), "::1");
        assert_eq!(host_name("fe80::1"), "fe80::1");
        let same = headers(&[("host", "lc:8080"), ("origin", "http://lc:8080")]);
        assert_eq!(cross_site(&same), None);
        let tls = headers(&[("host", "lc"), ("origin", "https://lc")]);
        assert_eq!(cross_site(&tls), None);
        for (origin, site) in [
            ("http://evil.example", "cross-site"),
            ("null", "cross-site"),
            ("http://lc:8081", "same-site"),
        ] {
            assert!(cross_site(&headers(&[("host", "lc:8080"), ("origin", origin)])).is_some());
            assert!(
                cross_site(&headers(&[("host", "lc:8080"), ("sec-fetch-site", site)])).is_some()
            );
        }
        assert_eq!(
            cross_site(&headers(&[
                ("host", "lc"),
                ("sec-fetch-site", "same-origin")
            ])),
            None
        );
    }

    #[test]
    fn redirects_stay_on_this_site() {
        assert!(redirect_ok("/1.0/status-html"));
        assert!(redirect_ok("/1.0/lorry-html/a%20b?x=1"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/ok\r\nSet-Cookie: x=1",
            "relative",
            "",
        ] {
            assert!(!redirect_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn csrf_tokens_are_random_and_fixed_per_process() {
        let a = random_token();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_token());
        assert_eq!(csrf(), csrf());
    }
}
