//! What one `lorry` run did, for programs: written by `lorry
//! --result-file FILE`, sent by the minion in the final job-update's
//! `result` field, stored by the webapp with the job and shown in
//! `GET /1.0/job/<id>` under `result`.
//!
//! Versioned: [`JobResult::version`] is [`JOB_RESULT_VERSION`]. Within a
//! version fields may be added, never renamed or removed, and readers
//! ignore fields they do not know. Fields added after the first release of
//! version 1 (`submodules`, `lfs_bytes_received`, `lfs_bytes`, `held`,
//! `pins`) have serde defaults, so a result without them still reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version written by this build.
pub const JOB_RESULT_VERSION: u32 = 1;

/// The result of one `lorry` run: one entry per spec, in the order run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    pub version: u32,
    pub specs: Vec<SpecResult>,
}

impl Default for JobResult {
    fn default() -> Self {
        JobResult {
            version: JOB_RESULT_VERSION,
            specs: Vec::new(),
        }
    }
}

/// Whether a run pushed to the downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pushed {
    /// A push was made (and verified).
    Yes,
    /// Nothing was pushed: `--pull-only`, or the run failed first.
    No,
    /// Nothing needed pushing: the downstream already had everything.
    Unchanged,
}

impl Pushed {
    pub fn as_str(self) -> &'static str {
        match self {
            Pushed::Yes => "yes",
            Pushed::No => "no",
            Pushed::Unchanged => "unchanged",
        }
    }
}

/// What the run did for one spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecResult {
    /// The spec's name (its path downstream).
    pub name: String,
    /// The spec's type: `git`, `tarball`, `zip`, `gzip`, `raw-file`, `svn`,
    /// `hg`, `bzr` or `cvs`.
    pub importer: String,
    /// Whether the spec was mirrored.
    pub ok: bool,
    /// Why not, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every mirrored ref (heads, tags, refspec targets) whose value this
    /// run changed, by name: its value before (`None`: it is new) and after
    /// (`None`: it was deleted).
    pub refs: Vec<RefChange>,
    /// Old tips kept because upstream rewrote or deleted their ref.
    pub preserved: Vec<PreservedRef>,
    /// Bytes the mirror's object store grew by (fetched or imported).
    pub bytes_received: u64,
    pub pushed: Pushed,
    /// Submodule URLs named by `.gitmodules` at the mirrored branch tips
    /// (git specs), relative ones resolved against the upstream; none of
    /// them is fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submodules: Vec<String>,
    /// Bytes the mirror's LFS store grew by.
    #[serde(default)]
    pub lfs_bytes_received: u64,
    /// Bytes in the mirror's LFS store after the run (0 without LFS).
    #[serde(default)]
    pub lfs_bytes: u64,
    /// Every mirrored ref and its value after the run, for the webapp's ref
    /// ledger: sent when the run moved a ref or when this mirror's refs
    /// have not been reported since its state record was made; `None`
    /// otherwise (then [`SpecResult::refs`] holds every change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<BTreeMap<String, String>>,
    /// Snapshot pins the webapp asked for (the spec's `snapshot-pins`) and
    /// what became of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pins: Vec<PinResult>,
}

impl Default for SpecResult {
    /// A spec that did nothing (`ok` false, nothing pushed): a base for
    /// struct updates, so that adding a field does not touch every test.
    fn default() -> Self {
        SpecResult {
            name: String::new(),
            importer: String::new(),
            ok: false,
            error: None,
            refs: Vec::new(),
            preserved: Vec::new(),
            bytes_received: 0,
            pushed: Pushed::No,
            submodules: Vec::new(),
            lfs_bytes_received: 0,
            lfs_bytes: 0,
            held: None,
            pins: Vec::new(),
        }
    }
}

/// What became of one snapshot pin the webapp asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinResult {
    /// The pin ref asked for (`refs/lorry/snapshots/<name>/<ref>`).
    pub name: String,
    pub oid: String,
    pub outcome: PinOutcome,
}

