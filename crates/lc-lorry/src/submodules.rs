//! Submodules named by the mirrored branches: lorry fetches none of them,
//! it reports their URLs so that an admin can add lorries for them.
//!
//! The `.gitmodules` at the tip of every mirrored branch is read (found
//! in-process by [`Git::blobs_at`], each distinct file read once with `git
//! config --blob`, so git's own config syntax decides), and
//! relative URLs (`../other.git`) are resolved against the upstream's URL
//! as git resolves them against the superproject's remote.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lc_git::{Git, GitError};

/// The submodule URLs named by `.gitmodules` at any of `tips`, relative
/// ones resolved against `upstream`.
pub fn urls(
    git: &Git,
    repo: &Path,
    tips: &[&str],
    upstream: &str,
) -> Result<BTreeSet<String>, GitError> {
    let mut found = BTreeSet::new();
    if tips.is_empty() {
        return Ok(found);
    }
    for blob in git.blobs_at(repo, tips, ".gitmodules")? {
        let out = git
            .in_repo(repo)
            .args([
                "config",
                "--blob",
                &blob,
                "--get-regexp",
                r"^submodule\..*\.url$",
            ])
            .output()?;
        // Exit 1: no submodule URL in this file.
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((_, url)) = line.split_once(' ') {
                found.insert(resolve(upstream, url.trim()));
            }
        }
    }
    Ok(found)
}

/// A submodule URL as git resolves it: `./x` and `../x` relative to the
/// superproject's URL, anything else as it is.
pub fn resolve(upstream: &str, url: &str) -> String {
    if !(url.starts_with("./") || url.starts_with("../")) {
        return url.to_owned();
    }
    let mut base = upstream.trim_end_matches('/').to_owned();
    let mut rest = url;
    loop {
        if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("../") {
            rest = r;
            match base.rfind('/') {
                // Never climb above "scheme://host".
                Some(i) if !base[..i].ends_with('/') && !base[..i].is_empty() => base.truncate(i),
                _ => {}
            }
        } else {
            break;
        }
    }
    format!("{base}/{rest}")
}

/// Tips of branches (`refs/heads/`) among `refs`, each oid once.
pub fn branch_tips(refs: &BTreeMap<String, String>) -> Vec<&str> {
    let tips: BTreeSet<&str> = refs
        .iter()
        .filter(|(name, _)| name.starts_with("refs/heads/"))
        .map(|(_, oid)| oid.as_str())
        .collect();
    tips.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_against_the_upstream() {
        let up = "https://h.example/group/project.git";
        assert_eq!(resolve(up, "../lib.git"), "https://h.example/group/lib.git");
        assert_eq!(
            resolve(up, "../../other/lib"),
            "https://h.example/other/lib"
        );
        assert_eq!(resolve(up, "../../../../x"), "https://h.example/x");
        assert_eq!(
            resolve(up, "./sub"),
            "https://h.example/group/project.git/sub"
        );
        assert_eq!(resolve(up, "git://o/x.git"), "git://o/x.git");
        assert_eq!(resolve("git@h:a/b.git", "../c.git"), "git@h:a/c.git");
    }
}
