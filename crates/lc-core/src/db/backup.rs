//! Backups of STATEDB taken while the webapp runs, and restoring one with
//! the webapp stopped.
//!
//! A backup is `VACUUM INTO` a new file: SQLite reads the database in one
//! read transaction (WAL lets writers go on meanwhile) and writes a compact
//! copy holding exactly the transactions committed before it began. Copying
//! the file (and its `-wal`) by hand is not safe while the webapp writes.
//!
//! Restoring checks a copy of the backup placed beside STATEDB
//! (`PRAGMA integrity_check`, a schema this binary knows, not newer than
//! it), then renames it over STATEDB, so STATEDB is at every moment either
//! the old database or the checked new one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::sql::Sql;
use super::{Access, MIGRATIONS, StateDb, connect};
use crate::error::{Error, Result};

/// The first 16 bytes of every SQLite database file.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The schema version this binary brings STATEDB to (`PRAGMA user_version`).
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// What a checked backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Its schema version; older than [`schema_version`] is fine (the
    /// webapp migrates it on its next start).
    pub schema_version: i64,
    pub lorries: i64,
    pub jobs: i64,
}

impl StateDb {
    /// Writes a consistent copy of STATEDB to `dest`, a file that must not
    /// exist yet, in a directory only the webapp can read (the copy holds
    /// the hosts' tokens). Runs on a connection of its own, so jobs are
    /// handed out and updated while it copies.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        let problem = |problem: String| Error::Backup {
            path: dest.to_owned(),
            problem,
        };
        let name = dest
            .to_str()
            .ok_or_else(|| problem("the path is not UTF-8".to_owned()))?;
        let conn = connect(&self.path, Access::ReadWrite)?;
        Sql::new(&conn).execute("VACUUM INTO ?1", [name])?;
        Ok(())
    }
}

fn backup_err(path: &Path, problem: impl Into<String>) -> Error {
    Error::Backup {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Checks the database at `path` as a STATEDB backup this binary can use:
/// an SQLite file, `integrity_check` ok, a schema version from 1 to ours.
/// Opens it read-write (a database in WAL mode needs that even to be
/// read), so check a copy, as [`restore`] does.
pub fn check_backup(path: &Path) -> Result<BackupInfo> {
    let mut magic = [0u8; 16];
    let read = File::open(path).and_then(|mut f| io::Read::read_exact(&mut f, &mut magic));
    match read {
        Ok(()) if &magic == SQLITE_MAGIC => {}
        Ok(()) => return Err(backup_err(path, "not an SQLite database")),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(backup_err(path, "not an SQLite database (too short)"));
        }
        Err(e) => return Err(backup_err(path, e.to_string())),
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| backup_err(path, e.to_string()))?;
    let sql = Sql::new(&conn);
    let mut problems = Vec::new();
    {
        let mut stmt = sql
            .prepare("PRAGMA integrity_check")
            .map_err(|e| backup_err(path, e.to_string()))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| backup_err(path, e.to_string()))?;
        for row in rows {
            problems.push(row.map_err(|e| backup_err(path, e.to_string()))?);
        }
    }
    if problems != ["ok"] {
        problems.truncate(5);
        return Err(backup_err(
            path,
            format!("integrity check failed: {}", problems.join("; ")),
        ));
    }
    let version: i64 = sql
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| backup_err(path, e.to_string()))?;
    if version < 1 {
        return Err(backup_err(path, "not a STATEDB (schema version 0)"));
    }
    if version > schema_version() {
        return Err(backup_err(
            path,
            format!(
                "schema version {version} is newer than this binary's {}: restore it with the \
                 lorry-controller version that wrote it",
                schema_version()
            ),
        ));
    }
    let count = |sql_text: &str| -> Result<i64> {
        sql.query_row(sql_text, [], |r| r.get(0))
            .map_err(|e| backup_err(path, format!("not a STATEDB: {e}")))
    };
    Ok(BackupInfo {
        schema_version: version,
        lorries: count("SELECT count(*) FROM lorries")?,
        jobs: count("SELECT count(*) FROM jobs")?,
    })
}

