//! Test doubles of the hosts Lorry Controller talks to, each following the
//! public API reference of the version it names, and a way to start the
//! real webapp with a chosen environment (the stand-in `ssh` first on PATH).
//!
//! HTTP doubles run in-process on 127.0.0.1 ephemeral ports, each on its
//! own thread with a small tokio runtime, and record the requests they get.

pub mod gitea_v1;
pub mod gitlab_v4;
pub mod ssh;
pub mod trove_http;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lc_core::db::{NewLorry, StateDb};
use serde_json::Value;

use crate::common::{READY_TIMEOUT, WEBAPP, wait_for};

/// An HTTP double serving a router until dropped.
pub struct Server {
    pub port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(router: axum::Router) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        Server {
            port,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `host:port`, as a CONFGIT host section names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request a double received.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
    pub at: std::time::Instant,
}

impl Seen {
    /// `METHOD path` (decoded path, no query).
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The real webapp started with extra environment variables.
pub struct App {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub statedb: PathBuf,
    client: reqwest::blocking::Client,
}

impl App {
    /// Starts the webapp with its STATEDB and CONFGIT directory in `dir`,
    /// pretend time allowed, plus `args` and `env`.
    pub fn start(dir: &Path, args: &[String], env: &[(String, String)]) -> App {
        let statedb = dir.join("webapp.db");
        let port_file = dir.join("webapp.port");
        let _ = std::fs::remove_file(&port_file);
        std::fs::create_dir_all(dir.join("confgit")).expect("confgit dir");
        let child = Command::new(WEBAPP)
            .arg(format!("--statedb={}", statedb.display()))
            .arg(format!(
                "--configuration-directory={}",
                dir.join("confgit").display()
            ))
            .arg("--no-debug-real-confgit")
            .arg("--debug-allow-pretend-time")
            .arg(format!("--log={}", dir.join("webapp.log").display()))
            .arg("--log-level=debug")
            .args(args)
            .arg("--debug-port=0")
            .arg(format!("--debug-port-file={}", port_file.display()))
            .env_remove("LORRY_GITLAB_PRIVATE_TOKEN")
            .env_remove("LORRY_GITEA_ACCESS_TOKEN")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .spawn()
            .expect("start lorry-controller-webapp");
        let mut app = App {
            child,
            port: 0,
            dir: dir.to_owned(),
            statedb,
            client: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
        };
        app.port = wait_for("the webapp's port file", READY_TIMEOUT, || {
            if let Ok(Some(status)) = app.child.try_wait() {
                panic!("the webapp exited with {status}");
            }
            std::fs::read_to_string(&port_file)
                .ok()?
                .trim()
                .parse()
                .ok()
        });
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value, Option<String>) {
        let r = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .expect("POST");
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = r.text().expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            location,
        )
    }

    pub fn post_ok(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, body, _) = self.post(path, form);
        assert_eq!(status, 200, "POST {path}: {body}");
        body
    }

    pub fn get_ok(&self, path: &str) -> Value {
        let r = self.client.get(self.url(path)).send().expect("GET");
        let status = r.status().as_u16();
        let body: Value = r.json().unwrap_or(Value::Null);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
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

    pub fn queue(&self) -> Vec<String> {
        serde_json::from_value(self.get_ok("/1.0/list-queue")["queue"].clone()).expect("queue")
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

    /// Everything the webapp logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("webapp.log")).unwrap_or_default()
    }

    /// Ends job `id` as a minion would.
    pub fn finish(&self, id: i64, exit: i64) {
        self.post_ok(
            "/1.0/job-update",
            &[("job_id", &id.to_string()), ("exit", &exit.to_string())],
        );
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A git lorry of CONFGIT (no Upstream Host) at `path`.
pub fn lorry(path: &str) -> NewLorry {
    let spec = serde_json::json!({ path: { "type": "git", "url": format!("git://example.invalid/{path}") } });
    NewLorry {
        path: path.to_owned(),
        text: spec.to_string(),
        from_host: String::new(),
        from_path: String::new(),
        interval: 3600,
        lorry_timeout: 600,
    }
}
