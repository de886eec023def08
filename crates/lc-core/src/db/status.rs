//! Read-side queries of the admin pages: the status page's counts and its
//! filtered, paged run queue; job summaries; job output as it arrives.
//!
//! The status page must stay fast at 100,000 lorries, so it never reads the
//! whole queue: one aggregate query counts the lorries in each state, and
//! one query returns a single page of rows. Both filter by path prefix.

use lc_api::LorryInfo;
use std::sync::LazyLock;

use rusqlite::{OptionalExtension, params};

use super::ReadTx;
use super::lorries::{LORRY_COLUMNS, QUEUE_ORDER_TERMS, lorry_from_row};
use crate::error::{Error, Result};

/// The state of a lorry as the status page shows it. Each lorry is in
/// exactly one: a running lorry is `Running` whatever its last exit, an idle
/// one whose last job failed is `Failed` whether or not it is due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LorryState {
    /// Idle, last job succeeded (or never ran) and not due yet.
    Fresh,
    /// Idle and due: waiting for a minion.
    Due,
    Running,
    /// Idle and its last job failed.
    Failed,
}

impl LorryState {
    pub const ALL: [LorryState; 4] = [
        LorryState::Failed,
        LorryState::Due,
        LorryState::Running,
        LorryState::Fresh,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LorryState::Fresh => "fresh",
            LorryState::Due => "due",
            LorryState::Running => "running",
            LorryState::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<LorryState> {
        LorryState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The state of `lorry` at time `now`; agrees with [`STATE_SQL`].
    pub fn of(lorry: &LorryInfo, now: i64) -> LorryState {
        if lorry.running_job.is_some() {
            LorryState::Running
        } else if lorry
            .last_run_exit
            .as_deref()
            .is_some_and(|exit| exit != "0")
        {
            LorryState::Failed
        } else if lorry.due <= now {
            LorryState::Due
        } else {
            LorryState::Fresh
        }
    }
}

/// The state of a lorry row in SQL; `?1` is now. Agrees with [`LorryState::of`].
const STATE_SQL: &str = "(CASE WHEN running_job IS NOT NULL THEN 'running'
     WHEN last_run_exit IS NOT NULL AND last_run_exit != '0' THEN 'failed'
     WHEN due <= ?1 THEN 'due'
     ELSE 'fresh' END)";

/// Rows matching the path prefix `?2` (empty matches all).
const PREFIX_SQL: &str = "substr(path, 1, length(?2)) = ?2";

/// Failed lorries first, then the run queue's own order (see `lorries.rs`).
/// A test checks that without failures this is exactly [`ReadTx::queue`].
static PAGE_ORDER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "ORDER BY CASE WHEN running_job IS NULL AND last_run_exit IS NOT NULL
                        AND last_run_exit != '0' THEN 0 ELSE 1 END,
                  {}",
        *QUEUE_ORDER_TERMS
    )
});

/// How many lorries under a prefix are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub fresh: i64,
    pub due: i64,
    pub running: i64,
    pub failed: i64,
    /// Due lorries that have waited at least their own interval more: a
    /// whole run missed. Never-run lorries count, as in `/1.0/metrics`.
    pub overdue: i64,
    pub freshness: Freshness,
}

/// How long ago lorries were last mirrored successfully, measured in their
/// own intervals. Each lorry is in exactly one field, whatever its state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    /// At most one interval ago.
    pub within_1x: i64,
    /// More than one, at most two intervals ago.
    pub within_2x: i64,
    /// More than two, at most four intervals ago.
    pub within_4x: i64,
    /// More than four intervals ago.
    pub beyond_4x: i64,
    /// Never.
    pub never: i64,
}

impl StateCounts {
    pub fn total(&self) -> i64 {
        self.fresh + self.due + self.running + self.failed
    }

    pub fn get(&self, state: LorryState) -> i64 {
        match state {
            LorryState::Fresh => self.fresh,
            LorryState::Due => self.due,
            LorryState::Running => self.running,
            LorryState::Failed => self.failed,
        }
    }
}

/// Which rows of the run queue to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Only paths starting with this; empty for all.
    pub prefix: String,
    /// Only lorries in this state; `None` for all.
    pub state: Option<LorryState>,
}

/// One page of the run queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuePage {
    /// Counts under the prefix, whatever the state filter.
    pub counts: StateCounts,
    /// Rows matching the whole filter.
    pub matching: i64,
    pub lorries: Vec<LorryInfo>,
}

