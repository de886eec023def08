//! What the minion runs with: the webapp's address, its timings, and how to
//! start `lorry`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use lc_base::proxy::ProxyConfig;
use lc_base::redact::SecretUrl;

use crate::Error;
use crate::output::Redactor;

/// Everything [`crate::run`] needs.
#[derive(Debug, Clone)]
pub struct MinionConfig {
    /// `http://host:port` of the webapp, without a trailing slash.
    pub webapp: String,
    /// Timeout of each request to the webapp.
    pub webapp_timeout: Duration,
    /// How long to wait before asking again when there was no job.
    pub sleep: Duration,
    /// How often a running job's new output is sent (the job's heartbeat).
    pub update_interval: Duration,
    /// The most lorries taken as one batch check (`--batch`; 0: none).
    pub batch: usize,
    /// `ls-remote`s of a batch run at once.
    pub batch_parallel: usize,
    /// The longest one `ls-remote` of a batch may take.
    pub batch_ls_remote_timeout: Duration,
    /// Longest wait between retries while the webapp is unreachable.
    pub retry_max: Duration,
    /// Time between SIGTERM and SIGKILL to lorry's process group.
    pub kill_grace: Duration,
    /// After SIGTERM to the minion, how long it keeps trying to report the
    /// killed job to an unreachable webapp before it gives up and exits.
    pub shutdown_report_timeout: Duration,
    /// Most bytes of each stream kept while the webapp is unreachable.
    pub output_cap: usize,
    /// Most bytes of one form-encoded job-update body. Output beyond it
    /// goes in further updates. The webapp accepts 64 MiB; non-ASCII text
    /// takes three times its size once encoded.
    pub update_max_bytes: usize,
    /// Host name and process id given in give-me-job.
    pub host: String,
    pub pid: u32,
    pub lorry: LorryCommand,
    /// lorry's working area, for the disk usage reported at a job's end.
    pub working_area: Option<PathBuf>,
    /// Below this many bytes free on the working area's file system no job
    /// is asked for (`--min-free-disk`; 0: no limit).
    pub min_free_disk: u64,
    /// Where the running job is recorded (see [`crate::jobstate`]); none:
    /// a job of a killed minion is left to the webapp's ghost timeout.
    pub state_dir: Option<PathBuf>,
    pub redactor: Redactor,
    /// The webapp's minion token, sent with every request when set.
    pub webapp_token: Option<String>,
    /// The bubblewrap sandbox of every job; `None`: no sandbox.
    pub sandbox: Option<crate::sandbox::Sandbox>,
    /// Where each job gets a cgroup of its own; `None`: rlimits only.
    pub cgroups: Option<crate::cgroup::Cgroups>,
    /// Limits of each whole job (a spec may lower them).
    pub job_limits: crate::cgroup::JobLimits,
    /// Keys the minion's ssh-agent holds for the jobs; none: no agent.
    pub ssh_keys: Vec<PathBuf>,
    /// The agent's socket, once it runs (`SSH_AUTH_SOCK` of the jobs).
    pub agent_socket: Option<PathBuf>,
}

/// `--min-free-disk` unless given: 1 GiB.
pub const DEFAULT_MIN_FREE_DISK: u64 = 1 << 30;

impl MinionConfig {
    /// A configuration with the defaults of the command line for the
    /// webapp at `webapp` and the lorry program `program`.
    pub fn new(webapp: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        MinionConfig {
            webapp: webapp.into().trim_end_matches('/').to_owned(),
            webapp_timeout: Duration::from_secs(60),
            sleep: Duration::from_secs(30),
            update_interval: Duration::from_secs(5),
            batch: 0,
            batch_parallel: 8,
            batch_ls_remote_timeout: Duration::from_secs(60),
            retry_max: Duration::from_secs(60),
            kill_grace: Duration::from_secs(5),
            shutdown_report_timeout: Duration::from_secs(30),
            output_cap: 16 * 1024 * 1024,
            update_max_bytes: 16 * 1024 * 1024,
            host: hostname(),
            pid: std::process::id(),
            lorry: LorryCommand::new(program),
            working_area: None,
            min_free_disk: DEFAULT_MIN_FREE_DISK,
            state_dir: None,
            redactor: Redactor::default(),
            webapp_token: None,
            sandbox: None,
            cgroups: None,
            job_limits: crate::cgroup::JobLimits::default(),
            ssh_keys: Vec::new(),
            agent_socket: None,
        }
    }

