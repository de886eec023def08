//! The provenance API's wire types: the ref ledger (`GET
//! /1.0/lorry-refs/<path>?at=`, `GET /1.0/lorry-history/<path>`) and
//! snapshots (`/1.0/snapshots...`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /1.0/lorry-refs/<path>?at=<time>`: the refs a lorry's mirror held
/// at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LorryRefs {
    pub path: String,
    /// The time asked about (Unix seconds).
    pub at: i64,
    /// Whether the ledger knew every ref of the lorry at `at`; before its
    /// first whole report it knows only the refs that changed.
    pub complete: bool,
    /// Since when the ledger has been whole for this lorry, if it is at `at`.
    pub since: Option<i64>,
    pub refs: Vec<RefTip>,
}

/// One ref and its tip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefTip {
    pub name: String,
    pub oid: String,
    /// When the webapp learnt of this tip (the end of the job that reported it).
    pub first_seen: i64,
    /// When it went; `None` while the mirror holds it.
    pub ended: Option<i64>,
    /// The last successful run known to have had it.
    pub last_seen: Option<i64>,
}

/// `GET /1.0/lorry-history/<path>?limit=&offset=`: a lorry's ref changes,
/// newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LorryHistory {
    pub path: String,
    pub offset: i64,
    pub limit: i64,
    /// Whether older changes follow (ask again with `offset + limit`).
    pub more: bool,
    pub changes: Vec<RefHistoryEntry>,
}

/// One change of one ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefHistoryEntry {
    pub time: i64,
    pub name: String,
    /// The tip before (`None`: the ref was new).
    pub old: Option<String>,
    /// The tip after (`None`: the ref went).
    pub new: Option<String>,
    /// `created`, `moved` (fast-forward, or rewritten and followed),
    /// `rewritten` (the old tip preserved), `deleted`, `removed` (the lorry
    /// was removed) or `seen` (in the lorry's first whole report).
    pub how: String,
    /// Where the old tip was preserved, when it was.
    pub kept_as: Option<String>,
    /// The job that reported it.
    pub job_id: Option<i64>,
}

/// `GET /1.0/snapshots` (newest first) and one entry of it; also the
/// answer to `POST /1.0/snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// When it was taken (Unix seconds).
    pub taken: i64,
    /// The lorry paths it covers start with this (empty: all).
    pub prefix: String,
    /// Lorries in it: those under `prefix` whose ledger was whole at `taken`.
    pub lorries: i64,
    /// Lorries none of whose pins waits for a job.
    pub pinned_lorries: i64,
    /// Pins by state: asked of the next job (`pending`), kept downstream
    /// (`pushed`), not needed (`reachable`), impossible (`lost`).
    pub pins: PinCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinCounts {
    pub pending: i64,
    pub pushed: i64,
    pub reachable: i64,
    pub lost: i64,
}

/// `GET /1.0/snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshots {
    pub snapshots: Vec<SnapshotInfo>,
}

/// `GET /1.0/snapshots/<name>`: lorry → ref → commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub name: String,
    pub taken: i64,
    pub prefix: String,
    pub lorries: BTreeMap<String, BTreeMap<String, String>>,
}

/// `GET /1.0/snapshots/<a>/diff/<b>`: what changed from `a` to `b`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDiff {
    pub from: String,
    pub to: String,
    /// Lorries in `to` only, and in `from` only.
    pub lorries_added: Vec<String>,
    pub lorries_removed: Vec<String>,
    /// Lorries in both whose refs differ.
    pub changed: BTreeMap<String, LorryDiff>,
}

/// How one lorry's refs differ between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LorryDiff {
    pub added: BTreeMap<String, String>,
    pub moved: BTreeMap<String, MovedRef>,
    pub removed: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedRef {
    pub from: String,
    pub to: String,
}

impl SnapshotDiff {
    /// The difference from manifest `a` to manifest `b`.
    pub fn between(a: &SnapshotManifest, b: &SnapshotManifest) -> SnapshotDiff {
        let mut diff = SnapshotDiff {
            from: a.name.clone(),
            to: b.name.clone(),
            lorries_added: b
                .lorries
                .keys()
                .filter(|p| !a.lorries.contains_key(*p))
                .cloned()
                .collect(),
            lorries_removed: a
                .lorries
                .keys()
                .filter(|p| !b.lorries.contains_key(*p))
                .cloned()
                .collect(),
            changed: BTreeMap::new(),
        };
        for (path, old) in &a.lorries {
            let Some(new) = b.lorries.get(path) else {
                continue;
            };
            if old == new {
                continue;
            }
            let mut lorry = LorryDiff::default();
            for (name, oid) in new {
                match old.get(name) {
                    None => {
                        lorry.added.insert(name.clone(), oid.clone());
                    }
                    Some(was) if was != oid => {
                        lorry.moved.insert(
                            name.clone(),
                            MovedRef {
                                from: was.clone(),
                                to: oid.clone(),
                            },
                        );
                    }
                    Some(_) => {}
                }
            }
            for (name, oid) in old {
                if !new.contains_key(name) {
                    lorry.removed.insert(name.clone(), oid.clone());
                }
            }
            diff.changed.insert(path.clone(), lorry);
        }
        diff
    }
}

/// A channel: the snapshot it points at, since when, and every pointing,
/// newest first (`GET /1.0/channels`, `POST /1.0/channels/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub name: String,
    pub snapshot: String,
    pub since: i64,
    pub history: Vec<ChannelPointing>,
}

/// One promotion: the channel pointed at `snapshot` from `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPointing {
    pub snapshot: String,
    pub time: i64,
}

/// `GET /1.0/channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    pub channels: Vec<ChannelInfo>,
}
