//! `gerrit`: projects on Gerrit, through its ssh commands.
//!
//! `gerrit ls-projects --type ALL --prefix <path>` tells whether the
//! project exists (its name listed exactly); if not,
//! `gerrit create-project [--parent <parent>] <path>`, then the metadata
//! with `gerrit set-head <path> --new-head <branch>` and
//! `gerrit set-project <path> --description <text>` (failures there are
//! logged only). The lorry user needs the Create Project capability.

use super::{PrepareError, Prepared, RepoMetadata};
use crate::ssh::{Ssh, SshTarget};

#[derive(Debug, Clone)]
pub struct Gerrit {
    target: SshTarget,
    parent: Option<String>,
    ssh: Ssh,
}

impl Gerrit {
    pub fn new(target: SshTarget, parent: Option<String>) -> Gerrit {
        Gerrit {
            target,
            parent: parent.filter(|p| !p.is_empty()),
            ssh: Ssh::default(),
        }
    }

    pub(super) async fn prepare(
        &self,
        path: &str,
        metadata: &RepoMetadata,
    ) -> Result<Prepared, PrepareError> {
        let listed = self
            .ssh
            .run(
                &self.target,
                &["gerrit", "ls-projects", "--type", "ALL", "--prefix", path],
            )
            .await?;
        if listed.lines().any(|line| line.trim() == path) {
            return Ok(Prepared::Existing);
        }
        let mut create = vec!["gerrit", "create-project"];
        if let Some(parent) = &self.parent {
            create.extend(["--parent", parent.as_str()]);
        }
        create.push(path);
        self.ssh.run(&self.target, &create).await?;
        tracing::info!(target = %self.target, path, "created Gerrit project");
        if let Some(head) = metadata.valid_head() {
            let set_head = ["gerrit", "set-head", path, "--new-head", head];
            if let Err(err) = self.ssh.run(&self.target, &set_head).await {
                tracing::warn!(path, %err, "cannot set the Gerrit project's HEAD");
            }
        }
        if let Some(description) = metadata.clean_description() {
            let set = ["gerrit", "set-project", path, "--description", &description];
            if let Err(err) = self.ssh.run(&self.target, &set).await {
                tracing::warn!(path, %err, "cannot set the Gerrit project's description");
            }
        }
        Ok(Prepared::Created)
    }
}
