//! Commands on a host over ssh (Gerrit, Gitano), through the `ssh` program
//! found on `PATH`, so OpenSSH's configuration, keys and known hosts apply.
//!
//! ssh joins the words of a remote command with spaces and the remote side
//! splits them again, so every word is quoted the POSIX way: Gerrit's and
//! Gitano's command parsers both honour single quotes.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Longest piece of a command's stderr quoted in an error.
const STDERR_LIMIT: usize = 500;

/// Where to connect: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    pub fn new(user: Option<&str>, host: &str, port: Option<u16>) -> Result<SshTarget, String> {
        let bad = |what: &str, value: &str| {
            value.is_empty()
                || value.starts_with('-')
                || value
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == '/')
                || what.is_empty()
        };
        if bad("host", host) {
            return Err(format!("{host:?} is not a host name"));
        }
        if let Some(user) = user
            && bad("user", user)
        {
            return Err(format!("{user:?} is not a user name"));
        }
        Ok(SshTarget {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        })
    }

    /// Parses `ssh://[user@]host[:port][/]` (Gerrit's form) or `[user@]host`.
    pub fn parse(url: &str) -> Result<SshTarget, String> {
        let rest = url.strip_prefix("ssh://").unwrap_or(url);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((user, hostport)) => (Some(user), hostport),
            None => (None, rest),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                let port = port
                    .parse()
                    .map_err(|_| format!("{url:?}: {port:?} is not a port"))?;
                (host, Some(port))
            }
            _ => (hostport, None),
        };
        SshTarget::new(user, host, port).map_err(|e| format!("{url:?}: {e}"))
    }

    /// `user@host`, the destination argument of ssh.
    fn destination(&self) -> String {
        match &self.user {
            Some(user) => format!("{user}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.destination())?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Why a command over ssh failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    #[error("cannot run ssh for {target}: {problem}")]
    Spawn { target: String, problem: String },
    #[error("ssh {target} {command}: {status}: {stderr}")]
    Failed {
        target: String,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("ssh {target} {command}: no answer within {seconds} s")]
    Timeout {
        target: String,
        command: String,
        seconds: u64,
    },
}

impl SshError {
    /// The remote command's stderr, for callers that tell errors apart by it.
    pub fn stderr(&self) -> &str {
        match self {
            SshError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

/// How to run ssh.
#[derive(Debug, Clone)]
pub struct Ssh {
    /// Extra `-o` options (after the defaults; ssh keeps the first value given
    /// for an option, so these cannot weaken host key checking).
    pub options: Vec<String>,
    pub timeout: Duration,
}

impl Default for Ssh {
    fn default() -> Ssh {
        Ssh {
            options: Vec::new(),
            timeout: Duration::from_secs(120),
        }
    }
}

impl Ssh {
    /// The ssh command line: batch mode (no prompts) and a host key that is
    /// learnt on first contact and checked ever after
    /// (`StrictHostKeyChecking=accept-new`; never `no`, which would let
    /// anyone on the path pose as the host once its key is known).
    #[expect(
        clippy::disallowed_methods,
        reason = "Gerrit and Gitano are reached through the ssh program, so OpenSSH's configuration applies"
    )]
    fn command(&self, target: &SshTarget, words: &[&str]) -> Command {
        let command = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let mut ssh = Command::new("ssh");
        ssh.arg("-oBatchMode=yes")
            .arg("-oStrictHostKeyChecking=accept-new");
        for option in &self.options {
            ssh.arg(format!("-o{option}"));
        }
        if let Some(port) = target.port {
            ssh.arg("-p").arg(port.to_string());
        }
        ssh.arg(target.destination()).arg(command);
        ssh
    }

    /// Runs `words` on `target` and answers its stdout.
    pub async fn run(&self, target: &SshTarget, words: &[&str]) -> Result<String, SshError> {
        let command = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let mut ssh = self.command(target, words);
        ssh.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawn_err = |e: std::io::Error| SshError::Spawn {
            target: target.to_string(),
            problem: e.to_string(),
        };
        let child = ssh.spawn().map_err(spawn_err)?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(output) => output.map_err(spawn_err)?,
            Err(_) => {
                return Err(SshError::Timeout {
                    target: target.to_string(),
                    command,
                    seconds: self.timeout.as_secs(),
                });
            }
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = lc_base::redact::redact(stderr.trim()).into_owned();
        let stderr = if stderr.chars().count() > STDERR_LIMIT {
            format!(
                "{}...",
                stderr.chars().take(STDERR_LIMIT).collect::<String>()
            )
        } else {
            stderr
        };
        Err(SshError::Failed {
            target: target.to_string(),
            command,
            status: match output.status.code() {
                Some(code) => format!("exit {code}"),
                None => "killed by a signal".to_owned(),
            },
            stderr,
        })
    }
}

/// One word quoted for a POSIX-style command line: plain words as they are,
/// anything else in single quotes (a `'` inside becomes `'\''`).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=+,%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_learnt_once_then_checked() {
        let target = SshTarget::parse("ssh://git@trove.example:2222").expect("ok");
        let ssh = Ssh {
            options: vec!["StrictHostKeyChecking=no".to_owned()],
            ..Ssh::default()
        };
        let cmd = ssh.command(&target, &["ls"]);
        let args: Vec<String> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-oBatchMode=yes",
                "-oStrictHostKeyChecking=accept-new",
                "-oStrictHostKeyChecking=no",
                "-p",
                "2222",
                "git@trove.example",
                "ls"
            ]
        );
        // ssh takes the first value of an option, so the default wins.
        let first = args
            .iter()
            .find(|a| a.starts_with("-oStrictHostKeyChecking="))
            .expect("set");
        assert_eq!(first, "-oStrictHostKeyChecking=accept-new");
    }

    #[test]
    fn targets_parse_from_urls() {
        assert_eq!(
            SshTarget::parse("ssh://lorry@gerrit.example.com:29418").expect("ok"),
            SshTarget {
                user: Some("lorry".into()),
                host: "gerrit.example.com".into(),
                port: Some(29418)
            }
        );
        assert_eq!(
            SshTarget::parse("git@trove").expect("ok").to_string(),
            "git@trove"
        );
        assert_eq!(
            SshTarget::parse("ssh://h:22/").expect("ok").to_string(),
            "h:22"
        );
        for bad in [
            "ssh://-oProxyCommand=x",
            "ssh://a b",
            "ssh://u@h:port",
            "",
            "ssh://u@",
        ] {
            assert!(SshTarget::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn words_are_quoted_for_the_remote_parser() {
        assert_eq!(quote("a/b.git"), "a/b.git");
        assert_eq!(quote("two words"), "'two words'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "the test checks quoting against a real shell"
    )]
    fn quoted_words_come_back_whole_through_a_shell() {
        let words = ["plain", "two words", "it's", "", "$HOME;`x`", "a\"b"];
        let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("for w in {line}; do printf '%s\\n' \"[$w]\"; done"))
            .output()
            .expect("sh");
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        let want: Vec<String> = words.iter().map(|w| format!("[{w}]")).collect();
        assert_eq!(got, want);
    }
}
