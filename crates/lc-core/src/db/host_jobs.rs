//! The per-Upstream-Host cap on running jobs (`--max-jobs-per-host`).
//!
//! A lorry's Upstream Host is its `from_host` (generated lorries only;
//! lorries from `.lorry` files have none and are never capped). When some
//! hosts are at their cap, give-me-job skips their lorries and hands out the
//! first other one in queue order.

use std::sync::LazyLock;

use rusqlite::OptionalExtension;
use rusqlite::types::Value;

use super::lorries::{first_found, next_due_lookups};
use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// Lorries of hosts not in the JSON list `?2`.
const NOT_SATURATED: &str = " AND from_host NOT IN (SELECT value FROM json_each(?2))";

/// The next-due lookups, skipping the lorries of the hosts in `?2`; each
/// walks its index until a lorry of another host.
static NEXT_DUE_WITHIN_CAP: LazyLock<Vec<String>> =
    LazyLock::new(|| next_due_lookups(NOT_SATURATED));

impl ReadTx<'_> {
    pub fn max_jobs_per_host(&self) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .prepare("SELECT max_jobs FROM max_jobs_per_host WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?)
    }

    /// Upstream Hosts with at least `max` running jobs. Reads only running
    /// jobs (the `jobs_running` index; CROSS JOIN keeps SQLite from
    /// scanning every lorry instead) and their lorries by path.
    fn saturated_hosts(&self, max: i64) -> Result<Vec<String>> {
        let mut stmt = self.conn().prepare(
            "SELECT l.from_host FROM jobs j CROSS JOIN lorries l ON l.path = j.path
             WHERE j.ended IS NULL AND l.running_job = j.job_id AND l.from_host != ''
             GROUP BY l.from_host HAVING COUNT(*) >= ?1",
        )?;
        let hosts = stmt
            .query_map([max], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(hosts)
    }

    /// Like `next_due_lorry`, skipping lorries of hosts at their cap. With
    /// no cap, or no host at it, it is `next_due_lorry` itself.
    pub(super) fn next_due_lorry_within_host_cap(&self) -> Result<Option<String>> {
        let Some(max) = self.max_jobs_per_host()? else {
            return self.next_due_lorry();
        };
        let saturated = self.saturated_hosts(max)?;
        if saturated.is_empty() {
            return self.next_due_lorry();
        }
        let saturated = serde_json::Value::from(saturated).to_string();
        first_found(self, &NEXT_DUE_WITHIN_CAP, &[Value::Text(saturated)])
    }
}

impl WriteTx<'_> {
    /// Sets the cap; `None` removes it. Writes nothing when it is unchanged.
    pub fn set_max_jobs_per_host(&self, max_jobs: Option<i64>) -> Result<()> {
        match max_jobs {
            Some(n) if n < 0 => {
                return Err(Error::Invalid {
                    field: "max_jobs_per_host",
                    problem: format!("{n} is negative"),
                });
            }
            Some(n) => self
                .conn()
                .prepare(
                    "INSERT INTO max_jobs_per_host (id, max_jobs) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET max_jobs = excluded.max_jobs
                     WHERE max_jobs IS NOT excluded.max_jobs",
                )?
                .execute([n])?,
            None => self
                .conn()
                .prepare("DELETE FROM max_jobs_per_host")?
                .execute([])?,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::StateDb;
    use super::super::lorries::NewLorry;
    use super::super::tests::fresh;

    fn lorry(path: &str, host: &str) -> NewLorry {
        NewLorry {
            path: path.into(),
            text: "{}".into(),
            from_host: host.into(),
            from_path: path.into(),
            interval: 100,
            lorry_timeout: 60,
        }
    }

    fn start(db: &StateDb) -> Option<String> {
        db.write(|tx| tx.start_next_job("minion", 1))
            .expect("start")
            .map(|(_, l)| l.path)
    }

    #[test]
    fn hosts_at_their_cap_are_skipped() {
        let (_dir, db) = fresh();
        db.set_pretend_time(10_000);
        db.write(|tx| {
            // a/* are longest overdue: all of them come first in the queue.
            for (i, p) in ["a/1", "a/2", "a/3"].iter().enumerate() {
                tx.upsert_lorry(&lorry(p, "a"))?;
                tx.conn().execute(
                    "UPDATE lorries SET last_run = ?2 WHERE path = ?1",
                    rusqlite::params![p, i as i64],
                )?;
            }
            tx.upsert_lorry(&lorry("b/1", "b"))?;
            tx.upsert_lorry(&lorry("c/1", ""))?;
            tx.conn().execute(
                "UPDATE lorries SET last_run = 50 WHERE path IN ('b/1', 'c/1')",
                [],
            )?;
            tx.set_max_jobs_per_host(Some(2))
        })
        .expect("seed");
        assert_eq!(start(&db).as_deref(), Some("a/1"));
        assert_eq!(start(&db).as_deref(), Some("a/2"));
        // a has 2 running: a/3 waits; b/1 and the host-less c/1 go.
        assert_eq!(start(&db).as_deref(), Some("b/1"));
        assert_eq!(start(&db).as_deref(), Some("c/1"));
        assert_eq!(start(&db), None);
        // One of a's jobs ends: a/3 may go.
        db.write(|tx| {
            let job = tx.conn().query_row(
                "SELECT running_job FROM lorries WHERE path = 'a/1'",
                [],
                |r| r.get::<_, i64>(0),
            )?;
            tx.update_job(
                job,
                &super::super::JobUpdate {
                    exit: Some(0),
                    ..Default::default()
                },
            )
        })
        .expect("end");
        assert_eq!(start(&db).as_deref(), Some("a/3"));
    }

    #[test]
    fn the_capped_lookups_use_the_indexes() {
        let (_dir, db) = fresh();
        let plan = |sql: &str| -> String {
            db.read(|tx| {
                let mut stmt = tx.conn().prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows: Vec<String> = stmt
                    .query_map([], |r| r.get(3))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows.join("; "))
            })
            .expect("plan")
        };
        let running = plan(
            "SELECT l.from_host FROM jobs j CROSS JOIN lorries l ON l.path = j.path
             WHERE j.ended IS NULL AND l.running_job = j.job_id AND l.from_host != ''
             GROUP BY l.from_host HAVING COUNT(*) >= 1",
        );
        assert!(
            running.contains("SCAN j USING INDEX jobs_running"),
            "{running}"
        );
        assert!(!running.contains("SCAN l"), "{running}");
        let plans = super::super::lorries::tests::lookup_plans(&db, super::NOT_SATURATED);
        super::super::lorries::tests::assert_index_walks(&plans);
    }

    #[test]
    fn no_cap_and_unchanged_caps_write_nothing_new() {
        let (_dir, db) = fresh();
        assert_eq!(db.read(|tx| tx.max_jobs_per_host()).expect("read"), None);
        db.write(|tx| tx.set_max_jobs_per_host(Some(3)))
            .expect("set");
        db.write(|tx| tx.set_max_jobs_per_host(Some(3)))
            .expect("again");
        assert_eq!(db.read(|tx| tx.max_jobs_per_host()).expect("read"), Some(3));
        db.write(|tx| tx.set_max_jobs_per_host(None))
            .expect("clear");
        assert_eq!(db.read(|tx| tx.max_jobs_per_host()).expect("read"), None);
        assert!(
            db.write(|tx| tx.set_max_jobs_per_host(Some(-1)))
                .expect_err("negative")
                .is_client_error()
        );
    }
}