/// Puts the backup at `backup` in place as the STATEDB at `statedb`, with
/// the webapp stopped: copied beside it (mode 0600), checked, synced, and
/// renamed over it. A STATEDB in use by a webapp is refused; its WAL is
/// folded in first so no old log is left to replay onto the new file.
pub fn restore(backup: &Path, statedb: &Path) -> Result<BackupInfo> {
    let dir = match statedb.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = statedb
        .file_name()
        .ok_or_else(|| backup_err(statedb, "not a file name"))?;
    let mut tmp_name = file_name.to_owned();
    tmp_name.push(".restoring");
    let tmp = dir.join(tmp_name);
    let io_err = |path: &Path, e: io::Error| backup_err(path, e.to_string());
    // Left over from a restore that was interrupted: never a live database.
    for leftover in sidecars(&tmp) {
        remove_if_present(&leftover).map_err(|e| io_err(&leftover, e))?;
    }
    {
        let mut from = File::open(backup).map_err(|e| io_err(backup, e))?;
        let mut to = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err(&tmp, e))?;
        io::copy(&mut from, &mut to).map_err(|e| io_err(&tmp, e))?;
        to.sync_all().map_err(|e| io_err(&tmp, e))?;
    }
    let info = match check_backup(&tmp).and_then(|info| {
        // The copy checked is the file that goes in place; leave it in the
        // webapp's journal mode, with nothing pending in a log of its own.
        let conn = connect(&tmp, Access::ReadWrite)?;
        drop(conn);
        Ok(info)
    }) {
        Ok(info) => info,
        Err(err) => {
            for leftover in sidecars(&tmp) {
                let _ = remove_if_present(&leftover);
            }
            return Err(match err {
                Error::Backup { problem, .. } => backup_err(backup, problem),
                other => other,
            });
        }
    };
    if statedb.exists() {
        // Job ids are never reused, not even across a restore: a minion
        // still running a job begun after the backup must not find its id
        // given to another job. Nor are event ids: a consumer that read
        // up to an event recorded after the backup (`since`,
        // `Last-Event-ID`) must not miss the events recorded next.
        let last = fold_in_wal(statedb)?;
        let kept = match last.job {
            Some(last_job) => keep_job_ids_ahead(&tmp, last_job),
            None => Ok(()),
        }
        .and_then(|()| match last.event {
            Some(last_event) => keep_event_ids_ahead(&tmp, last_event),
            None => Ok(()),
        });
        if let Err(err) = kept {
            for leftover in sidecars(&tmp) {
                let _ = remove_if_present(&leftover);
            }
            return Err(err);
        }
    }
    fs::rename(&tmp, statedb).map_err(|e| io_err(statedb, e))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(&dir, e))?;
    for leftover in sidecars(&tmp) {
        let _ = remove_if_present(&leftover);
    }
    Ok(info)
}

/// Makes the next job id of the database at `path` follow `last_job`.
fn keep_job_ids_ahead(path: &Path, last_job: i64) -> Result<()> {
    let conn = connect(path, Access::ReadWrite)?;
    Sql::new(&conn).execute(
        "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'jobs'",
        [last_job],
    )?;
    Sql::new(&conn).execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'jobs', ?1
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'jobs')",
        [last_job],
    )?;
    Ok(())
}

/// Makes the next event id of the database at `path` follow `last_event`:
/// its `event_id_floor` (migration 18) is raised to it, or, in a backup of
/// an older schema, the `sqlite_sequence` value that migration 18 turns
/// into the floor (and that AUTOINCREMENT, before it, starts after).
fn keep_event_ids_ahead(path: &Path, last_event: i64) -> Result<()> {
    let conn = connect(path, Access::ReadWrite)?;
    let sql = Sql::new(&conn);
    let has_floor: i64 = sql.query_row(
        "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'event_id_floor'",
        [],
        |r| r.get(0),
    )?;
    if has_floor > 0 {
        sql.execute(
            "UPDATE event_id_floor SET floor = max(floor, ?1) WHERE id = 1",
            [last_event],
        )?;
    } else {
        sql.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'events'",
            [last_event],
        )?;
        sql.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', ?1
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')",
            [last_event],
        )?;
    }
    Ok(())
}

