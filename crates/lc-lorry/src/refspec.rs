//! The refspecs of a git spec: which upstream refs are mirrored, and under
//! which names. The same refspecs name what is fetched and what is pushed.

use std::collections::BTreeMap;

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

/// The refspecs of a spec: the given ones, or all branches and tags.
#[derive(Clone, Debug)]
pub struct Refspecs(Vec<Refspec>);

impl Refspecs {
    pub fn new(texts: Option<&[String]>) -> Result<Self, RefspecError> {
        match texts {
            Some(texts) if !texts.is_empty() => Ok(Self(
                texts
                    .iter()
                    .map(|t| Refspec::parse(t))
                    .collect::<Result<_, _>>()?,
            )),
            _ => Ok(Self::heads_and_tags()),
        }
    }

    pub fn heads_and_tags() -> Self {
        Self(vec![
            Refspec {
                src: "refs/heads/*".into(),
                dst: "refs/heads/*".into(),
            },
            Refspec {
                src: "refs/tags/*".into(),
                dst: "refs/tags/*".into(),
            },
        ])
    }

    /// Upstream refs (name → oid) under their mirror names; the first
    /// refspec that covers a ref wins.
    pub fn map_remote<'a>(
        &self,
        refs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> BTreeMap<String, String> {
        let mut mapped = BTreeMap::new();
        for (name, oid) in refs {
            if let Some(dst) = self.0.iter().find_map(|r| r.map(name)) {
                mapped.entry(dst).or_insert_with(|| oid.to_owned());
            }
        }
        mapped
    }

    /// Whether mirror ref `name` is one the refspecs write.
    pub fn covers(&self, name: &str) -> bool {
        !name.starts_with(LORRY_NAMESPACE) && self.0.iter().any(|r| r.covers_destination(name))
    }

    /// Prefixes to list upstream.
    pub fn src_prefixes(&self) -> Vec<&str> {
        self.0.iter().map(Refspec::src_prefix).collect()
    }

    /// Push refspecs that send every mirrored ref at once (from staging, or
    /// from the mirror's own refs), for a first push into an empty
    /// downstream: one refspec per pattern instead of one per ref. An exact
    /// refspec is left out unless `present(dst)`.
    pub fn push_all(&self, from_staging: bool, present: impl Fn(&str) -> bool) -> Vec<String> {
        self.0
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
            .collect()
    }

    pub fn staging_fetch(&self) -> Vec<String> {
        self.0.iter().map(Refspec::staging_fetch).collect()
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
}
