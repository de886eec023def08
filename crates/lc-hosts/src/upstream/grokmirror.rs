//! An origin that publishes a grokmirror manifest (`type: grokmirror`).
//!
//! The manifest is one JSON object, usually gzipped (`manifest.js.gz`),
//! keyed by repository path as grokmirror writes it (`/pub/scm/git/git.git`);
//! each value may hold `fingerprint` (SHA-1 of the repository's
//! `git show-ref` output; null for a repository without refs),
//! `description`, `head` (`ref: refs/heads/main`), `modified`,
//! `reference`, `owner`, `symlinks`, `forkgroup`. A repository's name is
//! its key without the leading `/` and the `.git` suffix; it is cloned
//! from `clone-base` + the key without its leading `/`.
//!
//! The manifest is fetched with `If-None-Match`/`If-Modified-Since` from
//! the last read that was applied in full: a `304 Not Modified` is not
//! read again. It is the host's word, not the admin's: its size is bounded
//! (compressed and inflated), and every clone URL still passes
//! `mapping::check_clone_url`.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde_json::Value;

use super::{ListError, ListedRepo, Lister, UpstreamHost, text_field};
use crate::downstream::RepoMetadata;

/// Largest manifest accepted as sent (kernel.org's is a few MB).
const MAX_SENT: usize = 128 << 20;
/// Largest manifest accepted once inflated.
const MAX_INFLATED: u64 = 512 << 20;

/// What a manifest read last time said of its version, sent back to ask
/// whether it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// A read of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRead {
    /// The origin said it has not changed since the read of the validators given.
    Unchanged,
    /// Its repositories, and what to send next time.
    Read {
        repos: Vec<ListedRepo>,
        validators: Validators,
    },
}

/// Reads the manifest of `host`; with `since`, conditionally.
pub async fn read(
    lister: &Lister,
    host: &UpstreamHost,
    since: Option<&Validators>,
) -> Result<ManifestRead, ListError> {
    let fail = |problem: String| ListError::Host {
        host: host.host.clone(),
        problem,
    };
    let param = |key: &str| {
        host.type_params
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| fail(format!("no {key} configured")))
    };
    let manifest_url = param("manifest-url")?;
    let clone_base = param("clone-base")?;
    let client = crate::api::http_client();
    let response = lister
        .polite
        .send(&host.host, || {
            let mut request = client.get(&manifest_url);
            if let Some(v) = since.filter(|v| !v.is_empty()) {
                if let Some(etag) = &v.etag {
                    request = request.header(IF_NONE_MATCH, etag);
                }
                if let Some(date) = &v.last_modified {
                    request = request.header(IF_MODIFIED_SINCE, date);
                }
            }
            request
        })
        .await
        .map_err(|e| {
            fail(format!(
                "GET {manifest_url}: {}",
                crate::api::describe_reqwest(&e)
            ))
        })?;
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED && since.is_some() {
        return Ok(ManifestRead::Unchanged);
    }
    if status != StatusCode::OK {
        return Err(fail(format!("GET {manifest_url} answered {status}")));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let validators = Validators {
        etag: header(ETAG),
        last_modified: header(LAST_MODIFIED),
    };
    let body = read_bounded(response)
        .await
        .map_err(|p| fail(format!("GET {manifest_url}: {p}")))?;
    let manifest = parse(&body).map_err(|p| fail(format!("manifest {manifest_url}: {p}")))?;
    let include_empty = host.includes("include-empty");
    let repos = manifest
        .into_iter()
        .filter(|e| include_empty || e.fingerprint.is_some())
        .map(|e| ListedRepo {
            clone_url: format!("{clone_base}{}", e.key.trim_start_matches('/')),
            path: e.name,
            metadata: e.metadata,
            fingerprint: e.fingerprint,
            activity: None,
        })
        .collect();
    Ok(ManifestRead::Read { repos, validators })
}

