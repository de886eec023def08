//! The conf file: a list of sections, each tagged by its `type`.
//!
//! Serde reads a section into [`RawSection`], one variant per type, and
//! names the field whose value has the wrong kind; [`RawSection::validate`]
//! then checks what types cannot say (keys that must be there, names,
//! globs, protocols) and makes the [`Section`]. Keys the original accepted
//! and ignored (`uuid`, `serial`, `create`, `destroy`, `stagger`,
//! `tarball`), and any other unknown key, are passed over.

use std::collections::{BTreeMap, HashMap};

use lc_base::spec::{self, check_name};
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Defaults when a section does not say.
pub const DEFAULT_INTERVAL: i64 = 24 * 3600;
pub const DEFAULT_LS_INTERVAL: i64 = 24 * 3600;
pub const DEFAULT_LORRY_TIMEOUT: i64 = 3600;
/// A grokmirror manifest is read this often unless the section says: a
/// read of an unchanged manifest is one conditional GET.
pub const DEFAULT_MANIFEST_LS_INTERVAL: i64 = 15 * 60;

/// Parses a duration into seconds: the original's form (a number, optional
/// blanks, then an optional unit `s`, `m`, `h` or `d` in any case; a bare
/// number is seconds) or ISO 8601 (`PT60S`, `P1D`; no years or months).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || format!("bad duration {text:?} (e.g. 30m, 2H, 1d, 3600, PT60S, P1D)");
    if t.is_empty() {
        return Err(bad());
    }
    if t.starts_with(['P', 'p']) {
        let span: jiff::Span = t.parse().map_err(|_| bad())?;
        if span.get_years() != 0 || span.get_months() != 0 {
            return Err(format!(
                "bad duration {text:?}: years and months have no fixed length"
            ));
        }
        let secs = i64::from(span.get_weeks()) * 7 * 86400
            + i64::from(span.get_days()) * 86400
            + i64::from(span.get_hours()) * 3600
            + span.get_minutes() * 60
            + span.get_seconds();
        return if secs >= 0 { Ok(secs) } else { Err(bad()) };
    }
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    number.checked_mul(factor).ok_or_else(bad)
}

/// The kind of an Upstream Host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostType {
    Trove,
    Gitlab,
    Gitea,
    Github,
    Grokmirror,
}

impl HostType {
    pub fn as_str(self) -> &'static str {
        match self {
            HostType::Trove => "trove",
            HostType::Gitlab => "gitlab",
            HostType::Gitea => "gitea",
            HostType::Github => "github",
            HostType::Grokmirror => "grokmirror",
        }
    }
}

/// An Upstream Host section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub host: String,
    pub host_type: HostType,
    pub protocol: String,
    pub prefixmap: BTreeMap<String, String>,
    pub ignore: Vec<String>,
    pub lorry_interval: i64,
    pub ls_interval: i64,
    pub lorry_timeout: i64,
    /// `auth`, `private-token`: secrets, stored but never shown.
    pub type_params: Map<String, Value>,
}

/// A `lorries` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LorriesSection {
    pub prefix: String,
    pub globs: Vec<String>,
    pub interval: i64,
    pub lorry_timeout: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    Lorries(LorriesSection),
    Host(HostSpec),
}

/// Why a conf file was refused, naming the file and the section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {problem}", section_label(*.section, .section_type.as_deref()))]
pub struct ConfError {
    pub file: String,
    /// Index of the section (from 0), when the problem is in one.
    pub section: Option<usize>,
    pub section_type: Option<String>,
    pub problem: String,
}

fn section_label(section: Option<usize>, kind: Option<&str>) -> String {
    match (section, kind) {
        (Some(i), Some(k)) => format!(": section {i} (type {k})"),
        (Some(i), None) => format!(": section {i}"),
        _ => String::new(),
    }
}

