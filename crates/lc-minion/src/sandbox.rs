//! The job's sandbox and environment: what a job sees of the machine.
//!
//! A job parses what strangers send (packs, archives, the converters'
//! inputs), so it runs as if subverted: under bubblewrap (`bwrap`) with the
//! root file system read-only, a private `/tmp`, the minion's home
//! directory, configuration, token file and state hidden, only its own
//! lorry's working directory of the working area, and a PID namespace of
//! its own; the network stays (mirroring needs it). Paths the admin
//! configured stay reachable: a `file://` downstream and the bundle and
//! tarball directories read-write, the lorry configuration read-only, and
//! with `allow-local-upstreams` the job's own local upstreams read-only.
//! ssh reaches the minion's keys only through an ssh-agent socket (see
//! [`crate::agent`]) and uses a `known_hosts` file the minion keeps.
//!
//! The environment is rebuilt from [`PASSED_ENV`] whether or not bwrap is
//! used: none of the minion's own variables (its token, the proxies meant
//! for the webapp) reach the job.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Variables of the minion's environment a job keeps (with every `LC_*`):
/// what programs need to find programs, name the user, read text and
/// verify TLS, and `GIT_SSH`/`GIT_SSH_COMMAND` when the admin chose how
/// git runs ssh. Everything else is dropped; the job also gets the proxy
/// of `--proxy-config`, `SSH_AUTH_SOCK` of the minion's agent and the
/// containment marker. Listed in ARCH.md.
pub const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
];

/// Whether the minion's variable `name` is passed to jobs.
pub fn passes(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    PASSED_ENV.contains(&name) || name.starts_with("LC_")
}

/// The part of `vars` (the minion's environment) a job keeps. Inside the
/// sandbox `TMPDIR` is the private `/tmp`, whatever the minion's.
pub fn job_env(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    sandboxed: bool,
) -> Vec<(OsString, OsString)> {
    let mut kept: Vec<(OsString, OsString)> = vars
        .into_iter()
        .filter(|(name, _)| passes(name))
        .filter(|(name, _)| !(sandboxed && name == "TMPDIR"))
        .collect();
    if !kept.iter().any(|(name, _)| name == "PATH") {
        kept.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    if sandboxed {
        // Programs that default to /var/tmp (cvs) find the writable one.
        kept.push(("TMPDIR".into(), "/tmp".into()));
    }
    kept
}

/// How jobs are isolated, as chosen at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SandboxKind {
    /// bubblewrap: the default where it works.
    Bwrap,
    /// No sandbox: the job sees what the minion sees (a warning at start).
    #[default]
    None,
}

/// The sandbox's settings, the same for every job.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The bwrap program.
    pub bwrap: PathBuf,
    /// Hidden from jobs: a directory becomes an empty tmpfs, a file an
    /// empty one. The minion's home, configuration, token and state.
    pub hide: Vec<PathBuf>,
    /// The working area: hidden but for the job's own directory.
    pub working_area: Option<PathBuf>,
    /// Shown read-only even when under a hidden path (lorry, its
    /// configuration).
    pub read_only: Vec<PathBuf>,
    /// Shown read-write: a `file://` downstream, bundle and tarball
    /// directories.
    pub read_write: Vec<PathBuf>,
    /// Whether lorry may mirror local upstreams: then each job's own local
    /// upstream paths are shown read-only.
    pub allow_local_upstreams: bool,
    /// The minion's home directory (an empty tmpfs in the sandbox), where
    /// `.ssh/known_hosts` is bound.
    pub home: Option<PathBuf>,
    /// The `known_hosts` file the minion keeps, bound read-write at
    /// `<home>/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// The minion's ssh-agent socket, bound at its own path.
    pub agent_socket: Option<PathBuf>,
}

/// What differs between jobs.
#[derive(Debug, Clone, Default)]
pub struct JobPaths {
    /// The private directory with the spec and lorry's result file.
    pub spec_dir: PathBuf,
    /// The lorry's working directories in the working area (one per spec).
    pub working_dirs: Vec<PathBuf>,
    /// The spec's local upstream paths (shown only with
    /// `allow-local-upstreams`).
    pub local_upstreams: Vec<PathBuf>,
}

