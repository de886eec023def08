//! STATEDB: the webapp's persistent state in one SQLite file.
//!
//! All SQL of the project lives in this module. Every state transition runs
//! as one `BEGIN IMMEDIATE` transaction on the single writer connection, so
//! decisions such as "which lorry does this minion get" are serialised by
//! construction: two minions asking at once never get the same lorry.
//! Readers use a small pool of their own connections (WAL lets them run
//! beside the writer).
//!
//! Reading and writing are different types: [`StateDb::read`] hands out a
//! [`ReadTx`], which has no method that writes, on a connection opened with
//! `PRAGMA query_only`; [`StateDb::write`] hands out a [`WriteTx`], which
//! derefs to a `ReadTx` for its reads. A write attempted in a read
//! transaction fails instead of being rolled back unnoticed.
//!
//! Callers never hold a connection across an `.await`: the web layer calls
//! [`StateDb::write`] and [`StateDb::read`] from blocking tasks.

pub mod backup;
mod batches;
mod checkpoint;
mod config_sync;
mod events;
mod fingerprints;
mod fleet;
mod host_jobs;
mod host_sync;
mod hosts;
mod jobs;
mod lorries;
mod manifest;
mod metrics;
mod provenance;
mod snapshots;
mod sql;
mod stats;
pub mod status;
mod tracking;
mod webhooks;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use rusqlite_migration::{M, Migrations};

use crate::error::{Error, Result};
use checkpoint::Checkpointer;
use sql::Sql;

pub use batches::{BATCH_TIMEOUT, Handout};
pub use config_sync::ConfigPlan;
pub use events::EventFilter;
pub use fingerprints::{ACTIVITY_MARGIN, DEFAULT_FULL_CHECK_EVERY};
pub use fleet::{Fleet, FleetHealth, FleetRow, LastExit};
pub use host_sync::{
    GeneratedLorry, HostSyncOutcome, HostToList, ReportedActivity, UpstreamMetadata,
};
pub use jobs::{DEFAULT_JOB_OUTPUT_MAX, GHOST_EXIT, JobUpdate, LAST_RUN_ERROR_MAX};
pub use lorries::{NewLorry, QueueRow, queue_place};
pub use manifest::PublishedMirror;
pub use metrics::{ERROR_STREAK, FleetSnapshot, LorryHealth};
pub use provenance::{HISTORY_MAX_LIMIT, Submodule};
pub use snapshots::{PIN_PREFIX, PinsTodo, Retention, check_snapshot_name, pin_name};
pub use stats::{JOB_STATS_MAX_AGE, JobCounts};
pub use tracking::{LorryChanges, LorryTracker};
pub use webhooks::WebhookRow;

/// The schema, one entry per file in `migrations/`, applied in order at start-up.
const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../../../migrations/0001_initial.sql")),
    M::up(include_str!("../../../../migrations/0002_lorry_health.sql")),
    M::up(include_str!(
        "../../../../migrations/0003_upstream_hosts.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/0004_one_job_per_lorry.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/0005_manifest_fingerprints.sql"
    )),
    M::up(include_str!("../../../../migrations/0006_job_results.sql")),
    M::up(include_str!(
        "../../../../migrations/0007_job_output_cap.sql"
    )),
    M::up(include_str!("../../../../migrations/0008_events.sql")),
    M::up(include_str!("../../../../migrations/0009_ref_ledger.sql")),
    M::up(include_str!("../../../../migrations/0010_snapshots.sql")),
    M::up(include_str!("../../../../migrations/0011_channels.sql")),
    M::up(include_str!("../../../../migrations/0012_webhooks.sql")),
    M::up(include_str!("../../../../migrations/0013_job_stats.sql")),
    M::up(include_str!(
        "../../../../migrations/0014_activity_hints.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/0015_ref_ledger_by_time.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/0016_checked_without_job.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/0017_ref_ledger_by_ref.sql"
    )),
    M::up(include_str!(
        "../../../../migrations/0018_event_ids_without_autoincrement.sql"
    )),
    M::up(include_str!("../../../../migrations/0019_batch_checks.sql")),
];

