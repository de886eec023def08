//! What the last successful run left: the upstream refs it saw and the refs
//! it pushed, and where. Kept in `<spec dir>/lorry-state.json`; written only
//! after a run that fully succeeded, removed as soon as a run fails, so a
//! stale record can never make a run skip work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FILE: &str = "lorry-state.json";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The upstream refs (under their mirror names) when last mirrored; for
    /// specs that are not git, empty.
    #[serde(default)]
    pub upstream: BTreeMap<String, String>,
    /// The SHA-256 of the push URL (the URL itself may hold a credential),
    /// or `None` after a `--pull-only` run.
    #[serde(default)]
    pub pushed_to: Option<String>,
    /// The mirrored refs as they now are in the mirror (and downstream).
    #[serde(default)]
    pub refs: BTreeMap<String, String>,
    /// The spec's refspecs and filters (`Refspecs::describe`; empty for the
    /// default), so a changed filter is never skipped as "unchanged".
    #[serde(default)]
    pub refspecs: String,
    /// Whether LFS objects were mirrored, so turning `lfs` on is a full run.
    #[serde(default)]
    pub lfs: bool,
    /// Whether `refs` has been reported whole in a job result (`held`), so
    /// that the webapp's ref ledger has them even when nothing moves.
    #[serde(default)]
    pub held_reported: bool,
    /// The submodule URLs named at `refs`' branch tips, so that a run that
    /// finds nothing new need not read them again.
    #[serde(default)]
    pub submodules: Option<Submodules>,
    /// When (Unix seconds) the downstream was last listed: the lean path
    /// trusts `refs` as the downstream's for `--downstream-check-every`
    /// after it. `None` (a record from before it was kept, or a pull-only
    /// run): never listed.
    #[serde(default)]
    pub downstream_listed: Option<u64>,
}

/// Submodule URLs as reported, with the upstream URL that relative ones
/// were resolved against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submodules {
    pub upstream: String,
    pub urls: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct StateError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The key under which a push URL is remembered.
pub fn push_key(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl State {
    /// The recorded state, or `None` when there is none or it cannot be
    /// read (an unreadable record only costs a full run).
    pub fn load(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record atomically (temporary file, then rename).
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let err = |action, source| StateError {
            action,
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| err("serialise", std::io::Error::other(e)))?;
        std::fs::write(&tmp, text).map_err(|e| err("write", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| err("rename into place", e))?;
        Ok(())
    }

    /// Forgets the record.
    pub fn clear(dir: &Path) -> Result<(), StateError> {
        let path = dir.join(FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError {
                action: "remove",
                path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(State::load(dir.path()), None);
        let mut state = State::default();
        state.refs.insert("refs/heads/a".into(), "1".repeat(40));
        state.pushed_to = Some(push_key("https://u:tok@h/x.git"));
        state.save(dir.path()).expect("save");
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert!(!text.contains("tok"));
        assert_eq!(State::load(dir.path()), Some(state));
        State::clear(dir.path()).expect("clear");
        State::clear(dir.path()).expect("clear twice");
        assert_eq!(State::load(dir.path()), None);
        std::fs::write(dir.path().join(FILE), "{not json").expect("write");
        assert_eq!(State::load(dir.path()), None);
    }
}