    /// What isolates jobs, as reported at start-up, in every job's first
    /// output line and in job-updates: `bwrap` or `no sandbox`, then
    /// `cgroup v1`, `cgroup v2` or `rlimits only`.
    pub fn isolation(&self) -> String {
        let sandbox = if self.sandbox.is_some() {
            "bwrap"
        } else {
            "no sandbox"
        };
        let limits = self
            .cgroups
            .as_ref()
            .map_or("rlimits only", crate::cgroup::Cgroups::name);
        format!("{sandbox} + {limits}")
    }

    /// Puts the proxy of `proxy.conf` into lorry's environment and hides
    /// its password from the job output. A missing file means no proxy, as
    /// in the original; a file that exists but is not valid is an error.
    pub fn use_proxy_config(&mut self, file: &Path) -> Result<(), Error> {
        if !file.exists() {
            tracing::debug!(file = %file.display(), "no proxy configuration");
            return Ok(());
        }
        let proxy = ProxyConfig::load(file)?;
        let mut secrets = vec![proxy.url().expose().to_owned()];
        if let Some(password) = &proxy.password {
            secrets.push(password.clone());
            secrets.push(lc_base::proxy::percent_encode(password));
        }
        self.redactor = Redactor::new(secrets);
        self.lorry.env = proxy
            .env()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        tracing::info!(proxy = %proxy.url(), "lorry goes through a proxy");
        Ok(())
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Resource limits of lorry and everything it starts.
///
/// They are set by running lorry through util-linux's `prlimit`, which sets
/// them on itself and then executes lorry (same process id, same process
/// group): the workspace forbids `unsafe`, which rules out `setrlimit` in a
/// `pre_exec` hook, and setting them on the minion itself would limit the
/// minion too. Each limit is per process (as `setrlimit` is), inherited by
/// git and the importers lorry starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// RLIMIT_CPU: CPU seconds; the kernel sends SIGXCPU, then SIGKILL.
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_AS: bytes of address space; allocations beyond it fail.
    pub memory_bytes: Option<u64>,
    /// RLIMIT_FSIZE: bytes of the largest file written; SIGXFSZ beyond it.
    pub file_size_bytes: Option<u64>,
    /// RLIMIT_NPROC: processes of the user (not of the job: the kernel
    /// counts every process of the user id); the fallback for `tasks-max`
    /// without a cgroup.
    pub user_processes: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The `prlimit` options that set these limits (soft and hard alike,
    /// but for CPU seconds: the hard limit is 5 s later, so that SIGXCPU,
    /// not SIGKILL, ends a process that reaches it).
    pub fn prlimit_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(n) = self.cpu_seconds {
            // SIGXCPU at the soft limit names it; SIGKILL 5 s later.
            args.push(format!("--cpu={n}:{}", n.saturating_add(5)));
        }
        if let Some(n) = self.memory_bytes {
            args.push(format!("--as={n}"));
        }
        if let Some(n) = self.file_size_bytes {
            args.push(format!("--fsize={n}"));
        }
        if let Some(n) = self.user_processes {
            args.push(format!("--nproc={n}"));
        }
        args
    }

    /// These limits with a job's limits that no cgroup enforces: its CPU
    /// seconds and memory become per-process limits, its tasks the user's.
    pub fn with_job_limits(&self, job: &crate::cgroup::JobLimits) -> Limits {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limits {
            cpu_seconds: min(self.cpu_seconds, job.cpu_seconds),
            memory_bytes: min(self.memory_bytes, job.memory_max),
            file_size_bytes: self.file_size_bytes,
            user_processes: min(self.user_processes, job.tasks_max),
        }
    }

    /// `prlimit` and its options, ending with `--`; nothing without limits.
    pub fn prlimit_argv(&self, prlimit: &Path) -> Vec<OsString> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut argv: Vec<OsString> = vec![prlimit.into()];
        argv.extend(self.prlimit_args().into_iter().map(OsString::from));
        argv.push("--".into());
        argv
    }
}