/// How long a connection waits for another one's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reader connections kept open for reuse.
const READER_POOL: usize = 8;

/// An open STATEDB.
pub struct StateDb {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    checkpointer: Checkpointer,
    /// The time tests pretend it is (`--debug-allow-pretend-time`). Kept
    /// in memory only, so it never outlives the process that was allowed
    /// to set it.
    pretended: Mutex<Option<i64>>,
    /// Bytes of output kept per job (`--job-output-max`).
    job_output_max: AtomicU64,
    /// No event is recorded (`--debug-bench-without-events`: the baseline
    /// of `benches/event_cost.rs`, nothing else).
    without_events: AtomicBool,
    /// The highest event id given before migration 18, read once at open
    /// (see `events.rs`).
    event_id_floor: i64,
    /// A connection that only asks `PRAGMA data_version`: see
    /// [`StateDb::generation`].
    version_probe: Mutex<Connection>,
    /// Those the writer's update hook notes changed `lorries` rows in
    /// (`tracking.rs`).
    trackers: tracking::Trackers,
}

/// One read transaction on STATEDB, with the time it runs at: it sees a
/// single consistent state and cannot change it.
///
/// `now` is read once when the transaction starts: the pretended time when
/// tests have set one ([`StateDb::set_pretend_time`]), otherwise the real
/// clock.
pub struct ReadTx<'c> {
    conn: Sql<'c>,
    now: i64,
}

/// One write transaction on STATEDB: every method that changes state is
/// here; reads come from the [`ReadTx`] it derefs to.
pub struct WriteTx<'c> {
    read: ReadTx<'c>,
    /// Bytes of output kept per job.
    job_output_max: u64,
    /// Whether [`WriteTx::record_event`] records (see `events.rs`).
    record_events: bool,
    /// [`StateDb`]'s `event_id_floor`.
    event_id_floor: i64,
}

impl<'c> Deref for WriteTx<'c> {
    type Target = ReadTx<'c>;

    fn deref(&self) -> &ReadTx<'c> {
        &self.read
    }
}