/// The body, refused once it passes [`MAX_SENT`] bytes.
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| crate::api::describe_reqwest(&e))?
    {
        if body.len() + chunk.len() > MAX_SENT {
            return Err(format!("larger than {} MiB", MAX_SENT >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// One repository of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As written: `/pub/scm/git/git.git`.
    pub key: String,
    /// `pub/scm/git/git`.
    pub name: String,
    pub fingerprint: Option<String>,
    pub metadata: RepoMetadata,
}

/// A manifest's bytes (gzip, recognised by its magic number, or plain
/// JSON) into its entries, sorted by key. An entry that is not an object
/// or whose fingerprint is not 40 hex digits is refused with the whole
/// manifest: a damaged manifest must not make lorries vanish or be skipped.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    parse_limited(bytes, MAX_INFLATED)
}

fn parse_limited(bytes: &[u8], max_inflated: u64) -> Result<Vec<Entry>, String> {
    let text = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(max_inflated + 1)
            .read_to_end(&mut text)
            .map_err(|e| format!("not valid gzip: {e}"))?;
        if text.len() as u64 > max_inflated {
            return Err(format!("larger than {max_inflated} bytes inflated"));
        }
        text
    } else {
        bytes.to_vec()
    };
    let value: Value = serde_json::from_slice(&text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("not a JSON object".into());
    };
    let mut entries = Vec::with_capacity(map.len());
    for (key, info) in map {
        if !info.is_object() {
            return Err(format!("{key:?}: not an object"));
        }
        let fingerprint = match info.get("fingerprint") {
            None | Some(Value::Null) => None,
            Some(Value::String(fp))
                if fp.len() == 40 && fp.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(fp.to_ascii_lowercase())
            }
            Some(other) => return Err(format!("{key:?}: bad fingerprint {other}")),
        };
        let trimmed = key.trim_start_matches('/');
        let name = trimmed.strip_suffix(".git").unwrap_or(trimmed).to_owned();
        let head = text_field(&info, "head").map(|h| {
            h.strip_prefix("ref:")
                .map_or(h.as_str(), str::trim)
                .to_owned()
        });
        entries.push(Entry {
            name,
            fingerprint,
            metadata: RepoMetadata {
                head,
                description: text_field(&info, "description"),
                upstream: None,
            },
            key,
        });
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(entries)
}

/// grokmirror's fingerprint of a repository with these refs (name, object
/// id in hex): the SHA-1 of `git show-ref`'s output, one `<oid> <name>`
/// line per ref sorted by name, plus the final newline grokmirror adds.
/// `None` for no refs, as grokmirror gives.
pub fn fingerprint(refs: &[(String, String)]) -> Option<String> {
    use sha1::{Digest, Sha1};
    if refs.is_empty() {
        return None;
    }
    let mut sorted: Vec<&(String, String)> = refs.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut hasher = Sha1::new();
    for (name, oid) in sorted {
        hasher.update(format!("{oid} {name}\n").as_bytes());
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// The refs of the repository at `path` as `git show-ref` lists them:
/// every ref under `refs/` (whose name is UTF-8), a symbolic one resolved
/// to its object.
pub fn local_refs(path: &std::path::Path) -> Result<Vec<(String, String)>, git2::Error> {
    let repo = git2::Repository::open_bare(path)?;
    let mut refs = Vec::new();
    for reference in repo.references()? {
        let reference = reference?;
        let Some(name) = reference.name().ok().filter(|n| n.starts_with("refs/")) else {
            continue;
        };
        let name = name.to_owned();
        if let Some(oid) = reference.resolve().ok().and_then(|r| r.target()) {
            refs.push((name, oid.to_string()));
        }
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(text: &str) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).expect("gzip");
        enc.finish().expect("gzip")
    }

    #[test]
    fn manifests_as_grokmirror_writes_them() {
        let fp = "0123456789abcdef0123456789abcdef01234567";
        let text = format!(
            r#"{{"/pub/scm/git/git.git": {{"description": "Git", "fingerprint": "{fp}",
                 "head": "ref: refs/heads/master", "modified": 1700000000,
                 "reference": null, "owner": null, "symlinks": []}},
               "/empty.git": {{"fingerprint": null, "modified": 1}},
               "/plain": {{}}}}"#
        );
        for bytes in [gzip(&text), text.clone().into_bytes()] {
            let entries = parse(&bytes).expect("parse");
            let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, ["empty", "plain", "pub/scm/git/git"]);
            assert_eq!(entries[2].fingerprint.as_deref(), Some(fp));
            assert_eq!(
                entries[2].metadata.head.as_deref(),
                Some("refs/heads/master")
            );
            assert_eq!(entries[2].metadata.valid_head(), Some("master"));
            assert_eq!(entries[2].metadata.description.as_deref(), Some("Git"));
            assert_eq!(entries[0].fingerprint, None);
        }
    }

    #[test]
    fn damaged_manifests_are_refused_whole() {
        for (bytes, needle) in [
            (b"[1]".to_vec(), "not a JSON object"),
            (b"{\"/a.git\": 3}".to_vec(), "not an object"),
            (
                b"{\"/a.git\": {\"fingerprint\": \"xyz\"}}".to_vec(),
                "bad fingerprint",
            ),
            (
                b"{\"/a.git\": {\"fingerprint\": 5}}".to_vec(),
                "bad fingerprint",
            ),
            (vec![0x1f, 0x8b, 1, 2, 3], "not valid gzip"),
            (gzip("{\"/a.git\": "), "not valid JSON"),
        ] {
            let err = parse(&bytes).expect_err("refused");
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn fingerprints_are_sha1_of_show_ref_with_a_final_newline() {
        assert_eq!(fingerprint(&[]), None);
        let a = "1111111111111111111111111111111111111111";
        let b = "2222222222222222222222222222222222222222";
        let refs = [
            ("refs/tags/v1".to_owned(), b.to_owned()),
            ("refs/heads/main".to_owned(), a.to_owned()),
        ];
        // printf '%s refs/heads/main\n%s refs/tags/v1\n' 111... 222... | sha1sum
        assert_eq!(
            fingerprint(&refs).as_deref(),
            Some("4a03b4a00ee8ec79e4dff85fe3ce872379f544da")
        );
    }

    #[test]
    fn a_gzip_bomb_is_refused() {
        let big = format!(
            "{{\"/a\": {{\"description\": \"{}\"}}}}",
            "x".repeat(1 << 20)
        );
        let err = parse_limited(&gzip(&big), 1 << 16).expect_err("bomb");
        assert!(err.contains("inflated"), "{err}");
    }
}
