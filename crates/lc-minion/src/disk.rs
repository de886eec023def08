//! Disk usage of a lorry's working directory, as `du -s` counts it, and
//! the free space of the working area's file system (`--min-free-disk`).

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

/// Bytes available to unprivileged users on the file system holding `dir`.
pub fn free_space(dir: &Path) -> io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Why no job may be asked for: the working area's file system has less
/// than `min` bytes free (or cannot be measured). `None` when there is
/// room, when `min` is 0, or when the working area is not known.
pub fn low_disk(working_area: Option<&Path>, min: u64) -> Option<String> {
    let area = working_area.filter(|_| min > 0)?;
    // The working area may not exist yet (lorry creates it): measure the
    // nearest existing ancestor, which is the file system it will be on.
    let existing = area.ancestors().find(|dir| dir.exists()).unwrap_or(area);
    match free_space(existing) {
        Ok(free) if free >= min => None,
        Ok(free) => Some(format!(
            "the working area {} has {} free, less than --min-free-disk {}: \
             no job is asked for until space is freed",
            area.display(),
            size(free),
            size(min)
        )),
        Err(e) => Some(format!(
            "cannot measure the free space of the working area {}: {e}; \
             no job is asked for",
            area.display()
        )),
    }
}

/// A failed job's closing line when its output said a disk was full
/// (`said_full`) or the working area's file system is now below
/// `--min-free-disk`: the cause, in words an admin can search for.
pub fn full_disk_note(working_area: Option<&Path>, min: u64, said_full: bool) -> Option<String> {
    let free = working_area.and_then(|area| {
        let existing = area.ancestors().find(|dir| dir.exists()).unwrap_or(area);
        Some((area, free_space(existing).ok()?))
    });
    match free {
        Some((area, free)) if said_full || free < min.max(1) => Some(format!(
            "lorry-controller-minion: the job ran out of disk space (ENOSPC, No space left on device); \
             the working area {} has {} free, --min-free-disk is {}\n",
            area.display(),
            size(free),
            size(min)
        )),
        None if said_full => Some(
            "lorry-controller-minion: the job ran out of disk space (ENOSPC, No space left on device)\n"
                .to_owned(),
        ),
        _ => None,
    }
}

fn size(bytes: u64) -> String {
    lc_base::timefmt::bytes(Some(i64::try_from(bytes).unwrap_or(i64::MAX)))
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
    fn low_disk_names_the_area_and_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let area = dir.path().join("not-yet/created");
        assert_eq!(low_disk(Some(&area), 1), None);
        assert_eq!(low_disk(Some(&area), 0), None);
        assert_eq!(low_disk(None, u64::MAX), None);
        let why = low_disk(Some(&area), u64::MAX).expect("low");
        assert!(why.contains("--min-free-disk"), "{why}");
        assert!(why.contains("not-yet/created"), "{why}");
        let note = full_disk_note(Some(&area), u64::MAX, false).expect("note");
        assert!(
            note.contains("ENOSPC") && note.contains("not-yet/created"),
            "{note}"
        );
        assert_eq!(full_disk_note(Some(&area), 1, false), None);
        assert!(full_disk_note(Some(&area), 1, true).is_some());
        assert!(full_disk_note(None, 1, true).is_some_and(|n| n.contains("ENOSPC")));
        assert_eq!(full_disk_note(None, u64::MAX, false), None);
    }

    #[test]
    fn working_dir_flattens_the_path() {
        assert_eq!(
            working_dir(Path::new("/wa"), "upstream/foo/bar"),
            Path::new("/wa/upstream%2Ffoo%2Fbar")
        );
    }
}
