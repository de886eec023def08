//! End to end: the real webapp and real `lorry-controller-minion` processes.
//! Most tests run a shell script as the lorry program (they are about the
//! minion's supervision of lorry); the last runs the real `lorry` against
//! real upstreams, with its lorries read from a CONFGIT.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::http_backend::serve_http;
use common::{READY_TIMEOUT, Webapp, git, git_lorry, wait_for};
use serde_json::Value;

const MINION: &str = env!("CARGO_BIN_EXE_lorry-controller-minion");

/// Mirrors nothing: fails for `e2e/fail`, hangs for `e2e/slow`, prints and
/// succeeds otherwise.
fn fake_lorry(dir: &Path) -> PathBuf {
    let file = dir.join("fake-lorry");
    let body = format!(
        "#!/bin/sh\nfor a; do spec=$a; done\n\
         case \"$(cat \"$spec\")\" in\n\
         *e2e/fail*) echo 'cannot reach upstream' >&2; exit 4;;\n\
         *e2e/slow*) touch {dir}/slow-started; exec sleep 1000;;\n\
         *) echo \"mirrored $(basename \"$spec\")\"; exit 0;;\n\
         esac\n",
        dir = dir.display()
    );
    std::fs::write(&file, body).expect("write fake lorry");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    file
}

/// A running minion, killed if still running when dropped.
struct Minion(Child);

impl Minion {
    fn start(webapp: &Webapp, lorry: &Path, name: &str) -> Minion {
        Minion::start_with(webapp, lorry, name, &[])
    }

