//! CONFGIT: `lorry-controller.conf` (or Lorry 2's `lorry-configuration.conf`)
//! and the `.lorry` files its `lorries` sections name.
//!
//! A conf file that does not parse or validate fails the whole read
//! ([`ConfError`]): nothing is applied. A `.lorry` file or spec that is bad is
//! skipped and recorded as a [`ConfigProblem`]; the rest still loads.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lc_api::ConfigProblem;
use serde_json::{Map, Value};

use crate::db::NewLorry;
use lc_base::spec::{self, check_name, parse_lorry_file};

/// The conf file names looked for, in order.
pub const CONF_FILES: &[&str] = &["lorry-controller.conf", "lorry-configuration.conf"];

/// Defaults when a section does not say.
pub const DEFAULT_INTERVAL: i64 = 24 * 3600;
pub const DEFAULT_LS_INTERVAL: i64 = 24 * 3600;
pub const DEFAULT_LORRY_TIMEOUT: i64 = 3600;

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
}

impl HostType {
    pub fn as_str(self) -> &'static str {
        match self {
            HostType::Trove => "trove",
            HostType::Gitlab => "gitlab",
            HostType::Gitea => "gitea",
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
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(err(Some(i), None, "a section must be a map".into()));
        };
        let kind = match map.get("type") {
            Some(Value::String(k)) => k.as_str(),
            None => return Err(err(Some(i), None, "no type".into())),
            Some(other) => {
                return Err(err(
                    Some(i),
                    None,
                    format!("type must be a string, not {other}"),
                ));
            }
        };
        let e = |problem: String| err(Some(i), Some(kind), problem);
        let duration = |keys: &[&str], default: i64| -> Result<i64, ConfError> {
            for key in keys {
                match map.get(*key) {
                    None | Some(Value::Null) => continue,
                    Some(Value::String(s)) => {
                        return parse_duration(s).map_err(|p| e(format!("{key}: {p}")));
                    }
                    Some(Value::Number(n)) => {
                        return n
                            .as_i64()
                            .filter(|n| *n >= 0)
                            .ok_or_else(|| e(format!("{key}: bad duration {n}")));
                    }
                    Some(other) => return Err(e(format!("{key}: bad duration {other}"))),
                }
            }
            Ok(default)
        };
        let string_list = |key: &str, required: bool| -> Result<Vec<String>, ConfError> {
            match map.get(key) {
                None | Some(Value::Null) if !required => Ok(Vec::new()),
                None | Some(Value::Null) => Err(e(format!("missing {key}"))),
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(e(format!("{key} must be a list of strings, found {other}"))),
                    })
                    .collect(),
                Some(_) => Err(e(format!("{key} must be a list of strings"))),
            }
        };
        let string = |keys: &[&str]| -> Result<String, ConfError> {
            for key in keys {
                match map.get(*key) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) if !s.is_empty() => return Ok(s.clone()),
                    Some(other) => {
                        return Err(e(format!("{key} must be a non-empty string, not {other}")));
                    }
                }
            }
            Err(e(format!("missing {}", keys.join(" or "))))
        };
        let section = match kind {
            "lorries" => {
                let prefix = string(&["prefix"])?;
                check_name(&prefix).map_err(|p| e(format!("prefix: {p}")))?;
                let globs = string_list("globs", true)?;
                for glob in &globs {
                    if glob.starts_with('/') || glob.split('/').any(|c| c == "..") {
                        return Err(e(format!(
                            "glob {glob:?} must stay inside the CONFGIT (relative, no '..')"
                        )));
                    }
                    glob::Pattern::new(glob).map_err(|p| e(format!("glob {glob:?}: {p}")))?;
                }
                Section::Lorries(LorriesSection {
                    prefix,
                    globs,
                    interval: duration(&["interval"], DEFAULT_INTERVAL)?,
                    lorry_timeout: duration(&["lorry-timeout", "timeout"], DEFAULT_LORRY_TIMEOUT)?,
                })
            }
            "trove" | "gitlab" | "gitea" => {
                let host_type = match kind {
                    "trove" => HostType::Trove,
                    "gitlab" => HostType::Gitlab,
                    _ => HostType::Gitea,
                };
                let host = string(&["host", "trovehost"])?;
                if host.contains(['/', ' ']) || host.chars().any(char::is_control) {
                    return Err(e(format!("host {host:?} is not a host name")));
                }
                let protocol = string(&["protocol"])?;
                if !["ssh", "http", "https"].contains(&protocol.as_str()) {
                    return Err(e(format!(
                        "protocol {protocol:?}: must be ssh, http or https"
                    )));
                }
                let prefixmap = match map.get("prefixmap") {
                    None | Some(Value::Null) => return Err(e("missing prefixmap".into())),
                    Some(Value::Object(m)) => {
                        let mut out = BTreeMap::new();
                        for (remote, local) in m {
                            let Value::String(local) = local else {
                                return Err(e(format!(
                                    "prefixmap {remote:?}: must map to a string"
                                )));
                            };
                            check_name(local)
                                .map_err(|p| e(format!("prefixmap {remote:?}: {p}")))?;
                            out.insert(remote.clone(), local.clone());
                        }
                        out
                    }
                    Some(_) => return Err(e("prefixmap must be a map".into())),
                };
                let ignore = string_list("ignore", false)?;
                let mut type_params = Map::new();
                match map.get("auth") {
                    None | Some(Value::Null) => {}
                    Some(auth @ Value::Object(_)) => {
                        type_params.insert("auth".into(), auth.clone());
                    }
                    Some(_) => return Err(e("auth must be a map of username and password".into())),
                }
                if host_type != HostType::Trove {
                    match map.get("private-token") {
                        None | Some(Value::Null) => {}
                        Some(t @ Value::String(_)) => {
                            type_params.insert("private-token".into(), t.clone());
                        }
                        Some(_) => return Err(e("private-token must be a string".into())),
                    }
                }
                Section::Host(HostSpec {
                    host,
                    host_type,
                    protocol,
                    prefixmap,
                    ignore,
                    lorry_interval: duration(&["interval"], DEFAULT_INTERVAL)?,
                    ls_interval: duration(&["ls-interval"], DEFAULT_LS_INTERVAL)?,
                    lorry_timeout: duration(&["lorry-timeout", "timeout"], DEFAULT_LORRY_TIMEOUT)?,
                    type_params,
                })
            }
            other => {
                return Err(e(format!(
                    "unknown type {other:?} (lorries, trove, gitlab or gitea)"
                )));
            }
        };
        sections.push(section);
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