impl StateDb {
    /// Opens (creating if needed) the STATEDB at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<StateDb> {
        create_private(path);
        let mut writer = connect(path, Access::ReadWrite)?;
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut writer)
            .map_err(|source| Error::Migrate {
                path: path.to_owned(),
                source,
            })?;
        let event_id_floor = events::event_id_floor(&Sql::new(&writer))?;
        let trackers = tracking::Trackers::default();
        tracking::install(&writer, &trackers);
        Ok(StateDb {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            checkpointer: Checkpointer::start(path, connect(path, Access::ReadWrite)?)?,
            pretended: Mutex::new(None),
            job_output_max: AtomicU64::new(DEFAULT_JOB_OUTPUT_MAX),
            without_events: AtomicBool::new(false),
            event_id_floor,
            version_probe: Mutex::new(connect(path, Access::ReadOnly)?),
            trackers,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every later transaction of this `StateDb` see `now` as the
    /// current time (tests only). Not stored: a STATEDB opened again runs
    /// on the real clock.
    pub fn set_pretend_time(&self, now: i64) {
        *lock(&self.pretended) = Some(now);
    }

    /// Caps the output kept per job at `bytes` (the head and the most
    /// recent tail, see `jobs.rs`) from the next write on.
    pub fn set_job_output_max(&self, bytes: u64) {
        self.job_output_max.store(bytes, Ordering::Relaxed);
    }

    /// Records no event from the next write on: the baseline of the
    /// event-cost bench (`--debug-bench-without-events`), never for use
    /// in service, since webhooks, MQTT, mail and `/1.0/events` then see
    /// nothing.
    pub fn set_without_events_for_bench(&self, without: bool) {
        self.without_events.store(without, Ordering::Relaxed);
    }

    /// The time a transaction starting now runs at.
    pub fn now(&self) -> i64 {
        let pretended = *lock(&self.pretended);
        pretended.unwrap_or_else(real_now)
    }

    /// A number that changes whenever a transaction that changed STATEDB
    /// has committed since the last call, on any connection: this
    /// process's writer or another process (`PRAGMA data_version` of a
    /// connection of its own, which never writes). A read transaction
    /// begun after this call sees at least the state it stands for, so an
    /// answer built from it may be kept until the number changes
    /// (`lc-web`'s JSON status). It may also change when nothing did (a
    /// probe write, a WAL restart): that costs a rebuild, never a stale
    /// answer. Cheap: SQLite reads the WAL index in shared memory.
    pub fn generation(&self) -> Result<u64> {
        let conn = lock(&self.version_probe);
        let version: i64 = Sql::new(&conn).query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(version as u64)
    }

    /// Runs `f` in one write transaction; commits when it returns `Ok`.
    pub fn write<T>(&self, f: impl FnOnce(&WriteTx<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&WriteTx {
            read: ReadTx {
                conn: Sql::new(&tx),
                now: self.now(),
            },
            job_output_max: self.job_output_max.load(Ordering::Relaxed),
            record_events: !self.without_events.load(Ordering::Relaxed),
            event_id_floor: self.event_id_floor,
        })?;
        tx.commit()?;
        self.checkpointer.note_write();
        Ok(value)
    }

    /// Runs `f` in one read transaction: it sees a single consistent state.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx<'_>) -> Result<T>) -> Result<T> {
        let pooled = lock(&self.readers).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path, Access::ReadOnly)?,
        };
        let value = {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let value = f(&ReadTx {
                conn: Sql::new(&tx),
                now: self.now(),
            })?;
            tx.finish()?;
            value
        };
        let mut pool = lock(&self.readers);
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        Ok(value)
    }

    /// Commits a write transaction that changes nothing (it still appends
    /// to the WAL): fails when STATEDB cannot be written, e.g. on a full
    /// disk.
    pub fn probe_write(&self) -> Result<()> {
        self.write(|tx| {
            tx.conn.execute(
                "UPDATE running_queue SET running = running WHERE id = 1",
                [],
            )?;
            Ok(())
        })
    }

    /// `PRAGMA integrity_check`: `Ok` when SQLite finds nothing wrong,
    /// otherwise what it found.
    pub fn integrity_check(&self) -> Result<()> {
        let found: String = self.read(|tx| {
            Ok(tx
                .conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
        })?;
        if found == "ok" {
            Ok(())
        } else {
            Err(Error::Corrupt(found))
        }
    }

    /// Whether the database answers a trivial query.
    pub fn is_healthy(&self) -> bool {
        self.read(|tx| Ok(tx.conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .is_ok()
    }
}

/// Creates a missing STATEDB file with mode 0600: it holds the hosts'
/// tokens. SQLite gives its `-wal` and `-shm` files the same mode. A file
/// that cannot be created here cannot be opened either: [`connect`] reports
/// that, naming the file.
fn create_private(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

/// What a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    /// `PRAGMA query_only`: SQLite refuses every write.
    ReadOnly,
}

fn connect(path: &Path, access: Access) -> Result<Connection> {
    let open_err = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    // The checkpointer thread does it, off the request path: see checkpoint.rs.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(open_err)?;
    // A WAL that a burst made large is cut back when it is written from
    // the start again, rather than kept at its largest for good.
    conn.pragma_update(
        None,
        "journal_size_limit",
        i64::try_from(checkpoint::MAX_WAL_BYTES).unwrap_or(i64::MAX),
    )
    .map_err(open_err)?;
    // Every statement is prepared through the cache (`Sql`); rusqlite's
    // default of 16 is fewer than the webapp's distinct statements, and a
    // statement evicted is parsed again on its next use.
    conn.set_prepared_statement_cache_capacity(256);
    if access == Access::ReadOnly {
        conn.pragma_update(None, "query_only", true)
            .map_err(open_err)?;
    }
    Ok(conn)
}

/// A poisoned lock only means another request panicked; the connection's
/// transaction was rolled back when it unwound, so it is safe to go on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The real clock, in Unix seconds.
pub fn real_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl ReadTx<'_> {
    /// The time this transaction runs at.
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn running_queue(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT running FROM running_queue WHERE id = 1", [], |r| {
                r.get::<_, i64>(0)
            })?
            != 0)
    }

    pub fn max_jobs(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT max_jobs FROM max_jobs WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// The connection's statement cache, for sibling modules of this one.
    fn conn(&self) -> &Sql<'_> {
        &self.conn
    }
}

