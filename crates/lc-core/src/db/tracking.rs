//! Which `lorries` rows changed since an answer was built: so an answer
//! of the whole fleet (lc-web's JSON status) is built again from the rows
//! that changed, not from all of them.
//!
//! The writer connection has an SQLite update hook ([`install`]) that
//! notes the rowid of every `lorries` row it inserts, updates or deletes,
//! in every live [`LorryTracker`]. [`StateDb::read_tracked`] begins a
//! read transaction while holding the writer, so every write whose rows
//! were noted has committed (or rolled back) and is in the snapshot, and
//! no write is half done; it hands over the rows noted and forgets them.
//! A rowid noted for a write that rolled back is a row read again for
//! nothing, never a change missed.
//!
//! What the hook cannot see is answered [`LorryChanges::All`]: writes of
//! other connections (another process; seen by the writer's `PRAGMA
//! data_version`, which moves only for other connections' commits), a
//! tracker's first read, and more rows noted than [`MAX_NOTED`] (an answer
//! kept from earlier reads may then find the rows that changed by their
//! fingerprints, [`ReadTx::for_each_row_fingerprint`]). SQLite
//! does not call the hook for rows deleted by the truncate optimisation
//! (`DELETE FROM lorries` without `WHERE`) or by `REPLACE` conflict
//! resolution: nothing writes `lorries` that way
//! (`lorries_are_never_written_where_the_hook_is_blind` checks the
//! sources), and VACUUM, which may renumber rowids, is never run on
//! STATEDB.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use rusqlite::Connection;

use super::sql::Sql;
use super::{ReadTx, StateDb, lock};
use crate::error::Result;

/// Rowids noted for one tracker beyond which it forgets them and answers
/// [`LorryChanges::All`]: a tracker nobody reads does not grow forever.
pub const MAX_NOTED: usize = 1 << 20;

/// What changed in `lorries` since a tracker's last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LorryChanges {
    /// Anything may have: read every row.
    All,
    /// Only these rows (by rowid; each once, in no order) may have been
    /// inserted, updated or deleted.
    Rows(Vec<i64>),
}

#[derive(Debug)]
pub(super) struct Noted {
    all: bool,
    rows: HashSet<i64>,
    /// The writer's `PRAGMA data_version` at the last read.
    writer_version: Option<i64>,
}

/// One reader of the changes (see the module's documentation); made by
/// [`StateDb::lorry_tracker`]. Its first read answers
/// [`LorryChanges::All`].
#[derive(Debug)]
pub struct LorryTracker {
    noted: Arc<Mutex<Noted>>,
}

/// The trackers the writer's hook notes rows in.
pub(super) type Trackers = Arc<Mutex<Vec<Weak<Mutex<Noted>>>>>;

/// Installs the update hook on the writer connection `conn`.
pub(super) fn install(conn: &Connection, trackers: &Trackers) {
    let trackers = Arc::clone(trackers);
    conn.update_hook(Some(
        move |_: rusqlite::hooks::Action, db: &str, table: &str, rowid: i64| {
            if db != "main" || table != "lorries" {
                return;
            }
            for tracker in lock(&trackers).iter().filter_map(Weak::upgrade) {
                let mut noted = lock(&tracker);
                if noted.all {
                    continue;
                }
                noted.rows.insert(rowid);
                if noted.rows.len() > MAX_NOTED {
                    noted.all = true;
                    noted.rows = HashSet::new();
                }
            }
        },
    ));
}

impl StateDb {
    /// A new tracker of the `lorries` rows changed (see `tracking.rs`).
    pub fn lorry_tracker(&self) -> LorryTracker {
        let noted = Arc::new(Mutex::new(Noted {
            all: true,
            rows: HashSet::new(),
            writer_version: None,
        }));
        let mut trackers = lock(&self.trackers);
        trackers.retain(|t| t.strong_count() > 0);
        trackers.push(Arc::downgrade(&noted));
        LorryTracker { noted }
    }

