//! Checking a lorry without a job: manifest fingerprints and host activity.
//!
//! An Upstream Host of type `grokmirror` publishes a fingerprint of every
//! repository's refs. A listing of it records each generated lorry's
//! current fingerprint (`lorry_fingerprints.upstream`); a job copies it
//! when it starts (`job`), and a successful end keeps it as `success`
//! (a failed one clears `success`, so a failure never lets a check be
//! skipped) and its start time as `full_check`.
//!
//! A GitLab, Gitea or GitHub host with `"activity-hint": true` reports
//! when each repository last changed; the listing records that time plus
//! the host's documented granularity and [`ACTIVITY_MARGIN`] as
//! `activity`: from then on a change would show. A time in the future by
//! our clock (the host's clock is ahead, or the field is nonsense) is not
//! recorded, nor is anything when the field is missing or unreadable.
//!
//! give-me-job then marks a due lorry checked **without a job**
//! ("unchanged per manifest" or "per host activity": a successful run for
//! freshness, metrics and the per-hour charts) when all of these hold:
//!
//! * its current fingerprint is known and equals `success`, or its
//!   recorded `activity` is before `full_check` and its last run succeeded;
//! * its last successful job started less than `--full-check-every` ago
//!   (the safety net: a full check at least that often);
//! * its host was listed (or its manifest confirmed unchanged) after the
//!   lorry's previous run started, so the hint says something about the
//!   time since;
//! * nobody moved it in the queue (a move asks for a run).
//!
//! `activity` is compared with the start of the last successful *job*,
//! never with a check without one: a change the host reports late (its
//! clock, its queue) still shows as after that start, so it is only ever
//! picked up later, never lost.

use rusqlite::{OptionalExtension, params};

use super::host_sync::ReportedActivity;
use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// `--full-check-every` unless given: 24 hours.
pub const DEFAULT_FULL_CHECK_EVERY: i64 = 24 * 3600;

/// Added to a host's reported activity before it is trusted: clock skew
/// between the host and us of up to this much, times truncated to the
/// second, and a host's queue that stamps a push a little late.
pub const ACTIVITY_MARGIN: i64 = 300;

/// What said a lorry checked without a job was unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnchangedPer {
    /// Its host's manifest gave the fingerprint of its last success.
    Manifest,
    /// Its host's listing reported no activity since its last success.
    Activity,
    /// A batch check's listing of its upstream equalled the refs its
    /// mirror holds per the ref ledger (batches.rs).
    Listing,
}