/// A job without its output, for lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub job_id: i64,
    pub path: String,
    pub host: String,
    pub pid: i64,
    pub started: i64,
    pub ended: Option<i64>,
    /// Exit code once ended.
    pub exit: Option<String>,
    /// Whether the webapp has asked for it to be killed.
    pub kill: bool,
    pub disk_usage: Option<i64>,
}

/// Output of a job that arrived after some point, and whether it has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSince {
    /// The chunks' concatenated text.
    pub text: String,
    /// Pass this back to get only what arrives later.
    pub last_seq: i64,
    /// Exit code once the job has ended.
    pub exit: Option<String>,
}

impl ReadTx<'_> {
    /// Counts per state of the lorries whose path starts with `prefix`.
    pub fn state_counts(&self, prefix: &str) -> Result<StateCounts> {
        // One pass over the rows: the states and, summed up over them, how
        // many lorries succeeded within 1, 2 and 4 intervals (cumulative;
        // NULL, never, counts in none) and how many never did.
        let sql = format!(
            "SELECT {STATE_SQL} AS state, COUNT(*),
                    COALESCE(SUM(due + interval <= ?1), 0),
                    COALESCE(SUM(?1 - last_success <= interval), 0),
                    COALESCE(SUM(?1 - last_success <= 2 * interval), 0),
                    COALESCE(SUM(?1 - last_success <= 4 * interval), 0),
                    COALESCE(SUM(last_success IS NULL), 0)
             FROM lorries WHERE {PREFIX_SQL} GROUP BY state"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map(params![self.now, prefix], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                [
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ],
            ))
        })?;
        let mut counts = StateCounts::default();
        let mut within = [0; 4];
        for row in rows {
            let (state, n, overdue, fresh) = row?;
            for (sum, n) in within.iter_mut().zip(fresh) {
                *sum += n;
            }
            match LorryState::parse(&state) {
                Some(LorryState::Fresh) => counts.fresh = n,
                Some(LorryState::Due) => (counts.due, counts.overdue) = (n, overdue),
                Some(LorryState::Running) => counts.running = n,
                Some(LorryState::Failed) => counts.failed = n,
                None => return Err(Error::Corrupt(format!("unknown lorry state {state}"))),
            }
        }
        let [w1, w2, w4, never] = within;
        counts.freshness = Freshness {
            within_1x: w1,
            within_2x: w2 - w1,
            within_4x: w4 - w2,
            beyond_4x: counts.total() - never - w4,
            never,
        };
        Ok(counts)
    }

    /// Rows `offset..offset + limit` of the run queue under `filter`, failed
    /// lorries first, then in queue order; with the counts the page shows.
    pub fn queue_page(&self, filter: &QueueFilter, offset: i64, limit: i64) -> Result<QueuePage> {
        let counts = self.state_counts(&filter.prefix)?;
        let matching = match filter.state {
            Some(state) => counts.get(state),
            None => counts.total(),
        };
        let sql = format!(
            "SELECT {LORRY_COLUMNS} FROM lorries
             WHERE {PREFIX_SQL} AND (?3 IS NULL OR {STATE_SQL} = ?3)
             {} LIMIT ?4 OFFSET ?5",
            *PAGE_ORDER
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let lorries = stmt
            .query_map(
                params![
                    self.now,
                    filter.prefix,
                    filter.state.map(LorryState::name),
                    limit.max(0),
                    offset.max(0)
                ],
                lorry_from_row,
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(QueuePage {
            counts,
            matching,
            lorries,
        })
    }

    /// Jobs, newest first: all of them, or those of one lorry; at most
    /// `limit` from `offset`. Answers them and how many there are in all.
    pub fn job_summaries(
        &self,
        path: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<JobSummary>, i64)> {
        let total: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM jobs WHERE ?1 IS NULL OR path = ?1",
            [path],
            |r| r.get(0),
        )?;
        let mut stmt = self.conn().prepare(
            "SELECT job_id, path, host, pid, started, ended, exit, kill, disk_usage
             FROM jobs WHERE ?1 IS NULL OR path = ?1
             ORDER BY job_id DESC LIMIT ?2 OFFSET ?3",
        )?;
        let jobs = stmt
            .query_map(params![path, limit.max(0), offset.max(0)], |r| {
                Ok(JobSummary {
                    job_id: r.get(0)?,
                    path: r.get(1)?,
                    host: r.get(2)?,
                    pid: r.get(3)?,
                    started: r.get(4)?,
                    ended: r.get(5)?,
                    exit: r.get(6)?,
                    kill: r.get(7)?,
                    disk_usage: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok((jobs, total))
    }

    /// Output of job `job_id` that arrived after chunk `after_seq` (0 for
    /// all of it), and its exit code if it has ended.
    pub fn job_output_since(&self, job_id: i64, after_seq: i64) -> Result<OutputSince> {
        let (ended, exit): (Option<i64>, Option<String>) = self
            .conn()
            .query_row(
                "SELECT ended, exit FROM jobs WHERE job_id = ?1",
                [job_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(Error::UnknownJob(job_id))?;
        let mut stmt = self.conn().prepare(
            "SELECT seq, text FROM job_output WHERE job_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let mut since = OutputSince {
            text: String::new(),
            last_seq: after_seq,
            exit: if ended.is_some() { exit } else { None },
        };
        for chunk in stmt.query_map([job_id, after_seq], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })? {
            let (seq, text) = chunk?;
            since.text.push_str(&text);
            since.last_seq = seq;
        }
        Ok(since)
    }
}

#[cfg(test)]
mod tests {
    use super::super::JobUpdate;
    use super::super::StateDb;
    use super::super::lorries::tests::lorry;
    use super::super::tests::fresh;
    use super::*;

    const NOW: i64 = 1_000_000;

    /// a, b, c, d, up/e, up/f: runs a job for `a` (fails), `b` (succeeds)
    /// and leaves `c` running; d, up/e and up/f never ran.
    fn fleet() -> (tempfile::TempDir, StateDb) {
        let (dir, db) = fresh();
        db.set_pretend_time(NOW);
        db.write(|tx| {
            for path in ["a", "b", "c", "d", "up/e", "up/f"] {
                tx.upsert_lorry(&lorry(path, 100))?;
            }
            Ok(())
        })
        .expect("setup");
        for path in ["a", "b", "c"] {
            db.write(|tx| tx.move_to_top(path)).expect("move");
            let (id, info) = db
                .write(|tx| tx.start_next_job("m", 1))
                .expect("give")
                .expect("job");
            assert_eq!(info.path, path);
            let exit = match path {
                "a" => Some(2),
                "b" => Some(0),
                _ => None,
            };
            let update = JobUpdate {
                exit,
                stdout: format!("{path} out\n"),
                ..JobUpdate::default()
            };
            db.write(|tx| tx.update_job(id, &update)).expect("update");
        }
        (dir, db)
    }

    #[test]
    fn counts_put_each_lorry_in_one_state() {
        let (_dir, db) = fleet();
        let counts = db.read(|tx| tx.state_counts("")).expect("counts");
        // a failed; b fresh (ran at NOW, due at NOW+100); c running; d, up/*
        // due, and overdue: they never ran, so became due long ago.
        assert_eq!(
            counts,
            StateCounts {
                fresh: 1,
                due: 3,
                running: 1,
                failed: 1,
                overdue: 3,
                freshness: Freshness {
                    within_1x: 1,
                    never: 5,
                    ..Freshness::default()
                },
            }
        );
        let up = db.read(|tx| tx.state_counts("up/")).expect("counts");
        assert_eq!((up.total(), up.due), (2, 2));
        // b falls due, but is not overdue until a whole interval later.
        db.set_pretend_time(NOW + 100);
        let later = db.read(|tx| tx.state_counts("")).expect("counts");
        assert_eq!((later.due, later.overdue), (4, 3));
        db.set_pretend_time(NOW + 200);
        let later = db.read(|tx| tx.state_counts("")).expect("counts");
        assert_eq!((later.due, later.overdue), (4, 4));
    }

    #[test]
    fn freshness_counts_successes_in_intervals_whatever_the_state() {
        let (_dir, db) = fresh();
        db.set_pretend_time(NOW);
        db.write(|tx| {
            for (path, interval) in [("i400", 400), ("i200", 200), ("i100", 100), ("i50", 50)] {
                tx.upsert_lorry(&lorry(path, interval))?;
            }
            tx.upsert_lorry(&lorry("never", 100))
        })
        .expect("setup");
        // Four successes at NOW; "never", moved to the bottom, is left due.
        db.write(|tx| tx.move_to_bottom("never")).expect("move");
        for _ in 0..4 {
            let (id, info) = db
                .write(|tx| tx.start_next_job("m", 1))
                .expect("give")
                .expect("job");
            assert_ne!(info.path, "never");
            db.write(|tx| {
                tx.update_job(
                    id,
                    &JobUpdate {
                        exit: Some(0),
                        ..JobUpdate::default()
                    },
                )
            })
            .expect("end");
        }
        let at = |now| {
            db.set_pretend_time(now);
            let f = db.read(|tx| tx.state_counts("")).expect("counts").freshness;
            [f.within_1x, f.within_2x, f.within_4x, f.beyond_4x, f.never]
        };
        // Exactly 1×, 2×, 4× and 8× the intervals: each at its bound.
        assert_eq!(at(NOW + 400), [1, 1, 1, 1, 1]);
        assert_eq!(at(NOW + 401), [0, 1, 1, 2, 1]);
        assert_eq!(at(NOW), [4, 0, 0, 0, 1]);
        // A lorry whose last job failed keeps the age of its last success.
        db.set_pretend_time(NOW + 1000);
        let (id, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("job");
        db.write(|tx| {
            tx.update_job(
                id,
                &JobUpdate {
                    exit: Some(1),
                    ..JobUpdate::default()
                },
            )
        })
        .expect("end");
        assert_eq!(at(NOW + 1000), [0, 0, 1, 3, 1]);
    }

    #[test]
    fn state_in_sql_agrees_with_rust() {
        let (_dir, db) = fleet();
        for state in LorryState::ALL {
            let filter = QueueFilter {
                prefix: String::new(),
                state: Some(state),
            };
            let page = db.read(|tx| tx.queue_page(&filter, 0, 100)).expect("page");
            assert_eq!(page.matching, page.lorries.len() as i64);
            for l in &page.lorries {
                assert_eq!(LorryState::of(l, NOW), state, "{}", l.path);
            }
        }
    }

    #[test]
    fn failed_first_then_queue_order_and_paging() {
        let (_dir, db) = fleet();
        let all = |offset, limit| {
            db.read(|tx| tx.queue_page(&QueueFilter::default(), offset, limit))
                .expect("page")
        };
        let paths: Vec<String> = all(0, 100).lorries.into_iter().map(|l| l.path).collect();
        let queue = db.read(|tx| tx.queue()).expect("queue");
        assert_eq!(paths[0], "a");
        // Without the failed lorry, the page is the run queue's own order.
        let rest: Vec<&String> = queue.iter().filter(|p| *p != "a").collect();
        assert_eq!(paths[1..].iter().collect::<Vec<_>>(), rest);
        let page = all(2, 2);
        assert_eq!(page.matching, 6);
        assert_eq!(
            page.lorries.iter().map(|l| &l.path).collect::<Vec<_>>(),
            [&paths[2], &paths[3]]
        );
        assert!(all(6, 2).lorries.is_empty());
    }

    #[test]
    fn prefix_is_literal() {
        let (_dir, db) = fleet();
        db.write(|tx| tx.upsert_lorry(&lorry("u%/x", 100)))
            .expect("add");
        let page = |prefix: &str| {
            let filter = QueueFilter {
                prefix: prefix.into(),
                state: None,
            };
            db.read(|tx| tx.queue_page(&filter, 0, 100))
                .expect("page")
                .lorries
                .into_iter()
                .map(|l| l.path)
                .collect::<Vec<_>>()
        };
        assert_eq!(page("u%"), ["u%/x"]);
        assert_eq!(page("up/"), ["up/e", "up/f"]);
        assert!(page("_").is_empty());
    }

    #[test]
    fn job_summaries_newest_first() {
        let (_dir, db) = fleet();
        let (jobs, total) = db.read(|tx| tx.job_summaries(None, 0, 2)).expect("jobs");
        assert_eq!(total, 3);
        assert_eq!(jobs.iter().map(|j| j.job_id).collect::<Vec<_>>(), [3, 2]);
        assert_eq!((jobs[0].exit.as_deref(), jobs[0].ended), (None, None));
        let (jobs, total) = db
            .read(|tx| tx.job_summaries(Some("a"), 0, 10))
            .expect("jobs");
        assert_eq!((total, jobs[0].exit.as_deref()), (1, Some("2")));
    }

    #[test]
    fn output_since_returns_only_new_chunks() {
        let (_dir, db) = fleet();
        let first = db.read(|tx| tx.job_output_since(3, 0)).expect("out");
        assert_eq!((first.text.as_str(), first.exit), ("c out\n", None));
        let none = db
            .read(|tx| tx.job_output_since(3, first.last_seq))
            .expect("out");
        assert_eq!((none.text.as_str(), none.last_seq), ("", first.last_seq));
        let update = JobUpdate {
            exit: Some(0),
            stderr: "done\n".into(),
            ..JobUpdate::default()
        };
        db.write(|tx| tx.update_job(3, &update)).expect("end");
        let last = db
            .read(|tx| tx.job_output_since(3, first.last_seq))
            .expect("out");
        assert_eq!(
            (last.text.as_str(), last.exit.as_deref()),
            ("done\n", Some("0"))
        );
        assert!(matches!(
            db.read(|tx| tx.job_output_since(99, 0)),
            Err(Error::UnknownJob(99))
        ));
    }
}
