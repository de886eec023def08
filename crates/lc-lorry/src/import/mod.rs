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
//!
//! `download` and `fast_import` are the pieces the importers share; each
//! other module is one kind of source.

mod archive;
mod converters;
mod download;
mod fast_import;
mod raw_file;

use std::path::{Path, PathBuf};

use lc_git::GitError;

use crate::source::{Source, SvnLayout, bzr_branches};
use crate::{Context, SpecRun};
use archive::ArchiveKind;

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

/// Runs the importer of `run.spec`'s source into its bare mirror.
pub fn import(ctx: &mut Context<'_>, run: &SpecRun<'_>) -> Result<(), ImportError> {
    match &run.spec.source {
        Source::Git { .. } => Ok(()),
        Source::Tarball { url } => archive::import_archive(ctx, run, url, ArchiveKind::Tar),
        Source::Zip { url } => archive::import_archive(ctx, run, url, ArchiveKind::Zip),
        Source::Gzip { url } => archive::import_archive(ctx, run, url, ArchiveKind::Gzip),
        Source::RawFile { urls } => raw_file::import_raw_files(ctx, run, urls),
        // TLS verification is switchable for git and HTTP downloads only;
        // svn, hg, bzr and cvs keep their own (verifying) defaults.
        Source::Svn { url, layout } => {
            converters::import_svn(ctx, run, url, &SvnLayout::of(layout.as_ref()))
        }
        Source::Hg { url } => converters::import_hg(ctx, run, url),
        Source::Bzr { url, branches } => {
            let branches = bzr_branches(url.as_deref(), branches.as_ref());
            converters::import_bzr(ctx, run, &branches)
        }
        Source::Cvs { url, module } => converters::import_cvs(ctx, run, url, module),
    }
}
