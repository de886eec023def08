//! The fleet in memory: the few columns of every lorry that `/1.0/metrics`
//! and `/1.0/list-queue` need, kept between reads and brought up to date
//! from the rows that changed ([`super::LorryChanges`]), so that an answer
//! about 100,000 lorries does not read (or sort in SQLite) 100,000 rows
//! after every job.
//!
//! What is computed from it agrees with the SQL it replaces:
//! [`Fleet::health`] with [`ReadTx::fleet_snapshot`] and [`Fleet::queue`]
//! with [`ReadTx::queue`] (`fleet_agrees_with_the_queries`, random
//! fleets, moves, runs, failures, deletions and clocks).

use std::collections::HashMap;

use rusqlite::Row;

use super::lorries::queue_place;
use super::metrics::{ERROR_STREAK, FleetSnapshot};
use super::{LorryChanges, ReadTx};
use crate::error::Result;

/// How a lorry's last job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastExit {
    Never,
    Success,
    Failure,
}

/// One lorry as [`Fleet`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetRow {
    pub rowid: i64,
    pub path: String,
    pub running: bool,
    pub move_kind: i64,
    pub move_seq: i64,
    pub due: i64,
    pub interval: i64,
    pub last_exit: LastExit,
    pub last_success: Option<i64>,
    pub consecutive_failures: i64,
    pub disk_usage: Option<i64>,
}

/// The columns [`fleet_row`] reads. `last_run_exit` is classified by SQL
/// itself, so its comparisons are the ones of [`ReadTx::fleet_snapshot`].
const FLEET_COLUMNS: &str = "rowid, path, running_job IS NOT NULL, move_kind, move_seq, due, \
     interval, CASE WHEN last_run_exit IS NULL THEN 0 WHEN last_run_exit = '0' THEN 1 ELSE 2 END, \
     last_success, consecutive_failures, disk_usage";

fn fleet_row(r: &Row<'_>) -> rusqlite::Result<FleetRow> {
    Ok(FleetRow {
        rowid: r.get(0)?,
        path: r.get(1)?,
        running: r.get(2)?,
        move_kind: r.get(3)?,
        move_seq: r.get(4)?,
        due: r.get(5)?,
        interval: r.get(6)?,
        last_exit: match r.get::<_, i64>(7)? {
            0 => LastExit::Never,
            1 => LastExit::Success,
            _ => LastExit::Failure,
        },
        last_success: r.get(8)?,
        consecutive_failures: r.get(9)?,
        disk_usage: r.get(10)?,
    })
}

/// Every lorry's [`FleetRow`], in path order (bytes, as SQLite's `BINARY`).
#[derive(Debug, Default)]
pub struct Fleet {
    rows: Vec<FleetRow>,
    /// Index in `rows` by rowid.
    by_rowid: HashMap<i64, usize>,
    /// Jobs not ended (`jobs_running` in the snapshot).
    running_jobs: i64,
}

/// What [`Fleet::health`] says of the fleet: counts that depend on
/// STATEDB alone, and the due times that the time-dependent ones are
/// counted from at any moment ([`FleetHealth::at`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetHealth {
    pub total: i64,
    pub successful: i64,
    pub degraded: i64,
    pub errors: i64,
    pub never_run: i64,
    pub running_jobs: i64,
    /// Due times of the idle lorries, ascending.
    idle_due: Vec<i64>,
    /// Due time plus interval of the idle lorries (when each becomes
    /// overdue), ascending.
    idle_overdue: Vec<i64>,
}

impl FleetHealth {
    /// The snapshot at `now`, without its per-lorry list: what
    /// [`ReadTx::fleet_snapshot`] answers, in O(log n).
    pub fn at(&self, now: i64) -> FleetSnapshot {
        let waiting = self.idle_due.partition_point(|&due| due <= now);
        let overdue = self.idle_overdue.partition_point(|&t| t <= now);
        FleetSnapshot {
            total: self.total,
            successful: self.successful,
            degraded: self.degraded,
            errors: self.errors,
            never_run: self.never_run,
            running_jobs: self.running_jobs,
            waiting: waiting as i64,
            overdue: overdue as i64,
            oldest_waiting_seconds: match self.idle_due.first() {
                Some(&first) if waiting > 0 => now - first,
                _ => 0,
            },
            lorries: Vec::new(),
        }
    }
}

