//! Batch checks: many due git lorries checked by one minion with parallel
//! `ls-remote`s, reported in one request.
//!
//! A minion asks give-me-job with `batch=N`. Walking the queue in its
//! order (the per-host cap and `max_jobs` applied as for jobs), the due
//! lorries that [`ReadTx::batchable`] accepts are each held by a job row
//! of their own (`jobs.batch` = the first hold's id, the batch's id), so
//! a lorry in a batch is held exactly like a running one: the unique index
//! `jobs_one_running_per_path`, the per-host cap (`saturated_hosts`
//! counts holds), `max_jobs`, the ghost reaper and `idle=yes` all see
//! them. The walk stops at the first due lorry that is not batchable:
//! when no lorry was held yet, it gets an ordinary job instead, so queue
//! order is kept. A hold does not set `last_run`: a lorry released
//! without a verdict is still due.
//!
//! The batch's final job-update carries lorry's [`lc_api::BatchResult`]:
//! each lorry whose upstream heads and tags digest equals the digest of
//! its ref ledger's open rows (what its jobs reported the mirror holds)
//! is marked checked without a job, as a manifest or activity hint check
//! is ([`WriteTx::mark_unchanged`]); any other lorry with a check (its
//! refs differ, its listing failed) is handed back to the queue moved to
//! the top, which no batch takes, so its next give-me-job gives it an
//! ordinary job; a lorry with no check is only released. Every hold row
//! is then deleted: a batch leaves no job in any lorry's history.

use lc_api::{BatchJob, BatchLorry, BatchResult, EXIT_RUNNING, JobInfo, LorryInfo};
use rusqlite::{OptionalExtension, params};

use super::fingerprints::UnchangedPer;
use super::jobs::JobUpdate;
use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};
use lc_base::timefmt;

/// Seconds a batch may take before the webapp asks for it to be killed
/// (the job-update answer's `kill_job`); the minion's lorry stops starting
/// `ls-remote`s well before.
pub const BATCH_TIMEOUT: i64 = 300;

/// What give-me-job hands out.
#[derive(Debug, Clone, PartialEq)]
pub enum Handout {
    Job(i64, Box<LorryInfo>),
    Batch(BatchJob),
}

/// What a job id stands for (see [`ReadTx::hold_of`]).
pub(super) enum Hold {
    Job,
    Batch(i64),
    Gone,
}

/// Keys of a git spec that make what it mirrors differ from the
/// upstream's heads and tags under the same names, or the listing differ
/// from a plain `ls-remote` (`check-certificates: false`), or that need a
/// fetch beyond the refs (`lfs: true`): such a lorry is never batched.
fn plain_git_url(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let spec = map.values().next()?.as_object()?;
    if spec.get("type")?.as_str()? != "git" {
        return None;
    }
    let set = |key: &str| spec.get(key).is_some_and(|v| !v.is_null());
    if ["refspecs", "include", "exclude", "prune-excluded"]
        .iter()
        .any(|key| set(key))
        || spec
            .get("lfs")
            .is_some_and(|v| v.as_bool() != Some(false) && !v.is_null())
        || spec
            .get("check-certificates")
            .is_some_and(|v| v.as_bool() == Some(false))
    {
        return None;
    }
    Some(spec.get("url")?.as_str()?.to_owned())
}