/// How `lorry` is started for one job.
#[derive(Debug, Clone)]
pub struct LorryCommand {
    pub program: PathBuf,
    /// Passed to lorry as `--config`.
    pub config: Option<PathBuf>,
    /// Passed to lorry as `--working-area`.
    pub working_area: Option<PathBuf>,
    /// Added to lorry's environment (the proxy variables).
    pub env: Vec<(String, SecretUrl)>,
    pub limits: Limits,
    /// The `prlimit` program used when there are limits.
    pub prlimit: PathBuf,
}

impl LorryCommand {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        LorryCommand {
            program: program.into(),
            config: None,
            working_area: None,
            env: Vec::new(),
            limits: Limits::default(),
            prlimit: PathBuf::from("prlimit"),
        }
    }

    /// Program and arguments for mirroring the spec in `spec_file`, lorry
    /// writing what it did to `result_file`.
    pub fn argv(&self, spec_file: &Path, result_file: Option<&Path>) -> Vec<OsString> {
        let mut argv = self.limits.prlimit_argv(&self.prlimit);
        argv.extend(self.lorry_argv(spec_file, result_file));
        argv
    }

    /// lorry and its arguments alone, without `prlimit`.
    pub fn lorry_argv(&self, spec_file: &Path, result_file: Option<&Path>) -> Vec<OsString> {
        self.lorry_argv_for(spec_file, result_file, false)
    }

    /// [`LorryCommand::lorry_argv`], or with `check_refs` for a batch
    /// check of the batch file `spec_file`.
    pub fn lorry_argv_for(
        &self,
        spec_file: &Path,
        result_file: Option<&Path>,
        check_refs: bool,
    ) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![self.program.clone().into()];
        if let Some(config) = &self.config {
            argv.push("--config".into());
            argv.push(config.clone().into());
        }
        if let Some(area) = &self.working_area {
            argv.push("--working-area".into());
            argv.push(area.clone().into());
        }
        if let Some(file) = result_file {
            argv.push("--result-file".into());
            argv.push(file.into());
        }
        if check_refs {
            argv.push("--check-refs".into());
        }
        argv.push(spec_file.into());
        argv
    }

    /// The command, in a process group of its own, stdin from /dev/null,
    /// stdout and stderr piped, with the minion's environment cleaned (see
    /// [`crate::sandbox::job_env`]).
    pub fn command(&self, spec_file: &Path, result_file: Option<&Path>) -> tokio::process::Command {
        let env = crate::sandbox::job_env(std::env::vars_os(), false);
        self.command_for(&self.argv(spec_file, result_file), env)
    }

    /// The command `argv` (lorry behind its wrappers) with only the
    /// variables `env` and the proxy's; as [`LorryCommand::command`].
    #[expect(
        clippy::disallowed_methods,
        reason = "the minion runs lorry for each job"
    )]
    pub fn command_for(
        &self,
        argv: &[OsString],
        env: Vec<(OsString, OsString)>,
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_clear()
            .envs(env)
            .envs(self.env.iter().map(|(name, value)| (name, value.expose())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        command
    }
}

/// The `working-area` key of a lorry configuration file (INI, `[config]`
/// section, as `lorry --config` reads it); `None` when it has none.
pub fn working_area_of_lorry_config(file: &Path) -> Result<Option<PathBuf>, Error> {
    Ok(LorryConfigPaths::read(file)?.working_area)
}

/// What of a lorry configuration file the minion needs: where lorry
/// writes, and whether it may read local upstreams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LorryConfigPaths {
    pub working_area: Option<PathBuf>,
    /// The directory of a `file://` (or plain path) `mirror-base-url-push`.
    pub local_downstream: Option<PathBuf>,
    pub bundle_dest: Option<PathBuf>,
    pub tarball_dest: Option<PathBuf>,
    pub allow_local_upstreams: bool,
}

