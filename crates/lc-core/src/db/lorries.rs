//! The run queue: lorries, their order, and moving them.
//!
//! Queue order, first to last:
//! 1. idle lorries moved to the top, the latest move first (due or not);
//! 2. idle lorries that are due, longest overdue first, then by path;
//! 3. idle due lorries moved to the bottom, the latest move last;
//! 4. everything else (running, or not yet due), by when it becomes due, then by path.
//!
//! A move lasts until the lorry's next job starts. Because moves are kept
//! apart from `last_run`, they are exact whatever the intervals.

use std::sync::LazyLock;

use lc_api::LorryInfo;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use super::fingerprints::UnchangedPer;
use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// One group of idle lorries in the run queue: which lorries it holds (SQL
/// over a `lorries` row; `?1` is now) and their order within the group, as
/// written for the partial index that give-me-job walks: a numeric sort key,
/// ascending or `DESC`, then `path` where keys may tie.
struct QueueGroup {
    holds: &'static str,
    order: &'static str,
}

impl QueueGroup {
    /// The group's sort key as one ascending number: the first term of its
    /// order, negated when descending. Ties go by path in the whole queue.
    fn key(&self) -> String {
        let first = self.order.split(", ").next().unwrap_or(self.order);
        match first.strip_suffix(" DESC") {
            Some(column) => format!("-{column}"),
            None => first.to_owned(),
        }
    }
}

/// The run queue's order, the one definition of it. Idle lorries of these
/// groups come first, group by group; all others (running, or idle and not
/// yet due) follow by when they become due; ties go by path. The groups are
/// disjoint (by `move_kind`).
const IDLE_GROUPS: [QueueGroup; 3] = [
    QueueGroup {
        holds: "move_kind = -1",
        order: "move_seq DESC",
    },
    QueueGroup {
        holds: "move_kind = 0 AND due <= ?1",
        order: "due, path",
    },
    QueueGroup {
        holds: "move_kind = 1 AND due <= ?1",
        order: "move_seq",
    },
];

/// A lorry without a running job.
const IDLE: &str = "running_job IS NULL";

/// The terms of the whole queue's ORDER BY, from [`IDLE_GROUPS`]: the group
/// (the rest last), then the group's sort key (the rest by due time), then
/// path. Two CASEs per row: the status page sorts every lorry under its
/// prefix with them.
pub(super) static QUEUE_ORDER_TERMS: LazyLock<String> = LazyLock::new(|| {
    let rest = IDLE_GROUPS.len();
    let mut group = format!("CASE WHEN NOT ({IDLE}) THEN {rest}");
    let mut key = format!("CASE WHEN NOT ({IDLE}) THEN due");
    for (i, g) in IDLE_GROUPS.iter().enumerate() {
        group.push_str(&format!(" WHEN {} THEN {i}", g.holds));
        key.push_str(&format!(" WHEN {} THEN {}", g.holds, g.key()));
    }
    format!("{group} ELSE {rest} END, {key} ELSE due END, path")
});

/// The first lorry of each group that may run now, in the queue's order;
/// `extra` narrows them further (`AND ...`). Each is a walk of a partial
/// index that stops at the first row found.
pub(super) fn next_due_lookups(extra: &str) -> Vec<String> {
    IDLE_GROUPS
        .iter()
        .map(|g| {
            format!(
                "SELECT path FROM lorries WHERE {IDLE} AND {}{extra} ORDER BY {} LIMIT 1",
                g.holds, g.order
            )
        })
        .collect()
}

static NEXT_DUE: LazyLock<Vec<String>> = LazyLock::new(|| next_due_lookups(""));

/// The earliest due time after `?2` of the idle lorries of move kind `?1`
/// (0: not moved, 1: moved to the bottom; those moved to the top wait for
/// nothing): a seek in `lorries_idle_by_due`.
const NEXT_DUE_TIME: &str = "SELECT due FROM lorries WHERE running_job IS NULL AND move_kind = ?1
     AND due > ?2 ORDER BY due LIMIT 1";

/// A lorry's place in the run queue at `now`, the order of
/// [`QUEUE_ORDER_TERMS`] computed in Rust: sort by it, then by path (as
/// bytes, SQLite's `BINARY`). For an answer that keeps the lorries between
/// reads and sorts them again when only the time moved (lc-web's JSON
/// status); `queue_place_sorts_as_the_query_does` holds the two together.
pub fn queue_place(running: bool, move_kind: i64, move_seq: i64, due: i64, now: i64) -> (i64, i64) {
    let rest = IDLE_GROUPS.len() as i64;
    if running {
        return (rest, due);
    }
    match move_kind {
        -1 => (0, -move_seq),
        0 if due <= now => (1, due),
        1 if due <= now => (2, move_seq),
        _ => (rest, due),
    }
}

