//! Disk usage of a lorry's working directory, as `du -s` counts it.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where `lorry` keeps the mirror of `path`: its name with `%` and `/`
/// percent-encoded (see [`lc_base::spec::working_dir_name`]).
pub fn working_dir(working_area: &Path, path: &str) -> PathBuf {
    working_area.join(lc_base::spec::working_dir_name(path))
}

/// Bytes allocated on disk under `root` (512-byte blocks, like `du`),
/// symbolic links not followed, each hard-linked file counted once.
/// Entries that vanish or cannot be read while walking are skipped; only a
/// missing or unreadable `root` is an error.
pub fn disk_usage(root: &Path) -> io::Result<u64> {
    let meta = std::fs::symlink_metadata(root)?;
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut todo = vec![(root.to_owned(), meta)];
    while let Some((path, meta)) = todo.pop() {
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        if !meta.is_dir() {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata() {
                todo.push((entry.path(), meta));
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_once_and_does_not_follow_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("upstream_foo");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        let empty = disk_usage(&root).expect("du");
        std::fs::write(root.join("sub/a"), vec![7u8; 100_000]).expect("write");
        let one = disk_usage(&root).expect("du");
        assert!(one >= empty + 100_000, "{empty} {one}");
        std::fs::hard_link(root.join("sub/a"), root.join("b")).expect("link");
        let outside = dir.path().join("big");
        std::fs::write(&outside, vec![1u8; 300_000]).expect("write");
        std::os::unix::fs::symlink(&outside, root.join("c")).expect("symlink");
        let linked = disk_usage(&root).expect("du");
        assert!(linked < one + 100_000, "{one} {linked}");
        assert!(disk_usage(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn working_dir_flattens_the_path() {
        assert_eq!(
            working_dir(Path::new("/wa"), "upstream/foo/bar"),
            Path::new("/wa/upstream%2Ffoo%2Fbar")
        );
    }
}
