//! Snapshots: named moments of the ref ledger (see provenance.rs), and
//! the pins that keep the commits they name downstream.
//!
//! Taking one writes one row: what it holds is the ledger as of its time,
//! for the lorries under its prefix whose ledger was whole then. A tip it
//! names stays reachable downstream while a branch, a tag or a
//! `refs/lorry/preserved/` ref reaches it; only when the ledger sees such a
//! tip leave its ref unpreserved (moved, or deleted with `on-rewrite:
//! follow`) is a pin asked of the lorry's next job, which pushes
//! `refs/lorry/snapshots/<name>/<ref>` unless a kept ref still reaches the
//! commit (a fast-forward). So an unchanged repository gains no ref per
//! snapshot.

use std::collections::BTreeMap;

use lc_api::{
    ChannelInfo, ChannelPointing, PinCounts, PinOutcome, PinResult, SnapshotInfo, SnapshotManifest,
};
use rusqlite::{OptionalExtension, params};

use super::{ReadTx, WriteTx};
use crate::error::{Error, Result};

/// Where a snapshot's pins live in a downstream repository.
pub const PIN_PREFIX: &str = "refs/lorry/snapshots/";

/// The pin ref of `ref_name` in snapshot `snapshot`.
pub fn pin_name(snapshot: &str, ref_name: &str) -> String {
    format!("{PIN_PREFIX}{snapshot}/{ref_name}")
}

/// Checks a snapshot name: it becomes a ref name component and a URL
/// segment, so letters, digits, `.`, `_` and `-`, at most 100, not
/// starting with `.` or `-`, no `..`, not ending in `.lock`.
pub fn check_snapshot_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with(['.', '-'])
        && !name.contains("..")
        && !name.ends_with(".lock");
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: "name",
            problem: format!(
                "{name:?} is not a snapshot name (letters, digits, '.', '_', '-', \
                 at most 100, not starting with '.' or '-', no '..', not ending in '.lock')"
            ),
        })
    }
}

/// What a job is asked to pin and unpin: pin ref → commit, and pin refs to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinsTodo {
    pub pin: BTreeMap<String, String>,
    pub unpin: Vec<String>,
}