/// The last ids a STATEDB gave out, where it can tell.
struct LastIds {
    job: Option<i64>,
    event: Option<i64>,
}

/// Checkpoints the WAL of the STATEDB at `path` into it and truncates it;
/// refused when another process has the database open (a running webapp).
/// Answers the last job and event ids it gave out, if it can tell.
fn fold_in_wal(path: &Path) -> Result<LastIds> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| backup_err(path, e.to_string()))?;
    conn.busy_timeout(Duration::ZERO)?;
    let sql = Sql::new(&conn);
    // In exclusive locking mode the first access takes the database's
    // exclusive lock, which any other open connection of a WAL database
    // prevents.
    let in_use = || {
        backup_err(
            path,
            "STATEDB is in use: stop the webapp before restoring (systemctl stop \
             lorry-controller-webapp)",
        )
    };
    sql.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| {
        r.get::<_, String>(0)
    })?;
    sql.execute("BEGIN EXCLUSIVE", []).map_err(|_| in_use())?;
    sql.execute("COMMIT", [])?;
    sql.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|_| in_use())?;
    // An unreadable old STATEDB (the reason for restoring, perhaps) has no say.
    let last_job = sql
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok();
    // The newest event's id, the floor (migration 18 on) and the
    // AUTOINCREMENT value (before it), whichever this schema has.
    let last_event = [
        "SELECT MAX(id) FROM events",
        "SELECT floor FROM event_id_floor WHERE id = 1",
        "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
    ]
    .iter()
    .filter_map(|query| {
        sql.query_row(query, [], |r| r.get::<_, Option<i64>>(0))
            .ok()
            .flatten()
    })
    .max();
    conn.close()
        .map_err(|(_, e)| backup_err(path, e.to_string()))?;
    Ok(LastIds {
        job: last_job,
        event: last_event,
    })
}

