//! From a listing to generated lorries: `ignore`, then `prefixmap`.
//!
//! * A repository matching any `ignore` glob (fnmatch rules: `*` also
//!   matches `/`) is skipped.
//! * `prefixmap` maps a remote prefix to a local one. A prefix matches only
//!   at a `/` boundary: `foo` maps `foo/bar` but neither `foo` itself nor
//!   `foobar/x`. When several prefixes match, the longest wins. A
//!   repository no prefix maps is skipped.
//! * Each mapped repository becomes a git lorry at `<local>/<rest>` that
//!   mirrors branches and tags, with the host's interval and timeout. Two
//!   repositories mapped to the same path: the first listed wins.

use std::collections::{BTreeMap, HashSet};

use lc_core::db::NewLorry;
use serde_json::json;

use crate::downstream::RepoMetadata;
use crate::upstream::ListedRepo;

/// What a host section says about its generated lorries.
#[derive(Debug, Clone)]
pub struct HostRules<'a> {
    pub host: &'a str,
    pub prefixmap: &'a BTreeMap<String, String>,
    pub ignore: &'a [String],
    pub interval: i64,
    pub lorry_timeout: i64,
}

/// One generated lorry and the upstream's metadata for its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub lorry: NewLorry,
    pub metadata: RepoMetadata,
    /// The fingerprint of its refs in the host's manifest (grokmirror).
    pub fingerprint: Option<String>,
    /// When the host says its repository last changed (`activity-hint`).
    pub activity: Option<i64>,
}

/// The outcome of mapping one listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    pub lorries: Vec<Generated>,
    /// Repositories skipped by an `ignore` glob.
    pub ignored: usize,
    /// Repositories no prefix maps.
    pub unmapped: usize,
    /// Repositories skipped for a bad path or a duplicate, with the reason.
    pub problems: Vec<String>,
}

/// The refspecs of a generated lorry: every branch and tag.
pub const REFSPECS: [&str; 2] = ["+refs/heads/*", "+refs/tags/*"];

/// Applies `rules` to a listing.
pub fn map_listing(rules: &HostRules<'_>, repos: &[ListedRepo]) -> Mapped {
    let ignore: Vec<Ignore> = rules.ignore.iter().map(|g| Ignore::new(g)).collect();
    let mut prefixes: Vec<(&str, &str)> = rules
        .prefixmap
        .iter()
        .map(|(remote, local)| (remote.trim_end_matches('/'), local.trim_end_matches('/')))
        .filter(|(remote, _)| !remote.is_empty())
        .collect();
    // Longest remote prefix first, so the most specific mapping wins.
    prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));

    let mut mapped = Mapped::default();
    let mut seen = HashSet::new();
    for repo in repos {
        if ignore.iter().any(|i| i.matches(&repo.path)) {
            mapped.ignored += 1;
            continue;
        }
        let local = prefixes.iter().find_map(|(remote, local)| {
            let rest = repo.path.strip_prefix(remote)?.strip_prefix('/')?;
            Some(if local.is_empty() {
                rest.to_owned()
            } else {
                format!("{local}/{rest}")
            })
        });
        let Some(local) = local else {
            mapped.unmapped += 1;
            continue;
        };
        if let Err(problem) = check_path(&local) {
            mapped
                .problems
                .push(format!("{} → {local:?}: {problem}", repo.path));
            continue;
        }
        if let Err(problem) = check_clone_url(rules.host, &repo.clone_url) {
            mapped.problems.push(format!("{}: {problem}", repo.path));
            continue;
        }
        if !seen.insert(local.clone()) {
            mapped.problems.push(format!(
                "{} → {local}: another repository of the listing maps there",
                repo.path
            ));
            continue;
        }
        mapped.lorries.push(Generated {
            lorry: NewLorry {
                text: spec_text(&local, &repo.clone_url),
                path: local,
                from_host: rules.host.to_owned(),
                from_path: repo.path.clone(),
                interval: rules.interval,
                lorry_timeout: rules.lorry_timeout,
            },
            metadata: repo.metadata.clone(),
            fingerprint: repo.fingerprint.clone(),
            activity: repo.activity,
        });
    }
    mapped
}

/// `{path: {"type": "git", "url": url, "refspecs": [...]}}`, indented by
/// four spaces as the original wrote it.
pub fn spec_text(path: &str, url: &str) -> String {
    let spec = json!({ path: { "type": "git", "url": url, "refspecs": REFSPECS } });
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    match serde::Serialize::serialize(&spec, &mut ser) {
        Ok(()) => String::from_utf8(out).unwrap_or_else(|_| spec.to_string()),
        Err(_) => spec.to_string(),
    }
}

