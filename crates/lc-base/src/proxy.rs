//! `proxy.conf`: the HTTP(S) proxy that mirroring goes through.
//!
//! The file is JSON with `hostname`, `port` and optionally `username` and
//! `password`. Whoever starts `lorry` (the minion) turns it into the
//! `http_proxy`/`https_proxy` environment variables with [`ProxyConfig::env`];
//! git and `lorry`'s HTTP downloads both honour them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::redact::SecretUrl;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot read proxy configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("proxy configuration {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub hostname: String,
    pub port: u16,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

impl ProxyConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ProxyError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProxyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| ProxyError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses the JSON text of a proxy configuration.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let host = config.hostname.trim();
        if host.is_empty() || host.contains(['/', '@', ' ', '\t', '\n']) {
            return Err(format!(
                "field hostname: {:?} is not a host name",
                config.hostname
            ));
        }
        if config.port == 0 {
            return Err("field port: 0 is not a port".into());
        }
        if config.password.is_some() && config.username.is_none() {
            return Err("field password: given without username".into());
        }
        Ok(config)
    }

    /// `http://[user[:password]@]host:port`, user and password
    /// percent-encoded; a [`SecretUrl`], since it may hold the password.
    pub fn url(&self) -> SecretUrl {
        let mut url = String::from("http://");
        if let Some(user) = &self.username {
            url.push_str(&percent_encode(user));
            if let Some(password) = &self.password {
                url.push(':');
                url.push_str(&percent_encode(password));
            }
            url.push('@');
        }
        url.push_str(self.hostname.trim());
        url.push(':');
        url.push_str(&self.port.to_string());
        SecretUrl::new(url)
    }

    /// The environment variables that make git and `lorry` use this proxy.
    pub fn env(&self) -> Vec<(&'static str, SecretUrl)> {
        let url = self.url();
        ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"]
            .into_iter()
            .map(|name| (name, url.clone()))
            .collect()
    }
}

/// What stays as it is in a URL's user name or password: RFC 3986's
/// unreserved characters.
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as it may stand in a URL's user name or password.
pub fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, USERINFO).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_builds_a_redacted_url() {
        let config = ProxyConfig::parse(
            r#"{"hostname": "proxy.example.com", "port": 3128, "username": "me", "password": "p@ss:w"}"#,
        )
        .expect("parse");
        assert_eq!(
            config.url().expose(),
            "http://me:p%40ss%3Aw@proxy.example.com:3128"
        );
        assert_eq!(
            config.url().to_string(),
            "http://***@proxy.example.com:3128"
        );
        assert_eq!(config.env().len(), 4);
        let plain = ProxyConfig::parse(r#"{"hostname": "p", "port": 8080}"#).expect("parse");
        assert_eq!(plain.url().expose(), "http://p:8080");
    }

    #[test]
    fn bad_files_say_which_field() {
        for (text, word) in [
            (r#"{"hostname": "", "port": 1}"#, "hostname"),
            (r#"{"hostname": "h", "port": 0}"#, "port"),
            (r#"{"hostname": "h", "port": 70000}"#, "70000"),
            (
                r#"{"hostname": "h", "port": 1, "password": "x"}"#,
                "password",
            ),
            (r#"{"hostname": "h", "port": 1, "colour": "x"}"#, "colour"),
            ("not json", "expected"),
        ] {
            let err = ProxyConfig::parse(text).expect_err(text);
            assert!(err.contains(word), "{text}: {err}");
        }
        let err = ProxyConfig::load(Path::new("/nonexistent/proxy.conf")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/proxy.conf"));
    }
}
