//! The minion's ssh-agent: jobs use the minion's ssh keys through its
//! socket and never see the key files.
//!
//! At start-up the minion runs `ssh-agent -a <socket> cat` in a private
//! directory and adds the keys with `ssh-add`. The socket is bound into
//! each job's sandbox and named by `SSH_AUTH_SOCK`.
//!
//! The agent must end with the minion, even one killed with SIGKILL, or it
//! keeps the keys unlocked for anyone who can reach the socket. A parent-death
//! signal cannot do it: Debian's `ssh-agent` is set-gid, and the kernel
//! clears the signal when such a program starts. So the agent runs a command:
//! the process the minion starts becomes `cat` reading a pipe that only the
//! minion holds open, and the agent is its child. When the minion ends,
//! however it ends, the pipe closes, `cat` exits, and ssh-agent, which checks
//! every 10 seconds that its parent is alive, exits and removes its socket.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A running agent holding the minion's keys; killed when dropped.
#[derive(Debug)]
pub struct Agent {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
}

/// The keys used when `--ssh-key` is not given: the usual names in the
/// user's `~/.ssh` that exist.
pub fn default_keys(home: Option<&Path>) -> Vec<PathBuf> {
    let Some(home) = home else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .filter(|path| path.is_file())
        .collect()
}

impl Agent {
    /// Starts an agent and adds `keys` (files without passphrase). An
    /// error names the step and the key.
    #[expect(
        clippy::disallowed_methods,
        reason = "the minion runs ssh-agent and ssh-add to hold its keys for the jobs"
    )]
    pub async fn start(keys: &[PathBuf]) -> Result<Agent, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("lorry-minion-agent-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|e| format!("cannot make the agent's directory: {e}"))?;
        let socket = dir.path().join("agent.sock");
        let child = tokio::process::Command::new("ssh-agent")
            .arg("-a")
            .arg(&socket)
            .arg("cat")
            // The pipe that ties the agent's life to the minion's.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start ssh-agent: {e}"))?;
        let agent = Agent { child, dir };
        // The socket file appears at bind(), a moment before the agent
        // listens: wait until it takes a connection, or ssh-add may be
        // refused (seen under load).
        let mut listening = false;
        for _ in 0..500 {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                listening = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !listening {
            return Err("ssh-agent did not listen on its socket within 5 s".into());
        }
        for key in keys {
            let out = tokio::process::Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &socket)
                .env_remove("DISPLAY")
                .env("SSH_ASKPASS", "/bin/false")
                .stdin(Stdio::null())
                .output()
                .await
                .map_err(|e| format!("cannot run ssh-add: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ssh-add {} failed: {}",
                    key.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(agent)
    }

    /// The agent's socket, for `SSH_AUTH_SOCK`.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// Whether the agent's watcher (`cat`, its parent) still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