    fn start_with(webapp: &Webapp, lorry: &Path, name: &str, extra: &[&str]) -> Minion {
        let child = Command::new(MINION)
            .args([
                "--webapp-host=127.0.0.1".to_owned(),
                format!("--webapp-port={}", webapp.port),
                "--sleep=0.1".into(),
                "--update-interval=0.2".into(),
                "--kill-grace=1".into(),
                format!("--lorry-path={}", lorry.display()),
                format!("--log={}", webapp.dir.join(format!("{name}.log")).display()),
                "--log-level=debug".into(),
                // The stand-in lorry leaves marks in the test's directory,
                // which a sandbox hides (sandbox.rs tests the sandbox).
                "--sandbox=none".into(),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start minion");
        Minion(child)
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        common::terminate(&mut self.0)
    }
}

impl Drop for Minion {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The jobs of `path`, newest last.
fn jobs_of(webapp: &Webapp, path: &str) -> Vec<Value> {
    let ids = webapp.get_ok("/1.0/list-jobs")["job_ids"].clone();
    let ids: Vec<i64> = serde_json::from_value(ids).expect("job ids");
    let mut jobs: Vec<Value> = ids
        .into_iter()
        .map(|id| webapp.get_ok(&format!("/1.0/job/{id}")))
        .filter(|job| job["path"] == path)
        .collect();
    jobs.sort_by_key(|job| job["job_id"].as_i64());
    jobs
}

/// The first job of `path` once it has ended.
fn ended_job(webapp: &Webapp, path: &str) -> Value {
    wait_for(&format!("a finished job of {path}"), READY_TIMEOUT, || {
        jobs_of(webapp, path)
            .into_iter()
            .find(|job| job["exit"] != "no")
    })
}

fn running_job(webapp: &Webapp, path: &str) -> i64 {
    wait_for(&format!("a running job of {path}"), READY_TIMEOUT, || {
        jobs_of(webapp, path)
            .into_iter()
            .find(|job| job["exit"] == "no")
            .and_then(|job| job["job_id"].as_i64())
    })
}

#[test]
fn two_minions_run_every_lorry_and_report_exit_and_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lorry = fake_lorry(dir.path());
    let webapp = Webapp::init(dir.path()).start();
    let paths = ["e2e/one", "e2e/two", "e2e/three", "e2e/fail"];
    webapp.seed(&paths.map(|p| git_lorry(p, 3600, 3600)));
    let mut minions = [
        Minion::start(&webapp, &lorry, "minion-1"),
        Minion::start(&webapp, &lorry, "minion-2"),
    ];
    for path in paths {
        let job = ended_job(&webapp, path);
        let output = job["output"].as_str().unwrap_or_default();
        if path == "e2e/fail" {
            assert_eq!(job["exit"], "4", "{job}");
            assert!(output.contains("cannot reach upstream"), "{job}");
        } else {
            assert_eq!(job["exit"], "0", "{job}");
            let expected = format!("mirrored {}.lorry", path.replace('/', "_"));
            assert!(output.contains(&expected), "{job}");
        }
        assert_eq!(jobs_of(&webapp, path).len(), 1, "{path} ran once");
    }
    let lorry_info = webapp.get_ok("/1.0/lorry/e2e/fail");
    assert_eq!(lorry_info["last_run_exit"], "4");
    for minion in &mut minions {
        assert!(minion.terminate().success());
    }
}

/// A minion that would sleep an hour between asks waits in give-me-job
/// instead (the webapp holds it up to its default 10 s): a lorry that
/// becomes due meanwhile runs at once, started at its due time.
#[test]
fn a_minion_waiting_in_give_me_job_runs_a_lorry_as_it_becomes_due() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lorry = fake_lorry(dir.path());
    let webapp = Webapp::init(dir.path()).start();
    webapp.seed(&[git_lorry("e2e/later", 100, 3600)]);
    webapp.pretend_time(3_000_000);
    let (id, _) = webapp.give_me_job().expect("a first job");
    webapp.finish(id, 0);
    let mut minion = Minion::start_with(&webapp, &lorry, "waiter", &["--sleep=3600"]);
    wait_for("the minion waiting in give-me-job", READY_TIMEOUT, || {
        (crate::longpoll::waiting(&webapp) == 1).then_some(())
    });
    webapp.pretend_time(3_000_100);
    let job = wait_for("the lorry's second job ended", READY_TIMEOUT, || {
        jobs_of(&webapp, "e2e/later")
            .into_iter()
            .nth(1)
            .filter(|job| job["exit"] != "no")
    });
    assert_eq!(job["exit"], "0", "{job}");
    assert_eq!(job["started"], 3_000_100, "{job}");
    assert!(minion.terminate().success());
}

/// A minion asked to stop while it waits in give-me-job still takes the
/// answer: a job handed to it then is reported as not started, not left
/// running until its timeout.
#[test]
fn a_minion_stopping_in_give_me_job_reports_a_job_handed_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lorry = fake_lorry(dir.path());
    let webapp = Webapp::init(dir.path()).start();
    webapp.seed(&[git_lorry("e2e/late", 100, 3600)]);
    webapp.pretend_time(4_000_000);
    let (id, _) = webapp.give_me_job().expect("a first job");
    webapp.finish(id, 0);
    let mut minion = Minion::start_with(&webapp, &lorry, "stopping", &["--sleep=3600"]);
    wait_for("the minion waiting in give-me-job", READY_TIMEOUT, || {
        (crate::longpoll::waiting(&webapp) == 1).then_some(())
    });
    let pid = nix::unistd::Pid::from_raw(minion.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    webapp.pretend_time(4_000_100);
    let job = wait_for(
        "the job handed to the stopping minion ended",
        READY_TIMEOUT,
        || {
            jobs_of(&webapp, "e2e/late")
                .into_iter()
                .nth(1)
                .filter(|job| job["exit"] != "no")
        },
    );
    assert_eq!(job["exit"], "143", "{job}");
    let out = job["output"].as_str().unwrap_or_default();
    assert!(out.contains("not started: the minion is stopping"), "{out}");
    assert!(minion.terminate().success());
}

#[test]
fn stop_job_and_lorry_timeout_kill_a_hanging_lorry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lorry = fake_lorry(dir.path());
    let webapp = Webapp::init(dir.path()).start();
    let now = 1_800_000_000;
    webapp.pretend_time(now);
    webapp.seed(&[git_lorry("e2e/slow", 3600, 600)]);
    let _minion = Minion::start(&webapp, &lorry, "minion");

    let job_id = running_job(&webapp, "e2e/slow");
    wait_for("lorry to start", READY_TIMEOUT, || {
        dir.path().join("slow-started").exists().then_some(())
    });
    webapp.post_ok("/1.0/stop-job", &[("job_id", &job_id.to_string())]);
    let job = ended_job(&webapp, "e2e/slow");
    assert_eq!(job["exit"], "143", "SIGTERM ended it: {job}");
    assert!(
        job["output"]
            .as_str()
            .unwrap_or_default()
            .contains("killed lorry")
    );

