//! The HTTP side: one request to the webapp, its answer checked and decoded.
//!
//! Policy: a 4xx answer is the webapp refusing what was asked
//! ([`Error::Refused`], exit 1), carrying the message of its `{"error": ...}`
//! body; anything else that goes wrong — no connection, a timeout, a 5xx, an
//! answer that is not the JSON expected — means the webapp cannot be used
//! (exit 3).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use lc_api::ErrorBody;
use reqwest::Url;
use reqwest::blocking::{RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Exit code when the webapp refused the request (a 4xx answer).
pub const EXIT_REFUSED: u8 = 1;
/// Exit code of a usage error (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the webapp cannot be reached or failed.
pub const EXIT_UNAVAILABLE: u8 = 3;

/// Exit code when a local file cannot be written.
pub const EXIT_FILE: u8 = 4;

/// How long a download (a backup of STATEDB) may take in all.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Longest piece of a non-JSON answer quoted in an error message.
const QUOTE_MAX: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The webapp answered 4xx: the request was wrong (unknown lorry, bad job id...).
    #[error("{message} (HTTP {status} from {url})")]
    Refused {
        url: Url,
        status: u16,
        message: String,
    },
    /// The webapp answered 5xx.
    #[error("{} {message} (HTTP {status} from {url})", failed_prefix(*.status))]
    Failed {
        url: Url,
        status: u16,
        message: String,
    },
    #[error("cannot reach the webapp at {url}: {reason}")]
    Unreachable { url: Url, reason: String },
    #[error("no answer from the webapp at {url} within {seconds} s")]
    Timeout { url: Url, seconds: u64 },
    /// A 2xx answer that is not the JSON this command expects.
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer { url: Url, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// A local file could not be written (a backup).
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
}

impl Error {
    /// The process exit code this error calls for.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Refused { .. } => EXIT_REFUSED,
            Error::Failed { .. }
            | Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::BadAnswer { .. }
            | Error::Client(_) => EXIT_UNAVAILABLE,
            Error::File { .. } => EXIT_FILE,
        }
    }
}

/// How a 5xx message starts: 501 is an older webapp without the endpoint.
fn failed_prefix(status: u16) -> &'static str {
    if status == 501 {
        "the webapp does not support this yet:"
    } else {
        "the webapp failed:"
    }
}

/// A webapp's answer: its JSON as sent, for `--json`, and the URL asked.
#[derive(Debug, Clone)]
pub struct Answer {
    pub url: Url,
    pub json: Value,
}

impl Answer {
    /// The answer as wire type `T`; a mismatch is [`Error::BadAnswer`].
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        T::deserialize(&self.json).map_err(|err| Error::BadAnswer {
            url: self.url.clone(),
            reason: format!(
                "{err} in {}",
                quote(&serde_json::to_string(&self.json).unwrap_or_default())
            ),
        })
    }
}