impl ReadTx<'_> {
    fn snapshot_row(&self, name: &str) -> Result<(i64, String, i64)> {
        self.conn()
            .query_row(
                "SELECT taken, prefix, lorries FROM snapshots WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| Error::UnknownSnapshot(name.to_owned()))
    }

    /// One snapshot, with its pins counted.
    pub fn snapshot(&self, name: &str) -> Result<SnapshotInfo> {
        let (taken, prefix, lorries) = self.snapshot_row(name)?;
        let mut pins = PinCounts::default();
        let mut stmt = self.conn().prepare(
            "SELECT state, count(*) FROM snapshot_pins WHERE snapshot = ?1 GROUP BY state",
        )?;
        for row in stmt.query_map([name], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (state, n) = row?;
            match state.as_str() {
                "pending" => pins.pending = n,
                "pushed" => pins.pushed = n,
                "reachable" => pins.reachable = n,
                "lost" => pins.lost = n,
                _ => {}
            }
        }
        let waiting: i64 = self.conn().query_row(
            "SELECT count(DISTINCT path) FROM snapshot_pins WHERE snapshot = ?1 AND state = 'pending'",
            [name],
            |r| r.get(0),
        )?;
        Ok(SnapshotInfo {
            name: name.to_owned(),
            taken,
            prefix,
            lorries,
            pinned_lorries: lorries - waiting,
            pins,
        })
    }

    /// Every snapshot, newest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let names: Vec<String> = self
            .conn()
            .prepare("SELECT name FROM snapshots ORDER BY taken DESC, name DESC")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        names.iter().map(|n| self.snapshot(n)).collect()
    }

    /// What snapshot `name` holds: lorry → ref → commit, read from the ledger.
    pub fn snapshot_manifest(&self, name: &str) -> Result<SnapshotManifest> {
        let (taken, prefix, _) = self.snapshot_row(name)?;
        let mut lorries: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut stmt = self.conn().prepare(
            "SELECT w.path, r.ref, r.oid
             FROM ref_ledger_whole AS w JOIN ref_ledger AS r ON r.path = w.path
             WHERE w.since <= ?1 AND (w.until IS NULL OR w.until > ?1)
               AND substr(w.path, 1, length(?2)) = ?2
               AND r.first_seen <= ?1 AND (r.ended IS NULL OR r.ended > ?1)",
        )?;
        for row in stmt.query_map(params![taken, prefix], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (path, name, oid) = row?;
            lorries.entry(path).or_default().insert(name, oid);
        }
        Ok(SnapshotManifest {
            name: name.to_owned(),
            taken,
            prefix,
            lorries,
        })
    }

    /// What changed from snapshot `a` to snapshot `b`. With one prefix,
    /// only the lorries whose ledger has a row that appeared or ended
    /// between the two times can differ: their refs at both times are
    /// read, and no other lorry's (the whole manifests are read only when
    /// the prefixes differ).
    pub fn snapshot_diff(&self, a: &str, b: &str) -> Result<lc_api::SnapshotDiff> {
        let (taken_a, prefix_a, _) = self.snapshot_row(a)?;
        let (taken_b, prefix_b, _) = self.snapshot_row(b)?;
        if prefix_a != prefix_b {
            return Ok(lc_api::SnapshotDiff::between(
                &self.snapshot_manifest(a)?,
                &self.snapshot_manifest(b)?,
            ));
        }
        let partial = |name: &str, taken| SnapshotManifest {
            name: name.to_owned(),
            taken,
            prefix: prefix_a.clone(),
            lorries: BTreeMap::new(),
        };
        let (mut from, mut to) = (partial(a, taken_a), partial(b, taken_b));
        for path in self.paths_changed_between(taken_a, taken_b, &prefix_a)? {
            for side in [&mut from, &mut to] {
                let refs = self.lorry_refs_at(&path, side.taken)?;
                if !refs.is_empty() {
                    side.lorries.insert(path.clone(), refs);
                }
            }
        }
        Ok(lc_api::SnapshotDiff::between(&from, &to))
    }

    /// The lorries under `prefix` whose ledger or whole span has a row
    /// that appeared or ended after the earlier of `t1` and `t2` and at or
    /// before the later: the only ones whose refs can differ between them.
    fn paths_changed_between(&self, t1: i64, t2: i64, prefix: &str) -> Result<Vec<String>> {
        let (lo, hi) = (t1.min(t2), t1.max(t2));
        let mut stmt = self.conn().prepare(
            "SELECT path FROM ref_ledger WHERE first_seen > ?1 AND first_seen <= ?2
                 AND substr(path, 1, length(?3)) = ?3
             UNION SELECT path FROM ref_ledger WHERE ended > ?1 AND ended <= ?2
                 AND substr(path, 1, length(?3)) = ?3
             UNION SELECT path FROM ref_ledger_whole
                 WHERE ((since > ?1 AND since <= ?2) OR (until > ?1 AND until <= ?2))
                 AND substr(path, 1, length(?3)) = ?3",
        )?;
        let paths = stmt
            .query_map(params![lo, hi, prefix], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(paths)
    }

    /// `path`'s refs at `time` as a snapshot taken then holds them (none
    /// when its ledger was not whole then).
    fn lorry_refs_at(&self, path: &str, time: i64) -> Result<BTreeMap<String, String>> {
        let mut stmt = self.conn().prepare(
            "SELECT r.ref, r.oid FROM ref_ledger AS r
             WHERE r.path = ?1 AND r.first_seen <= ?2 AND (r.ended IS NULL OR r.ended > ?2)
               AND EXISTS (SELECT 1 FROM ref_ledger_whole AS w WHERE w.path = ?1
                   AND w.since <= ?2 AND (w.until IS NULL OR w.until > ?2))",
        )?;
        let refs = stmt
            .query_map(params![path, time], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(refs)
    }

    /// The pins and unpins waiting for `path`'s next job.
    pub fn pins_todo(&self, path: &str) -> Result<PinsTodo> {
        let mut todo = PinsTodo::default();
        let mut stmt = self.conn().prepare(
            "SELECT snapshot, ref, oid, state FROM snapshot_pins
             WHERE path = ?1 AND state IN ('pending', 'unpin')",
        )?;
        for row in stmt.query_map([path], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })? {
            let (snapshot, name, oid, state) = row?;
            let pin = pin_name(&snapshot, &name);
            if state == "pending" {
                todo.pin.insert(pin, oid);
            } else {
                todo.unpin.push(pin);
            }
        }
        Ok(todo)
    }
}