    // The lorry is due again an hour later; then it outlives its timeout.
    webapp.pretend_time(now + 3600);
    let second = wait_for("a second job", READY_TIMEOUT, || {
        jobs_of(&webapp, "e2e/slow")
            .into_iter()
            .find(|job| job["job_id"] != job_id && job["exit"] == "no")
    });
    webapp.pretend_time(now + 3600 + 601);
    let ended = wait_for("the timed-out job to end", READY_TIMEOUT, || {
        let job = webapp.get_ok(&format!("/1.0/job/{}", second["job_id"]));
        (job["exit"] != "no").then_some(job)
    });
    assert_eq!(ended["exit"], "143", "{ended}");
}

#[test]
fn sigterm_kills_the_running_job_reports_it_and_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lorry = fake_lorry(dir.path());
    let webapp = Webapp::init(dir.path()).start();
    webapp.seed(&[git_lorry("e2e/slow", 3600, 3600)]);
    let mut minion = Minion::start(&webapp, &lorry, "minion");
    running_job(&webapp, "e2e/slow");
    wait_for("lorry to start", READY_TIMEOUT, || {
        dir.path().join("slow-started").exists().then_some(())
    });
    let status = minion.terminate();
    assert!(status.success(), "{status}");
    // Reported before the minion exited.
    let job = jobs_of(&webapp, "e2e/slow").pop().expect("job");
    assert_eq!(job["exit"], "143", "{job}");
    assert!(
        job["output"]
            .as_str()
            .unwrap_or_default()
            .contains("the minion is stopping"),
        "{job}"
    );
}

#[test]
fn a_job_writing_more_non_ascii_output_than_one_request_holds_is_reported_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 4,000,000 × "é\n" on each stream: 12 MB each, 36 MB each once
    // form-encoded (é takes 6 bytes, the newline 3), 72 MB in all: over the
    // webapp's 64 MiB body limit if sent in one update.
    let lorry = dir.path().join("noisy-lorry");
    std::fs::write(
        &lorry,
        "#!/bin/sh\nyes é | head -n 4000000\nyes é | head -n 4000000 >&2\nexit 3\n",
    )
    .expect("write lorry");
    std::fs::set_permissions(&lorry, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // Room for all of it in STATEDB (the default keeps 8 MiB), so that
    // every byte the minion delivers can be counted.
    let webapp = Webapp::init(dir.path())
        .with_args(&["--job-output-max=64MiB"])
        .start();
    webapp.seed(&[git_lorry("e2e/noisy", 3600, 3600)]);
    // All the output piles up for the final report.
    let _minion = Minion::start_with(&webapp, &lorry, "minion", &["--update-interval=3600"]);
    // A generous limit: 72 MB go through the webapp into STATEDB.
    wait_for("the noisy job to end", Duration::from_secs(240), || {
        let info = webapp.get_ok("/1.0/lorry/e2e/noisy");
        (!info["last_run_exit"].is_null()).then_some(())
    });
    let job = ended_job(&webapp, "e2e/noisy");
    assert_eq!(job["exit"], "3", "the exit code arrived");
    let output = job["output"].as_str().unwrap_or_default();
    // The minion's first line says how the job was isolated.
    let (first, output) = output.split_once('\n').unwrap_or_default();
    assert!(
        first.starts_with("lorry-controller-minion: isolation: no sandbox + "),
        "{first}"
    );
    assert_eq!(
        output.len(),
        2 * 4_000_000 * "é\n".len(),
        "all the output arrived"
    );
    assert!(output.chars().all(|c| c == 'é' || c == '\n'));
    let lorry_info = webapp.get_ok("/1.0/lorry/e2e/noisy");
    assert_eq!(lorry_info["last_run_exit"], "3");
    assert!(
        lorry_info["running_job"].is_null(),
        "{}",
        lorry_info["running_job"]
    );
}

