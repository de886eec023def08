//! `.lorry` files: a map from repository name to the spec saying how to
//! mirror it, in JSON or YAML.
//!
//! A file that does not parse fails as a whole ([`SpecFileError`]); a single
//! bad spec fails alone ([`SpecProblem`]) and the others still load. The
//! text handed to the minion is [`minion_text`]: the single-entry JSON map
//! `{path: spec}`, keeping every key of the spec as written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What to do when an upstream rewrites history (a non-fast-forward ref).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnRewrite {
    /// Keep the old history downstream under a backup ref, then follow.
    #[default]
    Preserve,
    /// Follow the upstream.
    Follow,
    /// Fail the spec and leave the downstream alone.
    Refuse,
}

/// One file of a `raw-file` spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawFileUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256sum: Option<String>,
}

/// Where an svn repository keeps trunk, branches and tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SvnLayout {
    /// `"standard"`: `trunk`, `branches/*`, `tags/*`.
    Named(String),
    Custom {
        trunk: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branches: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tags: Option<String>,
    },
}

/// The upstream of a spec, by its `type`. Keys not listed here are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Source {
    Git {
        url: String,
        /// git refspecs, `^pattern` (git's negative form) excluding
        /// upstream refs; `None`: all branches and tags.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refspecs: Option<Vec<String>>,
        /// Globs over upstream ref names: only refs matching one are mirrored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        include: Option<Vec<String>>,
        /// Globs over upstream ref names: refs matching one are not mirrored.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exclude: Option<Vec<String>>,
        /// Whether refs newly left out by the filters are deleted downstream
        /// (their tips preserved as any deletion's); default: left there.
        #[serde(
            default,
            rename = "prune-excluded",
            skip_serializing_if = "Option::is_none"
        )]
        prune_excluded: Option<bool>,
    },
    Tarball {
        url: String,
    },
    Zip {
        url: String,
    },
    Gzip {
        url: String,
    },
    RawFile {
        urls: Vec<RawFileUrl>,
    },
    Svn {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layout: Option<SvnLayout>,
    },
    Hg {
        url: String,
    },
    Bzr {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branches: Option<BTreeMap<String, String>>,
    },
    Cvs {
        url: String,
        module: String,
    },
}

impl Source {
    /// The spec's `type`: one of [`SPEC_TYPES`].
    pub fn type_name(&self) -> &'static str {
        match self {
            Source::Git { .. } => "git",
            Source::Tarball { .. } => "tarball",
            Source::Zip { .. } => "zip",
            Source::Gzip { .. } => "gzip",
            Source::RawFile { .. } => "raw-file",
            Source::Svn { .. } => "svn",
            Source::Hg { .. } => "hg",
            Source::Bzr { .. } => "bzr",
            Source::Cvs { .. } => "cvs",
        }
    }
}

/// The spec types, in the order of the original's documentation.
pub const SPEC_TYPES: &[&str] = &[
    "git", "tarball", "zip", "gzip", "raw-file", "svn", "hg", "bzr", "cvs",
];

/// One valid spec of a `.lorry` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LorrySpec {
    pub source: Source,
    pub on_rewrite: OnRewrite,
    /// `None`: the global setting of the `lorry` tool.
    pub check_certificates: Option<bool>,
    /// Git LFS objects mirrored too (`git` specs only); `None`:
    /// the `lorry` tool's default (`--lfs-default`).
    pub lfs: Option<bool>,
    /// The spec as written, every key kept; what the minion is handed.
    pub raw: Value,
}

/// A `.lorry` file that cannot be read as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecFileError {
    #[error("not valid JSON or YAML: {0}")]
    Syntax(String),
    #[error("the top level must be a map from name to spec, not {0}")]
    NotAMap(&'static str),
}

