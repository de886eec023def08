//! Manifest fingerprints: checking a lorry without a job.
//!
//! An Upstream Host of type `grokmirror` publishes a fingerprint of every
//! repository's refs. A listing of it records each generated lorry's
//! current fingerprint (`lorry_fingerprints.upstream`); a job copies it
//! when it starts (`job`), and a successful end keeps it as `success`
//! (a failed one clears `success`, so a failure never lets a check be
//! skipped). give-me-job then marks a due lorry checked **without a job**
//! ("unchanged per manifest": a successful run for freshness and metrics)
//! when all of these hold:
//!
//! * its current fingerprint is known and equals `success`;
//! * its last successful job started less than `--full-check-every` ago
//!   (the safety net: a full check at least that often);
//! * its host's manifest was read (or confirmed unchanged) after the
//!   lorry's previous run started, so the fingerprint says something about
//!   the time since;
//! * nobody moved it in the queue (a move asks for a run).

use rusqlite::{OptionalExtension, params};

use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// `--full-check-every` unless given: 24 hours.
pub const DEFAULT_FULL_CHECK_EVERY: i64 = 24 * 3600;

/// At most this many lorries are checked without a job in one give-me-job;
/// then it answers that nothing is due, and the next one goes on.
pub(super) const UNCHANGED_PER_CALL: usize = 10_000;

