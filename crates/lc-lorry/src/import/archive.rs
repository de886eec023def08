//! `tarball`, `zip` and `gzip` specs: one download, one commit, one tag.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use super::download::{client, download, tag_name, url_file_name};
use super::fast_import::{Entry, FastImport, branch_tip, clean_path, strip_common_top};
use super::{ImportError, SpecRun, io};
use crate::Context;

/// Which kind of archive a tarball-like spec fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArchiveKind {
    Tar,
    Zip,
    Gzip,
}

pub(super) fn import_archive(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    url: &str,
    kind: ArchiveKind,
) -> Result<(), ImportError> {
    let (git, spec, repo) = (run.git, run.spec, run.repo);
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
    let file = run.dir.join("archives").join(&file_name);
    let present = std::fs::metadata(&file)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if !present {
        ctx.log.info(&format!("{}: downloading {url}", spec.name));
        download(&client(run.check_certificates)?, url, &file)?;
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
#[expect(
    clippy::disallowed_methods,
    reason = "bzip2, xz and zstd tarballs go through the standard programs"
)]
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
