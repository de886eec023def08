//! Reading `.lorry` files into [`Spec`]s.
//!
//! A file is a JSON object: each key is a repository name, each value says
//! how to mirror it. A file that cannot be read or parsed fails as a whole;
//! a single bad spec fails alone, named.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::source::{ArchiveKind, OnRewrite, RawFile, Source, Spec, SvnLayout};

#[derive(Debug, thiserror::Error)]
pub enum SpecsError {
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error("not a valid .lorry file: {0}")]
    Parse(String),
}

/// A spec, or the name of a bad one and what is wrong with it.
pub type SpecResult = Result<Spec, (String, String)>;

/// Reads every spec in `file`.
pub fn load(file: &Path) -> Result<Vec<SpecResult>, SpecsError> {
    let text = std::fs::read_to_string(file)?;
    parse(&text)
}

/// Parses the text of a `.lorry` file.
pub fn parse(text: &str) -> Result<Vec<SpecResult>, SpecsError> {
    let value: Value = serde_json::from_str(text).map_err(|e| SpecsError::Parse(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(SpecsError::Parse(
            "the top level must be an object of name: spec".into(),
        ));
    };
    if map.is_empty() {
        return Err(SpecsError::Parse("no specs".into()));
    }
    Ok(map
        .into_iter()
        .map(|(name, value)| spec(&name, &value).map_err(|why| (name, why)))
        .collect())
}

fn spec(name: &str, value: &Value) -> Result<Spec, String> {
    if name.is_empty()
        || name.starts_with('/')
        || name.ends_with('/')
        || name
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err("the name is not a valid repository path".into());
    }
    let Value::Object(map) = value else {
        return Err("a spec must be an object".into());
    };
    let kind = string(map, "type")?.ok_or("missing field type")?;
    let on_rewrite = match string(map, "on-rewrite")?.as_deref() {
        None | Some("preserve") => OnRewrite::Preserve,
        Some("follow") => OnRewrite::Follow,
        Some("refuse") => OnRewrite::Refuse,
        Some(other) => {
            return Err(format!(
                "field on-rewrite: {other:?} is not preserve, follow or refuse"
            ));
        }
    };
    let check_certificates = match map.get("check-certificates") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(format!(
                "field check-certificates: {other} is not a boolean"
            ));
        }
    };
    let url = || string(map, "url")?.ok_or_else(|| "missing field url".to_owned());
    let source = match kind.as_str() {
        "git" => Source::Git {
            url: url()?,
            refspecs: match map.get("refspecs") {
                None | Some(Value::Null) => None,
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| format!("field refspecs: {i} is not a string"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                Some(other) => return Err(format!("field refspecs: {other} is not a list")),
            },
        },
        "tarball" => Source::Archive {
            url: url()?,
            kind: ArchiveKind::Tar,
        },
        "zip" => Source::Archive {
            url: url()?,
            kind: ArchiveKind::Zip,
        },
        "gzip" => Source::Archive {
            url: url()?,
            kind: ArchiveKind::Gzip,
        },
        "raw-file" => {
            let Some(Value::Array(items)) = map.get("urls") else {
                return Err("missing field urls (a list)".into());
            };
            let mut files = Vec::new();
            for item in items {
                let Value::Object(f) = item else {
                    return Err(format!("field urls: {item} is not an object"));
                };
                files.push(RawFile {
                    url: string(f, "url")?.ok_or("field urls: an entry has no url")?,
                    destination: string(f, "destination")?,
                    sha256sum: string(f, "sha256sum")?,
                });
            }
            if files.is_empty() {
                return Err("field urls is empty".into());
            }
            Source::RawFiles(files)
        }
        "svn" => {
            let layout = match map.get("layout") {
                None | Some(Value::Null) => SvnLayout::standard(),
                Some(Value::String(s)) if s == "standard" => SvnLayout::standard(),
                Some(Value::Object(l)) => SvnLayout {
                    trunk: string(l, "trunk")?.ok_or("field layout: missing trunk")?,
                    branches: string(l, "branches")?,
                    tags: string(l, "tags")?,
                },
                Some(other) => {
                    return Err(format!(
                        "field layout: {other} is neither \"standard\" nor an object"
                    ));
                }
            };
            Source::Svn {
                url: url()?,
                layout,
            }
        }
        "hg" => Source::Hg { url: url()? },
        "bzr" => {
            let mut branches = BTreeMap::new();
            if let Some(url) = string(map, "url")? {
                branches.insert("master".to_owned(), url);
            }
            match map.get("branches") {
                None | Some(Value::Null) => {}
                Some(Value::Object(b)) => {
                    for (branch, url) in b {
                        let url = url
                            .as_str()
                            .ok_or_else(|| format!("field branches: {branch}: not a string"))?;
                        branches.insert(branch.clone(), url.to_owned());
                    }
                }
                Some(other) => return Err(format!("field branches: {other} is not an object")),
            }
            if branches.is_empty() {
                return Err("a bzr spec needs url or branches".into());
            }
            Source::Bzr { branches }
        }
        "cvs" => Source::Cvs {
            url: url()?,
            module: string(map, "module")?.ok_or("missing field module")?,
        },
        other => return Err(format!("unknown type {other:?}")),
    };
    Ok(Spec {
        name: name.to_owned(),
        source,
        on_rewrite,
        check_certificates,
    })
}

