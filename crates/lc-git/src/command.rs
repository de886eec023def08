//! The hermetic git runner: [`Git`] (the settings and environment shared
//! by the commands of one run) makes [`GitCommand`]s, which keep their
//! arguments, redacted, for messages and for the [`Trace`].

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lc_base::redact::redact;

use crate::GitError;

/// The environment shared by the git commands of one run: settings passed
/// as `GIT_CONFIG_*` variables, extra environment variables, and an optional
/// trace that records every invocation (redacted).
#[derive(Clone, Default)]
pub struct Git {
    config: Vec<(String, String)>,
    env: Vec<(String, OsString)>,
    trace: Option<Trace>,
    /// The program `git://` listings and fetches go through, see
    /// [`crate::proxy`].
    pub(crate) proxy: Option<String>,
}

/// Names the environment variables without their values: they may hold
/// credentials (see [`Git::with_url_credentials`]).
impl std::fmt::Debug for Git {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("Git")
            .field("config", &self.config)
            .field("env", &env)
            .field("traced", &self.trace.is_some())
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// A shared record of the git commands run, one redacted line each (the
/// arguments joined by spaces). Tests use it to prove what did, and what did
/// not, happen.
#[derive(Clone, Debug, Default)]
pub struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    /// The commands recorded so far.
    pub fn lines(&self) -> Vec<String> {
        match self.0.lock() {
            Ok(lines) => lines.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many commands have been recorded.
    pub fn len(&self) -> usize {
        match self.0.lock() {
            Ok(lines) => lines.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, line: String) {
        match self.0.lock() {
            Ok(mut lines) => lines.push(line),
            Err(poisoned) => poisoned.into_inner().push(line),
        }
    }
}

impl Git {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a git setting, passed through the environment.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Lists and fetches `git://` URLs through `program` (lorry's own, see
    /// [`crate::proxy`]).
    pub fn git_proxy(mut self, program: impl Into<String>) -> Self {
        self.proxy = Some(program.into());
        self
    }

    /// The program set by [`Git::git_proxy`].
    pub fn proxy_program(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// Whether the git setting `key` is given (names compared as git
    /// does, ignoring case).
    pub fn has_config(&self, key: &str) -> bool {
        self.config.iter().any(|(k, _)| k.eq_ignore_ascii_case(key))
    }

    /// Adds an environment variable for every command.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Records every command in `trace`.
    pub fn traced(mut self, trace: Trace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The trace that records this environment's commands, if any.
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    /// A new `git` command with this environment.
    pub fn command(&self) -> GitCommand {
        let mut cmd = git();
        let mut count = 0usize;
        for (key, value) in &self.config {
            cmd.env(format!("GIT_CONFIG_KEY_{count}"), key);
            cmd.env(format!("GIT_CONFIG_VALUE_{count}"), value);
            count += 1;
        }
        cmd.env("GIT_CONFIG_COUNT", count.to_string());
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        GitCommand {
            cmd,
            shown: Vec::new(),
            trace: self.trace.clone(),
        }
    }

    /// A new `git --git-dir=<repo>` command.
    pub fn in_repo(&self, repo: &Path) -> GitCommand {
        let mut cmd = self.command();
        let mut dir = OsString::from("--git-dir=");
        dir.push(repo.as_os_str());
        cmd.arg(dir);
        cmd
    }
}

/// How git runs ssh unless the environment names another command: batch
/// mode (no prompts), and a host key learnt on first contact and checked ever
/// after (never `StrictHostKeyChecking=no`). `ssh` is found on PATH.
pub const SSH_COMMAND: &str = "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new";

/// A bare `git` command with a hermetic environment and no settings.
#[expect(
    clippy::disallowed_methods,
    reason = "lc-git is the one place that runs git; every git command starts here"
)]
pub fn git() -> Command {
    let mut cmd = Command::new("git");
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        cmd.env("GIT_SSH_COMMAND", SSH_COMMAND);
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_CONFIG_PARAMETERS")
        .env_remove("GIT_CONFIG")
        .stdin(Stdio::null());
    cmd
}

/// One `git` invocation; its arguments are kept, redacted, for messages.
pub struct GitCommand {
    pub(crate) cmd: Command,
    shown: Vec<String>,
    trace: Option<Trace>,
}

impl std::fmt::Debug for GitCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "git {}", self.shown())
    }
}

impl GitCommand {
    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Self {
        let arg = arg.into();
        if !arg.to_string_lossy().starts_with("--git-dir=") {
            self.shown.push(redact(&arg.to_string_lossy()).into_owned());
        }
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    /// Sets an environment variable for this command only.
    pub fn env(&mut self, key: &str, value: impl Into<OsString>) -> &mut Self {
        self.cmd.env(key, value.into());
        self
    }

    /// Runs in `dir` rather than the current directory.
    pub fn current_dir(&mut self, dir: &Path) -> &mut Self {
        self.cmd.current_dir(dir);
        self
    }

    /// The arguments, redacted, joined by spaces.
    pub fn shown(&self) -> String {
        self.shown.join(" ")
    }

    fn record(&self) {
        if let Some(trace) = &self.trace {
            trace.push(self.shown());
        }
    }

    pub(crate) fn failed(&self, stderr: &str) -> GitError {
        GitError::Failed {
            args: self.shown(),
            stderr: redact(stderr.trim()).into_owned(),
        }
    }

    pub(crate) fn parse_error(&self, line: &str) -> GitError {
        GitError::Parse {
            args: self.shown(),
            line: redact(line).into_owned(),
        }
    }

    /// Runs to completion and returns the output whatever the exit status.
    pub fn output(&mut self) -> Result<Output, GitError> {
        self.record();
        Ok(self.cmd.output()?)
    }

    /// Runs to completion; a non-zero exit is an error carrying stderr.
    pub fn run(&mut self) -> Result<Output, GitError> {
        let out = self.output()?;
        if !out.status.success() {
            return Err(self.failed(&String::from_utf8_lossy(&out.stderr)));
        }
        Ok(out)
    }

    /// Runs to completion, or until `timeout` has passed: then git and
    /// every process it started (its process group: remote helpers, ssh)
    /// are killed and the error says so. A non-zero exit is an error
    /// carrying stderr.
    pub fn run_with_timeout(&mut self, timeout: Duration) -> Result<Output, GitError> {
        self.record();
        self.cmd
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn()?;
        let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    // What was read before an error is kept; the error
                    // itself (a pipe torn down by a kill) says nothing more.
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<_>));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<_>));
        // A watchdog kills the group at the deadline while this thread
        // waits for git: the end is seen the moment it comes, with no
        // polling pause added to each command.
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watchdog = {
            let timed_out = std::sync::Arc::clone(&timed_out);
            std::thread::spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(timeout)
                {
                    timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                }
            })
        };
        let waited = child.wait();
        let _ = stop.send(());
        let _ = watchdog.join();
        // Whatever git left behind in its group goes too, so that nothing
        // holds the pipes open.
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let status = waited?;
        if timed_out.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(GitError::TimedOut {
                args: self.shown(),
                seconds: timeout.as_secs_f64().ceil() as u64,
            });
        }
        let out = Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        if !out.status.success() {
            return Err(self.failed(&String::from_utf8_lossy(&out.stderr)));
        }
        Ok(out)
    }

    /// Runs to completion with `input` on stdin; a non-zero exit is an
    /// error carrying stderr.
    pub fn run_with_input(&mut self, input: &[u8]) -> Result<Output, GitError> {
        self.record();
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn()?;
        let stdin = child.stdin.take();
        // Write from another thread so that a child that fills its stdout
        // pipe before reading all of stdin cannot deadlock us.
        let owned = input.to_vec();
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            if let Some(mut stdin) = stdin {
                stdin.write_all(&owned)?;
            }
            Ok(())
        });
        let out = child.wait_with_output()?;
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("stdin writer panicked")));
        if !out.status.success() {
            return Err(self.failed(&String::from_utf8_lossy(&out.stderr)));
        }
        written?;
        Ok(out)
    }

    /// Starts the command with `stdin` connected to a pipe the caller
    /// writes, and stdout and stderr captured. Finish with
    /// [`GitCommand::wait`].
    pub fn spawn_with_stdin(&mut self, stdin: Stdio) -> Result<Child, GitError> {
        self.record();
        self.cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(self.cmd.spawn()?)
    }

    /// Waits for a child from [`GitCommand::spawn_with_stdin`]; a non-zero
    /// exit is an error carrying stderr.
    pub fn wait(&self, child: Child) -> Result<Output, GitError> {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(self.failed(&String::from_utf8_lossy(&out.stderr)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_learns_host_keys_once_and_never_skips_the_check() {
        if std::env::var_os("GIT_SSH_COMMAND").is_some() || std::env::var_os("GIT_SSH").is_some() {
            return;
        }
        let cmd = git();
        let ssh = cmd
            .get_envs()
            .find(|(k, _)| *k == "GIT_SSH_COMMAND")
            .and_then(|(_, v)| v)
            .map(|v| v.to_string_lossy().into_owned());
        assert_eq!(ssh.as_deref(), Some(SSH_COMMAND));
        assert!(SSH_COMMAND.contains("StrictHostKeyChecking=accept-new"));
    }

    #[test]
    fn settings_travel_in_the_environment_not_argv() {
        let git = Git::new().config("http.extraHeader", "Authorization: secret-token");
        let cmd = git.command();
        let envs: Vec<_> = cmd
            .cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(envs.contains(&("GIT_CONFIG_COUNT".into(), Some("1".into()))));
        assert!(envs.contains(&(
            "GIT_CONFIG_VALUE_0".into(),
            Some("Authorization: secret-token".into())
        )));
        assert!(cmd.cmd.get_args().next().is_none());
    }
}
