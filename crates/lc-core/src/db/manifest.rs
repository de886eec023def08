//! What a published grokmirror manifest says of a remote Downstream Host's
//! mirrors, read from the jobs' results: the refs each mirror holds
//! downstream as lorry reported them (the open rows of the ref ledger,
//! the old tips kept under `refs/lorry/preserved/`, and the snapshot pins
//! pushed), for the lorries whose ledger is whole now. A local Downstream
//! Host's manifest is read from its repositories instead (lc-web).

use std::collections::BTreeMap;

use super::ReadTx;
use super::snapshots::pin_name;
use crate::error::Result;

/// One mirror of a published manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedMirror {
    pub path: String,
    /// Every ref the mirror holds downstream, name and object id.
    pub refs: Vec<(String, String)>,
    /// The lorry's last success (grokmirror's `modified`).
    pub last_success: Option<i64>,
    /// The upstream's default branch, which the downstream is given.
    pub head: Option<String>,
}

impl ReadTx<'_> {
    /// What the published manifest depends on in STATEDB, as a short text:
    /// equal texts mean an equal manifest, so an unchanged one need not be
    /// built again. Each part is one aggregate over a table: lorries added,
    /// removed, run or checked; jobs ended (every ledger and pin change is
    /// in a job's end); ledger rows added or forgotten; spans of whole
    /// ledgers; upstream heads (by count and length: a head renamed to one
    /// as long is seen at the next change).
    pub fn manifest_marker(&self) -> Result<String> {
        Ok(self
            .conn()
            .prepare(
                "SELECT (SELECT COUNT(*) || ',' || TOTAL(last_success) || ',' ||
                                COALESCE(MAX(last_run), 0) FROM lorries)
                     || ';' || (SELECT COUNT(*) || ',' || COALESCE(MAX(ended), 0) || ',' ||
                                COALESCE(MAX(job_id), 0) FROM jobs WHERE ended IS NOT NULL)
                     || ';' || (SELECT COUNT(*) || ',' || COALESCE(MAX(id), 0) FROM ref_ledger)
                     || ';' || (SELECT COUNT(*) || ',' || COALESCE(MAX(since), 0) || ',' ||
                                COALESCE(MAX(until), 0) FROM ref_ledger_whole)
                     || ';' || (SELECT COUNT(*) || ',' || TOTAL(length(head))
                                FROM lorry_upstream_meta)",
            )?
            .query_row([], |r| r.get(0))?)
    }

    /// The mirrors a remote Downstream Host holds as the jobs reported
    /// them, by path: lorries whose ledger is whole now.
    pub fn published_mirrors(&self) -> Result<Vec<PublishedMirror>> {
        let mut mirrors: BTreeMap<String, PublishedMirror> = BTreeMap::new();
        let mut stmt = self.conn().prepare(
            "SELECT l.path, l.last_success, m.head FROM lorries AS l
             JOIN ref_ledger_whole AS w ON w.path = l.path AND w.until IS NULL
             LEFT JOIN lorry_upstream_meta AS m ON m.path = l.path",
        )?;
        for row in stmt.query_map([], |r| {
            Ok(PublishedMirror {
                path: r.get(0)?,
                refs: Vec::new(),
                last_success: r.get(1)?,
                head: r.get(2)?,
            })
        })? {
            let mirror = row?;
            mirrors.insert(mirror.path.clone(), mirror);
        }
        let mut stmt = self.conn().prepare(
            "SELECT path, ref, oid FROM ref_ledger WHERE ended IS NULL
             UNION ALL
             SELECT path, kept_as, oid FROM ref_ledger WHERE kept_as IS NOT NULL",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (path, name, oid) = row?;
            if let Some(mirror) = mirrors.get_mut(&path) {
                mirror.refs.push((name, oid));
            }
        }
        let mut stmt = self.conn().prepare(
            "SELECT path, snapshot, ref, oid FROM snapshot_pins
             WHERE state IN ('pushed', 'unpin')",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })? {
            let (path, snapshot, name, oid) = row?;
            if let Some(mirror) = mirrors.get_mut(&path) {
                mirror.refs.push((pin_name(&snapshot, &name), oid));
            }
        }
        Ok(mirrors.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::StateDb;
    use super::super::lorries::tests::lorry;
    use super::super::provenance::tests::{run_with, spec_result};
    use super::super::tests::fresh;
    use serde_json::json;

    fn marker(db: &StateDb) -> String {
        db.read(|tx| tx.manifest_marker()).expect("marker")
    }

    fn refs(db: &StateDb) -> Vec<(String, Vec<(String, String)>)> {
        db.read(|tx| tx.published_mirrors())
            .expect("mirrors")
            .into_iter()
            .map(|mut m| {
                m.refs.sort();
                (m.path, m.refs)
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn published_mirrors_are_what_jobs_reported_and_the_marker_follows_them() {
        let (_dir, db) = fresh();
        db.write(|tx| {
            tx.upsert_lorry(&lorry("a", 0))?;
            tx.upsert_lorry(&lorry("b", 0))
        })
        .expect("setup");
        let main = "refs/heads/main";
        let empty = marker(&db);
        assert_eq!(marker(&db), empty, "nothing changed");
        assert!(refs(&db).is_empty());
        db.set_pretend_time(1_000);
        run_with(&db, "a", spec_result("a", json!({"held": {main: "A1"}})));
        // b's job reported no whole list: its refs are not known.
        run_with(&db, "b", spec_result("b", json!({})));
        let first = marker(&db);
        assert_ne!(first, empty);
        assert_eq!(refs(&db), [("a".to_owned(), pairs(&[(main, "A1")]))]);

        // A rewrite: the new tip and the preserved old one.
        db.set_pretend_time(1_100);
        let kept = "refs/lorry/preserved/T/refs/heads/main";
        run_with(
            &db,
            "a",
            spec_result(
                "a",
                json!({"held": {main: "A2"},
                       "refs": [{"name": main, "old": "A1", "new": "A2"}],
                       "preserved": [{"name": main, "oid": "A1", "kept_as": kept}]}),
            ),
        );
        let second = marker(&db);
        assert_ne!(second, first);
        assert_eq!(
            refs(&db),
            [("a".to_owned(), pairs(&[(main, "A2"), (kept, "A1")]))]
        );
        // A job that changed nothing still moves the marker (its success
        // is the entry's `modified`).
        db.set_pretend_time(1_200);
        run_with(&db, "a", spec_result("a", json!({})));
        assert_ne!(marker(&db), second);
        // A removed lorry leaves the manifest.
        db.write(|tx| tx.remove_lorry("a")).expect("remove");
        assert!(refs(&db).is_empty());
    }
}