impl WriteTx<'_> {
    /// Starts or stops the queue; a real change is recorded as an event.
    pub fn set_running_queue(&self, running: bool) -> Result<()> {
        if self.running_queue()? == running {
            return Ok(());
        }
        let event = if running {
            lc_api::EventType::QueueStarted
        } else {
            lc_api::EventType::QueueStopped
        };
        self.record_event(event, None, None, serde_json::json!({}))?;
        self.conn
            .prepare("UPDATE running_queue SET running = ?1 WHERE id = 1")?
            .execute([running as i64])?;
        Ok(())
    }

    /// Sets the limit of concurrently running jobs; `None` removes it.
    pub fn set_max_jobs(&self, max_jobs: Option<i64>) -> Result<()> {
        match max_jobs {
            Some(n) if n < 0 => {
                return Err(Error::Invalid {
                    field: "max_jobs",
                    problem: format!("{n} is negative"),
                });
            }
            Some(n) => self
                .conn
                .prepare(
                    "INSERT INTO max_jobs (id, max_jobs) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET max_jobs = excluded.max_jobs",
                )?
                .execute([n])?,
            None => self.conn.prepare("DELETE FROM max_jobs")?.execute([])?,
        };
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn fresh() -> (tempfile::TempDir, StateDb) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(&dir.path().join("state.db")).expect("open");
        (dir, db)
    }

    #[test]
    fn migrations_are_valid() {
        Migrations::from_slice(MIGRATIONS)
            .validate()
            .expect("migrations validate");
    }

    #[test]
    fn the_generation_changes_with_every_commit_that_changed_something() {
        let (dir, db) = fresh();
        let g0 = db.generation().expect("generation");
        assert_eq!(db.generation().expect("again"), g0, "nothing happened");
        db.read(|tx| tx.running_queue()).expect("read");
        db.write(|tx| tx.running_queue())
            .expect("a write that writes nothing");
        assert_eq!(db.generation().expect("after reads"), g0);

        db.write(|tx| tx.set_running_queue(false)).expect("write");
        let g1 = db.generation().expect("after a write");
        assert_ne!(g1, g0);
        let failed: Result<()> = db.write(|tx| {
            tx.set_max_jobs(Some(1))?;
            Err(Error::UnknownJob(1))
        });
        assert!(failed.is_err());
        assert_eq!(db.generation().expect("after a rollback"), g1);

        // Another connection, as another process would write.
        let other = StateDb::open(&dir.path().join("state.db")).expect("open again");
        other
            .write(|tx| tx.set_max_jobs(Some(2)))
            .expect("other write");
        assert_ne!(db.generation().expect("after another's write"), g1);
    }

    #[test]
    fn queue_runs_initially_and_state_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let db = StateDb::open(&path).expect("open");
            assert!(db.read(|tx| tx.running_queue()).expect("read"));
            db.write(|tx| tx.set_running_queue(false)).expect("write");
            db.write(|tx| tx.set_max_jobs(Some(3))).expect("write");
        }
        let db = StateDb::open(&path).expect("reopen");
        assert!(!db.read(|tx| tx.running_queue()).expect("read"));
        assert_eq!(db.read(|tx| tx.max_jobs()).expect("read"), Some(3));
    }

    #[test]
    fn a_new_statedb_and_its_wal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, db) = fresh();
        db.write(|tx| tx.set_running_queue(false)).expect("write");
        for name in ["state.db", "state.db-wal", "state.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .expect(name)
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{name}: {mode:o}");
        }
    }

    #[test]
    fn pretend_time_is_seen_by_later_transactions() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        assert_eq!(db.read(|tx| Ok(tx.now())).expect("read"), 1_000);
        assert_eq!(db.write(|tx| Ok(tx.now())).expect("write"), 1_000);
    }

    /// A STATEDB once run with `--debug-allow-pretend-time`, opened again
    /// (as by a webapp started without it), runs on the real clock.
    #[test]
    fn pretended_time_does_not_outlive_the_state_db() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let db = StateDb::open(&path).expect("open");
            db.set_pretend_time(1_000);
            db.write(|tx| tx.set_running_queue(true)).expect("write");
            assert_eq!(db.read(|tx| Ok(tx.now())).expect("read"), 1_000);
        }
        let before = real_now();
        let db = StateDb::open(&path).expect("reopen");
        assert!(db.read(|tx| Ok(tx.now())).expect("read") >= before);
        assert!(db.write(|tx| Ok(tx.now())).expect("write") >= before);
    }

    /// A STATEDB of schema 3 into which an older webapp stored a pretended
    /// time (it kept it in a table) runs on the real clock once upgraded.
    #[test]
    fn upgrading_forgets_a_stored_pretended_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let mut conn = Connection::open(&path).expect("open");
            Migrations::from_slice(&MIGRATIONS[..3])
                .to_latest(&mut conn)
                .expect("schema 3");
            conn.prepare_cached("INSERT INTO pretend_time (id, now) VALUES (1, 1000)")
                .and_then(|mut stmt| stmt.execute([]))
                .expect("pretend");
        }
        let before = real_now();
        let db = StateDb::open(&path).expect("upgrade");
        assert!(db.read(|tx| Ok(tx.now())).expect("read") >= before);
        let tables: i64 = db
            .read(|tx| {
                Ok(tx
                    .conn()
                    .prepare("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'pretend_time'")?
                    .query_row([], |r| r.get(0))?)
            })
            .expect("schema");
        assert_eq!(tables, 0);
    }

    /// Schema 3 let a lorry removed and re-added while its job ran get a
    /// second job. Upgrading ends the older of the two and gives a lorry
    /// that lost its running job that job back.
    #[test]
    fn upgrading_leaves_one_running_job_per_lorry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let mut conn = Connection::open(&path).expect("open");
            Migrations::from_slice(&MIGRATIONS[..3])
                .to_latest(&mut conn)
                .expect("schema 3");
            for sql in [
                "INSERT INTO lorries (path, text, interval, lorry_timeout, running_job)
                 VALUES ('a', '{}', 100, 60, 2), ('b', '{}', 100, 60, NULL)",
                "INSERT INTO jobs (host, pid, path, started, updated, timeout)
                 VALUES ('m', 1, 'a', 10, 15, 60), ('m', 2, 'a', 20, 25, 60),
                        ('m', 3, 'b', 30, 35, 60)",
                "INSERT INTO job_output (job_id, seq, text) VALUES (1, 1, 'first\n')",
            ] {
                conn.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute([]))
                    .expect("schema 3 data");
            }
        }
        let db = StateDb::open(&path).expect("upgrade");
        let old = db.read(|tx| tx.job(1)).expect("job 1");
        assert_eq!(
            (old.exit.as_str(), old.kill_job, old.ended),
            ("127", true, Some(15))
        );
        assert!(old.output.starts_with("first\n"), "{}", old.output);
        assert!(old.output.contains("a newer job"), "{}", old.output);
        assert_eq!(db.read(|tx| tx.running_job_ids()).expect("ids"), [2, 3]);
        assert_eq!(db.read(|tx| tx.lorry("a")).expect("a").running_job, Some(2));
        assert_eq!(db.read(|tx| tx.lorry("b")).expect("b").running_job, Some(3));
    }

    /// A lorry checked without a job before the pages said so: the
    /// upgrade keeps when, infers how from the fingerprints it had, and
    /// takes its last job's start from the jobs remembered.
    #[test]
    fn upgrading_keeps_checks_without_a_job_for_the_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let ours = MIGRATIONS
            .iter()
            .position(|m| format!("{m:?}").contains("ADD COLUMN checked_without_job"))
            .expect("the migration");
        {
            let mut conn = Connection::open(&path).expect("open");
            Migrations::from_slice(&MIGRATIONS[..ours])
                .to_latest(&mut conn)
                .expect("the schema before");
            for sql in [
                "INSERT INTO lorries (path, text, interval, lorry_timeout)
                 VALUES ('m', '{}', 100, 60), ('a', '{}', 100, 60), ('n', '{}', 100, 60)",
                "INSERT INTO jobs (host, pid, path, started, updated, ended, timeout, exit)
                 VALUES ('h', 1, 'm', 10, 15, 15, 60, '0'), ('h', 2, 'm', 20, 25, 25, 60, '0'),
                        ('h', 3, 'n', 30, 35, 35, 60, '0')",
                "INSERT INTO lorry_fingerprints (path, upstream, success, full_check, skipped)
                 VALUES ('m', 'F', 'F', 20, 50)",
                "INSERT INTO lorry_fingerprints (path, full_check, skipped, activity)
                 VALUES ('a', 7, 60, 1)",
            ] {
                conn.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute([]))
                    .expect("data before");
            }
        }
        let db = StateDb::open(&path).expect("upgrade");
        let shown = |path: &str| {
            let lorry = db.read(|tx| tx.lorry(path)).expect("lorry");
            (
                lorry.last_checked_without_job,
                lorry.checked_without_job_how,
                lorry.last_job_run,
            )
        };
        assert_eq!(
            shown("m"),
            (Some(50), Some("unchanged per manifest".into()), Some(20))
        );
        // No job remembered: the start of its last success.
        assert_eq!(
            shown("a"),
            (
                Some(60),
                Some("unchanged per host activity".into()),
                Some(7)
            )
        );
        assert_eq!(shown("n"), (None, None, None));
    }

    #[test]
    fn a_write_in_a_read_transaction_fails() {
        let (_dir, db) = fresh();
        let err = db
            .read(|tx| {
                tx.conn()
                    .execute("UPDATE running_queue SET running = 0", [])?;
                Ok(())
            })
            .expect_err("a read transaction cannot write");
        assert!(
            err.to_string().contains("readonly") || err.to_string().contains("read-only"),
            "{err}"
        );
        // The refused write changed nothing, and the pooled reader stays read-only.
        assert!(db.read(|tx| tx.running_queue()).expect("read"));
        assert!(
            db.read(|tx| Ok(tx.conn().execute("DELETE FROM max_jobs", [])?))
                .is_err()
        );
        db.write(|tx| tx.set_running_queue(false)).expect("write");
        assert!(!db.read(|tx| tx.running_queue()).expect("read"));
    }

    #[test]
    fn negative_max_jobs_is_refused() {
        let (_dir, db) = fresh();
        let err = db
            .write(|tx| tx.set_max_jobs(Some(-1)))
            .expect_err("refused");
        assert!(err.is_client_error());
    }
}

#[cfg(test)]
mod pragma_tests {
    use super::tests::fresh;

    #[test]
    fn connections_use_wal_with_normal_sync() {
        let (_dir, db) = fresh();
        let (mode, sync, fk, autocheckpoint, size_limit): (String, i64, i64, i64, i64) = db
            .read(|tx| {
                Ok((
                    tx.conn()
                        .query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                    tx.conn()
                        .query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                    tx.conn()
                        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
                    tx.conn()
                        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?,
                    tx.conn()
                        .query_row("PRAGMA journal_size_limit", [], |r| r.get(0))?,
                ))
            })
            .expect("pragmas");
        assert_eq!(
            (mode.as_str(), sync, fk, autocheckpoint, size_limit),
            ("wal", 1, 1, 0, 64 * 1024 * 1024)
        );
    }
}
