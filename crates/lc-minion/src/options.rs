//! The minion's command line, with the original's option names. Every
//! option can also be set in a `--config FILE` (`[config]` section, keys
//! are the long option names), see [`lc_startup::args_with_config_file`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use lc_startup::logging::LogOptions;

use crate::Error;
use crate::cgroup::{Cgroups, JobLimits};
use crate::config::{Limits, LorryConfigPaths, MinionConfig};
use crate::sandbox::{Sandbox, SandboxKind};

/// Runs lorry for the jobs the Lorry Controller webapp hands out.
#[derive(Debug, Parser)]
#[command(name = "lorry-controller-minion", version, args_override_self = true)]
pub struct Options {
    /// Read options from this INI file's [config] section (keys are long option names).
    #[arg(long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Host name of the webapp.
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    pub webapp_host: String,
    /// Port of the webapp.
    #[arg(long, value_name = "PORT", default_value_t = 12765)]
    pub webapp_port: u16,
    /// File holding the webapp's minion token (or LORRY_CONTROLLER_MINION_TOKEN);
    /// readable by this user only.
    #[arg(long, value_name = "FILE")]
    pub webapp_token_file: Option<PathBuf>,
    /// Seconds each request to the webapp may take.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub webapp_timeout: Duration,
    /// Seconds to wait before asking again when there is no job; the
    /// webapp is asked to hold the request that long (at most 10 s) and
    /// answer as soon as a job can start.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub sleep: Duration,
    /// Take up to this many due git lorries at once as a batch check
    /// (parallel `ls-remote`s, one report; the webapp hands back the
    /// changed ones as ordinary jobs). 0: ordinary jobs only.
    #[arg(long, value_name = "LORRIES", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=lc_api::BATCH_MAX as u64))]
    pub batch: u64,
    /// How many `ls-remote`s of a batch run at once.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub batch_parallel: u64,
    /// Seconds one `ls-remote` of a batch may take before it is killed
    /// (its lorry then gets an ordinary job).
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub batch_ls_remote_timeout: Duration,
    /// Seconds between updates of a running job's output.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub update_interval: Duration,
    /// Longest wait, in seconds, between retries while the webapp is unreachable.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    pub webapp_retry_max: Duration,
    /// Most bytes of one job-update request body (form-encoded); more
    /// output goes in further updates.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(4096..=1 << 40))]
    pub update_max_bytes: u64,
    /// Seconds between SIGTERM and SIGKILL when a job is killed.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub kill_grace: Duration,
    /// The lorry program (default: lorry next to this program, else lorry on PATH).
    #[arg(long, value_name = "FILE")]
    pub lorry_path: Option<PathBuf>,
    /// Configuration file passed to lorry as --config; its working-area is
    /// where disk usage is measured.
    #[arg(long, value_name = "FILE")]
    pub lorry_config: Option<PathBuf>,
    /// Working area passed to lorry as --working-area (overrides the lorry configuration's).
    #[arg(long, value_name = "DIR")]
    pub lorry_working_area: Option<PathBuf>,
    /// Directory where the running job is recorded, so that the next
    /// minion can end it if this one is killed (default: %minions in the
    /// working area, when it is known).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// JSON file with hostname, port, username and password of an HTTP
    /// proxy for lorry; a missing file means no proxy.
    #[arg(long, value_name = "FILE")]
    pub proxy_config: Option<PathBuf>,
    /// CPU seconds lorry and each process it starts may use.
    #[arg(long, value_name = "SECONDS")]
    pub cpu_limit: Option<u64>,
    /// Bytes of address space lorry and each process it starts may use.
    #[arg(long, value_name = "BYTES")]
    pub memory_limit: Option<u64>,
    /// Largest file, in bytes, lorry and each process it starts may write.
    #[arg(long, value_name = "BYTES")]
    pub file_size_limit: Option<u64>,
    /// Free space needed on the working area's file system (a size: 1GiB,
    /// 500M...); below it the minion asks for no job and says so in its
    /// log. 0: no limit. Needs a known working area.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = lc_startup::parse_size)]
    pub min_free_disk: u64,
    /// The prlimit program used to apply the limits.
    #[arg(long, value_name = "FILE", default_value = "prlimit")]
    pub prlimit_path: PathBuf,
    /// Bytes of memory each whole job may use (a cgroup's; without one,
    /// each process's address space). A spec's memory-max may lower it.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub job_memory_max: Option<u64>,
    /// Processes and threads each whole job may have (a cgroup's; without
    /// one, RLIMIT_NPROC, which counts all of the user's). A spec's
    /// tasks-max may lower it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub job_tasks_max: Option<u64>,
    /// CPU seconds each whole job may use (a cgroup's; without one, each
    /// process's).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub job_cpu_seconds: Option<u64>,
    /// Do not make a cgroup per job even where possible: rlimits only.
    #[arg(long)]
    pub no_job_cgroups: bool,
    /// How jobs are isolated: bwrap (the default where it works) or none
    /// (a warning in the log).
    #[arg(long, value_enum, value_name = "KIND")]
    pub sandbox: Option<SandboxKind>,
    /// The bubblewrap program.
    #[arg(long, value_name = "FILE", default_value = "bwrap")]
    pub bwrap_path: PathBuf,
    /// A file or directory jobs must not see, besides the minion's home,
    /// configuration, token file and state (repeatable; for instance the
    /// webapp's STATEDB when on the same machine).
    #[arg(long, value_name = "PATH")]
    pub sandbox_hide: Vec<PathBuf>,
    /// A private ssh key the minion's ssh-agent holds for jobs (repeatable;
    /// default: id_ed25519, id_ecdsa and id_rsa in ~/.ssh that exist).
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Vec<PathBuf>,
    /// The known_hosts file jobs use (read-write, for new hosts); default:
    /// known_hosts in the state directory, first copied from
    /// ~/.ssh/known_hosts.
    #[arg(long, value_name = "FILE")]
    pub ssh_known_hosts: Option<PathBuf>,
    #[command(flatten)]
    pub logging: LogOptions,
}