impl Sandbox {
    pub fn new(bwrap: impl Into<PathBuf>) -> Self {
        Sandbox {
            bwrap: bwrap.into(),
            hide: Vec::new(),
            working_area: None,
            read_only: Vec::new(),
            read_write: Vec::new(),
            allow_local_upstreams: false,
            home: None,
            known_hosts: None,
            agent_socket: None,
        }
    }

    /// Makes the jobs' known_hosts file when missing (mode 0600), first
    /// copied from the minion's `~/.ssh/known_hosts`; without it ssh in
    /// jobs starts with no known host each time.
    pub fn keep_known_hosts(&mut self) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(file) = self.known_hosts.clone() else {
            return;
        };
        if file.exists() {
            return;
        }
        let seed = self
            .home
            .as_ref()
            .and_then(|h| std::fs::read(h.join(".ssh/known_hosts")).ok())
            .unwrap_or_default();
        let made = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&file)?
                    .write_all(&seed)
            });
        if let Err(e) = made {
            tracing::warn!(file = %file.display(), error = %e, "cannot make the jobs' known_hosts; ssh in jobs starts with no known host each time");
            self.known_hosts = None;
        }
    }

    /// bwrap and its options for one job, ending with `--`; the job's
    /// command follows. Bindings are made in order, so what is shown comes
    /// after what is hidden.
    pub fn argv(&self, job: &JobPaths) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![self.bwrap.clone().into()];
        let mut add = |args: &[&OsStr]| argv.extend(args.iter().map(|a| (*a).to_owned()));
        add(&[
            "--ro-bind".as_ref(),
            "/".as_ref(),
            "/".as_ref(),
            "--dev".as_ref(),
            "/dev".as_ref(),
            "--proc".as_ref(),
            "/proc".as_ref(),
            "--tmpfs".as_ref(),
            "/tmp".as_ref(),
            "--unshare-pid".as_ref(),
            "--unshare-ipc".as_ref(),
            "--die-with-parent".as_ref(),
        ]);
        // Hidden directories become empty tmpfs, made read-only once what
        // is shown in them is bound.
        let mut emptied: Vec<&Path> = Vec::new();
        // Other users' runtime directories hold agents and session buses.
        if Path::new("/run/user").is_dir() {
            add(&["--tmpfs".as_ref(), "/run/user".as_ref()]);
            emptied.push(Path::new("/run/user"));
        }
        let hidden: Vec<&PathBuf> = self
            .home
            .iter()
            .chain(&self.hide)
            .chain(self.working_area.as_ref())
            .filter(|path| path.as_path() != Path::new("/"))
            .collect();
        // A path inside another hidden directory is hidden with it.
        let outermost = hidden.iter().filter(|path| {
            !hidden
                .iter()
                .any(|other| other != *path && path.starts_with(other) && other.is_dir())
        });
        for path in outermost {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_dir() => {
                    add(&["--tmpfs".as_ref(), path.as_os_str()]);
                    emptied.push(path);
                }
                Ok(_) => add(&["--ro-bind".as_ref(), "/dev/null".as_ref(), path.as_os_str()]),
                Err(_) => {}
            }
        }
        let shown = self
            .read_only
            .iter()
            .map(|p| (p, false))
            .chain(self.read_write.iter().map(|p| (p, true)))
            .chain(
                job.local_upstreams
                    .iter()
                    .filter(|_| self.allow_local_upstreams)
                    .map(|p| (p, false)),
            )
            .chain(job.working_dirs.iter().map(|p| (p, true)))
            .chain(std::iter::once((&job.spec_dir, true)))
            .chain(self.agent_socket.iter().map(|p| (p, true)));
        for (path, writable) in shown {
            if path.exists() {
                let how = if writable { "--bind" } else { "--ro-bind" };
                add(&[how.as_ref(), path.as_os_str(), path.as_os_str()]);
            }
        }
        if let (Some(home), Some(known_hosts)) = (&self.home, &self.known_hosts)
            && known_hosts.is_file()
        {
            let target = home.join(".ssh/known_hosts");
            add(&[
                "--bind".as_ref(),
                known_hosts.as_os_str(),
                target.as_os_str(),
            ]);
        }
        for dir in emptied {
            add(&["--remount-ro".as_ref(), dir.as_os_str()]);
        }
        add(&["--chdir".as_ref(), "/tmp".as_ref(), "--".as_ref()]);
        argv
    }
}

