//! The event log: a row per state change, recorded by the write that made
//! the change, in its transaction, so an event exists exactly when its
//! change was committed.
//!
//! Bodies are built here from what the change knows; text that comes from
//! outside (error messages, CONFGIT problems) passes through
//! [`lc_base::redact::redact`] first, so no URL credential reaches an event.

use lc_api::{Event, EventType, JobResult};
use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use super::sql::Sql;
use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// Which events to read: those after `since`, of one of `types` (all when
/// empty), about a lorry or host whose name starts with `prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub since: i64,
    pub types: Vec<EventType>,
    pub prefix: Option<String>,
    /// At most this many (1 to [`EventFilter::MAX_LIMIT`]).
    pub limit: i64,
    /// The newest `limit` of them rather than the oldest.
    pub last: bool,
}

impl EventFilter {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1000;
}

/// At most this many specs or refs are listed in one event body; the rest
/// are counted (`more`), so one huge mirror cannot make a huge event.
pub(super) const MAX_LISTED: usize = 100;

/// Bytes of a spec's error kept in a job-ended summary.
const ERROR_MAX: usize = 1000;

/// job-ended's `summary`: per spec what `lorry: summary:` says, and the
/// error (shortened) of a spec that failed.
pub(super) fn job_summary(result: &JobResult) -> Value {
    let specs: Vec<Value> = result
        .specs
        .iter()
        .take(MAX_LISTED)
        .map(|spec| {
            let error = spec.error.as_deref().map(|e| {
                let e = clean(e);
                let mut cut = e.len().min(ERROR_MAX);
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                e[..cut].to_owned()
            });
            json!({
                "name": spec.name,
                "importer": spec.importer,
                "ok": spec.ok,
                "error": error,
                "refs_updated": spec.updated(),
                "refs_deleted": spec.deleted(),
                "refs_preserved": spec.preserved.len(),
                "bytes_received": spec.bytes_received,
                "pushed": spec.pushed.as_str(),
            })
        })
        .collect();
    json!({
        "specs": specs,
        "more": result.specs.len().saturating_sub(MAX_LISTED),
    })
}

/// upstream-refs-rewritten's body, when upstream rewrote or deleted a ref:
/// each such ref with its old and new value (`null`: deleted) and where
/// the old tip was kept (`null`: it was not). `None` when there is none.
pub(super) fn rewritten_refs(result: &JobResult) -> Option<Value> {
    let mut refs = Vec::new();
    let mut total = 0usize;
    for spec in &result.specs {
        let preserved_names: Vec<&str> = spec.preserved.iter().map(|p| p.name.as_str()).collect();
        let kept = spec.preserved.iter().map(|p| {
            let new = spec
                .refs
                .iter()
                .find(|r| r.name == p.name)
                .and_then(|r| r.new.clone());
            (
                p.name.as_str(),
                Some(p.oid.as_str()),
                new,
                Some(p.kept_as.as_str()),
            )
        });
        let deleted = spec
            .refs
            .iter()
            .filter(|r| r.new.is_none() && !preserved_names.contains(&r.name.as_str()))
            .map(|r| (r.name.as_str(), r.old.as_deref(), None, None));
        for (name, old, new, kept_as) in kept.chain(deleted) {
            total += 1;
            if refs.len() < MAX_LISTED {
                refs.push(json!({
                    "spec": spec.name,
                    "name": name,
                    "old": old,
                    "new": new,
                    "kept_as": kept_as,
                }));
            }
        }
    }
    (total > 0).then(|| json!({ "refs": refs, "more": total - refs.len() }))
}

/// Text from outside made safe for an event body.
pub(super) fn clean(text: &str) -> String {
    lc_base::redact::redact(text).into_owned()
}

