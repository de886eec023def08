//! Batch checks end to end (issue 14 item 5): the real webapp, real
//! minions with `--batch`, the real `lorry --check-refs`, upstreams served
//! by `git daemon`; a listener that never answers for the hostile cases.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{READY_TIMEOUT, RealMinion, Webapp, git, git_lorry, wait_for};
use serde_json::Value;

use crate::minion::{Daemon, refs};

const NOW: i64 = 1_800_000_000;
const HOUR: i64 = 3600;

/// A bare upstream `name.git` under `root`: `main`, `topic` and tag `v1`.
fn upstream(root: &Path, work: &Path, name: &str) {
    common::one_commit_upstream(root, work, name);
    let clone = work.join(name);
    git(&clone, &["checkout", "-q", "-b", "topic"]);
    std::fs::write(clone.join("t"), name).expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "topic"]);
    git(&clone, &["tag", "-a", "-m", "v1", "v1"]);
    git(&clone, &["push", "-q", "origin", "topic", "v1"]);
}

/// A new commit on `main` of upstream `name`.
fn commit(work: &Path, name: &str, what: &str) {
    let clone = work.join(name);
    git(&clone, &["checkout", "-q", "main"]);
    std::fs::write(clone.join(what), what).expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", what]);
    git(&clone, &["push", "-q", "origin", "main"]);
}

fn lorry(webapp: &Webapp, path: &str) -> Value {
    webapp.get_ok(&format!("/1.0/lorry/{path}"))
}

fn job_count(webapp: &Webapp, path: &str) -> usize {
    lorry(webapp, path)["jobs"].as_array().map_or(0, Vec::len)
}

/// Waits until every lorry of `paths` has run (job or check) at the
/// pretended time `at` and is idle.
fn wait_all_run(webapp: &Webapp, paths: &[String], at: i64) {
    for path in paths {
        wait_for(&format!("{path} run at {at}"), READY_TIMEOUT, || {
            let l = lorry(webapp, path);
            (l["last_run"] == at && l["running_job"].is_null()).then_some(())
        });
    }
}

/// Waits until no job or batch runs.
fn wait_idle(webapp: &Webapp) {
    wait_for("no job running", READY_TIMEOUT, || {
        webapp.get_ok("/1.0/list-running-jobs")["running_jobs"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
}

fn batch_args(max: usize) -> Vec<String> {
    vec![
        format!("--batch={max}"),
        "--batch-parallel=4".into(),
        "--batch-ls-remote-timeout=3".into(),
    ]
}

/// Upstreams served by git daemon.
struct Upstreams {
    _dir: tempfile::TempDir,
    work: PathBuf,
    root: PathBuf,
    daemon: Daemon,
}

/// Upstreams `names`, and a webapp with one git lorry `b/<name>` for
/// each (hourly, the given timeout), due now.
struct Fleet {
    dir: tempfile::TempDir,
    up: std::rc::Rc<Upstreams>,
    work: PathBuf,
    upstreams: PathBuf,
    webapp: Webapp,
    paths: Vec<String>,
}

impl Fleet {
    fn new(names: &[&str]) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("upstreams");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("mkdir");
        for name in names {
            upstream(&root, &work, name);
        }
        let daemon = Daemon::start(&root);
        let up = Upstreams {
            _dir: dir,
            work,
            root,
            daemon,
        };
        Fleet::on(std::rc::Rc::new(up), names)
    }

    /// Another webapp mirroring the same upstreams.
    fn sharing(&self, names: &[&str]) -> Fleet {
        Fleet::on(std::rc::Rc::clone(&self.up), names)
    }

    fn on(up: std::rc::Rc<Upstreams>, names: &[&str]) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let webapp = Webapp::init(dir.path()).start();
        webapp.pretend_time(NOW);
        let paths: Vec<String> = names.iter().map(|n| format!("b/{n}")).collect();
        let fleet = Fleet {
            dir,
            work: up.work.clone(),
            upstreams: up.root.clone(),
            up,
            webapp,
            paths,
        };
        for name in names {
            fleet.set_url(name, &fleet.url(name), 600);
        }
        fleet
    }

    fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}.git", self.up.daemon.1)
    }

    fn set_url(&self, name: &str, url: &str, timeout: i64) {
        let path = format!("b/{name}");
        let mut lorry = git_lorry(&path, HOUR, timeout);
        lorry.text = serde_json::json!({ &path: {"type": "git", "url": url} }).to_string();
        self.webapp.seed(&[lorry]);
    }

    fn downstream(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("downstream/b/{name}.git"))
    }

    /// Every downstream's heads and tags equal its upstream's.
    fn assert_mirrored(&self, names: &[&str]) {
        for name in names {
            assert_eq!(
                refs(&self.downstream(name), &["refs/heads", "refs/tags"]),
                refs(&self.upstreams.join(format!("{name}.git")), &[]),
                "{name}"
            );
        }
    }
}