/// A listing is the host's word, not the admin's: a clone URL may only lead
/// to that host over a network transport. Its host must be the configured
/// one, a subdomain of it, or the domain it is a subdomain of (GitHub lists
/// from `api.github.com` and clones from `github.com`; GitLab may clone over
/// a separate ssh host); its scheme https, http, ssh or git (or scp-like
/// `user@host:path`). A local path, `file:`, `ext::` or another host is
/// refused, and so is a leading `-`.
pub fn check_clone_url(host: &str, url: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "clone URL {:?} refused: {why}",
            lc_base::redact::redact(url)
        ))
    };
    if url.starts_with('-') || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("not a URL");
    }
    let authority = if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if !["https", "http", "ssh", "git", "git+ssh", "ssh+git"].contains(&scheme.as_str()) {
            return refuse("only https, http, ssh and git are allowed");
        }
        rest.split(['/', '?', '#']).next().unwrap_or("")
    } else if url.contains("::") {
        return refuse("a git transport other than https, http, ssh and git");
    } else {
        // scp-like `[user@]host:path`: a colon before any slash.
        match (url.find(':'), url.find('/')) {
            (Some(colon), slash) if colon > 0 && slash.is_none_or(|s| colon < s) => &url[..colon],
            _ => return refuse("a path on this machine"),
        }
    };
    let name = |text: &str| -> String {
        let text = text.rsplit_once('@').map_or(text, |(_, h)| h);
        let text = match text.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => text.split(':').next().unwrap_or(text),
        };
        text.trim_end_matches('.').to_ascii_lowercase()
    };
    let (listed, configured) = (name(authority), name(host));
    let related = |sub: &str, parent: &str| {
        parent.contains('.') && sub.strip_suffix(parent).is_some_and(|s| s.ends_with('.'))
    };
    if !listed.is_empty()
        && (listed == configured || related(&listed, &configured) || related(&configured, &listed))
    {
        Ok(())
    } else {
        refuse(&format!("it names host {listed:?}, not {configured:?}"))
    }
}

/// A lorry path must be a relative path of plain components.
fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path.starts_with('/') {
        Err("not a relative path")
    } else if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Err("empty, '.' or '..' component")
    } else if path.chars().any(|c| c.is_control()) {
        Err("control characters")
    } else {
        Ok(())
    }
}

/// An `ignore` entry: a glob, or, when it does not parse as one, the literal path.
enum Ignore {
    Glob(glob::Pattern),
    Literal(String),
}