/// The highest event id given before migration 18 (0 when none was).
pub(super) fn event_id_floor(conn: &Sql<'_>) -> Result<i64> {
    Ok(conn
        .query_row("SELECT floor FROM event_id_floor WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

impl ReadTx<'_> {
    /// The events `filter` selects, oldest first, and whether more matched.
    pub fn events(&self, filter: &EventFilter) -> Result<(Vec<Event>, bool)> {
        if !(1..=EventFilter::MAX_LIMIT).contains(&filter.limit) {
            return Err(Error::Invalid {
                field: "limit",
                problem: format!(
                    "{} is not between 1 and {}",
                    filter.limit,
                    EventFilter::MAX_LIMIT
                ),
            });
        }
        let types = (!filter.types.is_empty()).then(|| {
            Value::from(filter.types.iter().map(|t| t.name()).collect::<Vec<&str>>()).to_string()
        });
        let mut stmt = self.conn().prepare(if filter.last {
            "SELECT id, time, type, path, host, body FROM events
             WHERE id > ?1
               AND (?2 IS NULL OR type IN (SELECT value FROM json_each(?2)))
               AND (?3 IS NULL OR substr(COALESCE(path, host, ''), 1, length(?3)) = ?3)
             ORDER BY id DESC LIMIT ?4"
        } else {
            "SELECT id, time, type, path, host, body FROM events
             WHERE id > ?1
               AND (?2 IS NULL OR type IN (SELECT value FROM json_each(?2)))
               AND (?3 IS NULL OR substr(COALESCE(path, host, ''), 1, length(?3)) = ?3)
             ORDER BY id LIMIT ?4"
        })?;
        let rows = stmt.query_map(
            params![filter.since, types, filter.prefix, filter.limit + 1],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )?;
        let mut events = Vec::new();
        for row in rows {
            let (id, time, kind, path, host, body) = row?;
            // A type this webapp does not know (written by a newer one) is
            // passed over rather than failing every read.
            let Some(event_type) = EventType::parse(&kind) else {
                continue;
            };
            events.push(Event {
                id,
                time,
                event_type,
                path,
                host,
                body: serde_json::from_str(&body).unwrap_or(Value::Null),
            });
        }
        let more = events.len() as i64 > filter.limit;
        events.truncate(filter.limit as usize);
        if filter.last {
            events.reverse();
        }
        Ok((events, more))
    }

    /// Whether the newest disk event is disk-low (a spell of low disk
    /// that has not ended). Walks the events from the newest: for start-up.
    pub fn disk_low_recorded(&self) -> Result<bool> {
        let last: Option<String> = self
            .conn()
            .query_row(
                "SELECT type FROM events WHERE type IN ('disk-low', 'disk-ok')
                 ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(last.as_deref() == Some(EventType::DiskLow.name()))
    }

    /// The id of the newest event (0 when there is none).
    pub fn last_event_id(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?)
    }
}

impl WriteTx<'_> {
    /// Records one event at this transaction's time.
    ///
    /// Its id is SQLite's rowid rule, one more than the newest row's (no
    /// AUTOINCREMENT: that rewrote `sqlite_sequence`'s page in every
    /// transaction recording an event). Ids never go back because the
    /// newest row is never deleted (the `events_keep_newest` trigger,
    /// migration 18), and ids given before that migration are above no
    /// new one: a row whose id is not above the floor (only the first one
    /// recorded into a log retention had emptied then) is moved just above
    /// it. The check costs nothing when it does not apply.
    pub(super) fn record_event(
        &self,
        event_type: EventType,
        path: Option<&str>,
        host: Option<&str>,
        body: Value,
    ) -> Result<()> {
        if !self.record_events {
            return Ok(());
        }
        self.conn()
            .prepare(
                "INSERT INTO events (time, type, path, host, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                self.now,
                event_type.name(),
                path,
                host,
                body.to_string()
            ])?;
        let id = self.conn().last_insert_rowid();
        if id <= self.event_id_floor {
            self.conn()
                .prepare("UPDATE events SET id = ?2 WHERE id = ?1")?
                .execute(params![id, self.event_id_floor + 1])?;
        }
        Ok(())
    }

    /// Forgets events older than `max_age` seconds, except the newest
    /// event, which is kept however old (its id is the high-water mark of
    /// ids: see [`WriteTx::record_event`]); answers how many.
    pub fn remove_old_events(&self, max_age: i64) -> Result<usize> {
        if max_age < 0 {
            return Err(Error::Invalid {
                field: "max_age",
                problem: "must not be negative".into(),
            });
        }
        let cutoff = self.now - max_age;
        let Some(newest) = self
            .conn()
            .query_row("SELECT MAX(id) FROM events", [], |r| {
                r.get::<_, Option<i64>>(0)
            })?
        else {
            return Ok(0);
        };
        // Ids grow with time: the old ones are those before the first young
        // one. Finding it walks only the rows about to go.
        let first_young: Option<i64> = self
            .conn()
            .query_row(
                "SELECT id FROM events WHERE time >= ?1 ORDER BY id LIMIT 1",
                [cutoff],
                |r| r.get(0),
            )
            .optional()?;
        let keep_from = first_young.map_or(newest, |young| young.min(newest));
        Ok(self
            .conn()
            .execute("DELETE FROM events WHERE id < ?1", [keep_from])?)
    }

    /// Records disk-low (`low`) or disk-ok with the free space seen and
    /// the least wanted, in bytes. The caller records only changes (see
    /// [`ReadTx::disk_low_recorded`]).
    pub fn record_disk(&self, low: bool, free: u64, min_free: u64) -> Result<()> {
        self.record_event(
            if low {
                EventType::DiskLow
            } else {
                EventType::DiskOk
            },
            None,
            None,
            json!({ "free": free, "min_free_disk": min_free }),
        )
    }

    /// Records a lorry-overdue event for each lorry not mirrored
    /// successfully within `factor` × its interval (one that never
    /// succeeded: that failed `factor` times in a row) and not already in
    /// an overdue spell; answers their paths.
    pub fn record_overdue_lorries(&self, factor: i64) -> Result<Vec<String>> {
        if factor < 1 {
            return Err(Error::Invalid {
                field: "overdue_factor",
                problem: format!("{factor} is less than 1"),
            });
        }
        let mut stmt = self.conn().prepare(
            "UPDATE lorries SET overdue = 1
             WHERE overdue = 0 AND interval > 0
               AND ((last_success IS NOT NULL AND last_success + ?1 * interval < ?2)
                    OR (last_success IS NULL AND consecutive_failures >= ?1))
             RETURNING path, from_host, interval, last_success, consecutive_failures",
        )?;
        let overdue: Vec<(String, String, i64, Option<i64>, i64)> = stmt
            .query_map(params![factor, self.now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut paths = Vec::with_capacity(overdue.len());
        for (path, from_host, interval, last_success, failures) in overdue {
            self.record_event(
                EventType::LorryOverdue,
                Some(&path),
                (!from_host.is_empty()).then_some(from_host.as_str()),
                json!({
                    "interval": interval,
                    "factor": factor,
                    "last_success": last_success,
                    "consecutive_failures": failures,
                }),
            )?;
            paths.push(path);
        }
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lorries::tests::lorry;
    use super::super::tests::fresh;
    use super::super::{JobUpdate, StateDb};
    use super::*;

    /// A mirror whose upstream deleted thousands of refs makes a bounded
    /// event: the first MAX_LISTED are listed, the rest counted; a failed
    /// spec's long error with a credential is cut and hidden.
    #[test]
    fn huge_results_make_bounded_events_without_secrets() {
        let refs: Vec<lc_api::RefChange> = (0..5000)
            .map(|i| lc_api::RefChange {
                name: format!("refs/tags/t{i}"),
                old: Some(format!("{i:040}")),
                new: None,
            })
            .collect();
        let spec = |name: &str, ok: bool| lc_api::SpecResult {
            name: name.into(),
            importer: "git".into(),
            ok,
            error: (!ok).then(|| format!("https://u:hunter2@x.example/ {}", "é".repeat(4000))),
            refs: refs.clone(),
            preserved: vec![lc_api::PreservedRef {
                name: "refs/tags/t0".into(),
                oid: "0".repeat(40),
                kept_as: "refs/lorry/preserved/s/refs/tags/t0".into(),
            }],
            bytes_received: 0,
            pushed: lc_api::Pushed::No,
            ..lc_api::SpecResult::default()
        };
        let result = JobResult {
            version: 1,
            specs: (0..150).map(|i| spec(&format!("s{i}"), i != 0)).collect(),
        };
        let summary = job_summary(&result);
        assert_eq!(summary["specs"].as_array().map(Vec::len), Some(MAX_LISTED));
        assert_eq!(summary["more"], 50);
        let error = summary["specs"][0]["error"].as_str().expect("error");
        assert!(
            error.len() <= ERROR_MAX && !error.contains("hunter2"),
            "{error}"
        );
        assert_eq!(summary["specs"][1]["refs_deleted"], 5000);
        let body = rewritten_refs(&result).expect("rewritten");
        assert_eq!(body["refs"].as_array().map(Vec::len), Some(MAX_LISTED));
        assert_eq!(body["more"], 150 * 5000 - MAX_LISTED);
        // The preserved one comes first, with where it was kept.
        assert_eq!(
            body["refs"][0]["kept_as"],
            "refs/lorry/preserved/s/refs/tags/t0"
        );
        assert!(body["refs"][1]["kept_as"].is_null());
        let clean_run = JobResult {
            version: 1,
            specs: vec![lc_api::SpecResult {
                refs: vec![],
                preserved: vec![],
                ..spec("s", true)
            }],
        };
        assert_eq!(rewritten_refs(&clean_run), None);
    }

    fn all(db: &StateDb) -> Vec<Event> {
        db.read(|tx| {
            tx.events(&EventFilter {
                limit: EventFilter::MAX_LIMIT,
                ..EventFilter::default()
            })
        })
        .expect("events")
        .0
    }

    fn kinds(db: &StateDb) -> Vec<(&'static str, Option<String>)> {
        all(db)
            .into_iter()
            .map(|e| (e.event_type.name(), e.path))
            .collect()
    }

    fn run(db: &StateDb, exit: i64) -> i64 {
        let (job_id, _) = db
            .write(|tx| tx.start_next_job("m", 7))
            .expect("give")
            .expect("a job");
        let update = JobUpdate {
            exit: Some(exit),
            ..JobUpdate::default()
        };
        db.write(|tx| tx.update_job(job_id, &update))
            .expect("update");
        job_id
    }

    #[test]
    fn jobs_failures_and_recovery_are_recorded_with_their_change() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| tx.upsert_lorry(&lorry("a", 0)))
            .expect("setup");
        run(&db, 1);
        run(&db, 1);
        let last = run(&db, 0);
        let a = || Some("a".to_owned());
        assert_eq!(
            kinds(&db),
            [
                ("job-started", a()),
                ("job-ended", a()),
                ("lorry-failed", a()),
                ("job-started", a()),
                ("job-ended", a()),
                ("lorry-failed", a()),
                ("job-started", a()),
                ("job-ended", a()),
                ("lorry-recovered", a()),
            ]
        );
        let events = all(&db);
        assert_eq!(events[5].body["consecutive_failures"], 2);
        assert_eq!(events[8].body["failures"], 2);
        assert_eq!(events[7].body["job_id"], last);
        assert_eq!(events[0].body["minion"], "m");
        assert!(events.iter().all(|e| e.time == 1_000));
        // An intermediate update records nothing.
        let (job_id, _) = db
            .write(|tx| tx.start_next_job("m", 7))
            .expect("give")
            .expect("job");
        let before = all(&db).len();
        db.write(|tx| tx.update_job(job_id, &JobUpdate::default()))
            .expect("update");
        assert_eq!(all(&db).len(), before);
    }

    #[test]
    fn a_rolled_back_change_leaves_no_event() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 0)))
            .expect("setup");
        let err = db.write(|tx| {
            tx.start_next_job("m", 1)?;
            Err::<(), _>(Error::UnknownLorry("forced".into()))
        });
        assert!(err.is_err());
        assert!(all(&db).is_empty());
    }

    #[test]
    fn the_benchs_switch_records_nothing_and_changes_nothing_else() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 0)))
            .expect("setup");
        db.set_without_events_for_bench(true);
        let (job_id, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("start")
            .expect("a job");
        db.write(|tx| tx.set_running_queue(false)).expect("stop");
        assert!(all(&db).is_empty());
        assert_eq!(
            db.read(|tx| tx.running_job_ids()).expect("jobs"),
            [job_id],
            "the job runs as it would with events"
        );
        db.set_without_events_for_bench(false);
        db.write(|tx| tx.set_running_queue(true)).expect("start");
        assert_eq!(kinds(&db), [("queue-started", None)]);
    }

    #[test]
    fn the_queue_records_only_real_changes() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.set_running_queue(true)).expect("start");
        db.write(|tx| tx.set_running_queue(false)).expect("stop");
        db.write(|tx| tx.set_running_queue(false))
            .expect("stop again");
        db.write(|tx| tx.set_running_queue(true)).expect("start");
        assert_eq!(
            kinds(&db),
            [("queue-stopped", None), ("queue-started", None)]
        );
    }

    #[test]
    fn overdue_is_recorded_once_per_spell() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| tx.upsert_lorry(&lorry("a", 100))).expect("a");
        run(&db, 0);
        db.set_pretend_time(1_300);
        assert!(
            db.write(|tx| tx.record_overdue_lorries(3))
                .expect("check")
                .is_empty()
        );
        db.set_pretend_time(1_301);
        assert_eq!(
            db.write(|tx| tx.record_overdue_lorries(3)).expect("check"),
            ["a"]
        );
        assert!(
            db.write(|tx| tx.record_overdue_lorries(3))
                .expect("again")
                .is_empty()
        );
        run(&db, 0);
        db.set_pretend_time(1_700);
        assert_eq!(
            db.write(|tx| tx.record_overdue_lorries(3)).expect("check"),
            ["a"]
        );
        let overdue: Vec<Event> = all(&db)
            .into_iter()
            .filter(|e| e.event_type == EventType::LorryOverdue)
            .collect();
        assert_eq!(overdue.len(), 2);
        assert_eq!(overdue[0].body["last_success"], 1_000);
        assert_eq!(overdue[1].body["last_success"], 1_301);
        // Never succeeded: overdue after `factor` failures in a row.
        db.write(|tx| tx.upsert_lorry(&lorry("b", 100))).expect("b");
        assert!(
            db.write(|tx| tx.record_overdue_lorries(1))
                .expect("check")
                .is_empty()
        );
    }

    #[test]
    fn filters_pages_and_retention() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| {
            tx.upsert_lorry(&lorry("up/a", 0))?;
            tx.upsert_lorry(&lorry("down/b", 0))
        })
        .expect("setup");
        run(&db, 1);
        db.set_pretend_time(2_000);
        run(&db, 0);
        let page = |filter: EventFilter| db.read(|tx| tx.events(&filter)).expect("page");
        let (first, more) = page(EventFilter {
            limit: 2,
            ..EventFilter::default()
        });
        assert_eq!((first.len(), more), (2, true));
        let (rest, more) = page(EventFilter {
            since: first[1].id,
            limit: 10,
            ..EventFilter::default()
        });
        assert_eq!((rest.len(), more), (3, false));
        let (failed, _) = page(EventFilter {
            types: vec![EventType::LorryFailed, EventType::JobStarted],
            prefix: Some("down/".into()),
            limit: 10,
            ..EventFilter::default()
        });
        let failed: Vec<_> = failed.iter().map(|e| e.event_type).collect();
        assert_eq!(failed, [EventType::JobStarted, EventType::LorryFailed]);
        let (newest, more) = page(EventFilter {
            limit: 2,
            last: true,
            ..EventFilter::default()
        });
        assert!(more);
        assert_eq!(
            newest.iter().map(|e| e.id).collect::<Vec<_>>(),
            [rest[1].id, rest[2].id]
        );
        assert!(
            db.read(|tx| tx.events(&EventFilter::default()))
                .is_err_and(|e| e.is_client_error())
        );
        assert_eq!(db.write(|tx| tx.remove_old_events(500)).expect("old"), 3);
        assert_eq!(all(&db).len(), 2);
        db.set_pretend_time(10_000);
        // All are old now: the newest is kept all the same.
        assert_eq!(db.write(|tx| tx.remove_old_events(500)).expect("all"), 1);
        let last = db.read(|tx| tx.last_event_id()).expect("last");
        assert_eq!(all(&db).iter().map(|e| e.id).collect::<Vec<_>>(), [last]);
        run(&db, 0);
        assert!(all(&db)[1].id > last, "ids are never reused");
    }

    /// Without AUTOINCREMENT, ids still only grow: retention never removes
    /// the newest event (a delete of it is refused by the schema), so the
    /// next id is above every id given, in this process or a later one.
    #[test]
    fn ids_never_go_back_after_retention() {
        let (dir, db) = fresh();
        db.set_pretend_time(1_000);
        for _ in 0..3 {
            db.write(|tx| tx.set_running_queue(false)).expect("stop");
            db.write(|tx| tx.set_running_queue(true)).expect("start");
        }
        let newest = db.read(|tx| tx.last_event_id()).expect("newest");
        assert_eq!(newest, 6);
        db.set_pretend_time(1_000_000);
        assert_eq!(db.write(|tx| tx.remove_old_events(10)).expect("old"), 5);
        assert_eq!(db.write(|tx| tx.remove_old_events(10)).expect("again"), 0);
        let refused = db.write(|tx| {
            tx.conn()
                .execute("DELETE FROM events WHERE id = ?1", [newest])?;
            Ok(())
        });
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("newest event is never deleted")),
            "{refused:?}"
        );
        // A lone newest row under no pressure of retention: still kept.
        assert_eq!(all(&db).iter().map(|e| e.id).collect::<Vec<_>>(), [6]);
        drop(db);
        let db = StateDb::open(&dir.path().join("state.db")).expect("reopen");
        db.write(|tx| tx.set_running_queue(false)).expect("stop");
        assert_eq!(all(&db).last().map(|e| e.id), Some(7));
    }

    /// A STATEDB of schema 17 (events with AUTOINCREMENT) brought to the
    /// current one, as `StateDb::open` does.
    fn upgraded(setup: &[&str]) -> (tempfile::TempDir, StateDb) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let mut conn = rusqlite::Connection::open(&path).expect("open");
            rusqlite_migration::Migrations::from_slice(&super::super::MIGRATIONS[..17])
                .to_latest(&mut conn)
                .expect("the schema before");
            for sql in setup {
                conn.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute([]))
                    .expect("data");
            }
        }
        let db = StateDb::open(&path).expect("upgrade");
        (dir, db)
    }

    const OLD_EVENTS: &str = "INSERT INTO events (time, type, path, host, body)
         VALUES (10, 'queue-stopped', NULL, NULL, '{}'),
                (20, 'queue-started', NULL, NULL, '{}'),
                (30, 'job-started', 'a', 'h', '{\"job_id\": 1}')";

    /// Migration 18 keeps the events, their ids and bodies; the next id
    /// follows the newest; no `sqlite_sequence` row is written for events
    /// any more.
    #[test]
    fn the_migration_keeps_events_and_ids() {
        let (_dir, db) = upgraded(&[OLD_EVENTS, "DELETE FROM events WHERE id = 1"]);
        let before = all(&db);
        assert_eq!(
            before
                .iter()
                .map(|e| (e.id, e.event_type.name()))
                .collect::<Vec<_>>(),
            [(2, "queue-started"), (3, "job-started")]
        );
        assert_eq!(before[1].body["job_id"], 1);
        assert_eq!(before[1].host.as_deref(), Some("h"));
        db.write(|tx| tx.set_running_queue(false)).expect("stop");
        assert_eq!(all(&db).last().map(|e| e.id), Some(4));
        let (sequences, autoincrement): (i64, i64) = db
            .read(|tx| {
                Ok(tx.conn().query_row(
                    "SELECT (SELECT COUNT(*) FROM sqlite_sequence WHERE name = 'events'),
                            (SELECT COUNT(*) FROM sqlite_schema
                             WHERE name = 'events' AND sql LIKE '%AUTOINCREMENT%')",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .expect("schema");
        assert_eq!((sequences, autoincrement), (0, 0));
    }

    /// Retention before migration 18 could remove every event, leaving the
    /// highest id only in `sqlite_sequence`: the first event after the
    /// upgrade still gets a higher id, and so do the later ones, also in
    /// a STATEDB opened again.
    #[test]
    fn an_emptied_log_keeps_its_ids_through_the_migration() {
        let (dir, db) = upgraded(&[OLD_EVENTS, "DELETE FROM events"]);
        assert!(all(&db).is_empty());
        assert_eq!(db.read(|tx| tx.last_event_id()).expect("last"), 0);
        db.write(|tx| tx.set_running_queue(false)).expect("stop");
        db.write(|tx| tx.set_running_queue(true)).expect("start");
        assert_eq!(
            all(&db).iter().map(|e| e.id).collect::<Vec<_>>(),
            [4, 5],
            "above the 3 given before the upgrade"
        );
        drop(db);
        let db = StateDb::open(&dir.path().join("state.db")).expect("reopen");
        db.write(|tx| tx.set_running_queue(false)).expect("stop");
        assert_eq!(all(&db).last().map(|e| e.id), Some(6));
    }

    /// Text from outside reaches an event body with URL credentials hidden;
    /// the same error again records nothing new.
    #[test]
    fn host_errors_are_recorded_once_and_without_credentials() {
        let (_dir, db) = fresh();
        db.write(|tx| {
            tx.conn().execute(
                "INSERT INTO hosts (host, type, protocol, lorry_interval, lorry_timeout,
                                    ls_interval)
                 VALUES ('h.example', 'gitlab', 'https', 100, 100, 100)",
                [],
            )?;
            Ok(())
        })
        .expect("host");
        let error =
            "GET https://user:PLANTED@h.example/api/v4/projects?private_token=PLANTED2: 500";
        for _ in 0..2 {
            db.write(|tx| tx.record_ls_failure("h.example", error))
                .expect("failure");
        }
        let events = all(&db);
        assert_eq!(events.len(), 1, "{events:?}");
        let text = events[0].body.to_string();
        assert!(!text.contains("PLANTED"), "{text}");
        assert!(text.contains("h.example/api/v4/projects"), "{text}");
        assert_eq!(events[0].host.as_deref(), Some("h.example"));
    }
}
