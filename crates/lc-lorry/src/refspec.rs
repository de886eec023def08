//! The refspecs of a git spec: which upstream refs are mirrored, and under
//! which names. The same refspecs name what is fetched and what is pushed.

use std::collections::{BTreeMap, BTreeSet};

/// Where lorry keeps refs of its own; no refspec may write there.
pub const LORRY_NAMESPACE: &str = "refs/lorry/";
/// Fetched refs wait here until the run has succeeded.
pub const STAGING: &str = "refs/lorry/staging/";
/// Old tips of rewritten or deleted refs.
pub const PRESERVED: &str = "refs/lorry/preserved/";

#[derive(Debug, thiserror::Error)]
pub enum RefspecError {
    #[error("refspec {0:?}: {1}")]
    Invalid(String, &'static str),
    #[error("{0} glob {1:?}: {2}")]
    Glob(&'static str, String, &'static str),
}

/// One mapping from upstream ref names to mirror ref names. `*` matches any
/// run of characters, once on each side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refspec {
    src: String,
    dst: String,
}

impl Refspec {
    /// Parses `[+]src[:dst]`. A source that does not start with `refs/`
    /// names a branch (`master` → `refs/heads/master`); a missing
    /// destination is the source.
    pub fn parse(text: &str) -> Result<Self, RefspecError> {
        let bad = |why| RefspecError::Invalid(text.to_owned(), why);
        let body = text.trim().strip_prefix('+').unwrap_or(text.trim());
        let (src, dst) = match body.split_once(':') {
            Some((src, dst)) => (src, dst),
            None => (body, body),
        };
        if src.is_empty() || dst.is_empty() {
            return Err(bad("both sides must name refs"));
        }
        let src = full_name(src);
        let dst = full_name(dst);
        for side in [&src, &dst] {
            if side.matches('*').count() > 1 {
                return Err(bad("at most one '*' on each side"));
            }
            if side.contains("..")
                || side.contains("//")
                || side.ends_with('/')
                || side.ends_with(".lock")
                || side
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "~^:?[\\".contains(c))
            {
                return Err(bad("not a valid ref name"));
            }
        }
        if src.contains('*') != dst.contains('*') {
            return Err(bad("'*' must appear on both sides or on neither"));
        }
        if dst.starts_with(LORRY_NAMESPACE) {
            return Err(bad("refs/lorry/ is reserved for lorry's own refs"));
        }
        Ok(Self { src, dst })
    }

    /// The mirror name of upstream ref `name`, when this refspec covers it.
    pub fn map(&self, name: &str) -> Option<String> {
        match self.src.split_once('*') {
            None => (name == self.src).then(|| self.dst.clone()),
            Some((prefix, suffix)) => {
                let middle = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
                if middle.is_empty() {
                    return None;
                }
                Some(self.dst.replacen('*', middle, 1))
            }
        }
    }

    /// Whether mirror ref `name` is one this refspec writes.
    pub fn covers_destination(&self, name: &str) -> bool {
        match self.dst.split_once('*') {
            None => name == self.dst,
            Some((prefix, suffix)) => name
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|middle| !middle.is_empty()),
        }
    }

    /// The longest fixed start of the source pattern, for listing.
    pub fn src_prefix(&self) -> &str {
        match self.src.split_once('*') {
            Some((prefix, _)) => prefix,
            None => &self.src,
        }
    }

    /// The fetch refspec that writes this refspec's refs into the staging
    /// namespace.
    pub fn staging_fetch(&self) -> String {
        format!("+{}:{}", self.src, staging_name(&self.dst))
    }
}

/// `master` → `refs/heads/master`; names under `refs/` unchanged.
fn full_name(name: &str) -> String {
    if name.starts_with("refs/") {
        name.to_owned()
    } else {
        format!("refs/heads/{name}")
    }
}

/// The staging ref that holds mirror ref `name` while a run is under way.
pub fn staging_name(name: &str) -> String {
    format!("{STAGING}{}", name.strip_prefix("refs/").unwrap_or(name))
}