impl Fleet {
    /// Brings the fleet up to the state `tx` sees, given what changed in
    /// `lorries` since the state it holds (all of it for a new fleet).
    /// On an error the fleet is left as it was, and may be stale: read
    /// it again with [`LorryChanges::All`].
    pub fn update(&mut self, tx: &ReadTx<'_>, changes: &LorryChanges) -> Result<()> {
        let running_jobs =
            tx.conn()
                .query_row("SELECT COUNT(*) FROM jobs WHERE ended IS NULL", [], |r| {
                    r.get(0)
                })?;
        match changes {
            LorryChanges::All => {
                // In the table's order: `ORDER BY path` walks the path
                // index and looks every row up by rowid (200 ms at
                // 100,000 lorries). Rows that kept their rowid and path
                // are replaced in place, so the path order is restored
                // (sorted) only when lorries came, went or were renamed.
                let sql = format!("SELECT {FLEET_COLUMNS} FROM lorries");
                let mut stmt = tx.conn().prepare(&sql)?;
                let rows: Vec<FleetRow> = stmt
                    .query_map([], fleet_row)?
                    .collect::<rusqlite::Result<_>>()?;
                let mut seen = vec![false; self.rows.len()];
                for row in &rows {
                    if let Some(&i) = self.by_rowid.get(&row.rowid) {
                        seen[i] = true;
                    }
                }
                let mut read: Vec<(i64, Option<FleetRow>)> = self
                    .rows
                    .iter()
                    .zip(seen)
                    .filter(|(_, seen)| !seen)
                    .map(|(row, _)| (row.rowid, None))
                    .collect();
                read.extend(rows.into_iter().map(|row| (row.rowid, Some(row))));
                self.apply(read);
            }
            LorryChanges::Rows(rowids) => {
                let sql = format!("SELECT {FLEET_COLUMNS} FROM lorries WHERE rowid = ?1");
                let mut stmt = tx.conn().prepare(&sql)?;
                let mut read = Vec::with_capacity(rowids.len());
                for &rowid in rowids {
                    let mut rows = stmt.query_map([rowid], fleet_row)?;
                    read.push((rowid, rows.next().transpose()?));
                }
                self.apply(read);
            }
        }
        self.running_jobs = running_jobs;
        Ok(())
    }

    /// Replaces, adds or removes (`None`) the rows read by rowid; the path
    /// order is restored only when a row came, went or was renamed.
    fn apply(&mut self, read: Vec<(i64, Option<FleetRow>)>) {
        let mut reorder = false;
        let mut gone = Vec::new();
        for (rowid, row) in read {
            match (self.by_rowid.get(&rowid), row) {
                (Some(&i), Some(row)) => {
                    reorder |= self.rows[i].path != row.path;
                    self.rows[i] = row;
                }
                (Some(&i), None) => gone.push(i),
                (None, Some(row)) => {
                    reorder = true;
                    self.by_rowid.insert(rowid, self.rows.len());
                    self.rows.push(row);
                }
                (None, None) => {}
            }
        }
        if !gone.is_empty() {
            gone.sort_unstable();
            for i in gone.into_iter().rev() {
                self.rows.swap_remove(i);
            }
            reorder = true;
        }
        if reorder {
            self.rows.sort_unstable_by(|a, b| a.path.cmp(&b.path));
            self.index();
        }
    }

    fn index(&mut self) {
        self.by_rowid = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| (row.rowid, i))
            .collect();
    }

    /// Every lorry, in path order.
    pub fn rows(&self) -> &[FleetRow] {
        &self.rows
    }

    /// The counts of `/1.0/metrics` (see [`FleetHealth`]).
    pub fn health(&self) -> FleetHealth {
        let mut health = FleetHealth {
            total: self.rows.len() as i64,
            running_jobs: self.running_jobs,
            ..FleetHealth::default()
        };
        for row in &self.rows {
            match row.last_exit {
                LastExit::Never => health.never_run += 1,
                LastExit::Success => health.successful += 1,
                LastExit::Failure => {
                    if row.consecutive_failures < ERROR_STREAK && row.last_success.is_some() {
                        health.degraded += 1;
                    } else {
                        health.errors += 1;
                    }
                }
            }
            if !row.running {
                health.idle_due.push(row.due);
                health
                    .idle_overdue
                    .push(row.due.saturating_add(row.interval));
            }
        }
        health.idle_due.sort_unstable();
        health.idle_overdue.sort_unstable();
        health
    }

    /// Paths of all lorries in queue order at `now` (see `lorries.rs`):
    /// the rows are in path order, so a stable sort by place is the
    /// query's order.
    pub fn queue(&self, now: i64) -> Vec<&str> {
        let mut order: Vec<((i64, i64), &str)> = self
            .rows
            .iter()
            .map(|r| {
                let place = queue_place(r.running, r.move_kind, r.move_seq, r.due, now);
                (place, r.path.as_str())
            })
            .collect();
        order.sort_by_key(|&(place, _)| place);
        order.into_iter().map(|(_, path)| path).collect()
    }
}