/// The outcome of a pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinOutcome {
    /// Pushed downstream under its name (and kept in the mirror).
    Pushed,
    /// Not needed: a ref the downstream keeps already reaches the commit.
    Reachable,
    /// The mirror no longer has the object; nothing can pin it.
    Lost,
    /// An unpin: the pin ref was removed (or was never there).
    Removed,
}

/// One ref's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefChange {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// An old tip kept under `refs/lorry/preserved/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreservedRef {
    /// The ref that was rewritten or deleted.
    pub name: String,
    /// Its old value.
    pub oid: String,
    /// Where the old value is kept.
    pub kept_as: String,
}

impl SpecResult {
    /// Refs changed to a new value (created or moved).
    pub fn updated(&self) -> usize {
        self.refs.iter().filter(|r| r.new.is_some()).count()
    }

    /// Refs deleted.
    pub fn deleted(&self) -> usize {
        self.refs.iter().filter(|r| r.new.is_none()).count()
    }

    /// The `lorry: summary: ` line: the same keys for every importer, the
    /// name last (it may contain spaces).
    pub fn summary_line(&self) -> String {
        format!(
            "lorry: summary: importer={} ok={} refs_updated={} refs_deleted={} refs_preserved={} bytes_received={} pushed={} lfs_bytes_received={} submodules={} name={}",
            self.importer,
            if self.ok { "yes" } else { "no" },
            self.updated(),
            self.deleted(),
            self.preserved.len(),
            self.bytes_received,
            self.pushed.as_str(),
            self.lfs_bytes_received,
            self.submodules.len(),
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_stable_json_with_a_version() {
        let result = JobResult {
            version: JOB_RESULT_VERSION,
            specs: vec![SpecResult {
                name: "up/x".into(),
                importer: "git".into(),
                ok: true,
                error: None,
                refs: vec![
                    RefChange {
                        name: "refs/heads/main".into(),
                        old: Some("a".repeat(40)),
                        new: Some("b".repeat(40)),
                    },
                    RefChange {
                        name: "refs/tags/gone".into(),
                        old: Some("c".repeat(40)),
                        new: None,
                    },
                ],
                preserved: vec![PreservedRef {
                    name: "refs/tags/gone".into(),
                    oid: "c".repeat(40),
                    kept_as: "refs/lorry/preserved/20261207T000000Z/refs/tags/gone".into(),
                }],
                bytes_received: 1234,
                pushed: Pushed::Yes,
                submodules: vec!["https://h.example/lib.git".into()],
                lfs_bytes_received: 5,
                lfs_bytes: 9,
                held: None,
                pins: Vec::new(),
            }],
        };
        let json = serde_json::to_value(&result).expect("json");
        assert_eq!(json["version"], 1);
        assert_eq!(json["specs"][0]["pushed"], "yes");
        assert_eq!(json["specs"][0]["refs"][1]["new"], serde_json::Value::Null);
        assert!(json["specs"][0].get("error").is_none());
        let back: JobResult = serde_json::from_value(json).expect("parse");
        assert_eq!(back, result);
        assert_eq!(
            result.specs[0].summary_line(),
            "lorry: summary: importer=git ok=yes refs_updated=1 refs_deleted=1 refs_preserved=1 bytes_received=1234 pushed=yes lfs_bytes_received=5 submodules=1 name=up/x"
        );
    }

    #[test]
    fn a_result_written_before_the_added_fields_still_reads() {
        let old = r#"{"version":1,"specs":[{"name":"a","importer":"git","ok":true,
            "refs":[],"preserved":[],"bytes_received":0,"pushed":"no","future":1}]}"#;
        let back: JobResult = serde_json::from_str(old).expect("parse");
        let spec = &back.specs[0];
        assert!(spec.submodules.is_empty() && spec.pins.is_empty());
        assert_eq!((spec.lfs_bytes_received, spec.lfs_bytes), (0, 0));
        assert_eq!(spec.held, None);
        // And the new fields stay out of a result that does not use them.
        let json = serde_json::to_value(spec).expect("json");
        assert!(json.get("held").is_none() && json.get("submodules").is_none());
    }
}
