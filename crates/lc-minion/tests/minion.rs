//! The minion against a test double of the webapp (an in-test HTTP server
//! speaking give-me-job and job-update), running real child processes:
//! small shell scripts stand in for `lorry`.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, State};
use axum::routing::post;
use axum::{Json, Router};
use lc_api::{GiveMeJob, JobInfo, LorryInfo};
use lc_minion::{MinionConfig, Shutdown};

/// The first line of every job's output: how it is isolated (a
/// configuration made by `MinionConfig::new` has neither a sandbox nor
/// cgroups).
const ISOLATION_LINE: &str = "lorry-controller-minion: isolation: no sandbox + rlimits only (memory-max none, tasks-max none, cpu-seconds none)\n";

type Fields = HashMap<String, String>;

#[derive(Default)]
struct DoubleState {
    jobs: VecDeque<(i64, String)>,
    give_requests: usize,
    updates: Vec<Fields>,
    /// Answer kill_job once this many running updates were received.
    kill_after: Option<usize>,
    /// Refuse updates of a job as the real webapp does when it has ended
    /// the job (409) or forgotten it (404): job id, which updates (the
    /// running ones or the final one), status.
    refuse: Vec<(i64, Which, u16)>,
    /// The updates refused so.
    refused: Vec<Fields>,
    /// Connections accepted and closed unanswered while hung up.
    hung_up: usize,
    /// The lorry-timeout of the jobs handed out (default 3600 s).
    lorry_timeout: Option<i64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Running,
    Final,
}

/// A test double of the webapp: hands out queued jobs, records updates.
struct WebappDouble {
    state: Arc<Mutex<DoubleState>>,
    port: u16,
    server: Option<tokio::task::JoinHandle<()>>,
    /// Largest request body accepted; larger ones get 413, as axum's
    /// `DefaultBodyLimit` answers in the real webapp.
    body_limit: usize,
}

impl WebappDouble {
    async fn start() -> WebappDouble {
        WebappDouble::with_body_limit(64 * 1024 * 1024).await
    }

    async fn with_body_limit(body_limit: usize) -> WebappDouble {
        let mut double = WebappDouble {
            state: Arc::default(),
            port: 0,
            server: None,
            body_limit,
        };
        double.up().await;
        double
    }