impl Ignore {
    fn new(text: &str) -> Ignore {
        match glob::Pattern::new(text) {
            Ok(p) => Ignore::Glob(p),
            Err(_) => Ignore::Literal(text.to_owned()),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Ignore::Glob(p) => p.matches(path),
            Ignore::Literal(l) => l == path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repos(paths: &[&str]) -> Vec<ListedRepo> {
        paths
            .iter()
            .map(|p| ListedRepo {
                path: (*p).to_owned(),
                clone_url: format!("ssh://git@up/{p}"),
                metadata: RepoMetadata::default(),
                fingerprint: None,
                activity: None,
            })
            .collect()
    }

    fn map(prefixmap: &[(&str, &str)], ignore: &[&str], paths: &[&str]) -> Mapped {
        let prefixmap: BTreeMap<String, String> = prefixmap
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        let ignore: Vec<String> = ignore.iter().map(|s| (*s).to_owned()).collect();
        map_listing(
            &HostRules {
                host: "up",
                prefixmap: &prefixmap,
                ignore: &ignore,
                interval: 7200,
                lorry_timeout: 600,
            },
            &repos(paths),
        )
    }

    fn paths(m: &Mapped) -> Vec<(&str, &str)> {
        m.lorries
            .iter()
            .map(|g| (g.lorry.from_path.as_str(), g.lorry.path.as_str()))
            .collect()
    }

    #[test]
    fn prefixes_match_only_at_a_slash() {
        let m = map(
            &[("foo", "mirror/foo")],
            &[],
            &["foo/bar", "foobar/x", "foo", "foo/a/b", "bar/foo/x"],
        );
        assert_eq!(
            paths(&m),
            [("foo/bar", "mirror/foo/bar"), ("foo/a/b", "mirror/foo/a/b")]
        );
        assert_eq!(m.unmapped, 3);
    }

    #[test]
    fn the_longest_prefix_wins_and_trailing_slashes_do_not_matter() {
        let m = map(
            &[("a", "x"), ("a/b/", "y/"), ("example", "example")],
            &[],
            &["a/b/c", "a/c", "example/foo"],
        );
        assert_eq!(
            paths(&m),
            [
                ("a/b/c", "y/c"),
                ("a/c", "x/c"),
                ("example/foo", "example/foo")
            ]
        );
    }

    #[test]
    fn ignore_globs_match_like_fnmatch() {
        let m = map(
            &[("g", "g")],
            &["g/lorries", "g/*-private", "g/sub/*", "[bad"],
            &["g/lorries", "g/x-private", "g/sub/deep/er", "g/ok", "[bad"],
        );
        assert_eq!(paths(&m), [("g/ok", "g/ok")]);
        assert_eq!(m.ignored, 4);
    }

    #[test]
    fn bad_and_duplicate_paths_are_reported_not_generated() {
        let m = map(
            &[("a", "same"), ("b", "same")],
            &[],
            &["a/x", "b/x", "a/../../etc", "a//y", "a/."],
        );
        assert_eq!(paths(&m), [("a/x", "same/x")]);
        assert_eq!(m.problems.len(), 4, "{:?}", m.problems);
    }

    #[test]
    fn clone_urls_lead_only_to_the_listing_host() {
        for ok in [
            "https://up/a.git",
            "ssh://git@up:2222/a",
            "git@up:a/b.git",
            "git://UP./a",
        ] {
            assert_eq!(check_clone_url("up", ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_clone_url("api.github.com", "https://github.com/a/b.git"),
            Ok(())
        );
        assert_eq!(
            check_clone_url(
                "gitlab.example.org",
                "ssh://git@ssh.gitlab.example.org/a.git"
            ),
            Ok(())
        );
        for bad in [
            "/srv/git/secret.git",
            "file:///etc",
            "../x",
            "ext::sh -c id",
            "https://evil.example/a.git",
            "https://up@evil.example/a.git",
            "ftp://up/a",
            "-oProxyCommand=x",
            "https://com/a",
            "ssh://localhost/x",
        ] {
            let host = if bad.contains("//com/") {
                "github.com"
            } else {
                "up"
            };
            assert!(check_clone_url(host, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_listing_that_names_another_host_or_a_path_makes_a_problem_not_a_lorry() {
        let prefixmap = BTreeMap::from([("g".to_owned(), "m".to_owned())]);
        let listing = vec![
            ListedRepo {
                path: "g/ok".into(),
                clone_url: "https://up/g/ok.git".into(),
                metadata: RepoMetadata::default(),
                fingerprint: None,
                activity: None,
            },
            ListedRepo {
                path: "g/local".into(),
                clone_url: "/home/lorry/.ssh".into(),
                metadata: RepoMetadata::default(),
                fingerprint: None,
                activity: None,
            },
            ListedRepo {
                path: "g/other".into(),
                clone_url: "https://u:pw@elsewhere.example/x.git".into(),
                metadata: RepoMetadata::default(),
                fingerprint: None,
                activity: None,
            },
        ];
        let m = map_listing(
            &HostRules {
                host: "up",
                prefixmap: &prefixmap,
                ignore: &[],
                interval: 60,
                lorry_timeout: 60,
            },
            &listing,
        );
        assert_eq!(paths(&m), [("g/ok", "m/ok")]);
        assert_eq!(m.problems.len(), 2, "{:?}", m.problems);
        assert!(
            m.problems.iter().all(|p| !p.contains("pw")),
            "{:?}",
            m.problems
        );
    }

    #[test]
    fn generated_lorries_mirror_heads_and_tags_with_the_hosts_schedule() {
        let m = map(&[("a", "b")], &[], &["a/r"]);
        let lorry = &m.lorries[0].lorry;
        assert_eq!(lorry.from_host, "up");
        assert_eq!((lorry.interval, lorry.lorry_timeout), (7200, 600));
        let spec: serde_json::Value = serde_json::from_str(&lorry.text).expect("json");
        assert_eq!(
            spec,
            json!({"b/r": {"type": "git", "url": "ssh://git@up/a/r",
                           "refspecs": ["+refs/heads/*", "+refs/tags/*"]}})
        );
        assert!(lorry.text.contains("\n    \"b/r\""), "{}", lorry.text);
        // The spec is what lc-core's spec parser accepts.
        let specs = lc_base::spec::parse_minion_text(&lorry.text);
        assert!(specs.is_ok(), "{specs:?}");
    }
}
