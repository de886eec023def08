//! What each spec's run did: counted while it runs ([`Tally`]), printed at
//! the end of lorry's output as one `lorry: summary: ` line per spec, and
//! written as JSON to `--result-file` ([`lc_api::JobResult`], the format
//! defined once in `lc-api`).

use std::collections::BTreeMap;
use std::path::Path;

use lc_api::{JobResult, PinResult, PreservedRef, Pushed, RefChange, SpecResult};

/// What the run of the current spec has done so far.
#[derive(Debug, Clone)]
pub struct Tally {
    pub refs: Vec<RefChange>,
    pub preserved: Vec<PreservedRef>,
    pub pushed: Pushed,
    /// Submodule URLs of the mirrored branches.
    pub submodules: Vec<String>,
    /// Every mirrored ref after the run, when it is to be reported.
    pub held: Option<BTreeMap<String, String>>,
    /// What became of the snapshot pins asked for.
    pub pins: Vec<PinResult>,
    /// Size of the mirror's object store when the run began.
    objects_before: u64,
    /// Size of the mirror's LFS store when the run began.
    lfs_before: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            refs: Vec::new(),
            preserved: Vec::new(),
            pushed: Pushed::No,
            submodules: Vec::new(),
            held: None,
            pins: Vec::new(),
            objects_before: 0,
            lfs_before: 0,
        }
    }
}

impl Tally {
    /// A tally for a run on the mirror `repo`.
    pub fn start(repo: &Path) -> Self {
        Tally {
            objects_before: objects_size(repo),
            lfs_before: crate::lfs::store(repo).bytes,
            ..Tally::default()
        }
    }

    /// Records the refs that move from `before` to `after`.
    pub fn record_refs(
        &mut self,
        before: &BTreeMap<String, String>,
        after: &BTreeMap<String, String>,
    ) {
        let names: std::collections::BTreeSet<&String> =
            before.keys().chain(after.keys()).collect();
        self.refs = names
            .into_iter()
            .filter(|name| before.get(*name) != after.get(*name))
            .map(|name| RefChange {
                name: name.clone(),
                old: before.get(name).cloned(),
                new: after.get(name).cloned(),
            })
            .collect();
    }

    /// The spec's result, once its run is over.
    pub fn finish(
        self,
        name: &str,
        importer: &str,
        repo: &Path,
        error: Option<String>,
    ) -> SpecResult {
        let lfs_bytes = crate::lfs::store(repo).bytes;
        SpecResult {
            name: name.to_owned(),
            importer: importer.to_owned(),
            ok: error.is_none(),
            error,
            refs: self.refs,
            preserved: self.preserved,
            bytes_received: objects_size(repo).saturating_sub(self.objects_before),
            pushed: self.pushed,
            submodules: self.submodules,
            lfs_bytes_received: lfs_bytes.saturating_sub(self.lfs_before),
            lfs_bytes,
            held: self.held,
            pins: self.pins,
        }
    }
}

/// Bytes of the files under `repo/objects` (0 when there is none).
fn objects_size(repo: &Path) -> u64 {
    let mut total = 0u64;
    let mut todo = vec![repo.join("objects")];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                total = total.saturating_add(meta.len());
            }
        }
    }
    total
}

/// Writes `result` to `file` atomically (a temporary file beside it, then
/// a rename), so a reader never sees half of it.
pub fn write_result(file: &Path, result: &JobResult) -> std::io::Result<()> {
    let text = serde_json::to_string(result).map_err(std::io::Error::other)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_that_moved_appeared_or_went_are_recorded() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut tally = Tally::default();
        tally.record_refs(
            &map(&[
                ("refs/heads/a", "1"),
                ("refs/heads/same", "5"),
                ("refs/tags/gone", "2"),
            ]),
            &map(&[
                ("refs/heads/a", "3"),
                ("refs/heads/same", "5"),
                ("refs/heads/new", "4"),
            ]),
        );
        let names: Vec<&str> = tally.refs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["refs/heads/a", "refs/heads/new", "refs/tags/gone"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let result = tally.finish("x/y", "git", dir.path(), None);
        assert_eq!((result.updated(), result.deleted()), (2, 1));
        assert!(result.ok);
        let file = dir.path().join("result.json");
        write_result(
            &file,
            &JobResult {
                specs: vec![result],
                ..JobResult::default()
            },
        )
        .expect("write");
        let back: JobResult =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
        assert_eq!(back.version, lc_api::JOB_RESULT_VERSION);
        assert_eq!(back.specs[0].refs.len(), 3);
    }
}