/// Seconds, possibly fractional, as a duration.
fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(value).map_err(|_| format!("{text:?} is not a number of seconds"))
}

/// The environment variable that may hold the minion token instead of a file.
pub const MINION_TOKEN_ENV: &str = "LORRY_CONTROLLER_MINION_TOKEN";

impl Options {
    /// The minion's configuration. `own_exe` is the minion's executable,
    /// next to which lorry is looked for first.
    pub fn into_config(self, own_exe: Option<&Path>) -> Result<MinionConfig, Error> {
        let program = self
            .lorry_path
            .clone()
            .unwrap_or_else(|| default_lorry(own_exe));
        let webapp = if self.webapp_host.contains(':') && !self.webapp_host.starts_with('[') {
            format!("http://[{}]:{}", self.webapp_host, self.webapp_port)
        } else {
            format!("http://{}:{}", self.webapp_host, self.webapp_port)
        };
        let mut config = MinionConfig::new(webapp, program);
        config.webapp_timeout = self.webapp_timeout;
        config.webapp_token = lc_startup::token::from_file_or_env(
            self.webapp_token_file.as_deref(),
            MINION_TOKEN_ENV,
        )
        .map_err(|e| Error::Option {
            option: "webapp-token-file",
            reason: e.to_string(),
        })?;
        config.sleep = self.sleep;
        config.update_interval = self.update_interval;
        config.batch = usize::try_from(self.batch).unwrap_or(0);
        config.batch_parallel = usize::try_from(self.batch_parallel).unwrap_or(1);
        config.batch_ls_remote_timeout = self.batch_ls_remote_timeout;
        config.retry_max = self.webapp_retry_max;
        config.kill_grace = self.kill_grace;
        config.update_max_bytes = usize::try_from(self.update_max_bytes).unwrap_or(usize::MAX);
        config.min_free_disk = self.min_free_disk;
        config.lorry.config = self.lorry_config.clone();
        config.lorry.working_area = self.lorry_working_area.clone();
        config.lorry.prlimit = self.prlimit_path.clone();
        config.lorry.limits = Limits {
            cpu_seconds: self.cpu_limit,
            memory_bytes: self.memory_limit,
            file_size_bytes: self.file_size_limit,
            user_processes: None,
        };
        let lorry_paths = match &self.lorry_config {
            Some(file) => LorryConfigPaths::read(file)?,
            None => LorryConfigPaths::default(),
        };
        config.working_area = self
            .lorry_working_area
            .clone()
            .or_else(|| lorry_paths.working_area.clone());
        // "%minions" is no lorry's directory: names have '%' encoded.
        config.state_dir = self.state_dir.clone().or_else(|| {
            config
                .working_area
                .as_ref()
                .map(|area| area.join("%minions"))
        });
        if let Some(file) = &self.proxy_config {
            config.use_proxy_config(file)?;
        }
        config.job_limits = JobLimits {
            memory_max: self.job_memory_max,
            tasks_max: self.job_tasks_max,
            cpu_seconds: self.job_cpu_seconds,
        };
        config.cgroups = if self.no_job_cgroups {
            None
        } else {
            match Cgroups::detect() {
                Ok(cgroups) => Some(cgroups),
                Err(why) => {
                    tracing::warn!(%why, "no cgroup per job: job limits are rlimits of each process");
                    None
                }
            }
        };
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|h| h.is_absolute());
        config.ssh_keys = if self.ssh_key.is_empty() {
            crate::agent::default_keys(home.as_deref())
        } else {
            self.ssh_key.clone()
        };
        config.sandbox = self.sandbox_of(&config, &lorry_paths, home)?;
        let limits_need_prlimit = config.cgroups.is_none() && !config.job_limits.is_empty();
        if (limits_need_prlimit || !config.lorry.limits.is_empty())
            && find_program(&config.lorry.prlimit).is_none()
        {
            return Err(Error::Option {
                option: "prlimit-path",
                reason: format!(
                    "resource limits need {} (util-linux), which is not found",
                    config.lorry.prlimit.display()
                ),
            });
        }
        Ok(config)
    }
}

