//! Specs that are not git: each importer writes `refs/heads/*` and
//! `refs/tags/*` of the bare mirror, and [`crate::mirror`] then treats those
//! refs like fetched ones.
//!
//! * `tarball`, `zip`, `gzip`: the archive is downloaded once into
//!   `<spec dir>/archives/` and imported as one commit on `master` whose
//!   tree is the archive's content (a single top directory stripped), tagged
//!   with the archive's file name; an archive whose tag exists is neither
//!   downloaded nor imported again.
//! * `raw-file`: each URL is downloaded once into `<spec dir>/raw-files/`,
//!   its SHA-256 checked when given, and committed under its `destination`.
//! * `svn` (git-svn), `hg` (git-remote-hg), `bzr` (brz fast-export piped into
//!   git fast-import), `cvs` (git cvsimport into its own repository, then
//!   fetched from). A converter that is not installed is an error naming its
//!   Debian package.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lc_core::redact::redact;
use lc_git::{Git, GitError};
use sha2::{Digest, Sha256};

use crate::Context;
use crate::source::{RawFileUrl, Source, Spec, SvnLayout, bzr_branches};

/// Which kind of archive a tarball-like spec fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ArchiveKind {
    Tar,
    Zip,
    Gzip,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("cannot download {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot import archive {file}: {reason}")]
    Archive { file: PathBuf, reason: String },
    #[error("{url}: sha256sum is {actual}, expected {expected}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: cannot take a file name from this URL")]
    NoFileName { url: String },
    #[error("{tool} is not installed (install the Debian package {package})")]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("{tool} failed: {stderr}")]
    Tool { tool: String, stderr: String },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ImportError {
    let path = path.to_owned();
    move |source| ImportError::Io {
        action,
        path,
        source,
    }
}

/// Runs the importer for `source` into the bare mirror `repo`.
pub fn import(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    source: &Source,
    dir: &Path,
    repo: &Path,
    check_certificates: bool,
) -> Result<(), ImportError> {
    match source {
        Source::Git { .. } => Ok(()),
        Source::Tarball { url } | Source::Zip { url } | Source::Gzip { url } => {
            let kind = match source {
                Source::Zip { .. } => ArchiveKind::Zip,
                Source::Gzip { .. } => ArchiveKind::Gzip,
                _ => ArchiveKind::Tar,
            };
            import_archive(ctx, git, spec, url, kind, dir, repo, check_certificates)
        }
        Source::RawFile { urls } => {
            import_raw_files(ctx, git, spec, urls, dir, repo, check_certificates)
        }
        // TLS verification is switchable for git and HTTP downloads only;
        // svn, hg, bzr and cvs keep their own (verifying) defaults.
        Source::Svn { url, layout } => {
            import_svn(ctx, git, spec, url, &SvnLayout::of(layout.as_ref()), repo)
        }
        Source::Hg { url } => import_hg(ctx, git, spec, url, dir, repo),
        Source::Bzr { url, branches } => {
            let branches = bzr_branches(url.as_deref(), branches.as_ref());
            import_bzr(ctx, git, spec, &branches, dir, repo)
        }
        Source::Cvs { url, module } => import_cvs(ctx, git, spec, url, module, dir, repo),
    }
}

// ---------------------------------------------------------------- downloads

fn client(check_certificates: bool) -> Result<reqwest::blocking::Client, ImportError> {
    // Proxies come from http_proxy/https_proxy/no_proxy, as for git.
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(!check_certificates)
        .connect_timeout(std::time::Duration::from_secs(60))
        .timeout(None)
        .build()
        .map_err(|e| ImportError::Http {
            url: String::new(),
            reason: e.to_string(),
        })
}