fn string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("field {key}: {other} is not a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses() {
        let specs = parse(
            r#"{
              "a/git": {"type": "git", "url": "https://h/x.git", "refspecs": ["master"], "on-rewrite": "refuse", "check-certificates": false},
              "a/tar": {"type": "tarball", "url": "http://h/x-1.tar.gz"},
              "a/raw": {"type": "raw-file", "urls": [{"url": "http://h/f", "destination": "d", "sha256sum": "00"}]},
              "a/svn": {"type": "svn", "url": "file:///r", "layout": {"trunk": "t", "branches": "b/*"}},
              "a/bzr": {"type": "bzr", "branches": {"dev": "file:///b"}},
              "a/cvs": {"type": "cvs", "url": ":local:/c", "module": "m"},
              "a/hg": {"type": "hg", "url": "file:///h"}
            }"#,
        )
        .expect("parse");
        assert_eq!(specs.len(), 7);
        let specs: Vec<Spec> = specs.into_iter().map(|s| s.expect("valid")).collect();
        let git = specs.iter().find(|s| s.name == "a/git").expect("git");
        assert_eq!(git.on_rewrite, OnRewrite::Refuse);
        assert_eq!(git.check_certificates, Some(false));
    }

    #[test]
    fn bad_specs_fail_alone_and_say_why() {
        let specs = parse(
            r#"{"ok": {"type": "git", "url": "u"},
                "nourl": {"type": "git"},
                "odd": {"type": "darcs", "url": "u"},
                "rw": {"type": "git", "url": "u", "on-rewrite": "sometimes"},
                "../up": {"type": "git", "url": "u"}}"#,
        )
        .expect("parse");
        let errors: Vec<(String, String)> = specs.into_iter().filter_map(Result::err).collect();
        assert_eq!(errors.len(), 4);
        assert!(
            errors
                .iter()
                .any(|(n, e)| n == "nourl" && e.contains("url"))
        );
        assert!(
            errors
                .iter()
                .any(|(n, e)| n == "odd" && e.contains("darcs"))
        );
        assert!(
            errors
                .iter()
                .any(|(n, e)| n == "rw" && e.contains("sometimes"))
        );
    }

    #[test]
    fn bad_files_fail_whole() {
        assert!(parse("").is_err());
        assert!(parse("[1]").is_err());
        assert!(parse("{}").is_err());
        assert!(parse("{\"a\": ").is_err());
    }
}

#[cfg(test)]
mod garbage_tests {
    use super::*;
    use crate::refspec::Refspec;

    /// A small deterministic generator (xorshift), so failures replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn mutated_lorry_files_and_refspecs_never_panic() {
        let seed = r#"{"a/b": {"type": "git", "url": "https://u:p@h/x.git", "refspecs": ["refs/heads/*:refs/heads/*"], "on-rewrite": "refuse"},
                       "raw": {"type": "raw-file", "urls": [{"url": "http://h/f", "destination": "d", "sha256sum": "00"}]},
                       "s": {"type": "svn", "url": "file:///r", "layout": {"trunk": "t"}}}"#;
        let alphabet: Vec<char> = "{}[]\":,*/\\ .aZ09é\u{0}\n+^~:".chars().collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut text: Vec<char> = seed.chars().collect();
            for _ in 0..(rng.next() % 6 + 1) {
                let at = (rng.next() as usize) % text.len();
                match rng.next() % 3 {
                    0 => {
                        text.remove(at);
                    }
                    1 => text.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
                    _ => text[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                }
            }
            let text: String = text.into_iter().collect();
            let _ = parse(&text);
            for piece in text.split('"') {
                let _ = Refspec::parse(piece);
                let _ = lc_core::redact::redact(piece);
            }
        }
    }
}
