//! Which upstreams a spec may name. A `.lorry` file comes from CONFGIT or
//! from a host listing, so its URL is not trusted: it must not make git or a
//! converter read the minion's own disk (`file://`, a path), run a program
//! (git's `ext::`, cvs's `:ext;CVS_RSH=...:`), or pass itself off as an option
//! (a leading `-`). [`check`] refuses those before anything runs, and git
//! additionally runs with [`git_protocols`] as `GIT_ALLOW_PROTOCOL`, so a
//! redirect or a submodule cannot reach another transport either.
//!
//! Local upstreams are allowed with `--allow-local-upstreams` (for demos and
//! tests). The push URL and CONFGIT's URL are the admin's, not checked here.

use lc_base::redact::redact;

use crate::source::Source;

/// git's transports for upstreams: the network ones, and `hg` for the
/// `hg::` URLs of git-remote-hg; `file` only when local upstreams are allowed.
pub fn git_protocols(allow_local: bool) -> &'static str {
    if allow_local {
        "https:http:git:ssh:hg:file"
    } else {
        "https:http:git:ssh:hg"
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("upstream {0:?} begins with '-' and would be taken for an option; refused")]
    Dash(String),
    #[error(
        "upstream {0:?} is on this machine (file:// or a path); refused unless \
         lorry --allow-local-upstreams (allow-local-upstreams = yes in lorry.conf)"
    )]
    Local(String),
    #[error("upstream {url:?}: a {kind} spec may use {allowed}; refused")]
    Scheme {
        url: String,
        kind: &'static str,
        allowed: &'static str,
    },
}

/// Where a URL leads.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Network,
    Local,
    Refused,
}

/// Checks every upstream URL of `source` (and a cvs module) for its type.
pub fn check(source: &Source, allow_local: bool) -> Result<(), UpstreamError> {
    let (kind, allowed, place): (&'static str, &'static str, fn(&str) -> Place) = match source {
        Source::Git { .. } => ("git", "https, http, git, ssh", git_place),
        Source::Tarball { .. }
        | Source::Zip { .. }
        | Source::Gzip { .. }
        | Source::RawFile { .. } => ("download", "https, http", download_place),
        Source::Svn { .. } => ("svn", "https, http, svn, svn+ssh", svn_place),
        Source::Hg { .. } => ("hg", "https, http, ssh", hg_place),
        Source::Bzr { .. } => ("bzr", "https, http, bzr, bzr+ssh, sftp, lp:", bzr_place),
        Source::Cvs { .. } => (
            "cvs",
            ":pserver:, :ext:, :ssh:, :extssh:, :gserver:, host:/path",
            cvs_place,
        ),
    };
    let mut words: Vec<&str> = Vec::new();
    match source {
        Source::Git { url, .. }
        | Source::Tarball { url }
        | Source::Zip { url }
        | Source::Gzip { url }
        | Source::Svn { url, .. }
        | Source::Hg { url } => words.push(url),
        Source::RawFile { urls } => words.extend(urls.iter().map(|u| u.url.as_str())),
        Source::Bzr { url, branches } => {
            words.extend(url.as_deref());
            if let Some(branches) = branches {
                words.extend(branches.values().map(String::as_str));
            }
        }
        Source::Cvs { url, module } => {
            if module.starts_with('-') {
                return Err(UpstreamError::Dash(module.clone()));
            }
            words.push(url);
        }
    }
    for url in words {
        let shown = || redact(url).into_owned();
        if url.trim_start().starts_with('-') {
            return Err(UpstreamError::Dash(shown()));
        }
        match place(url) {
            Place::Network => {}
            Place::Local if allow_local => {}
            Place::Local => return Err(UpstreamError::Local(shown())),
            Place::Refused => {
                return Err(UpstreamError::Scheme {
                    url: shown(),
                    kind,
                    allowed,
                });
            }
        }
    }
    Ok(())
}

/// The scheme of `scheme://...`, lower-cased, when the text has one.
fn scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// Network for the allowed schemes, local for `file`, refused otherwise;
/// `no_scheme` decides text without `://`.
fn by_scheme(url: &str, allowed: &[&str], no_scheme: fn(&str) -> Place) -> Place {
    match scheme(url) {
        Some(s) if allowed.contains(&s.as_str()) => Place::Network,
        Some(s) if s == "file" => Place::Local,
        Some(_) => Place::Refused,
        None => no_scheme(url),
    }
}

fn git_place(url: &str) -> Place {
    // `<transport>::<address>` runs git-remote-<transport> (`ext::` runs a
    // command); GIT_ALLOW_PROTOCOL would stop it too.
    if url.contains("::") && scheme(url).is_none() {
        return Place::Refused;
    }
    by_scheme(
        url,
        &["https", "http", "git", "ssh", "git+ssh", "ssh+git"],
        |url| {
            // git's scp-like `[user@]host:path`: a colon before any slash.
            match (url.find(':'), url.find('/')) {
                (Some(colon), slash) if colon > 0 && slash.is_none_or(|s| colon < s) => {
                    Place::Network
                }
                _ => Place::Local,
            }
        },
    )
}

fn download_place(url: &str) -> Place {
    by_scheme(url, &["https", "http"], |_| Place::Refused)
}

fn svn_place(url: &str) -> Place {
    by_scheme(url, &["https", "http", "svn", "svn+ssh"], |_| Place::Local)
}

fn hg_place(url: &str) -> Place {
    by_scheme(url, &["https", "http", "ssh"], |_| Place::Local)
}

