//! What one spec of a `.lorry` file asks `lorry` to mirror: the spec as
//! [`lc_base::spec`] parsed it (see [`crate::specs`]), plus the two things
//! the importers resolve further, svn's layout and bzr's branches.

use std::collections::BTreeMap;

use lc_base::spec::LorrySpec;
pub use lc_base::spec::{OnRewrite, RawFileUrl, Source};

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

    /// The layout a spec's `layout` names: none or `"standard"` (the only
    /// name lc-core lets through) is the standard one.
    pub fn of(layout: Option<&lc_base::spec::SvnLayout>) -> Self {
        match layout {
            Some(lc_base::spec::SvnLayout::Custom {
                trunk,
                branches,
                tags,
            }) => Self {
                trunk: trunk.clone(),
                branches: branches.clone(),
                tags: tags.clone(),
            },
            None | Some(lc_base::spec::SvnLayout::Named(_)) => Self::standard(),
        }
    }
}

/// A bzr spec's branches, name → URL: `url` is `master`, and `branches` adds
/// to it (or replaces it).
pub fn bzr_branches(
    url: Option<&str>,
    branches: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    if let Some(url) = url {
        all.insert("master".to_owned(), url.to_owned());
    }
    all.extend(
        branches
            .into_iter()
            .flatten()
            .map(|(b, u)| (b.clone(), u.clone())),
    );
    all
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
    /// Overrides `--lfs-default` for this spec.
    pub lfs: Option<bool>,
    /// Snapshot pins the webapp asked for (see [`crate::pins`]).
    pub pins: crate::pins::Pins,
    /// Entries of `snapshot-pins` / `snapshot-unpins` left out, and why.
    pub pin_problems: Vec<String>,
}

impl Spec {
    pub fn new(name: String, spec: LorrySpec) -> Self {
        let (pins, pin_problems) = crate::pins::Pins::of(&spec.raw);
        Self {
            name,
            source: spec.source,
            on_rewrite: spec.on_rewrite,
            check_certificates: spec.check_certificates,
            lfs: spec.lfs,
            pins,
            pin_problems,
        }
    }
}