/// Talks to one webapp.
#[derive(Debug)]
pub struct Client {
    base: Url,
    timeout: Duration,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client for the webapp at `base` (`http://host:port/`, possibly with
    /// a path prefix); every request gives up after `timeout`.
    /// `token`, when given, goes with every request as `Authorization: Bearer`.
    pub fn new(base: Url, timeout: Duration, token: Option<&str>) -> Result<Client, Error> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::Client("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::blocking::Client::builder()
            .default_headers(headers)
            .user_agent(concat!(
                "lorry-controller-admin/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|err| Error::Client(chain(&err)))?;
        let mut base = base;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Client {
            base,
            timeout,
            http,
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `endpoint` (`1.0/status`), followed by `segments`, each
    /// percent-encoded as one path segment except that `/` in them is kept
    /// as a separator (lorry paths contain slashes).
    pub fn url(&self, endpoint: &str, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(endpoint.split('/'));
            for segment in segments {
                path.extend(segment.split('/'));
            }
        }
        url
    }

    pub fn get(&self, endpoint: &str, segments: &[&str]) -> Result<Answer, Error> {
        let url = self.url(endpoint, segments);
        self.send(url.clone(), self.http.get(url))
    }

    /// GET `endpoint` with `query` as its query string.
    pub fn get_query(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<Answer, Error> {
        let mut url = self.url(endpoint, &[]);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send(url.clone(), self.http.get(url))
    }

    /// POSTs `form` (form-encoded, as the webapp's commands take them).
    pub fn post(&self, endpoint: &str, form: &[(&str, &str)]) -> Result<Answer, Error> {
        let url = self.url(endpoint, &[]);
        self.send(url.clone(), self.http.post(url).form(form))
    }

    /// POSTs `form` and copies a successful answer's body into `out`
    /// (`out_path` names it in errors); answers the number of bytes and the
    /// answer's content type. A refusal is decoded as by [`Client::post`].
    pub fn download(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
        out: &mut dyn Write,
        out_path: &std::path::Path,
    ) -> Result<(u64, String), Error> {
        let url = self.url(endpoint, &[]);
        let mut response = self
            .http
            .post(url.clone())
            .form(form)
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .map_err(|err| self.transport(&url, &err))?;
        let status = response.status();
        if !status.is_success() {
            let text = read_text(response).map_err(|err| self.transport(&url, &err))?;
            return Err(self.failure(url, status, &text));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let expected = response.content_length();
        let mut tracked = TrackedWriter {
            inner: out,
            failed: None,
        };
        let copied = std::io::copy(&mut response, &mut tracked).map_err(|err| {
            match tracked.failed.take() {
                Some(problem) => Error::File {
                    path: out_path.to_owned(),
                    problem,
                },
                None => Error::Unreachable {
                    url: url.clone(),
                    reason: format!("the answer broke off: {}", lc_base::errors::chain(&err)),
                },
            }
        })?;
        if let Some(expected) = expected
            && expected != copied
        {
            return Err(Error::Unreachable {
                url,
                reason: format!("the answer ended after {copied} of {expected} bytes"),
            });
        }
        Ok((copied, content_type))
    }

    fn send(&self, url: Url, request: RequestBuilder) -> Result<Answer, Error> {
        let response = request.send().map_err(|err| self.transport(&url, &err))?;
        let status = response.status();
        let text = read_text(response).map_err(|err| self.transport(&url, &err))?;
        if status.is_success() {
            let json = serde_json::from_str(&text).map_err(|err| Error::BadAnswer {
                url: url.clone(),
                reason: format!("not JSON ({err}): {}", quote(&text)),
            })?;
            return Ok(Answer { url, json });
        }
        Err(self.failure(url, status, &text))
    }

    /// The error of an answer that is not a success.
    fn failure(&self, url: Url, status: reqwest::StatusCode, text: &str) -> Error {
        let message = error_message(status, text);
        let code = status.as_u16();
        if status.is_client_error() {
            Error::Refused {
                url,
                status: code,
                message,
            }
        } else if status.is_server_error() {
            Error::Failed {
                url,
                status: code,
                message,
            }
        } else {
            Error::BadAnswer {
                url,
                reason: format!("HTTP {status}: {message}"),
            }
        }
    }

    fn transport(&self, url: &Url, err: &reqwest::Error) -> Error {
        if err.is_timeout() {
            Error::Timeout {
                url: url.clone(),
                seconds: self.timeout.as_secs(),
            }
        } else {
            Error::Unreachable {
                url: url.clone(),
                reason: chain(err),
            }
        }
    }
}

/// A writer that remembers its own failure, to tell it from the network's.
struct TrackedWriter<'a> {
    inner: &'a mut dyn Write,
    failed: Option<String>,
}

impl Write for TrackedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            self.failed = Some(e.to_string());
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            self.failed = Some(e.to_string());
        })
    }
}

fn read_text(response: Response) -> Result<String, reqwest::Error> {
    let bytes = response.bytes()?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The message of a failed answer: the webapp's `error` field, else the
/// status line and the start of the body.
fn error_message(status: reqwest::StatusCode, text: &str) -> String {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => body.error,
        Err(_) if text.trim().is_empty() => format!("HTTP {status} with an empty body"),
        Err(_) => format!("HTTP {status}, not a JSON error: {}", quote(text)),
    }
}

/// The causes of `err`, innermost last, without reqwest's own message
/// (which repeats the URL); `err` itself when it has none.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    match err.source() {
        Some(cause) => lc_base::errors::chain(cause),
        None => err.to_string(),
    }
}

/// `text` trimmed, on one line and cut to a readable length, in quotes.
fn quote(text: &str) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut cut: String = one_line.chars().take(QUOTE_MAX).collect();
    if cut.len() < one_line.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        Client::new(Url::parse(base).expect("url"), Duration::from_secs(1), None).expect("client")
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_lorry_paths() {
        let c = client("http://h:1");
        assert_eq!(c.url("1.0/status", &[]).as_str(), "http://h:1/1.0/status");
        let c = client("http://h:1/lc");
        assert_eq!(
            c.url("1.0/lorry", &["upstream/a b#?%"]).as_str(),
            "http://h:1/lc/1.0/lorry/upstream/a%20b%23%3F%25"
        );
        let c = client("http://h:1/lc/");
        assert_eq!(c.url("1.0/job", &["7"]).as_str(), "http://h:1/lc/1.0/job/7");
    }

    #[test]
    fn error_messages_prefer_the_webapps_own() {
        let status = reqwest::StatusCode::NOT_FOUND;
        assert_eq!(
            error_message(status, r#"{"error":"no lorry x"}"#),
            "no lorry x"
        );
        assert_eq!(
            error_message(status, "<html>\n<h1>nope</h1>"),
            "HTTP 404 Not Found, not a JSON error: \"<html> <h1>nope</h1>\""
        );
        assert_eq!(
            error_message(status, " "),
            "HTTP 404 Not Found with an empty body"
        );
    }

    #[test]
    fn quotes_are_cut() {
        let long = "x".repeat(500);
        let q = quote(&long);
        assert!(q.chars().count() < 210, "{q}");
        assert!(q.ends_with("…\""), "{q}");
    }

    #[test]
    fn exit_codes_follow_the_policy() {
        let url = Url::parse("http://h/").expect("url");
        let refused = Error::Refused {
            url: url.clone(),
            status: 404,
            message: String::new(),
        };
        assert_eq!(refused.exit_code(), EXIT_REFUSED);
        let failed = Error::Failed {
            url: url.clone(),
            status: 500,
            message: String::new(),
        };
        assert_eq!(failed.exit_code(), EXIT_UNAVAILABLE);
        assert!(failed.to_string().starts_with("the webapp failed: "));
        let unsupported = Error::Failed {
            url: url.clone(),
            status: 501,
            message: "no".into(),
        };
        assert!(
            unsupported
                .to_string()
                .starts_with("the webapp does not support this yet: no (HTTP 501"),
            "{unsupported}"
        );
        let bad = Error::BadAnswer {
            url,
            reason: String::new(),
        };
        assert_eq!(bad.exit_code(), EXIT_UNAVAILABLE);
    }
}