impl UnchangedPer {
    /// As stored in `lorries.checked_how`.
    pub(super) fn code(self) -> &'static str {
        match self {
            UnchangedPer::Manifest => "manifest",
            UnchangedPer::Activity => "activity",
            UnchangedPer::Listing => "listing",
        }
    }

    /// The stored `code`, if it is one.
    pub(super) fn from_code(code: &str) -> Option<UnchangedPer> {
        match code {
            "manifest" => Some(UnchangedPer::Manifest),
            "activity" => Some(UnchangedPer::Activity),
            "listing" => Some(UnchangedPer::Listing),
            _ => None,
        }
    }

    /// As the API and the pages say it (`checked_without_job_how`).
    pub fn phrase(self) -> &'static str {
        match self {
            UnchangedPer::Manifest => "unchanged per manifest",
            UnchangedPer::Activity => "unchanged per host activity",
            UnchangedPer::Listing => "unchanged per upstream listing (batch check)",
        }
    }
}

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
    /// (see the module's comment), and by which hint; the manifest's when
    /// both hold.
    pub(super) fn unchanged_per_hint(
        &self,
        path: &str,
        full_check_every: i64,
    ) -> Result<Option<UnchangedPer>> {
        let by_manifest: Option<bool> = self
            .conn()
            .prepare(
                "SELECT f.upstream IS NOT NULL AND f.upstream IS f.success FROM lorries l
                 JOIN lorry_fingerprints f ON f.path = l.path
                 JOIN hosts h ON h.host = l.from_host
                 WHERE l.path = ?1 AND l.move_kind = 0 AND l.running_job IS NULL
                   AND f.full_check + ?3 > ?2
                   AND h.ls_last_run > l.last_run
                   AND ((f.upstream IS NOT NULL AND f.upstream = f.success)
                        OR (f.activity IS NOT NULL AND f.activity < f.full_check
                            AND l.last_run_exit = '0'))",
            )?
            .query_row(params![path, self.now, full_check_every], |r| r.get(0))
            .optional()?;
        Ok(by_manifest.map(|manifest| {
            if manifest {
                UnchangedPer::Manifest
            } else {
                UnchangedPer::Activity
            }
        }))
    }

    /// When `path` was last checked without a job, if ever.
    pub fn last_unchanged_check(&self, path: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .prepare("SELECT checked_without_job FROM lorries WHERE path = ?1")?
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
    /// run as far as freshness, metrics and the per-hour counts go (it
    /// also ends a spell of being overdue, as a successful job does).
    /// `how` is kept for the pages and the API.
    pub(super) fn mark_unchanged(&self, path: &str, how: UnchangedPer) -> Result<()> {
        let host: Option<String> = self
            .conn()
            .prepare(
                "UPDATE lorries SET last_run = ?2, last_run_exit = '0', last_run_error = NULL,
                 last_success = ?2, consecutive_failures = 0, overdue = 0,
                 checked_without_job = ?2, checked_how = ?3
                 WHERE path = ?1 AND running_job IS NULL
                 RETURNING from_host",
            )?
            .query_row(params![path, self.now, how.code()], |r| r.get(0))
            .optional()?;
        let Some(host) = host else {
            return Ok(());
        };
        self.count_job_end(&host, true)
    }

    /// What the host's listing says of `path` now: the fingerprint of its
    /// refs (grokmirror) and when it last changed (`activity-hint`);
    /// `None` forgets what was said before. `spec_changed`: the lorry's
    /// spec changed, so its last success says nothing any more.
    pub(super) fn set_upstream_hints(
        &self,
        path: &str,
        fingerprint: Option<&str>,
        activity: Option<ReportedActivity>,
        spec_changed: bool,
    ) -> Result<()> {
        // A time ahead of our clock is not trusted: clocks disagree, or
        // the field is nonsense; either way it proves nothing.
        let activity = activity.filter(|a| a.at <= self.now).map(|a| {
            a.at.saturating_add(a.granularity.max(0))
                .saturating_add(ACTIVITY_MARGIN)
        });
        if fingerprint.is_none() && activity.is_none() {
            self.conn()
                .prepare(
                    "UPDATE lorry_fingerprints SET upstream = NULL, success = NULL,
                         activity = NULL,
                         full_check = CASE WHEN ?2 THEN NULL ELSE full_check END
                     WHERE path = ?1",
                )?
                .execute(params![path, spec_changed])?;
            return Ok(());
        }
        self.conn()
            .prepare(
                "INSERT INTO lorry_fingerprints (path, upstream, activity) VALUES (?1, ?2, ?3)
                 ON CONFLICT (path) DO UPDATE SET upstream = excluded.upstream,
                     activity = excluded.activity,
                     success = CASE WHEN ?4 OR excluded.upstream IS NULL THEN NULL
                                    ELSE success END,
                     full_check = CASE WHEN ?4 THEN NULL ELSE full_check END
                 WHERE upstream IS NOT excluded.upstream OR activity IS NOT excluded.activity
                       OR ?4",
            )?
            .execute(params![path, fingerprint, activity, spec_changed])?;
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

    /// The manifest of `host`, asked for at `listed_at`, was confirmed
    /// unchanged (HTTP 304): its fingerprints hold as of then. `false`
    /// when the host is not configured.
    pub fn record_listing_unchanged(&self, host: &str, listed_at: i64) -> Result<bool> {
        self.record_listing_time(host, listed_at)
    }

    /// What was listed of `host` is as of `listed_at`, the listing's start
    /// (not its end: a repository pushed to after its page was read must
    /// not look unchanged to a lorry whose job started meanwhile). `false`
    /// when the host is not configured.
    pub fn record_listing_time(&self, host: &str, listed_at: i64) -> Result<bool> {
        let n = self
            .conn()
            .prepare("UPDATE hosts SET ls_last_run = ?2 WHERE host = ?1")?
            .execute(params![host, listed_at])?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::host_sync::{GeneratedLorry, ReportedActivity};
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
                activity: None,
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
            db.write(|tx| tx.record_listing_unchanged("g", tx.now()))
                .expect("304")
        );
        assert!(
            !db.write(|tx| tx.record_listing_unchanged("nope", tx.now()))
                .expect("304")
        );
        assert!(run_due(&db, 1_100, |_| 0).is_empty());
        assert_eq!(last_run(&db, "a").2, Some(1_100));
    }

    /// Lists `paths` of host `g` at `now`, each with the activity given
    /// (GitLab's granularity of an hour).
    fn list_activity(db: &StateDb, now: i64, activity: &[(&str, Option<i64>)]) {
        db.set_pretend_time(now);
        let mut lorries = listed(&activity.iter().map(|(p, _)| (*p, "")).collect::<Vec<_>>());
        for (lorry, (_, at)) in lorries.iter_mut().zip(activity) {
            lorry.fingerprint = None;
            lorry.activity = at.map(|at| ReportedActivity {
                at,
                granularity: 3_600,
            });
        }
        let outcome = db
            .write(|tx| tx.sync_host_lorries("g", &lorries, 1.0, &[]))
            .expect("sync");
        assert!(outcome.is_some());
    }

    #[test]
    fn activity_older_than_the_last_success_by_the_granularity_checks_without_a_job() {
        let (_dir, db) = fresh_host();
        db.write(|tx| tx.set_full_check_every(100_000))
            .expect("set");
        let slack = 3_600 + super::ACTIVITY_MARGIN;
        list_activity(&db, 10_000, &[("a", Some(1_000)), ("b", Some(1_000))]);
        // Nothing succeeded yet: jobs.
        assert_eq!(run_due(&db, 10_000, |_| 0), ["a", "b"]);
        // a: quiet since well before its job started; b: active within the
        // granularity before the start, so a change may have been missed.
        list_activity(
            &db,
            10_200,
            &[("a", Some(10_000 - slack - 1)), ("b", Some(10_000 - slack))],
        );
        assert_eq!(run_due(&db, 10_200, |_| 0), ["b"]);
        assert_eq!(last_run(&db, "a"), (10_200, Some("0".into()), Some(10_200)));
        // The check counts as a success in its hour, like a job.
        let hours = db.read(|tx| tx.jobs_per_hour(48)).expect("hours");
        assert_eq!(hours.iter().map(|h| h.succeeded).sum::<i64>(), 4);
        // Without a newer listing nothing is known: a job.
        assert_eq!(run_due(&db, 10_300, |_| 0), ["a", "b"]);
        // Activity ahead of our clock (skewed clocks): not trusted.
        list_activity(&db, 10_400, &[("a", Some(10_401)), ("b", Some(1_000))]);
        assert_eq!(run_due(&db, 10_400, |_| 0), ["a"]);
        // No activity in the listing (missing or unreadable): a job, and
        // that one fails.
        list_activity(&db, 10_500, &[("a", Some(1_000)), ("b", None)]);
        assert_eq!(run_due(&db, 10_500, |p| i64::from(p == "b")), ["b"]);
        // After a failure, a job until one succeeds again.
        list_activity(&db, 10_600, &[("a", Some(1_000)), ("b", Some(1_000))]);
        assert_eq!(run_due(&db, 10_600, |_| 0), ["b"]);
        list_activity(&db, 10_700, &[("a", Some(1_000)), ("b", Some(1_000))]);
        assert!(run_due(&db, 10_700, |_| 0).is_empty());
        // A new spec: its last success says nothing.
        db.set_pretend_time(10_800);
        let mut moved = listed(&[("a", ""), ("b", "")]);
        for lorry in &mut moved {
            lorry.fingerprint = None;
            lorry.activity = Some(ReportedActivity {
                at: 1_000,
                granularity: 3_600,
            });
        }
        moved[1].lorry.text = moved[1].lorry.text.replace("git://g/", "git://g/new/");
        db.write(|tx| tx.sync_host_lorries("g", &moved, 1.0, &[]))
            .expect("sync");
        assert_eq!(run_due(&db, 10_800, |_| 0), ["b"]);
        assert_eq!(last_run(&db, "a").2, Some(10_800));
    }

    /// What `/1.0/lorry` and `/1.0/status` say of it: no key until a check
    /// without a job; then when, what said so, and when the last job
    /// started, which a later job moves.
    #[test]
    fn a_lorry_says_when_and_why_it_was_checked_without_a_job_and_when_its_job_ran() {
        let (_dir, db) = fresh_host();
        db.write(|tx| tx.set_full_check_every(100_000))
            .expect("set");
        let shown = |path: &str| {
            let lorry = db.read(|tx| tx.lorry(path)).expect("lorry");
            (
                lorry.last_checked_without_job,
                lorry.checked_without_job_how,
                lorry.last_job_run,
            )
        };
        list(&db, 10_000, &[("a", "A1"), ("b", "B1")]);
        assert_eq!(run_due(&db, 10_000, |_| 0), ["a", "b"]);
        assert_eq!(shown("a"), (None, None, None));
        let json = serde_json::to_value(db.read(|tx| tx.lorry("a")).expect("lorry")).expect("json");
        for key in [
            "last_checked_without_job",
            "checked_without_job_how",
            "last_job_run",
        ] {
            assert!(json.get(key).is_none(), "{json}");
        }

        list(&db, 10_100, &[("a", "A1"), ("b", "B1")]);
        assert!(run_due(&db, 10_100, |_| 0).is_empty());
        let manifest = (
            Some(10_100),
            Some("unchanged per manifest".to_owned()),
            Some(10_000),
        );
        assert_eq!(shown("a"), manifest);
        assert_eq!(shown("b"), manifest);

        // a: the host now gives an activity time only, long ago; b: nothing,
        // so a job, which leaves its check as it was.
        list_activity(&db, 10_200, &[("a", Some(1_000)), ("b", None)]);
        assert_eq!(run_due(&db, 10_200, |_| 0), ["b"]);
        assert_eq!(
            shown("a"),
            (
                Some(10_200),
                Some("unchanged per host activity".to_owned()),
                Some(10_000)
            )
        );
        assert_eq!(
            shown("b"),
            (
                Some(10_100),
                Some("unchanged per manifest".to_owned()),
                Some(10_200)
            )
        );
        // The run queue (the JSON status) reads the same row mapping.
        let queue = db.read(|tx| tx.queue_lorries()).expect("queue");
        let a = queue.iter().find(|l| l.path == "a").expect("a");
        let json = serde_json::to_value(a).expect("json");
        assert_eq!(json["last_checked_without_job"], 10_200, "{json}");
        assert_eq!(
            json["checked_without_job_how"],
            "unchanged per host activity"
        );
        assert_eq!(json["last_job_run"], 10_000);
    }

    /// A listing is as of its start: one whose page of `a` was read
    /// before `a`'s job started says nothing of what happened after.
    #[test]
    fn a_listing_begun_before_the_last_run_spares_no_job() {
        let (_dir, db) = fresh_host();
        db.write(|tx| tx.set_full_check_every(100_000))
            .expect("set");
        list_activity(&db, 5_000, &[("a", Some(1_000))]);
        assert_eq!(run_due(&db, 10_000, |_| 0), ["a"]);
        // Begun at 9,990, written at 10,200.
        list_activity(&db, 10_200, &[("a", Some(1_000))]);
        db.write(|tx| tx.record_listing_time("g", 9_990))
            .expect("stamp");
        assert_eq!(run_due(&db, 10_200, |_| 0), ["a"]);
        // Begun after the job's start: it covers the time since.
        list_activity(&db, 10_300, &[("a", Some(1_000))]);
        db.write(|tx| tx.record_listing_time("g", 10_250))
            .expect("stamp");
        assert!(run_due(&db, 10_300, |_| 0).is_empty());
    }

    #[test]
    fn the_safety_net_holds_for_activity_too() {
        let (_dir, db) = fresh_host();
        db.write(|tx| tx.set_full_check_every(250)).expect("set");
        list_activity(&db, 10_000, &[("a", Some(1_000))]);
        assert_eq!(run_due(&db, 10_000, |_| 0), ["a"]);
        list_activity(&db, 10_100, &[("a", Some(1_000))]);
        assert!(run_due(&db, 10_100, |_| 0).is_empty());
        list_activity(&db, 10_250, &[("a", Some(1_000))]);
        assert_eq!(run_due(&db, 10_250, |_| 0), ["a"]);
    }
}