impl ReadTx<'_> {
    /// The upstream URL of the due lorry `path` when it may be checked in
    /// a batch: a plain git spec (see [`plain_git_url`]); idle and not
    /// moved; its last run succeeded; its ref ledger is whole (so the
    /// refs its mirror holds are known); no snapshot pin waits for a job;
    /// and its newest successful ordinary job started within
    /// `full_check_every` (the safety net: a full job, which lists the
    /// downstream when lorry's `--downstream-check-every` is due, at least
    /// that often).
    pub(super) fn batchable(&self, path: &str, full_check_every: i64) -> Result<Option<String>> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT l.text FROM lorries l
                 WHERE l.path = ?1 AND l.move_kind = 0 AND l.running_job IS NULL
                   AND l.last_run_exit = '0'
                   AND EXISTS (SELECT 1 FROM ref_ledger_whole w
                               WHERE w.path = l.path AND w.until IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM snapshot_pins p
                                   WHERE p.path = l.path AND p.state IN ('pending', 'unpin'))
                   AND (SELECT j.started FROM jobs j
                        WHERE j.path = l.path AND j.batch IS NULL AND j.exit = '0'
                        ORDER BY j.job_id DESC LIMIT 1) + ?3 > ?2",
                params![path, self.now, full_check_every],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.as_deref().and_then(plain_git_url))
    }

    /// The [`lc_api::refs_digest`] of the refs `path`'s mirror holds per
    /// its ref ledger; `None` unless the ledger is whole.
    pub fn ledger_digest(&self, path: &str) -> Result<Option<String>> {
        let whole: bool = self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM ref_ledger_whole WHERE path = ?1 AND until IS NULL)",
            [path],
            |r| r.get(0),
        )?;
        if !whole {
            return Ok(None);
        }
        let mut stmt = self
            .conn()
            .prepare("SELECT ref, oid FROM ref_ledger WHERE path = ?1 AND ended IS NULL")?;
        let refs = stmt
            .query_map([path], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(lc_api::refs_digest(
            refs.iter().map(|(n, o)| (n.as_str(), o.as_str())),
        )))
    }

    /// Whether job `job_id` is a batch's hold, an ordinary job, or gone
    /// (a hold released with its batch a moment ago).
    pub(super) fn hold_of(&self, job_id: i64) -> Result<Hold> {
        let batch: Option<Option<i64>> = self
            .conn()
            .query_row("SELECT batch FROM jobs WHERE job_id = ?1", [job_id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(match batch {
            None => Hold::Gone,
            Some(None) => Hold::Job,
            Some(Some(batch)) => Hold::Batch(batch),
        })
    }

    /// The running holds of batch `batch`: job id and path.
    fn batch_holds(&self, batch: i64) -> Result<Vec<(i64, String)>> {
        let mut stmt = self.conn().prepare(
            "SELECT job_id, path FROM jobs WHERE batch = ?1 AND ended IS NULL ORDER BY job_id",
        )?;
        let holds = stmt
            .query_map([batch], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(holds)
    }
}

impl WriteTx<'_> {
    /// Hands out what may start for minion `host`/`pid`: up to
    /// `batch_max` lorries to check as a batch (0: never a batch), or
    /// else the first due lorry as an ordinary job. `None` when the queue
    /// is stopped, `max_jobs` jobs already run, or nothing is due.
    pub fn start_next(&self, host: &str, pid: i64, batch_max: usize) -> Result<Option<Handout>> {
        if !self.running_queue()? {
            return Ok(None);
        }
        let mut room = usize::MAX;
        if let Some(max) = self.max_jobs()? {
            let running = self.running_job_count()?;
            if running >= max {
                return Ok(None);
            }
            room = usize::try_from(max - running).unwrap_or(usize::MAX);
        }
        let batch_max = batch_max.min(lc_api::BATCH_MAX).min(room);
        // Due lorries unchanged per their host's manifest are checked
        // here without a job (see fingerprints.rs), up to a bound per call.
        let full_check_every = self.full_check_every()?;
        let mut unchanged = 0;
        let mut held: Vec<BatchLorry> = Vec::new();
        let mut batch: Option<i64> = None;
        loop {
            if batch_max > 0 && held.len() >= batch_max {
                break;
            }
            let Some(path) = self.next_due_lorry_within_host_cap()? else {
                break;
            };
            if let Some(how) = self.unchanged_per_hint(&path, full_check_every)? {
                if unchanged == super::fingerprints::UNCHANGED_PER_CALL {
                    break;
                }
                self.mark_unchanged(&path, how)?;
                unchanged += 1;
                continue;
            }
            if batch_max > 0
                && let Some(url) = self.batchable(&path, full_check_every)?
            {
                let id = self.hold(host, pid, &path, batch)?;
                batch.get_or_insert(id);
                held.push(BatchLorry { path, url });
                continue;
            }
            if held.is_empty() {
                let (job_id, lorry) = self.start_job(host, pid, &path)?;
                return Ok(Some(Handout::Job(job_id, Box::new(lorry))));
            }
            break;
        }
        Ok(batch.map(|job_id| {
            Handout::Batch(BatchJob {
                job_id,
                timeout: BATCH_TIMEOUT,
                lorries: held,
            })
        }))
    }

    /// Holds `path` for batch `batch` (`None`: it is the batch's first
    /// lorry, whose hold id becomes the batch's). Answers the hold's id.
    fn hold(&self, host: &str, pid: i64, path: &str, batch: Option<i64>) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO jobs (host, pid, path, started, updated, timeout, batch)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
            params![host, pid, path, self.now, BATCH_TIMEOUT, batch],
        )?;
        let id = self.conn().last_insert_rowid();
        if batch.is_none() {
            self.conn()
                .execute("UPDATE jobs SET batch = ?1 WHERE job_id = ?1", [id])?;
        }
        self.conn().execute(
            "UPDATE lorries SET running_job = ?2 WHERE path = ?1",
            params![path, id],
        )?;
        Ok(id)
    }

    /// A job-update of batch `batch` (reported under its first hold's id).
    /// While it runs: every hold is refreshed (the heartbeat) and marked to
    /// be killed past [`BATCH_TIMEOUT`]; the answer's `kill_job` is set
    /// when any hold is (stop-job on one lorry stops the batch). Output is
    /// not kept. With an exit: the verdicts (see the module's comment),
    /// read from `result` only when the exit is 0; then every hold goes.
    pub(super) fn update_batch(&self, batch: i64, update: &JobUpdate) -> Result<JobInfo> {
        let mut info = self.batch_info(batch)?;
        let Some(exit) = update.exit else {
            self.conn().execute(
                "UPDATE jobs SET updated = ?2, kill = kill OR ?2 - started > timeout
                 WHERE batch = ?1 AND ended IS NULL",
                params![batch, self.now],
            )?;
            info.kill_job = self.conn().query_row(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE batch = ?1 AND ended IS NULL AND kill)",
                [batch],
                |r| r.get(0),
            )?;
            info.updated = self.now;
            return Ok(info);
        };
        // A result that is not a batch's (a newer minion's, a broken one)
        // is no verdict: the lorries are only released.
        let result: Option<BatchResult> = match (&update.result, exit) {
            (Some(text), 0) => serde_json::from_str(text).ok(),
            _ => None,
        };
        let checks: std::collections::HashMap<&str, &lc_api::BatchCheck> = result
            .iter()
            .flat_map(|r| r.checks.iter())
            .map(|c| (c.path.as_str(), c))
            .collect();
        let freed = self.release_batch(batch)?;
        let (mut checked, mut back) = (0usize, Vec::new());
        for path in &freed {
            let Some(check) = checks.get(path.as_str()) else {
                continue;
            };
            let unchanged = match &check.refs {
                Some(digest) => {
                    self.ledger_digest(path)?.as_ref() == Some(digest) && self.last_run_ok(path)?
                }
                None => false,
            };
            if unchanged {
                self.mark_unchanged(path, UnchangedPer::Listing)?;
                checked += 1;
            } else {
                self.hand_back(path)?;
                back.push(path.as_str());
            }
        }
        // What became of the lorries, for the webapp's log (bounded).
        let shown: Vec<&str> = back.iter().take(20).copied().collect();
        info.output = format!(
            "{} lorries: {checked} unchanged, {} released, {} handed back for a job{}{}",
            freed.len(),
            freed.len() - checked - back.len(),
            back.len(),
            if shown.is_empty() { "" } else { ": " },
            shown.join(" "),
        );
        info.exit = exit.to_string();
        info.ended = Some(self.now);
        info.job_ended = timefmt::utc(self.now);
        info.updated = self.now;
        Ok(info)
    }

    /// The batch as a job: its first hold's row, with an empty `path` (a
    /// batch is no lorry's job).
    fn batch_info(&self, batch: i64) -> Result<JobInfo> {
        self.conn()
            .query_row(
                "SELECT host, pid, '', started, updated FROM jobs WHERE job_id = ?1",
                [batch],
                |r| {
                    let started: i64 = r.get(3)?;
                    Ok(JobInfo {
                        job_id: batch,
                        host: r.get(0)?,
                        pid: r.get(1)?,
                        path: r.get(2)?,
                        exit: EXIT_RUNNING.to_owned(),
                        kill_job: false,
                        output: String::new(),
                        disk_usage: None,
                        disk_usage_nice: timefmt::bytes(None),
                        job_started: timefmt::utc(started),
                        job_ended: String::new(),
                        started,
                        ended: None,
                        updated: r.get(4)?,
                        result: None,
                    })
                },
            )
            .optional()?
            .ok_or(Error::UnknownJob(batch))
    }

    fn last_run_ok(&self, path: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT last_run_exit = '0' FROM lorries WHERE path = ?1",
                [path],
                |r| r.get::<_, Option<bool>>(0),
            )
            .optional()?
            .flatten()
            .unwrap_or(false))
    }

    /// Ends batch `batch` without a verdict: its holds are deleted and
    /// their lorries freed, still due as they were. Answers the paths of
    /// the lorries that were held (and still exist).
    pub(super) fn release_batch(&self, batch: i64) -> Result<Vec<String>> {
        let mut freed = Vec::new();
        for (job_id, path) in self.batch_holds(batch)? {
            let n = self.conn().execute(
                "UPDATE lorries SET running_job = NULL WHERE path = ?1 AND running_job = ?2",
                params![path, job_id],
            )?;
            self.conn()
                .execute("DELETE FROM jobs WHERE job_id = ?1", [job_id])?;
            if n > 0 {
                freed.push(path);
            }
        }
        Ok(freed)
    }

    /// Hands `path` back to the queue for an ordinary job: moved to the
    /// top (after earlier moves' seq), which no batch takes.
    fn hand_back(&self, path: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE lorries SET move_kind = -1,
             move_seq = (SELECT COALESCE(MAX(move_seq), 0) + 1 FROM lorries
                         WHERE running_job IS NULL AND move_kind = -1)
             WHERE path = ?1",
            [path],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::lorries::tests::lorry;
    use super::super::tests::fresh;
    use super::super::{NewLorry, StateDb};
    use super::*;

    fn finished(exit: i64, result: Option<String>) -> JobUpdate {
        JobUpdate {
            exit: Some(exit),
            result,
            ..JobUpdate::default()
        }
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    /// A job result reporting `refs` whole for `path`.
    fn whole(path: &str, refs: &[(&str, &str)]) -> String {
        let held: serde_json::Map<String, serde_json::Value> = refs
            .iter()
            .map(|(n, o)| ((*n).to_owned(), serde_json::Value::from(*o)))
            .collect();
        serde_json::json!({
            "version": 1,
            "specs": [{"name": path, "importer": "git", "ok": true, "refs": [],
                       "preserved": [], "bytes_received": 0, "pushed": "yes", "held": held}]
        })
        .to_string()
    }

    /// Runs ordinary jobs until none is due; each reports `refs` whole.
    fn run_jobs(db: &StateDb, refs: &[(&str, &str)]) -> Vec<String> {
        let mut ran = Vec::new();
        while let Some(handout) = db.write(|tx| tx.start_next("m", 1, 0)).expect("give") {
            let Handout::Job(id, lorry) = handout else {
                panic!("a batch without asking")
            };
            let update = finished(0, Some(whole(&lorry.path, refs)));
            db.write(|tx| tx.update_job(id, &update)).expect("end");
            ran.push(lorry.path);
        }
        ran
    }

    /// Refs by name and tip.
    type Refs<'a> = &'a [(&'a str, &'a str)];

    fn report(paths: &[(&str, Option<Refs<'_>>)]) -> String {
        let checks: Vec<lc_api::BatchCheck> = paths
            .iter()
            .map(|(path, refs)| lc_api::BatchCheck {
                path: (*path).into(),
                refs: refs.map(|r| lc_api::refs_digest(r.iter().copied())),
                error: refs.is_none().then(|| "cannot list".into()),
            })
            .collect();
        serde_json::to_string(&BatchResult { version: 1, checks }).expect("json")
    }

    #[test]
    fn unchanged_lorries_are_checked_changed_ones_handed_back_as_jobs() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| {
            for p in ["a", "b", "c"] {
                tx.upsert_lorry(&lorry(p, 100))?;
            }
            Ok(())
        })
        .expect("setup");
        let refs: &[(&str, &str)] = &[("refs/heads/main", A), ("refs/tags/v1", B)];
        // Never run: no ledger, so ordinary jobs even when a batch is asked.
        let Some(Handout::Job(id, _)) = db.write(|tx| tx.start_next("m", 1, 10)).expect("give")
        else {
            panic!("a lorry without a ledger gets a job")
        };
        db.write(|tx| tx.update_job(id, &finished(0, Some(whole("a", refs)))))
            .expect("end");
        assert_eq!(run_jobs(&db, refs), ["b", "c"]);

        db.set_pretend_time(1_200);
        let Some(Handout::Batch(batch)) = db.write(|tx| tx.start_next("m", 1, 10)).expect("give")
        else {
            panic!("a batch")
        };
        let paths: Vec<&str> = batch.lorries.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "c"]);
        assert_eq!(batch.lorries[0].url, "git://x/a");
        // Held: nothing else is handed out, to anyone.
        assert_eq!(db.write(|tx| tx.start_next("n", 2, 0)).expect("give"), None);
        assert_eq!(
            db.write(|tx| tx.start_next("n", 2, 10)).expect("give"),
            None
        );
        let a = db.read(|tx| tx.lorry("a")).expect("a");
        assert_eq!(a.running_job, Some(batch.job_id));
        // A heartbeat.
        let info = db
            .write(|tx| tx.update_job(batch.job_id, &JobUpdate::default()))
            .expect("beat");
        assert!(!info.kill_job);

        let moved: &[(&str, &str)] = &[("refs/heads/main", B), ("refs/tags/v1", B)];
        let result = report(&[("a", Some(refs)), ("b", Some(moved)), ("c", None)]);
        let info = db
            .write(|tx| tx.update_job(batch.job_id, &finished(0, Some(result.clone()))))
            .expect("report");
        assert_eq!(info.exit, "0");
        // No hold is left, no job was added to any lorry.
        for p in ["a", "b", "c"] {
            let l = db.read(|tx| tx.lorry(p)).expect("lorry");
            assert_eq!(
                (l.running_job, l.jobs.map(|j| j.len())),
                (None, Some(1)),
                "{p}"
            );
        }
        let a = db.read(|tx| tx.lorry("a")).expect("a");
        assert_eq!((a.last_run, a.last_run_exit.as_deref()), (1_200, Some("0")));
        assert_eq!(
            db.read(|tx| tx.lorry("b")).expect("b").last_run,
            1_000,
            "handed back, still due"
        );
        // b and c come back as ordinary jobs even to a batching minion.
        let mut next = Vec::new();
        while let Some(h) = db.write(|tx| tx.start_next("m", 1, 10)).expect("give") {
            let Handout::Job(id, lorry) = h else {
                panic!("handed back lorries get jobs")
            };
            db.write(|tx| tx.update_job(id, &finished(0, Some(whole(&lorry.path, refs)))))
                .expect("end");
            next.push(lorry.path);
        }
        next.sort();
        assert_eq!(next, ["b", "c"]);
        // The report of a batch that is over is refused, as for a job.
        assert!(matches!(
            db.write(|tx| tx.update_job(batch.job_id, &finished(0, Some(result)))),
            Err(Error::UnknownJob(_))
        ));
    }

    #[test]
    fn holds_are_released_by_a_failed_batch_ghosts_and_an_idle_minion() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| {
            for p in ["a", "b"] {
                tx.upsert_lorry(&lorry(p, 100))?;
            }
            Ok(())
        })
        .expect("setup");
        let refs: &[(&str, &str)] = &[("refs/heads/main", A)];
        run_jobs(&db, refs);
        let batch = |now| {
            db.set_pretend_time(now);
            match db.write(|tx| tx.start_next("m", 7, 10)).expect("give") {
                Some(Handout::Batch(b)) => b,
                other => panic!("a batch: {other:?}"),
            }
        };
        // Killed (no result): released, still due, no verdict.
        let b = batch(1_200);
        db.write(|tx| tx.update_job(b.job_id, &finished(137, None)))
            .expect("end");
        let a = db.read(|tx| tx.lorry("a")).expect("a");
        assert_eq!((a.running_job, a.last_run), (None, 1_000));
        // Ghost: released the same way.
        let b = batch(1_300);
        assert_eq!(b.lorries.len(), 2);
        db.set_pretend_time(1_400);
        let ghosts = db.write(|tx| tx.remove_ghost_jobs(10)).expect("ghosts");
        assert_eq!(ghosts.len(), 2);
        assert_eq!(db.read(|tx| tx.lorry("b")).expect("b").running_job, None);
        assert_eq!(db.read(|tx| tx.running_job_ids()).expect("ids"), [0i64; 0]);
        // The minion asks again saying it runs nothing.
        let b = batch(1_500);
        assert_eq!(
            db.write(|tx| tx.end_jobs_never_received("m", 7))
                .expect("end")
                .len(),
            2
        );
        assert_eq!(db.read(|tx| tx.lorry("a")).expect("a").running_job, None);
        // Past the timeout a heartbeat says kill.
        let b2 = batch(1_600);
        assert_ne!(b.job_id, b2.job_id);
        db.set_pretend_time(1_600 + BATCH_TIMEOUT + 1);
        assert!(
            db.write(|tx| tx.update_job(b2.job_id, &JobUpdate::default()))
                .expect("beat")
                .kill_job
        );
        // A request gone before the answer: released.
        db.write(|tx| tx.end_job_unanswered(b2.job_id))
            .expect("gone");
        assert_eq!(db.read(|tx| tx.lorry("b")).expect("b").running_job, None);
    }

    #[test]
    fn only_plain_git_specs_with_a_whole_ledger_a_success_and_a_recent_full_job_batch() {
        assert_eq!(
            plain_git_url(r#"{"a": {"type": "git", "url": "u", "description": "d"}}"#).as_deref(),
            Some("u")
        );
        for text in [
            r#"{"a": {"type": "tarball", "url": "u"}}"#,
            r#"{"a": {"type": "git", "url": "u", "refspecs": ["refs/*:refs/*"]}}"#,
            r#"{"a": {"type": "git", "url": "u", "exclude": ["refs/heads/x"]}}"#,
            r#"{"a": {"type": "git", "url": "u", "lfs": true}}"#,
            r#"{"a": {"type": "git", "url": "u", "check-certificates": false}}"#,
            r#"{"a": {"type": "git", "url": "u"}, "b": {"type": "git", "url": "v"}}"#,
            "not json",
        ] {
            assert_eq!(plain_git_url(text), None, "{text}");
        }
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| {
            tx.upsert_lorry(&lorry("ok", 100))?;
            tx.upsert_lorry(&lorry("failed", 100))?;
            tx.upsert_lorry(&NewLorry {
                text: r#"{"tar": {"type": "tarball", "url": "u"}}"#.into(),
                ..lorry("tar", 100)
            })
        })
        .expect("setup");
        let refs: &[(&str, &str)] = &[("refs/heads/main", A)];
        while let Some(Handout::Job(id, l)) = db.write(|tx| tx.start_next("m", 1, 0)).expect("g") {
            let exit = i64::from(l.path == "failed");
            db.write(|tx| tx.update_job(id, &finished(exit, Some(whole(&l.path, refs)))))
                .expect("end");
        }
        let fce = db.read(|tx| tx.full_check_every()).expect("fce");
        let batchable = |p: &str| db.read(|tx| tx.batchable(p, fce)).expect("read");
        db.set_pretend_time(1_100);
        assert_eq!(batchable("ok").as_deref(), Some("git://x/ok"));
        assert_eq!(batchable("failed"), None);
        assert_eq!(batchable("tar"), None);
        db.write(|tx| tx.move_to_top("ok")).expect("move");
        assert_eq!(batchable("ok"), None, "moved");
        db.set_pretend_time(1_000 + fce);
        db.write(|tx| {
            tx.conn()
                .execute("UPDATE lorries SET move_kind = 0 WHERE path = 'ok'", [])?;
            Ok(())
        })
        .expect("unmove");
        assert_eq!(batchable("ok"), None, "the full check is due");
    }

    #[test]
    fn the_per_host_cap_and_max_jobs_bound_a_batch() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| {
            for (p, h) in [("h/1", "h"), ("h/2", "h"), ("h/3", "h"), ("g/1", "g")] {
                tx.upsert_lorry(&NewLorry {
                    from_host: h.into(),
                    ..lorry(p, 100)
                })?;
            }
            Ok(())
        })
        .expect("setup");
        let refs: &[(&str, &str)] = &[("refs/heads/main", A)];
        run_jobs(&db, refs);
        db.write(|tx| tx.set_max_jobs_per_host(Some(2)))
            .expect("cap");
        db.set_pretend_time(1_200);
        let Some(Handout::Batch(b)) = db.write(|tx| tx.start_next("m", 1, 10)).expect("g") else {
            panic!("batch")
        };
        let mut paths: Vec<&str> = b.lorries.iter().map(|l| l.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["g/1", "h/1", "h/2"]);
        // h is at its cap while held; h/3 waits.
        assert_eq!(db.write(|tx| tx.start_next("n", 1, 10)).expect("g"), None);
        db.write(|tx| tx.update_job(b.job_id, &finished(143, None)))
            .expect("end");
        db.write(|tx| {
            tx.set_max_jobs_per_host(None)?;
            tx.set_max_jobs(Some(1))
        })
        .expect("max");
        let Some(Handout::Batch(b)) = db.write(|tx| tx.start_next("m", 1, 10)).expect("g") else {
            panic!("batch")
        };
        assert_eq!(b.lorries.len(), 1);
        assert_eq!(db.write(|tx| tx.start_next("n", 1, 10)).expect("g"), None);
    }
}
