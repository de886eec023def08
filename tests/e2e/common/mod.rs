//! Shared helpers of the end-to-end tests: the real binaries, started on an
//! ephemeral port with a fresh STATEDB in a temporary directory.

pub mod http_backend;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lc_core::db::{NewLorry, StateDb};
use serde_json::Value;

pub const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");

/// How long to wait for a process to become ready before failing the test.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `check` every 20 ms until it answers `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `lorry-controller-webapp`, killed when dropped.
pub struct Webapp {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub statedb: PathBuf,
    args: Vec<String>,
    client: reqwest::blocking::Client,
}

/// One HTTP answer: status code, headers and the body parsed as JSON
/// (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

impl Webapp {
    /// Starts the webapp with its STATEDB, configuration directory and local
    /// downstream inside `dir`, plus `extra` options.
    pub fn start(dir: &Path, extra: &[&str]) -> Webapp {
        let statedb = dir.join("webapp.db");
        let mut args: Vec<String> = vec![
            format!("--statedb={}", statedb.display()),
            format!(
                "--configuration-directory={}",
                dir.join("confgit").display()
            ),
            "--no-debug-real-confgit".into(),
            "--git-server-type=local".into(),
            format!(
                "--local-base-directory={}",
                dir.join("downstream").display()
            ),
            "--debug-allow-pretend-time".into(),
            format!("--log={}", dir.join("webapp.log").display()),
            "--log-level=debug".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Webapp::spawn(dir, args)
    }

    /// Starts the webapp with exactly `args` (plus the port options).
    pub fn start_plain(dir: &Path, args: &[&str]) -> Webapp {
        Webapp::spawn(dir, args.iter().map(|s| s.to_string()).collect())
    }

    fn spawn(dir: &Path, args: Vec<String>) -> Webapp {
        let port_file = dir.join("webapp.port");
        let _ = std::fs::remove_file(&port_file);
        let child = Command::new(WEBAPP)
            .args(&args)
            .arg("--debug-port=0")
            .arg(format!("--debug-port-file={}", port_file.display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("start lorry-controller-webapp");
        let port = wait_for("the webapp's port file", READY_TIMEOUT, || {
            std::fs::read_to_string(&port_file)
                .ok()?
                .trim()
                .parse()
                .ok()
        });
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let statedb = dir.join("webapp.db");
        Webapp {
            child,
            port,
            dir: dir.to_owned(),
            statedb,
            args,
            client,
        }
    }

    /// Stops the webapp with SIGTERM and starts it again with the same options.
    pub fn restart(self) -> Webapp {
        let dir = self.dir.clone();
        let args = self.args.clone();
        self.stop();
        Webapp::spawn(&dir, args)
    }

    /// Stops the webapp with SIGTERM and waits for it to exit.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "webapp exited with {status} after SIGTERM"
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn get(&self, path: &str) -> Answer {
        answer(self.client.get(self.url(path)).send().expect("GET"))
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        answer(
            self.client
                .post(self.url(path))
                .form(form)
                .send()
                .expect("POST"),
        )
    }

    /// POST with a raw body, as scripts send them.
    pub fn post_raw(&self, path: &str, body: &str) -> Answer {
        answer(
            self.client
                .post(self.url(path))
                .body(body.to_owned())
                .send()
                .expect("POST"),
        )
    }

    /// GET that must succeed; its JSON body.
    pub fn get_ok(&self, path: &str) -> Value {
        let answer = self.get(path);
        assert_eq!(answer.status, 200, "GET {path}: {answer:?}");
        answer.body
    }

    /// POST that must succeed; its JSON body.
    pub fn post_ok(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let answer = self.post(path, form);
        assert_eq!(answer.status, 200, "POST {path} {form:?}: {answer:?}");
        answer.body
    }

    pub fn queue(&self) -> Vec<String> {
        serde_json::from_value(self.get_ok("/1.0/list-queue")["queue"].clone()).expect("queue")
    }

    pub fn pretend_time(&self, now: i64) {
        self.post_ok("/1.0/pretend-time", &[("now", &now.to_string())]);
    }

    /// Adds lorries straight into STATEDB, as a CONFGIT read would.
    pub fn seed(&self, lorries: &[NewLorry]) {
        let db = StateDb::open(&self.statedb).expect("open STATEDB");
        db.write(|tx| {
            for lorry in lorries {
                tx.upsert_lorry(lorry)?;
            }
            Ok(())
        })
        .expect("seed lorries");
    }
}

impl Drop for Webapp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answer(response: reqwest::blocking::Response) -> Answer {
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header(reqwest::header::LOCATION);
    let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
    let text = response.text().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        location,
        content_type,
        body,
        text,
    }
}

/// A git lorry for `path` with the given interval and timeout.
pub fn git_lorry(path: &str, interval: i64, timeout: i64) -> NewLorry {
    let spec = serde_json::json!({ path: { "type": "git", "url": format!("git://example.invalid/{path}") } });
    NewLorry {
        path: path.to_owned(),
        text: serde_json::to_string_pretty(&spec).expect("json"),
        from_host: String::new(),
        from_path: String::new(),
        interval,
        lorry_timeout: timeout,
    }
}

/// Runs `git` in `dir` with no system or user configuration and a fixed
/// identity; panics with its stderr if it fails; answers its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished command's stdout and stderr, for assertion messages.
pub fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sends SIGTERM to `child` and waits for it to exit; panics if it is still
/// running after 15 s.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{} ignores SIGTERM",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