/// Everything read from a CONFGIT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedConfig {
    /// Which conf file was read (one of [`CONF_FILES`]).
    pub conf_file: String,
    /// Lorries from `.lorry` files, sorted by path, no duplicates.
    pub lorries: Vec<NewLorry>,
    pub hosts: Vec<HostSpec>,
    pub problems: Vec<ConfigProblem>,
    /// How many `.lorry` files were read.
    pub files_read: usize,
    /// How many of them were parsed afresh (the rest were unchanged since
    /// the last read, see [`LorryFileCache`]).
    pub files_parsed: usize,
}

/// Reads the CONFGIT checked out at `dir`.
pub fn load_config(dir: &Path) -> Result<LoadedConfig, ConfError> {
    load_config_cached(dir, &LorryFileCache::default())
}

/// Reads the CONFGIT checked out at `dir`, taking `.lorry` files that have
/// not changed since an earlier read from `cache` instead of reading and
/// parsing them again. The conf file itself is always read.
pub fn load_config_cached(dir: &Path, cache: &LorryFileCache) -> Result<LoadedConfig, ConfError> {
    let mut found = None;
    for name in CONF_FILES {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                found = Some((*name, text));
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfError {
                    file: (*name).to_owned(),
                    section: None,
                    section_type: None,
                    problem: format!("cannot read: {e}"),
                });
            }
        }
    }
    // No conf file is an error, not an empty configuration: a wrong
    // --configuration-directory or a CONFGIT not yet set up must never
    // remove every lorry.
    let Some((name, text)) = found else {
        let problem = if dir.is_dir() {
            format!(
                "not found in {} (nor {})",
                dir.display(),
                CONF_FILES[1..].join(", ")
            )
        } else {
            format!(
                "the configuration directory {} does not exist",
                dir.display()
            )
        };
        return Err(ConfError {
            file: CONF_FILES[0].to_owned(),
            section: None,
            section_type: None,
            problem,
        });
    };
    let sections = parse_conf(name, &text)?;
    load_sections(dir, name, &sections, cache)
}

struct Candidate {
    file: String,
    lorry: NewLorry,
}

