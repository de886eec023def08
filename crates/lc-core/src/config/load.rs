//! Reading a CONFGIT checkout: the conf file, then the `.lorry` files its
//! `lorries` sections name, into the lorries and hosts to sync.

use std::path::{Path, PathBuf};

use lc_api::ConfigProblem;
use lc_base::spec;

use super::cache::{LorryFileCache, ParsedFile};
use super::conf::{ConfError, HostSpec, Section, parse_conf};
use super::tree::{BlobCache, ConfigTree, TreeSource};
use crate::db::NewLorry;

/// The conf file names looked for, in order.
pub const CONF_FILES: &[&str] = &["lorry-controller.conf", "lorry-configuration.conf"];

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
    let source = Checkout { dir, cache };
    let loaded = load_from(&source, &dir.display().to_string(), dir.is_dir())?;
    Ok(loaded)
}

/// Reads CONFGIT from a git tree (`tree`, see [`ConfigTree`]) as
/// [`load_config_cached`] reads a checkout of it: the same conf file, the
/// same files named by the same globs, the same problems. `.lorry` files
/// whose blob id is in `cache` are not read nor parsed again.
pub fn load_config_tree(tree: &ConfigTree, cache: &BlobCache) -> Result<LoadedConfig, ConfError> {
    load_from(&TreeSource { tree, cache }, &tree.shown, true)
}

/// Where CONFGIT's files are read from: a checkout or a git tree.
pub(super) trait Source {
    /// The text of the conf file `name` (one of [`CONF_FILES`]), `None`
    /// when there is none.
    fn conf(&self, name: &str) -> std::io::Result<Option<String>>;
    /// The regular files (symbolic links followed) `pattern` matches,
    /// relative to CONFGIT's top with `/` between components, sorted.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, String>;
    /// `files` parsed, in the order given; and how many were parsed afresh.
    fn parse(&self, files: Vec<String>) -> (Vec<(String, ParsedFile)>, usize);
    /// The files of the whole read were `seen`: forget the others.
    fn keep_only(&self, seen: &[String]);
}

/// A checkout in a directory; `.lorry` files cached by their `stat`.
struct Checkout<'a> {
    dir: &'a Path,
    cache: &'a LorryFileCache,
}

pub(super) const GLOB_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

impl Source for Checkout<'_> {
    fn conf(&self, name: &str) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(self.dir.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        let escaped_dir = glob::Pattern::escape(&self.dir.to_string_lossy());
        let full = format!("{escaped_dir}/{pattern}");
        let paths = glob::glob_with(&full, GLOB_OPTIONS).map_err(|p| p.to_string())?;
        let mut files = Vec::new();
        for path in paths.flatten() {
            if let Ok(rel) = path.strip_prefix(self.dir)
                && std::fs::metadata(&path).is_ok_and(|m| m.is_file())
            {
                files.push(rel.to_string_lossy().into_owned());
            }
        }
        files.sort();
        Ok(files)
    }

    fn parse(&self, files: Vec<String>) -> (Vec<(String, ParsedFile)>, usize) {
        let files = files
            .into_iter()
            .filter_map(|rel| {
                let path = self.dir.join(&rel);
                let meta = std::fs::metadata(&path).ok()?;
                Some((rel, path, meta))
            })
            .collect();
        self.cache.read_and_parse(files)
    }

    fn keep_only(&self, seen: &[String]) {
        let paths: Vec<PathBuf> = seen.iter().map(|rel| self.dir.join(rel)).collect();
        self.cache.keep_only(&paths);
    }
}

fn load_from(
    source: &dyn Source,
    shown_dir: &str,
    dir_exists: bool,
) -> Result<LoadedConfig, ConfError> {
    let mut found = None;
    for name in CONF_FILES {
        match source.conf(name) {
            Ok(Some(text)) => {
                found = Some((*name, text));
                break;
            }
            Ok(None) => {}
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
        let problem = if dir_exists {
            format!(
                "not found in {shown_dir} (nor {})",
                CONF_FILES[1..].join(", ")
            )
        } else {
            format!("the configuration directory {shown_dir} does not exist")
        };
        return Err(ConfError {
            file: CONF_FILES[0].to_owned(),
            section: None,
            section_type: None,
            problem,
        });
    };
    let sections = parse_conf(name, &text)?;
    load_sections(source, name, &sections)
}

struct Candidate {
    file: String,
    lorry: NewLorry,
}

fn load_sections(
    source: &dyn Source,
    conf_name: &str,
    sections: &[Section],
) -> Result<LoadedConfig, ConfError> {
    let mut seen: Vec<String> = Vec::new();
    let mut files_parsed = 0;
    let mut problems = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut hosts = Vec::new();
    let mut files_read = 0;
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
            files.extend(source.glob(pattern).map_err(|p| ConfError {
                file: conf_name.to_owned(),
                section: Some(i),
                section_type: Some("lorries".into()),
                problem: format!("glob {pattern:?}: {p}"),
            })?);
        }
        files.sort();
        files.dedup();
        files_read += files.len();
        seen.extend(files.iter().cloned());
        let (parsed_files, parsed_now) = source.parse(files);
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
    source.keep_only(&seen);
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

fn problem(file: &str, item: Option<String>, problem: String) -> ConfigProblem {
    ConfigProblem {
        file: file.to_owned(),
        item,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::config::check_config;
    use crate::config::tests::write;

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
