//! The webapp's options for access control and connection limits, and what
//! they become: a [`Security`] and [`Limits`]. The binary flattens
//! [`AccessOptions`] into its own options.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use lc_base::redact::Secret;

use crate::listen::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, Limits,
};
use crate::security::{
    DEFAULT_BODY_LIMIT, DEFAULT_MAX_FIELDS, ReadAccess, Security, Tokens, host_name, open_classes,
};

/// Environment variables that may hold the tokens instead of a file.
pub const ADMIN_TOKEN_ENV: &str = "LORRY_CONTROLLER_ADMIN_TOKEN";
pub const MINION_TOKEN_ENV: &str = "LORRY_CONTROLLER_MINION_TOKEN";
pub const REFRESH_TOKEN_ENV: &str = "LORRY_CONTROLLER_REFRESH_TOKEN";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadAccessArg {
    /// Anyone may read status, lists, pages and metrics.
    Open,
    /// Reading needs one of the tokens (health-check stays open).
    Token,
}

/// Access control and connection limits.
#[derive(Debug, Clone, clap::Args)]
pub struct AccessOptions {
    /// File holding the admin token (or LORRY_CONTROLLER_ADMIN_TOKEN): every change.
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the minion token (or LORRY_CONTROLLER_MINION_TOKEN): give-me-job, job-update.
    #[arg(long, value_name = "FILE")]
    pub minion_token_file: Option<PathBuf>,
    /// File holding the refresh token (or LORRY_CONTROLLER_REFRESH_TOKEN):
    /// read-configuration, ls-troves, remove-ghost-jobs, remove-old-jobs.
    #[arg(long, value_name = "FILE")]
    pub refresh_token_file: Option<PathBuf>,
    /// Whether reading needs a token.
    #[arg(long, value_enum, value_name = "WHO", default_value_t = ReadAccessArg::Open)]
    pub read_access: ReadAccessArg,
    /// A host name requests may be addressed to, besides loopback, the
    /// listening addresses and the machine's names (repeatable).
    #[arg(long, value_name = "NAME")]
    pub allowed_host: Vec<String>,
    /// Serve a non-loopback address without any token.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Seconds a client has to send a request's header, from its first byte
    /// (never applies while an answer streams).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT.as_secs_f64())]
    pub header_read_timeout: f64,
    /// Seconds a keep-alive connection may stay idle between requests
    /// (never applies while an answer streams).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    pub idle_timeout: f64,
    /// Connections served at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Largest POST body in bytes, job-update excepted.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Most fields of a POST form, job-update excepted.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FIELDS)]
    pub max_form_fields: usize,
}

impl AccessOptions {
    /// The tokens, read now: refused when a file is unreadable, empty, or
    /// open to other users. Messages never hold a token.
    pub fn tokens(&self) -> Result<Tokens, String> {
        let read = |file: &Option<PathBuf>, option: &str, var: &str| {
            lc_startup::token::from_file_or_env(file.as_deref(), var)
                .map(|t| t.map(Secret::new))
                .map_err(|e| format!("--{option}: {e}"))
        };
        Ok(Tokens {
            admin: read(&self.admin_token_file, "admin-token-file", ADMIN_TOKEN_ENV)?,
            minion: read(
                &self.minion_token_file,
                "minion-token-file",
                MINION_TOKEN_ENV,
            )?,
            refresh: read(
                &self.refresh_token_file,
                "refresh-token-file",
                REFRESH_TOKEN_ENV,
            )?,
        })
    }

    /// The access rules and limits for a webapp listening on `address`;
    /// refused without tokens on a non-loopback address (unless
    /// `--insecure-no-auth`), and with `--read-access token` but no token.
    pub fn build(&self, address: SocketAddr) -> Result<(Security, Limits), String> {
        let tokens = self.tokens()?;
        let read_access = match self.read_access {
            ReadAccessArg::Open => ReadAccess::Open,
            ReadAccessArg::Token => ReadAccess::Token,
        };
        if read_access == ReadAccess::Token && !tokens.any() {
            return Err("--read-access token needs at least one token".to_owned());
        }
        if !address.ip().is_loopback() && !tokens.any() && !self.insecure_no_auth {
            return Err(format!(
                "refusing to serve {address} without access tokens: anyone who can reach it could \
                 take jobs (with their upstream credentials) and change everything; set \
                 --admin-token-file and --minion-token-file (see INSTALL.md, Security), or give \
                 --insecure-no-auth"
            ));
        }
        for (name, value) in [
            ("--header-read-timeout", self.header_read_timeout),
            ("--idle-timeout", self.idle_timeout),
        ] {
            // Up to a year: beyond that a deadline would not fit the clock.
            if !(value.is_finite() && value > 0.0 && value <= 31_536_000.0) {
                return Err(format!(
                    "{name}: {value} must be a positive number of seconds (at most a year)"
                ));
            }
        }
        for (name, value) in [
            ("--max-connections", self.max_connections),
            ("--body-limit", self.body_limit),
            ("--max-form-fields", self.max_form_fields),
        ] {
            if value == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
        }
        let mut allowed = default_host_names(address);
        allowed.extend(self.allowed_host.iter().map(|h| host_name(h)));
        allowed.sort();
        allowed.dedup();
        let security = Security {
            tokens,
            read_access,
            allowed_hosts: Some(allowed),
            body_limit: self.body_limit,
            max_fields: self.max_form_fields,
        };
        let limits = Limits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs_f64(self.header_read_timeout),
            idle_timeout: Duration::from_secs_f64(self.idle_timeout),
        };
        Ok((security, limits))
    }
}