/// Whether `bwrap` can make the sandbox here: runs `true` in the smallest
/// one with the same namespaces. `Err` says why not (no program, no user
/// namespaces, a container that forbids mounts).
#[expect(
    clippy::disallowed_methods,
    reason = "the minion checks once that bwrap works before running jobs in it"
)]
pub fn probe(bwrap: &Path) -> Result<(), String> {
    let out = std::process::Command::new(bwrap)
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--unshare-pid",
            "--unshare-ipc",
            "--die-with-parent",
            "--",
            "true",
        ])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} fails ({}): {}",
            bwrap.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The local paths among the upstream URLs of a spec's JSON text (`url`
/// fields that are `file://` URLs or absolute paths). For a path that does
/// not exist (an svn URL with a path inside the repository) its nearest
/// existing ancestor, but never `/`.
pub fn local_upstreams(spec: &serde_json::Value) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect_urls(spec, &mut found);
    found
        .into_iter()
        .filter_map(|url| {
            let path = url
                .strip_prefix("file://")
                .map(str::to_owned)
                .or_else(|| url.starts_with('/').then(|| url.clone()))?;
            let mut path = PathBuf::from(path);
            while !path.exists() {
                path = path.parent()?.to_owned();
            }
            (path != Path::new("/")).then_some(path)
        })
        .collect()
}

fn collect_urls(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value {
                    serde_json::Value::String(text) if key == "url" => found.push(text.clone()),
                    _ => collect_urls(value, found),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_urls(item, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_variables_reach_the_job() {
        let vars = [
            ("PATH", "/bin"),
            ("HOME", "/home/lorry"),
            ("LC_ALL", "C.UTF-8"),
            ("LORRY_CONTROLLER_MINION_TOKEN", "secret"),
            ("http_proxy", "http://webapp-proxy:3128"),
            ("TMPDIR", "/var/tmp/x"),
            ("RUST_LOG", "debug"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let names = |env: Vec<(OsString, OsString)>| -> Vec<String> {
            env.into_iter()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(job_env(vars.clone(), false)),
            ["PATH", "HOME", "LC_ALL", "TMPDIR"]
        );
        assert_eq!(
            names(job_env(vars, true)),
            ["PATH", "HOME", "LC_ALL", "TMPDIR"]
        );
        assert_eq!(names(job_env(Vec::new(), false)), ["PATH"]);
    }

    #[test]
    fn local_upstreams_are_the_specs_local_urls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).expect("mkdir");
        let spec = serde_json::json!({"a": {"type": "svn",
            "url": format!("file://{}/trunk/x", repo.display()),
            "layout": {"url": "https://example.org/not-local"}},
            "b": {"type": "git", "url": repo.display().to_string()},
            "c": {"type": "git", "url": "file:///nonexistent-root-dir/x"}});
        assert_eq!(local_upstreams(&spec), [repo.clone(), repo]);
    }

    #[test]
    fn the_sandbox_hides_before_it_shows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let area = dir.path().join("area");
        let own = area.join("a%2Fb");
        std::fs::create_dir_all(&own).expect("mkdir");
        let token = dir.path().join("token");
        std::fs::write(&token, "t").expect("write");
        let mut sandbox = Sandbox::new("bwrap");
        sandbox.working_area = Some(area.clone());
        sandbox.hide = vec![token.clone(), dir.path().join("missing")];
        let argv = sandbox.argv(&JobPaths {
            spec_dir: dir.path().to_owned(),
            working_dirs: vec![own.clone()],
            local_upstreams: vec![dir.path().join("up")],
        });
        let text: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = |words: &[&str]| {
            text.windows(words.len())
                .position(|w| w == words)
                .unwrap_or_else(|| panic!("{words:?} in {text:?}"))
        };
        let token = token.display().to_string();
        let area = area.display().to_string();
        let own = own.display().to_string();
        assert!(at(&["--tmpfs", &area]) < at(&["--bind", &own, &own]));
        at(&["--ro-bind", "/dev/null", &token]);
        assert!(
            !text
                .iter()
                .any(|a| a.ends_with("missing") || a.ends_with("up"))
        );
        assert_eq!(text.last().map(String::as_str), Some("--"));
    }
}