    /// [`StateDb::read`], handing `f` also what changed in `lorries`
    /// since `tracker`'s last read: the transaction's snapshot holds every
    /// change noted and no other change of this process's writer. Waits
    /// for a write running at the time (to begin the snapshot between two).
    pub fn read_tracked<T>(
        &self,
        tracker: &LorryTracker,
        f: impl FnOnce(&ReadTx<'_>, LorryChanges) -> Result<T>,
    ) -> Result<T> {
        self.read(|tx| {
            let changes = {
                let writer = lock(&self.writer);
                let version: i64 =
                    Sql::new(&writer).query_row("PRAGMA data_version", [], |r| r.get(0))?;
                // Begins the snapshot: a read transaction starts at its
                // first read of the database.
                tx.conn
                    .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                        r.get::<_, i64>(0)
                    })?;
                // Another process may have committed between the version
                // read and the snapshot's start, so be in the snapshot
                // unnoted: read the version again, and if it moved, all
                // (keeping the first, so that the next read is all too: the
                // commit may as well have come after the start).
                let after: i64 =
                    Sql::new(&writer).query_row("PRAGMA data_version", [], |r| r.get(0))?;
                let mut noted = lock(&tracker.noted);
                let all = noted.all || noted.writer_version != Some(version) || after != version;
                noted.all = false;
                noted.writer_version = Some(version);
                let rows = std::mem::take(&mut noted.rows);
                if all {
                    LorryChanges::All
                } else {
                    LorryChanges::Rows(rows.into_iter().collect())
                }
            };
            f(tx, changes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::lorries::tests::lorry;
    use super::super::tests::fresh;
    use super::*;

    fn rowid(db: &StateDb, path: &str) -> i64 {
        db.read(|tx| {
            Ok(tx
                .conn
                .query_row("SELECT rowid FROM lorries WHERE path = ?1", [path], |r| {
                    r.get(0)
                })?)
        })
        .expect("rowid")
    }

    fn changes(db: &StateDb, tracker: &LorryTracker) -> LorryChanges {
        match db
            .read_tracked(tracker, |_, changes| Ok(changes))
            .expect("read")
        {
            LorryChanges::Rows(mut rows) => {
                rows.sort_unstable();
                LorryChanges::Rows(rows)
            }
            all => all,
        }
    }

    #[test]
    fn the_rows_this_writer_changed_are_noted_and_anything_else_is_all() {
        let (dir, db) = fresh();
        db.write(|tx| {
            for path in ["a", "b", "c"] {
                tx.upsert_lorry(&lorry(path, 60))?;
            }
            Ok(())
        })
        .expect("seed");
        let tracker = db.lorry_tracker();
        assert_eq!(changes(&db, &tracker), LorryChanges::All, "first read");
        assert_eq!(changes(&db, &tracker), LorryChanges::Rows(vec![]));
        let (a, b) = (rowid(&db, "a"), rowid(&db, "b"));

        // A job started and ended, a move, an unchanged upsert, other tables.
        db.write(|tx| {
            tx.move_to_top("a")?;
            let (id, _) = tx.start_next_job("m", 1)?.expect("a job");
            tx.update_job(
                id,
                &crate::db::JobUpdate {
                    exit: Some(0),
                    ..Default::default()
                },
            )?;
            tx.move_to_bottom("b")?;
            tx.upsert_lorry(&lorry("c", 60))?;
            tx.set_max_jobs(Some(4))
        })
        .expect("write");
        assert_eq!(changes(&db, &tracker), LorryChanges::Rows(vec![a, b]));
        db.write(|tx| tx.set_running_queue(false)).expect("write");
        assert_eq!(changes(&db, &tracker), LorryChanges::Rows(vec![]));

        // Added, removed; and a rolled-back write is noted too (read
        // again for nothing).
        let c = rowid(&db, "c");
        db.write(|tx| {
            tx.upsert_lorry(&lorry("d", 60))?;
            tx.remove_lorry("c")
        })
        .expect("write");
        let d = rowid(&db, "d");
        let mut both = vec![c, d];
        both.sort_unstable();
        assert_eq!(changes(&db, &tracker), LorryChanges::Rows(both));
        let failed: Result<()> = db.write(|tx| {
            tx.move_to_top("b")?;
            Err(crate::Error::UnknownJob(1))
        });
        assert!(failed.is_err());
        assert_eq!(changes(&db, &tracker), LorryChanges::Rows(vec![b]));

        // A second tracker gets its own copy.
        let other_tracker = db.lorry_tracker();
        assert_eq!(changes(&db, &other_tracker), LorryChanges::All);
        db.write(|tx| tx.move_to_top("a")).expect("write");
        assert_eq!(changes(&db, &other_tracker), LorryChanges::Rows(vec![a]));
        assert_eq!(changes(&db, &tracker), LorryChanges::Rows(vec![a]));

        // Another connection's write (another process's) is all.
        let other = StateDb::open(&dir.path().join("state.db")).expect("open again");
        other.write(|tx| tx.move_to_top("b")).expect("other write");
        assert_eq!(changes(&db, &tracker), LorryChanges::All);
        assert_eq!(changes(&db, &tracker), LorryChanges::Rows(vec![]));
        // Even one that touches no lorry: the writer cannot tell.
        other
            .write(|tx| tx.set_max_jobs(Some(1)))
            .expect("other write");
        assert_eq!(changes(&db, &tracker), LorryChanges::All);
    }

    /// Another process committing while a tracked read begins: whatever
    /// the snapshot holds of its commits, the read says all, never only
    /// this process's rows. The other process keeps one lorry's interval
    /// at 1000 + max_jobs; a read answering `Rows` must see the same
    /// interval as the read before it.
    #[test]
    fn a_commit_racing_the_snapshots_start_is_all() {
        let (dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("other", 1000)))
            .expect("seed");
        let tracker = db.lorry_tracker();
        let interval = |tx: &crate::db::ReadTx<'_>| -> Result<i64> {
            Ok(tx.conn.query_row(
                "SELECT interval FROM lorries WHERE path = 'other'",
                [],
                |r| r.get(0),
            )?)
        };
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = Arc::clone(&stop);
            let file = dir.path().join("state.db");
            std::thread::spawn(move || {
                let other = StateDb::open(&file).expect("open again");
                let mut i = 0_i64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    other
                        .write(|tx| tx.upsert_lorry(&lorry("other", 1000 + i)))
                        .expect("other write");
                    // Commits at uneven moments, now and then inside the
                    // few microseconds of the read's start.
                    std::thread::sleep(std::time::Duration::from_micros(
                        (i as u64).wrapping_mul(2_654_435_761) % 700,
                    ));
                }
                i
            })
        };
        let mut last = None;
        let mut wrong = Vec::new();
        for read in 0..20_000 {
            let (changes, seen) = db
                .read_tracked(&tracker, |tx, changes| Ok((changes, interval(tx)?)))
                .expect("read");
            if matches!(changes, LorryChanges::Rows(_)) && last != Some(seen) {
                wrong.push((read, last, seen));
            }
            last = Some(seen);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let commits = writer.join().expect("writer");
        assert!(commits > 10, "{commits} commits");
        assert!(wrong.is_empty(), "{commits} commits, unnoted: {wrong:?}");
    }

