//! What the mirrors hold and held: the submodules their last job named,
//! the ref ledger (every upstream ref tip a lorry's mirror has held, from
//! when to when, and how it ended) and snapshots of the whole set.

use std::collections::BTreeMap;

use lc_api::{JobResult, RefHistoryEntry, RefTip, SpecResult};
use rusqlite::{OptionalExtension, params};

use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// A submodule URL named by a lorry's branches, and the lorry that
/// mirrors it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submodule {
    pub url: String,
    pub mirrored_by: Option<String>,
}

/// The forms of a URL that name the same repository: with and without a
/// trailing `/` and `.git`.
fn url_forms(url: &str) -> Vec<String> {
    let bare = url.trim_end_matches('/');
    let bare = bare.strip_suffix(".git").unwrap_or(bare);
    vec![
        bare.to_owned(),
        format!("{bare}/"),
        format!("{bare}.git"),
        format!("{bare}.git/"),
    ]
}

impl ReadTx<'_> {
    /// `path`'s part of the newest job result that has one.
    pub fn last_spec_result(&self, path: &str) -> Result<Option<SpecResult>> {
        let mut stmt = self.conn().prepare(
            "SELECT r.result FROM job_results AS r JOIN jobs AS j USING (job_id)
             WHERE j.path = ?1 ORDER BY r.job_id DESC LIMIT 5",
        )?;
        let texts = stmt
            .query_map([path], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for text in texts {
            // Any version is stored; one this build cannot read is passed over.
            let Ok(result) = serde_json::from_str::<lc_api::JobResult>(&text) else {
                continue;
            };
            if let Some(spec) = result.specs.into_iter().find(|s| s.name == path) {
                return Ok(Some(spec));
            }
        }
        Ok(None)
    }

    /// The submodules `path`'s newest job result names, each with the lorry
    /// whose git spec has that URL (give or take a trailing `/` or `.git`).
    pub fn lorry_submodules(&self, path: &str) -> Result<Vec<Submodule>> {
        let Some(spec) = self.last_spec_result(path)? else {
            return Ok(Vec::new());
        };
        if spec.submodules.is_empty() {
            return Ok(Vec::new());
        }
        let mut form_of: BTreeMap<String, &str> = BTreeMap::new();
        for url in &spec.submodules {
            for form in url_forms(url) {
                form_of.insert(form, url);
            }
        }
        let forms = serde_json::Value::from(form_of.keys().cloned().collect::<Vec<_>>());
        let mut stmt = self.conn().prepare(
            "SELECT json_extract(s.value, '$.url'), l.path
             FROM lorries AS l, json_each(l.text) AS s
             WHERE json_valid(l.text)
               AND json_extract(s.value, '$.url') IN (SELECT value FROM json_each(?1))
             ORDER BY l.path",
        )?;
        let mut mirrored: BTreeMap<&str, String> = BTreeMap::new();
        for row in stmt.query_map(params![forms.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (form, lorry) = row?;
            if let Some(url) = form_of.get(&form) {
                mirrored.entry(url).or_insert(lorry);
            }
        }
        Ok(spec
            .submodules
            .iter()
            .map(|url| Submodule {
                url: url.clone(),
                mirrored_by: mirrored.get(url.as_str()).cloned(),
            })
            .collect())
    }
}

/// The most ref names for which `refs?at=` seeks each name's row rather
/// than reading every row that had started by then (`ledger_refs`).
pub const REFS_AT_BY_NAME_MAX: i64 = 256;

/// The most history entries one read returns.
pub const HISTORY_MAX_LIMIT: i64 = 1000;

impl ReadTx<'_> {
    /// Fails with `UnknownLorry` unless `path` is a lorry or has a ledger
    /// (a removed lorry keeps its history).
    pub fn ledger_known(&self, path: &str) -> Result<()> {
        let known: bool = self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM lorries WHERE path = ?1)
                 OR EXISTS (SELECT 1 FROM ref_ledger WHERE path = ?1)",
            [path],
            |r| r.get(0),
        )?;
        if known {
            Ok(())
        } else {
            Err(Error::UnknownLorry(path.to_owned()))
        }
    }

    /// Since when `path`'s ledger has been whole, if it is at `at`.
    pub fn ledger_whole_at(&self, path: &str, at: i64) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT since FROM ref_ledger_whole
                 WHERE path = ?1 AND since <= ?2 AND (until IS NULL OR until > ?2)",
                params![path, at],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The refs `path`'s mirror held at `at`, by name.
    pub fn ledger_refs(&self, path: &str, at: i64) -> Result<Vec<RefTip>> {
        // Two plans, both reading the ledger's definition (the rows that had
        // started by `at` and not ended by then):
        // - by name: for each ref name the ledger has had, its newest row
        //   that had started by `at`, kept unless ended by `at` (a ref's
        //   rows follow one another, so an earlier row cannot be the one
        //   held): one seek per name (`ref_ledger_by_ref`), so 10 refs that
        //   moved 1,000 times each are 10 reads, not 10,000;
        // - by time: every row that had started by `at` (`ref_ledger_by_path`),
        //   cheaper when the lorry has many names that rarely move (tags).
        // Names are counted first, by seeks, up to REFS_AT_BY_NAME_MAX: the
        // most the first plan costs over the second is that many seeks.
        let names: i64 = self.conn().query_row(
            &format!(
                "WITH RECURSIVE names(ref) AS (
                    SELECT MIN(ref) FROM ref_ledger WHERE path = ?1
                    UNION ALL
                    SELECT (SELECT MIN(ref) FROM ref_ledger WHERE path = ?1 AND ref > names.ref)
                    FROM names WHERE names.ref IS NOT NULL
                    LIMIT {}
                 )
                 SELECT COUNT(*) FROM names WHERE ref IS NOT NULL",
                REFS_AT_BY_NAME_MAX + 1
            ),
            [path],
            |r| r.get(0),
        )?;
        let mut stmt = if names <= REFS_AT_BY_NAME_MAX {
            self.conn().prepare(
                "WITH RECURSIVE
                    names(ref) AS (
                        SELECT MIN(ref) FROM ref_ledger WHERE path = ?1
                        UNION ALL
                        SELECT (SELECT MIN(ref) FROM ref_ledger WHERE path = ?1 AND ref > names.ref)
                        FROM names WHERE names.ref IS NOT NULL
                    ),
                    live(id) AS (
                        SELECT (SELECT id FROM ref_ledger
                                WHERE path = ?1 AND ref = names.ref AND first_seen <= ?2
                                ORDER BY first_seen DESC, id DESC LIMIT 1)
                        FROM names WHERE names.ref IS NOT NULL
                    )
                 SELECT r.ref, r.oid, r.first_seen, r.ended,
                        CASE WHEN r.ended IS NULL THEN l.last_success ELSE r.last_seen END
                 FROM live JOIN ref_ledger AS r ON r.id = live.id
                      LEFT JOIN lorries AS l ON l.path = r.path
                 WHERE r.ended IS NULL OR r.ended > ?2
                 ORDER BY r.ref",
            )?
        } else {
            self.conn().prepare(
                "SELECT r.ref, r.oid, r.first_seen, r.ended,
                        CASE WHEN r.ended IS NULL THEN l.last_success ELSE r.last_seen END
                 FROM ref_ledger AS r INDEXED BY ref_ledger_by_path
                      LEFT JOIN lorries AS l ON l.path = r.path
                 WHERE r.path = ?1 AND r.first_seen <= ?2 AND (r.ended IS NULL OR r.ended > ?2)
                 ORDER BY r.ref",
            )?
        };
        let rows = stmt
            .query_map(params![path, at], |r| {
                Ok(RefTip {
                    name: r.get(0)?,
                    oid: r.get(1)?,
                    first_seen: r.get(2)?,
                    ended: r.get(3)?,
                    last_seen: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// `path`'s ledger changes, newest first: `limit` of them after
    /// skipping `offset`, and whether there are more.
    pub fn ledger_history(
        &self,
        path: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<RefHistoryEntry>, bool)> {
        if !(1..=HISTORY_MAX_LIMIT).contains(&limit) || offset < 0 {
            return Err(Error::Invalid {
                field: "limit",
                problem: format!(
                    "limit must be from 1 to {HISTORY_MAX_LIMIT} and offset at least 0"
                ),
            });
        }
        // A row's start is one change; the end of a ref that no row
        // follows (deleted, or its lorry removed) is another.
        let mut stmt = self.conn().prepare(
            "SELECT time, ref, old, new, how, kept_as, job FROM (
                SELECT first_seen AS time, id * 2 AS ord, ref, prev_oid AS old, oid AS new,
                       came AS how, prev_kept_as AS kept_as, first_job AS job
                FROM ref_ledger WHERE path = ?1
                UNION ALL
                SELECT ended, id * 2 + 1, ref, oid, NULL, gone, kept_as, end_job
                FROM ref_ledger WHERE path = ?1 AND gone IN ('deleted', 'removed')
             ) ORDER BY time DESC, ref, ord DESC LIMIT ?2 OFFSET ?3",
        )?;
        let mut rows = stmt
            .query_map(params![path, limit + 1, offset], |r| {
                Ok(RefHistoryEntry {
                    time: r.get(0)?,
                    name: r.get(1)?,
                    old: r.get(2)?,
                    new: r.get(3)?,
                    how: r.get(4)?,
                    kept_as: r.get(5)?,
                    job_id: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((rows, more))
    }
}

impl WriteTx<'_> {
    /// Records in the ledger what job `job_id` of `path` reported. Only
    /// changes are written: a result with no moved ref and no whole list
    /// (`held`) reads and writes nothing. `prev_success` is the lorry's last
    /// success before this job, the last time an ending tip was seen.
    pub(super) fn record_ledger(
        &self,
        path: &str,
        job_id: i64,
        spec: &SpecResult,
        prev_success: Option<i64>,
    ) -> Result<()> {
        if spec.refs.is_empty() && spec.held.is_none() {
            return Ok(());
        }
        let now = self.now;
        let open: BTreeMap<String, (i64, String, i64)> = {
            let mut stmt = self.conn().prepare(
                "SELECT ref, id, oid, first_seen FROM ref_ledger WHERE path = ?1 AND ended IS NULL",
            )?;
            stmt.query_map([path], |r| {
                Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let changes: BTreeMap<&str, &lc_api::RefChange> =
            spec.refs.iter().map(|c| (c.name.as_str(), c)).collect();
        let kept: BTreeMap<(&str, &str), &str> = spec
            .preserved
            .iter()
            .map(|p| ((p.name.as_str(), p.oid.as_str()), p.kept_as.as_str()))
            .collect();
        let target: BTreeMap<String, String> = match &spec.held {
            Some(held) => held.clone(),
            None => {
                let mut t: BTreeMap<String, String> = open
                    .iter()
                    .map(|(name, (_, oid, _))| (name.clone(), oid.clone()))
                    .collect();
                for change in &spec.refs {
                    match &change.new {
                        Some(new) => t.insert(change.name.clone(), new.clone()),
                        None => t.remove(&change.name),
                    };
                }
                t
            }
        };
        let names: std::collections::BTreeSet<&String> = open.keys().chain(target.keys()).collect();
        for name in names {
            let held = open.get(name);
            let new = target.get(name);
            if held.map(|(_, oid, _)| oid) == new {
                continue;
            }
            // What became of the old tip: the one the mirror had, or the
            // one the change names when the ledger did not have it.
            let old = held
                .map(|(_, oid, _)| oid.clone())
                .or_else(|| changes.get(name.as_str()).and_then(|c| c.old.clone()));
            let kept_as = old
                .as_deref()
                .and_then(|o| kept.get(&(name.as_str(), o)).copied());
            let how = match (new, kept_as) {
                (None, _) => "deleted",
                (Some(_), Some(_)) => "rewritten",
                (Some(_), None) => "moved",
            };
            if let Some((id, oid, first_seen)) = held {
                let last_seen = prev_success.map(|s| s.max(*first_seen));
                self.conn()
                    .prepare(
                        "UPDATE ref_ledger SET ended = ?2, end_job = ?3, last_seen = ?4,
                         gone = ?5, kept_as = ?6 WHERE id = ?1",
                    )?
                    .execute(params![id, now, job_id, last_seen, how, kept_as])?;
                if kept_as.is_none() {
                    // Not preserved: snapshots that name it need a pin.
                    self.ask_pins(path, name, oid, *first_seen)?;
                }
            }
            if let Some(new) = new {
                let came = match (&old, changes.contains_key(name.as_str())) {
                    (Some(_), _) => how,
                    (None, true) => "created",
                    // Only in the whole list: there before the ledger knew.
                    (None, false) => "seen",
                };
                self.conn()
                    .prepare(
                        "INSERT INTO ref_ledger
                         (path, ref, oid, first_seen, first_job, prev_oid, came, prev_kept_as)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![path, name, new, now, job_id, old, came, kept_as])?;
            }
        }
        if spec.held.is_some() {
            self.conn()
                .prepare(
                    "INSERT INTO ref_ledger_whole (path, since) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![path, now])?;
        }
        Ok(())
    }

    /// Records in the ledger what job `job_id` of `path` reported in its
    /// `result`, before the job's end is recorded. Passed over: a result
    /// without the lorry's spec, and a job whose lorry was removed meanwhile
    /// (its ledger was closed). A result this build cannot read never gets
    /// here.
    pub(super) fn ledger_from_result(
        &self,
        path: &str,
        job_id: i64,
        result: &JobResult,
    ) -> Result<()> {
        let Some(spec) = result.specs.iter().find(|s| s.name == path) else {
            return Ok(());
        };
        let prev_success: Option<Option<i64>> = self
            .conn()
            .query_row(
                "SELECT last_success FROM lorries WHERE path = ?1 AND running_job = ?2",
                params![path, job_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(prev_success) = prev_success else {
            return Ok(());
        };
        self.record_pins(path, &spec.pins)?;
        self.record_ledger(path, job_id, spec, prev_success)
    }

    /// Ends the ledger rows of a lorry being removed (`removed`); its
    /// ledger is no longer whole.
    pub(super) fn ledger_lorry_removed(&self, path: &str) -> Result<()> {
        self.conn()
            .prepare(
                "UPDATE ref_ledger SET ended = ?2, gone = 'removed',
                 last_seen = (SELECT last_success FROM lorries WHERE path = ?1)
                 WHERE path = ?1 AND ended IS NULL",
            )?
            .execute(params![path, self.now])?;
        self.conn()
            .prepare("UPDATE ref_ledger_whole SET until = ?2 WHERE path = ?1 AND until IS NULL")?
            .execute(params![path, self.now])?;
        Ok(())
    }
}

impl ReadTx<'_> {
    /// Ledger rows (of `path`, or all) and an estimate of the bytes they
    /// take: each row's text and integers, plus its entries in the indexes
    /// (path and ref while held; path and time; path, ref and time; time
    /// seen; time ended). For the growth bench and capacity planning.
    pub fn ledger_stats(&self, path: Option<&str>) -> Result<(i64, i64)> {
        Ok(self.conn().query_row(
            "SELECT count(*), COALESCE(sum(
                 4 * length(path) + 3 * length(ref) + length(oid)
                 + COALESCE(length(prev_oid), 0) + length(came)
                 + COALESCE(length(prev_kept_as), 0) + COALESCE(length(gone), 0)
                 + COALESCE(length(kept_as), 0) + 8 * 16), 0)
             FROM ref_ledger WHERE ?1 IS NULL OR path = ?1",
            [path],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::lorries::tests::lorry;
    use super::super::tests::fresh;
    use super::super::{JobUpdate, StateDb};
    use super::*;

    /// Runs `path`'s job (it must be the next due) to its end with `result`.
    pub(crate) fn run_with(db: &StateDb, path: &str, result: serde_json::Value) -> i64 {
        db.write(|tx| tx.move_to_top(path)).expect("move");
        let (job_id, lorry) = db
            .write(|tx| tx.start_next_job("m", 7))
            .expect("give")
            .expect("a job");
        assert_eq!(lorry.path, path);
        let update = JobUpdate {
            exit: Some(0),
            result: Some(result.to_string()),
            ..JobUpdate::default()
        };
        db.write(|tx| tx.update_job(job_id, &update))
            .expect("update");
        job_id
    }

    pub(crate) fn spec_result(path: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut spec = serde_json::json!({
            "name": path, "importer": "git", "ok": true, "refs": [], "preserved": [],
            "bytes_received": 0, "pushed": "yes"
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::json!({ "version": 1, "specs": [spec] })
    }

    #[test]
    fn submodules_are_matched_with_the_lorries_that_mirror_them() {
        let (_dir, db) = fresh();
        db.write(|tx| {
            tx.upsert_lorry(&lorry("super", 0))?;
            // Its URL is git://x/lib; the submodule says git://x/lib.git/.
            tx.upsert_lorry(&lorry("lib", 0))?;
            // Not JSON: passed over, not an error.
            let mut broken = lorry("broken", 0);
            broken.text = "not json".into();
            tx.upsert_lorry(&broken)
        })
        .expect("setup");
        assert!(
            db.read(|tx| tx.lorry_submodules("super"))
                .expect("none")
                .is_empty()
        );
        run_with(
            &db,
            "super",
            spec_result(
                "super",
                serde_json::json!({ "submodules": ["git://x/lib.git/", "https://elsewhere/y.git"] }),
            ),
        );
        let found = db.read(|tx| tx.lorry_submodules("super")).expect("read");
        assert_eq!(
            found,
            [
                Submodule {
                    url: "git://x/lib.git/".into(),
                    mirrored_by: Some("lib".into())
                },
                Submodule {
                    url: "https://elsewhere/y.git".into(),
                    mirrored_by: None
                },
            ]
        );
    }

    fn ledger_rows(db: &StateDb) -> i64 {
        db.read(|tx| {
            Ok(tx
                .conn()
                .query_row("SELECT count(*) FROM ref_ledger", [], |r| r.get(0))?)
        })
        .expect("count")
    }

    fn tips(db: &StateDb, path: &str, at: i64) -> Vec<(String, String)> {
        db.read(|tx| tx.ledger_refs(path, at))
            .expect("refs")
            .into_iter()
            .map(|r| (r.name, r.oid))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_ledger_keeps_every_tip_with_its_times_and_how_it_ended() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 0)))
            .expect("setup");
        let (main, topic, gone) = ("refs/heads/main", "refs/heads/topic", "refs/heads/gone");
        db.set_pretend_time(1_000);
        let first = run_with(
            &db,
            "a",
            spec_result(
                "a",
                serde_json::json!({
                    "refs": [
                        {"name": main, "old": null, "new": "A"},
                        {"name": topic, "old": null, "new": "T"},
                        {"name": gone, "old": null, "new": "G"}],
                    "held": {main: "A", topic: "T", gone: "G"}
                }),
            ),
        );
        assert_eq!(ledger_rows(&db), 3);
        // An unchanged run writes nothing.
        db.set_pretend_time(2_000);
        run_with(&db, "a", spec_result("a", serde_json::json!({})));
        assert_eq!(ledger_rows(&db), 3);
        // A move, a rewrite (preserved) and a deletion (preserved).
        db.set_pretend_time(3_000);
        let third = run_with(
            &db,
            "a",
            spec_result(
                "a",
                serde_json::json!({
                    "refs": [
                        {"name": main, "old": "A", "new": "B"},
                        {"name": topic, "old": "T", "new": "T2"},
                        {"name": gone, "old": "G", "new": null}],
                    "preserved": [
                        {"name": topic, "oid": "T", "kept_as": "refs/lorry/preserved/x/topic"},
                        {"name": gone, "oid": "G", "kept_as": "refs/lorry/preserved/x/gone"}],
                    "held": {main: "B", topic: "T2"}
                }),
            ),
        );
        assert!(tips(&db, "a", 999).is_empty());
        let before = pairs(&[(gone, "G"), (main, "A"), (topic, "T")]);
        assert_eq!(tips(&db, "a", 1_000), before);
        assert_eq!(tips(&db, "a", 2_999), before);
        assert_eq!(tips(&db, "a", 3_000), pairs(&[(main, "B"), (topic, "T2")]));
        let old = db.read(|tx| tx.ledger_refs("a", 2_500)).expect("refs");
        assert!(
            old.iter()
                .all(|r| r.ended == Some(3_000) && r.last_seen == Some(2_000))
        );
        let now = db.read(|tx| tx.ledger_refs("a", 3_000)).expect("refs");
        assert!(
            now.iter()
                .all(|r| r.ended.is_none() && r.last_seen == Some(3_000))
        );
        let whole =
            |path: &str, at: i64| db.read(|tx| tx.ledger_whole_at(path, at)).expect("whole");
        assert_eq!(whole("a", 3_000), Some(1_000));
        assert_eq!(whole("a", 999), None);

        let (history, more) = db
            .read(|tx| tx.ledger_history("a", 100, 0))
            .expect("history");
        assert!(!more);
        let brief: Vec<(i64, &str, &str, Option<&str>)> = history
            .iter()
            .map(|c| {
                (
                    c.time,
                    c.name.as_str(),
                    c.how.as_str(),
                    c.kept_as.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                (3_000, gone, "deleted", Some("refs/lorry/preserved/x/gone")),
                (3_000, main, "moved", None),
                (
                    3_000,
                    topic,
                    "rewritten",
                    Some("refs/lorry/preserved/x/topic")
                ),
                (1_000, gone, "created", None),
                (1_000, main, "created", None),
                (1_000, topic, "created", None),
            ]
        );
        assert_eq!(
            (history[2].old.as_deref(), history[2].new.as_deref()),
            (Some("T"), Some("T2"))
        );
        assert_eq!(history[2].job_id, Some(third));
        assert_eq!(history[5].job_id, Some(first));
        let (page, more) = db.read(|tx| tx.ledger_history("a", 2, 2)).expect("page");
        assert!(more);
        assert_eq!(page, history[2..4]);
        assert!(db.read(|tx| tx.ledger_history("a", 0, 0)).is_err());

        // Removing the lorry ends its refs; its history stays readable.
        db.set_pretend_time(4_000);
        db.write(|tx| tx.remove_lorry("a")).expect("remove");
        assert!(tips(&db, "a", 4_000).is_empty());
        assert_eq!(tips(&db, "a", 3_999).len(), 2);
        let (history, _) = db.read(|tx| tx.ledger_history("a", 2, 0)).expect("history");
        assert!(
            history
                .iter()
                .all(|c| c.how == "removed" && c.new.is_none())
        );
        assert!(db.read(|tx| tx.ledger_known("a")).is_ok());
        assert_eq!(
            db.read(|tx| tx.ledger_whole_at("a", 3_999)).expect("whole"),
            Some(1_000)
        );
        assert_eq!(
            db.read(|tx| tx.ledger_whole_at("a", 4_000)).expect("whole"),
            None
        );
        assert!(db.read(|tx| tx.ledger_known("never")).is_err());
    }

    /// The refs held at a time as the ledger defines them: every row that
    /// had started and not yet ended (what `ledger_refs` finds, by either plan).
    fn tips_by_definition(db: &StateDb, path: &str, at: i64) -> Vec<(String, String)> {
        db.read(|tx| {
            let mut stmt = tx.conn().prepare(
                "SELECT ref, oid FROM ref_ledger
                 WHERE path = ?1 AND first_seen <= ?2 AND (ended IS NULL OR ended > ?2)
                 ORDER BY ref",
            )?;
            let rows = stmt
                .query_map(params![path, at], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .expect("refs by definition")
    }

    /// Runs `runs` jobs of `path` whose reports follow a fixed
    /// pseudo-random walk over `names` (refs appear, move, vanish and come
    /// back; some runs share a second with the one before), then checks
    /// `ledger_refs` against the ledger's definition around every run.
    fn walk_and_check(db: &StateDb, path: &str, names: &[String], runs: usize) {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut held: BTreeMap<String, String> = BTreeMap::new();
        let mut time = 1_000;
        let mut times = Vec::new();
        for run in 0..runs {
            if next() % 4 != 0 {
                time += 10;
            }
            for name in names {
                match next() % 5 {
                    0 => {
                        held.remove(name);
                    }
                    1 | 2 => {
                        held.insert(name.clone(), format!("{name}@{run}"));
                    }
                    _ => {}
                }
            }
            db.set_pretend_time(time);
            run_with(
                db,
                path,
                spec_result(path, serde_json::json!({ "held": held })),
            );
            times.push(time);
        }
        for at in times.iter().flat_map(|t| [t - 1, *t, t + 5]) {
            assert_eq!(
                tips(db, path, at),
                tips_by_definition(db, path, at),
                "{path}'s refs at {at}"
            );
        }
        assert_eq!(
            tips(db, path, time).into_iter().collect::<BTreeMap<_, _>>(),
            held,
            "{path}'s refs now are the last report's"
        );
    }

    #[test]
    fn the_refs_at_a_time_are_those_the_ledger_held_then() {
        let (_dir, db) = fresh();
        db.write(|tx| {
            tx.upsert_lorry(&lorry("few", 0))?;
            tx.upsert_lorry(&lorry("many", 0))
        })
        .expect("setup");
        // Few names, moving often: each name's row is found by a seek.
        let few: Vec<String> = [
            "refs/heads/a",
            "refs/heads/b",
            "refs/tags/c",
            "refs/x",
            "refs/y/z",
        ]
        .map(str::to_owned)
        .to_vec();
        walk_and_check(&db, "few", &few, 80);
        // More names than the seeks are worth: the rows are read by time.
        let many: Vec<String> = (0..=REFS_AT_BY_NAME_MAX)
            .map(|i| format!("refs/tags/v{i}"))
            .collect();
        walk_and_check(&db, "many", &many, 12);
        assert!(ledger_rows(&db) > 1_000, "the walks moved refs often");
    }

    #[test]
    fn a_first_whole_report_records_what_was_there_as_seen() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("b", 0)))
            .expect("setup");
        db.set_pretend_time(100);
        // An older lorry's change, before any whole report: only what moved.
        run_with(
            &db,
            "b",
            spec_result(
                "b",
                serde_json::json!({"refs": [{"name": "refs/heads/x", "old": "X0", "new": "X1"}]}),
            ),
        );
        assert_eq!(tips(&db, "b", 100), pairs(&[("refs/heads/x", "X1")]));
        assert_eq!(
            db.read(|tx| tx.ledger_whole_at("b", 100)).expect("whole"),
            None
        );
        db.set_pretend_time(200);
        run_with(
            &db,
            "b",
            spec_result(
                "b",
                serde_json::json!({"held": {"refs/heads/x": "X1", "refs/tags/v1": "V"}}),
            ),
        );
        assert_eq!(
            tips(&db, "b", 200),
            pairs(&[("refs/heads/x", "X1"), ("refs/tags/v1", "V")])
        );
        let (history, _) = db
            .read(|tx| tx.ledger_history("b", 10, 0))
            .expect("history");
        let brief: Vec<(&str, &str, Option<&str>)> = history
            .iter()
            .map(|c| (c.name.as_str(), c.how.as_str(), c.old.as_deref()))
            .collect();
        assert_eq!(
            brief,
            [
                ("refs/tags/v1", "seen", None),
                ("refs/heads/x", "moved", Some("X0"))
            ]
        );
        assert_eq!(
            db.read(|tx| tx.ledger_whole_at("b", 200)).expect("whole"),
            Some(200)
        );
        assert_eq!(
            db.read(|tx| tx.ledger_whole_at("b", 199)).expect("whole"),
            None
        );
        // A result of a job whose lorry went meanwhile changes nothing.
        let rows = ledger_rows(&db);
        db.write(|tx| tx.move_to_top("b")).expect("move");
        let (job, _) = db
            .write(|tx| tx.start_next_job("m", 1))
            .expect("give")
            .expect("job");
        db.write(|tx| tx.remove_lorry("b")).expect("remove");
        let update = JobUpdate {
            exit: Some(0),
            result: Some(
                spec_result("b", serde_json::json!({"held": {"refs/heads/y": "Y"}})).to_string(),
            ),
            ..JobUpdate::default()
        };
        db.write(|tx| tx.update_job(job, &update)).expect("update");
        assert_eq!(ledger_rows(&db), rows);
        // A result this build cannot read is stored and passed over.
        db.write(|tx| tx.upsert_lorry(&lorry("c", 0))).expect("c");
        run_with(&db, "c", serde_json::json!({"version": 2, "specs": "new"}));
        assert_eq!(ledger_rows(&db), rows);
    }
}
