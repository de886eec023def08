//! `backup`: a copy of STATEDB from `POST /1.0/backup`, written atomically.
//!
//! The answer goes into a temporary file (mode 0600: STATEDB holds the
//! hosts' tokens) beside the target, is synced, checked to be a complete
//! SQLite file, and only then renamed over the target; a failure leaves the
//! target as it was and no temporary file behind. Given a directory, the
//! file is named `statedb-<UTC time>.sqlite` in it, and `--keep N` then
//! removes the oldest such files beyond N (the nightly timer's retention).

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::client::{Client, Error};

/// What every SQLite database file starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Names of the files a directory backup writes: `statedb-<stamp>.sqlite`.
const PREFIX: &str = "statedb-";
const SUFFIX: &str = ".sqlite";

/// What a backup did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    pub path: PathBuf,
    pub bytes: u64,
    /// Older backups removed by `--keep`.
    pub removed: Vec<PathBuf>,
}

fn file_err(path: &Path, problem: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_owned(),
        problem: problem.to_string(),
    }
}

/// Fetches a backup into `target` (a file, or a directory to name one in).
pub fn backup(client: &Client, target: &Path, keep: Option<u32>) -> Result<Done, Error> {
    let is_dir = target.is_dir();
    if keep.is_some() && !is_dir {
        return Err(file_err(
            target,
            "--keep needs a directory to keep backups in",
        ));
    }
    let path = if is_dir {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
        target.join(format!("{PREFIX}{stamp}{SUFFIX}"))
    } else {
        target.to_owned()
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| file_err(&path, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.part-{}", std::process::id()));
    let result = fetch_into(client, &tmp).and_then(|bytes| {
        fs::rename(&tmp, &path).map_err(|e| file_err(&path, e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| file_err(&dir, e))?;
        Ok(bytes)
    });
    let bytes = match result {
        Ok(bytes) => bytes,
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
    };
    let removed = match keep {
        Some(keep) => prune(target, keep as usize, &path)?,
        None => Vec::new(),
    };
    Ok(Done {
        path,
        bytes,
        removed,
    })
}

/// Downloads the backup into the new file `tmp`, synced and checked.
fn fetch_into(client: &Client, tmp: &Path) -> Result<u64, Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(|e| file_err(tmp, e))?;
    let (bytes, content_type) = client.download("1.0/backup", &[], &mut file, tmp)?;
    file.sync_all().map_err(|e| file_err(tmp, e))?;
    drop(file);
    let mut magic = [0u8; 16];
    let is_sqlite = File::open(tmp)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == SQLITE_MAGIC;
    if !is_sqlite {
        return Err(Error::BadAnswer {
            url: client.url("1.0/backup", &[]),
            reason: format!(
                "the answer ({content_type:?}, {bytes} bytes) is not an SQLite database"
            ),
        });
    }
    Ok(bytes)
}

/// Removes the oldest `statedb-*.sqlite` in `dir` beyond the newest `keep`
/// (names sort by time); never `just_written`.
fn prune(dir: &Path, keep: usize, just_written: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| file_err(dir, e))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with(PREFIX) && name.ends_with(SUFFIX))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for name in names.into_iter().take(excess) {
        let path = dir.join(&name);
        if path == just_written {
            continue;
        }
        fs::remove_file(&path).map_err(|e| file_err(&path, e))?;
        removed.push(path);
    }
    Ok(removed)
}

/// The report printed after a backup.
pub fn render(done: &Done) -> String {
    let mut out = format!(
        "wrote a backup of STATEDB ({} bytes) to {}\n",
        done.bytes,
        done.path.display()
    );
    for path in &done.removed {
        out.push_str(&format!("removed the older backup {}\n", path.display()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_and_leaves_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = [
            "statedb-20261201T000000Z.sqlite",
            "statedb-20261202T000000Z.sqlite",
            "statedb-20261203T000000Z.sqlite",
            "notes.txt",
            "statedb-x.txt",
        ];
        for name in names {
            fs::write(dir.path().join(name), b"x").expect("write");
        }
        let newest = dir.path().join(names[2]);
        let removed = prune(dir.path(), 2, &newest).expect("prune");
        assert_eq!(removed, vec![dir.path().join(names[0])]);
        for name in &names[1..] {
            assert!(dir.path().join(name).exists(), "{name}");
        }
    }
}
