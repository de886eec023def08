//! Parsed `.lorry` files kept between reads of CONFGIT.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lc_base::spec::{self, parse_lorry_file};

/// A `.lorry` file parsed: its specs, or why the file as a whole is bad.
pub(super) type ParsedFile = Arc<Result<Vec<spec::SpecEntry>, String>>;

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
    pub(super) fn keep_only(&self, paths: &[PathBuf]) {
        let wanted: std::collections::HashSet<&PathBuf> = paths.iter().collect();
        self.lock().retain(|path, _| wanted.contains(path));
    }

    /// Parses `files` (relative name, path, metadata), answering in the
    /// order given: unchanged ones from the cache, the rest read on all
    /// cores and remembered. Also answers how many were read.
    pub(super) fn read_and_parse(
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
    on_all_cores(files, |(index, rel, path, stamp): ToRead| -> Read {
        let parsed = match std::fs::read_to_string(&path) {
            Ok(text) => parse_text(&text),
            Err(e) => Err(format!("cannot read: {e}")),
        };
        (index, rel, path, stamp, Arc::new(parsed))
    })
}

/// A `.lorry` file's text parsed, or why it is bad.
pub(super) fn parse_text(text: &str) -> Result<Vec<spec::SpecEntry>, String> {
    parse_lorry_file(text).map_err(|e| e.to_string())
}

/// `f` of each of `items` on all cores (in this thread when they are
/// few), answering in the order given.
pub(super) fn on_all_cores<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || items.len() < 64 {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut rest = items.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(chunk).collect());
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| scope.spawn(move || c.into_iter().map(f).collect::<Vec<_>>()))
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::tests::write;
    use crate::config::{LoadedConfig, load_config, load_config_cached};

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
}