/// SQLite's files beside a database: itself, its WAL and shared memory.
fn sidecars(path: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_owned(), with("-wal"), with("-shm")]
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn db_with_a_job(dir: &Path) -> StateDb {
        let db = StateDb::open(&dir.join("state.db")).expect("open");
        db.write(|tx| tx.set_max_jobs(Some(7))).expect("write");
        db
    }

    #[test]
    fn a_backup_taken_while_open_restores_to_the_same_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db_with_a_job(dir.path());
        let copy = dir.path().join("copy.db");
        db.backup_to(&copy).expect("backup");
        // Changes after the backup are not in it.
        db.write(|tx| tx.set_max_jobs(Some(9))).expect("write");
        let info = check_backup(&copy).expect("check");
        assert_eq!(info.schema_version, schema_version());
        drop(db);
        let restored = restore(&copy, &dir.path().join("state.db")).expect("restore");
        assert_eq!(restored, info);
        let mode = fs::metadata(dir.path().join("state.db"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let db = StateDb::open(&dir.path().join("state.db")).expect("reopen");
        assert_eq!(db.read(|tx| tx.max_jobs()).expect("read"), Some(7));
        assert!(!dir.path().join("state.db.restoring").exists());
    }

    /// Events recorded after the backup keep their ids for themselves: the
    /// restored STATEDB's next event comes after them, also from a backup
    /// of the schema before migration 18.
    #[test]
    fn event_ids_stay_ahead_across_a_restore() {
        let dir = tempfile::tempdir().expect("tempdir");
        let statedb = dir.path().join("state.db");
        let toggle = |db: &StateDb, times: usize| {
            for _ in 0..times {
                db.write(|tx| tx.set_running_queue(false)).expect("stop");
                db.write(|tx| tx.set_running_queue(true)).expect("start");
            }
        };
        let newest = |db: &StateDb| db.read(|tx| tx.last_event_id()).expect("newest");
        let db = StateDb::open(&statedb).expect("open");
        toggle(&db, 1);
        let copy = dir.path().join("copy.db");
        db.backup_to(&copy).expect("backup");
        toggle(&db, 2);
        assert_eq!(newest(&db), 6);
        drop(db);
        restore(&copy, &statedb).expect("restore");
        let db = StateDb::open(&statedb).expect("reopen");
        assert_eq!(newest(&db), 2, "the backup's events");
        toggle(&db, 1);
        let ids: Vec<i64> = db
            .read(|tx| {
                tx.events(&super::super::EventFilter {
                    limit: 10,
                    ..super::super::EventFilter::default()
                })
            })
            .expect("events")
            .0
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [1, 2, 7, 8]);
        drop(db);

        // A backup of schema 17 (events with AUTOINCREMENT).
        let old = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&old).expect("open");
            rusqlite_migration::Migrations::from_slice(&MIGRATIONS[..17])
                .to_latest(&mut conn)
                .expect("the schema before");
        }
        restore(&old, &statedb).expect("restore the old one");
        let db = StateDb::open(&statedb).expect("upgrade");
        toggle(&db, 1);
        assert_eq!(newest(&db), 10, "after the 8 of the STATEDB replaced");
    }

    #[test]
    fn the_backup_target_must_not_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db_with_a_job(dir.path());
        let copy = dir.path().join("copy.db");
        fs::write(&copy, b"precious").expect("write");
        assert!(db.backup_to(&copy).is_err());
        assert_eq!(fs::read(&copy).expect("read"), b"precious");
    }

    #[test]
    fn restore_refuses_a_statedb_in_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = db_with_a_job(dir.path());
        let copy = dir.path().join("copy.db");
        db.backup_to(&copy).expect("backup");
        db.write(|tx| tx.set_max_jobs(Some(9))).expect("write");
        let err = restore(&copy, &dir.path().join("state.db")).expect_err("in use");
        assert!(err.to_string().contains("stop the webapp"), "{err}");
        // Untouched: the webapp goes on with its own state.
        assert_eq!(db.read(|tx| tx.max_jobs()).expect("read"), Some(9));
    }

    #[test]
    fn restore_refuses_what_is_not_a_usable_statedb() {
        let dir = tempfile::tempdir().expect("tempdir");
        let statedb = dir.path().join("state.db");
        drop(db_with_a_job(dir.path()));
        let bad = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            fs::write(&path, bytes).expect("write");
            path
        };
        let cases = [
            (
                bad("text", b"hello, this is not a database at all"),
                "not an SQLite",
            ),
            (bad("short", b"SQLite"), "too short"),
        ];
        for (path, says) in &cases {
            let err = restore(path, &statedb).expect_err("refused");
            assert!(err.to_string().contains(says), "{err}");
            assert!(err.to_string().contains(&path.display().to_string()));
        }
        // A database of a newer schema.
        let newer = dir.path().join("newer.db");
        {
            let db = StateDb::open(&dir.path().join("new-state.db")).expect("open");
            db.backup_to(&newer).expect("backup");
            let conn = Connection::open(&newer).expect("open");
            conn.pragma_update(None, "user_version", schema_version() + 1)
                .expect("version");
        }
        let err = restore(&newer, &statedb).expect_err("newer");
        assert!(err.to_string().contains("newer than this binary"), "{err}");
        // An SQLite file that is not a STATEDB.
        let other = dir.path().join("other.db");
        {
            let conn = Connection::open(&other).expect("open");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
        }
        let err = restore(&other, &statedb).expect_err("other");
        assert!(err.to_string().contains("not a STATEDB"), "{err}");
        // A damaged database: a page of the middle overwritten.
        let damaged = dir.path().join("damaged.db");
        StateDb::open(&dir.path().join("other-state.db"))
            .expect("open")
            .backup_to(&damaged)
            .expect("backup");
        let mut bytes = fs::read(&damaged).expect("read");
        let len = bytes.len();
        for b in &mut bytes[len / 2..len / 2 + 4096] {
            *b = 0x55;
        }
        fs::write(&damaged, &bytes).expect("write");
        assert!(restore(&damaged, &statedb).is_err());
        // Nothing of any of them reached STATEDB.
        let db = StateDb::open(&statedb).expect("open");
        assert_eq!(db.read(|tx| tx.max_jobs()).expect("read"), Some(7));
    }
}