/// Downloads `url` to `file` (through `<file>.part`, renamed at the end).
fn download(client: &reqwest::blocking::Client, url: &str, file: &Path) -> Result<(), ImportError> {
    let http = |reason: String| ImportError::Http {
        url: url.to_owned(),
        reason: redact(&reason).into_owned(),
    };
    let mut response = client.get(url).send().map_err(|e| http(chain(&e)))?;
    if !response.status().is_success() {
        return Err(http(format!("HTTP status {}", response.status())));
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    let part = file.with_extension(match file.extension() {
        Some(ext) => format!("{}.part", ext.to_string_lossy()),
        None => "part".to_owned(),
    });
    let mut out = File::create(&part).map_err(io("create", &part))?;
    response.copy_to(&mut out).map_err(|e| http(chain(&e)))?;
    out.sync_all().map_err(io("write", &part))?;
    std::fs::rename(&part, file).map_err(io("rename into place", file))?;
    Ok(())
}

/// An error and its causes, joined by ": " (reqwest's own message leaves
/// out why, e.g. which certificate check failed).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The last path segment of a URL, without query or fragment.
fn url_file_name(url: &str) -> Result<String, ImportError> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = path.split_once("://").map_or(path, |(_, rest)| rest);
    let name = path
        .split_once('/')
        .map(|(_, p)| p)
        .unwrap_or("")
        .rsplit('/')
        .next()
        .unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        return Err(ImportError::NoFileName {
            url: url.to_owned(),
        });
    }
    Ok(name.to_owned())
}

/// A ref name component made from a file name.
fn tag_name(file_name: &str) -> String {
    let mut tag: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    while tag.contains("..") {
        tag = tag.replace("..", "._");
    }
    if tag.starts_with('.') {
        tag.insert(0, '_');
    }
    if tag.ends_with(".lock") || tag.ends_with('.') {
        tag.push('_');
    }
    tag
}

fn sha256_file(file: &Path) -> Result<String, ImportError> {
    let mut f = File::open(file).map_err(io("open", file))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io("read", file))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

// ------------------------------------------------------------- fast-import

