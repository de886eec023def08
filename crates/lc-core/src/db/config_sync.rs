//! Applying a configuration read from CONFGIT to STATEDB.
//!
//! [`Tx::plan_config`] compares the configuration with STATEDB using one
//! SELECT of the lorries and one of the hosts, writing nothing: it is the dry
//! run. [`Tx::apply_config`] plans and then writes only what differs, so a
//! re-read of an unchanged CONFGIT writes nothing at all.
//!
//! Rules: a new lorry is due at once (`last_run` 0); a changed lorry keeps its
//! last run, running job and history; a lorry no longer configured is deleted
//! (a job still running for it may finish; its update is then recorded on the
//! job alone, or on the lorry if it has been added again meanwhile: a lorry
//! added back while its job runs takes that job up again, so it never has
//! two). Hosts likewise, keeping `ls_last_run`; a removed host takes its
//! generated lorries (`from_host` = host) with it.

use std::collections::{BTreeMap, HashMap, HashSet};

use lc_api::{ConfigProblem, ReadConfigurationSummary};
use rusqlite::params;
use serde_json::Value;

use super::lorries::{NEW_LORRY_COLUMNS, NewLorry, new_lorry_from_row};
use super::{ReadTx, WriteTx};
use crate::config::{HostSpec, LoadedConfig};
use crate::error::Result;

/// A host row as stored: every column that configuration sets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRow {
    host_type: String,
    protocol: String,
    lorry_interval: i64,
    lorry_timeout: i64,
    ls_interval: i64,
    prefixmap: String,
    ignore: String,
    type_params: String,
}

impl HostRow {
    fn from_spec(h: &HostSpec) -> HostRow {
        let prefixmap: serde_json::Map<String, Value> = h
            .prefixmap
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        HostRow {
            host_type: h.host_type.as_str().to_owned(),
            protocol: h.protocol.clone(),
            lorry_interval: h.lorry_interval,
            lorry_timeout: h.lorry_timeout,
            ls_interval: h.ls_interval,
            prefixmap: Value::Object(prefixmap).to_string(),
            ignore: Value::from(h.ignore.clone()).to_string(),
            type_params: Value::Object(h.type_params.clone()).to_string(),
        }
    }
}

/// What applying a configuration does. Holds no secrets in its summary.
#[derive(Debug, Clone)]
pub struct ConfigPlan {
    pub summary: ReadConfigurationSummary,
    upserts: Vec<NewLorry>,
    host_upserts: Vec<(String, HostRow, bool)>,
    problems_differ: bool,
}