impl WriteTx<'_> {
    /// Takes snapshot `name` of the lorries under `prefix`, now.
    pub fn take_snapshot(&self, name: &str, prefix: &str) -> Result<SnapshotInfo> {
        check_snapshot_name(name)?;
        let exists: bool = self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM snapshots WHERE name = ?1)
                 OR EXISTS (SELECT 1 FROM snapshot_pins WHERE snapshot = ?1)",
            [name],
            |r| r.get(0),
        )?;
        if exists {
            return Err(Error::SnapshotExists(name.to_owned()));
        }
        let lorries: i64 = self.conn().query_row(
            "SELECT count(*) FROM ref_ledger_whole
             WHERE until IS NULL AND substr(path, 1, length(?1)) = ?1",
            [prefix],
            |r| r.get(0),
        )?;
        self.conn()
            .prepare(
                "INSERT INTO snapshots (name, taken, prefix, lorries) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![name, self.now, prefix, lorries])?;
        self.snapshot(name)
    }

    /// Deletes snapshot `name`: pins already pushed are to be removed by
    /// their lorries' next jobs; the others are forgotten.
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        self.snapshot_row(name)?;
        let channel: Option<String> = self
            .conn()
            .query_row(
                "SELECT name FROM channels WHERE snapshot = ?1 ORDER BY name LIMIT 1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(channel) = channel {
            return Err(Error::SnapshotInUse {
                snapshot: name.to_owned(),
                channel,
            });
        }
        self.conn()
            .prepare("DELETE FROM snapshots WHERE name = ?1")?
            .execute([name])?;
        self.conn()
            .prepare("DELETE FROM snapshot_pins WHERE snapshot = ?1 AND state != 'pushed'")?
            .execute([name])?;
        self.conn()
            .prepare("UPDATE snapshot_pins SET state = 'unpin' WHERE snapshot = ?1")?
            .execute([name])?;
        Ok(())
    }

    /// A tip of `path`'s `ref_name` held from `first_seen` until now left
    /// its ref unpreserved: every snapshot taken meanwhile that covers the
    /// lorry asks its next job for a pin.
    pub(super) fn ask_pins(
        &self,
        path: &str,
        ref_name: &str,
        oid: &str,
        first_seen: i64,
    ) -> Result<()> {
        self.conn()
            .prepare(
                "INSERT INTO snapshot_pins (snapshot, path, ref, oid, state)
                 SELECT s.name, ?1, ?2, ?3, 'pending' FROM snapshots AS s
                 WHERE s.taken >= ?4 AND s.taken < ?5
                   AND substr(?1, 1, length(s.prefix)) = s.prefix
                   AND EXISTS (SELECT 1 FROM ref_ledger_whole AS w WHERE w.path = ?1
                               AND w.since <= s.taken AND (w.until IS NULL OR w.until > s.taken))
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![path, ref_name, oid, first_seen, self.now])?;
        Ok(())
    }

    /// Records what `path`'s job did with the pins it was asked for.
    pub(super) fn record_pins(&self, path: &str, pins: &[PinResult]) -> Result<()> {
        for pin in pins {
            let Some(rest) = pin.name.strip_prefix(PIN_PREFIX) else {
                continue;
            };
            let Some((snapshot, ref_name)) = rest.split_once('/') else {
                continue;
            };
            if pin.outcome == PinOutcome::Removed {
                self.conn()
                    .prepare(
                        "DELETE FROM snapshot_pins
                         WHERE snapshot = ?1 AND path = ?2 AND ref = ?3 AND state = 'unpin'",
                    )?
                    .execute(params![snapshot, path, ref_name])?;
                continue;
            }
            let state = match pin.outcome {
                PinOutcome::Pushed => "pushed",
                PinOutcome::Reachable => "reachable",
                PinOutcome::Lost | PinOutcome::Removed => "lost",
            };
            self.conn()
                .prepare(
                    "UPDATE snapshot_pins SET state = ?5
                     WHERE snapshot = ?1 AND path = ?2 AND ref = ?3 AND oid = ?4 AND state = 'pending'",
                )?
                .execute(params![snapshot, path, ref_name, pin.oid, state])?;
        }
        Ok(())
    }
}