/// Parses and validates the text of a conf file named `file`.
pub fn parse_conf(file: &str, text: &str) -> Result<Vec<Section>, ConfError> {
    let err = |section: Option<usize>, kind: Option<&str>, problem: String| ConfError {
        file: file.to_owned(),
        section,
        section_type: kind.map(str::to_owned),
        problem,
    };
    let value = spec::parse_json_or_yaml(text)
        .map_err(|e| err(None, None, format!("not valid JSON or YAML: {e}")))?;
    let Value::Array(items) = value else {
        return Err(err(None, None, "the top level must be a list".into()));
    };
    let mut sections = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        // The tag is looked at here only to name the section in messages,
        // and to say plainly what is wrong with it.
        let kind = match &item {
            Value::Object(map) => match map.get("type") {
                Some(Value::String(k)) => k.clone(),
                None | Some(Value::Null) => return Err(err(Some(i), None, "no type".into())),
                Some(other) => {
                    return Err(err(
                        Some(i),
                        None,
                        format!("type must be a string, not {other}"),
                    ));
                }
            },
            _ => return Err(err(Some(i), None, "a section must be a map".into())),
        };
        let e = |problem: String| err(Some(i), Some(&kind), problem);
        let raw = RawSection::deserialize(item).map_err(|p| e(p.to_string()))?;
        sections.push(raw.validate(&kind).map_err(e)?);
    }
    let mut seen = HashMap::new();
    for (i, s) in sections.iter().enumerate() {
        if let Section::Host(h) = s
            && let Some(first) = seen.insert(h.host.clone(), i)
        {
            return Err(err(
                Some(i),
                Some(h.host_type.as_str()),
                format!("host {:?} is already configured by section {first}", h.host),
            ));
        }
    }
    Ok(sections)
}

/// A section as written, before [`RawSection::validate`].
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum RawSection {
    Lorries(Fields<RawLorries>),
    /// A trove has no API token: its `private-token` is not looked at.
    Trove(Fields<RawHost<IgnoredAny>>),
    Gitlab(Fields<RawHost<String>>),
    Gitea(Fields<RawHost<String>>),
    Github(Fields<RawHost<String>>),
    Grokmirror(Fields<RawManifestHost>),
    #[serde(other)]
    Unknown,
}

/// A `lorries` section as written.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawLorries {
    prefix: Option<String>,
    globs: Option<Vec<String>>,
    interval: Option<Seconds>,
    lorry_timeout: Option<Seconds>,
    /// Taken when `lorry-timeout` is not given.
    timeout: Option<Seconds>,
}

/// An Upstream Host section as written; `Token` is the type of its
/// `private-token`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawHost<Token> {
    host: Option<String>,
    /// The original's name for `host`, taken when `host` is not given.
    trovehost: Option<String>,
    protocol: Option<String>,
    prefixmap: Option<BTreeMap<String, String>>,
    ignore: Option<Vec<String>>,
    interval: Option<Seconds>,
    ls_interval: Option<Seconds>,
    lorry_timeout: Option<Seconds>,
    timeout: Option<Seconds>,
    auth: Option<Map<String, Value>>,
    private_token: Option<Token>,
    /// What a GitLab, Gitea or GitHub listing leaves out unless told.
    include_archived: Option<bool>,
    include_empty: Option<bool>,
    include_forks: Option<bool>,
    /// Trust the listing's activity time of each repository to check it
    /// without a job (GitLab, Gitea, GitHub; `db/fingerprints.rs`).
    activity_hint: Option<bool>,
}

impl RawSection {
    /// The checks types cannot make; `kind` is the section's `type`.
    fn validate(self, kind: &str) -> Result<Section, String> {
        match self {
            RawSection::Lorries(Fields(s)) => s.validate().map(Section::Lorries),
            RawSection::Trove(Fields(h)) => h.validate(HostType::Trove, None),
            RawSection::Gitlab(Fields(mut h)) => {
                let token = h.private_token.take();
                h.validate(HostType::Gitlab, token)
            }
            RawSection::Gitea(Fields(mut h)) => {
                let token = h.private_token.take();
                h.validate(HostType::Gitea, token)
            }
            RawSection::Github(Fields(mut h)) => {
                let token = h.private_token.take();
                h.validate(HostType::Github, token)
            }
            RawSection::Grokmirror(Fields(h)) => h.validate(),
            RawSection::Unknown => Err(format!(
                "unknown type {kind:?} (lorries, trove, gitlab, gitea, github or grokmirror)"
            )),
        }
    }
}