impl LorryConfigPaths {
    /// Reads `file` (INI, `[config]` section, keys with dashes or
    /// underscores, as `lorry --config` reads it).
    pub fn read(file: &Path) -> Result<LorryConfigPaths, Error> {
        let ini = ini::Ini::load_from_file(file).map_err(|source| Error::LorryConfig {
            path: file.to_owned(),
            reason: source.to_string(),
        })?;
        let Some(section) = ini.section(Some("config")) else {
            return Ok(LorryConfigPaths::default());
        };
        let get = |key: &str| {
            section
                .get(key)
                .or_else(|| section.get(key.replace('-', "_")))
                .map(str::trim)
        };
        let path = |key: &str| get(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        Ok(LorryConfigPaths {
            working_area: path("working-area"),
            local_downstream: get("mirror-base-url-push")
                .and_then(|url| {
                    url.strip_prefix("file://")
                        .or(Some(url).filter(|u| u.starts_with('/')))
                })
                .map(PathBuf::from),
            bundle_dest: path("bundle-dest"),
            tarball_dest: path("tarball-dest"),
            allow_local_upstreams: get("allow-local-upstreams").is_some_and(|v| {
                matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1")
            }),
        })
    }

    /// The directories lorry writes besides the working area (created when
    /// missing, so that they can be shown in the sandbox).
    pub fn writable(&self) -> Vec<PathBuf> {
        [
            &self.local_downstream,
            &self.bundle_dest,
            &self.tarball_dest,
        ]
        .into_iter()
        .flatten()
        .filter(|dir| dir.is_dir() || std::fs::create_dir_all(dir).is_ok())
        .cloned()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_prlimit_options_in_front_of_lorry() {
        let mut lorry = LorryCommand::new("/usr/bin/lorry");
        lorry.config = Some("/etc/lorry.conf".into());
        let plain = lorry.argv(Path::new("/tmp/x.lorry"), None);
        assert_eq!(
            plain,
            [
                "/usr/bin/lorry",
                "--config",
                "/etc/lorry.conf",
                "/tmp/x.lorry"
            ]
            .map(OsString::from)
        );
        lorry.limits = Limits {
            cpu_seconds: Some(60),
            memory_bytes: None,
            file_size_bytes: Some(1 << 30),
            user_processes: None,
        };
        let limited = lorry.argv(Path::new("/tmp/x.lorry"), None);
        assert_eq!(
            limited[..4],
            ["prlimit", "--cpu=60:65", "--fsize=1073741824", "--"].map(OsString::from)
        );
        assert_eq!(limited[4..], plain[..]);
    }

    #[test]
    fn working_area_comes_from_the_lorry_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("lorry.conf");
        std::fs::write(
            &file,
            "[config]\nworking-area = /srv/lorry \nverbose = yes\n",
        )
        .expect("write");
        assert_eq!(
            working_area_of_lorry_config(&file).expect("read"),
            Some(PathBuf::from("/srv/lorry"))
        );
        std::fs::write(&file, "[config]\nverbose = yes\n").expect("write");
        assert_eq!(working_area_of_lorry_config(&file).expect("read"), None);
        let err = working_area_of_lorry_config(&dir.path().join("none.conf")).expect_err("missing");
        assert!(err.to_string().contains("none.conf"), "{err}");
    }

    #[test]
    fn proxy_configuration_sets_the_environment_and_hides_the_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = MinionConfig::new("http://localhost:1", "lorry");
        config
            .use_proxy_config(&dir.path().join("missing.conf"))
            .expect("a missing file is no proxy");
        assert!(config.lorry.env.is_empty());
        let file = dir.path().join("proxy.conf");
        std::fs::write(
            &file,
            r#"{"hostname": "proxy.example", "port": 3128, "username": "u", "password": "s3cr@t"}"#,
        )
        .expect("write");
        config.use_proxy_config(&file).expect("proxy");
        let names: Vec<&str> = config.lorry.env.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"http_proxy") && names.contains(&"https_proxy"));
        assert_eq!(
            config.lorry.env[0].1.expose(),
            "http://u:s3cr%40t@proxy.example:3128"
        );
        let shown = config.redactor.apply(
            "password s3cr@t, encoded s3cr%40t, http_proxy=http://u:s3cr%40t@proxy.example:3128\n",
        );
        assert!(!shown.contains("s3cr"), "{shown}");
        std::fs::write(&file, "{not json").expect("write");
        let err = config.use_proxy_config(&file).expect_err("invalid");
        assert!(err.to_string().contains("proxy.conf"), "{err}");
    }
}