/// A `lorries` row with what places it in the queue and its rowid (which
/// [`super::LorryChanges`] names).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub rowid: i64,
    pub move_kind: i64,
    pub move_seq: i64,
    /// A fingerprint of every column read (but the rowid): a row read
    /// again with the same fingerprint holds the same values (see
    /// [`ReadTx::for_each_row_fingerprint`]).
    pub fingerprint: u64,
    pub lorry: LorryInfo,
}

impl QueueRow {
    /// Its place in the queue at `now` (see [`queue_place`]).
    pub fn place(&self, now: i64) -> (i64, i64) {
        queue_place(
            self.lorry.running_job.is_some(),
            self.move_kind,
            self.move_seq,
            self.lorry.due,
            now,
        )
    }
}

/// [`LORRY_COLUMNS`] and what [`queue_row`] reads besides.
static QUEUE_ROW_COLUMNS: LazyLock<String> =
    LazyLock::new(|| format!("{LORRY_COLUMNS}, move_kind, move_seq, rowid"));

/// How many columns [`LORRY_COLUMNS`] names.
static LORRY_COLUMN_COUNT: LazyLock<usize> = LazyLock::new(|| LORRY_COLUMNS.split(',').count());

fn queue_row(row: &Row<'_>) -> rusqlite::Result<QueueRow> {
    queue_row_printed(row, true)
}

/// [`queue_row`], with its fingerprint (0 if not `printed`).
fn queue_row_printed(row: &Row<'_>, printed: bool) -> rusqlite::Result<QueueRow> {
    let n = *LORRY_COLUMN_COUNT;
    Ok(QueueRow {
        lorry: lorry_from_row(row)?,
        move_kind: row.get(n)?,
        move_seq: row.get(n + 1)?,
        fingerprint: if printed { fingerprint(row, n + 2)? } else { 0 },
        rowid: row.get(n + 2)?,
    })
}

/// Keys of [`fingerprint`], this process's own: SipHash with secret keys,
/// so no value can be chosen to give a row the fingerprint of another.
static FINGERPRINT_KEYS: LazyLock<std::hash::RandomState> =
    LazyLock::new(std::hash::RandomState::new);

/// A fingerprint of the first `columns` columns of `row`: each value's
/// type and bytes (with lengths), hashed with [`FINGERPRINT_KEYS`]; read
/// in place, nothing allocated. Equal values give equal fingerprints;
/// different ones differ but by a 64-bit hash's chance.
fn fingerprint(row: &Row<'_>, columns: usize) -> rusqlite::Result<u64> {
    use std::hash::{BuildHasher, Hasher};
    let mut hash = FINGERPRINT_KEYS.build_hasher();
    for i in 0..columns {
        match row.get_ref(i)? {
            ValueRef::Null => hash.write_u8(0),
            ValueRef::Integer(n) => {
                hash.write_u8(1);
                hash.write_i64(n);
            }
            ValueRef::Real(x) => {
                hash.write_u8(2);
                hash.write_u64(x.to_bits());
            }
            // A BLOB of a TEXT's bytes is another value: a full read
            // refuses it as a string, and SQLite sorts it after all text.
            ValueRef::Text(bytes) => {
                hash.write_u8(3);
                hash.write_usize(bytes.len());
                hash.write(bytes);
            }
            ValueRef::Blob(bytes) => {
                hash.write_u8(4);
                hash.write_usize(bytes.len());
                hash.write(bytes);
            }
        }
    }
    Ok(hash.finish())
}

/// The columns [`lorry_from_row`] reads, in its order.
pub(super) const LORRY_COLUMNS: &str = "path, text, from_host, from_path, interval, \
     lorry_timeout, last_run, last_run_exit, last_run_error, running_job, disk_usage, due, \
     last_success, consecutive_failures, checked_without_job, checked_how, last_job";