/// A `grokmirror` section as written: an origin publishing a manifest.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawManifestHost {
    manifest_url: Option<String>,
    clone_base: Option<String>,
    prefixmap: Option<BTreeMap<String, String>>,
    ignore: Option<Vec<String>>,
    interval: Option<Seconds>,
    ls_interval: Option<Seconds>,
    lorry_timeout: Option<Seconds>,
    timeout: Option<Seconds>,
    include_empty: Option<bool>,
}

impl RawManifestHost {
    /// The host is the manifest URL's `host[:port]`; the protocol the clone
    /// base's scheme. Both URLs go to `type_params` (no secrets there: a URL
    /// with credentials is refused).
    fn validate(self) -> Result<Section, String> {
        let manifest_url = required("manifest-url", self.manifest_url)?;
        let (scheme, host, _) = split_url(&manifest_url)
            .ok_or_else(|| format!("manifest-url {manifest_url:?} is not an http(s) URL"))?;
        if !["http", "https"].contains(&scheme.as_str()) {
            return Err(format!(
                "manifest-url {manifest_url:?}: must be http or https"
            ));
        }
        let clone_base = match self.clone_base {
            Some(base) => required("clone-base", Some(base))?,
            // The manifest's directory.
            None => manifest_url[..manifest_url.rfind('/').unwrap_or(0) + 1].to_owned(),
        };
        let (protocol, _, _) = split_url(&clone_base)
            .ok_or_else(|| format!("clone-base {clone_base:?} is not a URL"))?;
        if !["http", "https", "git", "ssh"].contains(&protocol.as_str()) {
            return Err(format!(
                "clone-base {clone_base:?}: must be https, http, git or ssh"
            ));
        }
        let clone_base = if clone_base.ends_with('/') {
            clone_base
        } else {
            format!("{clone_base}/")
        };
        let prefixmap = self.prefixmap.ok_or("missing prefixmap")?;
        for (remote, local) in &prefixmap {
            check_name(local).map_err(|p| format!("prefixmap {remote:?}: {p}"))?;
        }
        let mut type_params = Map::new();
        type_params.insert("manifest-url".into(), Value::String(manifest_url));
        type_params.insert("clone-base".into(), Value::String(clone_base));
        if let Some(value) = self.include_empty {
            type_params.insert("include-empty".into(), Value::Bool(value));
        }
        Ok(Section::Host(HostSpec {
            host,
            host_type: HostType::Grokmirror,
            protocol,
            prefixmap,
            ignore: self.ignore.unwrap_or_default(),
            lorry_interval: seconds(self.interval, DEFAULT_INTERVAL),
            ls_interval: seconds(self.ls_interval, DEFAULT_MANIFEST_LS_INTERVAL),
            lorry_timeout: seconds(self.lorry_timeout.or(self.timeout), DEFAULT_LORRY_TIMEOUT),
            type_params,
        }))
    }
}

/// `scheme://authority/rest` into the lowercase scheme, the authority and
/// the rest; `None` for anything else, or an authority that is empty,
/// carries credentials or blanks.
fn split_url(url: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if scheme.is_empty()
        || authority.is_empty()
        || authority.contains(['@', ' ', '?', '#'])
        || url.chars().any(char::is_control)
    {
        return None;
    }
    Some((
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase(),
        path.to_owned(),
    ))
}

impl RawLorries {
    fn validate(self) -> Result<LorriesSection, String> {
        let prefix = required("prefix", self.prefix)?;
        check_name(&prefix).map_err(|p| format!("prefix: {p}"))?;
        let globs = self.globs.ok_or("missing globs")?;
        for glob in &globs {
            if glob.starts_with('/') || glob.split('/').any(|c| c == "..") {
                return Err(format!(
                    "glob {glob:?} must stay inside the CONFGIT (relative, no '..')"
                ));
            }
            glob::Pattern::new(glob).map_err(|p| format!("glob {glob:?}: {p}"))?;
        }
        Ok(LorriesSection {
            prefix,
            globs,
            interval: seconds(self.interval, DEFAULT_INTERVAL),
            lorry_timeout: seconds(self.lorry_timeout.or(self.timeout), DEFAULT_LORRY_TIMEOUT),
        })
    }
}

