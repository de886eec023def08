//! Jobs: handing them out, recording their progress, ending them.

use lc_api::{EXIT_RUNNING, EventType, JobInfo, JobResult, LorryInfo};
use rusqlite::{OptionalExtension, params};
use serde_json::json;

use super::batches::Hold;
use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};
use lc_base::timefmt;

/// What a minion reports in one `job-update`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobUpdate {
    /// `None` while the job runs; its exit code once it has ended.
    pub exit: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub disk_usage: Option<i64>,
    /// lorry's result (JSON text, already checked), sent with the exit.
    pub result: Option<String>,
}

/// Exit code recorded for a job whose minion stopped reporting.
pub const GHOST_EXIT: i64 = 127;

/// `--job-output-max` unless given: bytes of output kept per job.
pub const DEFAULT_JOB_OUTPUT_MAX: u64 = 8 * 1024 * 1024;

/// Bytes of a failed job's output kept as its lorry's `last_run_error`
/// (the end of it, where the reason usually is).
pub const LAST_RUN_ERROR_MAX: usize = 64 * 1024;

/// Where a job's stored output stands (columns `output_*` of `jobs`).
struct OutputCounters {
    head: u64,
    tail: u64,
    marker: Option<i64>,
    dropped: u64,
}

struct JobRow {
    host: String,
    pid: i64,
    path: String,
    started: i64,
    ended: Option<i64>,
    updated: i64,
    timeout: i64,
    kill: bool,
    exit: Option<String>,
    disk_usage: Option<i64>,
    /// The batch a hold belongs to (batches.rs); `None` for a job.
    batch: Option<i64>,
}

impl ReadTx<'_> {
    pub(super) fn running_job_count(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM jobs WHERE ended IS NULL", [], |r| {
                r.get(0)
            })?)
    }

    fn output(&self, job_id: i64) -> Result<String> {
        let mut stmt = self
            .conn()
            .prepare("SELECT text FROM job_output WHERE job_id = ?1 ORDER BY seq")?;
        let chunks = stmt.query_map([job_id], |r| r.get::<_, String>(0))?;
        let mut output = String::new();
        for chunk in chunks {
            output.push_str(&chunk?);
        }
        Ok(output)
    }

    /// The last `max` bytes (or fewer, cut at a character) of a job's
    /// stored output, read from its newest chunks backwards.
    fn output_tail(&self, job_id: i64, max: usize) -> Result<String> {
        let mut stmt = self
            .conn()
            .prepare("SELECT text FROM job_output WHERE job_id = ?1 ORDER BY seq DESC")?;
        let mut chunks = stmt.query_map([job_id], |r| r.get::<_, String>(0))?;
        let mut newest_first = Vec::new();
        let mut len = 0;
        while len < max {
            let Some(chunk) = chunks.next() else { break };
            let chunk = chunk?;
            len += chunk.len();
            newest_first.push(chunk);
        }
        let mut tail: String = newest_first.into_iter().rev().collect();
        if tail.len() > max {
            let cut = ceil_char_boundary(&tail, tail.len() - max);
            tail.drain(..cut);
        }
        Ok(tail)
    }

    /// Ids of every job remembered, oldest first.
    pub fn job_ids(&self) -> Result<Vec<i64>> {
        self.ids("SELECT job_id FROM jobs ORDER BY job_id")
    }

    /// Ids of the running jobs, oldest first.
    pub fn running_job_ids(&self) -> Result<Vec<i64>> {
        self.ids("SELECT job_id FROM jobs WHERE ended IS NULL ORDER BY job_id")
    }

    fn ids(&self, sql: &str) -> Result<Vec<i64>> {
        let mut stmt = self.conn().prepare(sql)?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    fn job_row(&self, job_id: i64) -> Result<JobRow> {
        self.conn()
            .prepare(
                "SELECT host, pid, path, started, ended, updated, timeout, kill, exit, disk_usage,
                        batch
                 FROM jobs WHERE job_id = ?1",
            )?
            .query_row([job_id], |r| {
                Ok(JobRow {
                    host: r.get(0)?,
                    pid: r.get(1)?,
                    path: r.get(2)?,
                    started: r.get(3)?,
                    ended: r.get(4)?,
                    updated: r.get(5)?,
                    timeout: r.get(6)?,
                    kill: r.get(7)?,
                    exit: r.get(8)?,
                    disk_usage: r.get(9)?,
                    batch: r.get(10)?,
                })
            })
            .optional()?
            .ok_or(Error::UnknownJob(job_id))
    }

    /// Everything known about one job, its whole output included.
    pub fn job(&self, job_id: i64) -> Result<JobInfo> {
        let output = self.output(job_id)?;
        Ok(JobInfo {
            output,
            ..self.job_without_output(job_id)?
        })
    }

    /// One job as `job` shows it but with its output left empty: what a
    /// `job-update` answers, so that the answer does not grow with the
    /// output (the minion reads `kill_job` from it).
    pub fn job_without_output(&self, job_id: i64) -> Result<JobInfo> {
        let row = self.job_row(job_id)?;
        Ok(JobInfo {
            job_id,
            host: row.host,
            pid: row.pid,
            path: row.path,
            exit: row.exit.unwrap_or_else(|| EXIT_RUNNING.to_owned()),
            kill_job: row.kill,
            output: String::new(),
            disk_usage: row.disk_usage,
            disk_usage_nice: timefmt::bytes(row.disk_usage),
            job_started: timefmt::utc(row.started),
            job_ended: row.ended.map(timefmt::utc).unwrap_or_default(),
            started: row.started,
            ended: row.ended,
            updated: row.updated,
            result: self.job_result(job_id)?,
        })
    }

    /// The result stored with a job, if any. Text that is not JSON (it was
    /// checked when stored, so only a hand-edited STATEDB has it) is shown
    /// as a JSON string rather than failing the whole answer.
    fn job_result(&self, job_id: i64) -> Result<Option<serde_json::Value>> {
        let text: Option<String> = self
            .conn()
            .prepare("SELECT result FROM job_results WHERE job_id = ?1")?
            .query_row([job_id], |r| r.get(0))
            .optional()?;
        Ok(text.map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))))
    }
}

