//! Snapshot pins: the webapp asks a lorry's job (the spec's
//! `snapshot-pins`, pin ref → commit, and `snapshot-unpins`, pin refs)
//! to keep downstream the commits a snapshot names that left their refs
//! unpreserved, and to remove the pins of deleted snapshots.
//!
//! A commit is pinned only when nothing the downstream keeps reaches it:
//! it is no branch, tag, preserved or pinned tip, and (for a commit) no
//! such ref contains it (`git for-each-ref --contains`); so a fast-forward
//! pins nothing. Pins are pushed with a lease (the ref must not exist) and
//! kept in the mirror under the same name, so the mirror keeps the objects
//! too. Failing to pin never fails the spec: the webapp asks again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lc_api::{PinOutcome, PinResult};
use lc_git::{Git, Lease, RefUpdate};
use serde_json::Value;

/// Where pins live, downstream and in the mirror.
pub const PREFIX: &str = "refs/lorry/snapshots/";

/// What the spec asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    pub pin: BTreeMap<String, String>,
    pub unpin: BTreeSet<String>,
}

fn good_name(name: &str) -> bool {
    name.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.contains('/')
            && !name.contains("..")
            && !name.contains("//")
            && !name.ends_with(['/', '.'])
            && !name.ends_with(".lock")
            && !name.contains("@{")
            && !name.chars().any(|c| {
                c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
            })
    })
}

fn good_oid(oid: &str) -> bool {
    matches!(oid.len(), 40 | 64) && oid.chars().all(|c| c.is_ascii_hexdigit())
}

impl Pins {
    /// The pins a spec (as written) asks for, and what was wrong with the
    /// entries left out.
    pub fn of(raw: &Value) -> (Pins, Vec<String>) {
        let mut pins = Pins::default();
        let mut problems = Vec::new();
        match raw.get("snapshot-pins") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, oid) in map {
                    match oid.as_str() {
                        Some(oid) if good_name(name) && good_oid(oid) => {
                            pins.pin.insert(name.clone(), oid.to_owned());
                        }
                        _ => problems.push(format!("snapshot-pins: {name:?} → {oid} left out")),
                    }
                }
            }
            Some(other) => problems.push(format!("snapshot-pins must be a map, not {other}")),
        }
        match raw.get("snapshot-unpins") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for name in list {
                    match name.as_str() {
                        Some(name) if good_name(name) => {
                            pins.unpin.insert(name.to_owned());
                        }
                        _ => problems.push(format!("snapshot-unpins: {name} left out")),
                    }
                }
            }
            Some(other) => problems.push(format!("snapshot-unpins must be a list, not {other}")),
        }
        (pins, problems)
    }

    pub fn is_empty(&self) -> bool {
        self.pin.is_empty() && self.unpin.is_empty()
    }
}

/// The mirror's refs that the downstream keeps: everything outside
/// `refs/lorry/`, preserved tips and pins.
fn kept(git: &Git, repo: &Path) -> Result<BTreeMap<String, String>, lc_git::GitError> {
    Ok(git
        .for_each_ref(repo, &[])?
        .into_iter()
        .filter(|(name, _)| {
            !name.starts_with("refs/lorry/")
                || name.starts_with("refs/lorry/preserved/")
                || name.starts_with(PREFIX)
        })
        .collect())
}

/// Whether a kept ref contains commit `oid` (false for other objects).
fn contained(git: &Git, repo: &Path, oid: &str) -> bool {
    git.in_repo(repo)
        .args([
            "for-each-ref",
            "--count=1",
            "--format=%(refname)",
            "--contains",
            oid,
            "refs/heads/",
            "refs/tags/",
            "refs/lorry/preserved/",
            PREFIX,
        ])
        .output()
        .is_ok_and(|out| out.status.success() && !out.stdout.is_empty())
}