fn load_sections(
    dir: &Path,
    conf_name: &str,
    sections: &[Section],
    cache: &LorryFileCache,
) -> Result<LoadedConfig, ConfError> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut files_parsed = 0;
    let mut problems = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut hosts = Vec::new();
    let mut files_read = 0;
    let escaped_dir = glob::Pattern::escape(&dir.to_string_lossy());
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    for (i, section) in sections.iter().enumerate() {
        let s = match section {
            Section::Host(h) => {
                hosts.push(h.clone());
                continue;
            }
            Section::Lorries(s) => s,
        };
        let mut files = Vec::new();
        for pattern in &s.globs {
            let full = format!("{escaped_dir}/{pattern}");
            let paths = glob::glob_with(&full, options).map_err(|p| ConfError {
                file: conf_name.to_owned(),
                section: Some(i),
                section_type: Some("lorries".into()),
                problem: format!("glob {pattern:?}: {p}"),
            })?;
            for path in paths.flatten() {
                if let Ok(rel) = path.strip_prefix(dir) {
                    files.push((rel.to_string_lossy().into_owned(), path));
                }
            }
        }
        files.sort();
        files.dedup();
        let files: Vec<(String, PathBuf, std::fs::Metadata)> = files
            .into_iter()
            .filter_map(|(rel, path)| {
                let meta = std::fs::metadata(&path).ok()?;
                meta.is_file().then_some((rel, path, meta))
            })
            .collect();
        files_read += files.len();
        seen.extend(files.iter().map(|(_, path, _)| path.clone()));
        let (parsed_files, parsed_now) = cache.read_and_parse(files);
        files_parsed += parsed_now;
        for (rel, parsed) in parsed_files {
            let entries = match parsed.as_ref() {
                Ok(entries) => entries,
                Err(p) => {
                    problems.push(problem(&rel, None, p.clone()));
                    continue;
                }
            };
            for (name, spec) in entries {
                match spec {
                    Ok(spec) => {
                        let path = format!("{}/{name}", s.prefix);
                        candidates.push(Candidate {
                            file: rel.clone(),
                            lorry: NewLorry {
                                text: spec::minion_text(&path, spec),
                                path,
                                from_host: String::new(),
                                from_path: String::new(),
                                interval: s.interval,
                                lorry_timeout: s.lorry_timeout,
                            },
                        });
                    }
                    Err(p) => problems.push(problem(&rel, Some(name.clone()), p.to_string())),
                }
            }
        }
    }
    cache.keep_only(&seen);
    // Same path twice: the file that sorts first wins; both are reported.
    candidates.sort_by(|a, b| (&a.lorry.path, &a.file).cmp(&(&b.lorry.path, &b.file)));
    let mut lorries: Vec<NewLorry> = Vec::with_capacity(candidates.len());
    let mut winner_file: Option<String> = None;
    let mut reported_winner = false;
    for c in candidates {
        if let (Some(last), Some(wf)) = (lorries.last(), &winner_file)
            && last.path == c.lorry.path
        {
            if *wf == c.file && last.text == c.lorry.text {
                continue; // the same file reached by two sections alike
            }
            if !reported_winner {
                problems.push(problem(
                    wf,
                    Some(c.lorry.path.clone()),
                    format!("path also defined in {}; this one is used", c.file),
                ));
                reported_winner = true;
            }
            problems.push(problem(
                &c.file,
                Some(c.lorry.path.clone()),
                format!("path already defined in {wf}; this one is ignored"),
            ));
            continue;
        }
        winner_file = Some(c.file);
        reported_winner = false;
        lorries.push(c.lorry);
    }
    Ok(LoadedConfig {
        conf_file: conf_name.to_owned(),
        lorries,
        hosts,
        problems,
        files_read,
        files_parsed,
    })
}

/// A `.lorry` file parsed: its specs, or why the file as a whole is bad.
type ParsedFile = Arc<Result<Vec<spec::SpecEntry>, String>>;

/// How long after a file's last change a cached parse of it is trusted.
/// File times tick coarsely (a few milliseconds): a file changed within the
/// same tick as it was read, to the same size, would otherwise look
/// unchanged. Git's index has the same "racy clean" rule.
pub const RACY_MARGIN: Duration = Duration::from_secs(2);

/// Parsed `.lorry` files kept from one read of CONFGIT to the next, so that
/// a re-read of an unchanged checkout costs one `stat` per file instead of
/// reading and parsing it. A file counts as unchanged when its size, inode,
/// modification and change times are as they were, and it had not changed
/// just before it was read (see [`RACY_MARGIN`]). The webapp keeps one for
/// its configuration directory.
#[derive(Debug, Default)]
pub struct LorryFileCache {
    files: Mutex<HashMap<PathBuf, CachedFile>>,
}

