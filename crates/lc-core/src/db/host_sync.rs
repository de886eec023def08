//! Upstream Hosts' listings: which hosts to list, and syncing a host's
//! generated lorries with what its listing produced.
//!
//! A host's generated lorries are the rows with `from_host` = host. One
//! sync runs in one transaction: new lorries are added (due at once),
//! changed ones updated (keeping their history), vanished ones removed —
//! unless more than the shrink limit of them would go, in which case none
//! is removed and `ls_last_error` says why. A lorry path already taken by a
//! lorry not of this host (from CONFGIT or another host) is left alone and
//! reported. `ls_last_run` moves only when the listing was applied in full.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{OptionalExtension, params};

use super::lorries::{NEW_LORRY_COLUMNS, NewLorry, new_lorry_from_row};
use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// Longest `ls_last_error` kept.
const ERROR_LIMIT: usize = 4000;

/// An Upstream Host as needed to list it. `type_params` holds secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct HostToList {
    pub host: String,
    pub host_type: String,
    pub protocol: String,
    pub lorry_interval: i64,
    pub lorry_timeout: i64,
    pub prefixmap: BTreeMap<String, String>,
    pub ignore: Vec<String>,
    /// JSON object: `auth`, `private-token`. Never shown.
    pub type_params: serde_json::Value,
}

impl std::fmt::Debug for HostToList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostToList")
            .field("host", &self.host)
            .field("host_type", &self.host_type)
            .field("protocol", &self.protocol)
            .field("prefixmap", &self.prefixmap)
            .field("ignore", &self.ignore)
            .field("type_params", &"***")
            .finish_non_exhaustive()
    }
}

/// A lorry generated from a listing, with the upstream's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedLorry {
    pub lorry: NewLorry,
    pub head: Option<String>,
    pub description: Option<String>,
    /// The fingerprint of its refs in the host's manifest (grokmirror).
    pub fingerprint: Option<String>,
    /// When the host says the repository last changed, if the host section
    /// asks for the hint (`activity-hint`) and the listing said so.
    pub activity: Option<ReportedActivity>,
}

/// A listing's word on when a repository last changed (GitHub's
/// `pushed_at`, Gitea's `updated_at`, GitLab's `last_activity_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedActivity {
    /// The time reported, in seconds since the epoch, by the host's clock.
    pub at: i64,
    /// How much later a change may happen without moving `at`: GitLab
    /// updates `last_activity_at` at most once an hour, so 3,600 there.
    pub granularity: i64,
}

/// What the upstream said of a lorry's repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamMetadata {
    pub head: Option<String>,
    pub description: Option<String>,
}

/// What syncing one host's listing did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSyncOutcome {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
    /// Paths skipped because a lorry not of this host has them.
    pub conflicts: Vec<String>,
    /// Why nothing was removed although the listing lost lorries.
    pub shrink_refused: Option<String>,
}

