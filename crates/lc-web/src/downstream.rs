//! The Downstream Host: where mirrors are pushed, and preparing a
//! repository there before each job; plus the settings of talking to hosts
//! (API politeness, the listing shrink guard, the per-host job cap).
//!
//! The host types themselves live in `lc_hosts`. `Local` and `External`
//! remain as shorthands for setups built in code (tests): a local directory
//! with default settings, and no preparation at all.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use lc_hosts::{Politeness, RepoMetadata};

/// Where mirrors go, and how hosts are talked to.
#[derive(Debug, Clone)]
pub enum Downstream {
    /// Bare repositories at `<base>/<path>.git` on this machine, default settings.
    Local { base: PathBuf },
    /// No repository is prepared; `lorry` pushes wherever its configuration says.
    External { kind: String },
    /// A Downstream Host of any type, with its settings.
    Host {
        host: lc_hosts::Downstream,
        settings: HostSettings,
    },
}

/// How the webapp treats Upstream and Downstream Hosts.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// Per-host API call rate and backoff, shared by listing and preparing.
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

static DEFAULT_SETTINGS: LazyLock<HostSettings> = LazyLock::new(HostSettings::default);

impl Downstream {
    pub fn settings(&self) -> &HostSettings {
        match self {
            Downstream::Host { settings, .. } => settings,
            _ => &DEFAULT_SETTINGS,
        }
    }

    /// Makes sure the repository for `path` exists, created with the
    /// upstream's `metadata` if it did not; an existing one is left alone.
    /// The error says what failed on which host, without secrets.
    pub async fn prepare(&self, path: &str, metadata: &RepoMetadata) -> Result<(), String> {
        let local;
        let host = match self {
            Downstream::Local { base } => {
                local = lc_hosts::Downstream::Local(lc_hosts::downstream::Local::new(base.clone()));
                &local
            }
            Downstream::External { .. } => return Ok(()),
            Downstream::Host { host, .. } => host,
        };
        let Ok(result) = tokio::time::timeout(PREPARE_TIMEOUT, host.prepare(path, metadata)).await
        else {
            return Err(format!(
                "the {} Downstream Host did not finish preparing {path:?} within {} s",
                host.kind(),
                PREPARE_TIMEOUT.as_secs()
            ));
        };
        match result {
            Ok(prepared) => {
                if prepared != lc_hosts::Prepared::Existing {
                    tracing::info!(path, ?prepared, "prepared downstream repository");
                }
                Ok(())
            }
            Err(err) => Err(lc_base::redact::redact(&err.to_string()).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_shorthand_creates_and_keeps_repositories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Downstream::Local {
            base: dir.path().to_owned(),
        };
        d.prepare("a/b", &RepoMetadata::default())
            .await
            .expect("create");
        assert!(dir.path().join("a/b.git/HEAD").is_file());
        std::fs::write(dir.path().join("a/b.git/description"), "kept").expect("write");
        d.prepare("a/b", &RepoMetadata::default())
            .await
            .expect("again");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a/b.git/description")).expect("read"),
            "kept"
        );
        let err = d
            .prepare("a/../../x", &RepoMetadata::default())
            .await
            .expect_err("escape");
        assert!(err.contains("a/../../x"), "{err}");
    }

    #[tokio::test]
    async fn external_prepares_nothing() {
        let d = Downstream::External { kind: "x".into() };
        d.prepare("../../anything", &RepoMetadata::default())
            .await
            .expect("nothing to do");
        assert_eq!(d.settings().ls_shrink_limit, DEFAULT_SHRINK_LIMIT);
    }
}