    /// Listens again (on the same port after the first time).
    async fn up(&mut self) {
        self.down().await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind");
        self.port = listener.local_addr().expect("addr").port();
        let app = Router::new()
            .route("/1.0/give-me-job", post(give_me_job))
            .route("/1.0/job-update", post(job_update))
            .layer(axum::extract::DefaultBodyLimit::max(self.body_limit))
            .with_state(Arc::clone(&self.state));
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Stops listening: connections are refused until [`WebappDouble::up`].
    async fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Stays on the port but answers nothing: each connection is accepted,
    /// counted and closed, as a webapp that dies mid-request looks to the
    /// minion. [`WebappDouble::up`] answers again.
    async fn hang_up(&mut self) {
        self.down().await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind");
        let state = Arc::clone(&self.state);
        self.server = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                state.lock().expect("state").hung_up += 1;
                drop(stream);
            }
        }));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn add_job(&self, job_id: i64, path: &str) {
        self.lock().jobs.push_back((job_id, path.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DoubleState> {
        self.state.lock().expect("double state")
    }

    fn updates(&self) -> Vec<Fields> {
        self.lock().updates.clone()
    }

    /// All output received for `job_id`, stdout and stderr of each update in turn.
    fn output(&self, job_id: i64) -> String {
        self.updates()
            .iter()
            .filter(|u| u["job_id"] == job_id.to_string())
            .map(|u| format!("{}{}", u["stdout"], u["stderr"]))
            .collect()
    }

    fn final_update(&self, job_id: i64) -> Option<Fields> {
        self.updates()
            .into_iter()
            .find(|u| u["job_id"] == job_id.to_string() && u["exit"] != "no")
    }
}

async fn give_me_job(
    State(state): State<Arc<Mutex<DoubleState>>>,
    Form(fields): Form<Fields>,
) -> Json<GiveMeJob> {
    let mut state = state.lock().expect("state");
    state.give_requests += 1;
    assert!(fields.contains_key("host") && fields["pid"].parse::<u32>().is_ok());
    let Some((job_id, path)) = state.jobs.pop_front() else {
        return Json(GiveMeJob {
            job_id: None,
            lorry: None,
            batch: None,
        });
    };
    let text =
        format!("{{\"{path}\": {{\"type\": \"git\", \"url\": \"git://example.invalid/x\"}}}}");
    Json(GiveMeJob {
        job_id: Some(job_id),
        lorry: Some(LorryInfo {
            path,
            text,
            from_host: String::new(),
            from_path: String::new(),
            interval: 60,
            lorry_timeout: state.lorry_timeout.unwrap_or(3600),
            last_run: 0,
            last_run_exit: None,
            last_run_error: None,
            running_job: Some(job_id),
            disk_usage: None,
            due: 0,
            last_success: None,
            consecutive_failures: 0,
            jobs: None,
            last_checked_without_job: None,
            checked_without_job_how: None,
            last_job_run: None,
        }),
        batch: None,
    })
}

async fn job_update(
    State(state): State<Arc<Mutex<DoubleState>>>,
    Form(fields): Form<Fields>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut state = state.lock().expect("state");
    let which = if fields["exit"] == "no" {
        Which::Running
    } else {
        Which::Final
    };
    let refusal = state
        .refuse
        .iter()
        .find(|(job, w, _)| fields["job_id"] == job.to_string() && *w == which)
        .map(|(_, _, status)| *status);
    if let Some(status) = refusal {
        // The real webapp's words for each (lc-web job-update).
        let job = fields["job_id"].clone();
        state.refused.push(fields);
        let error = if status == 404 {
            format!("no job {job}")
        } else {
            format!("job {job} has already ended")
        };
        let status = axum::http::StatusCode::from_u16(status).expect("status");
        return (status, Json(serde_json::json!({ "error": error }))).into_response();
    }
    state.updates.push(fields.clone());
    let running = state.updates.iter().filter(|u| u["exit"] == "no").count();
    let kill_job = state.kill_after.is_some_and(|n| running >= n);
    Json(JobInfo {
        job_id: fields["job_id"].parse().unwrap_or(0),
        host: "h".into(),
        pid: 1,
        path: String::new(),
        exit: fields["exit"].clone(),
        kill_job,
        output: String::new(),
        disk_usage: None,
        disk_usage_nice: String::new(),
        job_started: String::new(),
        job_ended: String::new(),
        started: 0,
        ended: None,
        updated: 0,
        result: None,
    })
    .into_response()
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    file
}

fn config(double: &WebappDouble, lorry: &Path) -> MinionConfig {
    let mut config = MinionConfig::new(double.url(), lorry);
    config.sleep = Duration::from_millis(50);
    config.update_interval = Duration::from_millis(100);
    config.retry_max = Duration::from_millis(300);
    config.webapp_timeout = Duration::from_secs(5);
    config.kill_grace = Duration::from_secs(1);
    config
}

/// How long to wait for an event before failing: generous, as the machine
/// may be loaded; no test asserts how fast anything is.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT_LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn process_exists(pid: i32) -> bool {
    // A zombie has no cmdline to speak of; count only live processes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reports_output_exit_code_and_disk_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let area = dir.path().join("wa");
    // The spec file is readable, then a working directory is filled.
    let lorry = script(
        dir.path(),
        "lorry",
        &format!(
            "echo \"args: $*\"\nlast=\"\"; for a; do last=$a; done\ngrep -q upstream/foo \"$last\" && echo spec-ok\n\
             mkdir -p {area}/upstream%2Ffoo && head -c 200000 /dev/zero > {area}/upstream%2Ffoo/pack\n\
             echo 'to https://user:hunter2@example.com/x' >&2\nsleep 0.3\necho done\nexit 3",
            area = area.display()
        ),
    );
    let double = WebappDouble::start().await;
    double.add_job(7, "upstream/foo");
    let mut config = config(&double, &lorry);
    config.working_area = Some(area.clone());
    config.lorry.working_area = Some(area.clone());
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config, shutdown));
    wait_for("the final update", || double.final_update(7).is_some()).await;
    // It asks again after the job.
    let asked = double.lock().give_requests;
    wait_for("another give-me-job", || {
        double.lock().give_requests > asked
    })
    .await;
    trigger.trigger();
    minion.await.expect("join").expect("run");

    let last = double.final_update(7).expect("final");
    assert_eq!(last["exit"], "3");
    let usage: u64 = last["disk_usage"].parse().expect("disk usage");
    assert!(usage >= 200_000, "{usage}");
    let output = double.output(7);
    assert!(
        output.contains(&format!("--working-area {}", area.display())),
        "{output}"
    );
    assert!(
        output.contains("spec-ok\n") && output.contains("done\n"),
        "{output}"
    );
    assert!(output.contains("https://***@example.com/x"), "{output}");
    assert!(!output.contains("hunter2"), "{output}");
    let updates = double.updates();
    assert!(updates.iter().any(|u| u["exit"] == "no"), "heartbeats sent");
    assert_eq!(updates.iter().filter(|u| u["exit"] != "no").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_kept_while_the_webapp_is_away_and_the_result_delivered_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("finished");
    let started = dir.path().join("started");
    let lorry = script(
        dir.path(),
        "lorry",
        &format!(
            "touch {started}\nwhile [ ! -e {started}.go ]; do sleep 0.05; done\n\
             for i in 1 2 3 4 5; do echo line $i; echo err $i >&2; sleep 0.1; done\n\
             touch {marker}\nexit 0",
            started = started.display(),
            marker = marker.display()
        ),
    );
    let mut double = WebappDouble::start().await;
    double.add_job(1, "a/b");
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config(&double, &lorry), shutdown));
    wait_for("lorry to start", || started.exists()).await;
    double.hang_up().await;
    std::fs::write(dir.path().join("started.go"), "").expect("go");
    // The job runs to its end while nothing answers.
    wait_for("lorry to finish", || marker.exists()).await;
    // Several reports fail: at least three connections after lorry ended
    // (the HTTP client may open a second connection for one request, so
    // three mean the minion tried again at least once).
    let before = double.lock().hung_up;
    wait_for("the minion to try again", || {
        double.lock().hung_up >= before + 3
    })
    .await;
    double.up().await;
    wait_for("the final update", || double.final_update(1).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");

    assert_eq!(double.final_update(1).expect("final")["exit"], "0");
    let output = double.output(1);
    for i in 1..=5 {
        assert!(output.contains(&format!("line {i}\n")), "{output}");
        assert!(output.contains(&format!("err {i}\n")), "{output}");
    }
    let stdout: String = double
        .updates()
        .iter()
        .map(|u| u["stdout"].clone())
        .collect();
    assert_eq!(
        stdout,
        format!("{ISOLATION_LINE}line 1\nline 2\nline 3\nline 4\nline 5\n"),
        "in order, none twice"
    );
    assert!(
        double
            .updates()
            .iter()
            .all(|u| u["isolation"] == "no sandbox + rlimits only"),
        "every job-update says how the job is isolated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_job_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    // The grandchild must go too; TERM is ignored, so SIGKILL is needed.
    let lorry = script(
        dir.path(),
        "lorry",
        &format!(
            "trap '' TERM\nsleep 1000 &\necho $! > {}\necho started\nwait\nwait",
            pid_file.display()
        ),
    );
    let double = WebappDouble::start().await;
    double.lock().kill_after = Some(2);
    double.add_job(5, "slow/one");
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config(&double, &lorry), shutdown));
    // lorry would sleep 1000 s: the final update comes from the kill.
    wait_for("the final update", || double.final_update(5).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    let last = double.final_update(5).expect("final");
    assert_eq!(last["exit"], "137", "SIGKILL after the grace period");
    assert!(double.output(5).contains("killed lorry"));
    let grandchild: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    wait_for("the grandchild to die", || !process_exists(grandchild)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_minion_kills_and_reports_the_running_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = dir.path().join("started");
    let lorry = script(
        dir.path(),
        "lorry",
        &format!("touch {}\nexec sleep 1000", started.display()),
    );
    let double = WebappDouble::start().await;
    double.add_job(9, "x/y");
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config(&double, &lorry), shutdown));
    wait_for("lorry to start", || started.exists()).await;
    trigger.trigger();
    // lorry would sleep 1000 s: the minion ends it rather than wait.
    tokio::time::timeout(WAIT_LIMIT, minion)
        .await
        .expect("the minion stops")
        .expect("join")
        .expect("run");
    let last = double.final_update(9).expect("final");
    assert_eq!(last["exit"], "143", "SIGTERM");
    assert!(double.output(9).contains("the minion is stopping"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_applied_and_a_missing_lorry_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lorry = script(
        dir.path(),
        "lorry",
        "grep -E 'Max (cpu time|file size|address space)' /proc/$$/limits",
    );
    let double = WebappDouble::start().await;
    double.add_job(1, "l/imits");
    let mut config = config(&double, &lorry);
    config.lorry.limits = lc_minion::Limits {
        cpu_seconds: Some(321),
        memory_bytes: Some(4_000_000_000),
        file_size_bytes: Some(123_456_789),
        user_processes: None,
    };
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config.clone(), shutdown));
    wait_for("the first job", || double.final_update(1).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    let output = double.output(1);
    assert_eq!(
        double.final_update(1).expect("final")["exit"],
        "0",
        "{output}"
    );
    for value in ["321", "123456789", "4000000000"] {
        assert!(output.contains(value), "{value} in {output}");
    }

    config.lorry = lc_minion::LorryCommand::new(dir.path().join("missing-lorry"));
    double.add_job(2, "no/lorry");
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config, shutdown));
    wait_for("the second job", || double.final_update(2).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    assert_eq!(double.final_update(2).expect("final")["exit"], "127");
    assert!(double.output(2).contains("missing-lorry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_too_large_for_one_body_arrives_whole_and_a_413_shrinks_the_updates() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 100,000 × "é\n" per stream: 300 kB, 500 kB once form-encoded (é is
    // 6 bytes encoded), twice over the double's 256 KiB limit together.
    let lorry = script(
        dir.path(),
        "lorry",
        "i=0; while [ $i -lt 1000 ]; do printf 'é\\n%.0s' $(seq 100); printf 'è\\n%.0s' $(seq 100) >&2; i=$((i+1)); done\nexit 5",
    );
    let double = WebappDouble::with_body_limit(256 * 1024).await;
    double.add_job(3, "big/output");
    let mut config = config(&double, &lorry);
    // Everything arrives at the end, in one go.
    config.update_interval = Duration::from_secs(3600);
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config, shutdown));
    wait_for("the final update", || double.final_update(3).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");

    let last = double.final_update(3).expect("final");
    assert_eq!(last["exit"], "5");
    let updates = double.updates();
    assert!(updates.len() > 2, "split into several updates");
    let stdout: String = updates.iter().map(|u| u["stdout"].clone()).collect();
    let stderr: String = updates.iter().map(|u| u["stderr"].clone()).collect();
    assert_eq!(
        stdout,
        format!("{ISOLATION_LINE}{}", "é\n".repeat(100_000)),
        "all of it, in order, once"
    );
    assert_eq!(stderr, "è\n".repeat(100_000));
    assert_eq!(
        updates.iter().filter(|u| u["exit"] != "no").count(),
        1,
        "one final update, the last"
    );
    assert_ne!(updates[updates.len() - 1]["exit"], "no");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webapp_refusing_even_small_bodies_still_gets_the_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lorry = script(
        dir.path(),
        "lorry",
        "head -c 20000 /dev/zero | tr '\\0' x\necho\nexit 2",
    );
    // Below the minion's smallest body budget.
    let double = WebappDouble::with_body_limit(1000).await;
    double.add_job(4, "tiny/limit");
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config(&double, &lorry), shutdown));
    wait_for("the final update", || double.final_update(4).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    let last = double.final_update(4).expect("final");
    assert_eq!(last["exit"], "2");
    assert!(
        last["stdout"].contains("output dropped because the webapp refused them as too large"),
        "{last:?}"
    );
}

