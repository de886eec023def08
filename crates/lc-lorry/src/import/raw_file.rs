//! `raw-file` specs: each URL downloaded once, checked, and committed under
//! its destination.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::download::{client, download, url_file_name};
use super::fast_import::{Entry, FastImport, branch_tip, clean_path};
use super::{ImportError, SpecRun, io};
use crate::Context;
use crate::source::RawFileUrl;

pub(super) fn import_raw_files(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    files: &[RawFileUrl],
) -> Result<(), ImportError> {
    let (git, spec, repo) = (run.git, run.spec, run.repo);
    let cache = run.dir.join("raw-files");
    let mut http = None;
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
        if http.is_none() {
            http = Some(client(run.check_certificates)?);
        }
        let Some(c) = http.as_ref() else { continue };
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
        let mark = if run.lfs {
            // The file into the mirror's LFS store, its pointer into git.
            let oid = match &expected {
                Some(checked) => checked.clone(),
                None => sha256_file(&fresh)?,
            };
            let lfs_dir = repo.join("lfs");
            let pointer = crate::lfs::store_file(repo, &fresh, &oid, size)
                .map_err(io("store in LFS", &lfs_dir))?;
            fi.blob(pointer.as_bytes())
        } else {
            fi.blob_from(&mut reader, size)
                .map_err(io("read", &fresh))?
        };
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
    // `.gitattributes` names each file stored in LFS, and no other: files
    // imported before `lfs: true` stay ordinary blobs, and one imported
    // again without it stops being LFS.
    let before = match &parent {
        Some(tip) => {
            let out = git
                .in_repo(repo)
                .args(["cat-file", "blob", &format!("{tip}:.gitattributes")])
                .output()?;
            if out.status.success() {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                String::new()
            }
        }
        None => String::new(),
    };
    let mut lines: Vec<String> = before.lines().map(str::to_owned).collect();
    for name in &names {
        let line = crate::lfs::attribute_line(name);
        lines.retain(|l| *l != line);
        if run.lfs {
            lines.push(line);
        }
    }
    let after: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if after != before {
        let mark = fi.blob(after.as_bytes());
        entries.push(Entry {
            path: ".gitattributes".into(),
            mode: "100644",
            mark,
        });
    }
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
