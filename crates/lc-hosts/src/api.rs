//! A small JSON client for the REST APIs of GitLab and Gitea: URLs built
//! from encoded path segments, the token in a header (never in a URL),
//! every call through [`Politeness`], errors naming host, method, endpoint
//! and the host's own message.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;

use crate::Politeness;
use crate::Secret;

/// Longest piece of an error body quoted in a message.
const QUOTE_LIMIT: usize = 300;

/// Why a call to a host's API failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{host}: {method} {endpoint} answered {status}: {message}")]
    Status {
        host: String,
        method: Method,
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("{host}: {method} {endpoint} failed: {problem}")]
    Transport {
        host: String,
        method: Method,
        endpoint: String,
        problem: String,
    },
    #[error("{host}: {method} {endpoint}: unexpected answer: {problem}")]
    BadAnswer {
        host: String,
        method: Method,
        endpoint: String,
        problem: String,
    },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ApiError::Status { message, .. } => message,
            ApiError::Transport { problem, .. } | ApiError::BadAnswer { problem, .. } => problem,
        }
    }
}

/// One answer: status, headers, JSON body (`Null` if none or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

/// How the token is sent: always in `Authorization`, the one header that
/// HTTP clients and proxies treat as a credential.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// GitLab: `Authorization: Bearer <token>`, accepted for personal,
    /// group and project access tokens
    /// (<https://docs.gitlab.com/api/rest/authentication/#personalprojectgroup-access-tokens>).
    Bearer(Secret),
    /// Gitea: `Authorization: token <token>`
    /// (<https://docs.gitea.com/development/api-usage#authentication>).
    Token(Secret),
    /// GitHub: `Authorization: Bearer <token>` when there is a token (public
    /// data needs none), and the REST API version asked for
    /// (<https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api>,
    /// <https://docs.github.com/en/rest/about-the-rest-api/api-versions>).
    Github(Option<Secret>),
}

/// A REST API at `base` (which ends with `/`, e.g. `https://host/api/v4/`).
#[derive(Debug, Clone)]
pub struct Api {
    /// For GET: same-origin redirects only.
    http: reqwest::Client,
    /// For everything else: no redirects.
    http_change: reqwest::Client,
    base: Url,
    /// Host name: the key of the rate limit, and what errors name.
    host: String,
    auth: Auth,
    polite: Arc<Politeness>,
}

/// Timeout of one HTTP call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Redirects followed at most, and only within the origin of the request.
const MAX_REDIRECTS: usize = 5;

/// A client for GET requests: it follows a redirect only to the same origin
/// (scheme, host and port), so a credential never travels to another
/// host; a redirect elsewhere comes back as the 3xx answer it is.
pub fn http_client() -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin || attempt.previous().len() > MAX_REDIRECTS {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    client(policy)
}

/// A client that follows no redirect at all: for calls that change
/// something, since a followed 301/302 turns a POST or PUT into a GET.
pub fn http_client_no_redirect() -> reqwest::Client {
    client(reqwest::redirect::Policy::none())
}

fn client(policy: reqwest::redirect::Policy) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .user_agent(concat!("lorry-controller/", env!("CARGO_PKG_VERSION")))
        .redirect(policy)
        .build()
        .unwrap_or_default()
}

