//! Errors of the domain. Each variant says what failed on which input; the
//! web layer maps the "you asked for something wrong" ones to 4xx.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no lorry with path {0:?}")]
    UnknownLorry(String),
    #[error("no job with id {0}")]
    UnknownJob(i64),
    #[error("no snapshot named {0:?}")]
    UnknownSnapshot(String),
    #[error("a snapshot named {0:?} exists already")]
    SnapshotExists(String),
    #[error("snapshot {snapshot:?} cannot be deleted: channel {channel:?} points at it")]
    SnapshotInUse { snapshot: String, channel: String },
    #[error("no channel named {0:?}")]
    UnknownChannel(String),
    #[error("job {0} has already ended")]
    JobEnded(i64),
    #[error("job {0} is still running")]
    JobRunning(i64),
    #[error("invalid value for {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("cannot open STATEDB {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot migrate STATEDB {path}: {source}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    #[error("cannot start the STATEDB checkpointer thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("STATEDB: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A backup that cannot be written, read, checked or restored.
    #[error("STATEDB backup {path}: {problem}")]
    Backup { path: PathBuf, problem: String },
    #[error("STATEDB holds a malformed value: {0}")]
    Corrupt(String),
}

impl Error {
    /// Whether SQLite could not write because its disk is full (ENOSPC).
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self,
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }

    /// Whether the error was caused by what the caller asked, rather than by the service.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::UnknownLorry(_)
                | Error::UnknownJob(_)
                | Error::UnknownSnapshot(_)
                | Error::SnapshotExists(_)
                | Error::SnapshotInUse { .. }
                | Error::UnknownChannel(_)
                | Error::JobEnded(_)
                | Error::JobRunning(_)
                | Error::Invalid { .. }
        )
    }
}