impl WriteTx<'_> {
    /// Hands the first due lorry to a minion: marks it running and creates
    /// its job. `None` when the queue is stopped, `max_jobs` jobs already run,
    /// or nothing is due. (`start_next` with batches, in batches.rs.)
    pub fn start_next_job(&self, host: &str, pid: i64) -> Result<Option<(i64, LorryInfo)>> {
        Ok(match self.start_next(host, pid, 0)? {
            Some(super::Handout::Job(job_id, lorry)) => Some((job_id, *lorry)),
            _ => None,
        })
    }

    /// Starts the job of the due lorry `path` for minion `host`/`pid`.
    pub(super) fn start_job(&self, host: &str, pid: i64, path: &str) -> Result<(i64, LorryInfo)> {
        self.conn()
            .prepare(
                "INSERT INTO jobs (host, pid, path, started, updated, timeout)
                 SELECT ?1, ?2, path, ?4, ?4, lorry_timeout FROM lorries WHERE path = ?3",
            )?
            .execute(params![host, pid, path, self.now])?;
        let job_id = self.conn().last_insert_rowid();
        self.conn()
            .prepare(
                "UPDATE lorries SET running_job = ?2, last_run = ?3, last_job = ?3, move_kind = 0,
                 move_seq = 0
             WHERE path = ?1",
            )?
            .execute(params![path, job_id, self.now])?;
        self.fingerprint_job_started(path)?;
        let lorry = self
            .lorry_row(path)?
            .ok_or_else(|| Error::UnknownLorry(path.to_owned()))?;
        self.record_event(
            EventType::JobStarted,
            Some(path),
            upstream_host(&lorry.from_host),
            json!({ "job_id": job_id, "minion": host, "pid": pid }),
        )?;
        Ok((job_id, lorry))
    }

    /// Ends the jobs still running under minion `host`/`pid`, which says
    /// (give-me-job's `idle=yes`) that it runs none: the answer that
    /// handed each out never reached it (the webapp was killed or the
    /// request timed out after the commit). Without this they would wait
    /// for the ghost timeout. Exit 127, with a line saying why; answers
    /// their ids.
    pub fn end_jobs_never_received(&self, host: &str, pid: i64) -> Result<Vec<i64>> {
        let ids: Vec<i64> = self
            .conn()
            .prepare(
                "SELECT job_id FROM jobs WHERE ended IS NULL AND host = ?1 AND pid = ?2
                 ORDER BY job_id",
            )?
            .query_map(params![host, pid], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for job_id in &ids {
            match self.hold_of(*job_id)? {
                Hold::Gone => continue,
                Hold::Batch(batch) => {
                    self.release_batch(batch)?;
                    continue;
                }
                Hold::Job => {}
            }
            self.append_output(
                *job_id,
                &format!(
                    "\nlorry-controller: minion {host} (pid {pid}) asked for a job while this \
                     one was recorded as running there: the answer handing it out never \
                     reached it; job ended\n"
                ),
            )?;
            let job = self.job_row(*job_id)?;
            self.end_job(*job_id, &job, GHOST_EXIT, None, None)?;
        }
        Ok(ids)
    }

    /// Ends job `job_id`, just handed out, because the request it answered
    /// was gone before the answer could be sent (a long-polling minion
    /// that hung up): nobody runs it. Exit 127, with a line saying why.
    /// A job that has ended meanwhile is left alone.
    pub fn end_job_unanswered(&self, job_id: i64) -> Result<()> {
        if let Hold::Batch(batch) = self.hold_of(job_id)? {
            self.release_batch(batch)?;
            return Ok(());
        }
        let job = self.job_row(job_id)?;
        if job.ended.is_some() {
            return Ok(());
        }
        self.append_output(
            job_id,
            "\nlorry-controller: the minion's request was gone before the answer handing \
             out this job could be sent; job ended\n",
        )?;
        self.end_job(job_id, &job, GHOST_EXIT, None, None)
    }

    /// Records a minion's report. Output is appended (within the cap); an
    /// exit ends the job and frees its lorry; a job past its lorry's
    /// timeout is marked to be killed. Answers the job without its output.
    pub fn update_job(&self, job_id: i64, update: &JobUpdate) -> Result<JobInfo> {
        let job = self.job_row(job_id)?;
        if job.ended.is_some() {
            return Err(Error::JobEnded(job_id));
        }
        if let Some(batch) = job.batch {
            return self.update_batch(batch, update);
        }
        self.append_output(job_id, &update.stdout)?;
        self.append_output(job_id, &update.stderr)?;
        match update.exit {
            Some(exit) => {
                if let Some(result) = &update.result {
                    self.conn()
                        .prepare(
                            "INSERT OR REPLACE INTO job_results (job_id, result) VALUES (?1, ?2)",
                        )?
                        .execute(params![job_id, result])?;
                }
                // A result this webapp cannot read (a newer version's, say)
                // is stored all the same; its events just lack the summary.
                let result = update
                    .result
                    .as_deref()
                    .and_then(|text| serde_json::from_str::<JobResult>(text).ok());
                if let Some(result) = &result {
                    self.ledger_from_result(&job.path, job_id, result)?;
                }
                self.end_job(job_id, &job, exit, update.disk_usage, result.as_ref())?;
            }
            None => {
                let overdue = self.now - job.started > job.timeout;
                self.conn()
                    .prepare("UPDATE jobs SET updated = ?2, kill = kill OR ?3 WHERE job_id = ?1")?
                    .execute(params![job_id, self.now, overdue])?;
            }
        }
        self.job_without_output(job_id)
    }

    /// Ends a job and frees its lorry, counting it in the per-hour stats and
    /// recording job-ended and, for a lorry that still has this job,
    /// lorry-failed or lorry-recovered.
    /// With lorry's `result`, job-ended carries its summary, and refs that
    /// upstream rewrote or deleted are recorded as upstream-refs-rewritten.
    fn end_job(
        &self,
        job_id: i64,
        job: &JobRow,
        exit: i64,
        disk_usage: Option<i64>,
        result: Option<&JobResult>,
    ) -> Result<()> {
        let path = job.path.as_str();
        // The lorry as it was: absent when it was removed while the job ran.
        let before: Option<(String, i64)> = self
            .conn()
            .query_row(
                "SELECT from_host, consecutive_failures FROM lorries
                 WHERE path = ?1 AND running_job = ?2",
                params![path, job_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        self.conn()
            .prepare(
                "UPDATE jobs SET updated = ?2, ended = ?2, exit = ?3,
                 disk_usage = COALESCE(?4, disk_usage)
             WHERE job_id = ?1",
            )?
            .execute(params![job_id, self.now, exit.to_string(), disk_usage])?;
        let error = if exit == 0 {
            None
        } else {
            Some(self.output_tail(job_id, LAST_RUN_ERROR_MAX)?)
        };
        self.conn()
            .prepare(
                "UPDATE lorries SET running_job = NULL, last_run_exit = ?3, last_run_error = ?4,
                 disk_usage = COALESCE(?5, disk_usage),
                 last_success = CASE WHEN ?3 = '0' THEN ?6 ELSE last_success END,
                 overdue = CASE WHEN ?3 = '0' THEN 0 ELSE overdue END,
                 consecutive_failures = CASE WHEN ?3 = '0' THEN 0
                                             ELSE consecutive_failures + 1 END
             WHERE path = ?1 AND running_job = ?2",
            )?
            .execute(params![
                path,
                job_id,
                exit.to_string(),
                error,
                disk_usage,
                self.now
            ])?;
        self.fingerprint_job_ended(path, job_id, exit == 0)?;
        let host = before.as_ref().and_then(|(h, _)| upstream_host(h));
        self.count_job_end(host.unwrap_or_default(), exit == 0)?;
        self.record_event(
            EventType::JobEnded,
            Some(path),
            host,
            json!({
                "job_id": job_id,
                "exit": exit,
                "minion": job.host,
                "pid": job.pid,
                "started": job.started,
                "duration": self.now - job.started,
                "disk_usage": disk_usage,
                "summary": result.map(super::events::job_summary),
            }),
        )?;
        if let Some(rewritten) = result.and_then(super::events::rewritten_refs) {
            let mut body = rewritten;
            body["job_id"] = json!(job_id);
            self.record_event(EventType::UpstreamRefsRewritten, Some(path), host, body)?;
        }
        match before {
            Some((_, failures)) if exit != 0 => self.record_event(
                EventType::LorryFailed,
                Some(path),
                host,
                json!({ "job_id": job_id, "exit": exit, "consecutive_failures": failures + 1 }),
            )?,
            Some((_, failures)) if failures > 0 => self.record_event(
                EventType::LorryRecovered,
                Some(path),
                host,
                json!({ "job_id": job_id, "failures": failures }),
            )?,
            _ => {}
        }
        Ok(())
    }

    /// Appends one chunk of output, keeping at most `job_output_max` bytes
    /// of the job's output: the first half as it came (the head), then a
    /// marker row saying how much was dropped, then the most recent text
    /// (the tail), whose oldest chunks are dropped (or cut) as new ones
    /// come. Only the counters in `jobs` and the chunks dropped are read,
    /// never the whole output.
    fn append_output(&self, job_id: i64, text: &str) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let head_max = self.job_output_max / 2;
        let tail_max = self.job_output_max - head_max;
        let mut c = self.output_counters(job_id)?;
        let mut text = text;
        if c.marker.is_none() {
            let len = text.len() as u64;
            if c.head + len <= head_max {
                self.insert_chunk(job_id, text, None)?;
                c.head += len;
                return self.save_output_counters(job_id, &c);
            }
            let room = usize::try_from(head_max.saturating_sub(c.head)).unwrap_or(usize::MAX);
            let cut = floor_char_boundary(text, room);
            if cut > 0 {
                self.insert_chunk(job_id, &text[..cut], None)?;
                c.head += cut as u64;
            }
            // The marker's place: the seq after the head, kept free.
            c.marker = Some(self.next_seq(job_id, None)?);
            text = &text[cut..];
        }
        let tail_max_bytes = usize::try_from(tail_max).unwrap_or(usize::MAX);
        if text.len() > tail_max_bytes {
            let cut = ceil_char_boundary(text, text.len() - tail_max_bytes);
            c.dropped += cut as u64;
            text = &text[cut..];
        }
        if !text.is_empty() {
            self.insert_chunk(job_id, text, c.marker)?;
            c.tail += text.len() as u64;
        }
        while c.tail > tail_max {
            let excess = c.tail - tail_max;
            let (seq, oldest): (i64, String) = self.conn().query_row(
                "SELECT seq, text FROM job_output WHERE job_id = ?1 AND seq > ?2
                 ORDER BY seq LIMIT 1",
                params![job_id, c.marker],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let len = oldest.len() as u64;
            if len <= excess {
                self.conn().execute(
                    "DELETE FROM job_output WHERE job_id = ?1 AND seq = ?2",
                    params![job_id, seq],
                )?;
                c.tail -= len;
                c.dropped += len;
            } else {
                let cut =
                    ceil_char_boundary(&oldest, usize::try_from(excess).unwrap_or(usize::MAX));
                self.conn().execute(
                    "UPDATE job_output SET text = ?3 WHERE job_id = ?1 AND seq = ?2",
                    params![job_id, seq, &oldest[cut..]],
                )?;
                c.tail -= cut as u64;
                c.dropped += cut as u64;
            }
        }
        if let (Some(marker), true) = (c.marker, c.dropped > 0) {
            self.conn().execute(
                "INSERT OR REPLACE INTO job_output (job_id, seq, text) VALUES (?1, ?2, ?3)",
                params![job_id, marker, output_marker(c.dropped)],
            )?;
        }
        self.save_output_counters(job_id, &c)
    }

    fn output_counters(&self, job_id: i64) -> Result<OutputCounters> {
        Ok(self.conn().query_row(
            "SELECT output_head, output_tail, output_marker, output_dropped
             FROM jobs WHERE job_id = ?1",
            [job_id],
            |r| {
                Ok(OutputCounters {
                    head: r.get(0)?,
                    tail: r.get(1)?,
                    marker: r.get(2)?,
                    dropped: r.get(3)?,
                })
            },
        )?)
    }

    fn save_output_counters(&self, job_id: i64, c: &OutputCounters) -> Result<()> {
        self.conn().execute(
            "UPDATE jobs SET output_head = ?2, output_tail = ?3, output_marker = ?4,
             output_dropped = ?5 WHERE job_id = ?1",
            params![job_id, c.head, c.tail, c.marker, c.dropped],
        )?;
        Ok(())
    }

    /// The seq a new chunk gets: after every stored chunk and after the
    /// marker's place, if the head is full.
    fn next_seq(&self, job_id: i64, marker: Option<i64>) -> Result<i64> {
        let last: i64 = self.conn().query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM job_output WHERE job_id = ?1",
            [job_id],
            |r| r.get(0),
        )?;
        Ok(last.max(marker.unwrap_or(0)) + 1)
    }

    fn insert_chunk(&self, job_id: i64, text: &str, marker: Option<i64>) -> Result<()> {
        let seq = self.next_seq(job_id, marker)?;
        self.conn().execute(
            "INSERT INTO job_output (job_id, seq, text) VALUES (?1, ?2, ?3)",
            params![job_id, seq, text],
        )?;
        Ok(())
    }

    /// Asks for a running job to be killed; the minion does it at its next update.
    pub fn stop_job(&self, job_id: i64) -> Result<()> {
        if self.job_row(job_id)?.ended.is_some() {
            return Err(Error::JobEnded(job_id));
        }
        self.conn()
            .prepare("UPDATE jobs SET kill = 1 WHERE job_id = ?1")?
            .execute([job_id])?;
        Ok(())
    }

    /// Forgets a finished job and its output.
    pub fn remove_job(&self, job_id: i64) -> Result<()> {
        if self.job_row(job_id)?.ended.is_none() {
            return Err(Error::JobRunning(job_id));
        }
        self.conn()
            .prepare("DELETE FROM jobs WHERE job_id = ?1")?
            .execute([job_id])?;
        Ok(())
    }

    /// Ends every running job not updated for more than `ghost_timeout`
    /// seconds, with exit 127, and frees its lorry. Answers their ids.
    pub fn remove_ghost_jobs(&self, ghost_timeout: i64) -> Result<Vec<i64>> {
        let mut stmt = self.conn().prepare(
            "SELECT job_id, updated FROM jobs WHERE ended IS NULL AND updated + ?1 < ?2
             ORDER BY job_id",
        )?;
        let ghosts: Vec<(i64, i64)> = stmt
            .query_map([ghost_timeout, self.now], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (job_id, updated) in &ghosts {
            match self.hold_of(*job_id)? {
                Hold::Gone => continue,
                // A batch's holds go without a verdict: their lorries are
                // due as they were.
                Hold::Batch(batch) => {
                    self.release_batch(batch)?;
                    continue;
                }
                Hold::Job => {}
            }
            self.append_output(
                *job_id,
                &format!(
                    "\nlorry-controller: no update from the minion since {}; \
                     job ended as a ghost\n",
                    timefmt::utc(*updated)
                ),
            )?;
            self.conn()
                .prepare("UPDATE jobs SET kill = 1 WHERE job_id = ?1")?
                .execute([job_id])?;
            let job = self.job_row(*job_id)?;
            self.end_job(*job_id, &job, GHOST_EXIT, None, None)?;
        }
        Ok(ghosts.into_iter().map(|(id, _)| id).collect())
    }

    /// Forgets finished jobs that ended more than `max_age` seconds ago,
    /// except the newest `keep` jobs of each lorry. Answers their ids.
    pub fn remove_old_jobs(&self, max_age: i64, keep: i64) -> Result<Vec<i64>> {
        if max_age < 0 || keep < 0 {
            return Err(Error::Invalid {
                field: if max_age < 0 { "max_age" } else { "keep" },
                problem: "must not be negative".into(),
            });
        }
        let mut stmt = self.conn().prepare(
            "SELECT job_id FROM (
                 SELECT job_id, ended,
                        ROW_NUMBER() OVER (PARTITION BY path ORDER BY job_id DESC) AS newest
                 FROM jobs WHERE ended IS NOT NULL)
             WHERE ended < ?1 AND newest > ?2
             ORDER BY job_id",
        )?;
        let old: Vec<i64> = stmt
            .query_map([self.now - max_age, keep], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut delete = self.conn().prepare("DELETE FROM jobs WHERE job_id = ?1")?;
        for job_id in &old {
            delete.execute([job_id])?;
        }
        Ok(old)
    }
}

/// The line standing where output was dropped.
fn output_marker(dropped: u64) -> String {
    format!(
        "\n[lorry-controller: {dropped} bytes of output dropped here \
         (--job-output-max keeps the first and the most recent)]\n"
    )
}

/// The largest index `<= at` that starts a character of `text`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The smallest index `>= at` that starts a character of `text`.
fn ceil_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// The Upstream Host of a lorry whose `from_host` is `from_host`.
fn upstream_host(from_host: &str) -> Option<&str> {
    (!from_host.is_empty()).then_some(from_host)
}

#[cfg(test)]
mod tests {
    use super::super::lorries::tests::lorry;
    use super::super::tests::fresh;
    use super::super::{NewLorry, WriteTx};
    use super::*;

    fn finished(exit: i64) -> JobUpdate {
        JobUpdate {
            exit: Some(exit),
            ..JobUpdate::default()
        }
    }

    #[test]
    fn a_job_runs_the_due_lorry_once() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| tx.upsert_lorry(&lorry("up/foo", 100)))
            .expect("setup");
        let (job_id, info) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("job");
        assert_eq!(
            (job_id, info.path.as_str(), info.running_job),
            (1, "up/foo", Some(1))
        );
        assert_eq!(
            db.write(|tx| tx.start_next_job("m", 2)).expect("give"),
            None
        );

        let update = JobUpdate {
            stdout: "out\n".into(),
            stderr: "err\n".into(),
            ..finished(0)
        };
        db.write(|tx| tx.update_job(1, &update)).expect("update");
        let job = db.read(|tx| tx.job(1)).expect("job");
        assert_eq!(
            (job.exit.as_str(), job.output.as_str()),
            ("0", "out\nerr\n")
        );
        let lorry = db.read(|tx| tx.lorry("up/foo")).expect("lorry");
        assert_eq!(
            (lorry.running_job, lorry.last_run, lorry.jobs),
            (None, 1_000, Some(vec![1]))
        );
        assert_eq!(lorry.last_run_exit.as_deref(), Some("0"));
        assert!(matches!(
            db.write(|tx| tx.update_job(1, &update)),
            Err(Error::JobEnded(1))
        ));
    }

    #[test]
    fn failed_job_keeps_its_output_as_last_error() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 100)))
            .expect("setup");
        db.write(|tx| tx.start_next_job("m", 1)).expect("give");
        let update = JobUpdate {
            stderr: "boom\n".into(),
            ..finished(1)
        };
        db.write(|tx| tx.update_job(1, &update)).expect("update");
        let lorry = db.read(|tx| tx.lorry("a")).expect("lorry");
        assert_eq!(lorry.last_run_error.as_deref(), Some("boom\n"));
    }

    #[test]
    fn overdue_job_is_marked_for_killing() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| {
            tx.upsert_lorry(&NewLorry {
                lorry_timeout: 60,
                ..lorry("a", 100)
            })
        })
        .expect("setup");
        db.write(|tx| tx.start_next_job("m", 1)).expect("give");
        db.set_pretend_time(1_060);
        assert!(
            !db.write(|tx| tx.update_job(1, &JobUpdate::default()))
                .expect("u")
                .kill_job
        );
        db.set_pretend_time(1_061);
        assert!(
            db.write(|tx| tx.update_job(1, &JobUpdate::default()))
                .expect("u")
                .kill_job
        );
    }

    #[test]
    fn max_jobs_and_stopped_queue_hold_jobs_back() {
        let (_dir, db) = fresh();
        db.write(|tx| {
            tx.upsert_lorry(&lorry("a", 100))?;
            tx.upsert_lorry(&lorry("b", 100))?;
            tx.set_max_jobs(Some(1))
        })
        .expect("setup");
        assert!(
            db.write(|tx| tx.start_next_job("m", 1))
                .expect("give")
                .is_some()
        );
        assert!(
            db.write(|tx| tx.start_next_job("m", 2))
                .expect("give")
                .is_none()
        );
        db.write(|tx| tx.set_max_jobs(None)).expect("unlimit");
        db.write(|tx| tx.set_running_queue(false)).expect("stop");
        assert!(
            db.write(|tx| tx.start_next_job("m", 2))
                .expect("give")
                .is_none()
        );
        db.write(|tx| tx.set_running_queue(true)).expect("start");
        assert!(
            db.write(|tx| tx.start_next_job("m", 2))
                .expect("give")
                .is_some()
        );
    }

    #[test]
    fn ghosts_are_ended_with_127() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| tx.upsert_lorry(&lorry("a", 100)))
            .expect("setup");
        db.write(|tx| tx.start_next_job("m", 1)).expect("give");
        assert!(
            db.write(|tx| tx.remove_ghost_jobs(10))
                .expect("ghosts")
                .is_empty()
        );
        db.set_pretend_time(1_011);
        assert_eq!(
            db.write(|tx| tx.remove_ghost_jobs(10)).expect("ghosts"),
            [1]
        );
        let job = db.read(|tx| tx.job(1)).expect("job");
        assert_eq!((job.exit.as_str(), job.kill_job), ("127", true));
        assert_eq!(
            db.read(|tx| tx.lorry("a")).expect("lorry").running_job,
            None
        );
    }

    /// A minion that asks again while a job is recorded as its own never
    /// received that job (the answer was lost): only its own jobs end.
    #[test]
    fn jobs_a_minion_never_received_are_ended_when_it_asks_again() {
        let (_dir, db) = fresh();
        db.write(|tx| {
            tx.upsert_lorry(&lorry("a", 100))?;
            tx.upsert_lorry(&lorry("b", 100))
        })
        .expect("setup");
        let (lost, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("a job");
        let (other, _) = db
            .write(|tx| tx.start_next_job("m", 2))
            .expect("give")
            .expect("a job");
        assert!(
            db.write(|tx| tx.end_jobs_never_received("n", 1))
                .expect("end")
                .is_empty()
        );
        assert_eq!(
            db.write(|tx| tx.end_jobs_never_received("m", 1))
                .expect("end"),
            [lost]
        );
        let job = db.read(|tx| tx.job(lost)).expect("job");
        assert_eq!(job.exit, "127");
        assert!(job.output.contains("never reached it"), "{}", job.output);
        assert_eq!(db.read(|tx| tx.job(other)).expect("job").exit, "no");
        assert_eq!(
            db.read(|tx| tx.lorry("a")).expect("lorry").running_job,
            None
        );
    }

    /// A job whose answer nobody was left to take ends at once, with a
    /// line saying why, and frees its lorry; one already ended stays as it is.
    #[test]
    fn a_job_handed_to_a_request_that_is_gone_ends() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 100)))
            .expect("setup");
        let (id, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("a job");
        db.write(|tx| tx.end_job_unanswered(id)).expect("end");
        let job = db.read(|tx| tx.job(id)).expect("job");
        assert_eq!(job.exit, "127");
        assert!(job.output.contains("request was gone"), "{}", job.output);
        assert_eq!(
            db.read(|tx| tx.lorry("a")).expect("lorry").running_job,
            None
        );
        db.write(|tx| tx.end_job_unanswered(id)).expect("again");
        assert_eq!(db.read(|tx| tx.job(id)).expect("job").output, job.output);
    }

    #[test]
    fn running_jobs_cannot_be_removed_and_ended_ones_cannot_be_stopped() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 100)))
            .expect("setup");
        db.write(|tx| tx.start_next_job("m", 1)).expect("give");
        assert!(matches!(
            db.write(|tx| tx.remove_job(1)),
            Err(Error::JobRunning(1))
        ));
        db.write(|tx| tx.stop_job(1)).expect("stop");
        db.write(|tx| tx.update_job(1, &finished(-9))).expect("end");
        assert!(matches!(
            db.write(|tx| tx.stop_job(1)),
            Err(Error::JobEnded(1))
        ));
        db.write(|tx| tx.remove_job(1)).expect("remove");
        assert!(matches!(db.read(|tx| tx.job(1)), Err(Error::UnknownJob(1))));
        assert!(matches!(
            db.write(|tx| tx.remove_job(1)),
            Err(Error::UnknownJob(1))
        ));
    }

    #[test]
    fn success_time_and_consecutive_failures_are_tracked() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| tx.upsert_lorry(&lorry("a", 0)))
            .expect("setup");
        let run = |exit| {
            let (id, _) = db
                .write(|tx| tx.start_next_job("m", 1))
                .expect("give")
                .expect("job");
            db.write(|tx| tx.update_job(id, &finished(exit)))
                .expect("end");
            db.read(|tx| tx.lorry("a")).expect("lorry")
        };
        assert_eq!(
            (run(1).consecutive_failures, run(2).consecutive_failures),
            (1, 2)
        );
        let ok = run(0);
        assert_eq!((ok.consecutive_failures, ok.last_success), (0, Some(1_000)));
        assert_eq!(run(1).last_success, Some(1_000));
    }

    #[test]
    fn old_jobs_are_removed_but_the_newest_of_each_lorry_kept() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| {
            tx.upsert_lorry(&lorry("a", 0))?;
            tx.upsert_lorry(&lorry("b", 0))
        })
        .expect("setup");
        // Six finished jobs: "b" runs job 2, "a" all the others (at one
        // pretended time, the tie of due times goes to the path that sorts
        // first). Job 7 still runs.
        for _ in 0..3 {
            for _ in 0..2 {
                let (id, _) = db
                    .write(|tx| tx.start_next_job("m", 1))
                    .expect("give")
                    .expect("job");
                db.write(|tx| tx.update_job(id, &finished(0))).expect("end");
            }
        }
        db.write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("running job 7");
        db.set_pretend_time(1_000 + 100);
        assert!(
            db.write(|tx| tx.remove_old_jobs(100, 1))
                .expect("young")
                .is_empty()
        );
        let removed = db.write(|tx| tx.remove_old_jobs(99, 1)).expect("old");
        assert_eq!(removed, [1, 3, 4, 5]);
        // Each lorry keeps its newest finished job; running jobs are never removed.
        let left = db.read(|tx| tx.job_ids()).expect("ids");
        assert_eq!(left, [2, 6, 7]);
        assert!(db.write(|tx| tx.remove_old_jobs(-1, 1)).is_err());
    }

    /// A lorry removed (from CONFGIT, or by its host's listing) and added
    /// again while its job runs takes that job up again: give-me-job does
    /// not hand it out a second time, and the job's end is recorded on it.
    #[test]
    fn a_lorry_re_added_while_its_job_runs_gets_no_second_job() {
        let (_dir, db) = fresh();
        db.set_pretend_time(1_000);
        db.write(|tx| tx.upsert_lorry(&lorry("a", 100)))
            .expect("add");
        let (job, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("job");
        db.set_pretend_time(1_050);
        db.write(|tx| tx.remove_lorry("a")).expect("remove");
        db.write(|tx| tx.upsert_lorry(&lorry("a", 100)))
            .expect("add again");
        let a = db.read(|tx| tx.lorry("a")).expect("lorry");
        assert_eq!((a.running_job, a.last_run), (Some(job), 1_000));
        assert_eq!(
            db.write(|tx| tx.start_next_job("m", 2)).expect("give"),
            None
        );
        db.write(|tx| tx.update_job(job, &finished(0)))
            .expect("end");
        let a = db.read(|tx| tx.lorry("a")).expect("lorry");
        assert_eq!(
            (a.running_job, a.last_run_exit.as_deref()),
            (None, Some("0"))
        );
        // Due again one interval after the job started.
        db.set_pretend_time(1_100);
        let (next, _) = db
            .write(|tx| tx.start_next_job("m", 3))
            .expect("give")
            .expect("due again");
        assert_eq!(next, job + 1);
    }

    /// STATEDB itself refuses a second running job for one path, whatever
    /// the code above it does.
    #[test]
    fn the_schema_allows_one_running_job_per_path() {
        let (_dir, db) = fresh();
        let insert = |tx: &WriteTx<'_>| -> Result<()> {
            tx.conn()
                .prepare(
                    "INSERT INTO jobs (host, pid, path, started, updated, timeout)
                     VALUES ('m', 1, 'a', 0, 0, 60)",
                )?
                .execute([])?;
            Ok(())
        };
        db.write(insert).expect("first");
        assert!(db.write(insert).is_err());
        db.write(|tx| tx.update_job(1, &finished(0))).expect("end");
        db.write(insert).expect("once the first has ended");
    }

    #[test]
    fn job_ids_count_up_from_one_and_are_never_reused() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 0)))
            .expect("setup");
        for expected in 1..=3 {
            let (id, _) = db
                .write(|tx| tx.start_next_job("m", 1))
                .expect("give")
                .expect("job");
            assert_eq!(id, expected);
            db.write(|tx| tx.update_job(id, &finished(0))).expect("end");
            db.write(|tx| tx.remove_job(id)).expect("remove");
        }
        assert!(db.read(|tx| tx.job_ids()).expect("ids").is_empty());
    }

    fn running(output: &str) -> JobUpdate {
        JobUpdate {
            stdout: output.to_owned(),
            ..JobUpdate::default()
        }
    }

    /// A job of lorry `up/out` on a STATEDB keeping `max` bytes per job.
    fn job_with_cap(max: u64) -> (tempfile::TempDir, super::super::StateDb, i64) {
        let (dir, db) = fresh();
        db.set_job_output_max(max);
        db.set_pretend_time(1_000);
        db.write(|tx| tx.upsert_lorry(&lorry("up/out", 100)))
            .expect("setup");
        let (job_id, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("job");
        (dir, db, job_id)
    }

    #[test]
    fn output_under_the_cap_is_kept_whole_and_updates_answer_without_it() {
        let (_dir, db, job_id) = job_with_cap(1000);
        let answer = db
            .write(|tx| tx.update_job(job_id, &running("hello\n")))
            .expect("update");
        assert_eq!((answer.output.as_str(), answer.kill_job), ("", false));
        db.write(|tx| tx.update_job(job_id, &running("world\n")))
            .expect("update");
        let job = db.read(|tx| tx.job(job_id)).expect("job");
        assert_eq!(job.output, "hello\nworld\n");
    }

    #[test]
    fn output_over_the_cap_keeps_head_and_latest_tail_with_a_marker() {
        let (_dir, db, job_id) = job_with_cap(1000);
        let mut written = String::new();
        for i in 0..500 {
            let line = format!("line {i:04}\n");
            written.push_str(&line);
            db.write(|tx| tx.update_job(job_id, &running(&line)))
                .expect("update");
        }
        // One chunk larger than the whole cap, too.
        let big = "x".repeat(3000) + "the end\n";
        written.push_str(&big);
        db.write(|tx| tx.update_job(job_id, &running(&big)))
            .expect("update");
        let output = db.read(|tx| tx.job(job_id)).expect("job").output;
        let marker_at = output.find("\n[lorry-controller: ").expect("marker");
        let (head, rest) = output.split_at(marker_at);
        let marker_end = rest.find("]\n").expect("marker end") + 2;
        let (marker, tail) = rest.split_at(marker_end);
        assert!(written.starts_with(head), "head is the start");
        assert!(written.ends_with(tail), "tail is the end");
        assert_eq!(head.len(), 500);
        assert_eq!(tail.len(), 500);
        assert!(tail.ends_with("the end\n"));
        let dropped = written.len() - head.len() - tail.len();
        assert!(
            marker.contains(&format!("{dropped} bytes of output dropped")),
            "{marker}"
        );
    }

    #[test]
    fn capped_output_is_cut_between_characters() {
        let (_dir, db, job_id) = job_with_cap(1024);
        for _ in 0..40 {
            db.write(|tx| tx.update_job(job_id, &running(&"äöü€".repeat(17))))
                .expect("update");
        }
        let output = db.read(|tx| tx.job(job_id)).expect("job").output;
        let kept = output.replace(|c: char| c.is_ascii(), "");
        assert!(kept.chars().all(|c| "äöü€".contains(c)), "{output}");
        assert!(output.len() < 1024 + 200, "{}", output.len());
    }

    #[test]
    fn last_run_error_keeps_the_end_of_a_long_failure() {
        let (_dir, db, job_id) = job_with_cap(DEFAULT_JOB_OUTPUT_MAX);
        for _ in 0..20 {
            db.write(|tx| tx.update_job(job_id, &running(&"e".repeat(10_000))))
                .expect("update");
        }
        db.write(|tx| tx.update_job(job_id, &running("the reason\n")))
            .expect("update");
        db.write(|tx| tx.update_job(job_id, &finished(1)))
            .expect("end");
        let lorry = db
            .read(|tx| tx.lorry_row("up/out"))
            .expect("read")
            .expect("lorry");
        let error = lorry.last_run_error.expect("error");
        assert_eq!(error.len(), LAST_RUN_ERROR_MAX);
        assert!(error.ends_with("the reason\n"));
    }
}
