//! Aggregates of STATEDB for `/1.0/metrics`.

use super::ReadTx;
use crate::error::Result;

/// A failing lorry with at least this many failures in a row, or that has
/// never succeeded, counts as an error rather than degraded.
pub const ERROR_STREAK: i64 = 3;

/// The fleet at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetSnapshot {
    pub total: i64,
    /// Last job succeeded.
    pub successful: i64,
    /// Last job failed, but the lorry succeeded recently (fewer than
    /// [`ERROR_STREAK`] failures in a row).
    pub degraded: i64,
    /// Last job failed, and the lorry has failed [`ERROR_STREAK`] times in a
    /// row or never succeeded.
    pub errors: i64,
    pub never_run: i64,
    pub running_jobs: i64,
    /// Idle lorries whose due time has come: the queue's depth.
    pub waiting: i64,
    /// Waiting lorries due for longer than their own interval: a whole run missed.
    pub overdue: i64,
    /// Seconds the longest-waiting lorry has been due; 0 when none waits.
    pub oldest_waiting_seconds: i64,
    pub lorries: Vec<LorryHealth>,
}

/// One lorry's health.
#[derive(Debug, Clone, PartialEq)]
pub struct LorryHealth {
    pub path: String,
    pub last_success: Option<i64>,
    pub consecutive_failures: i64,
    pub disk_usage: Option<i64>,
}

impl ReadTx<'_> {
    pub fn fleet_snapshot(&self) -> Result<FleetSnapshot> {
        let mut snapshot = self.conn().query_row(
            "SELECT COUNT(*),
                 COALESCE(SUM(last_run_exit = '0'), 0),
                 COALESCE(SUM(last_run_exit != '0' AND consecutive_failures < ?2
                              AND last_success IS NOT NULL), 0),
                 COALESCE(SUM(last_run_exit != '0' AND (consecutive_failures >= ?2
                              OR last_success IS NULL)), 0),
                 COALESCE(SUM(last_run_exit IS NULL), 0),
                 COALESCE(SUM(running_job IS NULL AND due <= ?1), 0),
                 COALESCE(SUM(running_job IS NULL AND due + interval <= ?1), 0),
                 COALESCE(MAX(CASE WHEN running_job IS NULL AND due <= ?1 THEN ?1 - due END), 0)
             FROM lorries",
            [self.now, ERROR_STREAK],
            |r| {
                Ok(FleetSnapshot {
                    total: r.get(0)?,
                    successful: r.get(1)?,
                    degraded: r.get(2)?,
                    errors: r.get(3)?,
                    never_run: r.get(4)?,
                    waiting: r.get(5)?,
                    overdue: r.get(6)?,
                    oldest_waiting_seconds: r.get(7)?,
                    ..FleetSnapshot::default()
                })
            },
        )?;
        snapshot.running_jobs =
            self.conn()
                .query_row("SELECT COUNT(*) FROM jobs WHERE ended IS NULL", [], |r| {
                    r.get(0)
                })?;
        let mut stmt = self.conn().prepare(
            "SELECT path, last_success, consecutive_failures, disk_usage FROM lorries ORDER BY path",
        )?;
        snapshot.lorries = stmt
            .query_map([], |r| {
                Ok(LorryHealth {
                    path: r.get(0)?,
                    last_success: r.get(1)?,
                    consecutive_failures: r.get(2)?,
                    disk_usage: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::super::JobUpdate;
    use super::super::lorries::tests::lorry;
    use super::super::tests::fresh;

    #[test]
    fn fleet_counts_follow_job_results() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| {
            for path in ["a", "b", "c", "d"] {
                tx.upsert_lorry(&lorry(path, 100))?;
            }
            Ok(())
        })
        .expect("setup");
        let run = |exit| {
            let (id, _) = db
                .write(|tx| tx.start_next_job("m", 1))
                .expect("give")
                .expect("job");
            let update = JobUpdate {
                exit: Some(exit),
                ..JobUpdate::default()
            };
            db.write(|tx| tx.update_job(id, &update)).expect("end");
        };
        run(0); // a succeeds
        run(1); // b fails, never succeeded: error
        db.write(|tx| tx.start_next_job("m", 1)).expect("give"); // c runs
        let s = db.read(|tx| tx.fleet_snapshot()).expect("snapshot");
        assert_eq!((s.total, s.successful, s.degraded, s.errors), (4, 1, 0, 1));
        assert_eq!((s.never_run, s.running_jobs, s.waiting), (2, 1, 1));
        assert_eq!(s.lorries[0].last_success, Some(1_000));

        // An hour later everything idle is due again and has missed whole runs.
        db.set_pretend_time(4_600);
        let s = db.read(|tx| tx.fleet_snapshot()).expect("snapshot");
        assert_eq!((s.waiting, s.overdue), (3, 3));
        assert_eq!(s.oldest_waiting_seconds, 4_600 - 100);
    }
}