    /// A checkpoint of the checkpointer thread (PASSIVE, on a connection
    /// of its own) is no change: it does not make every later read all.
    /// (A TRUNCATE one, run only as STATEDB is closed, is: the writer's
    /// `data_version` moves.)
    #[test]
    fn a_checkpoint_is_not_a_change() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 60)))
            .expect("seed");
        let tracker = db.lorry_tracker();
        assert_eq!(changes(&db, &tracker), LorryChanges::All);
        db.write(|tx| tx.move_to_top("a")).expect("write");
        let a = rowid(&db, "a");
        let checkpointer =
            super::super::connect(db.path(), super::super::Access::ReadWrite).expect("connect");
        for round in 0..2 {
            Sql::new(&checkpointer)
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .expect("checkpoint");
            assert_eq!(
                changes(&db, &tracker),
                LorryChanges::Rows(vec![a]),
                "{round}"
            );
            // The next write starts the WAL again.
            db.write(|tx| tx.move_to_bottom("a")).expect("write");
            assert_eq!(
                changes(&db, &tracker),
                LorryChanges::Rows(vec![a]),
                "{round}"
            );
            db.write(|tx| tx.move_to_top("a")).expect("write");
        }
    }

    /// The hook cannot see rows deleted by the truncate optimisation or
    /// by `REPLACE` conflict resolution: no statement of STATEDB writes
    /// `lorries` so.
    #[test]
    fn lorries_are_never_written_where_the_hook_is_blind() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut stack = vec![dir];
        let mut seen = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.ends_with("tracking.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read");
                let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
                seen += 1;
                for blind in [
                    "REPLACE INTO lorries",
                    "OR REPLACE lorries",
                    "DELETE FROM lorries\"",
                    "DELETE FROM lorries;",
                    "VACUUM\"",
                ] {
                    assert!(!flat.contains(blind), "{}: {blind}", path.display());
                }
            }
        }
        assert!(seen > 10);
    }
}
