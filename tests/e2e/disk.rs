//! Disk full and low disk (issue 12 item 6), on real small tmpfs mounts:
//! STATEDB's file system filled up under the webapp, and the working area
//! filled up under a minion and by a job. Mounting needs root: skipped
//! with a note otherwise, a failure when `LORRY_TEST_TMPFS=1` (CI sets it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lc_core::db::{NewLorry, StateDb};
use serde_json::Value;

use crate::common::{READY_TIMEOUT, Webapp, git, wait_for};
use crate::minion::Daemon;

/// A tmpfs of a given size, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as mount's `size=` takes it) at `at`;
    /// `None` (with a note) when this user cannot mount, unless the
    /// environment says the test must run.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(at)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs(at.to_owned())),
            other => {
                assert!(
                    std::env::var_os("LORRY_TEST_TMPFS").is_none(),
                    "cannot mount a tmpfs at {}: {other:?}",
                    at.display()
                );
                eprintln!("skipped: mounting a tmpfs needs root ({other:?})");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `file` until its file system is full; answers how many bytes
/// went in. The last write fails with ENOSPC, as it must.
fn fill(file: &Path) -> u64 {
    let mut out = std::fs::File::create(file).expect("create filler");
    let block = vec![0x5au8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match out.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                break;
            }
        }
    }
    // Whatever part of a block still fits.
    while let Ok(n) = out.write(&block[..512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    written
}

/// STATEDB's file system fills up: the health check answers 503 with a
/// JSON reason, no job is handed out and the status says why, reads go
/// on, a write is done whole or answered 503 (never 500), and once space
/// is freed everything resumes with `integrity_check` ok and the state
/// the answers said.
#[test]
fn a_full_statedb_disk_fails_the_health_check_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(&dir.path().join("state"), "8m") else {
        return;
    };
    let statedb = fs.0.join("webapp.db");
    let webapp = Webapp::init(dir.path())
        .with_args(&[
            format!("--statedb={}", statedb.display()),
            "--min-free-disk=2MiB".into(),
        ])
        .start();
    {
        let db = StateDb::open(&statedb).expect("open STATEDB");
        db.write(|tx| tx.upsert_lorry(&crate::common::lorry("full/a")))
            .expect("seed");
    }
    assert_eq!(webapp.get("/1.0/health-check").status, 200);

    let filler = fs.0.join("filler");
    assert!(fill(&filler) > 0);
    for _ in 0..5 {
        assert_eq!(webapp.get("/1.0/health-check").status, 503);
    }
    let health = webapp.get("/1.0/health-check");
    assert_eq!(health.status, 503, "{health:?}");
    let why = health.body["error"].as_str().expect("a JSON reason");
    assert!(why.contains("--min-free-disk"), "{why}");
    let status = webapp.get_ok("/1.0/status");
    let warning = status["warning_msg"].as_str().expect("warning_msg");
    assert!(warning.contains("no jobs are handed out"), "{warning}");
    let page = webapp.get("/1.0/status-html");
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("no jobs are handed out"),
        "the page says why"
    );
    assert_eq!(webapp.give_me_job(), None);
    assert_eq!(webapp.queue(), ["full/a"]);

    // Writes on a full disk: each is done or refused whole.
    let mut running = true;
    for i in 0..20 {
        let path = if i % 2 == 0 {
            "/1.0/stop-queue"
        } else {
            "/1.0/start-queue"
        };
        let answer = webapp.post(path, &[]);
        match answer.status {
            200 => running = path == "/1.0/start-queue",
            503 => {
                let error = answer.body["error"].as_str().expect("JSON error");
                assert!(error.contains("ENOSPC"), "{error}");
            }
            _ => panic!("POST {path} on a full disk: {answer:?}"),
        }
    }
    assert_eq!(webapp.get("/1.0/list-queue").status, 200);

    std::fs::remove_file(&filler).expect("free the space");
    let health = webapp.get("/1.0/health-check");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(webapp.get_ok("/1.0/status")["warning_msg"], "");
    assert_eq!(
        webapp.get_ok("/1.0/status")["running_queue"],
        Value::Bool(running),
        "the queue is as the last accepted write set it"
    );
    webapp.post_ok("/1.0/start-queue", &[]);
    let (_, path) = webapp.give_me_job().expect("a job once space is back");
    assert_eq!(path, "full/a");
    StateDb::open(&statedb)
        .expect("open STATEDB")
        .integrity_check()
        .expect("integrity_check ok");
    let log = webapp.log();
    assert!(
        log.matches("health check fails").count() == 1,
        "one log line a minute, not one per call:\n{log}"
    );
}

/// A git lorry of `url` at `path`, due at once.
fn lorry_of(path: &str, url: &str, interval: i64) -> NewLorry {
    NewLorry {
        path: path.to_owned(),
        text: serde_json::json!({ path: { "type": "git", "url": url } }).to_string(),
        from_host: String::new(),
        from_path: String::new(),
        interval,
        lorry_timeout: 600,
    }
}

