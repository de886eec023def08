//! Downloads over HTTP(S) for archives and raw files, and the names taken
//! from their URLs.

use std::fs::File;
use std::path::Path;

use lc_base::redact::redact;

use super::{ImportError, io};

pub(super) fn client(check_certificates: bool) -> Result<reqwest::blocking::Client, ImportError> {
    // Proxies come from http_proxy/https_proxy/no_proxy, as for git.
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(!check_certificates)
        .connect_timeout(std::time::Duration::from_secs(60))
        .timeout(None)
        .build()
        .map_err(|e| ImportError::Http {
            url: String::new(),
            reason: e.to_string(),
        })
}

/// Downloads `url` to `file` (through `<file>.part`, renamed at the end).
pub(super) fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    file: &Path,
) -> Result<(), ImportError> {
    let http = |reason: String| ImportError::Http {
        url: url.to_owned(),
        reason: redact(&reason).into_owned(),
    };
    let mut response = client
        .get(url)
        .send()
        .map_err(|e| http(lc_base::errors::chain(&e)))?;
    if !response.status().is_success() {
        return Err(http(format!("HTTP status {}", response.status())));
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let part = file.with_extension(match file.extension() {
        Some(ext) => format!("{}.part", ext.to_string_lossy()),
        None => "part".to_owned(),
    });
    let mut out = File::create(&part).map_err(io("create", &part))?;
    response
        .copy_to(&mut out)
        .map_err(|e| http(lc_base::errors::chain(&e)))?;
    out.sync_all().map_err(io("write", &part))?;
    std::fs::rename(&part, file).map_err(io("rename into place", file))?;
    Ok(())
}

/// The last path segment of a URL, without query or fragment.
pub(super) fn url_file_name(url: &str) -> Result<String, ImportError> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = path.split_once("://").map_or(path, |(_, rest)| rest);
    let name = path
        .split_once('/')
        .map(|(_, p)| p)
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err(ImportError::NoFileName {
            url: url.to_owned(),
        });
    }
    Ok(name.to_owned())
}

/// A ref name component made from a file name.
pub(super) fn tag_name(file_name: &str) -> String {
    let mut tag: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    while tag.contains("..") {
        tag = tag.replace("..", "._");
    }
    if tag.starts_with('.') {
        tag.insert(0, '_');
    }
    if tag.ends_with(".lock") || tag.ends_with('.') {
        tag.push('_');
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            url_file_name("http://h/a/b-1.0.tar.gz?x=1").expect("name"),
            "b-1.0.tar.gz"
        );
        assert!(url_file_name("http://h/").is_err());
        assert!(url_file_name("http://h").is_err());
        assert!(url_file_name("http://h/..").is_err());
    }

    #[test]
    fn tag_names_are_valid_refs() {
        assert_eq!(tag_name("foo-1.0.tar.gz"), "foo-1.0.tar.gz");
        assert_eq!(tag_name("a b:c"), "a_b_c");
        assert_eq!(tag_name(".hidden"), "_.hidden");
        assert_eq!(tag_name("x.lock"), "x.lock_");
        assert!(!tag_name("a..b").contains(".."));
    }
}
