//! `gerrit`: projects on Gerrit, through its ssh commands.
//!
//! `gerrit ls-projects --type ALL --prefix <path>` tells whether the
//! project exists (its name listed exactly); if not, one
//! `gerrit create-project [--parent <parent>] [--branch <head>]
//! --description <text> <path>`: `--branch` names the branch HEAD points
//! to (<https://gerrit-review.googlesource.com/Documentation/cmd-create-project.html>).
//! A separate `set-head` would fail, since no branch exists before the
//! first push (<https://gerrit-review.googlesource.com/Documentation/cmd-set-head.html>).
//! The description is the upstream's, or "Mirror of <upstream URL>".
//! The lorry user needs the Create Project capability.

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
        let description = metadata.mirror_description();
        let mut create = vec!["gerrit", "create-project"];
        if let Some(parent) = &self.parent {
            create.extend(["--parent", parent.as_str()]);
        }
        if let Some(head) = metadata.valid_head() {
            create.extend(["--branch", head]);
        }
        if let Some(description) = &description {
            create.extend(["--description", description.as_str()]);
        }
        create.push(path);
        self.ssh.run(&self.target, &create).await?;
        tracing::info!(target = %self.target, path, "created Gerrit project");
        Ok(Prepared::Created)
    }
}