/// A job the webapp has ended (409: a ghost) or forgotten (404) while it
/// runs: the minion kills lorry, sends no final report for it, and goes on
/// to the next job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_webapp_no_longer_has_is_killed_and_not_reported() {
    for status in [409, 404] {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        // Job 1 hangs (its pid written down); job 2 succeeds.
        let lorry = script(
            dir.path(),
            "lorry",
            &format!(
                "for a; do spec=$a; done
                 if grep -q gone/job \"$spec\"; then echo $$ > {pid}; exec sleep 1000; fi
                 echo fine",
                pid = pid_file.display()
            ),
        );
        let double = WebappDouble::start().await;
        double.lock().refuse.push((1, Which::Running, status));
        double.add_job(1, "gone/job");
        double.add_job(2, "next/job");
        let (trigger, shutdown) = Shutdown::new();
        let minion = tokio::spawn(lc_minion::run(config(&double, &lorry), shutdown));
        wait_for("the next job's report", || double.final_update(2).is_some()).await;
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid")
            .trim()
            .parse()
            .expect("pid number");
        assert!(
            !process_exists(pid),
            "{status}: lorry of the gone job killed"
        );
        trigger.trigger();
        minion.await.expect("join").expect("run");

        assert!(!double.lock().refused.is_empty(), "{status}: refused");
        assert_eq!(
            double.final_update(1),
            None,
            "{status}: no final report for a job the webapp no longer has"
        );
        assert!(
            double.lock().refused.iter().all(|u| u["exit"] == "no"),
            "{status}: only running updates were sent for it"
        );
        assert_eq!(double.final_update(2).expect("final")["exit"], "0");
        assert!(double.output(2).contains("fine"), "{status}");
    }
}