/// The mirror ref held by staging ref `name`.
pub fn from_staging(name: &str) -> Option<String> {
    name.strip_prefix(STAGING)
        .map(|rest| format!("refs/{rest}"))
}

/// A glob over full ref names (`include`/`exclude`): `*` matches any run of
/// characters, `/` included (as in git's refspec patterns), `?` any one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn parse(field: &'static str, text: &str) -> Result<Self, RefspecError> {
        let bad = |why| RefspecError::Glob(field, text.to_owned(), why);
        if !(text.starts_with("refs/") || text.starts_with('*') || text.starts_with('?')) {
            return Err(bad(
                "must match full ref names (start with refs/ or a wildcard)",
            ));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("not a valid ref name pattern"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }

    /// The same pattern as a git negative fetch refspec, when git's pattern
    /// syntax (at most one `*`, no `?`) can say it.
    fn as_negative_refspec(&self) -> Option<String> {
        (self.0.matches('*').count() <= 1 && !self.0.contains('?') && self.0.starts_with("refs/"))
            .then(|| format!("^{}", self.0))
    }
}

/// Iterative glob matching with backtracking to the last `*` (linear in
/// practice, never exponential).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The ref filters of a git spec besides its refspecs.
#[derive(Clone, Debug, Default)]
pub struct Filters<'a> {
    pub include: Option<&'a [String]>,
    pub exclude: Option<&'a [String]>,
    pub prune_excluded: bool,
}

/// The refspecs of a spec: the given ones, or all branches and tags, with
/// the upstream refs that negative refspecs (`^refs/pull/*`), `exclude` or
/// a missing `include` match left out.
///
/// Every mirror ref a positive refspec writes is one of three kinds: wanted
/// (its upstream name passes the filters), excluded (it does not), or
/// neither (`refs/lorry/...`). Wanted refs are mirrored; excluded ones are
/// left alone downstream, unless `prune-excluded` makes them count as
/// covered, and so deleted (old tip preserved) like refs gone upstream.
#[derive(Clone, Debug)]
pub struct Refspecs {
    positive: Vec<Refspec>,
    /// Source patterns of `^...` refspecs.
    negative: Vec<Refspec>,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
    prune_excluded: bool,
    /// What the spec said, for [`Refspecs::describe`].
    described: String,
}

impl Refspecs {
    pub fn new(texts: Option<&[String]>) -> Result<Self, RefspecError> {
        Self::with_filters(texts, &Filters::default())
    }

    /// The refspecs `texts` (when none is positive, all branches and tags
    /// are the positive ones) and `filters`.
    pub fn with_filters(
        texts: Option<&[String]>,
        filters: &Filters<'_>,
    ) -> Result<Self, RefspecError> {
        let mut positive = Vec::new();
        let mut negative = Vec::new();
        for text in texts.unwrap_or_default() {
            match text.trim().strip_prefix('^') {
                Some(rest) => {
                    if rest.starts_with('+') || rest.contains(':') {
                        return Err(RefspecError::Invalid(
                            text.clone(),
                            "a negative refspec names source refs only (no '+', no ':')",
                        ));
                    }
                    negative.push(Refspec::parse(rest).map_err(|_| {
                        RefspecError::Invalid(text.clone(), "not a valid negative refspec")
                    })?);
                }
                None => positive.push(Refspec::parse(text)?),
            }
        }
        if positive.is_empty() {
            positive = Self::default_refspecs();
        }
        let globs = |field, list: Option<&[String]>| -> Result<Vec<Glob>, RefspecError> {
            list.unwrap_or_default()
                .iter()
                .map(|g| Glob::parse(field, g))
                .collect()
        };
        let include = globs("include", filters.include)?;
        let exclude = globs("exclude", filters.exclude)?;
        let described = if texts.is_none_or(<[String]>::is_empty)
            && include.is_empty()
            && filters.include.is_none()
            && exclude.is_empty()
            && !filters.prune_excluded
        {
            String::new()
        } else {
            serde_json::json!({
                "refspecs": texts,
                "include": filters.include,
                "exclude": filters.exclude,
                "prune-excluded": filters.prune_excluded,
            })
            .to_string()
        };
        Ok(Self {
            positive,
            negative,
            include,
            exclude,
            prune_excluded: filters.prune_excluded,
            described,
        })
    }