impl Options {
    /// The sandbox of `--sandbox`: bwrap when asked for (an error when it
    /// does not work) or by default where it works; none with a warning.
    fn sandbox_of(
        &self,
        config: &MinionConfig,
        lorry_paths: &LorryConfigPaths,
        home: Option<PathBuf>,
    ) -> Result<Option<Sandbox>, Error> {
        if self.sandbox == Some(SandboxKind::None) {
            tracing::warn!(
                "--sandbox none: jobs see everything the minion sees (its configuration, token, home and the whole working area)"
            );
            return Ok(None);
        }
        match crate::sandbox::probe(&self.bwrap_path) {
            Ok(()) => {}
            Err(why) if self.sandbox == Some(SandboxKind::Bwrap) => {
                return Err(Error::Option {
                    option: "sandbox",
                    reason: format!("bwrap does not work here: {why}"),
                });
            }
            Err(why) => {
                tracing::warn!(%why, "bwrap does not work here: jobs run without a sandbox (see INSTALL.md, Security)");
                return Ok(None);
            }
        }
        let mut sandbox = Sandbox::new(&self.bwrap_path);
        sandbox.hide.extend(self.config.iter().cloned());
        sandbox.hide.extend(self.webapp_token_file.iter().cloned());
        sandbox.hide.extend(self.proxy_config.iter().cloned());
        sandbox.hide.extend(config.state_dir.iter().cloned());
        sandbox.hide.extend(self.ssh_key.iter().cloned());
        sandbox.hide.extend(self.sandbox_hide.iter().cloned());
        sandbox
            .hide
            .extend(["/etc/lorry-controller", "/var/lib/lorry-controller"].map(PathBuf::from));
        sandbox.working_area = config.working_area.clone();
        // lorry itself, shown to each job as it is then (it may be replaced).
        let program = &config.lorry.program;
        sandbox.read_only.extend(
            find_program(program)
                .or_else(|| (program.components().count() > 1).then(|| program.clone())),
        );
        sandbox.read_only.extend(self.lorry_config.iter().cloned());
        sandbox.read_write.extend(lorry_paths.writable());
        sandbox.allow_local_upstreams = lorry_paths.allow_local_upstreams;
        sandbox.known_hosts = self.known_hosts(config);
        sandbox.home = home;
        Ok(Some(sandbox))
    }

    /// The known_hosts file of the jobs: `--ssh-known-hosts`, else one in
    /// the state directory (made at start, see [`crate::sandbox::Sandbox::keep_known_hosts`]).
    fn known_hosts(&self, config: &MinionConfig) -> Option<PathBuf> {
        self.ssh_known_hosts
            .clone()
            .or_else(|| Some(config.state_dir.as_ref()?.join("known_hosts")))
    }
}