impl<Token> RawHost<Token> {
    fn validate(self, host_type: HostType, token: Option<String>) -> Result<Section, String> {
        let host = match self.host {
            Some(host) => required("host", Some(host))?,
            None => required("host or trovehost", self.trovehost)?,
        };
        if host.contains(['/', ' ']) || host.chars().any(char::is_control) {
            return Err(format!("host {host:?} is not a host name"));
        }
        let protocol = required("protocol", self.protocol)?;
        if !["ssh", "http", "https"].contains(&protocol.as_str()) {
            return Err(format!("protocol {protocol:?}: must be ssh, http or https"));
        }
        let prefixmap = self.prefixmap.ok_or("missing prefixmap")?;
        for (remote, local) in &prefixmap {
            check_name(local).map_err(|p| format!("prefixmap {remote:?}: {p}"))?;
        }
        let mut type_params = Map::new();
        if let Some(auth) = self.auth {
            type_params.insert("auth".into(), Value::Object(auth));
        }
        if let Some(token) = token {
            type_params.insert("private-token".into(), Value::String(token));
        }
        if host_type == HostType::Trove && self.activity_hint.is_some() {
            return Err("activity-hint: a Trove's listing says nothing of activity \
                 (only gitlab, gitea and github)"
                .into());
        }
        if host_type != HostType::Trove {
            for (key, value) in [
                ("include-archived", self.include_archived),
                ("include-empty", self.include_empty),
                ("include-forks", self.include_forks),
                ("activity-hint", self.activity_hint),
            ] {
                if let Some(value) = value {
                    type_params.insert(key.into(), Value::Bool(value));
                }
            }
        }
        Ok(Section::Host(HostSpec {
            host,
            host_type,
            protocol,
            prefixmap,
            ignore: self.ignore.unwrap_or_default(),
            lorry_interval: seconds(self.interval, DEFAULT_INTERVAL),
            ls_interval: seconds(self.ls_interval, DEFAULT_LS_INTERVAL),
            lorry_timeout: seconds(self.lorry_timeout.or(self.timeout), DEFAULT_LORRY_TIMEOUT),
            type_params,
        }))
    }
}

/// A string that must be given and not be empty; `name` says which key.
fn required(name: &str, value: Option<String>) -> Result<String, String> {
    match value {
        None => Err(format!("missing {name}")),
        Some(s) if s.is_empty() => Err(format!("{name} must be a non-empty string")),
        Some(s) => Ok(s),
    }
}

fn seconds(value: Option<Seconds>, default: i64) -> i64 {
    value.map_or(default, |Seconds(s)| s)
}

/// A section's keys, read so that an error names the key it is about:
/// serde's tagged enums read a variant from a buffer that would lose that.
struct Fields<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Fields<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_path_to_error::deserialize(deserializer)
            .map(Fields)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    inner
                } else {
                    de::Error::custom(format!("{path}: {inner}"))
                }
            })
    }
}