/// Carries out `pins` on the downstream `url` from the mirror `repo`;
/// answers each pin's outcome and notes (for the log). Unpins whose push
/// failed, and pins that could not be pushed, are left out of the answer,
/// so the webapp asks again.
pub fn apply(git: &Git, repo: &Path, url: &str, pins: &Pins) -> (Vec<PinResult>, Vec<String>) {
    let mut results = Vec::new();
    let mut notes = Vec::new();
    let kept = match kept(git, repo) {
        Ok(kept) => kept,
        Err(e) => return (results, vec![format!("cannot list the mirror's refs: {e}")]),
    };
    let held: BTreeSet<&str> = kept.values().map(String::as_str).collect();
    let wanted: Vec<&str> = pins.pin.values().map(String::as_str).collect();
    let missing: BTreeSet<String> = match git.missing_objects(repo, &wanted) {
        Ok(missing) => missing.into_iter().collect(),
        Err(e) => {
            return (
                results,
                vec![format!("cannot look for the pinned objects: {e}")],
            );
        }
    };
    let mut refspecs = Vec::new();
    let mut leases = Vec::new();
    let mut updates = Vec::new();
    let mut pushing = Vec::new();
    for (name, oid) in &pins.pin {
        let outcome = if kept.get(name) == Some(oid) {
            Some(PinOutcome::Pushed)
        } else if held.contains(oid.as_str())
            || (!missing.contains(oid) && contained(git, repo, oid))
        {
            Some(PinOutcome::Reachable)
        } else if missing.contains(oid) {
            Some(PinOutcome::Lost)
        } else {
            refspecs.push(format!("{oid}:{name}"));
            leases.push(Lease {
                name: name.clone(),
                expect: None,
            });
            updates.push(RefUpdate::Set {
                name: name.clone(),
                oid: oid.clone(),
            });
            pushing.push((name.clone(), oid.clone(), PinOutcome::Pushed));
            None
        };
        if let Some(outcome) = outcome {
            results.push(PinResult {
                name: name.clone(),
                oid: oid.clone(),
                outcome,
            });
        }
    }
    for name in &pins.unpin {
        match kept.get(name) {
            Some(oid) => {
                refspecs.push(format!(":{name}"));
                leases.push(Lease {
                    name: name.clone(),
                    expect: Some(oid.clone()),
                });
                updates.push(RefUpdate::Delete { name: name.clone() });
                pushing.push((name.clone(), oid.clone(), PinOutcome::Removed));
            }
            // Not in the mirror: never pushed from here, nothing to remove.
            None => results.push(PinResult {
                name: name.clone(),
                oid: String::new(),
                outcome: PinOutcome::Removed,
            }),
        }
    }
    if refspecs.is_empty() {
        return (results, notes);
    }
    match git
        .push_with_leases(repo, url, &refspecs, &leases, &[])
        .and_then(|_| git.update_refs(repo, &updates))
    {
        Ok(()) => {
            for (name, oid, outcome) in pushing {
                notes.push(match outcome {
                    PinOutcome::Removed => format!("unpinned {name}"),
                    _ => format!("pinned {oid} as {name}"),
                });
                results.push(PinResult { name, oid, outcome });
            }
        }
        Err(e) => notes.push(format!("cannot push snapshot pins: {e}")),
    }
    (results, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_pins_are_taken() {
        let oid = "a".repeat(40);
        let raw = serde_json::json!({
            "type": "git",
            "snapshot-pins": {
                format!("{PREFIX}s1/refs/heads/main"): oid,
                "refs/heads/main": oid,
                format!("{PREFIX}s1/refs/heads/x..y"): oid,
                format!("{PREFIX}s1/refs/heads/ok"): "not-an-oid",
                format!("{PREFIX}nothing"): oid,
            },
            "snapshot-unpins": [format!("{PREFIX}s0/refs/tags/v1"), "refs/tags/v1", 3]
        });
        let (pins, problems) = Pins::of(&raw);
        assert_eq!(
            pins.pin,
            BTreeMap::from([(format!("{PREFIX}s1/refs/heads/main"), oid.clone())])
        );
        assert_eq!(
            pins.unpin,
            BTreeSet::from([format!("{PREFIX}s0/refs/tags/v1")])
        );
        assert_eq!(problems.len(), 6, "{problems:?}");
        let (none, problems) = Pins::of(&serde_json::json!({"type": "git"}));
        assert!(none.is_empty() && problems.is_empty());
        let (_, problems) = Pins::of(&serde_json::json!({"snapshot-pins": [1]}));
        assert_eq!(problems.len(), 1);
    }
}