/// `lorry` beside the minion's executable when there is one, else `lorry`
/// (looked up on PATH when started).
fn default_lorry(own_exe: Option<&Path>) -> PathBuf {
    own_exe
        .and_then(Path::parent)
        .map(|dir| dir.join("lorry"))
        .filter(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("lorry"))
}

/// `program` itself when it names a file, else its first match on PATH.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        Options::try_parse_from(
            std::iter::once("lorry-controller-minion").chain(args.iter().copied()),
        )
        .expect("parse")
    }

    #[test]
    fn defaults_are_the_originals() {
        let config = parse(&[]).into_config(None).expect("config");
        assert_eq!(config.webapp, "http://localhost:12765");
        assert_eq!(config.lorry.program, Path::new("lorry"));
        assert_eq!(config.sleep, Duration::from_secs(30));
        assert!(config.working_area.is_none());
        assert!(config.lorry.limits.is_empty());
    }

    #[test]
    fn lorry_next_to_the_minion_is_preferred() {
        let dir = tempfile::tempdir().expect("tempdir");
        let minion = dir.path().join("lorry-controller-minion");
        assert_eq!(default_lorry(Some(&minion)), Path::new("lorry"));
        std::fs::write(dir.path().join("lorry"), "").expect("write");
        assert_eq!(default_lorry(Some(&minion)), dir.path().join("lorry"));
    }

    #[test]
    fn options_become_the_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lorry_conf = dir.path().join("lorry.conf");
        std::fs::write(&lorry_conf, "[config]\nworking-area = /srv/wa\n").expect("write");
        let config = parse(&[
            "--webapp-host=::1",
            "--webapp-port=8080",
            "--sleep=0.5",
            "--lorry-path=/opt/lorry",
            &format!("--lorry-config={}", lorry_conf.display()),
            "--cpu-limit=100",
            "--memory-limit=1000000000",
        ])
        .into_config(None)
        .expect("config");
        assert_eq!(config.webapp, "http://[::1]:8080");
        assert_eq!(config.sleep, Duration::from_millis(500));
        assert_eq!(config.working_area, Some(PathBuf::from("/srv/wa")));
        assert_eq!(config.lorry.limits.cpu_seconds, Some(100));
        assert_eq!(config.lorry.limits.memory_bytes, Some(1_000_000_000));
        let argv = config.lorry.argv(Path::new("x.lorry"), None);
        assert_eq!(argv[0], "prlimit");
        assert!(argv.iter().any(|a| a == "/opt/lorry"));
    }

    #[test]
    fn a_sandbox_asked_for_must_work_and_the_default_falls_back() {
        let missing = "--bwrap-path=/nonexistent/bwrap";
        let err = parse(&["--sandbox=bwrap", missing])
            .into_config(None)
            .expect_err("bwrap asked for, not there");
        assert!(err.to_string().contains("/nonexistent/bwrap"), "{err}");
        let config = parse(&[missing]).into_config(None).expect("fallback");
        assert!(config.sandbox.is_none());
        assert!(config.isolation().starts_with("no sandbox + "));
        let config = parse(&["--sandbox=none", "--no-job-cgroups"])
            .into_config(None)
            .expect("none");
        assert_eq!(config.isolation(), "no sandbox + rlimits only");
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        for args in [
            &["--sleep=-1"][..],
            &["--sleep=soon"],
            &["--webapp-port=70000"],
            &["--cpu-limit=-5"],
        ] {
            let argv = std::iter::once("m").chain(args.iter().copied());
            assert!(Options::try_parse_from(argv).is_err(), "{args:?}");
        }
        let err = parse(&[
            "--file-size-limit=10",
            "--prlimit-path=/nonexistent/prlimit",
        ])
        .into_config(None)
        .expect_err("no prlimit");
        assert!(err.to_string().contains("/nonexistent/prlimit"), "{err}");
        let err = parse(&["--lorry-config=/nonexistent/lorry.conf"])
            .into_config(None)
            .expect_err("no lorry config");
        assert!(err.to_string().contains("/nonexistent/lorry.conf"), "{err}");
    }
}