/// A lorry row selected as [`LORRY_COLUMNS`].
pub(super) fn lorry_from_row(row: &Row<'_>) -> rusqlite::Result<LorryInfo> {
    let mut lorry = LorryInfo {
        path: row.get(0)?,
        text: row.get(1)?,
        from_host: row.get(2)?,
        from_path: row.get(3)?,
        interval: row.get(4)?,
        lorry_timeout: row.get(5)?,
        last_run: row.get(6)?,
        last_run_exit: row.get(7)?,
        last_run_error: row.get(8)?,
        running_job: row.get(9)?,
        disk_usage: row.get(10)?,
        due: row.get(11)?,
        last_success: row.get(12)?,
        consecutive_failures: row.get(13)?,
        jobs: None,
        last_checked_without_job: None,
        checked_without_job_how: None,
        last_job_run: None,
    };
    // Shown only for a lorry that was checked without a job (no key in
    // the JSON otherwise; see `lc_api::LorryInfo`).
    let checked: Option<i64> = row.get(14)?;
    if let Some(checked) = checked {
        let how: Option<String> = row.get(15)?;
        lorry.last_checked_without_job = Some(checked);
        lorry.checked_without_job_how = how
            .as_deref()
            .and_then(UnchangedPer::from_code)
            .map(|how| how.phrase().to_owned());
        lorry.last_job_run = row.get(16)?;
    }
    Ok(lorry)
}

/// A lorry as read from CONFGIT or generated from an Upstream Host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLorry {
    pub path: String,
    pub text: String,
    pub from_host: String,
    pub from_path: String,
    pub interval: i64,
    pub lorry_timeout: i64,
}

/// The columns [`new_lorry_from_row`] reads, in its order: those that
/// configuration sets.
pub(super) const NEW_LORRY_COLUMNS: &str =
    "path, text, from_host, from_path, interval, lorry_timeout";

/// A lorry row selected as [`NEW_LORRY_COLUMNS`].
pub(super) fn new_lorry_from_row(row: &Row<'_>) -> rusqlite::Result<NewLorry> {
    Ok(NewLorry {
        path: row.get(0)?,
        text: row.get(1)?,
        from_host: row.get(2)?,
        from_path: row.get(3)?,
        interval: row.get(4)?,
        lorry_timeout: row.get(5)?,
    })
}