impl ReadTx<'_> {
    /// `--full-check-every` as recorded at start-up.
    pub fn full_check_every(&self) -> Result<i64> {
        Ok(self
            .conn()
            .prepare("SELECT seconds FROM full_check_every WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or(DEFAULT_FULL_CHECK_EVERY))
    }

    /// Whether the due lorry `path` may be marked checked without a job
    /// (see the module's comment).
    pub(super) fn unchanged_per_manifest(&self, path: &str, full_check_every: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare(
                "SELECT 1 FROM lorries l
                 JOIN lorry_fingerprints f ON f.path = l.path
                 JOIN hosts h ON h.host = l.from_host
                 WHERE l.path = ?1 AND l.move_kind = 0 AND l.running_job IS NULL
                   AND f.upstream IS NOT NULL AND f.upstream = f.success
                   AND f.full_check + ?3 > ?2
                   AND h.ls_last_run > l.last_run",
            )?
            .query_row(params![path, self.now, full_check_every], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// When `path` was last checked without a job, if ever.
    pub fn last_unchanged_check(&self, path: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .prepare("SELECT skipped FROM lorry_fingerprints WHERE path = ?1")?
            .query_row([path], |r| r.get(0))
            .optional()?
            .flatten())
    }
}

impl WriteTx<'_> {
    /// Records `--full-check-every`; writes nothing when it is unchanged.
    pub fn set_full_check_every(&self, seconds: i64) -> Result<()> {
        if seconds < 0 {
            return Err(Error::Invalid {
                field: "full_check_every",
                problem: format!("{seconds} is negative"),
            });
        }
        self.conn()
            .prepare(
                "INSERT INTO full_check_every (id, seconds) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET seconds = excluded.seconds
                 WHERE seconds IS NOT excluded.seconds",
            )?
            .execute([seconds])?;
        Ok(())
    }

    /// Marks the due lorry `path` checked now without a job: a successful
    /// run as far as freshness and metrics go.
    pub(super) fn mark_unchanged(&self, path: &str) -> Result<()> {
        self.conn()
            .prepare(
                "UPDATE lorries SET last_run = ?2, last_run_exit = '0', last_run_error = NULL,
                 last_success = ?2, consecutive_failures = 0
                 WHERE path = ?1 AND running_job IS NULL",
            )?
            .execute(params![path, self.now])?;
        self.conn()
            .prepare("UPDATE lorry_fingerprints SET skipped = ?2 WHERE path = ?1")?
            .execute(params![path, self.now])?;
        Ok(())
    }

    /// The current fingerprint of `path` as listed by its host: `None`
    /// forgets it (the host no longer gives one). `spec_changed`: the
    /// lorry's spec changed, so its last success says nothing any more.
    pub(super) fn set_upstream_fingerprint(
        &self,
        path: &str,
        fingerprint: Option<&str>,
        spec_changed: bool,
    ) -> Result<()> {
        match fingerprint {
            Some(fingerprint) => self
                .conn()
                .prepare(
                    "INSERT INTO lorry_fingerprints (path, upstream) VALUES (?1, ?2)
                     ON CONFLICT (path) DO UPDATE SET upstream = excluded.upstream,
                         success = CASE WHEN ?3 THEN NULL ELSE success END
                     WHERE upstream IS NOT excluded.upstream OR ?3",
                )?
                .execute(params![path, fingerprint, spec_changed])?,
            None => self
                .conn()
                .prepare(
                    "UPDATE lorry_fingerprints SET upstream = NULL, success = NULL
                     WHERE path = ?1",
                )?
                .execute([path])?,
        };
        Ok(())
    }

    /// A job of `path` starts: the fingerprint it mirrors is the current one.
    pub(super) fn fingerprint_job_started(&self, path: &str) -> Result<()> {
        self.conn()
            .prepare("UPDATE lorry_fingerprints SET job = upstream WHERE path = ?1")?
            .execute([path])?;
        Ok(())
    }

    /// The job `job_id` of `path` ended: a success keeps the fingerprint
    /// its start saw and its start time; a failure forgets the success.
    pub(super) fn fingerprint_job_ended(
        &self,
        path: &str,
        job_id: i64,
        success: bool,
    ) -> Result<()> {
        self.conn()
            .prepare(
                "UPDATE lorry_fingerprints
                 SET success = CASE WHEN ?2 THEN job END,
                     full_check = CASE WHEN ?2 THEN (SELECT started FROM jobs WHERE job_id = ?3)
                                       ELSE full_check END
                 WHERE path = ?1",
            )?
            .execute(params![path, success, job_id])?;
        Ok(())
    }

    /// The manifest of `host` was confirmed unchanged (HTTP 304): its
    /// fingerprints hold as of now. `false` when the host is not configured.
    pub fn record_listing_unchanged(&self, host: &str) -> Result<bool> {
        let n = self
            .conn()
            .prepare("UPDATE hosts SET ls_last_run = ?2 WHERE host = ?1")?
            .execute(params![host, self.now])?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::host_sync::GeneratedLorry;
    use super::super::lorries::NewLorry;
    use super::super::tests::fresh;
    use super::super::{JobUpdate, StateDb};

    fn listed(fingerprints: &[(&str, &str)]) -> Vec<GeneratedLorry> {
        fingerprints
            .iter()
            .map(|(path, fp)| GeneratedLorry {
                lorry: NewLorry {
                    path: (*path).into(),
                    text: format!(
                        "{{\"{path}\": {{\"type\": \"git\", \"url\": \"git://g/{path}\"}}}}"
                    ),
                    from_host: "g".into(),
                    from_path: (*path).into(),
                    interval: 100,
                    lorry_timeout: 60,
                },
                head: None,
                description: None,
                fingerprint: Some((*fp).into()),
            })
            .collect()
    }

    fn list(db: &StateDb, now: i64, fingerprints: &[(&str, &str)]) {
        db.set_pretend_time(now);
        let outcome = db
            .write(|tx| tx.sync_host_lorries("g", &listed(fingerprints), 1.0, &[]))
            .expect("sync");
        assert!(outcome.is_some());
    }

    /// Asks for jobs until none is due; runs each to `exit` by path.
    fn run_due(db: &StateDb, now: i64, exit: impl Fn(&str) -> i64) -> Vec<String> {
        db.set_pretend_time(now);
        let mut ran = Vec::new();
        while let Some((id, lorry)) = db.write(|tx| tx.start_next_job("m", 1)).expect("give") {
            let update = JobUpdate {
                exit: Some(exit(&lorry.path)),
                ..JobUpdate::default()
            };
            db.write(|tx| tx.update_job(id, &update)).expect("update");
            ran.push(lorry.path);
        }
        ran
    }

    fn last_run(db: &StateDb, path: &str) -> (i64, Option<String>, Option<i64>) {
        let lorry = db.read(|tx| tx.lorry(path)).expect("lorry");
        let skipped = db.read(|tx| tx.last_unchanged_check(path)).expect("skip");
        (lorry.last_run, lorry.last_run_exit, skipped)
    }

    fn fresh_host() -> (tempfile::TempDir, StateDb) {
        let (dir, db) = fresh();
        db.write(|tx| {
            tx.conn().execute(
                "INSERT INTO hosts (host, type, protocol, lorry_interval, lorry_timeout,
                                    ls_interval)
                 VALUES ('g', 'grokmirror', 'git', 100, 60, 60)",
                [],
            )?;
            Ok(())
        })
        .expect("host");
        (dir, db)
    }

    #[test]
    fn unchanged_lorries_are_checked_without_a_job_only_after_a_success() {
        let (_dir, db) = fresh_host();
        list(&db, 1_000, &[("a", "A1"), ("b", "B1")]);
        // b fails: a failure never lets a check be skipped.
        assert_eq!(run_due(&db, 1_000, |p| i64::from(p == "b")), ["a", "b"]);
        list(&db, 1_100, &[("a", "A1"), ("b", "B1")]);
        assert_eq!(run_due(&db, 1_100, |_| 0), ["b"]);
        assert_eq!(last_run(&db, "a"), (1_100, Some("0".into()), Some(1_100)));
        // Without a newer read of the manifest, nothing is known: a job.
        assert_eq!(run_due(&db, 1_200, |_| 0), ["a", "b"]);
        // A changed fingerprint: a job for that lorry alone.
        list(&db, 1_300, &[("a", "A1"), ("b", "B2")]);
        assert_eq!(run_due(&db, 1_300, |_| 0), ["b"]);
        assert_eq!(last_run(&db, "a"), (1_300, Some("0".into()), Some(1_300)));
        // A lorry whose manifest entry lost its fingerprint gets jobs.
        db.set_pretend_time(1_400);
        let mut gone = listed(&[("a", "A1"), ("b", "B2")]);
        gone[0].fingerprint = None;
        db.write(|tx| tx.sync_host_lorries("g", &gone, 1.0, &[]))
            .expect("sync");
        assert_eq!(run_due(&db, 1_400, |_| 0), ["a"]);
    }

    #[test]
    fn a_full_check_comes_at_least_every_full_check_every() {
        let (_dir, db) = fresh_host();
        db.write(|tx| tx.set_full_check_every(250)).expect("set");
        list(&db, 1_000, &[("a", "A1")]);
        assert_eq!(run_due(&db, 1_000, |_| 0), ["a"]);
        for now in [1_100, 1_200] {
            list(&db, now, &[("a", "A1")]);
            assert!(run_due(&db, now, |_| 0).is_empty(), "{now}");
        }
        // 1,000 + 250: the last job is too old to be trusted.
        list(&db, 1_300, &[("a", "A1")]);
        assert_eq!(run_due(&db, 1_300, |_| 0), ["a"]);
        list(&db, 1_400, &[("a", "A1")]);
        assert!(run_due(&db, 1_400, |_| 0).is_empty());
        assert!(db.write(|tx| tx.set_full_check_every(-1)).is_err());
    }

    #[test]
    fn a_moved_or_respecified_lorry_gets_a_job() {
        let (_dir, db) = fresh_host();
        list(&db, 1_000, &[("a", "A1"), ("b", "B1")]);
        assert_eq!(run_due(&db, 1_000, |_| 0), ["a", "b"]);
        list(&db, 1_100, &[("a", "A1"), ("b", "B1")]);
        db.write(|tx| tx.move_to_top("b")).expect("move");
        assert_eq!(run_due(&db, 1_100, |_| 0), ["b"]);
        // A new spec (another URL) forgets the last success.
        db.set_pretend_time(1_200);
        let mut moved = listed(&[("a", "A1"), ("b", "B1")]);
        moved[0].lorry.text = moved[0].lorry.text.replace("git://g/", "git://g/new/");
        db.write(|tx| tx.sync_host_lorries("g", &moved, 1.0, &[]))
            .expect("sync");
        assert_eq!(run_due(&db, 1_200, |_| 0), ["a"]);
    }

    #[test]
    fn an_unchanged_manifest_confirms_the_fingerprints() {
        let (_dir, db) = fresh_host();
        list(&db, 1_000, &[("a", "A1")]);
        assert_eq!(run_due(&db, 1_000, |_| 0), ["a"]);
        db.set_pretend_time(1_100);
        assert!(
            db.write(|tx| tx.record_listing_unchanged("g"))
                .expect("304")
        );
        assert!(
            !db.write(|tx| tx.record_listing_unchanged("nope"))
                .expect("304")
        );
        assert!(run_due(&db, 1_100, |_| 0).is_empty());
        assert_eq!(last_run(&db, "a").2, Some(1_100));
    }
}