fn batches_ended(webapp: &Webapp) -> usize {
    webapp.log().matches("batch ended").count()
}

/// Unchanged lorries are checked in one batch, each recorded as a
/// successful check without a job; the changed one is handed back and
/// mirrored by an ordinary job.
#[test]
fn unchanged_lorries_are_checked_in_one_batch_and_a_changed_one_gets_a_job() {
    let names = ["one", "two", "three", "four"];
    let fleet = Fleet::new(&names);
    let webapp = &fleet.webapp;
    let _minion = RealMinion::start_with(webapp, fleet.dir.path(), &batch_args(10), &[]);
    // No ledger yet: ordinary jobs only.
    wait_all_run(webapp, &fleet.paths, NOW);
    wait_idle(webapp);
    for path in &fleet.paths {
        let l = lorry(webapp, path);
        assert_eq!(
            (l["last_run_exit"].as_str(), job_count(webapp, path)),
            (Some("0"), 1),
            "{l}"
        );
    }
    fleet.assert_mirrored(&names);
    assert_eq!(batches_ended(webapp), 0);

    commit(&fleet.work, "three", "new");
    webapp.pretend_time(NOW + HOUR);
    wait_all_run(webapp, &fleet.paths, NOW + HOUR);
    wait_idle(webapp);
    for path in &fleet.paths {
        let l = lorry(webapp, path);
        let jobs = if path == "b/three" { 2 } else { 1 };
        assert_eq!(job_count(webapp, path), jobs, "{path}: {l}");
        assert_eq!(l["last_run_exit"], "0", "{l}");
        assert_eq!(l["last_success"], NOW + HOUR, "{l}");
        assert_eq!(l["consecutive_failures"], 0, "{l}");
    }
    let checked = lorry(webapp, "b/one");
    assert_eq!(
        (
            checked["checked_without_job_how"].as_str(),
            checked["last_checked_without_job"].as_i64()
        ),
        (
            Some("unchanged per upstream listing (batch check)"),
            Some(NOW + HOUR)
        ),
        "{checked}"
    );
    assert!(lorry(webapp, "b/three")["checked_without_job_how"].is_null());
    // One batch for all four (the changed one was in it too).
    assert_eq!(batches_ended(webapp), 1, "{}", webapp.log());
    fleet.assert_mirrored(&names);
    assert!(
        webapp
            .log()
            .contains("4 lorries: 3 unchanged, 0 released, 1 handed back for a job: b/three"),
        "{}",
        webapp.log()
    );

    // Nothing changed: the next round is one batch and no job at all.
    webapp.pretend_time(NOW + 2 * HOUR);
    wait_all_run(webapp, &fleet.paths, NOW + 2 * HOUR);
    wait_idle(webapp);
    assert_eq!(batches_ended(webapp), 2);
    assert_eq!(job_count(webapp, "b/three"), 2);
    assert_eq!(job_count(webapp, "b/one"), 1);

    // An old minion (no --batch) gets exactly ordinary jobs.
    let answer = webapp.post_ok("/1.0/give-me-job", &[("host", "old"), ("pid", "9")]);
    assert_eq!(answer, serde_json::json!({"job_id": null}));
    let bad = webapp.post(
        "/1.0/give-me-job",
        &[("host", "m"), ("pid", "9"), ("batch", "-3")],
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("batch"), "{}", bad.text);
}

