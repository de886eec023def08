//! `gitano`: repositories on a Trove's Gitano, through its ssh commands.
//!
//! `create <path>`; when Gitano refuses, `ls` decides: a repository it
//! lists exists and there is nothing to do, anything else is the error
//! (Gitano's words differ between versions, so they are not matched). A
//! created repository gets its metadata with
//! `config <path> set project.head refs/heads/<branch>` and
//! `config <path> set project.description <text>` (failures there are
//! logged only).

use super::{PrepareError, Prepared, RepoMetadata};
use crate::ssh::{Ssh, SshTarget};
use crate::upstream::trove::parse_ls;

#[derive(Debug, Clone)]
pub struct Gitano {
    target: SshTarget,
    ssh: Ssh,
}

impl Gitano {
    pub fn new(target: SshTarget) -> Gitano {
        Gitano {
            target,
            ssh: Ssh::default(),
        }
    }

    pub(super) async fn prepare(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        if let Err(err) = self.ssh.run(&self.target, &["create", path]).await {
            let listed = self.ssh.run(&self.target, &["ls"]).await?;
            if parse_ls(&listed).iter().any(|p| p == path) {
                return Ok(Prepared::Existing);
            }
            return Err(err.into());
        }
        tracing::info!(target = %self.target, path, "created Gitano repository");
        let head = metadata.valid_head().map(|h| format!("refs/heads/{h}"));
        let description = metadata.clean_description();
        for (key, value) in [("project.head", head), ("project.description", description)] {
            let Some(value) = value else { continue };
            let set = ["config", path, "set", key, value.as_str()];
            if let Err(err) = self.ssh.run(&self.target, &set).await {
                tracing::warn!(path, key, %err, "cannot set Gitano repository configuration");
            }
        }
        Ok(Prepared::Created)
    }
}
