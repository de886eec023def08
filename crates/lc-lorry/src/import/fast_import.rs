//! A `git fast-import` fed as the stream is made, and the paths it is given.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use lc_git::{Git, GitError};

use super::ImportError;

/// Writes a git fast-import stream to a running `git fast-import`, as it
/// goes: an archive's content is never held in memory whole.
pub(super) struct FastImport {
    cmd: lc_git::GitCommand,
    /// `None` once finished; a dropped, unfinished import is killed and no
    /// ref moves (the stream never said `done`).
    child: Option<std::process::Child>,
    sink: Option<std::io::BufWriter<std::process::ChildStdin>>,
    /// The first write that failed (fast-import died); reported by
    /// [`FastImport::finish`], after fast-import's own complaint.
    failed: Option<std::io::Error>,
    marks: usize,
}

/// A file for a commit: its path, mode and blob mark.
pub(super) struct Entry {
    pub(super) path: String,
    pub(super) mode: &'static str,
    pub(super) mark: usize,
}

impl FastImport {
    pub(super) fn start(git: &Git, repo: &Path) -> Result<Self, ImportError> {
        let mut cmd = git.in_repo(repo);
        cmd.args(["fast-import", "--quiet", "--done"]);
        let mut child = cmd.spawn_with_stdin(Stdio::piped())?;
        let sink = child.stdin.take().map(std::io::BufWriter::new);
        Ok(Self {
            cmd,
            child: Some(child),
            sink,
            failed: None,
            marks: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if let Some(sink) = self.sink.as_mut()
            && let Err(e) = std::io::Write::write_all(sink, bytes)
        {
            self.failed = Some(e);
        }
    }

    /// Adds a blob; returns its mark.
    pub(super) fn blob(&mut self, data: &[u8]) -> usize {
        self.marks += 1;
        let mark = self.marks;
        self.write(format!("blob\nmark :{mark}\ndata {}\n", data.len()).as_bytes());
        self.write(data);
        self.write(b"\n");
        mark
    }

    /// Adds a blob of exactly `size` bytes read from `reader`; returns its
    /// mark, or the read error.
    pub(super) fn blob_from(&mut self, reader: &mut dyn Read, size: u64) -> std::io::Result<usize> {
        self.marks += 1;
        let mark = self.marks;
        self.write(format!("blob\nmark :{mark}\ndata {size}\n").as_bytes());
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "archive member shorter than its header says",
                ));
            }
            self.write(&buf[..n]);
            left -= n as u64;
        }
        self.write(b"\n");
        Ok(mark)
    }

    /// Adds a commit on `branch` (child of `parent`, if any); with
    /// `replace`, the tree is exactly `entries`, otherwise `entries` are
    /// added to the parent's tree. Returns the commit's mark.
    pub(super) fn commit(
        &mut self,
        branch: &str,
        parent: Option<&str>,
        when: i64,
        message: &str,
        entries: &[Entry],
        replace: bool,
    ) -> usize {
        self.marks += 1;
        let mark = self.marks;
        let mut s = String::new();
        s.push_str(&format!("commit {branch}\nmark :{mark}\n"));
        s.push_str(&format!("committer Lorry <lorry@localhost> {when} +0000\n"));
        s.push_str(&format!("data {}\n{message}\n", message.len()));
        if let Some(parent) = parent {
            s.push_str(&format!("from {parent}\n"));
        }
        if replace {
            s.push_str("deleteall\n");
        }
        for entry in entries {
            s.push_str(&format!(
                "M {} :{} {}\n",
                entry.mode,
                entry.mark,
                quote_path(&entry.path)
            ));
        }
        s.push('\n');
        self.write(s.as_bytes());
        mark
    }

    pub(super) fn tag(&mut self, tag: &str, mark: usize) {
        self.write(format!("reset refs/tags/{tag}\nfrom :{mark}\n\n").as_bytes());
    }

    /// Ends the stream and waits: refs move only if all of it was good.
    pub(super) fn finish(mut self) -> Result<(), ImportError> {
        self.write(b"done\n");
        if let Some(mut sink) = self.sink.take()
            && let Err(e) = std::io::Write::flush(&mut sink)
            && self.failed.is_none()
        {
            self.failed = Some(e);
        }
        if let Some(child) = self.child.take() {
            self.cmd.wait(child)?;
        }
        match self.failed.take() {
            Some(e) => Err(ImportError::Tool {
                tool: "git fast-import".into(),
                stderr: e.to_string(),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for FastImport {
    fn drop(&mut self) {
        self.sink.take();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A path as fast-import reads it: C-quoted when it has to be.
fn quote_path(path: &str) -> String {
    if !path.contains(['"', '\\', '\n']) && !path.starts_with('"') {
        return path.to_owned();
    }
    let mut quoted = String::from("\"");
    for c in path.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A path from an archive, made safe: no leading '/', no '.' or '..'
/// parts. `None` for paths that must be skipped.
pub(super) fn clean_path(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => return None,
            ".git" => return None,
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

/// Strips the single top directory that every path shares, if any.
pub(super) fn strip_common_top(entries: &mut [Entry]) {
    let Some(first) = entries.first() else { return };
    let Some((top, _)) = first.path.split_once('/') else {
        return;
    };
    let prefix = format!("{top}/");
    if entries.iter().all(|e| e.path.starts_with(&prefix)) {
        for e in entries.iter_mut() {
            e.path = e.path[prefix.len()..].to_owned();
        }
    }
}

pub(super) fn branch_tip(git: &Git, repo: &Path, branch: &str) -> Result<Option<String>, GitError> {
    Ok(git.for_each_ref(repo, &[branch])?.remove(branch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_are_cleaned() {
        assert_eq!(clean_path("./a//b").as_deref(), Some("a/b"));
        assert_eq!(clean_path("/abs/x").as_deref(), Some("abs/x"));
        assert_eq!(clean_path("a/../../etc"), None);
        assert_eq!(clean_path("x/.git/config"), None);
        assert_eq!(clean_path("."), None);
        assert_eq!(quote_path("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(quote_path("plain"), "plain");
    }

    #[test]
    fn common_top_directory_is_stripped() {
        let mut e = vec![
            Entry {
                path: "pkg-1/a".into(),
                mode: "100644",
                mark: 1,
            },
            Entry {
                path: "pkg-1/b/c".into(),
                mode: "100644",
                mark: 2,
            },
        ];
        strip_common_top(&mut e);
        assert_eq!(e[0].path, "a");
        assert_eq!(e[1].path, "b/c");
        let mut e = vec![
            Entry {
                path: "a/x".into(),
                mode: "100644",
                mark: 1,
            },
            Entry {
                path: "b".into(),
                mode: "100644",
                mark: 2,
            },
        ];
        strip_common_top(&mut e);
        assert_eq!(e[0].path, "a/x");
    }
}