/// The same fleet run by a batching minion and by an ordinary one, each
/// against its own webapp, through a first mirror, changes (a new commit,
/// a force-push, a deleted branch, a new tag) and an unchanged round: the
/// lorries' states, ledgers and downstreams end up the same.
#[test]
fn batch_results_are_identical_to_single_jobs() {
    let names = ["p", "q", "r", "s", "t"];
    let batched = Fleet::new(&names);
    let single = batched.sharing(&names);
    let _m1 = RealMinion::start_with(&batched.webapp, batched.dir.path(), &batch_args(3), &[]);
    let _m2 = RealMinion::start_with(&single.webapp, single.dir.path(), &[], &[]);
    let change = |fleet: &Fleet, round: usize| {
        let work = &fleet.work;
        match round {
            1 => {
                commit(work, "p", "p1");
                let clone = work.join("q");
                git(&clone, &["checkout", "-q", "topic"]);
                git(&clone, &["reset", "-q", "--hard", "HEAD~1"]);
                std::fs::write(clone.join("x"), "x").expect("write");
                git(&clone, &["add", "."]);
                git(&clone, &["commit", "-q", "-m", "rewritten"]);
                git(&clone, &["push", "-q", "--force", "origin", "topic"]);
                git(&work.join("r"), &["push", "-q", "origin", ":topic"]);
            }
            3 => {
                git(&work.join("s"), &["tag", "v2", "main"]);
                git(&work.join("s"), &["push", "-q", "origin", "v2"]);
            }
            _ => {}
        }
    };
    let state = |fleet: &Fleet| -> Vec<Value> {
        fleet
            .paths
            .iter()
            .map(|path| {
                let l = lorry(&fleet.webapp, path);
                let refs = fleet.webapp.get_ok(&format!("/1.0/lorry-refs/{path}"));
                serde_json::json!({
                    "path": path,
                    "last_run": l["last_run"],
                    "last_run_exit": l["last_run_exit"],
                    "last_success": l["last_success"],
                    "consecutive_failures": l["consecutive_failures"],
                    "running_job": l["running_job"],
                    "due": l["due"],
                    "refs": refs["refs"].as_array().map(|r| r.iter()
                        .map(|t| (t["name"].clone(), t["oid"].clone()))
                        .collect::<Vec<_>>()),
                })
            })
            .collect()
    };
    for round in 0..4 {
        let at = NOW + round as i64 * HOUR;
        change(&batched, round);
        for fleet in [&batched, &single] {
            fleet.webapp.pretend_time(at);
        }
        for fleet in [&batched, &single] {
            wait_all_run(&fleet.webapp, &fleet.paths, at);
            wait_idle(&fleet.webapp);
        }
        assert_eq!(state(&batched), state(&single), "round {round}");
        for fleet in [&batched, &single] {
            fleet.assert_mirrored(&names);
            // The force-pushed topic's old tip is kept downstream in both.
            assert_eq!(
                refs(&fleet.downstream("q"), &["refs/lorry/preserved"])
                    .lines()
                    .count(),
                usize::from(round >= 1),
                "round {round}"
            );
        }
    }
    assert!(
        batches_ended(&batched.webapp) >= 3,
        "{}",
        batched.webapp.log()
    );
    assert_eq!(batches_ended(&single.webapp), 0);
    // Jobs: the batching fleet ran only the first mirrors and the changed.
    let jobs = |fleet: &Fleet| -> Vec<usize> {
        fleet
            .paths
            .iter()
            .map(|p| job_count(&fleet.webapp, p))
            .collect()
    };
    assert_eq!(jobs(&single), [4, 4, 4, 4, 4]);
    assert_eq!(jobs(&batched), [2, 2, 2, 2, 1]);
}

/// A listener that accepts connections and never answers; each
/// connection is held until the listener is dropped.
struct Silent {
    port: u16,
    _held: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Silent {
    fn start() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&held);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(mut held) = keep.lock() {
                    held.push(stream);
                }
            }
        });
        Silent { port, _held: held }
    }
}

