//! Batch checks: a minion takes many due git lorries at once, lists each
//! upstream with a bounded `git ls-remote`, and reports what it found in
//! one request (see ARCH.md, "Batch checks").
//!
//! The wire: give-me-job with `batch=N` may answer `{"job_id": null,
//! "batch": BatchJob}`; the minion writes a [`BatchSpec`] for `lorry
//! --check-refs`, which writes a [`BatchResult`]; the minion sends that as
//! the `result` of the final job-update of the batch's `job_id`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The most lorries one batch holds, whatever a minion asks for.
pub const BATCH_MAX: usize = 500;

/// What give-me-job hands a minion that asked for a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJob {
    /// The id the batch is reported under (job-update): the hold of its
    /// first lorry.
    pub job_id: i64,
    /// Seconds the whole batch may take; past it the webapp asks for it
    /// to be killed.
    pub timeout: i64,
    pub lorries: Vec<BatchLorry>,
}

/// One lorry of a batch: its path and upstream URL (which may hold a
/// credential: the minion keeps it out of argv and output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLorry {
    pub path: String,
    pub url: String,
}

/// What `lorry --check-refs FILE` reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSpec {
    /// How many `ls-remote`s run at once.
    pub parallel: usize,
    /// Seconds one `ls-remote` may take before it is killed.
    pub ls_remote_timeout: u64,
    /// Seconds from lorry's start after which no `ls-remote` is started
    /// (those not started are reported as errors).
    pub deadline: u64,
    pub lorries: Vec<BatchLorry>,
}

/// What `lorry --check-refs` writes (`--result-file`): one check per
/// lorry, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    pub version: u32,
    pub checks: Vec<BatchCheck>,
}

/// One lorry's listing: the [`refs_digest`] of its heads and tags, or why
/// there is none (redacted, one line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCheck {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether a ref is one a plain git lorry mirrors (its heads and tags,
/// under the same names), and so one a batch compares.
pub fn is_compared_ref(name: &str) -> bool {
    (name.starts_with("refs/heads/") || name.starts_with("refs/tags/")) && !name.ends_with("^{}")
}

/// The SHA-256 (hex) of `OID NAME\n` for each compared ref, sorted by
/// name: equal digests mean equal heads and tags. The upstream's listing
/// (lorry) and the ref ledger (the webapp) are digested alike.
pub fn refs_digest<'a>(refs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut refs: Vec<(&str, &str)> = refs
        .into_iter()
        .filter(|(name, _)| is_compared_ref(name))
        .collect();
    refs.sort_unstable();
    refs.dedup();
    let mut hash = Sha256::new();
    for (name, oid) in refs {
        hash.update(oid.as_bytes());
        hash.update(b" ");
        hash.update(name.as_bytes());
        hash.update(b"\n");
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_covers_heads_and_tags_whatever_the_order() {
        let a = "1".repeat(40);
        let b = "2".repeat(40);
        let one = refs_digest([
            ("refs/heads/main", a.as_str()),
            ("refs/tags/v1", b.as_str()),
            ("refs/pull/1/head", b.as_str()),
            ("refs/tags/v1^{}", a.as_str()),
        ]);
        let other = refs_digest([
            ("refs/tags/v1", b.as_str()),
            ("refs/heads/main", a.as_str()),
        ]);
        assert_eq!(one, other);
        assert_ne!(one, refs_digest([("refs/heads/main", a.as_str())]));
        assert_ne!(
            one,
            refs_digest([
                ("refs/heads/main", b.as_str()),
                ("refs/tags/v1", b.as_str())
            ])
        );
        assert_eq!(refs_digest([]).len(), 64);
    }
}
