//! What one spec of a `.lorry` file asks `lorry` to mirror, in the form the
//! mirroring code uses. Built from `lc_core::spec` (see [`crate::specs`]).

use std::collections::BTreeMap;

/// What to do when an upstream ref is force-updated or deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnRewrite {
    /// Keep the old tip downstream under `refs/lorry/preserved/...`, then
    /// move the ref.
    #[default]
    Preserve,
    /// Move the ref; the old tip may be lost.
    Follow,
    /// Leave the ref as it was and fail the job.
    Refuse,
}

/// Which kind of archive a tarball-like spec fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    Zip,
    Gzip,
}

/// One file of a `raw-file` spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFile {
    pub url: String,
    /// Directory in the repository; the root when `None`.
    pub destination: Option<String>,
    pub sha256sum: Option<String>,
}

/// Where the trunk, branches and tags of a Subversion repository are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvnLayout {
    pub trunk: String,
    pub branches: Option<String>,
    pub tags: Option<String>,
}

impl SvnLayout {
    pub fn standard() -> Self {
        Self {
            trunk: "trunk".into(),
            branches: Some("branches/*".into()),
            tags: Some("tags/*".into()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Git {
        url: String,
        refspecs: Option<Vec<String>>,
    },
    Archive {
        url: String,
        kind: ArchiveKind,
    },
    RawFiles(Vec<RawFile>),
    Svn {
        url: String,
        layout: SvnLayout,
    },
    Hg {
        url: String,
    },
    Bzr {
        /// Branch name → URL (`url` alone becomes `master`).
        branches: BTreeMap<String, String>,
    },
    Cvs {
        url: String,
        module: String,
    },
}

impl Source {
    pub fn type_name(&self) -> &'static str {
        match self {
            Source::Git { .. } => "git",
            Source::Archive {
                kind: ArchiveKind::Tar,
                ..
            } => "tarball",
            Source::Archive {
                kind: ArchiveKind::Zip,
                ..
            } => "zip",
            Source::Archive {
                kind: ArchiveKind::Gzip,
                ..
            } => "gzip",
            Source::RawFiles(_) => "raw-file",
            Source::Svn { .. } => "svn",
            Source::Hg { .. } => "hg",
            Source::Bzr { .. } => "bzr",
            Source::Cvs { .. } => "cvs",
        }
    }
}

/// One named spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The repository's path downstream, e.g. `delta/linux`.
    pub name: String,
    pub source: Source,
    pub on_rewrite: OnRewrite,
    /// Overrides `--check-certificates` for this spec.
    pub check_certificates: Option<bool>,
}
