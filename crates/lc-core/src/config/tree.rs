//! Reading CONFGIT from a git tree rather than a checkout: the webapp
//! fetches CONFGIT into a repository of its own and never writes its files
//! out (`lc-web/src/confgit.rs` lists the tree with `lc_git::confgit`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::cache::{ParsedFile, on_all_cores, parse_text};
use super::load::{GLOB_OPTIONS, Source};

/// Where a regular file of the tree (symbolic links resolved) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeFile {
    /// A blob of the repository, by id: the same id, the same content.
    Blob(String),
    /// Outside the tree: a symbolic link's target, read from the file
    /// system as a checkout would have read it.
    Outside(PathBuf),
}

/// Reads a blob by id.
pub type BlobReader = Box<dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync>;

/// A CONFGIT tree: every regular file by its path from the top (`/`
/// between components), and how to read a blob.
pub struct ConfigTree {
    /// The directory it stands for, in messages.
    pub shown: String,
    pub files: BTreeMap<String, TreeFile>,
    pub read: BlobReader,
}

impl std::fmt::Debug for ConfigTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigTree")
            .field("shown", &self.shown)
            .field("files", &self.files.len())
            .finish()
    }
}

/// `.lorry` files parsed, by blob id, kept from one read to the next: a
/// blob is never read nor parsed twice while it stays in the tree.
#[derive(Debug, Default)]
pub struct BlobCache {
    parsed: Mutex<HashMap<String, ParsedFile>>,
}

impl BlobCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ParsedFile>> {
        self.parsed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many blobs it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(super) struct TreeSource<'a> {
    pub(super) tree: &'a ConfigTree,
    pub(super) cache: &'a BlobCache,
}

impl TreeSource<'_> {
    fn read(&self, file: &TreeFile) -> Result<String, String> {
        match file {
            TreeFile::Blob(id) => {
                let bytes = (self.tree.read)(id)?;
                String::from_utf8(bytes)
                    .map_err(|_| "stream did not contain valid UTF-8".to_owned())
            }
            TreeFile::Outside(path) => std::fs::read_to_string(path).map_err(|e| e.to_string()),
        }
    }
}