impl ReadTx<'_> {
    /// Works out what [`Tx::apply_config`] would change, writing nothing.
    pub fn plan_config(&self, config: &LoadedConfig) -> Result<ConfigPlan> {
        let conn = self.conn();
        let mut existing: HashMap<String, NewLorry> = HashMap::new();
        {
            let mut stmt = conn.prepare(&format!("SELECT {NEW_LORRY_COLUMNS} FROM lorries"))?;
            let rows = stmt.query_map([], new_lorry_from_row)?;
            for row in rows {
                let row = row?;
                existing.insert(row.path.clone(), row);
            }
        }
        let mut old_hosts: BTreeMap<String, HostRow> = BTreeMap::new();
        {
            let mut stmt = conn.prepare(
                "SELECT host, type, protocol, lorry_interval, lorry_timeout, ls_interval,
                        prefixmap, ignore, type_params FROM hosts",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    HostRow {
                        host_type: r.get(1)?,
                        protocol: r.get(2)?,
                        lorry_interval: r.get(3)?,
                        lorry_timeout: r.get(4)?,
                        ls_interval: r.get(5)?,
                        prefixmap: r.get(6)?,
                        ignore: r.get(7)?,
                        type_params: r.get(8)?,
                    },
                ))
            })?;
            for row in rows {
                let (host, row) = row?;
                old_hosts.insert(host, row);
            }
        }

        let mut summary = ReadConfigurationSummary {
            dry_run: true,
            lorries_added: Vec::new(),
            lorries_changed: Vec::new(),
            lorries_removed: Vec::new(),
            lorries_unchanged: 0,
            hosts_added: Vec::new(),
            hosts_changed: Vec::new(),
            hosts_removed: Vec::new(),
            problems: config.problems.clone(),
        };

        let mut host_upserts = Vec::new();
        let wanted_hosts: HashSet<&str> = config.hosts.iter().map(|h| h.host.as_str()).collect();
        for h in &config.hosts {
            let row = HostRow::from_spec(h);
            match old_hosts.get(&h.host) {
                None => {
                    summary.hosts_added.push(h.host.clone());
                    host_upserts.push((h.host.clone(), row, true));
                }
                Some(old) if *old != row => {
                    summary.hosts_changed.push(h.host.clone());
                    host_upserts.push((h.host.clone(), row, false));
                }
                Some(_) => {}
            }
        }
        for host in old_hosts.keys() {
            if !wanted_hosts.contains(host.as_str()) {
                summary.hosts_removed.push(host.clone());
            }
        }

        let mut upserts = Vec::new();
        let mut wanted: HashSet<&str> = HashSet::with_capacity(config.lorries.len());
        for lorry in &config.lorries {
            wanted.insert(&lorry.path);
            match existing.get(&lorry.path) {
                None => {
                    summary.lorries_added.push(lorry.path.clone());
                    upserts.push(lorry.clone());
                }
                Some(old) if old != lorry => {
                    summary.lorries_changed.push(lorry.path.clone());
                    upserts.push(lorry.clone());
                }
                Some(_) => summary.lorries_unchanged += 1,
            }
        }
        for (path, old) in &existing {
            let keep = wanted.contains(path.as_str())
                || (!old.from_host.is_empty() && wanted_hosts.contains(old.from_host.as_str()));
            if !keep {
                summary.lorries_removed.push(path.clone());
            }
        }
        summary.lorries_removed.sort();

        let problems_differ = self.config_problems()? != config.problems;
        Ok(ConfigPlan {
            summary,
            upserts,
            host_upserts,
            problems_differ,
        })
    }
}