/// A duration in seconds: a whole number of seconds, or text that
/// [`parse_duration`] reads.
#[derive(Clone, Copy)]
struct Seconds(i64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Seconds;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration (e.g. 30m, 2H, 1d, 3600, PT60S, P1D)")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Seconds, E> {
                parse_duration(text).map(Seconds).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Seconds, E> {
                if n < 0 {
                    return Err(E::custom(format!("bad duration {n}")));
                }
                Ok(Seconds(n))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Seconds, E> {
                i64::try_from(n)
                    .map(Seconds)
                    .map_err(|_| E::custom(format!("bad duration {n}")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("2H", 7200),
            ("2h", 7200),
            ("30m", 1800),
            ("30M", 1800),
            ("1d", 86400),
            ("1D", 86400),
            ("45s", 45),
            ("45S", 45),
            ("3600", 3600),
            ("5 m", 300),
            ("PT60S", 60),
            ("pt1h30m", 5400),
            ("P1D", 86400),
            ("P1W", 7 * 86400),
            ("P1DT1S", 86401),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
        for bad in [
            "",
            "h",
            "2x",
            "-5",
            "2hh",
            "P1M",
            "P1Y",
            "Pfoo",
            "1.5h",
            "99999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    fn conf_err(text: &str) -> ConfError {
        parse_conf("lorry-controller.conf", text).expect_err("refused")
    }

    #[test]
    fn both_formats_give_the_same_sections() {
        let json = r#"[
          {"type": "trove", "trovehost": "git.example.org", "protocol": "http",
           "prefixmap": {"baserock": "baserock"}, "ignore": ["baserock/lorries"],
           "ls-interval": "4H", "interval": "2H", "uuid": "x", "serial": 3, "create": "never",
           "destroy": "never", "stagger": false, "tarball": "never",
           "auth": {"username": "u", "password": "p"}},
          {"type": "lorries", "interval": "6H", "prefix": "delta", "globs": ["open/*.lorry"],
           "timeout": "PT2H"}
        ]"#;
        let yaml = "- type: trove\n  trovehost: git.example.org\n  protocol: http\n  \
                    prefixmap: {baserock: baserock}\n  ignore: [baserock/lorries]\n  \
                    ls-interval: 4H\n  interval: 2H\n  uuid: x\n  serial: 3\n  \
                    auth: {username: u, password: p}\n\
                    - type: lorries\n  interval: 6H\n  prefix: delta\n  globs: ['open/*.lorry']\n  \
                    timeout: PT2H\n";
        let j = parse_conf("c", json).expect("json");
        assert_eq!(j, parse_conf("c", yaml).expect("yaml"));
        let Section::Host(h) = &j[0] else {
            panic!("host")
        };
        assert_eq!(h.host, "git.example.org");
        assert_eq!(
            (h.lorry_interval, h.ls_interval, h.lorry_timeout),
            (7200, 14400, 3600)
        );
        assert!(h.type_params.contains_key("auth"));
        assert_eq!(
            j[1],
            Section::Lorries(LorriesSection {
                prefix: "delta".into(),
                globs: vec!["open/*.lorry".into()],
                interval: 21600,
                lorry_timeout: 7200,
            })
        );
    }

    #[test]
    fn defaults_and_host_types() {
        let s = parse_conf(
            "c",
            r#"[{"type": "gitlab", "host": "gl.example", "protocol": "https",
                 "prefixmap": {}, "private-token": "secret"},
                {"type": "gitea", "host": "tea.example", "protocol": "ssh", "prefixmap": {}},
                {"type": "lorries", "prefix": "p", "globs": []},
                {"type": "github", "host": "github.com", "protocol": "https", "prefixmap": {}}]"#,
        )
        .expect("valid");
        let Section::Host(h) = &s[0] else {
            panic!("host")
        };
        assert_eq!(h.host_type, HostType::Gitlab);
        let Section::Host(gh) = &s[3] else {
            panic!("host")
        };
        assert_eq!(gh.host_type.as_str(), "github");
        assert_eq!(
            (h.lorry_interval, h.ls_interval, h.lorry_timeout),
            (86400, 86400, 3600)
        );
        assert_eq!(h.type_params["private-token"], "secret");
        let Section::Lorries(l) = &s[2] else {
            panic!("lorries")
        };
        assert_eq!((l.interval, l.lorry_timeout), (86400, 3600));
    }

    #[test]
    fn grokmirror_sections() {
        let s = parse_conf(
            "c",
            r#"[{"type": "grokmirror", "manifest-url": "https://Git.Example/pub/manifest.js.gz",
                 "prefixmap": {"pub/scm": "kernel"}, "ignore": ["*/old/*"], "interval": "1h"},
                {"type": "grokmirror", "manifest-url": "http://127.0.0.1:8080/m.js.gz",
                 "clone-base": "git://127.0.0.1:9418", "prefixmap": {}, "include-empty": true}]"#,
        )
        .expect("valid");
        let [Section::Host(a), Section::Host(b)] = &s[..] else {
            panic!("two hosts: {s:?}")
        };
        assert_eq!(
            (a.host.as_str(), a.host_type),
            ("git.example", HostType::Grokmirror)
        );
        assert_eq!(a.protocol, "https");
        assert_eq!(a.type_params["clone-base"], "https://Git.Example/pub/");
        assert_eq!((a.lorry_interval, a.ls_interval), (3600, 900));
        assert_eq!(
            (b.host.as_str(), b.protocol.as_str()),
            ("127.0.0.1:8080", "git")
        );
        assert_eq!(b.type_params["clone-base"], "git://127.0.0.1:9418/");
        assert_eq!(b.type_params["include-empty"], true);
        for (text, needle) in [
            (
                r#"[{"type": "grokmirror", "prefixmap": {}}]"#,
                "missing manifest-url",
            ),
            (
                r#"[{"type": "grokmirror", "manifest-url": "file:///m.js.gz", "prefixmap": {}}]"#,
                "not an http(s) URL",
            ),
            (
                r#"[{"type": "grokmirror", "manifest-url": "ftp://h/m.js.gz", "prefixmap": {}}]"#,
                "must be http or https",
            ),
            (
                r#"[{"type": "grokmirror", "manifest-url": "https://u:p@h/m", "prefixmap": {}}]"#,
                "not an http(s) URL",
            ),
            (
                r#"[{"type": "grokmirror", "manifest-url": "https://h/m",
                     "clone-base": "file://localhost/srv/git", "prefixmap": {}}]"#,
                "must be https, http, git or ssh",
            ),
            (
                r#"[{"type": "grokmirror", "manifest-url": "https://h/m"}]"#,
                "missing prefixmap",
            ),
        ] {
            let e = conf_err(text);
            assert!(e.problem.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn what_the_original_passed_over_still_passes() {
        let s = parse_conf(
            "c",
            r#"[{"type": "trove", "host": "h", "trovehost": null, "protocol": "ssh",
                 "prefixmap": {}, "private-token": 5, "uuid": 1, "stagger": false,
                 "lorry-timeout": null, "timeout": 60},
                {"type": "gitlab", "host": "g", "trovehost": "old", "protocol": "https",
                 "prefixmap": {}, "private-token": null, "ignore": null}]"#,
        )
        .expect("valid");
        let [Section::Host(trove), Section::Host(gitlab)] = &s[..] else {
            panic!("two hosts: {s:?}")
        };
        assert!(trove.type_params.is_empty(), "{trove:?}");
        assert_eq!(trove.lorry_timeout, 60);
        assert_eq!(gitlab.host, "g");
        assert!(gitlab.type_params.is_empty() && gitlab.ignore.is_empty());
    }

    #[test]
    fn listing_inclusions_are_booleans() {
        let s = parse_conf(
            "c",
            r#"[{"type": "github", "host": "github.com", "protocol": "https",
                 "prefixmap": {}, "include-forks": true}]"#,
        )
        .expect("valid");
        let Section::Host(h) = &s[0] else {
            panic!("host")
        };
        assert_eq!(h.type_params["include-forks"], true);
        let s = parse_conf(
            "c",
            r#"[{"type": "gitlab", "host": "h", "protocol": "https",
                 "prefixmap": {}, "activity-hint": true}]"#,
        )
        .expect("valid");
        let Section::Host(h) = &s[0] else {
            panic!("host")
        };
        assert_eq!(h.type_params["activity-hint"], true);
        let e = conf_err(
            r#"[{"type": "gitea", "host": "h", "protocol": "https", "prefixmap": {},
                 "activity-hint": 1}]"#,
        );
        assert!(e.problem.contains("activity-hint"), "{e}");
        let e = conf_err(
            r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": {},
                 "activity-hint": true}]"#,
        );
        assert!(e.problem.contains("activity-hint"), "{e}");
        let e = conf_err(
            r#"[{"type": "gitlab", "host": "h", "protocol": "https", "prefixmap": {},
                 "include-archived": "yes"}]"#,
        );
        assert!(e.problem.contains("include-archived"), "{e}");
        assert!(e.problem.contains("boolean"), "{e}");
    }

    #[test]
    fn conf_validation_names_file_section_and_problem() {
        let e = conf_err("{not valid");
        assert_eq!(e.section, None);
        assert!(
            e.to_string()
                .starts_with("lorry-controller.conf: not valid"),
            "{e}"
        );
        assert_eq!(conf_err("{}").problem, "the top level must be a list");
        assert_eq!(conf_err("[3]").problem, "a section must be a map");
        assert_eq!(conf_err(r#"[{"prefix": "x"}]"#).problem, "no type");
        let e =
            conf_err(r#"[{"type": "lorries", "prefix": "a", "globs": []}, {"type": "svnhost"}]"#);
        assert_eq!(e.section, Some(1));
        assert!(e.problem.contains("unknown type"), "{e}");
        assert_eq!(
            e.to_string(),
            "lorry-controller.conf: section 1 (type svnhost): \
             unknown type \"svnhost\" (lorries, trove, gitlab, gitea, github or grokmirror)"
        );
        assert_eq!(
            conf_err(r#"[{"type": 3}]"#).to_string(),
            "lorry-controller.conf: section 0: type must be a string, not 3"
        );
        let e = conf_err(r#"[{"type": "lorries", "globs": []}]"#);
        assert_eq!(
            e.to_string(),
            "lorry-controller.conf: section 0 (type lorries): missing prefix"
        );
        // A value of the wrong kind is named by its key, down to the item.
        let e = conf_err("- {type: lorries, prefix: p, globs: ['a/*.lorry', 1]}\n");
        assert_eq!(
            e.to_string(),
            "lorry-controller.conf: section 0 (type lorries): \
             globs[1]: invalid type: integer `1`, expected a string"
        );
        for (text, needle) in [
            (r#"[{"type": "lorries", "prefix": "p"}]"#, "missing globs"),
            (
                r#"[{"type": "lorries", "prefix": "p", "globs": "x"}]"#,
                "globs: invalid type: string \"x\", expected a sequence",
            ),
            (
                r#"[{"type": "lorries", "prefix": "", "globs": []}]"#,
                "prefix must be a non-empty string",
            ),
            (
                r#"[{"type": "lorries", "prefix": 7, "globs": []}]"#,
                "prefix: invalid type: integer `7`, expected a string",
            ),
            (
                r#"[{"type": "lorries", "prefix": "/p", "globs": []}]"#,
                "absolute",
            ),
            (
                r#"[{"type": "lorries", "prefix": "p", "globs": ["../x"]}]"#,
                "inside the CONFGIT",
            ),
            (
                r#"[{"type": "lorries", "prefix": "p", "globs": [], "interval": "2x"}]"#,
                "interval",
            ),
            (
                r#"[{"type": "trove", "protocol": "ssh", "prefixmap": {}}]"#,
                "missing host or trovehost",
            ),
            (
                r#"[{"type": "trove", "host": "h", "prefixmap": {}}]"#,
                "missing protocol",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ftp", "prefixmap": {}}]"#,
                "must be ssh",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh"}]"#,
                "missing prefixmap",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": {"a": "../b"}}]"#,
                "'..'",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": {}, "ignore": "x"}]"#,
                "ignore",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": {}, "ls-interval": true}]"#,
                "ls-interval: invalid type: boolean `true`, expected a duration",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": {}, "interval": -5}]"#,
                "interval: bad duration -5",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": {"a": 1}}]"#,
                "prefixmap.a: invalid type: integer `1`, expected a string",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": []}]"#,
                "prefixmap: invalid type: sequence, expected a map",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": {}, "auth": "u:p"}]"#,
                "auth: invalid type: string",
            ),
            (
                r#"[{"type": "gitlab", "host": "h", "protocol": "ssh", "prefixmap": {}, "private-token": 5}]"#,
                "private-token: invalid type: integer `5`, expected a string",
            ),
            (
                r#"[{"type": "gitea", "trovehost": "", "protocol": "ssh", "prefixmap": {}}]"#,
                "host or trovehost must be a non-empty string",
            ),
            (
                r#"[{"type": "gitea", "host": "a b", "protocol": "ssh", "prefixmap": {}}]"#,
                "is not a host name",
            ),
            (
                r#"[{"type": "trove", "host": "h", "protocol": "ssh", "prefixmap": {}},
                 {"type": "gitea", "host": "h", "protocol": "ssh", "prefixmap": {}}]"#,
                "already configured",
            ),
        ] {
            let e = conf_err(text);
            assert!(e.section.is_some(), "{text}: {e}");
            assert!(e.problem.contains(needle), "{text}: {e}");
        }
    }
}
