//! The record of the job a minion runs, kept in a small file in the
//! minion's state directory (`--state-dir`) from lorry's start until the
//! webapp has the job's end. A minion killed with SIGKILL leaves it behind;
//! the next minion to start with the same state directory finds it, kills
//! whatever is left of the job and reports the job ended, so the webapp
//! does not keep it running until the ghost timeout.
//!
//! Files are `job-<minion pid>-<job id>.json`. Several minions may share
//! the directory: a file is taken over only when the minion it names (pid
//! and start time) is no longer running, and taking it is a rename, so
//! only one minion takes each.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::containment;

/// What is kept of a running job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: i64,
    pub path: String,
    /// The marker in the environment of the job's processes.
    pub marker: String,
    /// The minion running it: pid and start time (see
    /// [`containment::start_time`]).
    pub minion_pid: u32,
    pub minion_start: u64,
    /// lorry's exit code once known (the report may still be undelivered).
    #[serde(default)]
    pub exit: Option<i32>,
}

impl JobRecord {
    /// A record of `job_id` run by this process.
    pub fn new(job_id: i64, path: &str, marker: &str) -> Self {
        let pid = std::process::id();
        JobRecord {
            job_id,
            path: path.to_owned(),
            marker: marker.to_owned(),
            minion_pid: pid,
            minion_start: containment::start_time(pid).unwrap_or_default(),
            exit: None,
        }
    }

    fn file_name(&self) -> String {
        format!("job-{}-{}.json", self.minion_pid, self.job_id)
    }

    /// The file of this record in `dir`.
    pub fn file(&self, dir: &Path) -> PathBuf {
        dir.join(self.file_name())
    }

    /// Writes the record atomically (temporary file, then rename).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let file = self.file(dir);
        let tmp = dir.join(format!(".{}.tmp", self.file_name()));
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &file)
    }

    /// Removes the record; a missing file is fine.
    pub fn remove(&self, dir: &Path) {
        match std::fs::remove_file(self.file(dir)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %self.file(dir).display(), error = %e, "cannot remove the job record")
            }
        }
    }
}

/// Takes over the records in `dir` left by minions that are no longer
/// running: each is renamed to this process's name and rewritten as this
/// process's, then returned. Unreadable files are logged and left alone.
pub fn take_orphans(dir: &Path) -> Vec<JobRecord> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let own = std::process::id();
    let mut taken = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("job-") || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        let record: JobRecord = match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read a job record; left alone");
                continue;
            }
        };
        if record.minion_pid == own
            || containment::is_running(record.minion_pid, record.minion_start)
        {
            continue;
        }
        let mut mine = record.clone();
        mine.minion_pid = own;
        mine.minion_start = containment::start_time(own).unwrap_or_default();
        // The rename is the claim: of two minions starting at once, one wins.
        if std::fs::rename(&path, mine.file(dir)).is_err() {
            continue;
        }
        if let Err(e) = mine.save(dir) {
            tracing::warn!(file = %mine.file(dir).display(), error = %e, "cannot rewrite a taken-over job record");
        }
        tracing::info!(job_id = record.job_id, path = %record.path, dead_minion = record.minion_pid, "found the job of a minion that is gone");
        taken.push(mine);
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_gone_minions_are_taken_once_and_live_ones_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut gone = JobRecord::new(7, "a/b", "m1");
        // A pid that runs no process: far above any pid_max.
        gone.minion_pid = 4_000_000_000;
        gone.save(dir.path()).expect("save");
        let mut live = JobRecord::new(8, "c/d", "m2");
        live.minion_pid = 1;
        live.minion_start = containment::start_time(1).expect("init runs");
        live.save(dir.path()).expect("save");
        let own = JobRecord::new(9, "e/f", "m3");
        own.save(dir.path()).expect("save");
        std::fs::write(dir.path().join("job-1-1.json"), "{not json").expect("write");

        let taken = take_orphans(dir.path());
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert_eq!(taken[0].job_id, 7);
        assert_eq!(taken[0].minion_pid, std::process::id());
        assert!(taken[0].file(dir.path()).exists());
        assert!(!gone.file(dir.path()).exists());
        assert!(live.file(dir.path()).exists());
        // Now this process's: not taken again.
        assert!(take_orphans(dir.path()).is_empty());
        taken[0].remove(dir.path());
        assert!(!taken[0].file(dir.path()).exists());
    }
}
