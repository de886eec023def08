//! Jobs ended per hour (table `job_stats_hourly`), for the pages' charts.
//!
//! `end_job` adds one to the row of the job's hour and Upstream Host in the
//! transaction that ends it, so the counts agree with the jobs whatever
//! crashes; the housekeeping task forgets rows older than
//! [`JOB_STATS_MAX_AGE`]. The charts read at most a week of rows
//! (hosts × 168), never the jobs table.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// How long the per-hour counts are kept: 35 days.
pub const JOB_STATS_MAX_AGE: i64 = 35 * 86_400;

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

/// Jobs that ended in one span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Unix time the span starts (an hour or a day of 24 hours, UTC).
    pub start: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// The start of the hour holding `time`.
fn hour_of(time: i64) -> i64 {
    time - time.rem_euclid(HOUR)
}

impl ReadTx<'_> {
    /// Jobs ended in each of the `hours` hours up to and including the
    /// current one, oldest first; every hour is there, with zeros if need be.
    pub fn jobs_per_hour(&self, hours: i64) -> Result<Vec<JobCounts>> {
        let hours = hours.clamp(1, JOB_STATS_MAX_AGE / HOUR);
        let first = hour_of(self.now) - (hours - 1) * HOUR;
        let mut spans: Vec<JobCounts> = (0..hours)
            .map(|i| JobCounts {
                start: first + i * HOUR,
                ..JobCounts::default()
            })
            .collect();
        let mut stmt = self.conn().prepare(
            "SELECT hour, SUM(succeeded), SUM(failed) FROM job_stats_hourly
             WHERE hour >= ?1 AND hour <= ?2 GROUP BY hour",
        )?;
        let rows = stmt.query_map(params![first, hour_of(self.now)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (hour, succeeded, failed) = row?;
            let Some(span) = usize::try_from((hour - first) / HOUR)
                .ok()
                .and_then(|i| spans.get_mut(i))
            else {
                return Err(Error::Corrupt(format!("job_stats_hourly hour {hour}")));
            };
            span.succeeded += succeeded;
            span.failed += failed;
        }
        Ok(spans)
    }

    /// Per Upstream Host, the jobs ended in each of `days` spans of 24
    /// hours, the last ending with the current hour; oldest first. Every
    /// configured host is there, and any other whose lorries' jobs ended in
    /// that time (a host since removed); lorries of their own are not.
    pub fn host_jobs_per_day(&self, days: i64) -> Result<BTreeMap<String, Vec<JobCounts>>> {
        let days = days.clamp(1, JOB_STATS_MAX_AGE / DAY);
        let first = hour_of(self.now) + HOUR - days * DAY;
        let zeros = || -> Vec<JobCounts> {
            (0..days)
                .map(|i| JobCounts {
                    start: first + i * DAY,
                    ..JobCounts::default()
                })
                .collect()
        };
        let mut hosts: BTreeMap<String, Vec<JobCounts>> = BTreeMap::new();
        let mut stmt = self.conn().prepare("SELECT host FROM hosts")?;
        for host in stmt.query_map([], |r| r.get::<_, String>(0))? {
            hosts.insert(host?, zeros());
        }
        let mut stmt = self.conn().prepare(
            "SELECT host, (hour - ?1) / 86400 AS day, SUM(succeeded), SUM(failed)
             FROM job_stats_hourly
             WHERE hour >= ?1 AND hour <= ?2 AND host != ''
             GROUP BY host, day",
        )?;
        let rows = stmt.query_map(params![first, hour_of(self.now)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (host, day, succeeded, failed) = row?;
            let spans = hosts.entry(host).or_insert_with(zeros);
            let Some(span) = usize::try_from(day).ok().and_then(|i| spans.get_mut(i)) else {
                return Err(Error::Corrupt(format!("job_stats_hourly day {day}")));
            };
            span.succeeded += succeeded;
            span.failed += failed;
        }
        Ok(hosts)
    }
}

impl WriteTx<'_> {
    /// Counts one job ended now by a lorry of Upstream Host `host` (`""`
    /// for none). Called by `end_job`, in the job's end transaction, and by
    /// `mark_unchanged` (a check without a job counts as a success).
    pub(super) fn count_job_end(&self, host: &str, succeeded: bool) -> Result<()> {
        self.conn().execute(
            "INSERT INTO job_stats_hourly (hour, host, succeeded, failed)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (hour, host) DO UPDATE SET
                 succeeded = succeeded + excluded.succeeded,
                 failed = failed + excluded.failed",
            params![
                hour_of(self.now),
                host,
                i64::from(succeeded),
                i64::from(!succeeded)
            ],
        )?;
        Ok(())
    }

    /// Forgets the counts of hours that ended more than `max_age` seconds
    /// ago. Answers how many rows went.
    pub fn remove_old_job_stats(&self, max_age: i64) -> Result<usize> {
        if max_age < 0 {
            return Err(Error::Invalid {
                field: "max_age",
                problem: "must not be negative".into(),
            });
        }
        Ok(self.conn().execute(
            "DELETE FROM job_stats_hourly WHERE hour + 3600 <= ?1",
            [self.now - max_age],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lorries::tests::lorry;
    use super::super::tests::fresh;
    use super::super::{JobUpdate, NewLorry, StateDb};
    use super::*;

    /// 2023-11-14 22:00 UTC, the start of an hour.
    const H0: i64 = 1_700_000_000 - 1_700_000_000 % HOUR;

    /// Runs one job of the next due lorry at `time`, ending with `exit`.
    fn job_at(db: &StateDb, time: i64, exit: i64) {
        db.set_pretend_time(time);
        let (id, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("a due lorry");
        db.write(|tx| {
            tx.update_job(
                id,
                &JobUpdate {
                    exit: Some(exit),
                    ..JobUpdate::default()
                },
            )
        })
        .expect("end");
    }

    fn hosted(path: &str, host: &str) -> NewLorry {
        NewLorry {
            from_host: host.into(),
            ..lorry(path, 0)
        }
    }

    #[test]
    fn ended_jobs_are_counted_per_hour_and_host() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&hosted("a", "git.example.org")))
            .expect("setup");
        job_at(&db, H0 + 10, 0);
        job_at(&db, H0 + 20, 1);
        job_at(&db, H0 + 3599, 0);
        job_at(&db, H0 + 2 * HOUR, 128);
        db.set_pretend_time(H0 + 2 * HOUR + 5);
        let hours = db.read(|tx| tx.jobs_per_hour(3)).expect("hours");
        assert_eq!(
            hours,
            [
                JobCounts {
                    start: H0,
                    succeeded: 2,
                    failed: 1
                },
                JobCounts {
                    start: H0 + HOUR,
                    succeeded: 0,
                    failed: 0
                },
                JobCounts {
                    start: H0 + 2 * HOUR,
                    succeeded: 0,
                    failed: 1
                },
            ]
        );
        db.write(|tx| {
            tx.conn().execute(
                "INSERT INTO hosts (host, type, protocol, lorry_interval, lorry_timeout, ls_interval)
                 VALUES ('quiet.example.org', 'gitlab', 'https', 60, 60, 60)",
                [],
            )?;
            Ok(())
        })
        .expect("a configured host");
        let days = db.read(|tx| tx.host_jobs_per_day(2)).expect("days");
        assert_eq!(
            days.keys().collect::<Vec<_>>(),
            ["git.example.org", "quiet.example.org"]
        );
        assert_eq!(
            days["quiet.example.org"],
            [
                JobCounts {
                    start: H0 + 3 * HOUR - 2 * DAY,
                    ..JobCounts::default()
                },
                JobCounts {
                    start: H0 + 3 * HOUR - DAY,
                    ..JobCounts::default()
                }
            ]
        );
        let host = &days["git.example.org"];
        assert_eq!(host.len(), 2);
        assert_eq!((host[0].succeeded, host[0].failed), (0, 0));
        assert_eq!((host[1].succeeded, host[1].failed), (2, 2));
        assert_eq!(host[1].start, H0 + 3 * HOUR - DAY);
    }

    #[test]
    fn ghosts_count_as_failures_and_lorries_of_their_own_have_no_host() {
        let (_dir, db) = fresh();
        db.set_pretend_time(H0);
        db.write(|tx| tx.upsert_lorry(&lorry("own", 0)))
            .expect("setup");
        db.write(|tx| tx.start_next_job("m", 1)).expect("give");
        db.set_pretend_time(H0 + 100);
        assert_eq!(
            db.write(|tx| tx.remove_ghost_jobs(10)).expect("ghosts"),
            [1]
        );
        let hours = db.read(|tx| tx.jobs_per_hour(1)).expect("hours");
        assert_eq!((hours[0].succeeded, hours[0].failed), (0, 1));
        assert!(
            db.read(|tx| tx.host_jobs_per_day(7))
                .expect("days")
                .is_empty()
        );
    }

    /// Upgrading counts the ended jobs STATEDB still remembers.
    #[test]
    fn the_migration_counts_the_jobs_remembered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let mut conn = rusqlite::Connection::open(&path).expect("open");
            // Migrations 1 to 12: the schema before migration 13.
            rusqlite_migration::Migrations::from_slice(&super::super::MIGRATIONS[..12])
                .to_latest(&mut conn)
                .expect("the schema before");
            for sql in [
                "INSERT INTO lorries (path, text, interval, lorry_timeout, from_host)
                 VALUES ('a', '{}', 100, 60, 'h'), ('b', '{}', 100, 60, '')",
                "INSERT INTO jobs (host, pid, path, started, ended, updated, timeout, exit)
                 VALUES ('m', 1, 'a', 10, 3610, 3610, 60, '0'),
                        ('m', 1, 'a', 10, 3620, 3620, 60, '1'),
                        ('m', 1, 'b', 10, 3630, 3630, 60, '0'),
                        ('m', 1, 'gone', 10, 20, 20, 60, '128'),
                        ('m', 1, 'b', 10, NULL, 3640, 60, NULL)",
            ] {
                conn.prepare_cached(sql)
                    .and_then(|mut stmt| stmt.execute([]))
                    .expect("data");
            }
        }
        let db = StateDb::open(&path).expect("upgrade");
        db.set_pretend_time(3700);
        let hours = db.read(|tx| tx.jobs_per_hour(2)).expect("hours");
        assert_eq!(
            hours,
            [
                JobCounts {
                    start: 0,
                    succeeded: 0,
                    failed: 1
                },
                JobCounts {
                    start: 3600,
                    succeeded: 2,
                    failed: 1
                }
            ]
        );
        let days = db.read(|tx| tx.host_jobs_per_day(1)).expect("days");
        assert_eq!(
            days.iter()
                .map(|(h, d)| (h.as_str(), d[0].succeeded, d[0].failed))
                .collect::<Vec<_>>(),
            [("h", 1, 1)]
        );
    }

    #[test]
    fn old_counts_are_forgotten() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 0)))
            .expect("setup");
        job_at(&db, H0, 0);
        job_at(&db, H0 + HOUR, 0);
        db.set_pretend_time(H0 + HOUR + JOB_STATS_MAX_AGE);
        // The first hour ended exactly JOB_STATS_MAX_AGE ago.
        assert_eq!(
            db.write(|tx| tx.remove_old_job_stats(JOB_STATS_MAX_AGE))
                .expect("prune"),
            1
        );
        db.set_pretend_time(H0 + HOUR);
        let hours = db.read(|tx| tx.jobs_per_hour(2)).expect("hours");
        assert_eq!(
            hours.iter().map(|h| h.succeeded).collect::<Vec<_>>(),
            [0, 1]
        );
        assert!(db.write(|tx| tx.remove_old_job_stats(-1)).is_err());
    }
}
