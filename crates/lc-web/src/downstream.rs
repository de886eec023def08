//! The settings of talking to hosts (API politeness, the listing shrink
//! guard, the per-host job cap), and preparing a job's repository on the
//! Downstream Host before give-me-job answers. The host types themselves
//! live in `lc_hosts`.

use std::sync::Arc;
use std::time::Duration;

use lc_hosts::{Politeness, Prepared, RepoMetadata};

/// How the webapp treats Upstream and Downstream Hosts.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// Per-host API call rate and backoff of listings.
    pub polite: Arc<Politeness>,
    /// Largest share (0.0 to 1.0) of a host's lorries one listing may remove.
    pub ls_shrink_limit: f64,
    /// Running jobs allowed per Upstream Host; `None`: no limit.
    pub max_jobs_per_host: Option<i64>,
}

/// Longest a give-me-job waits for the downstream repository: well within
/// the minion's own timeout (60 s by default), so that a minion never gives
/// up on an answer that hands it a job.
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(40);

/// The default share of a host's lorries a listing may remove: 5%.
pub const DEFAULT_SHRINK_LIMIT: f64 = 0.05;

impl Default for HostSettings {
    fn default() -> HostSettings {
        HostSettings {
            polite: Arc::default(),
            ls_shrink_limit: DEFAULT_SHRINK_LIMIT,
            max_jobs_per_host: None,
        }
    }
}

/// Why the repository of a job could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("the {kind} Downstream Host did not finish preparing {path:?} within {} s", PREPARE_TIMEOUT.as_secs())]
    TimedOut { kind: &'static str, path: String },
    #[error(transparent)]
    Host(#[from] lc_hosts::PrepareError),
}

/// Makes sure the repository for `path` exists on `host`, created with the
/// upstream's `metadata` if it did not; an existing one is left alone.
/// Bounded by [`PREPARE_TIMEOUT`].
pub async fn prepare(
    host: &lc_hosts::Downstream,
    path: &str,
    metadata: &RepoMetadata,
) -> Result<Prepared, PrepareError> {
    let Ok(result) = tokio::time::timeout(PREPARE_TIMEOUT, host.prepare(path, metadata)).await
    else {
        return Err(PrepareError::TimedOut {
            kind: host.kind(),
            path: path.to_owned(),
        });
    };
    let prepared = result?;
    if prepared != Prepared::Existing {
        tracing::info!(path, ?prepared, "prepared downstream repository");
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_host_creates_and_keeps_repositories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = lc_hosts::Downstream::Local(lc_hosts::downstream::Local::new(dir.path()));
        prepare(&d, "a/b", &RepoMetadata::default())
            .await
            .expect("create");
        assert!(dir.path().join("a/b.git/HEAD").is_file());
        std::fs::write(dir.path().join("a/b.git/description"), "kept").expect("write");
        let again = prepare(&d, "a/b", &RepoMetadata::default())
            .await
            .expect("again");
        assert_eq!(again, Prepared::Existing);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a/b.git/description")).expect("read"),
            "kept"
        );
        let err = prepare(&d, "a/../../x", &RepoMetadata::default())
            .await
            .expect_err("escape");
        assert!(matches!(err, PrepareError::Host(_)), "{err:?}");
        assert!(err.to_string().contains("a/../../x"), "{err}");
    }
}