impl Api {
    /// `root` is the host's web address (`https://gitlab.example.com`, maybe
    /// with a path), `api` the API's path under it (`api/v4`).
    pub fn new(root: &str, api: &str, auth: Auth, polite: Arc<Politeness>) -> Result<Api, String> {
        let mut base = Url::parse(root)
            .map_err(|e| format!("{}: not a URL: {e}", lc_base::redact::redact(root)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!(
                "{}: must be an http or https URL",
                lc_base::redact::redact(root)
            ));
        }
        let Some(host) = base.host_str().map(str::to_owned) else {
            return Err(format!("{}: has no host", lc_base::redact::redact(root)));
        };
        // Credentials in the URL would end up in messages: refuse them.
        if !base.username().is_empty() || base.password().is_some() {
            return Err(format!(
                "{}: give the token with its own option, not in the URL",
                lc_base::redact::redact(root)
            ));
        }
        base.set_query(None);
        base.set_fragment(None);
        let api = api.trim_matches('/');
        let path = if api.is_empty() {
            format!("{}/", base.path().trim_end_matches('/'))
        } else {
            format!("{}/{api}/", base.path().trim_end_matches('/'))
        };
        base.set_path(&path);
        Ok(Api {
            http: http_client(),
            http_change: http_client_no_redirect(),
            base,
            host,
            auth,
            polite,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The URL of the API resource made of `segments`, each one encoded
    /// (a `/` inside a segment becomes `%2F`, as GitLab wants for paths).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        url
    }

    /// The endpoint as errors name it: the path and query, no credentials.
    fn endpoint(url: &Url) -> String {
        match url.query() {
            Some(q) => lc_base::redact::redact(&format!("{}?{q}", url.path())).into_owned(),
            None => url.path().to_owned(),
        }
    }

    /// Calls the API; any answer comes back, whatever its status (a
    /// redirect to another origin, or any redirect of a call that is not a
    /// GET, comes back as the 3xx answer).
    pub async fn call(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let endpoint = Api::endpoint(&url);
        let build = || {
            let client = if method == Method::GET {
                &self.http
            } else {
                &self.http_change
            };
            let mut request = client
                .request(method.clone(), url.clone())
                .header(reqwest::header::ACCEPT, "application/json");
            request = match &self.auth {
                Auth::None => request,
                Auth::Bearer(token) => request.bearer_auth(token.expose()),
                Auth::Token(token) => request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("token {}", token.expose()),
                ),
                Auth::Github(token) => {
                    let request = request.header("X-GitHub-Api-Version", "2022-11-28");
                    match token {
                        Some(token) => request.bearer_auth(token.expose()),
                        None => request,
                    }
                }
            };
            if let Some(body) = body {
                request = request.json(body);
            }
            request
        };
        let transport = |problem: String| ApiError::Transport {
            host: self.host.clone(),
            method: method.clone(),
            endpoint: endpoint.clone(),
            problem,
        };
        let response = self
            .polite
            .send(&self.host, build)
            .await
            .map_err(|e| transport(describe_reqwest(&e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if response.status().is_redirection() {
            // Not followed: say where it pointed (without credentials).
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| lc_base::redact::redact(l).into_owned())
                .unwrap_or_else(|| "nowhere".to_owned());
            return Ok(Answer {
                status,
                headers,
                body: Value::String(format!("redirected to {to} (not followed)")),
            });
        }
        let text = response
            .text()
            .await
            .map_err(|e| transport(describe_reqwest(&e)))?;
        let body = serde_json::from_str(&text).unwrap_or_else(|_| {
            if text.trim().is_empty() {
                Value::Null
            } else {
                Value::String(text)
            }
        });
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Calls the API and insists on `expected`, the success status the
    /// host documents for this call; any other answer is an error quoting
    /// the host's words.
    pub async fn call_expect(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        expected: u16,
    ) -> Result<Answer, ApiError> {
        let answer = self.call(method.clone(), url.clone(), body).await?;
        if answer.status == expected {
            Ok(answer)
        } else {
            Err(self.status_error(&method, &url, &answer))
        }
    }

    pub fn status_error(&self, method: &Method, url: &Url, answer: &Answer) -> ApiError {
        ApiError::Status {
            host: self.host.clone(),
            method: method.clone(),
            endpoint: Api::endpoint(url),
            status: answer.status,
            message: error_message(&answer.body),
        }
    }

    /// The next page after `from`, as a `Link` header gives it: its query
    /// on our own URL. Hosts build the link from their configured external
    /// address (GitLab's `external_url`, Gitea's `ROOT_URL`), which may
    /// not be the name, port or scheme we reach them by; and the token
    /// must go nowhere else.
    pub fn follow(&self, from: &Url, link: &str) -> Result<Url, ApiError> {
        let given = from
            .join(link)
            .map_err(|e| self.bad_answer(&Method::GET, from, format!("bad Link header: {e}")))?;
        let own_path = from.path().trim_end_matches('/');
        if !given.path().trim_end_matches('/').ends_with(
            own_path
                .strip_prefix(self.base.path().trim_end_matches('/'))
                .unwrap_or(own_path),
        ) {
            return Err(self.bad_answer(
                &Method::GET,
                from,
                format!(
                    "the Link header points to another resource: {}",
                    given.path()
                ),
            ));
        }
        let mut next = from.clone();
        next.set_query(given.query());
        Ok(next)
    }

    pub fn bad_answer(&self, method: &Method, url: &Url, problem: impl Into<String>) -> ApiError {
        ApiError::BadAnswer {
            host: self.host.clone(),
            method: method.clone(),
            endpoint: Api::endpoint(url),
            problem: problem.into(),
        }
    }
}

/// What a reqwest error says, without the URL's query (which never holds a
/// token here, but may one day).
pub(crate) fn describe_reqwest(err: &reqwest::Error) -> String {
    let text = lc_base::errors::with_causes(err.without_url_ref(), err);
    lc_base::redact::redact(&text).into_owned()
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        if self.is_timeout() {
            "timed out".into()
        } else if self.is_connect() {
            "cannot connect".into()
        } else if self.is_redirect() {
            "redirect refused".into()
        } else if self.is_decode() || self.is_body() {
            "cannot read the answer".into()
        } else {
            "request failed".into()
        }
    }
}

/// The host's own explanation in an error body: GitLab's and Gitea's
/// `message` (a string or an object of field errors), or `error`.
pub fn error_message(body: &Value) -> String {
    let text = match body {
        Value::Object(map) => match map.get("message").or_else(|| map.get("error")) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => body.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Null => "(no message)".to_owned(),
        other => other.to_string(),
    };
    let text = lc_base::redact::redact(text.trim()).into_owned();
    if text.chars().count() > QUOTE_LIMIT {
        let cut: String = text.chars().take(QUOTE_LIMIT).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// The next page's URL from a `Link` header (`<url>; rel="next"`), if any.
pub fn link_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let Some(target) = parts.next() else { continue };
            let target = target.trim();
            let is_next = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| r.trim_matches('"').split_whitespace().any(|r| r == "next"))
                    .unwrap_or(false)
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn segments_are_encoded_and_the_api_path_kept() {
        let api = Api::new(
            "https://git.example.com/prefix/",
            "api/v4",
            Auth::None,
            Arc::default(),
        )
        .expect("api");
        assert_eq!(
            api.url(&["projects", "a/b c/d"]).as_str(),
            "https://git.example.com/prefix/api/v4/projects/a%2Fb%20c%2Fd"
        );
        assert_eq!(api.host(), "git.example.com");
        let api = Api::new("https://api.github.com", "", Auth::None, Arc::default()).expect("api");
        assert_eq!(
            api.url(&["orgs", "o", "repos"]).as_str(),
            "https://api.github.com/orgs/o/repos"
        );
    }

    #[test]
    fn urls_with_credentials_or_other_schemes_are_refused() {
        let err = Api::new("https://u:sekrit@h/", "api/v4", Auth::None, Arc::default())
            .expect_err("refused");
        assert!(!err.contains("sekrit"), "{err}");
        assert!(Api::new("ftp://h/", "api/v4", Auth::None, Arc::default()).is_err());
        assert!(Api::new("not a url", "api/v4", Auth::None, Arc::default()).is_err());
    }

    #[test]
    fn next_pages_are_asked_on_our_own_url() {
        let api = Api::new(
            "http://127.0.0.1:3000/",
            "api/v1",
            Auth::None,
            Arc::default(),
        )
        .expect("api");
        let from = api.url(&["repos", "search"]);
        let next = api
            .follow(
                &from,
                "https://git.example.com/api/v1/repos/search?limit=50&page=2",
            )
            .expect("next");
        assert_eq!(
            next.as_str(),
            "http://127.0.0.1:3000/api/v1/repos/search?limit=50&page=2"
        );
        assert!(
            api.follow(&from, "https://git.example.com/api/v1/admin/users?page=2")
                .is_err()
        );
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            HeaderValue::from_static(
                "<https://h/api/v1/repos/search?limit=1&page=2>; rel=\"next\",<https://h/api/v1/repos/search?limit=1&page=5252>; rel=\"last\"",
            ),
        );
        assert_eq!(
            link_next(&h).as_deref(),
            Some("https://h/api/v1/repos/search?limit=1&page=2")
        );
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            HeaderValue::from_static("<https://h/x?page=1>; rel=\"first\""),
        );
        assert_eq!(link_next(&h), None);
    }

    #[test]
    fn error_messages_are_the_hosts_own_and_short() {
        assert_eq!(
            error_message(&serde_json::json!({"message": "404 Project Not Found"})),
            "404 Project Not Found"
        );
        assert_eq!(
            error_message(&serde_json::json!({"message": {"name": ["has already been taken"]}})),
            r#"{"name":["has already been taken"]}"#
        );
        assert_eq!(
            error_message(&serde_json::json!({"error": "invalid_token"})),
            "invalid_token"
        );
        assert!(error_message(&Value::String("x".repeat(1000))).len() < 400);
        assert_eq!(
            error_message(&Value::String("see https://u:tok@h/".into())),
            "see https://***@h/"
        );
    }
}