#[cfg(test)]
mod tests {

    use super::super::lorries::tests::{lcg, lorry, random_fleet};
    use super::super::tests::fresh;
    use super::super::{JobUpdate, StateDb};
    use super::*;
    use crate::db::LorryHealth;

    fn check(db: &StateDb, fleet: &Fleet, step: usize) -> FleetSnapshot {
        let (snapshot, queue) = db
            .read(|tx| Ok((tx.fleet_snapshot()?, tx.queue()?)))
            .expect("queries");
        let now = db.now();
        let mut ours = fleet.health().at(now);
        ours.lorries = fleet
            .rows()
            .iter()
            .map(|r| LorryHealth {
                path: r.path.clone(),
                last_success: r.last_success,
                consecutive_failures: r.consecutive_failures,
                disk_usage: r.disk_usage,
            })
            .collect();
        assert_eq!(ours, snapshot, "step {step}");
        assert_eq!(fleet.queue(now), queue, "step {step}");
        snapshot
    }

    /// A fleet kept up to date from the tracker's changes says what the
    /// queries say, after random moves, job starts and ends (success and
    /// failure), deletions, additions and clock changes; and so does one
    /// read whole.
    #[test]
    fn fleet_agrees_with_the_queries() {
        let (_dir, db) = fresh();
        let mut next = lcg(11);
        db.set_pretend_time(100);
        random_fleet(&db, 40, &mut next);
        let tracker = db.lorry_tracker();
        let mut fleet = Fleet::default();
        // What the steps went through: the test would prove little otherwise.
        let mut seen = FleetSnapshot::default();
        let mut incremental = 0;
        for step in 0..400 {
            let path = format!("l{:02}", next(45));
            db.set_pretend_time(50 + next(150) as i64);
            db.write(|tx| match next(7) {
                0 => tx.move_to_top(&path).or(Ok(())),
                1 => tx.move_to_bottom(&path).or(Ok(())),
                2 => {
                    if let Some((id, _)) = tx.start_next_job("m", 1)? {
                        let update = JobUpdate {
                            exit: Some(next(2) as i64),
                            disk_usage: Some(next(5000) as i64),
                            ..JobUpdate::default()
                        };
                        if next(3) > 0 {
                            tx.update_job(id, &update)?;
                        }
                    }
                    Ok(())
                }
                3 => tx.remove_lorry(&path).map(drop),
                4 => tx
                    .upsert_lorry(&lorry(&path, 1 + next(50) as i64))
                    .map(drop),
                _ => Ok(()),
            })
            .expect("step");
            db.read_tracked(&tracker, |tx, changes| {
                incremental += usize::from(matches!(changes, LorryChanges::Rows(_)));
                fleet.update(tx, &changes)
            })
            .expect("update");
            let s = check(&db, &fleet, step);
            seen.degraded = seen.degraded.max(s.degraded);
            seen.errors = seen.errors.max(s.errors);
            seen.overdue = seen.overdue.max(s.overdue);
            seen.running_jobs = seen.running_jobs.max(s.running_jobs);
            seen.oldest_waiting_seconds = seen.oldest_waiting_seconds.max(s.oldest_waiting_seconds);
            if step % 50 == 0 {
                let mut whole = Fleet::default();
                db.read(|tx| whole.update(tx, &LorryChanges::All))
                    .expect("whole");
                check(&db, &whole, step);
            }
            if step % 7 == 0 {
                // Everything read again over the fleet kept (as after
                // another process's write): rows replaced, gone or new.
                db.read(|tx| fleet.update(tx, &LorryChanges::All))
                    .expect("all again");
                check(&db, &fleet, step);
            }
        }
        assert!(incremental > 350, "{incremental}");
        assert!(
            seen.degraded > 0 && seen.errors > 0 && seen.overdue > 0,
            "{seen:?}"
        );
        assert!(
            seen.running_jobs > 0 && seen.oldest_waiting_seconds > 0,
            "{seen:?}"
        );
    }
}