    fn default_refspecs() -> Vec<Refspec> {
        vec![
            Refspec {
                src: "refs/heads/*".into(),
                dst: "refs/heads/*".into(),
            },
            Refspec {
                src: "refs/tags/*".into(),
                dst: "refs/tags/*".into(),
            },
        ]
    }

    pub fn heads_and_tags() -> Self {
        Self {
            positive: Self::default_refspecs(),
            negative: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            prune_excluded: false,
            described: String::new(),
        }
    }

    /// What the spec says about refs: empty for the default, so a record
    /// of an earlier run tells whether the filters have changed since.
    pub fn describe(&self) -> &str {
        &self.described
    }

    /// Whether anything but positive refspecs narrows the refs.
    pub fn has_filters(&self) -> bool {
        !self.negative.is_empty() || !self.include.is_empty() || !self.exclude.is_empty()
    }

    /// Whether upstream ref `name` passes the negative refspecs and the
    /// include/exclude globs.
    pub fn passes(&self, name: &str) -> bool {
        !self.negative.iter().any(|n| n.map(name).is_some())
            && (self.include.is_empty() || self.include.iter().any(|g| g.matches(name)))
            && !self.exclude.iter().any(|g| g.matches(name))
    }

    /// The mirror name of upstream ref `name`, when it is mirrored.
    pub fn wanted(&self, name: &str) -> Option<String> {
        if !self.passes(name) {
            return None;
        }
        self.positive
            .iter()
            .find_map(|r| r.map(name))
            .filter(|dst| !dst.starts_with(LORRY_NAMESPACE))
    }

    /// Upstream refs (name → oid) under their mirror names; the first
    /// refspec that covers a ref wins; filtered-out refs left out.
    pub fn map_remote<'a>(
        &self,
        refs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> BTreeMap<String, String> {
        self.select(refs)
            .into_iter()
            .map(|(_, dst, oid)| (dst, oid))
            .collect()
    }