#[derive(Debug)]
struct CachedFile {
    stamp: FileStamp,
    /// Wall-clock time just before the file was read.
    read_at: SystemTime,
    parsed: ParsedFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            len: meta.len(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The modification time. (The change time is only compared: setting a
    /// file's modification time back moves its change time to now.)
    fn modified(&self) -> SystemTime {
        let (secs, nanos) = self.mtime;
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(secs.max(0).unsigned_abs())
            + Duration::from_nanos(nanos.max(0).unsigned_abs())
    }
}

impl CachedFile {
    fn still_valid(&self, stamp: &FileStamp) -> bool {
        self.stamp == *stamp && stamp.modified() + RACY_MARGIN < self.read_at
    }
}

impl LorryFileCache {
    /// How many files it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, CachedFile>> {
        // A panic while holding it left at worst a missing entry.
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets files not among `paths` (deleted, or no longer globbed).
    fn keep_only(&self, paths: &[PathBuf]) {
        let wanted: std::collections::HashSet<&PathBuf> = paths.iter().collect();
        self.lock().retain(|path, _| wanted.contains(path));
    }

    /// Parses `files` (relative name, path, metadata), answering in the
    /// order given: unchanged ones from the cache, the rest read on all
    /// cores and remembered. Also answers how many were read.
    fn read_and_parse(
        &self,
        files: Vec<(String, PathBuf, std::fs::Metadata)>,
    ) -> (Vec<(String, ParsedFile)>, usize) {
        let mut answers: Vec<Option<(String, ParsedFile)>> = Vec::with_capacity(files.len());
        let mut to_read = Vec::new();
        {
            let cached = self.lock();
            for (rel, path, meta) in files {
                let stamp = FileStamp::of(&meta);
                match cached.get(&path) {
                    Some(c) if c.still_valid(&stamp) => {
                        answers.push(Some((rel, Arc::clone(&c.parsed))));
                    }
                    _ => {
                        to_read.push((answers.len(), rel, path, stamp));
                        answers.push(None);
                    }
                }
            }
        }
        let read_at = SystemTime::now();
        let parsed = read_and_parse(to_read);
        let count = parsed.len();
        let mut cached = self.lock();
        for (index, rel, path, stamp, parsed) in parsed {
            cached.insert(
                path,
                CachedFile {
                    stamp,
                    read_at,
                    parsed: Arc::clone(&parsed),
                },
            );
            answers[index] = Some((rel, parsed));
        }
        (answers.into_iter().flatten().collect(), count)
    }
}

type ToRead = (usize, String, PathBuf, FileStamp);
type Read = (usize, String, PathBuf, FileStamp, ParsedFile);

/// Reads and parses `.lorry` files on all cores, answering in the order given.
fn read_and_parse(files: Vec<ToRead>) -> Vec<Read> {
    let one = |(index, rel, path, stamp): ToRead| -> Read {
        let parsed = match std::fs::read_to_string(&path) {
            Ok(text) => parse_lorry_file(&text).map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read: {e}")),
        };
        (index, rel, path, stamp, Arc::new(parsed))
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || files.len() < 64 {
        return files.into_iter().map(one).collect();
    }
    let chunk = files.len().div_ceil(threads);
    let mut chunks: Vec<Vec<_>> = Vec::new();
    let mut rest = files.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(chunk).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| scope.spawn(move || c.into_iter().map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn problem(file: &str, item: Option<String>, problem: String) -> ConfigProblem {
    ConfigProblem {
        file: file.to_owned(),
        item,
        problem,
    }
}

/// The result of `--check-config DIR`: what a CONFGIT holds and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub lorries: usize,
    pub hosts: usize,
    pub files_read: usize,
    /// The conf file's error, if it was refused; nothing else is read then.
    pub conf_error: Option<ConfError>,
    pub problems: Vec<ConfigProblem>,
}

impl CheckReport {
    /// Whether the CONFGIT is free of problems (the exit status of a CI gate).
    pub fn is_clean(&self) -> bool {
        self.conf_error.is_none() && self.problems.is_empty()
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.conf_error {
            return writeln!(f, "error: {e}");
        }
        for p in &self.problems {
            match &p.item {
                Some(item) => writeln!(f, "problem: {}: {item}: {}", p.file, p.problem)?,
                None => writeln!(f, "problem: {}: {}", p.file, p.problem)?,
            }
        }
        writeln!(
            f,
            "{} lorries from {} files, {} upstream hosts, {} problems",
            self.lorries,
            self.files_read,
            self.hosts,
            self.problems.len()
        )
    }
}

/// Checks the CONFGIT checked out at `dir` without touching any STATEDB.
pub fn check_config(dir: &Path) -> CheckReport {
    match load_config(dir) {
        Ok(c) => CheckReport {
            lorries: c.lorries.len(),
            hosts: c.hosts.len(),
            files_read: c.files_read,
            conf_error: None,
            problems: c.problems,
        },
        Err(e) => CheckReport {
            lorries: 0,
            hosts: 0,
            files_read: 0,
            conf_error: Some(e),
            problems: Vec::new(),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
                {"type": "lorries", "prefix": "p", "globs": []}]"#,
        )
        .expect("valid");
        let Section::Host(h) = &s[0] else {
            panic!("host")
        };
        assert_eq!(h.host_type, HostType::Gitlab);
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
        let e = conf_err(r#"[{"type": "lorries", "globs": []}]"#);
        assert_eq!(
            e.to_string(),
            "lorry-controller.conf: section 0 (type lorries): missing prefix"
        );
        for (text, needle) in [
            (r#"[{"type": "lorries", "prefix": "p"}]"#, "missing globs"),
            (
                r#"[{"type": "lorries", "prefix": "p", "globs": "x"}]"#,
                "list of strings",
            ),
            (
                r#"[{"type": "lorries", "prefix": "p", "globs": [1]}]"#,
                "list of strings",
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
                "ls-interval",
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

    pub(crate) fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn load_reads_globs_sorted_skips_bad_files_and_reports_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(
            d,
            "lorry-controller.conf",
            r#"[{"type": "lorries", "prefix": "up", "interval": "1h", "globs": ["l/*.lorry"]}]"#,
        );
        write(
            d,
            "l/b.lorry",
            "dup: {type: git, url: 'https://b/dup'}\nb: {type: hg, url: 'u'}\n",
        );
        write(
            d,
            "l/a.lorry",
            r#"{"dup": {"type": "git", "url": "https://a/dup"}, "bad": {"url": "x"}}"#,
        );
        write(d, "l/c.lorry", "{broken");
        write(
            d,
            "l/.hidden.lorry",
            r#"{"h": {"type": "git", "url": "u"}}"#,
        );
        write(d, "other/x.lorry", r#"{"x": {"type": "git", "url": "u"}}"#);
        let c = load_config(d).expect("loads");
        assert_eq!(c.conf_file, "lorry-controller.conf");
        let paths: Vec<_> = c.lorries.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, ["up/b", "up/dup"]);
        assert!(
            c.lorries[1].text.contains("https://a/dup"),
            "first file wins"
        );
        assert_eq!(c.lorries[0].interval, 3600);
        let text: Value = serde_json::from_str(&c.lorries[0].text).expect("json");
        assert_eq!(text["up/b"]["type"], "hg");
        let files: Vec<_> = c
            .problems
            .iter()
            .map(|p| (p.file.as_str(), p.item.as_deref()))
            .collect();
        assert!(files.contains(&("l/a.lorry", Some("bad"))), "{files:?}");
        assert!(files.contains(&("l/c.lorry", None)), "{files:?}");
        assert!(files.contains(&("l/a.lorry", Some("up/dup"))), "{files:?}");
        assert!(files.contains(&("l/b.lorry", Some("up/dup"))), "{files:?}");
        assert_eq!(c.problems.len(), 4, "{:?}", c.problems);
        let report = check_config(d);
        assert!(!report.is_clean());
        assert_eq!(report.lorries, 2);
    }

    #[test]
    fn many_files_are_read_in_parallel_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(
            d,
            "lorry-controller.conf",
            "- {type: lorries, prefix: p, globs: ['*.lorry']}\n",
        );
        for i in 0..300 {
            let text = if i % 50 == 7 {
                "{broken".to_owned()
            } else {
                format!("r{i:03}: {{type: git, url: u}}\n")
            };
            write(d, &format!("f{i:03}.lorry"), &text);
        }
        let c = load_config(d).expect("loads");
        assert_eq!(c.files_read, 300);
        assert_eq!(c.lorries.len(), 294);
        assert!(c.lorries.windows(2).all(|w| w[0].path < w[1].path));
        let bad: Vec<_> = c.problems.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            bad,
            [
                "f007.lorry",
                "f057.lorry",
                "f107.lorry",
                "f157.lorry",
                "f207.lorry",
                "f257.lorry"
            ]
        );
    }

    /// Sets a file's modification time `secs` seconds in the past, as if
    /// the checkout had been made then.
    fn age(path: &Path, secs: u64) {
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .expect("set mtime");
    }

    #[test]
    fn unchanged_lorry_files_come_from_the_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "lorry-controller.conf",
            r#"[{"type": "lorries", "prefix": "p", "globs": ["*.lorry"]}]"#,
        );
        write(
            dir.path(),
            "a.lorry",
            "a: {type: git, url: 'https://x/a'}\n",
        );
        write(
            dir.path(),
            "b.lorry",
            "b: {type: git, url: 'https://x/b'}\n",
        );
        // Just written: not trusted until a later read (racy clean).
        let cache = LorryFileCache::default();
        let first = load_config_cached(dir.path(), &cache).expect("first");
        assert_eq!(first.files_parsed, 2);
        let again = load_config_cached(dir.path(), &cache).expect("again");
        assert_eq!(again.files_parsed, 2, "changed too recently to trust");
        assert_eq!(again.lorries, first.lorries);

        for name in ["a.lorry", "b.lorry"] {
            age(&dir.path().join(name), 60);
        }
        let cache = LorryFileCache::default();
        assert_eq!(
            load_config_cached(dir.path(), &cache)
                .expect("fill")
                .files_parsed,
            2
        );
        let cached = load_config_cached(dir.path(), &cache).expect("cached");
        assert_eq!(cached.files_parsed, 0);
        assert_eq!(cached.lorries, first.lorries);
        let uncached = load_config(dir.path()).expect("uncached");
        assert_eq!(
            LoadedConfig {
                files_parsed: 2,
                ..cached
            },
            uncached,
            "the same, but for the parsing"
        );

        // The same size and modification time, other content: the change
        // time gives it away.
        write(
            dir.path(),
            "a.lorry",
            "a: {type: git, url: 'https://x/A'}\n",
        );
        age(&dir.path().join("a.lorry"), 60);
        let changed = load_config_cached(dir.path(), &cache).expect("changed");
        assert_eq!(changed.files_parsed, 1);
        assert!(changed.lorries[0].text.contains("https://x/A"));

        // A deleted file is forgotten, and its lorries with it.
        std::fs::remove_file(dir.path().join("b.lorry")).expect("rm");
        let fewer = load_config_cached(dir.path(), &cache).expect("fewer");
        assert_eq!(fewer.lorries.len(), 1);
        assert_eq!(cache.len(), 1);

        // A bad file is cached as bad, and still reported each time.
        write(dir.path(), "c.lorry", "{not yaml");
        age(&dir.path().join("c.lorry"), 60);
        for _ in 0..2 {
            let bad = load_config_cached(dir.path(), &cache).expect("bad file");
            assert_eq!(bad.problems.len(), 1, "{:?}", bad.problems);
            assert_eq!(bad.problems[0].file, "c.lorry");
        }
    }

    #[test]
    fn lorry_configuration_conf_and_no_conf() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = load_config(dir.path()).expect_err("no conf file");
        assert!(
            missing
                .to_string()
                .contains("lorry-controller.conf: not found in"),
            "{missing}"
        );
        assert!(!check_config(dir.path()).is_clean());
        let gone = load_config(&dir.path().join("nope")).expect_err("no directory");
        assert!(gone.to_string().contains("does not exist"), "{gone}");
        write(dir.path(), "lorry-controller.conf", "[]");
        let c = load_config(dir.path()).expect("empty");
        assert_eq!(c.lorries.len(), 0);
        std::fs::remove_file(dir.path().join("lorry-controller.conf")).expect("rm");
        write(
            dir.path(),
            "lorry-configuration.conf",
            "- type: lorries\n  prefix: p\n  globs: ['*.lorry']\n",
        );
        write(dir.path(), "x.lorry", "x: {type: git, url: u}\n");
        let c = load_config(dir.path()).expect("lorry 2 name");
        assert_eq!(c.lorries.len(), 1);
        assert!(check_config(dir.path()).is_clean());
        write(dir.path(), "lorry-configuration.conf", "- type: nope\n");
        let r = check_config(dir.path());
        assert!(r.conf_error.is_some());
        assert!(
            r.to_string()
                .contains("lorry-configuration.conf: section 0"),
            "{r}"
        );
    }
}
