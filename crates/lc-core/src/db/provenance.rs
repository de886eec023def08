//! What the mirrors hold and held: the submodules their last job named,
//! the ref ledger (every upstream ref tip a lorry's mirror has held, from
//! when to when, and how it ended) and snapshots of the whole set.

use std::collections::BTreeMap;

use lc_api::SpecResult;
use rusqlite::params;

use super::ReadTx;
use crate::error::Result;

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
}