    /// (upstream name, mirror name, oid) of each mirrored upstream ref, one
    /// per mirror name.
    pub fn select<'a>(
        &self,
        refs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<(String, String, String)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (name, oid) in refs {
            if let Some(dst) = self.wanted(name)
                && seen.insert(dst.clone())
            {
                out.push((name.to_owned(), dst, oid.to_owned()));
            }
        }
        out
    }

    /// The upstream names whose mirror name would be `dst` (one per
    /// positive refspec that writes it).
    fn sources_of<'s>(&'s self, dst: &'s str) -> impl Iterator<Item = String> + 's {
        self.positive.iter().filter_map(move |r| {
            if !r.covers_destination(dst) {
                return None;
            }
            match (r.src.split_once('*'), r.dst.split_once('*')) {
                (Some((sp, ss)), Some((dp, ds))) => {
                    let middle = dst.strip_prefix(dp)?.strip_suffix(ds)?;
                    Some(format!("{sp}{middle}{ss}"))
                }
                _ => Some(r.src.clone()),
            }
        })
    }

    /// Whether mirror ref `name` is one a positive refspec writes from an
    /// upstream ref that passes the filters.
    pub fn selects(&self, name: &str) -> bool {
        !name.starts_with(LORRY_NAMESPACE) && self.sources_of(name).any(|src| self.passes(&src))
    }

    /// Whether mirror ref `name` is lorry's to manage: wanted, or excluded
    /// by the filters when `prune-excluded` says such refs go.
    pub fn covers(&self, name: &str) -> bool {
        if name.starts_with(LORRY_NAMESPACE) {
            return false;
        }
        if self.prune_excluded {
            self.positive.iter().any(|r| r.covers_destination(name))
        } else {
            self.selects(name)
        }
    }

    /// Prefixes to list upstream.
    pub fn src_prefixes(&self) -> Vec<&str> {
        self.positive.iter().map(Refspec::src_prefix).collect()
    }

    /// Push refspecs that send every mirrored ref at once (from staging, or
    /// from the mirror's own refs), for a first push into an empty
    /// downstream: one refspec per pattern instead of one per ref. An exact
    /// refspec is left out unless `present(dst)`. `None` when filters are
    /// set (patterns would also send refs they leave out).
    pub fn push_all(
        &self,
        from_staging: bool,
        present: impl Fn(&str) -> bool,
    ) -> Option<Vec<String>> {
        if self.has_filters() {
            return None;
        }
        Some(
            self.positive
                .iter()
                .filter(|r| r.dst.contains('*') || present(&r.dst))
                .map(|r| {
                    let src = if from_staging {
                        staging_name(&r.dst)
                    } else {
                        r.dst.clone()
                    };
                    format!("{src}:{}", r.dst)
                })
                .collect(),
        )
    }

    /// Fetch refspecs into staging by pattern, with git negative refspecs
    /// for every exclusion git's syntax can say (the rest are fetched and
    /// then left out: [`Refspecs::wanted`] is what decides).
    pub fn staging_fetch(&self) -> Vec<String> {
        let mut out: Vec<String> = self.positive.iter().map(Refspec::staging_fetch).collect();
        out.extend(self.negative.iter().map(|n| format!("^{}", n.src)));
        out.extend(self.exclude.iter().filter_map(Glob::as_negative_refspec));
        out
    }

    /// Whether fetching should name each wanted ref rather than patterns:
    /// with `include`, the patterns would bring every other ref too.
    pub fn fetch_exact(&self) -> bool {
        !self.include.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_map() {
        let r = Refspec::parse("+refs/heads/*:refs/heads/up/*").expect("parse");
        assert_eq!(r.map("refs/heads/main"), Some("refs/heads/up/main".into()));
        assert_eq!(r.map("refs/tags/v1"), None);
        assert!(r.covers_destination("refs/heads/up/x"));
        assert!(!r.covers_destination("refs/heads/x"));
        let r = Refspec::parse("master").expect("parse");
        assert_eq!(r.map("refs/heads/master"), Some("refs/heads/master".into()));
        assert_eq!(
            r.staging_fetch(),
            "+refs/heads/master:refs/lorry/staging/heads/master"
        );
        let r = Refspec::parse("refs/tags/v*-rc:refs/tags/rc/v*").expect("parse");
        assert_eq!(r.map("refs/tags/v1-rc"), Some("refs/tags/rc/v1".into()));
        assert_eq!(r.map("refs/tags/v1"), None);
    }

    #[test]
    fn bad_refspecs_are_rejected() {
        for bad in [
            "",
            ":",
            "a:",
            "refs/*/*:refs/*/*",
            "refs/heads/*:refs/heads/x",
            "refs/heads/*:refs/lorry/*",
            "refs/heads/a b",
            "refs/heads/..",
        ] {
            assert!(Refspec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_is_heads_and_tags() {
        let specs = Refspecs::new(None).expect("default");
        let mapped = specs.map_remote([
            ("refs/heads/a", "1"),
            ("refs/tags/t", "2"),
            ("refs/pull/1/head", "3"),
        ]);
        assert_eq!(mapped.len(), 2);
        assert!(specs.covers("refs/heads/a"));
        assert!(!specs.covers("refs/pull/1/head"));
        assert_eq!(
            from_staging(&staging_name("refs/heads/a")).as_deref(),
            Some("refs/heads/a")
        );
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn negative_refspecs_leave_out_upstream_refs() {
        let texts = strings(&["refs/*:refs/*", "^refs/pull/*", "^refs/heads/secret"]);
        let specs = Refspecs::new(Some(&texts)).expect("parse");
        assert_eq!(
            specs.wanted("refs/heads/main").as_deref(),
            Some("refs/heads/main")
        );
        assert_eq!(specs.wanted("refs/pull/1/head"), None);
        assert_eq!(specs.wanted("refs/heads/secret"), None);
        assert_eq!(specs.wanted("refs/lorry/x"), None);
        assert!(!specs.covers("refs/pull/1/head"));
        assert!(specs.covers("refs/merge-requests/1/head"));
        assert_eq!(
            specs.staging_fetch(),
            strings(&[
                "+refs/*:refs/lorry/staging/*",
                "^refs/pull/*",
                "^refs/heads/secret"
            ])
        );
        assert!(specs.push_all(true, |_| true).is_none());
        // Only negative refspecs: the default positive ones.
        let specs = Refspecs::new(Some(&strings(&["^refs/tags/rc*"]))).expect("parse");
        assert!(specs.wanted("refs/tags/v1").is_some());
        assert!(specs.wanted("refs/tags/rc1").is_none());
        assert!(specs.wanted("refs/pull/1").is_none());
        for bad in ["^+refs/pull/*", "^refs/pull/*:refs/x/*", "^", "^refs/a b"] {
            assert!(Refspecs::new(Some(&strings(&[bad]))).is_err(), "{bad}");
        }
    }

    #[test]
    fn include_and_exclude_globs() {
        let include = strings(&["refs/heads/release/*", "refs/tags/v?.*"]);
        let exclude = strings(&["refs/*/release/*-wip", "refs/tags/*rc*"]);
        let filters = Filters {
            include: Some(&include),
            exclude: Some(&exclude),
            prune_excluded: false,
        };
        let specs = Refspecs::with_filters(None, &filters).expect("parse");
        assert!(specs.wanted("refs/heads/release/1.0").is_some());
        assert!(specs.wanted("refs/heads/release/a/b").is_some());
        assert!(specs.wanted("refs/heads/release/1.1-wip").is_none());
        assert!(specs.wanted("refs/heads/main").is_none());
        assert!(specs.wanted("refs/tags/v1.0").is_some());
        assert!(specs.wanted("refs/tags/v1.0rc1").is_none());
        assert!(specs.wanted("refs/tags/v10.0").is_none());
        assert!(specs.fetch_exact());
        // Excluded refs are not lorry's to delete, unless pruning.
        assert!(!specs.covers("refs/heads/main"));
        let specs = Refspecs::with_filters(
            None,
            &Filters {
                prune_excluded: true,
                ..filters
            },
        )
        .expect("parse");
        assert!(specs.covers("refs/heads/main"));
        assert!(!specs.selects("refs/heads/main"));
        assert!(!specs.covers("refs/pull/1"));
        for bad in ["heads/*", "refs/a b", ""] {
            let list = strings(&[bad]);
            let filters = Filters {
                exclude: Some(&list),
                ..Filters::default()
            };
            assert!(Refspecs::with_filters(None, &filters).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_match_like_shell_globs_across_slashes() {
        for (pattern, name, expect) in [
            ("refs/pull/*", "refs/pull/1/head", true),
            ("refs/pull/*", "refs/pulls/1", false),
            ("refs/*/head", "refs/pull/1/head", true),
            ("refs/*/head", "refs/pull/1/merge", false),
            ("*", "refs/x", true),
            ("refs/tags/v?", "refs/tags/v1", true),
            ("refs/tags/v?", "refs/tags/v10", false),
            (
                "refs/*a*a*a*b",
                "refs/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ] {
            let glob = Glob::parse("exclude", pattern).expect(pattern);
            assert_eq!(glob.matches(name), expect, "{pattern} {name}");
        }
    }

    #[test]
    fn describe_is_empty_only_for_the_default() {
        assert_eq!(Refspecs::new(None).expect("d").describe(), "");
        assert_eq!(Refspecs::new(Some(&[])).expect("d").describe(), "");
        let a = Refspecs::new(Some(&strings(&["^refs/pull/*"]))).expect("a");
        assert_ne!(a.describe(), "");
        let pruned = Refspecs::with_filters(
            Some(&strings(&["^refs/pull/*"])),
            &Filters {
                prune_excluded: true,
                ..Filters::default()
            },
        )
        .expect("b");
        assert_ne!(a.describe(), pruned.describe());
    }
}