/// Writes a git fast-import stream to a running `git fast-import`, as it
/// goes: an archive's content is never held in memory whole.
struct FastImport {
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
struct Entry {
    path: String,
    mode: &'static str,
    mark: usize,
}

impl FastImport {
    fn start(git: &Git, repo: &Path) -> Result<Self, ImportError> {
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
    fn blob(&mut self, data: &[u8]) -> usize {
        self.marks += 1;
        let mark = self.marks;
        self.write(format!("blob\nmark :{mark}\ndata {}\n", data.len()).as_bytes());
        self.write(data);
        self.write(b"\n");
        mark
    }

    /// Adds a blob of exactly `size` bytes read from `reader`; returns its
    /// mark, or the read error.
    fn blob_from(&mut self, reader: &mut dyn Read, size: u64) -> std::io::Result<usize> {
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
    fn commit(
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

    fn tag(&mut self, tag: &str, mark: usize) {
        self.write(format!("reset refs/tags/{tag}\nfrom :{mark}\n\n").as_bytes());
    }

    /// Ends the stream and waits: refs move only if all of it was good.
    fn finish(mut self) -> Result<(), ImportError> {
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
fn clean_path(path: &str) -> Option<String> {
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
fn strip_common_top(entries: &mut [Entry]) {
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

fn branch_tip(git: &Git, repo: &Path, branch: &str) -> Result<Option<String>, GitError> {
    Ok(git.for_each_ref(repo, &[branch])?.remove(branch))
}

// ----------------------------------------------------------------- archives

#[expect(
    clippy::too_many_arguments,
    reason = "one call site, all inputs distinct"
)]
fn import_archive(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    url: &str,
    kind: ArchiveKind,
    dir: &Path,
    repo: &Path,
    check_certificates: bool,
) -> Result<(), ImportError> {
    let file_name = url_file_name(url)?;
    let tag = tag_name(&file_name);
    if !git
        .for_each_ref(repo, &[&format!("refs/tags/{tag}")])?
        .is_empty()
    {
        ctx.log.info(&format!(
            "{}: {file_name} already imported (tag {tag}); not fetched again",
            spec.name
        ));
        return Ok(());
    }
    let file = dir.join("archives").join(&file_name);
    let present = std::fs::metadata(&file)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if !present {
        ctx.log.info(&format!("{}: downloading {url}", spec.name));
        download(&client(check_certificates)?, url, &file)?;
    }
    ctx.log
        .info(&format!("{}: importing {file_name}", spec.name));
    let imported = (|| -> Result<usize, ImportError> {
        let mut fi = FastImport::start(git, repo)?;
        let bad = |reason: String| ImportError::Archive {
            file: file.clone(),
            reason,
        };
        let mut entries = Vec::new();
        let mut when = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        match kind {
            ArchiveKind::Tar => {
                let reader = decompressed(&file)?;
                let mut archive = tar::Archive::new(reader);
                let mut newest = 0u64;
                let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
                for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
                    let mut entry = entry.map_err(|e| bad(e.to_string()))?;
                    let header = entry.header();
                    let raw_path = entry.path().map_err(|e| bad(e.to_string()))?;
                    let Some(path) = clean_path(&raw_path.to_string_lossy()) else {
                        continue;
                    };
                    newest = newest.max(header.mtime().unwrap_or(0));
                    let kind = header.entry_type();
                    let (mode, mark) = if kind.is_file() {
                        let exec = header.mode().unwrap_or(0o644) & 0o111 != 0;
                        let size = entry.size();
                        let mark = fi
                            .blob_from(&mut entry, size)
                            .map_err(|e| bad(e.to_string()))?;
                        (if exec { "100755" } else { "100644" }, mark)
                    } else if kind.is_symlink() {
                        let target = entry
                            .link_name()
                            .map_err(|e| bad(e.to_string()))?
                            .map(|t| t.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        ("120000", fi.blob(target.as_bytes()))
                    } else if kind.is_hard_link() {
                        let target = entry
                            .link_name()
                            .map_err(|e| bad(e.to_string()))?
                            .and_then(|t| clean_path(&t.to_string_lossy()));
                        match target.and_then(|t| by_path.get(&t).copied()) {
                            Some(i) => {
                                let source: &Entry = &entries[i];
                                (source.mode, source.mark)
                            }
                            None => continue,
                        }
                    } else {
                        continue;
                    };
                    if let Some(&i) = by_path.get(&path) {
                        entries[i] = Entry { path, mode, mark };
                    } else {
                        by_path.insert(path.clone(), entries.len());
                        entries.push(Entry { path, mode, mark });
                    }
                }
                if newest > 0 {
                    when = newest as i64;
                }
            }
            ArchiveKind::Zip => {
                let f = File::open(&file).map_err(io("open", &file))?;
                let mut archive = zip::ZipArchive::new(f).map_err(|e| bad(e.to_string()))?;
                for i in 0..archive.len() {
                    let mut entry = archive.by_index(i).map_err(|e| bad(e.to_string()))?;
                    if entry.is_dir() {
                        continue;
                    }
                    let Some(path) = entry
                        .enclosed_name()
                        .and_then(|p| clean_path(&p.to_string_lossy()))
                    else {
                        continue;
                    };
                    let unix = entry.unix_mode().unwrap_or(0o644);
                    let mut data = Vec::new();
                    entry
                        .read_to_end(&mut data)
                        .map_err(|e| bad(e.to_string()))?;
                    let mode = if unix & 0o170000 == 0o120000 {
                        "120000"
                    } else if unix & 0o111 != 0 {
                        "100755"
                    } else {
                        "100644"
                    };
                    entries.push(Entry {
                        path,
                        mode,
                        mark: fi.blob(&data),
                    });
                }
            }
            ArchiveKind::Gzip => {
                let f = File::open(&file).map_err(io("open", &file))?;
                let mut data = Vec::new();
                flate2::read::MultiGzDecoder::new(f)
                    .read_to_end(&mut data)
                    .map_err(|e| bad(e.to_string()))?;
                let inner = file_name
                    .strip_suffix(".gz")
                    .or_else(|| file_name.strip_suffix(".gzip"))
                    .unwrap_or(&file_name);
                let path = clean_path(inner).unwrap_or_else(|| "file".to_owned());
                entries.push(Entry {
                    path,
                    mode: "100644",
                    mark: fi.blob(&data),
                });
            }
        }
        if kind != ArchiveKind::Gzip {
            strip_common_top(&mut entries);
        }
        let parent = branch_tip(git, repo, "refs/heads/master")?;
        let mark = fi.commit(
            "refs/heads/master",
            parent.as_deref(),
            when,
            &format!("Import {file_name}"),
            &entries,
            true,
        );
        fi.tag(&tag, mark);
        fi.finish()?;
        Ok(entries.len())
    })();
    match imported {
        Ok(count) => {
            ctx.log.note(&format!(
                "{}: imported {file_name} ({count} files) as tag {tag}",
                spec.name
            ));
            Ok(())
        }
        Err(e) => {
            // A bad download is fetched again next time.
            let _ = std::fs::remove_file(&file);
            Err(e)
        }
    }
}

/// The content of a tar file, decompressed according to its first bytes.
fn decompressed(file: &Path) -> Result<Box<dyn Read>, ImportError> {
    let mut f = File::open(file).map_err(io("open", file))?;
    let mut magic = [0u8; 6];
    let n = f.read(&mut magic).map_err(io("read", file))?;
    let f = File::open(file).map_err(io("open", file))?;
    let magic = &magic[..n];
    if magic.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(flate2::read::MultiGzDecoder::new(f)));
    }
    let tool = if magic.starts_with(b"BZh") {
        Some(("bzip2", "bzip2"))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(("xz", "xz-utils"))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(("zstd", "zstd"))
    } else {
        None
    };
    match tool {
        None => Ok(Box::new(f)),
        Some((program, package)) => {
            let mut child = Command::new(program)
                .arg("-dc")
                .stdin(f)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => ImportError::MissingTool {
                        tool: program_name(program),
                        package: program_name(package),
                    },
                    _ => ImportError::Io {
                        action: "decompress",
                        path: file.to_owned(),
                        source: e,
                    },
                })?;
            let stdout = child.stdout.take();
            Ok(Box::new(Decompressor {
                child,
                stdout,
                program: program_name(program),
            }))
        }
    }
}

/// The output of a decompressing program, read as it comes; its failure
/// shows as a read error at the end.
struct Decompressor {
    child: std::process::Child,
    stdout: Option<std::process::ChildStdout>,
    program: &'static str,
}

impl Read for Decompressor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(stdout) = self.stdout.as_mut() else {
            return Ok(0);
        };
        let n = stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.stdout = None;
            let status = self.child.wait()?;
            if !status.success() {
                return Err(std::io::Error::other(format!(
                    "{} -dc failed ({status})",
                    self.program
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        if self.stdout.take().is_some() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn program_name(name: &str) -> &'static str {
    match name {
        "bzip2" => "bzip2",
        "xz" => "xz",
        "xz-utils" => "xz-utils",
        "zstd" => "zstd",
        _ => "?",
    }
}

// ---------------------------------------------------------------- raw files

fn import_raw_files(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    files: &[RawFileUrl],
    dir: &Path,
    repo: &Path,
    check_certificates: bool,
) -> Result<(), ImportError> {
    let cache = dir.join("raw-files");
    let mut client = None;
    let mut fi = FastImport::start(git, repo)?;
    let mut entries = Vec::new();
    let mut names = Vec::new();
    let mut downloaded = Vec::new();
    for raw in files {
        let file_name = url_file_name(&raw.url)?;
        let repo_path = match &raw.destination {
            Some(d) => clean_path(&format!("{d}/{file_name}")),
            None => clean_path(&file_name),
        }
        .ok_or_else(|| ImportError::NoFileName {
            url: raw.url.clone(),
        })?;
        let cached = cache.join(&repo_path);
        let expected = raw
            .sha256sum
            .as_ref()
            .map(|s| s.trim().to_ascii_lowercase());
        if cached.is_file() {
            let matches = match &expected {
                Some(e) => &sha256_file(&cached)? == e,
                None => true,
            };
            if matches {
                continue;
            }
        }
        ctx.log
            .info(&format!("{}: downloading {}", spec.name, raw.url));
        if client.is_none() {
            client = Some(client_for(check_certificates)?);
        }
        let Some(c) = client.as_ref() else { continue };
        let fresh = cache.join(format!("{repo_path}.download"));
        download(c, &raw.url, &fresh)?;
        if let Some(expected) = &expected {
            let actual = sha256_file(&fresh)?;
            if &actual != expected {
                let _ = std::fs::remove_file(&fresh);
                return Err(ImportError::Checksum {
                    url: raw.url.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let mut reader = File::open(&fresh).map_err(io("open", &fresh))?;
        let size = reader.metadata().map_err(io("read", &fresh))?.len();
        let mark = fi
            .blob_from(&mut reader, size)
            .map_err(io("read", &fresh))?;
        entries.push(Entry {
            path: repo_path.clone(),
            mode: "100644",
            mark,
        });
        names.push(repo_path);
        // Into the cache (which means "imported") only once committed.
        downloaded.push((fresh, cached));
    }
    if entries.is_empty() {
        ctx.log
            .info(&format!("{}: every file already imported", spec.name));
        return Ok(());
    }
    let parent = branch_tip(git, repo, "refs/heads/master")?;
    let when = jiff::Timestamp::now().as_second();
    fi.commit(
        "refs/heads/master",
        parent.as_deref(),
        when,
        &format!("Import {}", names.join(", ")),
        &entries,
        false,
    );
    fi.finish()?;
    for (fresh, cached) in downloaded {
        std::fs::rename(&fresh, &cached).map_err(io("rename into place", &cached))?;
    }
    ctx.log.note(&format!(
        "{}: imported {} files: {}",
        spec.name,
        names.len(),
        names.join(", ")
    ));
    Ok(())
}

fn client_for(check_certificates: bool) -> Result<reqwest::blocking::Client, ImportError> {
    client(check_certificates)
}

// ------------------------------------------------------------ converters

/// Runs a converter that is not git, with HOME inside the spec's directory
/// so that no user configuration leaks in.
fn tool(program: &'static str, package: &'static str, home: &Path) -> Result<Command, ImportError> {
    if !on_path(program) {
        return Err(ImportError::MissingTool {
            tool: program,
            package,
        });
    }
    std::fs::create_dir_all(home).map_err(io("create", home))?;
    let mut cmd = Command::new(program);
    cmd.env("HOME", home)
        .env("LC_ALL", "C")
        .env("HGPLAIN", "1")
        .env("BRZ_LOG", "/dev/null")
        .stdin(Stdio::null());
    Ok(cmd)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn run_tool(mut cmd: Command, name: &str) -> Result<std::process::Output, ImportError> {
    let output = cmd.output().map_err(|e| ImportError::Tool {
        tool: name.to_owned(),
        stderr: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(ImportError::Tool {
            tool: name.to_owned(),
            stderr: redact(String::from_utf8_lossy(&output.stderr).trim()).into_owned(),
        });
    }
    Ok(output)
}

/// Whether a git subcommand (a script such as `git svn`) can run.
fn git_subcommand_works(git: &Git, args: &[&str]) -> bool {
    let mut cmd = git.command();
    cmd.args(args);
    matches!(cmd.output(), Ok(out) if out.status.success())
}

fn import_svn(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    url: &str,
    layout: &SvnLayout,
    repo: &Path,
) -> Result<(), ImportError> {
    if !git_subcommand_works(git, &["svn", "--version"]) {
        return Err(ImportError::MissingTool {
            tool: "git svn",
            package: "git-svn",
        });
    }
    let configured = {
        let mut cmd = git.in_repo(repo);
        cmd.args(["config", "--get", "svn-remote.svn.url"]);
        matches!(cmd.output(), Ok(out) if out.status.success())
    };
    if !configured {
        let mut init = git.in_repo(repo);
        init.args([
            "svn",
            "init",
            "--svn-remote=svn",
            "--no-minimize-url",
            "--",
            url,
        ]);
        init.run()?;
        let set = |key: &str, value: String| -> Result<(), GitError> {
            let mut cmd = git.in_repo(repo);
            cmd.args(["config", "--replace-all", key, &value]);
            cmd.run().map(|_| ())
        };
        set(
            "svn-remote.svn.fetch",
            format!("{}:refs/heads/master", layout.trunk),
        )?;
        if let Some(branches) = &layout.branches {
            set(
                "svn-remote.svn.branches",
                format!("{branches}:refs/heads/*"),
            )?;
        }
        if let Some(tags) = &layout.tags {
            set("svn-remote.svn.tags", format!("{tags}:refs/tags/*"))?;
        }
    }
    ctx.log
        .info(&format!("{}: git svn fetch from {url}", spec.name));
    let mut fetch = git.in_repo(repo);
    fetch.env("GIT_DIR", repo.as_os_str());
    fetch.args(["svn", "fetch", "--quiet", "--quiet"]);
    fetch.run()?;
    Ok(())
}

fn import_hg(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    url: &str,
    dir: &Path,
    repo: &Path,
) -> Result<(), ImportError> {
    if !on_path("hg") {
        return Err(ImportError::MissingTool {
            tool: "hg",
            package: "mercurial",
        });
    }
    if !on_path("git-remote-hg") {
        return Err(ImportError::MissingTool {
            tool: "git-remote-hg",
            package: "git-remote-hg",
        });
    }
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(io("create", &home))?;
    ctx.log.info(&format!("{}: fetching hg::{url}", spec.name));
    let mut fetch = git.in_repo(repo);
    fetch.env("HOME", home.as_os_str()).env("HGPLAIN", "1");
    fetch.args([
        "fetch",
        "--prune",
        "--no-tags",
        "--quiet",
        &format!("hg::{url}"),
        "+refs/heads/*:refs/heads/*",
        "+refs/tags/*:refs/tags/*",
    ]);
    fetch.run()?;
    Ok(())
}

fn import_bzr(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    branches: &BTreeMap<String, String>,
    dir: &Path,
    repo: &Path,
) -> Result<(), ImportError> {
    let home = dir.join("home");
    let bzr_dir = dir.join("bzr");
    for (branch, url) in branches {
        let safe = tag_name(branch);
        let local = bzr_dir.join(&safe);
        let mut get = tool("brz", "brz", &home)?;
        if local.join(".bzr").is_dir() {
            get.args(["pull", "--quiet", "--overwrite", "-d"])
                .arg(&local)
                .arg(url);
        } else {
            std::fs::create_dir_all(&bzr_dir).map_err(io("create", &bzr_dir))?;
            get.args(["branch", "--quiet", "--no-tree", url])
                .arg(&local);
        }
        ctx.log
            .info(&format!("{}: brz {branch} from {url}", spec.name));
        run_tool(get, "brz")?;

        // brz 3.3's fast-export fails on incremental runs with marks
        // (KeyError b'null:'), so every run exports the whole branch; the
        // commits come out identical, so unchanged history keeps its ids.
        let mut export = tool("brz", "brz", &home)?;
        export
            .arg("fast-export")
            .arg("--quiet")
            .arg(format!("--git-branch={branch}"))
            .arg(&local)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut exporter = export.spawn().map_err(|e| ImportError::Tool {
            tool: "brz fast-export".into(),
            stderr: e.to_string(),
        })?;
        let Some(stream) = exporter.stdout.take() else {
            return Err(ImportError::Tool {
                tool: "brz fast-export".into(),
                stderr: "no output pipe".into(),
            });
        };
        let mut import = git.in_repo(repo);
        import.args(["fast-import", "--quiet", "--force"]);
        let child = import.spawn_with_stdin(Stdio::from(stream))?;
        let imported = import.wait(child);
        let exported = exporter.wait_with_output().map_err(|e| ImportError::Tool {
            tool: "brz fast-export".into(),
            stderr: e.to_string(),
        })?;
        if !exported.status.success() {
            let stderr = String::from_utf8_lossy(&exported.stderr).into_owned();
            if stderr.contains("Unable to import library \"fastimport\"") {
                return Err(ImportError::MissingTool {
                    tool: "the fastimport module of brz fast-export",
                    package: "python3-fastimport",
                });
            }
            if !brz_plugin_present(&home) {
                return Err(ImportError::MissingTool {
                    tool: "brz fast-export",
                    package: "brz",
                });
            }
            return Err(ImportError::Tool {
                tool: "brz fast-export".into(),
                stderr: redact(stderr.trim()).into_owned(),
            });
        }
        imported?;
    }
    Ok(())
}

fn brz_plugin_present(home: &Path) -> bool {
    let Ok(mut cmd) = tool("brz", "brz", home) else {
        return false;
    };
    cmd.args(["help", "fast-export"]);
    matches!(cmd.output(), Ok(out) if out.status.success())
}

fn import_cvs(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    url: &str,
    module: &str,
    dir: &Path,
    repo: &Path,
) -> Result<(), ImportError> {
    if !on_path("cvs") {
        return Err(ImportError::MissingTool {
            tool: "cvs",
            package: "cvs",
        });
    }
    if !on_path("cvsps") {
        return Err(ImportError::MissingTool {
            tool: "cvsps",
            package: "cvsps",
        });
    }
    if !git_subcommand_works(git, &["cvsimport", "-h"]) && !cvsimport_present(git) {
        return Err(ImportError::MissingTool {
            tool: "git cvsimport",
            package: "git-cvs",
        });
    }
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(io("create", &home))?;
    // git cvsimport keeps its own repository (it only creates one that does
    // not exist yet, and reads its own refs for incremental runs); the
    // mirror then fetches from it like from any git upstream.
    let cvs_git = dir.join("cvs-git");
    ctx.log
        .info(&format!("{}: git cvsimport {module} from {url}", spec.name));
    let mut import = git.command();
    import
        .env("HOME", home.as_os_str())
        .env("CVS_RSH", "ssh")
        .current_dir(dir);
    import.args(["cvsimport", "-i", "-a", "-o", "master", "-d", url, "-C"]);
    import.arg(cvs_git.as_os_str()).arg(module);
    import.run()?;
    let from = format!("file://{}", cvs_git.display());
    git.fetch(
        repo,
        &from,
        &[
            "+refs/heads/*:refs/heads/*".to_owned(),
            "+refs/tags/*:refs/tags/*".to_owned(),
        ],
    )?;
    Ok(())
}

/// `git cvsimport -h` exits non-zero even when installed; tell "not
/// installed" from "usage" by git's own message.
fn cvsimport_present(git: &Git) -> bool {
    let mut cmd = git.command();
    cmd.args(["cvsimport", "-h"]);
    match cmd.output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stderr);
            !text.contains("is not a git command")
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            url_file_name("http://h/a/b-1.0.tar.gz?x=1").expect("name"),
            "b-1.0.tar.gz"
        );
        assert!(url_file_name("http://h/").is_err());
        assert!(url_file_name("http://h").is_err());
        assert!(url_file_name("http://h/..").is_err());
    }

    #[test]
    fn tag_names_are_valid_refs() {
        assert_eq!(tag_name("foo-1.0.tar.gz"), "foo-1.0.tar.gz");
        assert_eq!(tag_name("a b:c"), "a_b_c");
        assert_eq!(tag_name(".hidden"), "_.hidden");
        assert_eq!(tag_name("x.lock"), "x.lock_");
        assert!(!tag_name("a..b").contains(".."));
    }

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

#[cfg(test)]
mod tool_tests {
    use super::*;

    #[test]
    fn a_missing_converter_names_its_debian_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = tool("lorry-no-such-converter", "lorry-converter-pkg", dir.path())
            .expect_err("not installed");
        let text = err.to_string();
        assert!(text.contains("lorry-no-such-converter"), "{text}");
        assert!(
            text.contains("Debian package lorry-converter-pkg"),
            "{text}"
        );
    }
}