fn pid_in(file: &Path) -> i32 {
    std::fs::read_to_string(file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn a_job_of_a_minion_killed_with_sigkill_is_ended_by_the_next_minion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("minion-state");
    let (lorry_pid, setsid_pid) = (dir.path().join("lorry.pid"), dir.path().join("setsid.pid"));
    let lorry = dir.path().join("hanging-lorry");
    std::fs::write(
        &lorry,
        format!(
            "#!/bin/sh\nsetsid sleep 1000 >/dev/null 2>&1 </dev/null &\necho $! > {setsid}\n\
             echo $$ > {pid}.tmp && mv {pid}.tmp {pid}\nexec sleep 1000\n",
            setsid = setsid_pid.display(),
            pid = lorry_pid.display()
        ),
    )
    .expect("write lorry");
    std::fs::set_permissions(&lorry, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let webapp = Webapp::init(dir.path()).start();
    webapp.seed(&[git_lorry("e2e/orphan", 3600, 3600)]);
    let state_arg = format!("--state-dir={}", state.display());
    let mut first = Minion::start_with(&webapp, &lorry, "minion-1", &[&state_arg]);
    let job_id = running_job(&webapp, "e2e/orphan");
    wait_for("lorry to start", READY_TIMEOUT, || {
        lorry_pid.exists().then_some(())
    });
    first.0.kill().expect("SIGKILL the minion");
    first.0.wait().expect("reap the minion");
    let (lorry, escaped) = (pid_in(&lorry_pid), pid_in(&setsid_pid));
    assert!(
        alive(lorry) && alive(escaped),
        "the job outlives its minion"
    );
    assert_eq!(webapp.get_ok(&format!("/1.0/job/{job_id}"))["exit"], "no");

    let _second = Minion::start_with(&webapp, &lorry_path_unused(&dir), "minion-2", &[&state_arg]);
    let job = wait_for("the job to be reported ended", READY_TIMEOUT, || {
        let job = webapp.get_ok(&format!("/1.0/job/{job_id}"));
        (job["exit"] != "no").then_some(job)
    });
    assert_eq!(job["exit"], "137", "{job}");
    assert!(
        job["output"]
            .as_str()
            .unwrap_or_default()
            .contains("was killed"),
        "{job}"
    );
    wait_for("the job's processes to die", READY_TIMEOUT, || {
        (!alive(lorry) && !alive(escaped)).then_some(())
    });
    assert!(webapp.get_ok("/1.0/lorry/e2e/orphan")["running_job"].is_null());
}

/// A lorry program for a minion that must not run any job.
fn lorry_path_unused(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("no-lorry-needed")
}

#[test]
fn config_file_options_and_mistakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("minion.conf");
    std::fs::write(
        &conf,
        "[config]\nwebapp-host = localhost\nwebapp-prot = 1\n",
    )
    .expect("write");
    let out = Command::new(MINION)
        .arg(format!("--config={}", conf.display()))
        .output()
        .expect("run minion");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("minion.conf") && stderr.contains("webapp-prot"),
        "{stderr}"
    );
    let out = Command::new(MINION)
        .arg("--config=/nonexistent/minion.conf")
        .output()
        .expect("run minion");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/minion.conf"));

    // A working file: the minion runs with it and stops on SIGTERM.
    let lorry = fake_lorry(dir.path());
    let webapp = Webapp::init(dir.path()).start();
    webapp.seed(&[git_lorry("e2e/conf", 3600, 3600)]);
    std::fs::write(
        &conf,
        format!(
            "[config]\nwebapp-host = 127.0.0.1\nwebapp-port = {}\nsleep = 0.1\nupdate-interval = 0.2\nlorry-path = {}\nlog = {}\n",
            webapp.port,
            lorry.display(),
            dir.path().join("minion.log").display()
        ),
    )
    .expect("write");
    let child = Command::new(MINION)
        .arg(format!("--config={}", conf.display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("start minion");
    let mut minion = Minion(child);
    assert_eq!(ended_job(&webapp, "e2e/conf")["exit"], "0");
    assert!(minion.terminate().success());
}

/// Runs git in `dir` with a fixed identity and no user configuration.
/// `git for-each-ref` of heads and tags of a repository, or of `prefix`.
pub(crate) fn refs(repo: &Path, prefix: &[&str]) -> String {
    let mut args = vec!["for-each-ref", "--format=%(objectname) %(refname)"];
    args.extend(prefix);
    git(repo, &args)
}

/// A `git daemon` on loopback serving `base`; killed on drop.
pub(crate) struct Daemon(Child, pub(crate) u16);

impl Daemon {
    pub(crate) fn start(base: &Path) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        wait_for("git daemon", READY_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Daemon(child, port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real `lorry` run by two minions against upstreams served by `git
/// daemon` and by `git http-backend`, with the lorries read from a CONFGIT
/// and the webapp's local downstream: a first mirror, then a new commit, a
/// deleted branch and a force-pushed branch upstream, and a re-run; then a
/// stop-job and a lorry-timeout against an upstream that never answers.
#[test]
fn real_lorry_mirrors_and_keeps_rewritten_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstreams = dir.path().join("upstreams");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let names = ["alpha", "beta", "gamma"];
    for name in names {
        let bare = upstreams.join(format!("{name}.git"));
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        let clone = work.join(name);
        git(
            dir.path(),
            &[
                "clone",
                "-q",
                &bare.display().to_string(),
                &clone.display().to_string(),
            ],
        );
        for branch in ["main", "topic", "gone"] {
            git(&clone, &["checkout", "-q", "-B", branch]);
            std::fs::write(clone.join(branch), branch).expect("write");
            git(&clone, &["add", "."]);
            git(&clone, &["commit", "-q", "-m", branch]);
        }
        git(&clone, &["tag", "v1"]);
        git(
            &clone,
            &["push", "-q", "origin", "main", "topic", "gone", "v1"],
        );
    }
    let daemon = Daemon::start(&upstreams);
    let (_http, http_port) = serve_http(&upstreams, dir.path());
    let webapp = Webapp::init(dir.path()).start();
    let now = 1_800_000_000;
    webapp.pretend_time(now);

    // CONFGIT (the configuration directory as it stands: reading a real
    // CONFGIT is tested in confgit.rs).
    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(confgit.join("lorries")).expect("mkdir");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "e2e", "interval": "1h", "lorry-timeout": "10m",
             "globs": ["lorries/*.lorry"]}]"#,
    )
    .expect("conf");
    std::fs::write(
        confgit.join("lorries/daemon.lorry"),
        format!(
            "alpha: {{type: git, url: 'git://127.0.0.1:{port}/alpha.git'}}\n\
             beta: {{type: git, url: 'git://127.0.0.1:{port}/beta.git'}}\n",
            port = daemon.1
        ),
    )
    .expect("daemon.lorry");
    std::fs::write(
        confgit.join("lorries/http.lorry"),
        serde_json::json!({"gamma": {
            "type": "git", "url": format!("http://127.0.0.1:{http_port}/gamma.git")
        }})
        .to_string(),
    )
    .expect("http.lorry");
    let read = webapp.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(
        read["lorries_added"],
        serde_json::json!(["e2e/alpha", "e2e/beta", "e2e/gamma"]),
        "{read}"
    );
    let downstream = dir.path().join("downstream");
    let lorry_conf = dir.path().join("lorry.conf");
    std::fs::write(
        &lorry_conf,
        format!(
            "[config]\nworking-area = {}\nmirror-base-url-push = {}\n",
            dir.path().join("wa").display(),
            downstream.display()
        ),
    )
    .expect("write lorry.conf");
    let lorry = PathBuf::from(env!("CARGO_BIN_EXE_lorry"));
    let start = |name: &str| {
        let child = Command::new(MINION)
            .args([
                "--webapp-host=127.0.0.1".to_owned(),
                format!("--webapp-port={}", webapp.port),
                "--sleep=0.1".into(),
                "--update-interval=0.2".into(),
                format!("--lorry-path={}", lorry.display()),
                format!("--lorry-config={}", lorry_conf.display()),
                format!("--log={}", dir.path().join(format!("{name}.log")).display()),
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start minion");
        Minion(child)
    };
    let mut minions = [start("m1"), start("m2")];

    for name in names {
        let job = ended_job(&webapp, &format!("e2e/{name}"));
        assert_eq!(job["exit"], "0", "{job}");
        // What the job did: the summary line, and lorry's result stored.
        let output = job["output"].as_str().unwrap_or_default();
        assert!(
            output.contains("lorry: summary: importer=git ok=yes "),
            "{job}"
        );
        assert_eq!(job["result"]["version"], 1, "{job}");
        assert_eq!(job["result"]["specs"][0]["pushed"], "yes", "{job}");
        assert_eq!(
            job["result"]["specs"][0]["name"],
            format!("e2e/{name}"),
            "{job}"
        );
        assert!(job["disk_usage"].as_i64().unwrap_or(0) > 0, "{job}");
        let down = downstream.join(format!("e2e/{name}.git"));
        assert_eq!(
            refs(&down, &["refs/heads", "refs/tags"]),
            refs(&upstreams.join(format!("{name}.git")), &[]),
            "{name}"
        );
    }

    // Upstream moves on: a new commit, a deleted branch, a force-push.
    let clone = work.join("alpha");
    let old_topic = git(&clone, &["rev-parse", "topic"]);
    git(&clone, &["checkout", "-q", "main"]);
    std::fs::write(clone.join("new"), "new").expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "new"]);
    git(&clone, &["checkout", "-q", "-B", "topic", "main~1"]);
    std::fs::write(clone.join("rewritten"), "x").expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "rewritten"]);
    git(
        &clone,
        &["push", "-q", "--force", "origin", "main", "topic", ":gone"],
    );

    webapp.pretend_time(now + 3601);
    let rerun = wait_for("the second alpha job", READY_TIMEOUT, || {
        jobs_of(&webapp, "e2e/alpha")
            .into_iter()
            .skip(1)
            .find(|job| job["exit"] != "no")
    });
    assert_eq!(rerun["exit"], "0", "{rerun}");
    let down = downstream.join("e2e/alpha.git");
    assert_eq!(
        refs(&down, &["refs/heads", "refs/tags"]),
        refs(&upstreams.join("alpha.git"), &[])
    );
    let preserved = refs(&down, &["refs/lorry/preserved"]);
    assert!(preserved.contains(old_topic.trim()), "{preserved}");
    assert!(preserved.contains("/refs/heads/gone"), "{preserved}");
    wait_for("the re-runs to end", READY_TIMEOUT, || {
        let running = webapp.get_ok("/1.0/list-running-jobs")["running_jobs"].clone();
        running.as_array().is_some_and(Vec::is_empty).then_some(())
    });

    // An upstream that accepts connections and never answers: lorry hangs
    // until the webapp has the minion kill it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
        }
    });
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "e2e", "interval": "1h", "lorry-timeout": "10m",
             "globs": ["lorries/*.lorry"]},
            {"type": "lorries", "prefix": "slow", "interval": "1h", "lorry-timeout": "60s",
             "globs": ["slow/*.lorry"]}]"#,
    )
    .expect("conf");
    std::fs::create_dir_all(confgit.join("slow")).expect("mkdir");
    std::fs::write(
        confgit.join("slow/silent.lorry"),
        format!(
            "stop-me: {{type: git, url: 'git://127.0.0.1:{silent_port}/a.git'}}\n\
             time-me-out: {{type: git, url: 'git://127.0.0.1:{silent_port}/b.git'}}\n"
        ),
    )
    .expect("silent.lorry");
    let read = webapp.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(read["lorries_unchanged"], 3, "{read}");
    let stop_me = running_job(&webapp, "slow/stop-me");
    let time_me_out = running_job(&webapp, "slow/time-me-out");

    webapp.post_ok("/1.0/stop-job", &[("job_id", &stop_me.to_string())]);
    let stopped = ended_job(&webapp, "slow/stop-me");
    assert_eq!(stopped["exit"], "143", "SIGTERM ended it: {stopped}");

    webapp.pretend_time(now + 3601 + 61);
    let timed_out = wait_for("the timed-out job to end", READY_TIMEOUT, || {
        let job = webapp.get_ok(&format!("/1.0/job/{time_me_out}"));
        (job["exit"] != "no").then_some(job)
    });
    assert_eq!(timed_out["exit"], "143", "{timed_out}");
    for minion in &mut minions {
        assert!(minion.terminate().success());
    }
}