impl ReadTx<'_> {
    /// Channel `name`: the snapshot it points at and since when.
    pub fn channel(&self, name: &str) -> Result<ChannelInfo> {
        let (snapshot, since) = self
            .conn()
            .query_row(
                "SELECT snapshot, since FROM channels WHERE name = ?1",
                [name],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::UnknownChannel(name.to_owned()))?;
        let mut stmt = self.conn().prepare(
            "SELECT snapshot, time FROM channel_history WHERE channel = ?1 ORDER BY id DESC",
        )?;
        let history = stmt
            .query_map([name], |r| {
                Ok(ChannelPointing {
                    snapshot: r.get(0)?,
                    time: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ChannelInfo {
            name: name.to_owned(),
            snapshot,
            since,
            history,
        })
    }

    /// Every channel, by name.
    pub fn channels(&self) -> Result<Vec<ChannelInfo>> {
        let names: Vec<String> = self
            .conn()
            .prepare("SELECT name FROM channels ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        names.iter().map(|n| self.channel(n)).collect()
    }
}

impl WriteTx<'_> {
    /// Points channel `name` at snapshot `snapshot` (creating the channel),
    /// and records it in the channel's history. Pointing it where it
    /// points already changes nothing.
    pub fn promote(&self, name: &str, snapshot: &str) -> Result<ChannelInfo> {
        check_snapshot_name(name).map_err(|_| Error::Invalid {
            field: "channel",
            problem: format!(
                "{name:?} is not a channel name (letters, digits, '.', '_', '-', \
                 at most 100, not starting with '.' or '-', no '..')"
            ),
        })?;
        self.snapshot_row(snapshot)?;
        let current: Option<String> = self
            .conn()
            .query_row(
                "SELECT snapshot FROM channels WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if current.as_deref() != Some(snapshot) {
            self.conn()
                .prepare(
                    "INSERT INTO channels (name, snapshot, since) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET snapshot = excluded.snapshot,
                                                      since = excluded.since",
                )?
                .execute(params![name, snapshot, self.now])?;
            self.conn()
                .prepare(
                    "INSERT INTO channel_history (channel, snapshot, time) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![name, snapshot, self.now])?;
        }
        self.channel(name)
    }
}

/// How long snapshots and ended ledger rows are kept (`None`: for ever).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many snapshots (the newest).
    pub snapshot_keep: Option<i64>,
    /// Remove snapshots taken longer ago than this (seconds).
    pub snapshot_max_age: Option<i64>,
    /// Remove ledger rows that ended longer ago than this (seconds) and
    /// that no snapshot still shows.
    pub ledger_max_age: Option<i64>,
}

impl WriteTx<'_> {
    /// Applies `retention`: snapshots beyond the newest `snapshot_keep` or
    /// older than `snapshot_max_age` are deleted (their pins removed by the
    /// lorries' next jobs), except those a channel points at; then ledger
    /// rows that ended before `ledger_max_age` and before the oldest
    /// remaining snapshot was taken. Answers the snapshots deleted and the
    /// ledger rows removed.
    pub fn apply_retention(&self, retention: &Retention) -> Result<(Vec<String>, usize)> {
        let mut removed = Vec::new();
        if retention.snapshot_keep.is_some() || retention.snapshot_max_age.is_some() {
            let candidates: Vec<(String, i64)> = self
                .conn()
                .prepare(
                    "SELECT name, taken FROM snapshots
                     WHERE name NOT IN (SELECT snapshot FROM channels)
                     ORDER BY taken DESC, name DESC",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let keep = retention.snapshot_keep.unwrap_or(i64::MAX);
            let oldest = retention.snapshot_max_age.map(|age| self.now - age);
            for (i, (name, taken)) in candidates.into_iter().enumerate() {
                let beyond = i64::try_from(i).unwrap_or(i64::MAX) >= keep;
                let old = oldest.is_some_and(|oldest| taken < oldest);
                if beyond || old {
                    self.delete_snapshot(&name)?;
                    removed.push(name);
                }
            }
        }
        let mut rows = 0;
        if let Some(age) = retention.ledger_max_age {
            rows = self
                .conn()
                .prepare(
                    "DELETE FROM ref_ledger WHERE ended IS NOT NULL AND ended < ?1
                     AND ended <= COALESCE((SELECT min(taken) FROM snapshots), ended)",
                )?
                .execute([self.now - age])?;
        }
        Ok((removed, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::super::lorries::tests::lorry;
    use super::super::provenance::tests::{run_with, spec_result};
    use super::super::tests::fresh;
    use super::*;

    #[test]
    fn snapshots_read_the_ledger_and_pin_only_unpreserved_tips() {
        let (_dir, db) = fresh();
        db.write(|tx| {
            tx.upsert_lorry(&lorry("a", 0))?;
            tx.upsert_lorry(&lorry("b/c", 0))
        })
        .expect("setup");
        let (main, topic) = ("refs/heads/main", "refs/heads/topic");
        db.set_pretend_time(1_000);
        run_with(
            &db,
            "a",
            spec_result(
                "a",
                serde_json::json!({"held": {main: "A1", topic: "T1"},
                    "refs": [{"name": main, "old": null, "new": "A1"}, {"name": topic, "old": null, "new": "T1"}]}),
            ),
        );
        run_with(
            &db,
            "b/c",
            spec_result("b/c", serde_json::json!({"held": {main: "C1"}})),
        );
        db.set_pretend_time(1_500);
        let s1 = db.write(|tx| tx.take_snapshot("s1", "")).expect("s1");
        assert_eq!((s1.lorries, s1.pinned_lorries, s1.taken), (2, 2, 1_500));
        let only_b = db
            .write(|tx| tx.take_snapshot("only-b", "b/"))
            .expect("only-b");
        assert_eq!(only_b.lorries, 1);
        for (name, prefix) in [
            ("s1", ""),
            ("bad/name", ""),
            ("..x", ""),
            ("", ""),
            ("x.lock", ""),
        ] {
            assert!(
                db.write(|tx| tx.take_snapshot(name, prefix)).is_err(),
                "{name}"
            );
        }
        assert!(matches!(
            db.write(|tx| tx.take_snapshot("s1", "")),
            Err(Error::SnapshotExists(_))
        ));
        assert!(matches!(
            db.read(|tx| tx.snapshot_manifest("nope")),
            Err(Error::UnknownSnapshot(_))
        ));
        let manifest = db.read(|tx| tx.snapshot_manifest("s1")).expect("manifest");
        let expected: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_value(
            serde_json::json!({"a": {main: "A1", topic: "T1"}, "b/c": {main: "C1"}}),
        )
        .expect("map");
        assert_eq!(manifest.lorries, expected);
        let b_only = db
            .read(|tx| tx.snapshot_manifest("only-b"))
            .expect("manifest");
        assert_eq!(b_only.lorries.keys().collect::<Vec<_>>(), ["b/c"]);

        // main moves (maybe a fast-forward: the job will know), topic is
        // rewritten and preserved: only main needs a pin.
        db.set_pretend_time(2_000);
        run_with(
            &db,
            "a",
            spec_result(
                "a",
                serde_json::json!({
                    "refs": [{"name": main, "old": "A1", "new": "A2"}, {"name": topic, "old": "T1", "new": "T2"}],
                    "preserved": [{"name": topic, "oid": "T1", "kept_as": "refs/lorry/preserved/x/topic"}],
                    "held": {main: "A2", topic: "T2"}}),
            ),
        );
        // The snapshot still says what was.
        assert_eq!(
            db.read(|tx| tx.snapshot_manifest("s1")).expect("again"),
            manifest
        );
        let todo = db.read(|tx| tx.pins_todo("a")).expect("todo");
        let pin = pin_name("s1", main);
        assert_eq!(todo.pin, BTreeMap::from([(pin.clone(), "A1".to_owned())]));
        assert!(todo.unpin.is_empty());
        assert!(
            db.read(|tx| tx.pins_todo("b/c"))
                .expect("todo")
                .pin
                .is_empty()
        );
        let info = db.read(|tx| tx.snapshot("s1")).expect("info");
        assert_eq!((info.pins.pending, info.pinned_lorries), (1, 1));
        // only-b does not cover a: nothing asked for it.
        assert_eq!(
            db.read(|tx| tx.snapshot("only-b")).expect("b").pins.pending,
            0
        );

        // The next job pins it.
        db.set_pretend_time(3_000);
        run_with(
            &db,
            "a",
            spec_result(
                "a",
                serde_json::json!({"pins": [{"name": pin, "oid": "A1", "outcome": "pushed"}]}),
            ),
        );
        let info = db.read(|tx| tx.snapshot("s1")).expect("info");
        assert_eq!(
            (info.pins.pending, info.pins.pushed, info.pinned_lorries),
            (0, 1, 2)
        );
        assert!(
            db.read(|tx| tx.pins_todo("a"))
                .expect("todo")
                .pin
                .is_empty()
        );

        let s2 = db.write(|tx| tx.take_snapshot("s2", "")).expect("s2");
        assert_eq!(s2.lorries, 2);
        let list = db.read(|tx| tx.snapshots()).expect("list");
        assert_eq!(
            list.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["s2", "s1", "only-b"]
        );
        let diff = lc_api::SnapshotDiff::between(
            &db.read(|tx| tx.snapshot_manifest("s1")).expect("s1"),
            &db.read(|tx| tx.snapshot_manifest("s2")).expect("s2"),
        );
        assert_eq!(diff.changed.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(diff.changed["a"].moved.len(), 2);
        assert!(diff.lorries_added.is_empty() && diff.lorries_removed.is_empty());

        // Deleting s1: its pushed pin is to be removed by a's next job.
        db.write(|tx| tx.delete_snapshot("s1")).expect("delete");
        assert!(matches!(
            db.write(|tx| tx.delete_snapshot("s1")),
            Err(Error::UnknownSnapshot(_))
        ));
        let todo = db.read(|tx| tx.pins_todo("a")).expect("todo");
        assert_eq!(todo.unpin, std::slice::from_ref(&pin));
        // Its name stays taken until the pin is gone.
        assert!(db.write(|tx| tx.take_snapshot("s1", "")).is_err());
        run_with(
            &db,
            "a",
            spec_result(
                "a",
                serde_json::json!({"pins": [{"name": pin, "oid": "A1", "outcome": "removed"}]}),
            ),
        );
        assert!(
            db.read(|tx| tx.pins_todo("a"))
                .expect("todo")
                .unpin
                .is_empty()
        );
        db.write(|tx| tx.take_snapshot("s1", "")).expect("s1 again");
    }

    /// The diff read from the rows between two snapshots equals the diff
    /// of their whole manifests, whatever happened in between: moves,
    /// deletions, a ref deleted and made again at the same commit, lorries
    /// added, removed and added again, changes at a snapshot's own second,
    /// either order, other prefixes.
    #[test]
    fn the_diff_from_the_rows_between_equals_the_diff_of_whole_manifests() {
        let (_dir, db) = fresh();
        let (main, topic, tag) = ("refs/heads/main", "refs/heads/topic", "refs/tags/v1");
        db.write(|tx| {
            for path in ["a", "b/c", "b/d", "e", "same"] {
                tx.upsert_lorry(&lorry(path, 0))?;
            }
            Ok(())
        })
        .expect("setup");
        let report = |path: &str, held: serde_json::Value| {
            run_with(
                &db,
                path,
                spec_result(path, serde_json::json!({ "held": held })),
            );
        };
        let mut names = Vec::new();
        let mut snap = |db: &crate::db::StateDb, time: i64, prefix: &str| {
            db.set_pretend_time(time);
            let name = format!("s{time}");
            db.write(|tx| tx.take_snapshot(&name, prefix))
                .expect("snapshot");
            names.push(name);
        };
        db.set_pretend_time(1_000);
        report("a", serde_json::json!({main: "A1", topic: "T1"}));
        report("b/c", serde_json::json!({main: "C1"}));
        report("same", serde_json::json!({main: "S1"}));
        snap(&db, 1_100, "");
        snap(&db, 1_100 + 1, "b/");
        // Changes in the snapshot's own second belong to it.
        db.set_pretend_time(1_200);
        report("a", serde_json::json!({main: "A2", tag: "G1"}));
        report("b/d", serde_json::json!({main: "D1"}));
        snap(&db, 1_200, "");
        db.set_pretend_time(1_300);
        report("b/c", serde_json::json!({}));
        report("a", serde_json::json!({main: "A2", tag: "G1", topic: "T1"}));
        db.write(|tx| tx.remove_lorry("b/d")).expect("remove");
        snap(&db, 1_400, "");
        db.set_pretend_time(1_500);
        db.write(|tx| tx.upsert_lorry(&lorry("b/d", 0)))
            .expect("again");
        report("b/d", serde_json::json!({main: "D2"}));
        report("e", serde_json::json!({main: "E1"}));
        report("b/c", serde_json::json!({main: "C1"}));
        snap(&db, 1_600, "");
        snap(&db, 1_601, "b/");

        let mut nonempty = 0;
        for a in &names {
            for b in &names {
                let fast = db.read(|tx| tx.snapshot_diff(a, b)).expect("diff");
                let whole = lc_api::SnapshotDiff::between(
                    &db.read(|tx| tx.snapshot_manifest(a)).expect("a"),
                    &db.read(|tx| tx.snapshot_manifest(b)).expect("b"),
                );
                assert_eq!(fast, whole, "{a} -> {b}");
                if !fast.changed.is_empty() || !fast.lorries_added.is_empty() {
                    nonempty += 1;
                }
            }
        }
        assert!(nonempty > 10, "the scenario changes things ({nonempty})");
        let diff = db
            .read(|tx| tx.snapshot_diff("s1100", "s1600"))
            .expect("diff");
        assert_eq!(diff.lorries_added, ["b/d", "e"]);
        assert!(!diff.changed.contains_key("same") && !diff.changed.contains_key("b/c"));
        assert_eq!(diff.changed["a"].added.keys().collect::<Vec<_>>(), [tag]);
    }

    #[test]
    fn channels_point_at_snapshots_and_retention_spares_them() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.upsert_lorry(&lorry("a", 0)))
            .expect("setup");
        let main = "refs/heads/main";
        db.set_pretend_time(1_000);
        run_with(
            &db,
            "a",
            spec_result("a", serde_json::json!({"held": {main: "A1"}})),
        );
        for (t, name) in [(1_100, "s1"), (1_200, "s2"), (1_300, "s3")] {
            db.set_pretend_time(t);
            db.write(|tx| tx.take_snapshot(name, "")).expect("snapshot");
        }
        db.set_pretend_time(2_000);
        let release = db.write(|tx| tx.promote("release", "s1")).expect("promote");
        assert_eq!((release.snapshot.as_str(), release.since), ("s1", 2_000));
        assert!(matches!(
            db.write(|tx| tx.promote("release", "nope")),
            Err(Error::UnknownSnapshot(_))
        ));
        assert!(db.write(|tx| tx.promote("bad/name", "s1")).is_err());
        assert!(matches!(
            db.read(|tx| tx.channel("nope")),
            Err(Error::UnknownChannel(_))
        ));
        db.set_pretend_time(2_100);
        db.write(|tx| tx.promote("release", "s2")).expect("promote");
        // Again to the same: no new history.
        db.write(|tx| tx.promote("release", "s2")).expect("promote");
        let release = db.read(|tx| tx.channel("release")).expect("channel");
        let history: Vec<(&str, i64)> = release
            .history
            .iter()
            .map(|p| (p.snapshot.as_str(), p.time))
            .collect();
        assert_eq!(history, [("s2", 2_100), ("s1", 2_000)]);
        assert!(matches!(
            db.write(|tx| tx.delete_snapshot("s2")),
            Err(Error::SnapshotInUse { .. })
        ));

        // Keep one: s3 stays as the newest, s2 because release points at it.
        let (removed, _) = db
            .write(|tx| {
                tx.apply_retention(&Retention {
                    snapshot_keep: Some(1),
                    ..Retention::default()
                })
            })
            .expect("retention");
        assert_eq!(removed, ["s1"]);
        let left: Vec<String> = db
            .read(|tx| tx.snapshots())
            .expect("list")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(left, ["s3", "s2"]);
        // By age: s3 (taken 1_300) is older than 500 s at 2_100; s2 stays.
        let (removed, _) = db
            .write(|tx| {
                tx.apply_retention(&Retention {
                    snapshot_max_age: Some(500),
                    ..Retention::default()
                })
            })
            .expect("retention");
        assert_eq!(removed, ["s3"]);

        // Ledger rows: one that ended before s2 was taken goes only when no
        // snapshot shows it.
        db.set_pretend_time(3_000);
        run_with(
            &db,
            "a",
            spec_result(
                "a",
                serde_json::json!({"refs": [{"name": main, "old": "A1", "new": "A2"}],
                                                 "held": {main: "A2"}}),
            ),
        );
        let ledger = Retention {
            ledger_max_age: Some(10),
            ..Retention::default()
        };
        db.set_pretend_time(4_000);
        let (_, rows) = db
            .write(|tx| tx.apply_retention(&ledger))
            .expect("retention");
        assert_eq!(rows, 0, "s2 (taken 1_200) still shows A1");
        db.write(|tx| tx.promote("release", "s2")).expect("same");
        db.set_pretend_time(4_100);
        db.write(|tx| tx.take_snapshot("s4", "")).expect("s4");
        db.write(|tx| tx.promote("release", "s4")).expect("promote");
        db.write(|tx| tx.delete_snapshot("s2")).expect("delete s2");
        let (_, rows) = db
            .write(|tx| tx.apply_retention(&ledger))
            .expect("retention");
        assert_eq!(rows, 1);
        assert_eq!(
            db.read(|tx| tx.snapshot_manifest("s4"))
                .expect("s4")
                .lorries["a"][main],
            "A2"
        );
    }
}