/// Why one spec of a file was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecProblem {
    #[error("bad name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("the spec must be a map, not {0}")]
    NotAMap(&'static str),
    #[error("no type")]
    NoType,
    #[error("unknown type {0:?} (known: git, tarball, zip, gzip, raw-file, svn, hg, bzr, cvs)")]
    UnknownType(String),
    #[error("type {kind}: missing {key}")]
    Missing { kind: String, key: &'static str },
    #[error("bad on-rewrite {0:?} (preserve, follow or refuse)")]
    BadOnRewrite(String),
    #[error("check-certificates must be true or false, not {0}")]
    BadCheckCertificates(String),
    #[error("lfs must be true or false, not {0}")]
    BadLfs(String),
    #[error("type {0}: lfs is only for git and raw-file specs")]
    LfsNotForType(String),
    #[error("type {kind}: {reason}")]
    Invalid { kind: String, reason: String },
}

/// A spec of a file, or its name and why it was skipped.
pub type SpecEntry = (String, Result<LorrySpec, SpecProblem>);

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Reads text as JSON, or failing that as YAML (a superset of JSON).
pub fn parse_json_or_yaml(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(json_err) => serde_yaml_ng::from_str::<Value>(text).map_err(|yaml_err| {
            // Text that looks like JSON gets the JSON error: it is the clearer one.
            if text.trim_start().starts_with(['{', '[']) {
                json_err.to_string()
            } else {
                yaml_err.to_string()
            }
        }),
    }
}

/// Parses a `.lorry` file: every spec in name order, each valid or not.
pub fn parse_lorry_file(text: &str) -> Result<Vec<SpecEntry>, SpecFileError> {
    parse_lorry_value(parse_json_or_yaml(text).map_err(SpecFileError::Syntax)?)
}

/// [`parse_lorry_file`] for a file already read by [`parse_json_or_yaml`],
/// for callers that want the specs as written too.
pub fn parse_lorry_value(value: Value) -> Result<Vec<SpecEntry>, SpecFileError> {
    let Value::Object(map) = value else {
        return Err(SpecFileError::NotAMap(kind_of(&value)));
    };
    Ok(map
        .into_iter()
        .map(|(name, spec)| {
            let checked = check_name(&name).and_then(|()| parse_spec(spec));
            (name, checked)
        })
        .collect())
}

/// Parses what the minion hands the `lorry` tool: the single-entry map
/// `{path: spec}`. Answers the path and its spec.
pub fn parse_minion_text(text: &str) -> Result<(String, LorrySpec), String> {
    let entries = parse_lorry_file(text).map_err(|e| e.to_string())?;
    let mut entries = entries.into_iter();
    match (entries.next(), entries.next()) {
        (Some((path, spec)), None) => spec
            .map(|s| (path.clone(), s))
            .map_err(|e| format!("{path}: {e}")),
        (None, _) => Err("no spec".into()),
        (Some(_), Some(_)) => Err("more than one spec".into()),
    }
}

/// The text handed to the minion for a lorry: `{path: spec}`, pretty JSON.
pub fn minion_text(path: &str, spec: &LorrySpec) -> String {
    let mut map = Map::new();
    map.insert(path.to_owned(), spec.raw.clone());
    // A map of JSON values always serialises.
    serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default()
}