/// A final report the webapp refuses (409: it ended the job meanwhile;
/// 404: it forgot it) is final: not retried, and the minion goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_final_report_is_not_retried_and_the_minion_goes_on() {
    for status in [409, 404] {
        let dir = tempfile::tempdir().expect("tempdir");
        let lorry = script(dir.path(), "lorry", "echo ran\nexit 1");
        let double = WebappDouble::start().await;
        double.lock().refuse.push((1, Which::Final, status));
        double.add_job(1, "refused/report");
        double.add_job(2, "next/job");
        let (trigger, shutdown) = Shutdown::new();
        let minion = tokio::spawn(lc_minion::run(config(&double, &lorry), shutdown));
        wait_for("the next job's report", || double.final_update(2).is_some()).await;
        // And one more give-me-job after it: the minion is still asking.
        let asked = double.lock().give_requests;
        wait_for("another give-me-job", || {
            double.lock().give_requests > asked
        })
        .await;
        trigger.trigger();
        minion.await.expect("join").expect("run");

        let refused = double.lock().refused.clone();
        assert_eq!(refused.len(), 1, "{status}: tried once: {refused:?}");
        assert_eq!(refused[0]["exit"], "1");
        assert_eq!(double.final_update(1), None);
        assert_eq!(double.final_update(2).expect("final")["exit"], "1");
    }
}