/// Logs what is open to anyone, once at start-up.
pub fn log_open_access(security: &Security) {
    let open = open_classes(security);
    if !security.tokens.any() {
        tracing::warn!(
            "no access tokens are set: as the original Lorry Controller, this webapp lets \
             anyone who can reach it take jobs and change everything (loopback only; see \
             --admin-token-file, --minion-token-file, --refresh-token-file)"
        );
    } else if !open.is_empty() {
        tracing::warn!(open = %open.join("; "), "no token set for these: open to anyone");
    }
}

/// The names a request may give in `Host` by default: loopback, the
/// listening address (every address of the machine for a wildcard), and the
/// machine's host name with the names `/etc/hosts` gives it.
pub fn default_host_names(address: SocketAddr) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let ip = address.ip();
    if ip.is_unspecified() {
        if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
            for ifaddr in addrs {
                let Some(storage) = ifaddr.address else {
                    continue;
                };
                if let Some(v4) = storage.as_sockaddr_in() {
                    names.push(IpAddr::V4(v4.ip()).to_string());
                } else if let Some(v6) = storage.as_sockaddr_in6() {
                    names.push(IpAddr::V6(v6.ip()).to_string());
                }
            }
        }
    } else {
        names.push(ip.to_string());
    }
    if let Ok(host) = nix::unistd::gethostname()
        && let Some(host) = host.to_str()
    {
        let host = host.to_ascii_lowercase();
        let short = host.split('.').next().unwrap_or(&host).to_owned();
        // The fully qualified name: /etc/hosts lists it beside the short one.
        if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
            for line in hosts.lines() {
                let line = line.split('#').next().unwrap_or("");
                let words: Vec<String> = line
                    .split_whitespace()
                    .skip(1)
                    .map(str::to_ascii_lowercase)
                    .collect();
                if words.iter().any(|w| *w == host || *w == short) {
                    names.extend(words);
                }
            }
        }
        names.push(host);
        names.push(short);
    }
    names.iter().map(|n| host_name(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        access: AccessOptions,
    }

    fn options(args: &[&str]) -> AccessOptions {
        Cli::parse_from(std::iter::once("x").chain(args.iter().copied())).access
    }

    #[test]
    fn no_token_is_refused_off_loopback_unless_insecure() {
        let loopback: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:1".parse().expect("addr");
        assert!(options(&[]).build(loopback).is_ok());
        let err = options(&[]).build(any).expect_err("refused");
        assert!(err.contains("--insecure-no-auth"), "{err}");
        assert!(options(&["--insecure-no-auth"]).build(any).is_ok());
        assert!(options(&["--read-access=token"]).build(loopback).is_err());
        assert!(options(&["--max-connections=0"]).build(loopback).is_err());
        assert!(options(&["--idle-timeout=0"]).build(loopback).is_err());
        assert!(options(&["--idle-timeout=1e300"]).build(loopback).is_err());
        assert!(options(&["--idle-timeout=0.5"]).build(loopback).is_ok());
        assert!(
            options(&["--header-read-timeout=0"])
                .build(loopback)
                .is_err()
        );
    }

    #[test]
    fn default_host_names_cover_loopback_and_the_listening_address() {
        let names = default_host_names("192.0.2.7:80".parse().expect("addr"));
        for name in ["localhost", "127.0.0.1", "::1", "192.0.2.7"] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        let names = default_host_names("0.0.0.0:80".parse().expect("addr"));
        assert!(names.iter().any(|n| n == "127.0.0.1"), "{names:?}");
    }
}