impl Source for TreeSource<'_> {
    fn conf(&self, name: &str) -> std::io::Result<Option<String>> {
        match self.tree.files.get(name) {
            None => Ok(None),
            Some(file) => self.read(file).map(Some).map_err(std::io::Error::other),
        }
    }

    fn glob(&self, pattern: &str) -> Result<Vec<String>, String> {
        // Parsed as a checkout's glob would be, for the same error.
        let escaped_dir = glob::Pattern::escape(&self.tree.shown);
        glob::Pattern::new(&format!("{escaped_dir}/{pattern}")).map_err(|e| e.to_string())?;
        let compiled = glob::Pattern::new(pattern).map_err(|e| e.to_string())?;
        Ok(self
            .tree
            .files
            .keys()
            .filter(|path| compiled.matches_with(path, GLOB_OPTIONS))
            .cloned()
            .collect())
    }

    fn parse(&self, files: Vec<String>) -> (Vec<(String, ParsedFile)>, usize) {
        let mut answers: Vec<Option<(String, ParsedFile)>> = Vec::with_capacity(files.len());
        let mut to_parse = Vec::new();
        {
            let cached = self.cache.lock();
            for rel in files {
                let file = self.tree.files.get(&rel);
                match file {
                    Some(TreeFile::Blob(id)) if cached.contains_key(id) => {
                        let parsed = Arc::clone(&cached[id]);
                        answers.push(Some((rel, parsed)));
                    }
                    Some(file) => {
                        to_parse.push((answers.len(), rel, file.clone()));
                        answers.push(None);
                    }
                    None => {}
                }
            }
        }
        // Read one by one (one repository), parsed on all cores.
        let texts: Vec<_> = to_parse
            .into_iter()
            .map(|(index, rel, file)| {
                let text = self.read(&file);
                (index, rel, file, text)
            })
            .collect();
        let parsed = on_all_cores(texts, |(index, rel, file, text)| {
            let parsed = match text {
                Ok(text) => parse_text(&text),
                Err(e) => Err(format!("cannot read: {e}")),
            };
            (index, rel, file, Arc::new(parsed))
        });
        let count = parsed.len();
        let mut cached = self.cache.lock();
        for (index, rel, file, parsed) in parsed {
            if let TreeFile::Blob(id) = file {
                cached.insert(id, Arc::clone(&parsed));
            }
            answers[index] = Some((rel, parsed));
        }
        (answers.into_iter().flatten().collect(), count)
    }

    fn keep_only(&self, seen: &[String]) {
        let ids: HashSet<&str> = seen
            .iter()
            .filter_map(|rel| match self.tree.files.get(rel) {
                Some(TreeFile::Blob(id)) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        self.cache.lock().retain(|id, _| ids.contains(id.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::tests::write;
    use crate::config::{LoadedConfig, load_config, load_config_tree};

    /// The regular files under `dir` as a tree whose blob ids are their
    /// contents' (as git's are).
    fn tree_of(dir: &Path) -> ConfigTree {
        let mut files = BTreeMap::new();
        let mut blobs = HashMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(at) = stack.pop() {
            for entry in std::fs::read_dir(&at).expect("read_dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let content = std::fs::read(&path).expect("read");
                let id = format!("{:x}", fxhash(&content));
                let rel = path.strip_prefix(dir).expect("under");
                files.insert(
                    rel.to_string_lossy().into_owned(),
                    TreeFile::Blob(id.clone()),
                );
                blobs.insert(id, content);
            }
        }
        ConfigTree {
            shown: dir.display().to_string(),
            files,
            read: Box::new(move |id: &str| blobs.get(id).cloned().ok_or_else(|| "no blob".into())),
        }
    }

    fn fxhash(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// The same CONFGIT read from a checkout and from its tree: the same
    /// lorries, hosts and problems (files naming themselves), whatever the
    /// globs (nested, `**`, classes, hidden files, a directory named like a
    /// file, one file reached by two globs, bad files, duplicates).
    #[test]
    fn a_tree_loads_as_its_checkout_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        write(
            d,
            "lorry-controller.conf",
            r#"[{"type": "lorries", "prefix": "up", "interval": "1h", "globs": ["l/*.lorry", "l/[ab].lorry"]},
                {"type": "lorries", "prefix": "deep", "globs": ["**/*.lorry"]},
                {"type": "lorries", "prefix": "one", "globs": ["other/?.lorry", "nothing/*.lorry"]},
                {"type": "gitea", "host": "tea.example", "protocol": "ssh", "prefixmap": {}}]"#,
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
        write(
            d,
            "l/dir.lorry/inside.lorry",
            r#"{"i": {"type": "git", "url": "u"}}"#,
        );
        write(d, "other/x.lorry", r#"{"x": {"type": "git", "url": "u"}}"#);
        write(
            d,
            "other/.h/y.lorry",
            r#"{"y": {"type": "git", "url": "u"}}"#,
        );
        let from_checkout = load_config(d).expect("checkout");
        let cache = BlobCache::default();
        let from_tree = load_config_tree(&tree_of(d), &cache).expect("tree");
        // A blob two sections name is parsed once.
        assert_eq!(from_tree.files_parsed, 5);
        assert_eq!(
            LoadedConfig {
                files_parsed: from_checkout.files_parsed,
                ..from_tree.clone()
            },
            from_checkout
        );
        assert!(from_tree.lorries.len() > 5, "{:?}", from_tree.lorries);
        assert!(from_tree.problems.len() > 3, "{:?}", from_tree.problems);
        assert_eq!(from_tree.hosts.len(), 1);

        // Unchanged blobs are neither read nor parsed again; a changed one is.
        let again = load_config_tree(&tree_of(d), &cache).expect("again");
        assert_eq!(again.files_parsed, 0);
        assert_eq!(
            LoadedConfig {
                files_parsed: from_tree.files_parsed,
                ..again
            },
            from_tree
        );
        write(
            d,
            "l/a.lorry",
            r#"{"a": {"type": "git", "url": "https://a/a"}}"#,
        );
        std::fs::remove_file(d.join("l/c.lorry")).expect("rm");
        let changed = load_config_tree(&tree_of(d), &cache).expect("changed");
        assert_eq!(changed.files_parsed, 1);
        assert_eq!(
            LoadedConfig {
                files_parsed: 0,
                ..changed.clone()
            },
            LoadedConfig {
                files_parsed: 0,
                ..load_config(d).expect("checkout")
            }
        );
        assert!(
            cache.len() <= changed.files_read,
            "only the blobs of this tree are kept"
        );

        // A bad glob and a missing conf file say the same.
        write(
            d,
            "lorry-controller.conf",
            r#"[{"type": "lorries", "prefix": "p", "globs": ["l/[.lorry"]}]"#,
        );
        let checkout = load_config(d).expect_err("bad glob").to_string();
        let tree = load_config_tree(&tree_of(d), &cache)
            .expect_err("bad glob")
            .to_string();
        assert_eq!(tree, checkout);
        std::fs::remove_file(d.join("lorry-controller.conf")).expect("rm");
        let checkout = load_config(d).expect_err("no conf").to_string();
        let tree = load_config_tree(&tree_of(d), &cache)
            .expect_err("no conf")
            .to_string();
        assert_eq!(tree, checkout);
    }

    /// A file out of the tree (a symbolic link's target) is read from the
    /// file system, a blob that cannot be read is a problem naming it.
    #[test]
    fn outside_files_and_unreadable_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside.lorry");
        std::fs::write(&outside, r#"{"o": {"type": "git", "url": "u"}}"#).expect("write");
        let conf = r#"[{"type": "lorries", "prefix": "p", "globs": ["*.lorry"]}]"#;
        let files = BTreeMap::from([
            (
                "lorry-controller.conf".to_owned(),
                TreeFile::Blob("conf".into()),
            ),
            ("o.lorry".to_owned(), TreeFile::Outside(outside)),
            ("gone.lorry".to_owned(), TreeFile::Blob("gone".into())),
            (
                "missing.lorry".to_owned(),
                TreeFile::Outside(dir.path().join("nope")),
            ),
        ]);
        let tree = ConfigTree {
            shown: "confgit".into(),
            files,
            read: Box::new(move |id: &str| match id {
                "conf" => Ok(conf.as_bytes().to_vec()),
                _ => Err("object not found".into()),
            }),
        };
        let loaded = load_config_tree(&tree, &BlobCache::default()).expect("load");
        let paths: Vec<_> = loaded.lorries.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, ["p/o"]);
        let problems: Vec<_> = loaded
            .problems
            .iter()
            .map(|p| (p.file.as_str(), p.problem.starts_with("cannot read")))
            .collect();
        assert_eq!(problems, [("gone.lorry", true), ("missing.lorry", true)]);
    }
}
