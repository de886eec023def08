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

/// A running `lorry-controller-webapp`, killed when dropped. Started by
/// [`Webapp::init`]`(dir).with_…().start()`.
pub struct Webapp {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub statedb: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    client: reqwest::blocking::Client,
}

/// How to start a [`Webapp`]: by default with its STATEDB (`webapp.db`),
/// CONFGIT directory (`confgit/`, read as it stands), local downstream
/// (`downstream/`) and log (`webapp.log`, debug level) in one directory,
/// pretended time allowed, and no host token from the test's environment.
#[must_use]
pub struct WebappBuilder {
    dir: PathBuf,
    defaults: bool,
    downstream: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
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

fn strings<S: AsRef<str>>(list: &[S]) -> Vec<String> {
    list.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// The file `fake.example`'s listing is read from (see
/// [`WebappBuilder::with_fake_host`]).
pub const FAKE_LISTING: &str = "fake.json";

fn write_fake_listing<S: AsRef<str>>(dir: &Path, repos: &[S]) {
    let repos: Vec<&str> = repos.iter().map(AsRef::as_ref).collect();
    std::fs::write(
        dir.join(FAKE_LISTING),
        serde_json::json!({ "ls-output": repos }).to_string(),
    )
    .expect("fake host listing");
}

impl WebappBuilder {
    /// Adds command-line options after the default ones.
    pub fn with_args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args.extend(strings(args));
        self
    }

    /// Replaces the local downstream by these `--git-server-type` and
    /// downstream options.
    pub fn with_downstream<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.downstream = strings(args);
        self
    }

    /// Adds the Upstream Host `fake.example` (`--debug-fake-upstream-host`)
    /// listing `repos`. The webapp reads its listing from `fake.json` in
    /// the test's directory at each listing: [`Webapp::fake_host_lists`]
    /// changes it.
    pub fn with_fake_host<S: AsRef<str>>(mut self, repos: &[S]) -> Self {
        write_fake_listing(&self.dir, repos);
        self.args.push(format!(
            "--debug-fake-upstream-host=fake.example={}",
            self.dir.join(FAKE_LISTING).display()
        ));
        self
    }

    /// Sets environment variables of the webapp.
    pub fn with_env<K: AsRef<str>, V: AsRef<str>>(mut self, vars: &[(K, V)]) -> Self {
        self.env.extend(
            vars.iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        self
    }

    /// No default option at all: the webapp gets only what `with_args`
    /// gives it (and the port options).
    pub fn without_defaults(mut self) -> Self {
        self.defaults = false;
        self.downstream.clear();
        self
    }

    /// Starts the webapp and waits until it listens.
    pub fn start(self) -> Webapp {
        let dir = self.dir;
        let mut args = Vec::new();
        if self.defaults {
            std::fs::create_dir_all(dir.join("confgit")).expect("confgit dir");
            args.extend([
                format!("--statedb={}", dir.join("webapp.db").display()),
                format!(
                    "--configuration-directory={}",
                    dir.join("confgit").display()
                ),
                "--no-debug-real-confgit".into(),
                "--debug-allow-pretend-time".into(),
                format!("--log={}", dir.join("webapp.log").display()),
                "--log-level=debug".into(),
            ]);
        }
        args.extend(self.downstream);
        args.extend(self.args);
        Webapp::spawn(&dir, args, self.env)
    }
}

impl Webapp {
    /// A webapp to start in `dir` (see [`WebappBuilder`]).
    pub fn init(dir: &Path) -> WebappBuilder {
        WebappBuilder {
            dir: dir.to_owned(),
            defaults: true,
            downstream: vec![
                "--git-server-type=local".into(),
                format!(
                    "--local-base-directory={}",
                    dir.join("downstream").display()
                ),
            ],
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    fn spawn(dir: &Path, args: Vec<String>, env: Vec<(String, String)>) -> Webapp {
        let port_file = dir.join("webapp.port");
        let _ = std::fs::remove_file(&port_file);
        let mut child = Command::new(WEBAPP)
            .args(&args)
            .arg("--debug-port=0")
            .arg(format!("--debug-port-file={}", port_file.display()))
            .env_remove("LORRY_GITLAB_PRIVATE_TOKEN")
            .env_remove("LORRY_GITEA_ACCESS_TOKEN")
            .env_remove("LORRY_GITHUB_TOKEN")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .spawn()
            .expect("start lorry-controller-webapp");
        let port = wait_for("the webapp's port file", READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the webapp exited with {status}");
            }
            std::fs::read_to_string(&port_file)
                .ok()?
                .trim()
                .parse()
                .ok()
        });
        let client = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        Webapp {
            child,
            port,
            dir: dir.to_owned(),
            statedb: dir.join("webapp.db"),
            args,
            env,
            client,
        }
    }

