//! The provenance API's wire types: the ref ledger (`GET
//! /1.0/lorry-refs/<path>?at=`, `GET /1.0/lorry-history/<path>`).

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