/// An upstream that never answers does not hold the batch: its listing is
/// killed at `--batch-ls-remote-timeout`, the other lorries are checked,
/// and it gets an ordinary job, whose failure is recorded. Its URL's
/// password appears in no output, log or answer.
#[test]
fn a_hanging_upstream_is_timed_out_and_handed_back_for_a_job() {
    let names = ["fine", "quiet", "other"];
    let fleet = Fleet::new(&names);
    let webapp = &fleet.webapp;
    let _minion = RealMinion::start_with(webapp, fleet.dir.path(), &batch_args(10), &[]);
    wait_all_run(webapp, &fleet.paths, NOW);
    wait_idle(webapp);
    let silent = Silent::start();
    let secret = "s3cretpassw0rd";
    fleet.set_url(
        "quiet",
        &format!("http://user:{secret}@127.0.0.1:{}/quiet.git", silent.port),
        3,
    );
    webapp.pretend_time(NOW + HOUR);
    wait_all_run(webapp, &fleet.paths, NOW + HOUR);
    let failed = wait_for("quiet's job to fail", READY_TIMEOUT, || {
        let l = lorry(webapp, "b/quiet");
        (l["running_job"].is_null() && l["last_run_exit"] != "0").then_some(l)
    });
    assert_eq!(failed["consecutive_failures"], 1, "{failed}");
    assert_eq!(job_count(webapp, "b/quiet"), 2, "{failed}");
    for path in ["b/fine", "b/other"] {
        let l = lorry(webapp, path);
        assert_eq!(
            (l["last_run_exit"].as_str(), job_count(webapp, path)),
            (Some("0"), 1),
            "{l}"
        );
    }
    assert_eq!(batches_ended(webapp), 1);
    assert!(
        webapp
            .log()
            .contains("2 unchanged, 0 released, 1 handed back for a job: b/quiet"),
        "{}",
        webapp.log()
    );
    let ids: Vec<i64> = lorry(webapp, "b/quiet")["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    let mut seen = String::new();
    for id in ids {
        seen.push_str(&webapp.job(id).to_string());
    }
    seen.push_str(&webapp.log());
    let mut minion_log = String::new();
    std::fs::File::open(fleet.dir.path().join("minion.log"))
        .and_then(|mut f| f.read_to_string(&mut minion_log))
        .expect("minion log");
    seen.push_str(&minion_log);
    seen.push_str(&webapp.get("/1.0/status").text);
    assert!(!seen.contains(secret), "the password leaked");
    assert!(minion_log.contains("batch"), "{minion_log}");
}

/// A minion killed (SIGKILL) while its batch waits on a hanging upstream:
/// its lorries stay held, then its successor on the same state directory
/// ends the batch, which releases them, and they are mirrored.
#[test]
fn a_minion_killed_mid_batch_releases_its_lorries() {
    let names = ["k1", "k2", "k3"];
    let fleet = Fleet::new(&names);
    let webapp = &fleet.webapp;
    let first = RealMinion::start_with(webapp, fleet.dir.path(), &batch_args(10), &[]);
    wait_all_run(webapp, &fleet.paths, NOW);
    wait_idle(webapp);
    let silent = Silent::start();
    fleet.set_url(
        "k2",
        &format!("git://127.0.0.1:{}/k2.git", silent.port),
        600,
    );
    let slow = vec![
        "--batch=10".to_owned(),
        "--batch-ls-remote-timeout=600".into(),
    ];
    drop(first);
    std::fs::remove_file(fleet.dir.path().join("minion.log")).expect("rm log");
    let mut second = RealMinion::start_with(webapp, fleet.dir.path(), &slow, &[]);
    webapp.pretend_time(NOW + HOUR);
    // The batch holds all three while k2's listing hangs.
    wait_for("the batch to hold every lorry", READY_TIMEOUT, || {
        fleet
            .paths
            .iter()
            .all(|p| !lorry(webapp, p)["running_job"].is_null())
            .then_some(())
    });
    // The batch's lorry runs, recorded in the minion's state directory.
    let records = fleet.dir.path().join("wa/%minions");
    wait_for("the batch's lorry recorded", READY_TIMEOUT, || {
        let log = std::fs::read_to_string(fleet.dir.path().join("minion.log")).ok()?;
        let recorded = std::fs::read_dir(&records).ok()?.next().is_some();
        (log.contains("lorry started") && recorded).then_some(())
    });
    second.0.kill().expect("SIGKILL");
    second.0.wait().expect("wait");
    std::mem::forget(second);
    assert!(
        fleet
            .paths
            .iter()
            .all(|p| !lorry(webapp, p)["running_job"].is_null()),
        "still held by the dead minion"
    );
    // k2 back on a good upstream; a successor without --batch.
    fleet.set_url("k2", &fleet.url("k2"), 600);
    let _third = RealMinion::start_with(webapp, fleet.dir.path(), &[], &[]);
    wait_all_run(webapp, &fleet.paths, NOW + HOUR);
    wait_idle(webapp);
    for path in &fleet.paths {
        let l = lorry(webapp, path);
        assert_eq!(
            (l["last_run_exit"].as_str(), job_count(webapp, path)),
            (Some("0"), 2),
            "{l}"
        );
    }
    fleet.assert_mirrored(&names);
    assert_eq!(batches_ended(webapp), 1, "the successor ended the batch");
    // No --check-refs process is left behind.
    let ps = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    let dir = fleet.dir.path().display().to_string();
    assert!(
        !String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l.contains("--check-refs") && l.contains(&dir)),
        "a batch's lorry survived"
    );
}