impl WriteTx<'_> {
    /// Syncs STATEDB with `config` (run it inside one write transaction) and
    /// answers what changed.
    pub fn apply_config(&self, config: &LoadedConfig) -> Result<ReadConfigurationSummary> {
        let plan = self.plan_config(config)?;
        let conn = self.conn();
        for (host, row, _new) in &plan.host_upserts {
            conn.prepare(
                "INSERT INTO hosts (host, type, protocol, lorry_interval, lorry_timeout,
                                    ls_interval, prefixmap, ignore, type_params)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (host) DO UPDATE SET
                     type = excluded.type, protocol = excluded.protocol,
                     lorry_interval = excluded.lorry_interval,
                     lorry_timeout = excluded.lorry_timeout, ls_interval = excluded.ls_interval,
                     prefixmap = excluded.prefixmap, ignore = excluded.ignore,
                     type_params = excluded.type_params",
            )?
            .execute(params![
                host,
                row.host_type,
                row.protocol,
                row.lorry_interval,
                row.lorry_timeout,
                row.ls_interval,
                row.prefixmap,
                row.ignore,
                row.type_params
            ])?;
        }
        for host in &plan.summary.hosts_removed {
            conn.prepare("DELETE FROM hosts WHERE host = ?1")?
                .execute([host])?;
        }
        for lorry in &plan.upserts {
            self.upsert_lorry(lorry)?;
        }
        for path in &plan.summary.lorries_removed {
            self.remove_lorry(path)?;
        }
        if plan.problems_differ {
            if !config.problems.is_empty() {
                let problems: Vec<serde_json::Value> = config
                    .problems
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "file": super::events::clean(&p.file),
                            "item": p.item.as_deref().map(super::events::clean),
                            "problem": super::events::clean(&p.problem),
                        })
                    })
                    .collect();
                self.record_event(
                    lc_api::EventType::ConfigProblems,
                    None,
                    None,
                    serde_json::json!({ "count": problems.len(), "problems": problems }),
                )?;
            }
            conn.execute("DELETE FROM config_problems", [])?;
            let mut stmt = conn
                .prepare("INSERT INTO config_problems (file, item, problem) VALUES (?1, ?2, ?3)")?;
            for ConfigProblem {
                file,
                item,
                problem,
            } in &config.problems
            {
                stmt.execute(params![file, item, problem])?;
            }
        }
        let mut summary = plan.summary;
        summary.dry_run = false;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fresh;
    use super::super::{JobUpdate, StateDb};
    use super::*;
    use crate::config::{load_config, tests::write};

    fn conf(dir: &std::path::Path, hosts: &str) {
        write(
            dir,
            "lorry-controller.conf",
            &format!(
                r#"[{{"type": "lorries", "prefix": "up", "interval": "1h", "globs": ["*.lorry"]}}{hosts}]"#
            ),
        );
    }

    const HOST: &str = r#", {"type": "gitlab", "host": "gl.example", "protocol": "https",
        "prefixmap": {"a": "mirror/a"}, "private-token": "tok-SECRET"}"#;

    fn apply(db: &StateDb, dir: &std::path::Path) -> ReadConfigurationSummary {
        let config = load_config(dir).expect("config");
        db.write(|tx| tx.apply_config(&config)).expect("apply")
    }

    fn plan(db: &StateDb, dir: &std::path::Path) -> ReadConfigurationSummary {
        let config = load_config(dir).expect("config");
        db.read(|tx| tx.plan_config(&config)).expect("plan").summary
    }

    fn snapshot(db: &StateDb) -> Vec<String> {
        db.read(|tx| {
            let mut stmt = tx.conn().prepare(
                "SELECT path || '|' || text || '|' || from_host || '|' || interval || '|' ||
                        last_run || '|' || IFNULL(running_job, '-') FROM lorries ORDER BY path",
            )?;
            let mut rows: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = tx.conn().prepare(
                "SELECT host || '|' || type || '|' || ls_last_run || '|' || type_params FROM hosts",
            )?;
            rows.extend(
                stmt.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            );
            let mut stmt = tx
                .conn()
                .prepare("SELECT seq || '|' || file || '|' || problem FROM config_problems")?;
            rows.extend(
                stmt.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            );
            Ok(rows)
        })
        .expect("snapshot")
    }

    #[test]
    fn add_change_remove_and_unchanged() {
        let (_db_dir, db) = fresh();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        conf(d, HOST);
        write(
            d,
            "a.lorry",
            "a: {type: git, url: 'https://x/a'}\nb: {type: git, url: 'https://x/b'}\n",
        );
        write(d, "bad.lorry", "nope: {url: x}\n");
        db.set_pretend_time(1000);

        // Add.
        let s = apply(&db, d);
        assert!(!s.dry_run);
        assert_eq!(s.lorries_added, ["up/a", "up/b"]);
        assert_eq!(s.hosts_added, ["gl.example"]);
        assert_eq!(s.problems.len(), 1);
        assert_eq!(db.read(|tx| tx.config_problems()).expect("p"), s.problems);
        assert_eq!(db.read(|tx| tx.queue()).expect("queue"), ["up/a", "up/b"]);
        assert_eq!(db.read(|tx| tx.lorry("up/a")).expect("a").last_run, 0);
        let summary_json = serde_json::to_string(&s).expect("json");
        assert!(!summary_json.contains("SECRET"), "{summary_json}");

        // History and a host listing that later reads must keep.
        db.write(|tx| {
            tx.conn().execute(
                "UPDATE lorries SET last_run = 900, running_job = 7 WHERE path = 'up/a'",
                [],
            )?;
            tx.conn()
                .execute("UPDATE hosts SET ls_last_run = 950", [])?;
            tx.upsert_lorry(&NewLorry {
                path: "mirror/a/one".into(),
                text: "{}".into(),
                from_host: "gl.example".into(),
                from_path: "a/one".into(),
                interval: 60,
                lorry_timeout: 60,
            })?;
            Ok(())
        })
        .expect("history");

        // Unchanged: nothing written at all.
        let before = snapshot(&db);
        let s = apply(&db, d);
        assert!(s.lorries_added.is_empty() && s.lorries_changed.is_empty());
        assert!(s.lorries_removed.is_empty() && s.hosts_changed.is_empty());
        assert_eq!(s.lorries_unchanged, 2);
        assert_eq!(snapshot(&db), before);

        // Change: spec of a, host's interval; history kept.
        write(
            d,
            "a.lorry",
            "a: {type: git, url: 'https://y/a'}\nb: {type: git, url: 'https://x/b'}\n",
        );
        conf(
            d,
            &HOST.replace("\"https\",", "\"https\", \"interval\": \"2h\","),
        );
        let s = apply(&db, d);
        assert_eq!(s.lorries_changed, ["up/a"]);
        assert_eq!(s.hosts_changed, ["gl.example"]);
        let a = db.read(|tx| tx.lorry("up/a")).expect("a");
        assert_eq!((a.last_run, a.running_job), (900, Some(7)));
        assert!(a.text.contains("https://y/a"));
        let hosts = db.read(|tx| tx.hosts()).expect("hosts");
        assert_eq!((hosts[0].ls_last_run, hosts[0].lorry_interval), (950, 7200));
        assert!(db.read(|tx| tx.lorry("mirror/a/one")).is_ok());

        // Remove: a spec, the host with its generated lorry; the bad file fixed.
        write(d, "a.lorry", "a: {type: git, url: 'https://y/a'}\n");
        std::fs::remove_file(d.join("bad.lorry")).expect("rm");
        conf(d, "");
        let s = apply(&db, d);
        assert_eq!(s.lorries_removed, ["mirror/a/one", "up/b"]);
        assert_eq!(s.hosts_removed, ["gl.example"]);
        assert!(s.problems.is_empty());
        assert_eq!(db.read(|tx| tx.queue()).expect("queue"), ["up/a"]);
        assert!(db.read(|tx| tx.hosts()).expect("hosts").is_empty());
        assert!(db.read(|tx| tx.config_problems()).expect("p").is_empty());
    }

    /// Two read-configurations at once, one adding and one removing a
    /// lorry, with give-me-job and job-update racing them (the clock moves
    /// an interval per round, so lorries fall due again): each runs in its
    /// own write transaction, so whatever the interleaving no lorry has two
    /// running jobs, each lorry records the job that runs for it, and the
    /// state ends as the last read left it.
    #[test]
    fn reads_racing_each_other_and_give_me_job_keep_one_job_per_lorry() {
        let (_db_dir, db) = fresh();
        let both = tempfile::tempdir().expect("tempdir");
        conf(both.path(), "");
        write(
            both.path(),
            "a.lorry",
            "a: {type: git, url: 'https://x/a'}\nb: {type: git, url: 'https://x/b'}\n",
        );
        let only_b = tempfile::tempdir().expect("tempdir");
        conf(only_b.path(), "");
        write(
            only_b.path(),
            "a.lorry",
            "b: {type: git, url: 'https://x/b'}\n",
        );
        let both = load_config(both.path()).expect("config");
        let only_b = load_config(only_b.path()).expect("config");
        const ROUNDS: i64 = 150;
        // Each round, the three start together and race.
        let round_start = std::sync::Barrier::new(3);
        let failures: Vec<String> = std::thread::scope(|s| {
            let reader = |config: &'static str| {
                let db = &db;
                let (both, only_b, round_start) = (&both, &only_b, &round_start);
                s.spawn(move || {
                    let mut failures = Vec::new();
                    for round in 0..ROUNDS {
                        round_start.wait();
                        let config = match (config, round % 2) {
                            ("toggle", 0) | ("steady", _) => both,
                            _ => only_b,
                        };
                        if let Err(e) = db.write(|tx| tx.apply_config(config)) {
                            failures.push(format!("apply: {e}"));
                        }
                    }
                    failures
                })
            };
            let toggling = reader("toggle");
            let steady = reader("steady");
            let minion = s.spawn(|| {
                let mut failures = Vec::new();
                for round in 0..ROUNDS {
                    round_start.wait();
                    db.set_pretend_time(10_000 + round * 3600);
                    match db.write(|tx| tx.start_next_job("m", round)) {
                        Err(e) => failures.push(format!("give-me-job: {e}")),
                        Ok(_) if round % 3 == 0 => {
                            let end = JobUpdate {
                                exit: Some(0),
                                ..JobUpdate::default()
                            };
                            let ended = db.write(|tx| {
                                for id in tx.running_job_ids()? {
                                    tx.update_job(id, &end)?;
                                }
                                Ok(())
                            });
                            if let Err(e) = ended {
                                failures.push(format!("job-update: {e}"));
                            }
                        }
                        Ok(_) => {}
                    }
                }
                failures
            });
            [toggling, steady, minion]
                .into_iter()
                .flat_map(|t| t.join().expect("thread"))
                .collect()
        });
        assert!(failures.is_empty(), "{failures:?}");
        let (doubles, mismatched): (i64, i64) = db
            .read(|tx| {
                let doubles = tx
                    .conn()
                    .prepare(
                        "SELECT COUNT(*) FROM (SELECT path FROM jobs WHERE ended IS NULL
                         GROUP BY path HAVING COUNT(*) > 1)",
                    )?
                    .query_row([], |r| r.get(0))?;
                let mismatched = tx
                    .conn()
                    .prepare(
                        "SELECT COUNT(*) FROM lorries l WHERE running_job IS NOT
                         (SELECT job_id FROM jobs j WHERE j.path = l.path AND ended IS NULL)",
                    )?
                    .query_row([], |r| r.get(0))?;
                Ok((doubles, mismatched))
            })
            .expect("check");
        assert_eq!((doubles, mismatched), (0, 0));
        // Whichever read came last, STATEDB is exactly that configuration.
        let matches = |config: &LoadedConfig| {
            let plan = db.read(|tx| tx.plan_config(config)).expect("plan").summary;
            plan.lorries_added.is_empty()
                && plan.lorries_changed.is_empty()
                && plan.lorries_removed.is_empty()
        };
        assert!(matches(&both) || matches(&only_b));
    }

    #[test]
    fn dry_run_answers_the_same_and_writes_nothing() {
        let (_db_dir, db) = fresh();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        conf(d, HOST);
        write(d, "a.lorry", "a: {type: git, url: 'https://x/a'}\n");
        write(d, "bad.lorry", "[");
        let before = snapshot(&db);
        let dry = plan(&db, d);
        assert!(dry.dry_run);
        assert_eq!(dry.lorries_added, ["up/a"]);
        assert_eq!(dry.hosts_added, ["gl.example"]);
        assert_eq!(dry.problems.len(), 1);
        assert_eq!(snapshot(&db), before);
        let real = apply(&db, d);
        assert_eq!(
            ReadConfigurationSummary {
                dry_run: true,
                ..real
            },
            dry
        );
        conf(d, "");
        let dry = plan(&db, d);
        assert_eq!(dry.hosts_removed, ["gl.example"]);
        assert_eq!(db.read(|tx| tx.hosts()).expect("hosts").len(), 1);
    }
}