/// Runs the lookups of [`next_due_lookups`] in order; `?1` is now, `?2`
/// on the values given in `more`.
pub(super) fn first_found(
    tx: &ReadTx<'_>,
    lookups: &[String],
    more: &[Value],
) -> Result<Option<String>> {
    let mut values = vec![Value::Integer(tx.now)];
    values.extend_from_slice(more);
    for sql in lookups {
        let mut stmt = tx.conn().prepare(sql)?;
        // A group that does not look at the time has no ?1.
        let used = stmt.parameter_count();
        let found = stmt
            .query_row(params_from_iter(&values[..used]), |r| r.get(0))
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

impl ReadTx<'_> {
    /// Paths of every lorry, sorted.
    pub fn lorry_paths(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT path FROM lorries ORDER BY path")?;
        let paths = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(paths)
    }

    /// One lorry, with the ids of the jobs remembered for it.
    pub fn lorry(&self, path: &str) -> Result<LorryInfo> {
        let mut lorry = self
            .lorry_row(path)?
            .ok_or_else(|| Error::UnknownLorry(path.into()))?;
        let mut stmt = self
            .conn()
            .prepare("SELECT job_id FROM jobs WHERE path = ?1 ORDER BY job_id")?;
        let jobs = stmt
            .query_map([path], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        lorry.jobs = Some(jobs);
        Ok(lorry)
    }

    pub(super) fn lorry_row(&self, path: &str) -> Result<Option<LorryInfo>> {
        let sql = format!("SELECT {LORRY_COLUMNS} FROM lorries WHERE path = ?1");
        Ok(self
            .conn()
            .prepare(&sql)?
            .query_row([path], lorry_from_row)
            .optional()?)
    }

    /// Paths of all lorries in queue order.
    pub fn queue(&self) -> Result<Vec<String>> {
        let sql = format!("SELECT path FROM lorries ORDER BY {}", *QUEUE_ORDER_TERMS);
        let mut stmt = self.conn().prepare(&sql)?;
        let paths = stmt
            .query_map([self.now], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(paths)
    }

    /// All lorries in queue order.
    pub fn queue_lorries(&self) -> Result<Vec<LorryInfo>> {
        let mut lorries = Vec::new();
        self.for_each_queue_lorry(|lorry| {
            lorries.push(lorry);
            Ok::<_, std::convert::Infallible>(())
        })?
        .unwrap_or_else(|never| match never {});
        Ok(lorries)
    }

    /// Every lorry in queue order, handed to `each` as its row is read;
    /// nothing is collected, so the JSON status of 100,000 lorries is
    /// written without holding them all. An `Err` of `each` stops the walk
    /// and is answered inside the `Ok`.
    pub fn for_each_queue_lorry<E>(
        &self,
        mut each: impl FnMut(LorryInfo) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        self.walk_queue(false, |row| each(row.lorry))
    }

    /// [`ReadTx::for_each_queue_lorry`] with each row's rowid, move and
    /// fingerprint.
    pub fn for_each_queue_row<E>(
        &self,
        each: impl FnMut(QueueRow) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        self.walk_queue(true, each)
    }

    fn walk_queue<E>(
        &self,
        printed: bool,
        mut each: impl FnMut(QueueRow) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let sql = format!(
            "SELECT {} FROM lorries ORDER BY {}",
            *QUEUE_ROW_COLUMNS, *QUEUE_ORDER_TERMS
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt.query([self.now])?;
        while let Some(row) = rows.next()? {
            if let Err(err) = each(queue_row_printed(row, printed)?) {
                return Ok(Err(err));
            }
        }
        Ok(Ok(()))
    }

    /// Every `lorries` row's rowid and [`QueueRow::fingerprint`], in
    /// ascending rowid order (the table's own; no sort), handed to
    /// `each`: so an answer kept from earlier reads can find the rows
    /// another process changed without building a lorry of every row.
    pub fn for_each_row_fingerprint(&self, mut each: impl FnMut(i64, u64)) -> Result<()> {
        let sql = format!("SELECT {} FROM lorries ORDER BY rowid", *QUEUE_ROW_COLUMNS);
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let n = *LORRY_COLUMN_COUNT;
        while let Some(row) = rows.next()? {
            each(row.get(n + 2)?, fingerprint(row, n + 2)?);
        }
        Ok(())
    }

    /// The `lorries` row of `rowid`, if there is one.
    pub fn queue_row_by_rowid(&self, rowid: i64) -> Result<Option<QueueRow>> {
        let sql = format!(
            "SELECT {} FROM lorries WHERE rowid = ?1",
            *QUEUE_ROW_COLUMNS
        );
        Ok(self
            .conn()
            .prepare(&sql)?
            .query_row([rowid], queue_row)
            .optional()?)
    }

    /// The first lorry in queue order that may run now, if any.
    ///
    /// One index lookup per group of the queue order, so the cost does not
    /// grow with the number of lorries.
    pub(super) fn next_due_lorry(&self) -> Result<Option<String>> {
        first_found(self, &NEXT_DUE, &[])
    }

    /// When the next idle lorry that is not yet due becomes due (Unix
    /// seconds), if any: what a long-polling give-me-job sleeps until.
    /// One index seek per move group that waits for its due time.
    pub fn next_due_time(&self) -> Result<Option<i64>> {
        let mut next: Option<i64> = None;
        for kind in [0, 1] {
            let found: Option<i64> = self
                .conn()
                .prepare(NEXT_DUE_TIME)?
                .query_row(params![kind, self.now], |r| r.get(0))
                .optional()?;
            next = match (next, found) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(next)
    }
}

impl WriteTx<'_> {
    /// Adds a lorry, due at once; or, if its path is known, updates its spec
    /// and schedule while keeping its last run, running job and history.
    /// Answers whether anything changed.
    ///
    /// A lorry added while a job of a lorry of the same path still runs
    /// (removed and added again) takes that job as its running job, started
    /// at its last run: it is not handed out again until the job ends.
    pub fn upsert_lorry(&self, lorry: &NewLorry) -> Result<bool> {
        let changed = self
            .conn()
            .prepare(
                "INSERT INTO lorries (path, text, from_host, from_path, interval, lorry_timeout,
                                      running_job, last_run, last_job)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                     (SELECT job_id FROM jobs WHERE path = ?1 AND ended IS NULL),
                     COALESCE((SELECT started FROM jobs WHERE path = ?1 AND ended IS NULL), 0),
                     (SELECT started FROM jobs WHERE path = ?1 AND ended IS NULL))
             ON CONFLICT (path) DO UPDATE SET
                 text = excluded.text, from_host = excluded.from_host,
                 from_path = excluded.from_path, interval = excluded.interval,
                 lorry_timeout = excluded.lorry_timeout
             WHERE text IS NOT excluded.text OR from_host IS NOT excluded.from_host
                OR from_path IS NOT excluded.from_path OR interval IS NOT excluded.interval
                OR lorry_timeout IS NOT excluded.lorry_timeout",
            )?
            .execute(params![
                lorry.path,
                lorry.text,
                lorry.from_host,
                lorry.from_path,
                lorry.interval,
                lorry.lorry_timeout
            ])?;
        Ok(changed > 0)
    }

    /// Forgets a lorry. A job still running for it may finish; its update is
    /// then recorded on the job alone, unless the lorry has been added again
    /// meanwhile (see [`WriteTx::upsert_lorry`]).
    pub fn remove_lorry(&self, path: &str) -> Result<bool> {
        self.ledger_lorry_removed(path)?;
        Ok(self
            .conn()
            .execute("DELETE FROM lorries WHERE path = ?1", [path])?
            > 0)
    }

    /// Makes `path` the next lorry to run, even if it is not yet due.
    pub fn move_to_top(&self, path: &str) -> Result<()> {
        self.move_lorry(path, -1)
    }

    /// Makes `path` run after every other due lorry.
    pub fn move_to_bottom(&self, path: &str) -> Result<()> {
        self.move_lorry(path, 1)
    }

    fn move_lorry(&self, path: &str, kind: i64) -> Result<()> {
        let moved = self
            .conn()
            .prepare(
                "UPDATE lorries SET move_kind = ?2,
                 move_seq = (SELECT COALESCE(MAX(move_seq), 0) + 1 FROM lorries)
             WHERE path = ?1",
            )?
            .execute(params![path, kind])?;
        if moved == 0 {
            return Err(Error::UnknownLorry(path.into()));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::StateDb;
    use super::super::tests::fresh;
    use super::*;

    /// A small linear congruential generator: `next(n)` is in `0..n`, the
    /// same sequence for the same seed on every run.
    pub(crate) fn lcg(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        }
    }

    /// Lorries `l00`.. (`count` of them) with intervals and last runs drawn
    /// from `next`.
    pub(crate) fn random_fleet(db: &StateDb, count: usize, next: &mut impl FnMut(u64) -> u64) {
        db.write(|tx| {
            for i in 0..count {
                tx.upsert_lorry(&lorry(&format!("l{i:02}"), 1 + next(50) as i64))?;
                tx.conn().execute(
                    "UPDATE lorries SET last_run = ?2 WHERE path = ?1",
                    params![format!("l{i:02}"), next(100) as i64],
                )?;
            }
            Ok(())
        })
        .expect("fleet");
    }

    pub(crate) fn lorry(path: &str, interval: i64) -> NewLorry {
        NewLorry {
            path: path.into(),
            text: format!("{{\"{path}\": {{\"type\": \"git\", \"url\": \"git://x/{path}\"}}}}"),
            from_host: String::new(),
            from_path: String::new(),
            interval,
            lorry_timeout: 3600,
        }
    }

    fn queue(db: &StateDb) -> Vec<String> {
        db.read(|tx| tx.queue()).expect("queue")
    }

    /// The scan's fingerprints are the queue rows' own, in rowid order; a
    /// row written with the same values keeps its fingerprint, a change of
    /// any column read moves it (and only that row's).
    #[test]
    fn fingerprints_follow_every_column_read() {
        let (_dir, db) = fresh();
        db.set_pretend_time(10_000);
        db.write(|tx| {
            for path in ["a", "b", "c"] {
                tx.upsert_lorry(&lorry(path, 60))?;
            }
            Ok(())
        })
        .expect("seed");
        let prints = |db: &StateDb| {
            db.read(|tx| {
                let mut scan = Vec::new();
                tx.for_each_row_fingerprint(|rowid, print| scan.push((rowid, print)))?;
                let mut rows = Vec::new();
                tx.for_each_queue_row(|row| {
                    rows.push((row.rowid, row.fingerprint));
                    Ok::<_, std::convert::Infallible>(())
                })?
                .unwrap_or_else(|never| match never {});
                rows.sort_unstable();
                assert_eq!(scan, rows);
                Ok(scan)
            })
            .expect("read")
        };
        let before = prints(&db);
        assert_eq!(before.len(), 3);
        assert!(before.windows(2).all(|w| w[0].0 < w[1].0));
        db.write(|tx| tx.upsert_lorry(&lorry("a", 60)))
            .expect("same values");
        assert_eq!(prints(&db), before);
        let mut seen = vec![before[1].1];
        // `due` is generated from `last_run` and `interval`.
        let columns: Vec<&str> = LORRY_COLUMNS
            .split(',')
            .map(str::trim)
            .filter(|&c| c != "due")
            .chain(["move_kind", "move_seq"])
            .collect();
        let count = columns.len();
        for column in columns {
            // A NULL becomes a value of the column's type.
            let null = match column {
                "last_run_exit" | "last_run_error" => "'z'",
                "checked_how" => "'manifest'",
                _ => "7",
            };
            db.write(|tx| {
                tx.conn().execute(
                    &format!(
                        "UPDATE lorries SET {column} = CASE WHEN typeof({column}) = 'integer'
                         THEN {column} + 1 WHEN typeof({column}) = 'null' THEN {null}
                         ELSE {column} || 'z' END
                         WHERE rowid = ?1"
                    ),
                    [before[1].0],
                )?;
                Ok(())
            })
            .expect("change");
            let after = prints(&db);
            assert_eq!((after[0], after[2]), (before[0], before[2]), "{column}");
            assert!(!seen.contains(&after[1].1), "{column}");
            seen.push(after[1].1);
        }
        assert_eq!(seen.len(), 1 + count);
        // The same bytes stored as a BLOB by another program are another
        // value (a full read would refuse it).
        let scan = |db: &StateDb| {
            db.read(|tx| {
                let mut scan = Vec::new();
                tx.for_each_row_fingerprint(|rowid, print| scan.push((rowid, print)))?;
                Ok(scan)
            })
            .expect("scan")
        };
        let text = scan(&db);
        db.write(|tx| {
            tx.conn().execute(
                "UPDATE lorries SET text = CAST(text AS BLOB) WHERE rowid = ?1",
                [before[1].0],
            )?;
            Ok(())
        })
        .expect("to a blob");
        let blob = scan(&db);
        assert_eq!((blob[0], blob[2]), (text[0], text[2]));
        assert_ne!(blob[1].1, text[1].1);
    }

    /// Sorting rows by [`QueueRow::place`] and path gives the query's
    /// order, on lorries of every group (moved either way, due or not,
    /// running, equal due times and paths that differ only late), at times
    /// before, at and after their due times.
    #[test]
    fn queue_place_sorts_as_the_query_does() {
        let (_dir, db) = fresh();
        db.set_pretend_time(10_000);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        db.write(|tx| {
            for i in 0..400 {
                let path = format!(
                    "g{}/p{}{}",
                    next(5),
                    next(50),
                    if i % 7 == 0 { "é" } else { "" }
                );
                tx.upsert_lorry(&lorry(&path, 10 + next(4) as i64 * 100))?;
                tx.conn().execute(
                    "UPDATE lorries SET last_run = ?2 WHERE path = ?1",
                    params![path, 9_500 + next(4) as i64 * 100],
                )?;
                match next(6) {
                    0 => tx.move_to_top(&path)?,
                    1 => tx.move_to_bottom(&path)?,
                    _ => {}
                }
            }
            for _ in 0..20 {
                tx.start_next_job("m", 1)?;
            }
            Ok(())
        })
        .expect("seed");
        for now in [9_000, 9_600, 9_810, 10_000, 10_500, 20_000] {
            db.set_pretend_time(now);
            let (mut rows, sql) = db
                .read(|tx| {
                    let mut rows = Vec::new();
                    tx.for_each_queue_row(|row| {
                        rows.push(row);
                        Ok::<_, std::convert::Infallible>(())
                    })?
                    .unwrap_or_else(|never| match never {});
                    Ok((rows, tx.queue()?))
                })
                .expect("read");
            let in_sql_order: Vec<String> = rows.iter().map(|r| r.lorry.path.clone()).collect();
            assert_eq!(in_sql_order, sql);
            rows.reverse();
            rows.sort_by(|a, b| {
                (a.place(now), a.lorry.path.as_bytes())
                    .cmp(&(b.place(now), b.lorry.path.as_bytes()))
            });
            let sorted: Vec<String> = rows.iter().map(|r| r.lorry.path.clone()).collect();
            assert_eq!(sorted, sql, "at {now}");
            let by_rowid = db
                .read(|tx| tx.queue_row_by_rowid(rows[3].rowid))
                .expect("by rowid");
            assert_eq!(by_rowid.as_ref(), Some(&rows[3]));
        }
        assert_eq!(
            db.read(|tx| tx.queue_row_by_rowid(1_000_000))
                .expect("none"),
            None
        );
    }

    #[test]
    fn new_lorries_are_due_at_once_in_path_order() {
        let (_dir, db) = fresh();
        db.set_pretend_time(10_000);
        db.write(|tx| {
            tx.upsert_lorry(&lorry("b", 100))?;
            tx.upsert_lorry(&lorry("a", 5000))?;
            Ok(())
        })
        .expect("write");
        // Both are due; "b" has been due for longer.
        assert_eq!(queue(&db), ["b", "a"]);
        assert_eq!(
            db.read(|tx| tx.next_due_lorry()).expect("next"),
            Some("b".into())
        );
    }

    #[test]
    fn upsert_keeps_history_and_reports_changes() {
        let (_dir, db) = fresh();
        assert!(
            db.write(|tx| tx.upsert_lorry(&lorry("a", 100)))
                .expect("insert")
        );
        assert!(
            !db.write(|tx| tx.upsert_lorry(&lorry("a", 100)))
                .expect("same")
        );
        assert!(
            db.write(|tx| tx.upsert_lorry(&lorry("a", 200)))
                .expect("changed")
        );
        let info = db.read(|tx| tx.lorry("a")).expect("lorry");
        assert_eq!(info.interval, 200);
        assert_eq!(info.last_run, 0);
    }

    #[test]
    fn moves_are_exact_whatever_the_intervals() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000_000);
        db.write(|tx| {
            tx.upsert_lorry(&lorry("a", 10))?;
            tx.upsert_lorry(&lorry("b", 100_000))?;
            tx.upsert_lorry(&lorry("c", 7))?;
            Ok(())
        })
        .expect("write");
        assert_eq!(queue(&db), ["c", "a", "b"]);
        db.write(|tx| tx.move_to_bottom("c")).expect("move");
        assert_eq!(queue(&db), ["a", "b", "c"]);
        db.write(|tx| tx.move_to_top("b")).expect("move");
        assert_eq!(queue(&db), ["b", "a", "c"]);
        db.write(|tx| tx.move_to_top("c")).expect("move");
        assert_eq!(queue(&db), ["c", "b", "a"]);
        assert_eq!(
            db.read(|tx| tx.next_due_lorry()).expect("next"),
            Some("c".into())
        );
    }

    #[test]
    fn moving_an_unknown_lorry_is_a_client_error() {
        let (_dir, db) = fresh();
        let err = db.write(|tx| tx.move_to_top("nope")).expect_err("unknown");
        assert!(matches!(err, Error::UnknownLorry(p) if p == "nope"));
    }

    #[test]
    fn remove_forgets_the_lorry() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 10)))
            .expect("insert");
        assert!(db.write(|tx| tx.remove_lorry("a")).expect("remove"));
        assert!(queue(&db).is_empty());
        assert!(matches!(
            db.read(|tx| tx.lorry("a")),
            Err(Error::UnknownLorry(_))
        ));
    }

    #[test]
    fn a_lorry_added_again_while_its_job_runs_takes_the_job_and_its_start() {
        let (_dir, db) = fresh();
        db.set_pretend_time(100);
        db.write(|tx| tx.upsert_lorry(&lorry("a", 10)))
            .expect("insert");
        let (job, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("a job");
        db.set_pretend_time(150);
        db.write(|tx| tx.remove_lorry("a")).expect("remove");
        db.write(|tx| tx.upsert_lorry(&lorry("a", 10)))
            .expect("add again");
        let again = db.read(|tx| tx.lorry("a")).expect("lorry");
        assert_eq!(again.running_job, Some(job));
        assert_eq!(again.last_run, 100);
        // Shown as `last_job_run` once it is checked without a job.
        let last_job: Option<i64> = db
            .read(|tx| {
                Ok(tx.conn().query_row(
                    "SELECT last_job FROM lorries WHERE path = 'a'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .expect("last_job");
        assert_eq!(last_job, Some(100), "its latest job started then");
    }

    /// The query plan of each next-due lookup with `extra`.
    pub(crate) fn lookup_plans(db: &StateDb, extra: &str) -> Vec<String> {
        db.read(|tx| {
            let mut plans = Vec::new();
            for sql in next_due_lookups(extra) {
                let mut stmt = tx.conn().prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let unbound = vec![Value::Null; stmt.parameter_count()];
                let rows: Vec<String> = stmt
                    .query_map(params_from_iter(unbound), |r| r.get(3))?
                    .collect::<rusqlite::Result<_>>()?;
                plans.push(rows.join("; "));
            }
            Ok(plans)
        })
        .expect("plans")
    }

    /// Moved to the top and due lorries are found by walking their index
    /// in order, stopping at the first; only the lorries moved to the
    /// bottom (a handful, moved by hand) are sorted. No lookup reads all
    /// lorries.
    pub(crate) fn assert_index_walks(plans: &[String]) {
        for (plan, index) in plans.iter().zip([
            "lorries_idle_by_move",
            "lorries_idle_by_due",
            "lorries_idle_by_",
        ]) {
            assert!(
                plan.contains(&format!("SEARCH lorries USING INDEX {index}")),
                "{plan}"
            );
            assert!(!plan.contains("SCAN lorries"), "{plan}");
        }
        for plan in &plans[..2] {
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    /// The next due time is the earliest due time still to come of the
    /// idle lorries, not moved or moved to the bottom; found by one seek
    /// in the due index per move kind, never a scan or a sort.
    #[test]
    fn next_due_time_is_the_earliest_idle_due_time_to_come() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        let next = |db: &StateDb| db.read(|tx| tx.next_due_time()).expect("next due");
        assert_eq!(next(&db), None, "no lorry");
        db.write(|tx| {
            for (path, interval) in [("a", 50), ("b", 20), ("c", 30), ("d", 10)] {
                tx.upsert_lorry(&lorry(path, interval))?;
                tx.conn()
                    .execute("UPDATE lorries SET last_run = 1000 WHERE path = ?1", [path])?;
            }
            // b, moved to the top, runs; c is moved to the bottom.
            tx.move_to_top("b")?;
            let started = tx.start_next_job("m", 1)?.map(|(_, l)| l.path);
            assert_eq!(started.as_deref(), Some("b"));
            tx.move_to_bottom("c")
        })
        .expect("seed");
        assert_eq!(next(&db), Some(1010));
        db.set_pretend_time(1_010);
        assert_eq!(next(&db), Some(1030), "d is due now, b (1020) runs");
        db.set_pretend_time(1_030);
        assert_eq!(next(&db), Some(1050));
        db.set_pretend_time(1_050);
        assert_eq!(next(&db), None, "all due");
        let plans = db
            .read(|tx| {
                let mut stmt = tx
                    .conn()
                    .prepare(&format!("EXPLAIN QUERY PLAN {NEXT_DUE_TIME}"))?;
                let rows: Vec<String> = stmt
                    .query_map(params![0, 0], |r| r.get(3))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows.join("; "))
            })
            .expect("plan");
        assert!(
            plans.contains("SEARCH lorries USING INDEX lorries_idle_by_due"),
            "{plans}"
        );
        assert!(!plans.contains("TEMP B-TREE"), "{plans}");
    }

    #[test]
    fn give_me_job_lookups_use_the_indexes() {
        let (_dir, db) = fresh();
        let plans = lookup_plans(&db, "");
        assert_index_walks(&plans);
    }

    /// The whole queue's order takes each group's sort key from the first
    /// term of its index order: that holds only while each order is one
    /// column (maybe `DESC`), then at most `path`.
    #[test]
    fn each_group_orders_by_one_key_then_path() {
        for g in &IDLE_GROUPS {
            let mut terms = g.order.split(", ");
            let first = terms.next().unwrap_or_default();
            let column = first.strip_suffix(" DESC").unwrap_or(first);
            assert!(
                column.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                g.order
            );
            assert!(terms.all(|t| t == "path"), "{}", g.order);
        }
        assert_eq!(
            IDLE_GROUPS.map(|g| g.key()),
            ["-move_seq", "due", "move_seq"]
        );
    }

    /// Whatever the fleet, give-me-job's lookups pick the first lorry of the
    /// queue order that is idle and either moved to the top or due.
    #[test]
    fn next_due_agrees_with_the_queue_order() {
        let (_dir, db) = fresh();
        let mut next = lcg(7);
        random_fleet(&db, 60, &mut next);
        for step in 0..300 {
            let path = format!("l{:02}", next(60));
            db.set_pretend_time(50 + next(100) as i64);
            db.write(|tx| match next(4) {
                0 => tx.move_to_top(&path),
                1 => tx.move_to_bottom(&path),
                2 => {
                    tx.conn().execute(
                        "UPDATE lorries SET running_job = CASE WHEN running_job IS NULL
                             THEN 1 END, move_kind = 0, move_seq = 0 WHERE path = ?1",
                        [&path],
                    )?;
                    Ok(())
                }
                _ => Ok(()),
            })
            .expect("step");
            let (next_due, queue, now) = db
                .read(|tx| Ok((tx.next_due_lorry()?, tx.queue_lorries()?, tx.now())))
                .expect("read");
            let moved_to_top: Vec<String> = db
                .read(|tx| {
                    let mut stmt = tx
                        .conn()
                        .prepare("SELECT path FROM lorries WHERE move_kind = -1")?;
                    let paths = stmt
                        .query_map([], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    Ok(paths)
                })
                .expect("moved");
            let expected = queue
                .iter()
                .find(|l| {
                    l.running_job.is_none() && (l.due <= now || moved_to_top.contains(&l.path))
                })
                .map(|l| l.path.clone());
            assert_eq!(next_due, expected, "step {step}");
        }
    }
}