    /// What `fake.example` lists from now on (see
    /// [`WebappBuilder::with_fake_host`]).
    pub fn fake_host_lists<S: AsRef<str>>(&self, repos: &[S]) {
        write_fake_listing(&self.dir, repos);
    }

    /// Stops the webapp with SIGTERM and starts it again with the same
    /// options and environment.
    pub fn restart(self) -> Webapp {
        let dir = self.dir.clone();
        let args = self.args.clone();
        let env = self.env.clone();
        self.stop();
        Webapp::spawn(&dir, args, env)
    }

    /// Stops the webapp with SIGTERM and waits for it to exit.
    pub fn stop(mut self) {
        let status = terminate(&mut self.child);
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

    /// POST with a raw body, as `curl -d` sends them (a form).
    pub fn post_raw(&self, path: &str, body: &str) -> Answer {
        answer(
            self.client
                .post(self.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
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

    /// Writes CONFGIT's `lorry-controller.conf` and reads it.
    pub fn configure(&self, conf: &Value) -> Value {
        std::fs::write(
            self.dir.join("confgit/lorry-controller.conf"),
            serde_json::to_string_pretty(conf).expect("json"),
        )
        .expect("write conf");
        self.post_ok("/1.0/read-configuration", &[])
    }

    /// The one status entry of Upstream Host `host`.
    pub fn host_status(&self, host: &str) -> Value {
        let status = self.get_ok("/1.0/status");
        status["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .find(|h| h["host"] == host)
            .cloned()
            .unwrap_or_else(|| panic!("no host {host} in {status}"))
    }

    /// Asks for a job as a minion would: the job's id and path, if any.
    pub fn give_me_job(&self) -> Option<(i64, String)> {
        let job = self.post_ok("/1.0/give-me-job", &[("host", "minion"), ("pid", "1")]);
        let id = job["job_id"].as_i64()?;
        Some((id, job["path"].as_str().expect("path").to_owned()))
    }

    /// The output of job `id` and its exit ("no" while running).
    pub fn job(&self, id: i64) -> Value {
        self.get_ok(&format!("/1.0/job/{id}"))
    }

    /// Ends job `id` as a minion would.
    pub fn finish(&self, id: i64, exit: i64) {
        self.post_ok(
            "/1.0/job-update",
            &[("job_id", &id.to_string()), ("exit", &exit.to_string())],
        );
    }

    /// Everything the webapp logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("webapp.log")).unwrap_or_default()
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

/// A git lorry of CONFGIT (no Upstream Host) at `path`, hourly, with a
/// ten-minute timeout.
pub fn lorry(path: &str) -> NewLorry {
    git_lorry(path, 3600, 600)
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

/// A loopback port nothing listens on (bound, then released), for tests
/// of what an unreachable address does: port 1 may be taken on a shared
/// machine.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A minion running the real `lorry` with a local downstream in
/// `dir/downstream` and its working area in `dir/wa`; stopped with SIGTERM
/// when dropped.
pub struct RealMinion(pub Child);

impl RealMinion {
    pub fn start(webapp: &Webapp, dir: &std::path::Path) -> RealMinion {
        RealMinion::start_with(webapp, dir, &[], &[])
    }

    /// [`RealMinion::start`] with more options and environment variables.
    pub fn start_with(
        webapp: &Webapp,
        dir: &std::path::Path,
        args: &[String],
        env: &[(&str, &str)],
    ) -> RealMinion {
        let lorry_conf = dir.join("lorry.conf");
        std::fs::write(
            &lorry_conf,
            format!(
                "[config]\nworking-area = {}\nmirror-base-url-push = {}\n",
                dir.join("wa").display(),
                dir.join("downstream").display()
            ),
        )
        .expect("write lorry.conf");
        let child = Command::new(env!("CARGO_BIN_EXE_lorry-controller-minion"))
            .args([
                "--webapp-host=127.0.0.1".to_owned(),
                format!("--webapp-port={}", webapp.port),
                "--sleep=0.1".into(),
                "--update-interval=0.2".into(),
                format!("--lorry-path={}", env!("CARGO_BIN_EXE_lorry")),
                format!("--lorry-config={}", lorry_conf.display()),
                format!("--log={}", dir.join("minion.log").display()),
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("start minion");
        RealMinion(child)
    }
}

impl Drop for RealMinion {
    fn drop(&mut self) {
        terminate(&mut self.0);
    }
}

/// A bare upstream `name.git` under `root` with one commit on `main`.
pub fn one_commit_upstream(root: &Path, work: &Path, name: &str) {
    let bare = root.join(format!("{name}.git"));
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let clone = work.join(name);
    git(
        work,
        &[
            "clone",
            "-q",
            &bare.display().to_string(),
            &clone.display().to_string(),
        ],
    );
    std::fs::write(clone.join("f"), name).expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", name]);
    git(&clone, &["push", "-q", "origin", "main"]);
}
