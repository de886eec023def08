//! Moving the WAL into the database file, off the request path.
//!
//! A checkpoint copies pages and syncs files; done on commit (SQLite's
//! default) it stalls whichever request happens to trigger it, and the sync
//! of the WAL holds up the writer's appends. So no connection checkpoints on
//! commit (`wal_autocheckpoint = 0`) and a thread of its own does it, when
//! the writer has been idle for a moment, or when the WAL has grown large or
//! old under constant load.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::sql::Sql;

use crate::error::{Error, Result};

/// How often the thread looks.
const TICK: Duration = Duration::from_millis(100);
/// Idle time after the last write that makes a good moment.
const IDLE: Duration = Duration::from_millis(250);
/// Under constant load, checkpoint anyway when the WAL has grown this much
/// since the last checkpoint... (also the size a WAL file is cut back to
/// when SQLite starts writing it from the start again:
/// `journal_size_limit`, set in `connect`).
pub(super) const MAX_WAL_BYTES: u64 = 64 * 1024 * 1024;
/// ... or when writes have waited this long.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A failing checkpoint is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Checkpointer {
    /// Dropping this ends the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Drop for Checkpointer {
    /// Ends the thread and waits for it, so that its connection is closed
    /// when STATEDB is: a restore right after sees no other user.
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    started: Instant,
    /// Number of committed write transactions.
    writes: AtomicU64,
    /// When the last one committed, in milliseconds since `started`.
    last_write_ms: AtomicU64,
}

impl Checkpointer {
    pub(super) fn start(path: &Path, conn: Connection) -> Result<Checkpointer> {
        let shared = Arc::new(Shared {
            started: Instant::now(),
            writes: AtomicU64::new(0),
            last_write_ms: AtomicU64::new(0),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("statedb-checkpoint".into())
            .spawn(move || run(&conn, &wal, &thread_shared, &stopped))
            .map_err(Error::Thread)?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
            shared,
        })
    }

    /// Called after every committed write transaction.
    pub(super) fn note_write(&self) {
        let ms = self.shared.started.elapsed().as_millis() as u64;
        self.shared.last_write_ms.store(ms, Ordering::Relaxed);
        self.shared.writes.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(conn: &Connection, wal: &Path, shared: &Shared, stopped: &mpsc::Receiver<()>) {
    let mut checkpointed_writes = 0;
    let mut last_checkpoint = Instant::now();
    let mut last_failure_logged = None;
    let wal_len = || std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
    let mut wal_len_at_checkpoint = wal_len();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
        let writes = shared.writes.load(Ordering::Relaxed);
        if writes == checkpointed_writes {
            continue;
        }
        let now_ms = shared.started.elapsed().as_millis() as u64;
        let idle = now_ms.saturating_sub(shared.last_write_ms.load(Ordering::Relaxed))
            >= IDLE.as_millis() as u64;
        let large = grown_too_much(wal_len(), wal_len_at_checkpoint);
        if idle || large || last_checkpoint.elapsed() >= MAX_DELAY {
            match Sql::new(conn).query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                Ok(()) => {
                    checkpointed_writes = writes;
                    wal_len_at_checkpoint = wal_len();
                }
                Err(err) => {
                    // Once a minute at most: a full disk fails every try.
                    if last_failure_logged.is_none_or(|at: Instant| at.elapsed() >= LOG_EVERY) {
                        tracing::warn!(%err, "STATEDB checkpoint failed");
                        last_failure_logged = Some(Instant::now());
                    }
                }
            }
            last_checkpoint = Instant::now();
        }
    }
    // Leave a small WAL behind when the database is closed.
    if let Err(err) = Sql::new(conn).query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::debug!(%err, "final STATEDB checkpoint failed");
    }
}

/// Whether a WAL now `len` bytes long, `at_checkpoint` after the last
/// checkpoint, has grown enough to checkpoint under load. Its growth, not
/// its length: a checkpoint does not shrink the file (SQLite writes it
/// again from the start), so a length once past the limit would call for a
/// checkpoint, and a sync, at every tick for as long as writes go on.
fn grown_too_much(len: u64, at_checkpoint: u64) -> bool {
    len >= at_checkpoint.saturating_add(MAX_WAL_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_wal_calls_for_a_checkpoint_once_not_at_every_tick() {
        // Grown by the limit from an empty WAL: due.
        assert!(grown_too_much(MAX_WAL_BYTES, 0));
        assert!(!grown_too_much(MAX_WAL_BYTES - 1, 0));
        // Just checkpointed, the file as long as before: not due again
        // until it has grown by the limit once more.
        let big = 3 * MAX_WAL_BYTES;
        assert!(!grown_too_much(big, big));
        assert!(!grown_too_much(big + MAX_WAL_BYTES - 1, big));
        assert!(grown_too_much(big + MAX_WAL_BYTES, big));
    }
}