/// An upstream repository `name` under `base` with one commit holding
/// `bytes` of random (incompressible) data.
fn upstream(base: &Path, work: &Path, name: &str, bytes: usize) {
    let bare = base.join(format!("{name}.git"));
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let clone = work.join(name);
    std::fs::create_dir_all(&clone).expect("mkdir");
    git(&clone, &["init", "-q", "-b", "main"]);
    let mut data = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut data))
        .expect("random data");
    std::fs::write(clone.join("data"), data).expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", name]);
    git(&clone, &["push", "-q", &bare.display().to_string(), "main"]);
}

fn jobs_of(webapp: &Webapp, path: &str) -> Vec<Value> {
    let ids: Vec<i64> =
        serde_json::from_value(webapp.get_ok("/1.0/list-jobs")["job_ids"].clone()).expect("ids");
    ids.into_iter()
        .map(|id| webapp.job(id))
        .filter(|job| job["path"] == path)
        .collect()
}

/// A minion whose working area is full asks for no job and says why in
/// its log; with space back it takes the job. A job that fills the
/// working area fails with a line naming ENOSPC; the minion then waits,
/// and resumes once the space is freed.
#[test]
fn a_full_working_area_stops_the_minion_and_a_job_that_fills_it_names_enospc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(fs) = Tmpfs::mount(&dir.path().join("wa"), "8m") else {
        return;
    };
    let upstreams = dir.path().join("upstreams");
    let work = dir.path().join("work");
    upstream(&upstreams, &work, "small", 1000);
    upstream(&upstreams, &work, "big", 16 << 20);
    let daemon = Daemon::start(&upstreams);
    let webapp = Webapp::init(dir.path()).start();
    let now = 1_800_000_000;
    webapp.pretend_time(now);
    let url = |name: &str| format!("git://127.0.0.1:{}/{name}.git", daemon.1);
    webapp.seed(&[lorry_of("disk/small", &url("small"), 60)]);
    let lorry_conf = dir.path().join("lorry.conf");
    std::fs::write(
        &lorry_conf,
        format!(
            "[config]\nworking-area = {}\nmirror-base-url-push = {}\n",
            fs.0.display(),
            dir.path().join("downstream").display()
        ),
    )
    .expect("lorry.conf");
    let filler = fs.0.join("filler");
    fill(&filler);

    let log = dir.path().join("minion.log");
    let _minion = MinionChild(
        Command::new(env!("CARGO_BIN_EXE_lorry-controller-minion"))
            .args([
                "--webapp-host=127.0.0.1".to_owned(),
                format!("--webapp-port={}", webapp.port),
                "--sleep=0.1".into(),
                "--update-interval=0.2".into(),
                "--min-free-disk=1MiB".into(),
                format!("--lorry-path={}", env!("CARGO_BIN_EXE_lorry")),
                format!("--lorry-config={}", lorry_conf.display()),
                format!("--log={}", log.display()),
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("start minion"),
    );
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the minion saying its disk is low", READY_TIMEOUT, || {
        read_log()
            .contains("asking for no job: low disk space")
            .then_some(())
    });
    assert!(read_log().contains("--min-free-disk"), "{}", read_log());
    assert!(jobs_of(&webapp, "disk/small").is_empty(), "no job taken");

    std::fs::remove_file(&filler).expect("free the space");
    let job = wait_for("the small job's end", READY_TIMEOUT, || {
        jobs_of(&webapp, "disk/small")
            .into_iter()
            .find(|job| job["exit"] != "no")
    });
    assert_eq!(job["exit"], "0", "{job}");
    assert!(read_log().contains("disk space is back"), "{}", read_log());

    webapp.seed(&[lorry_of("disk/big", &url("big"), 100_000)]);
    let job = wait_for("the big job's end", READY_TIMEOUT * 2, || {
        jobs_of(&webapp, "disk/big")
            .into_iter()
            .find(|job| job["exit"] != "no")
    });
    assert_ne!(job["exit"], "0", "{job}");
    let output = job["output"].as_str().unwrap_or_default();
    assert!(
        output.contains("lorry-controller-minion: the job ran out of disk space (ENOSPC"),
        "{output}"
    );
    // The webapp answered all along, and its STATEDB is whole.
    assert_eq!(webapp.get("/1.0/health-check").status, 200);

    // Free the working area of whatever the failed job left, fill it
    // again, then free it: the small lorry's next run goes through.
    let big_area = fs.0.join("disk%2Fbig");
    if big_area.exists() {
        std::fs::remove_dir_all(&big_area).expect("clean up the big mirror");
    }
    webapp.pretend_time(now + 61);
    let second = wait_for("the small lorry's second run", READY_TIMEOUT, || {
        jobs_of(&webapp, "disk/small")
            .into_iter()
            .filter(|job| job["exit"] != "no")
            .nth(1)
    });
    assert_eq!(second["exit"], "0", "{second}");
    webapp.stop();
    StateDb::open(&dir.path().join("webapp.db"))
        .expect("open STATEDB")
        .integrity_check()
        .expect("integrity_check ok");
}

/// A minion, killed if still running when dropped.
struct MinionChild(Child);

impl Drop for MinionChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