impl ReadTx<'_> {
    /// The hosts to list: all of them with `force`, otherwise those whose
    /// ls-interval has passed since their last listing. By name.
    pub fn hosts_to_list(&self, force: bool) -> Result<Vec<HostToList>> {
        let mut stmt = self.conn().prepare(
            "SELECT host, type, protocol, lorry_interval, lorry_timeout, prefixmap, ignore,
                    type_params
             FROM hosts WHERE ?1 OR ls_last_run + ls_interval <= ?2 ORDER BY host",
        )?;
        let rows = stmt.query_map(params![force, self.now], |r| {
            Ok((
                HostToList {
                    host: r.get(0)?,
                    host_type: r.get(1)?,
                    protocol: r.get(2)?,
                    lorry_interval: r.get(3)?,
                    lorry_timeout: r.get(4)?,
                    prefixmap: BTreeMap::new(),
                    ignore: Vec::new(),
                    type_params: serde_json::Value::Null,
                },
                (
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                ),
            ))
        })?;
        let mut hosts = Vec::new();
        for row in rows {
            let (mut host, (prefixmap, ignore, type_params)) = row?;
            let corrupt = |what: &str, e: serde_json::Error| {
                Error::Corrupt(format!("{what} of host {}: {e}", host.host))
            };
            host.prefixmap =
                serde_json::from_str(&prefixmap).map_err(|e| corrupt("prefixmap", e))?;
            host.ignore = serde_json::from_str(&ignore).map_err(|e| corrupt("ignore", e))?;
            // Never quote type_params: it holds secrets.
            host.type_params = serde_json::from_str(&type_params).map_err(|_| {
                Error::Corrupt(format!("type_params of host {} is not JSON", host.host))
            })?;
            hosts.push(host);
        }
        Ok(hosts)
    }

    /// What the upstream said of the repository of `path`, if anything.
    pub fn upstream_metadata(&self, path: &str) -> Result<UpstreamMetadata> {
        Ok(self
            .conn()
            .prepare("SELECT head, description FROM lorry_upstream_meta WHERE path = ?1")?
            .query_row([path], |r| {
                Ok(UpstreamMetadata {
                    head: r.get(0)?,
                    description: r.get(1)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }
}

impl WriteTx<'_> {
    /// Records that listing `host` failed; its lorries stay as they are.
    /// A host-listing-failed event is recorded when the error differs from
    /// the one already recorded, so a host that stays down is one event.
    pub fn record_ls_failure(&self, host: &str, error: &str) -> Result<()> {
        let error = truncate(error);
        if self.ls_last_error(host)?.as_deref() != Some(error.as_str()) {
            self.record_event(
                lc_api::EventType::HostListingFailed,
                None,
                Some(host),
                serde_json::json!({ "error": super::events::clean(&error) }),
            )?;
        }
        self.conn().execute(
            "UPDATE hosts SET ls_last_error = ?2 WHERE host = ?1",
            params![host, error],
        )?;
        Ok(())
    }

    /// The host's `ls_last_error`; `None` also when the host is unknown.
    fn ls_last_error(&self, host: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT ls_last_error FROM hosts WHERE host = ?1",
                [host],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Syncs the generated lorries of `host` with `lorries`, its listing
    /// after ignore and prefixmap. `shrink_limit` is the largest share
    /// (0.0 to 1.0) of the host's lorries a listing may remove;
    /// `problems` are the listing's own (bad paths...), kept in
    /// `ls_last_error`. `None` when the host is no longer configured.
    pub fn sync_host_lorries(
        &self,
        host: &str,
        lorries: &[GeneratedLorry],
        shrink_limit: f64,
        problems: &[String],
    ) -> Result<Option<HostSyncOutcome>> {
        let known: Option<String> = self
            .conn()
            .query_row("SELECT host FROM hosts WHERE host = ?1", [host], |r| {
                r.get(0)
            })
            .optional()?;
        if known.is_none() {
            return Ok(None);
        }
        let mut existing: HashMap<String, NewLorry> = HashMap::new();
        {
            let mut stmt = self.conn().prepare(&format!(
                "SELECT {NEW_LORRY_COLUMNS} FROM lorries WHERE from_host = ?1"
            ))?;
            let rows = stmt.query_map([host], new_lorry_from_row)?;
            for row in rows {
                let row = row?;
                existing.insert(row.path.clone(), row);
            }
        }
        let mut outcome = HostSyncOutcome::default();
        let mut wanted: HashSet<&str> = HashSet::with_capacity(lorries.len());
        for generated in lorries {
            let lorry = &generated.lorry;
            wanted.insert(&lorry.path);
            let mut spec_changed = false;
            match existing.get(&lorry.path) {
                Some(old) if old == lorry => outcome.unchanged += 1,
                Some(_) => {
                    self.upsert_lorry(lorry)?;
                    outcome.changed.push(lorry.path.clone());
                    spec_changed = true;
                }
                None => {
                    let owner: Option<String> = self
                        .conn()
                        .prepare("SELECT from_host FROM lorries WHERE path = ?1")?
                        .query_row([&lorry.path], |r| r.get(0))
                        .optional()?;
                    if owner.is_some() {
                        outcome.conflicts.push(lorry.path.clone());
                        continue;
                    }
                    self.upsert_lorry(lorry)?;
                    outcome.added.push(lorry.path.clone());
                }
            }
            self.set_upstream_metadata(
                &lorry.path,
                generated.head.as_deref(),
                generated.description.as_deref(),
            )?;
            self.set_upstream_hints(
                &lorry.path,
                generated.fingerprint.as_deref(),
                generated.activity,
                spec_changed,
            )?;
        }
        let mut vanished: Vec<&String> = existing
            .keys()
            .filter(|path| !wanted.contains(path.as_str()))
            .collect();
        vanished.sort();
        let vanished_count = vanished.len();
        let limit = shrink_limit.clamp(0.0, 1.0) * existing.len() as f64;
        if !vanished.is_empty() && vanished.len() as f64 > limit {
            outcome.shrink_refused = Some(format!(
                "the listing would remove {} of the host's {} lorries, more than the \
                 shrink limit of {}%: nothing was removed (check the host, or raise \
                 --ls-shrink-limit if the repositories really are gone)",
                vanished.len(),
                existing.len(),
                (shrink_limit * 100.0 * 100.0).round() / 100.0,
            ));
        } else {
            for path in vanished {
                self.remove_lorry(path)?;
                outcome.removed.push(path.clone());
            }
        }
        let mut errors: Vec<String> = Vec::new();
        errors.extend(outcome.shrink_refused.clone());
        if !outcome.conflicts.is_empty() {
            errors.push(format!(
                "paths already used by other lorries, not generated: {}",
                outcome.conflicts.join(", ")
            ));
        }
        errors.extend(problems.iter().cloned());
        let error = (!errors.is_empty()).then(|| truncate(&errors.join("\n")));
        if let Some(refused) = &outcome.shrink_refused {
            if self.ls_last_error(host)? != error {
                self.record_event(
                    lc_api::EventType::HostShrinkRefused,
                    None,
                    Some(host),
                    serde_json::json!({
                        "known": existing.len(),
                        "vanished": vanished_count,
                        "message": refused,
                    }),
                )?;
            }
            self.conn().execute(
                "UPDATE hosts SET ls_last_error = ?2 WHERE host = ?1",
                params![host, error],
            )?;
        } else {
            self.conn().execute(
                "UPDATE hosts SET ls_last_run = ?2, ls_last_error = ?3 WHERE host = ?1",
                params![host, self.now, error],
            )?;
        }
        Ok(Some(outcome))
    }

    fn set_upstream_metadata(
        &self,
        path: &str,
        head: Option<&str>,
        description: Option<&str>,
    ) -> Result<()> {
        if head.is_none() && description.is_none() {
            self.conn()
                .prepare("DELETE FROM lorry_upstream_meta WHERE path = ?1")?
                .execute([path])?;
            return Ok(());
        }
        self.conn()
            .prepare(
                "INSERT INTO lorry_upstream_meta (path, head, description) VALUES (?1, ?2, ?3)
                 ON CONFLICT (path) DO UPDATE SET head = excluded.head,
                     description = excluded.description
                 WHERE head IS NOT excluded.head OR description IS NOT excluded.description",
            )?
            .execute(params![path, head, description])?;
        Ok(())
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= ERROR_LIMIT {
        return text.to_owned();
    }
    let mut end = ERROR_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::super::StateDb;
    use super::super::tests::fresh;
    use super::*;

    fn add_host(db: &StateDb, host: &str, ls_interval: i64) {
        db.write(|tx| {
            tx.conn().execute(
                "INSERT INTO hosts (host, type, protocol, lorry_interval, lorry_timeout,
                                    ls_interval, prefixmap, ignore, type_params)
                 VALUES (?1, 'trove', 'ssh', 100, 60, ?2, '{\"a\":\"b\"}', '[\"x\"]',
                         '{\"private-token\":\"sekrit\"}')",
                params![host, ls_interval],
            )?;
            Ok(())
        })
        .expect("host");
    }

    fn generated(host: &str, paths: &[&str]) -> Vec<GeneratedLorry> {
        paths
            .iter()
            .map(|p| GeneratedLorry {
                lorry: NewLorry {
                    path: (*p).to_owned(),
                    text: format!("{{\"{p}\": {{\"type\": \"git\", \"url\": \"ssh://u/{p}\"}}}}"),
                    from_host: host.to_owned(),
                    from_path: format!("up/{p}"),
                    interval: 100,
                    lorry_timeout: 60,
                },
                head: Some("main".into()),
                description: None,
                fingerprint: None,
                activity: None,
            })
            .collect()
    }

    fn sync(db: &StateDb, host: &str, paths: &[&str], limit: f64) -> HostSyncOutcome {
        db.write(|tx| tx.sync_host_lorries(host, &generated(host, paths), limit, &[]))
            .expect("sync")
            .expect("known host")
    }

    fn host_state(db: &StateDb, host: &str) -> (i64, Option<String>) {
        db.read(|tx| {
            Ok(tx.conn().query_row(
                "SELECT ls_last_run, ls_last_error FROM hosts WHERE host = ?1",
                [host],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .expect("host")
    }

    #[test]
    fn due_hosts_are_those_whose_interval_has_passed() {
        let (_dir, db) = fresh();
        add_host(&db, "a", 100);
        add_host(&db, "b", 1000);
        db.set_pretend_time(500);
        db.write(|tx| {
            tx.conn()
                .execute("UPDATE hosts SET ls_last_run = 300", [])?;
            Ok(())
        })
        .expect("write");
        let due = db.read(|tx| tx.hosts_to_list(false)).expect("due");
        assert_eq!(
            due.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(due[0].prefixmap["a"], "b");
        assert_eq!(due[0].ignore, ["x"]);
        assert_eq!(due[0].type_params["private-token"], "sekrit");
        assert!(!format!("{:?}", due[0]).contains("sekrit"));
        let all = db.read(|tx| tx.hosts_to_list(true)).expect("all");
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn a_sync_adds_changes_and_removes_and_keeps_metadata() {
        let (_dir, db) = fresh();
        add_host(&db, "h", 100);
        db.set_pretend_time(1000);
        let first = sync(&db, "h", &["p/1", "p/2", "p/3"], 1.0);
        assert_eq!(first.added, ["p/1", "p/2", "p/3"]);
        assert_eq!(host_state(&db, "h"), (1000, None));
        assert_eq!(
            db.read(|tx| tx.upstream_metadata("p/1"))
                .expect("meta")
                .head
                .as_deref(),
            Some("main")
        );
        let second = sync(&db, "h", &["p/1", "p/3", "p/4"], 1.0);
        assert_eq!(second.added, ["p/4"]);
        assert_eq!(second.removed, ["p/2"]);
        assert_eq!(second.unchanged, 2);
        assert_eq!(
            db.read(|tx| tx.lorry_paths()).expect("paths"),
            ["p/1", "p/3", "p/4"]
        );
        // Metadata goes with its lorry.
        assert_eq!(
            db.read(|tx| tx.upstream_metadata("p/2")).expect("meta"),
            UpstreamMetadata::default()
        );
    }

    #[test]
    fn the_shrink_guard_removes_nothing_and_says_why() {
        let (_dir, db) = fresh();
        add_host(&db, "h", 100);
        db.set_pretend_time(1000);
        let all: Vec<String> = (0..40).map(|i| format!("r/{i:02}")).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        sync(&db, "h", &all, 0.05);
        db.set_pretend_time(2000);
        // 2 of 40 is exactly 5%: allowed.
        let outcome = sync(&db, "h", &all[2..], 0.05);
        assert_eq!(outcome.removed.len(), 2);
        assert_eq!(host_state(&db, "h"), (2000, None));
        // 3 of 38 is more than 5%: refused, nothing removed, last run kept.
        db.set_pretend_time(3000);
        let outcome = sync(&db, "h", &all[5..], 0.05);
        assert!(outcome.removed.is_empty());
        assert!(outcome.shrink_refused.is_some());
        let (last_run, error) = host_state(&db, "h");
        assert_eq!(last_run, 2000);
        assert!(error.expect("error").contains("remove 3 of the host's 38"));
        assert_eq!(db.read(|tx| tx.lorry_paths()).expect("paths").len(), 38);
        // An empty listing of a host with lorries is refused too.
        let outcome = sync(&db, "h", &[], 0.05);
        assert!(outcome.shrink_refused.is_some());
    }

    #[test]
    fn paths_of_other_lorries_are_not_taken() {
        let (_dir, db) = fresh();
        add_host(&db, "h", 100);
        db.write(|tx| {
            tx.upsert_lorry(&NewLorry {
                path: "p/1".into(),
                text: "{}".into(),
                from_host: String::new(),
                from_path: String::new(),
                interval: 5,
                lorry_timeout: 5,
            })
        })
        .expect("confgit lorry");
        let outcome = sync(&db, "h", &["p/1", "p/2"], 1.0);
        assert_eq!(outcome.conflicts, ["p/1"]);
        assert_eq!(outcome.added, ["p/2"]);
        assert_eq!(db.read(|tx| tx.lorry("p/1")).expect("lorry").interval, 5);
        assert!(host_state(&db, "h").1.expect("error").contains("p/1"));
    }

    #[test]
    fn failures_are_recorded_and_unknown_hosts_ignored() {
        let (_dir, db) = fresh();
        add_host(&db, "h", 100);
        db.write(|tx| tx.record_ls_failure("h", &"x".repeat(10_000)))
            .expect("record");
        let (last_run, error) = host_state(&db, "h");
        assert_eq!(last_run, 0);
        assert!(error.expect("error").len() < 4100);
        assert_eq!(
            db.write(|tx| tx.sync_host_lorries("gone", &[], 0.05, &[]))
                .expect("sync"),
            None
        );
    }
}