fn read_pid(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descendants_that_left_the_process_group_die_with_the_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (setsid_pid, double_forked) = (dir.path().join("setsid.pid"), dir.path().join("df.pid"));
    // One grandchild in a session of its own, one double-forked into one;
    // neither holds lorry's pipes, and lorry exits at once.
    let lorry = script(
        dir.path(),
        "lorry",
        &format!(
            "setsid sleep 1000 >/dev/null 2>&1 </dev/null &\necho $! > {setsid}\n\
             (setsid sh -c 'sleep 1000 & echo $! > {df}' >/dev/null 2>&1 </dev/null &)\n\
             while [ ! -s {df} ]; do sleep 0.05; done\necho started\nexit 0",
            setsid = setsid_pid.display(),
            df = double_forked.display()
        ),
    );
    let double = WebappDouble::start().await;
    double.add_job(21, "contained/one");
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config(&double, &lorry), shutdown));
    wait_for("the final update", || double.final_update(21).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    assert_eq!(double.final_update(21).expect("final")["exit"], "0");
    for file in [&setsid_pid, &double_forked] {
        let pid = read_pid(file);
        wait_for("the escaped descendant to die", || !process_exists(pid)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minion_enforces_the_timeout_while_the_webapp_is_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("pid");
    let lorry = script(
        dir.path(),
        "lorry",
        &format!(
            "echo $$ > {}.tmp && mv {0}.tmp {0}\nexec sleep 1000",
            pid_file.display()
        ),
    );
    let mut double = WebappDouble::start().await;
    double.lock().lorry_timeout = Some(1);
    double.add_job(22, "slow/timeout");
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config(&double, &lorry), shutdown));
    wait_for("lorry to start", || pid_file.exists()).await;
    double.down().await;
    let pid = read_pid(&pid_file);
    wait_for("the minion to kill lorry by itself", || {
        !process_exists(pid)
    })
    .await;
    double.up().await;
    wait_for("the final update", || double.final_update(22).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    assert_eq!(double.final_update(22).expect("final")["exit"], "143");
    let output = double.output(22);
    assert!(output.contains("ran past its lorry-timeout"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::disallowed_methods,
    reason = "the test starts the orphan a killed minion would have left"
)]
async fn a_job_left_by_a_killed_minion_is_killed_and_reported_by_the_next() {
    use lc_minion::containment::MARKER_VAR;
    use lc_minion::jobstate::JobRecord;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    // What a minion killed mid-job leaves: its record, and the job's
    // process still running (here one started by the test, marked the same).
    let mut left = JobRecord::new(31, "orphan/one", "test-marker-31");
    left.minion_pid = 4_000_000_000;
    left.save(&state).expect("save record");
    let mut orphan = std::process::Command::new("sleep")
        .arg("1000")
        .env(MARKER_VAR, "test-marker-31")
        .spawn()
        .expect("start orphan");
    let orphan_pid = i32::try_from(orphan.id()).expect("pid");
    // And one whose end was known but not delivered.
    let mut ended = JobRecord::new(32, "orphan/two", "test-marker-32");
    ended.minion_pid = 4_000_000_000;
    ended.exit = Some(3);
    ended.save(&state).expect("save record");

    let lorry = script(dir.path(), "lorry", "exit 0");
    let double = WebappDouble::start().await;
    let mut config = config(&double, &lorry);
    config.state_dir = Some(state.clone());
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config, shutdown));
    wait_for("both ends reported", || {
        double.final_update(31).is_some() && double.final_update(32).is_some()
    })
    .await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    let first = double.final_update(31).expect("final");
    assert_eq!(first["exit"], "137", "{first:?}");
    assert!(first["stderr"].contains("was killed"), "{first:?}");
    assert!(!process_exists(orphan_pid));
    let _ = orphan.try_wait();
    let second = double.final_update(32).expect("final");
    assert_eq!(second["exit"], "3", "{second:?}");
    let left_files: Vec<_> = std::fs::read_dir(&state).expect("state dir").collect();
    assert!(left_files.is_empty(), "records removed: {left_files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lorrys_result_goes_with_the_final_update_or_is_left_out_when_too_big() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Writes {"version": 1, "pad": "<N × x>"} to the --result-file given.
    let lorry = script(
        dir.path(),
        "lorry",
        "while [ $# -gt 1 ]; do [ \"$1\" = --result-file ] && out=$2; shift; done\n\
         pad=$(head -c \"$PAD\" /dev/zero | tr '\\0' x)\n\
         printf '{\"version\": 1, \"pad\": \"%s\"}' \"$pad\" > \"$out\"\necho mirrored",
    );
    let double = WebappDouble::start().await;
    double.add_job(41, "with/result");
    let mut config = config(&double, &lorry);
    config.update_max_bytes = 64 * 1024;
    config.lorry.env = vec![("PAD".into(), lc_base::redact::SecretUrl::new("10"))];
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config.clone(), shutdown));
    wait_for("the final update", || double.final_update(41).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    let last = double.final_update(41).expect("final");
    assert_eq!(last["exit"], "0");
    let result: serde_json::Value = serde_json::from_str(&last["result"]).expect("result JSON");
    assert_eq!(result["version"], 1);
    assert!(
        double
            .updates()
            .iter()
            .filter(|u| u.contains_key("result"))
            .count()
            == 1
    );

    // A result larger than half an update: the exit and output still come,
    // the result is left out and the output says so.
    config.lorry.env = vec![("PAD".into(), lc_base::redact::SecretUrl::new("40000"))];
    double.add_job(42, "big/result");
    let (trigger, shutdown) = Shutdown::new();
    let minion = tokio::spawn(lc_minion::run(config, shutdown));
    wait_for("the final update", || double.final_update(42).is_some()).await;
    trigger.trigger();
    minion.await.expect("join").expect("run");
    let last = double.final_update(42).expect("final");
    assert_eq!(last["exit"], "0");
    assert!(!last.contains_key("result"), "{last:?}");
    let output = double.output(42);
    assert!(
        output.contains("mirrored") && output.contains("left out"),
        "{output}"
    );
}
