//! One working directory per spec: `<working area>/<name with % and /
//! percent-encoded>` (see [`lc_base::spec::working_dir_name`]), holding a
//! file naming its spec.
//!
//! Before, the directory was the name with `/` → `_`, so `a/b` and `a_b`
//! shared one (one mirror, one state file). A directory under that old
//! name is moved to the new one the first time its spec runs, before
//! anything else is done, so nothing is fetched again. It is left where it
//! is when it visibly belongs to another spec: its name file names another
//! spec, or its state records a push to another URL.

use std::path::{Path, PathBuf};

use lc_base::spec::{legacy_working_dir_name, working_dir_name};

use crate::mirror::MirrorError;
use crate::state::State;

/// The file in a working directory that names its spec.
pub const NAME_FILE: &str = "lorry-name";

/// What [`open`] did besides finding the directory, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moves {
    pub notes: Vec<String>,
}

/// The working directory of spec `name` in `area`, created when missing,
/// moved from its old name when there is one. `push_key` is the key of the
/// URL this run pushes to (see [`crate::state::push_key`]).
pub fn open(
    area: &Path,
    name: &str,
    push_key: Option<&str>,
) -> Result<(PathBuf, Moves), MirrorError> {
    let new = area.join(working_dir_name(name));
    let legacy = area.join(legacy_working_dir_name(name));
    let mut moves = Moves::default();
    if new.is_dir() {
        match owner(&new) {
            Some(owner) if owner == name => return Ok((new, moves)),
            Some(owner) => {
                return Err(MirrorError::Io {
                    action: "use",
                    path: new,
                    source: std::io::Error::other(format!(
                        "it is the working directory of {owner:?}"
                    )),
                });
            }
            None if new == legacy => {
                // Made before directories were named; the name is the same.
                write_owner(&new, name)?;
                return Ok((new, moves));
            }
            None => {
                // An old-style directory of a spec whose name is this
                // directory's name as written (it contains '%'): moved to
                // that spec's new name, so each keeps its own.
                let old_name = new
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target = area.join(working_dir_name(&old_name));
                if target.exists() {
                    return Err(MirrorError::Io {
                        action: "move out of the way",
                        path: new,
                        source: std::io::Error::other(format!(
                            "it holds the mirror of {old_name:?}, whose directory {} exists too",
                            target.display()
                        )),
                    });
                }
                rename(&new, &target)?;
                write_owner(&target, &old_name)?;
                moves.notes.push(format!(
                    "moved {} to {} (the working directory of {old_name:?})",
                    new.display(),
                    target.display()
                ));
            }
        }
    }
    if new != legacy && legacy.is_dir() && !new.exists() && claimable(&legacy, name, push_key) {
        rename(&legacy, &new)?;
        moves.notes.push(format!(
            "moved working directory {} to {} (directory names are now distinct per lorry)",
            legacy.display(),
            new.display()
        ));
    }
    std::fs::create_dir_all(&new).map_err(|source| MirrorError::Io {
        action: "create",
        path: new.clone(),
        source,
    })?;
    write_owner(&new, name)?;
    Ok((new, moves))
}

/// Whether the old-style directory `legacy` can be taken by `name`: nothing
/// in it says it belongs to another spec.
fn claimable(legacy: &Path, name: &str, push_key: Option<&str>) -> bool {
    if let Some(owner) = owner(legacy) {
        return owner == name;
    }
    match (State::load(legacy).and_then(|s| s.pushed_to), push_key) {
        (Some(recorded), Some(ours)) => recorded == ours,
        _ => true,
    }
}

fn owner(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(NAME_FILE))
        .ok()
        .map(|text| text.trim_end_matches('\n').to_owned())
}

fn write_owner(dir: &Path, name: &str) -> Result<(), MirrorError> {
    if owner(dir).as_deref() == Some(name) {
        return Ok(());
    }
    let path = dir.join(NAME_FILE);
    std::fs::write(&path, format!("{name}\n")).map_err(|source| MirrorError::Io {
        action: "write",
        path,
        source,
    })
}

fn rename(from: &Path, to: &Path) -> Result<(), MirrorError> {
    std::fs::rename(from, to).map_err(|source| MirrorError::Io {
        action: "move",
        path: from.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::push_key;

    fn names(area: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(area)
            .expect("read area")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn colliding_names_get_their_own_directories() {
        let area = tempfile::tempdir().expect("tempdir");
        for name in ["a/b", "a_b", "a%2Fb"] {
            let (dir, _) = open(area.path(), name, None).expect("open");
            assert_eq!(owner(&dir).as_deref(), Some(name));
        }
        assert_eq!(names(area.path()), ["a%252Fb", "a%2Fb", "a_b"]);
        // Opening again finds the same ones.
        let (dir, moves) = open(area.path(), "a/b", None).expect("again");
        assert_eq!(dir, area.path().join("a%2Fb"));
        assert!(moves.notes.is_empty());
    }

    #[test]
    fn an_old_directory_moves_unless_it_is_another_specs() {
        let area = tempfile::tempdir().expect("tempdir");
        let old = area.path().join("up_x");
        std::fs::create_dir_all(old.join("git")).expect("mkdir");
        std::fs::write(old.join("git/marker"), "kept").expect("write");
        let key = push_key("file:///down/up/x.git");
        State {
            pushed_to: Some(key.clone()),
            ..State::default()
        }
        .save(&old)
        .expect("save");
        // Pushing elsewhere: not ours (it is up_x's, say).
        let (dir, moves) = open(area.path(), "up/x", Some("another key")).expect("open");
        assert!(moves.notes.is_empty());
        assert!(old.join("git/marker").exists());
        std::fs::remove_dir_all(&dir).expect("clean");
        // Our push URL: moved with everything in it.
        let (dir, moves) = open(area.path(), "up/x", Some(&key)).expect("open");
        assert_eq!(dir, area.path().join("up%2Fx"));
        assert_eq!(moves.notes.len(), 1, "{moves:?}");
        assert_eq!(
            std::fs::read_to_string(dir.join("git/marker")).expect("moved"),
            "kept"
        );
        assert!(!old.exists());
        // The spec whose new name is the old one starts afresh.
        let (dir, moves) = open(area.path(), "up_x", Some(&key)).expect("open");
        assert_eq!(dir, old);
        assert!(moves.notes.is_empty() && !dir.join("git").exists());
    }

    #[test]
    fn an_old_directory_named_like_a_new_one_is_moved_to_its_owners_new_name() {
        let area = tempfile::tempdir().expect("tempdir");
        // Spec "a%2Fb" had directory "a%2Fb", which is now "a/b"'s name.
        let old = area.path().join("a%2Fb");
        std::fs::create_dir_all(old.join("git")).expect("mkdir");
        let (dir, moves) = open(area.path(), "a/b", None).expect("open");
        assert_eq!(dir, old);
        assert_eq!(moves.notes.len(), 1, "{moves:?}");
        assert!(!dir.join("git").exists());
        let moved = area.path().join("a%252Fb");
        assert!(moved.join("git").is_dir());
        let (dir, moves) = open(area.path(), "a%2Fb", None).expect("open");
        assert_eq!(dir, moved);
        assert!(moves.notes.is_empty());
    }
}