/// The name of `name`'s working directory in lorry's working area: the
/// name with `%` and `/` percent-encoded (`%25`, `%2F`), so that different
/// names always get different directories (`a/b` → `a%2Fb`, `a_b` → `a_b`,
/// `a%2Fb` → `a%252Fb`) and none is a path with more than one component.
pub fn working_dir_name(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

/// The directory name lorry used before [`working_dir_name`]: `/` → `_`,
/// which made `a/b` and `a_b` share one directory.
pub fn legacy_working_dir_name(name: &str) -> String {
    name.replace('/', "_")
}

/// Checks a name or prefix is a clean relative path that stays inside the
/// downstream: not empty, not absolute, no `.` or `..` or empty component,
/// no control character, no backslash.
pub fn check_name(name: &str) -> Result<(), SpecProblem> {
    let bad = |reason| {
        Err(SpecProblem::BadName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with('/') {
        return bad("absolute");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if name.contains('\\') {
        return bad("contains a backslash");
    }
    for component in name.split('/') {
        match component {
            ".." => return bad("contains '..'"),
            "." => return bad("contains a '.' component"),
            "" => return bad("contains an empty component"),
            _ => {}
        }
    }
    Ok(())
}

fn parse_spec(raw: Value) -> Result<LorrySpec, SpecProblem> {
    let Value::Object(map) = &raw else {
        return Err(SpecProblem::NotAMap(kind_of(&raw)));
    };
    let kind = match map.get("type") {
        None | Some(Value::Null) => return Err(SpecProblem::NoType),
        Some(Value::String(k)) => k.clone(),
        Some(other) => return Err(SpecProblem::UnknownType(other.to_string())),
    };
    if !SPEC_TYPES.contains(&kind.as_str()) {
        return Err(SpecProblem::UnknownType(kind));
    }
    let has = |key: &str| map.get(key).is_some_and(|v| !v.is_null());
    let missing = |key| {
        Err(SpecProblem::Missing {
            kind: kind.clone(),
            key,
        })
    };
    match kind.as_str() {
        "raw-file" if !has("urls") => return missing("urls"),
        "bzr" if !has("url") && !has("branches") => return missing("url or branches"),
        "raw-file" | "bzr" => {}
        _ if !has("url") => return missing("url"),
        "cvs" if !has("module") => return missing("module"),
        _ => {}
    }
    let source: Source = serde_json::from_value(raw.clone()).map_err(|e| {
        let reason = e.to_string();
        SpecProblem::Invalid {
            kind: kind.clone(),
            reason: match bad_field(map, &reason) {
                Some(field) => format!("field {field}: {reason}"),
                None => reason,
            },
        }
    })?;
    if let Source::RawFile { urls } = &source
        && urls.is_empty()
    {
        return missing("urls");
    }
    if let Source::Svn {
        layout: Some(SvnLayout::Named(name)),
        ..
    } = &source
        && name != "standard"
    {
        return Err(SpecProblem::Invalid {
            kind,
            reason: format!("layout {name:?}: only \"standard\" or a map"),
        });
    }
    let on_rewrite = match map.get("on-rewrite") {
        None | Some(Value::Null) => OnRewrite::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| SpecProblem::BadOnRewrite(v.to_string().trim_matches('"').to_owned()))?,
    };
    let check_certificates = match map.get("check-certificates") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(SpecProblem::BadCheckCertificates(other.to_string())),
    };
    let lfs = match map.get("lfs") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(SpecProblem::BadLfs(other.to_string())),
    };
    if lfs == Some(true) && !matches!(source, Source::Git { .. } | Source::RawFile { .. }) {
        return Err(SpecProblem::LfsNotForType(kind));
    }
    Ok(LorrySpec {
        source,
        on_rewrite,
        check_certificates,
        lfs,
        raw,
    })
}

/// The field of a spec whose value [`Source`] does not take, given serde's
/// `complaint` about the whole spec (which, for an internally tagged enum,
/// does not say where). First a field without which the spec is good; else
/// a field whose own value is the one the complaint names; else the only
/// field whose removal changes the complaint. `None` rather than a guess.
fn bad_field(spec: &Map<String, Value>, complaint: &str) -> Option<String> {
    // Each field, and what serde says of the spec without it (`None`: good).
    let without: Vec<(&String, Option<String>)> = spec
        .keys()
        .filter(|key| *key != "type")
        .map(|key| {
            let mut rest = spec.clone();
            rest.remove(key);
            let complaint = serde_json::from_value::<Source>(Value::Object(rest))
                .err()
                .map(|e| e.to_string());
            (key, complaint)
        })
        .collect();
    let names_its_value = |key: &String| {
        let unexpected = match &spec[key] {
            Value::Null => serde::de::Unexpected::Unit,
            Value::Bool(b) => serde::de::Unexpected::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => serde::de::Unexpected::Unsigned(u),
                (None, Some(i), _) => serde::de::Unexpected::Signed(i),
                (None, None, f) => serde::de::Unexpected::Float(f.unwrap_or_default()),
            },
            Value::String(text) => serde::de::Unexpected::Str(text),
            Value::Array(_) => serde::de::Unexpected::Seq,
            Value::Object(_) => serde::de::Unexpected::Map,
        };
        complaint.contains(&format!("invalid type: {unexpected},"))
    };
    let mut changing = without
        .iter()
        .filter(|(_, other)| other.as_deref() != Some(complaint));
    let only_changing = match (changing.next(), changing.next()) {
        (Some((key, _)), None) => Some(*key),
        _ => None,
    };
    without
        .iter()
        .find(|(_, other)| other.is_none())
        .map(|(key, _)| *key)
        .or_else(|| {
            without
                .iter()
                .map(|(key, _)| *key)
                .find(|key| names_its_value(key))
        })
        .or(only_changing)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<LorrySpec, SpecProblem> {
        let mut entries = parse_lorry_file(text).expect("file parses");
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.remove(0).1
    }

    #[test]
    fn json_and_yaml_give_the_same_specs() {
        let json = r#"{"a": {"type": "git", "url": "https://x/a.git", "refspecs": ["+refs/heads/*"]},
                       "b": {"type": "tarball", "url": "https://x/b.tar.gz"}}"#;
        let yaml = "a:\n  type: git\n  url: https://x/a.git\n  refspecs:\n    - '+refs/heads/*'\n\
                    b:\n  type: tarball\n  url: https://x/b.tar.gz\n";
        let j = parse_lorry_file(json).expect("json");
        let y = parse_lorry_file(yaml).expect("yaml");
        assert_eq!(j, y);
        assert_eq!(j.len(), 2);
        assert_eq!(
            j[0].1.as_ref().expect("git").source,
            Source::Git {
                url: "https://x/a.git".into(),
                refspecs: Some(vec!["+refs/heads/*".into()]),
                include: None,
                exclude: None,
                prune_excluded: None,
            }
        );
    }

    #[test]
    fn every_type_parses_with_its_keys() {
        let text = r#"{
          "git": {"type": "git", "url": "u", "check-certificates": false, "on-rewrite": "refuse",
                  "refspecs": ["refs/*:refs/*", "^refs/pull/*"], "include": ["refs/heads/*"],
                  "exclude": ["refs/heads/wip/*"], "prune-excluded": true},
          "tar": {"type": "tarball", "url": "u"},
          "zip": {"type": "zip", "url": "u"},
          "gz": {"type": "gzip", "url": "u"},
          "raw": {"type": "raw-file", "urls": [{"url": "u", "destination": "d", "sha256sum": "00"}]},
          "svn": {"type": "svn", "url": "u", "layout": "standard"},
          "svn2": {"type": "svn", "url": "u", "layout": {"trunk": "t", "branches": "b/*", "tags": "t/*"}},
          "hg": {"type": "hg", "url": "u"},
          "bzr": {"type": "bzr", "branches": {"master": "u"}},
          "cvs": {"type": "cvs", "url": ":pserver:x", "module": "m"}
        }"#;
        let entries = parse_lorry_file(text).expect("parses");
        assert_eq!(entries.len(), 10);
        for (name, spec) in &entries {
            assert!(spec.is_ok(), "{name}: {spec:?}");
        }
        let git = entries.iter().find(|(n, _)| n == "git").expect("git");
        let git = git.1.as_ref().expect("git");
        assert_eq!(git.on_rewrite, OnRewrite::Refuse);
        assert_eq!(git.check_certificates, Some(false));
        let Source::Git {
            include,
            exclude,
            prune_excluded,
            ..
        } = &git.source
        else {
            panic!("git")
        };
        assert_eq!(include.as_deref(), Some(&["refs/heads/*".to_owned()][..]));
        assert_eq!(
            exclude.as_deref(),
            Some(&["refs/heads/wip/*".to_owned()][..])
        );
        assert_eq!(*prune_excluded, Some(true));
        let tar = entries.iter().find(|(n, _)| n == "tar").expect("tar");
        assert_eq!(tar.1.as_ref().expect("tar").on_rewrite, OnRewrite::Preserve);
    }

    #[test]
    fn working_dir_names_are_distinct_for_distinct_names() {
        let names = [
            "a/b", "a_b", "a%2Fb", "a%252Fb", "a%b", "a/b/c", "a/b_c", "a_b/c",
        ];
        let dirs: std::collections::BTreeSet<String> =
            names.iter().map(|n| working_dir_name(n)).collect();
        assert_eq!(dirs.len(), names.len(), "{dirs:?}");
        assert!(dirs.iter().all(|d| !d.contains('/')));
        assert_eq!(working_dir_name("a/b"), "a%2Fb");
        assert_eq!(working_dir_name("a%2Fb"), "a%252Fb");
        assert_eq!(working_dir_name("plain_name"), "plain_name");
        assert_eq!(legacy_working_dir_name("a/b"), "a_b");
    }

    #[test]
    fn type_name_is_the_type_as_written() {
        let text = r#"{
          "git": {"type": "git", "url": "u"},
          "tar": {"type": "tarball", "url": "u"},
          "zip": {"type": "zip", "url": "u"},
          "gz": {"type": "gzip", "url": "u"},
          "raw": {"type": "raw-file", "urls": [{"url": "u"}]},
          "svn": {"type": "svn", "url": "u"},
          "hg": {"type": "hg", "url": "u"},
          "bzr": {"type": "bzr", "url": "u"},
          "cvs": {"type": "cvs", "url": "u", "module": "m"}
        }"#;
        let value = parse_json_or_yaml(text).expect("parses");
        let entries = parse_lorry_value(value).expect("a map");
        assert_eq!(entries, parse_lorry_file(text).expect("the same"));
        let mut seen: Vec<&str> = Vec::new();
        for (name, spec) in &entries {
            let spec = spec.as_ref().expect(name);
            assert_eq!(Some(spec.source.type_name()), spec.raw["type"].as_str());
            seen.push(spec.source.type_name());
        }
        seen.sort_unstable();
        let mut all = SPEC_TYPES.to_vec();
        all.sort_unstable();
        assert_eq!(seen, all);
    }

    #[test]
    fn a_bad_spec_fails_alone() {
        let entries =
            parse_lorry_file(r#"{"bad": {"url": "u"}, "good": {"type": "git", "url": "u"}}"#)
                .expect("parses");
        assert_eq!(entries[0].1, Err(SpecProblem::NoType));
        assert!(entries[1].1.is_ok());
    }

    #[test]
    fn validation_rules() {
        assert_eq!(one(r#"{"a": {"url": "u"}}"#), Err(SpecProblem::NoType));
        assert_eq!(
            one(r#"{"a": {"type": "darcs", "url": "u"}}"#),
            Err(SpecProblem::UnknownType("darcs".into()))
        );
        assert!(matches!(
            one(r#"{"a": {"type": "git"}}"#),
            Err(SpecProblem::Missing { key: "url", .. })
        ));
        assert!(matches!(
            one(r#"{"a": {"type": "cvs", "url": "u"}}"#),
            Err(SpecProblem::Missing { key: "module", .. })
        ));
        assert!(matches!(
            one(r#"{"a": {"type": "raw-file", "urls": []}}"#),
            Err(SpecProblem::Missing { key: "urls", .. })
        ));
        assert!(matches!(
            one(r#"{"a": {"type": "bzr"}}"#),
            Err(SpecProblem::Missing { .. })
        ));
        assert!(matches!(
            one(r#"{"a": {"type": "git", "url": 5}}"#),
            Err(SpecProblem::Invalid { .. })
        ));
        assert!(matches!(
            one(r#"{"a": {"type": "svn", "url": "u", "layout": "odd"}}"#),
            Err(SpecProblem::Invalid { .. })
        ));
        // A value of the wrong kind is named by its field, whatever the
        // order of the fields and whether the field is required.
        for (text, field) in [
            (
                r#"{"a": {"type": "git", "url": 5}}"#,
                "field url: invalid type: integer `5`",
            ),
            (
                r#"{"a": {"type": "cvs", "module": "m", "url": 5}}"#,
                "field url: ",
            ),
            (
                r#"{"a": {"type": "cvs", "module": 5, "url": "u"}}"#,
                "field module: ",
            ),
            (
                r#"{"a": {"type": "git", "url": "u", "refspecs": "main"}}"#,
                "field refspecs: ",
            ),
            (
                r#"{"a": {"type": "git", "refspecs": ["x", 5], "url": "u"}}"#,
                "field refspecs: ",
            ),
            (
                r#"{"a": {"type": "hg", "url": ["u"]}}"#,
                "field url: invalid type: sequence",
            ),
            (
                r#"{"a": {"type": "git", "url": "u", "exclude": "refs/pull/*"}}"#,
                "field exclude: ",
            ),
            (
                r#"{"a": {"type": "git", "url": "u", "include": [1]}}"#,
                "field include: ",
            ),
            (
                r#"{"a": {"type": "git", "url": "u", "prune-excluded": "yes"}}"#,
                "field prune-excluded: ",
            ),
        ] {
            let problem = one(text).expect_err(text).to_string();
            assert!(problem.contains(field), "{text}: {problem}");
        }
        // Nested inside a required field, the only field there is.
        let problem = one(r#"{"a": {"type": "raw-file", "urls": [{"url": 5}]}}"#)
            .expect_err("nested")
            .to_string();
        assert!(
            problem.starts_with("type raw-file: field urls: invalid type"),
            "{problem}"
        );
        assert_eq!(
            one(r#"{"a": {"type": "git", "url": "u", "on-rewrite": "ignore"}}"#),
            Err(SpecProblem::BadOnRewrite("ignore".into()))
        );
        assert!(matches!(
            one(r#"{"a": {"type": "git", "url": "u", "check-certificates": "yes"}}"#),
            Err(SpecProblem::BadCheckCertificates(_))
        ));
        assert!(matches!(
            one(r#"{"a": {"type": "git", "url": "u", "lfs": "yes"}}"#),
            Err(SpecProblem::BadLfs(_))
        ));
        assert_eq!(
            one(r#"{"a": {"type": "svn", "url": "u", "lfs": true}}"#),
            Err(SpecProblem::LfsNotForType("svn".into()))
        );
        assert_eq!(
            one(r#"{"a": {"type": "git", "url": "u", "lfs": true}}"#)
                .expect("git")
                .lfs,
            Some(true)
        );
        assert_eq!(
            one(r#"{"a": {"type": "raw-file", "urls": [{"url": "http://h/f"}], "lfs": true}}"#)
                .expect("raw-file")
                .lfs,
            Some(true)
        );
        assert_eq!(
            one(r#"{"a": {"type": "tarball", "url": "http://h/t.tgz", "lfs": true}}"#),
            Err(SpecProblem::LfsNotForType("tarball".into()))
        );
        assert_eq!(one(r#"{"a": 3}"#), Err(SpecProblem::NotAMap("a number")));
    }

    #[test]
    fn bad_names() {
        for (name, reason) in [
            ("", "empty"),
            ("/abs", "absolute"),
            ("a/../../b", "contains '..'"),
            ("..", "contains '..'"),
            ("a/./b", "contains a '.' component"),
            ("a//b", "contains an empty component"),
            ("a/", "contains an empty component"),
            ("a\nb", "contains a control character"),
            ("a\u{7f}", "contains a control character"),
            ("a\\..\\b", "contains a backslash"),
        ] {
            assert_eq!(
                check_name(name),
                Err(SpecProblem::BadName {
                    name: name.into(),
                    reason
                }),
                "{name:?}"
            );
        }
        assert_eq!(check_name("group/sub.project-1"), Ok(()));
        let entries = parse_lorry_file(r#"{"../x": {"type": "git", "url": "u"}}"#).expect("ok");
        assert!(matches!(entries[0].1, Err(SpecProblem::BadName { .. })));
    }

    #[test]
    fn whole_file_errors() {
        assert!(matches!(
            parse_lorry_file("{not json"),
            Err(SpecFileError::Syntax(_))
        ));
        assert_eq!(
            parse_lorry_file("[1, 2]"),
            Err(SpecFileError::NotAMap("a list"))
        );
        assert_eq!(
            parse_lorry_file("just text"),
            Err(SpecFileError::NotAMap("a string"))
        );
    }

    #[test]
    fn minion_text_round_trips_and_keeps_unknown_keys() {
        let entries =
            parse_lorry_file(r#"{"a": {"type": "git", "url": "u", "x-extra": 1}}"#).expect("ok");
        let spec = entries[0].1.as_ref().expect("valid");
        let text = minion_text("pfx/a", spec);
        let value: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["pfx/a"]["x-extra"], 1);
        let (path, back) = parse_minion_text(&text).expect("round trip");
        assert_eq!(path, "pfx/a");
        assert_eq!(&back, spec);
        assert!(parse_minion_text("{}").is_err());
        assert!(parse_minion_text(r#"{"a": {"type": "git"}}"#).is_err());
    }
}