fn bzr_place(url: &str) -> Place {
    by_scheme(url, &["https", "http", "bzr", "bzr+ssh", "sftp"], |url| {
        if url.starts_with("lp:") {
            Place::Network
        } else {
            Place::Local
        }
    })
}

/// CVSROOT: `:method:[user[:password]@]host[:port]:/path`, `host:/path`
/// (ext), or a local path (`:local:`, `:fork:`, `/path`). Method options
/// (`:ext;CVS_RSH=prog:`) choose a program to run and are refused.
fn cvs_place(url: &str) -> Place {
    if url.contains("://") {
        // No CVSROOT is a URL (`file:///x` would be host "file" over ssh).
        return Place::Refused;
    }
    if let Some(rest) = url.strip_prefix(':') {
        let Some((method, _)) = rest.split_once(':') else {
            return Place::Refused;
        };
        return match method.to_ascii_lowercase().as_str() {
            "pserver" | "ext" | "ssh" | "extssh" | "gserver" => Place::Network,
            "local" | "fork" => Place::Local,
            _ => Place::Refused,
        };
    }
    if url.starts_with('/') {
        return Place::Local;
    }
    match url.split_once(':') {
        Some((host, path)) if !host.is_empty() && !host.contains('/') && path.starts_with('/') => {
            Place::Network
        }
        _ => Place::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn git(url: &str) -> Source {
        Source::Git {
            url: url.into(),
            refspecs: None,
            include: None,
            exclude: None,
            prune_excluded: None,
        }
    }

    fn is_local(r: Result<(), UpstreamError>) -> bool {
        matches!(r, Err(UpstreamError::Local(_)))
    }

    #[test]
    fn git_urls() {
        for ok in [
            "https://h/x.git",
            "http://h/x",
            "git://h/x",
            "ssh://git@h/x",
            "git@h:x.git",
            "h:x",
        ] {
            assert_eq!(check(&git(ok), false), Ok(()), "{ok}");
        }
        for local in [
            "file:///srv/x",
            "/srv/x",
            "x/y",
            "./x",
            "FILE:///x",
            "../x:y",
        ] {
            assert!(is_local(check(&git(local), false)), "{local}");
            assert_eq!(check(&git(local), true), Ok(()), "{local}");
        }
        for bad in [
            "ext::sh -c touch% /tmp/x",
            "fd::3",
            "ftp://h/x",
            "hg::https://h/x",
        ] {
            assert!(
                matches!(check(&git(bad), true), Err(UpstreamError::Scheme { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_leading_dash_is_refused_by_every_importer() {
        let dash = "--upload-pack=touch /tmp/pwned";
        let sources = [
            git(dash),
            Source::Tarball { url: dash.into() },
            Source::Zip { url: dash.into() },
            Source::Gzip { url: dash.into() },
            Source::RawFile {
                urls: vec![lc_base::spec::RawFileUrl {
                    url: dash.into(),
                    destination: None,
                    sha256sum: None,
                }],
            },
            Source::Svn {
                url: dash.into(),
                layout: None,
            },
            Source::Hg { url: dash.into() },
            Source::Bzr {
                url: Some(dash.into()),
                branches: None,
            },
            Source::Bzr {
                url: None,
                branches: Some(BTreeMap::from([("trunk".to_owned(), dash.to_owned())])),
            },
            Source::Cvs {
                url: dash.into(),
                module: "m".into(),
            },
            Source::Cvs {
                url: ":pserver:anon@h:/cvs".into(),
                module: dash.into(),
            },
        ];
        for source in sources {
            assert!(
                matches!(check(&source, true), Err(UpstreamError::Dash(_))),
                "{source:?}"
            );
        }
    }

    #[test]
    fn converter_and_download_urls() {
        let svn = |u: &str| Source::Svn {
            url: u.into(),
            layout: None,
        };
        let hg = |u: &str| Source::Hg { url: u.into() };
        let bzr = |u: &str| Source::Bzr {
            url: Some(u.into()),
            branches: None,
        };
        let cvs = |u: &str| Source::Cvs {
            url: u.into(),
            module: "m".into(),
        };
        let tar = |u: &str| Source::Tarball { url: u.into() };
        for ok in [
            svn("svn://h/r"),
            svn("svn+ssh://h/r"),
            hg("https://h/r"),
            bzr("lp:foo"),
            bzr("bzr+ssh://h/r"),
            cvs(":pserver:anonymous@cvs.example.org:/cvsroot"),
            cvs(":ext:me@h:/cvs"),
            cvs("h:/cvs"),
            tar("https://h/a.tar.gz"),
        ] {
            assert_eq!(check(&ok, false), Ok(()), "{ok:?}");
        }
        for local in [
            svn("file:///srv/svn"),
            hg("/srv/hg"),
            bzr("file:///b"),
            cvs(":local:/cvs"),
            cvs("/cvs"),
            tar("file:///x.tar"),
        ] {
            assert!(is_local(check(&local, false)), "{local:?}");
        }
        for bad in [
            cvs(":ext;CVS_RSH=/tmp/evil:h:/cvs"),
            cvs(":fake:h:/x"),
            cvs("file:///cvs"),
            tar("ftp://h/a.tar"),
            tar("a.tar"),
            svn("ftp://h/r"),
        ] {
            assert!(
                matches!(check(&bad, true), Err(UpstreamError::Scheme { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn messages_hide_credentials() {
        let err = check(&git("file://u:secret@h/x"), false).expect_err("local");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
