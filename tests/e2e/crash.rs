//! Crash cycles (issue 12 item 7): the webapp killed with SIGKILL ten
//! times at random moments while two minions run real mirror jobs, and a
//! minion killed with SIGKILL mid-fetch and mid-push. Afterwards nothing
//! the webapp had committed is lost, no job is left running without a
//! minion, STATEDB passes `integrity_check`, and every lorry mirrors.
//!
//! The random moments come from a seed printed at the start; set
//! `LORRY_CRASH_SEED` to replay one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lc_core::db::{NewLorry, StateDb};
use serde_json::Value;

use crate::common::{READY_TIMEOUT, git, wait_for};
use crate::minion::{Daemon, refs};

const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");
const MINION: &str = env!("CARGO_BIN_EXE_lorry-controller-minion");
const LORRY: &str = env!("CARGO_BIN_EXE_lorry");

/// A child process of this test, killed (SIGKILL) when dropped.
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// xorshift64*: the test's random moments, reproducible from the seed.
struct Random(u64);

impl Random {
    fn from_env_or_clock() -> Random {
        let seed = std::env::var("LORRY_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("crash cycles: LORRY_CRASH_SEED={seed}");
        Random(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// A webapp on a fixed port (minions must find it again after a restart).
struct Site {
    dir: PathBuf,
    port: u16,
    client: reqwest::blocking::Client,
    starts: usize,
}

impl Site {
    fn new(dir: &Path) -> Site {
        std::fs::create_dir_all(dir.join("confgit")).expect("confgit");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        Site {
            dir: dir.to_owned(),
            port,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            starts: 0,
        }
    }

    fn statedb(&self) -> PathBuf {
        self.dir.join("webapp.db")
    }

    fn start(&mut self) -> Proc {
        self.starts += 1;
        let port_file = self.dir.join("webapp.port");
        let _ = std::fs::remove_file(&port_file);
        let mut child = Command::new(WEBAPP)
            .arg(format!("--statedb={}", self.statedb().display()))
            .arg(format!(
                "--configuration-directory={}",
                self.dir.join("confgit").display()
            ))
            .args(["--no-debug-real-confgit", "--git-server-type=local"])
            .arg(format!(
                "--local-base-directory={}",
                self.dir.join("downstream").display()
            ))
            .arg(format!(
                "--log={}",
                self.dir
                    .join(format!("webapp-{}.log", self.starts))
                    .display()
            ))
            .arg("--log-level=debug")
            .arg(format!("--debug-port={}", self.port))
            .arg(format!("--debug-port-file={}", port_file.display()))
            .stdin(Stdio::null())
            .spawn()
            .expect("start the webapp");
        wait_for("the webapp listening", READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the webapp exited with {status}");
            }
            port_file.exists().then_some(())
        });
        Proc(child)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> Value {
        let answer = self.client.get(self.url(path)).send().expect("GET");
        assert_eq!(answer.status(), 200, "GET {path}");
        answer.json().expect("JSON")
    }

    fn post(&self, path: &str) {
        let answer = self
            .client
            .post(self.url(path))
            .form(&[("", "")][..0])
            .send()
            .expect("POST");
        assert_eq!(answer.status(), 200, "POST {path}");
    }

    /// Every job with its output, by id.
    fn jobs(&self) -> BTreeMap<i64, Value> {
        let ids: Vec<i64> =
            serde_json::from_value(self.get("/1.0/list-jobs")["job_ids"].clone()).expect("ids");
        ids.into_iter()
            .map(|id| (id, self.get(&format!("/1.0/job/{id}"))))
            .collect()
    }

    fn minion(&self, name: &str, working_area: &Path) -> Proc {
        let lorry_conf = self.dir.join("lorry.conf");
        std::fs::write(
            &lorry_conf,
            format!(
                "[config]\nworking-area = {}\nmirror-base-url-push = {}\n",
                working_area.display(),
                self.dir.join("downstream").display()
            ),
        )
        .expect("lorry.conf");
        Proc(
            Command::new(MINION)
                .args([
                    "--webapp-host=127.0.0.1".to_owned(),
                    format!("--webapp-port={}", self.port),
                    "--sleep=0.1".into(),
                    "--update-interval=0.2".into(),
                    "--webapp-retry-max=0.5".into(),
                    format!("--lorry-path={LORRY}"),
                    format!("--lorry-config={}", lorry_conf.display()),
                    format!("--log={}", self.dir.join(format!("{name}.log")).display()),
                    "--log-level=debug".into(),
                ])
                .stdin(Stdio::null())
                .spawn()
                .expect("start a minion"),
        )
    }
}

/// A bare upstream `name` with branches and a tag; `bytes` of random data
/// in its first commit (to make a fetch and a push last a while).
fn upstream(base: &Path, work: &Path, name: &str, bytes: usize) -> PathBuf {
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
    git(&clone, &["commit", "-q", "-m", "first"]);
    for branch in ["topic", "other"] {
        git(&clone, &["checkout", "-q", "-B", branch]);
        std::fs::write(clone.join(branch), branch).expect("write");
        git(&clone, &["add", "."]);
        git(&clone, &["commit", "-q", "-m", branch]);
    }
    git(&clone, &["tag", "v1"]);
    git(
        &clone,
        &[
            "push",
            "-q",
            &bare.display().to_string(),
            "main",
            "topic",
            "other",
            "v1",
        ],
    );
    bare
}

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

/// What a later read of a job must still show: an ended job exactly as it
/// was; a running one at least the output it had.
fn assert_kept(before: &BTreeMap<i64, Value>, after: &BTreeMap<i64, Value>, cycle: usize) {
    for (id, old) in before {
        let new = after
            .get(id)
            .unwrap_or_else(|| panic!("cycle {cycle}: job {id} is lost: {old}"));
        let old_output = old["output"].as_str().unwrap_or_default();
        let new_output = new["output"].as_str().unwrap_or_default();
        assert!(
            new_output.starts_with(old_output),
            "cycle {cycle}: job {id} lost output it had: {old} then {new}"
        );
        if old["exit"] != "no" {
            assert_eq!(old["exit"], new["exit"], "cycle {cycle}: job {id}");
            assert_eq!(old_output, new_output, "cycle {cycle}: job {id}");
        }
    }
}

fn assert_mirrored(site: &Site, upstreams: &Path, names: &[&str]) {
    for name in names {
        let down = site.dir.join(format!("downstream/crash/{name}.git"));
        assert_eq!(
            refs(&down, &["refs/heads", "refs/tags"]),
            refs(&upstreams.join(format!("{name}.git")), &[]),
            "downstream of {name} has every ref"
        );
    }
}

#[test]
fn the_webapp_killed_ten_times_loses_no_job_and_leaves_no_ghost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut random = Random::from_env_or_clock();
    let upstreams = dir.path().join("upstreams");
    let work = dir.path().join("work");
    let names = ["a", "b", "c", "d"];
    for name in names {
        upstream(&upstreams, &work, name, 100_000);
    }
    let daemon = Daemon::start(&upstreams);
    let mut site = Site::new(dir.path());
    let mut webapp = site.start();
    {
        let db = StateDb::open(&site.statedb()).expect("STATEDB");
        db.write(|tx| {
            for name in names {
                let url = format!("git://127.0.0.1:{}/{name}.git", daemon.1);
                tx.upsert_lorry(&lorry_of(&format!("crash/{name}"), &url, 0))?;
            }
            Ok(())
        })
        .expect("seed");
    }
    let working_area = dir.path().join("wa");
    let mut minions = [
        site.minion("m1", &working_area),
        site.minion("m2", &working_area),
    ];
    wait_for("the first jobs", READY_TIMEOUT, || {
        (site.jobs().len() >= 2).then_some(())
    });

    let mut running = true;
    for cycle in 0..10 {
        std::thread::sleep(Duration::from_millis(random.below(1500)));
        running = random.below(3) != 0;
        site.post(if running {
            "/1.0/start-queue"
        } else {
            "/1.0/stop-queue"
        });
        std::thread::sleep(Duration::from_millis(random.below(300)));
        let before = site.jobs();
        std::thread::sleep(Duration::from_millis(random.below(300)));
        webapp.kill();
        webapp = site.start();
        let after = site.jobs();
        assert_kept(&before, &after, cycle);
        assert_eq!(
            site.get("/1.0/status")["running_queue"],
            Value::Bool(running),
            "cycle {cycle}: the queue is as set"
        );
        site.post("/1.0/start-queue");
    }
    let _ = running;

    // The minions found the webapp again by themselves: every lorry gets
    // a job after the last restart, and it succeeds.
    let last_before = site.jobs().keys().max().copied().unwrap_or(0);
    for name in names {
        let path = format!("crash/{name}");
        let job = wait_for(
            &format!("a run of {path} after the crashes"),
            READY_TIMEOUT * 2,
            || {
                site.jobs().into_values().find(|job| {
                    job["path"] == path.as_str()
                        && job["job_id"].as_i64() > Some(last_before)
                        && job["exit"] != "no"
                })
            },
        );
        assert_eq!(job["exit"], "0", "{job}");
    }
    // No ghosts: with the queue stopped, every job ends.
    site.post("/1.0/stop-queue");
    let jobs = wait_for("every job ended", READY_TIMEOUT * 2, || {
        let jobs = site.jobs();
        jobs.values().all(|job| job["exit"] != "no").then_some(jobs)
    });
    for job in jobs.values() {
        let output = job["output"].as_str().unwrap_or_default();
        assert!(
            !output.contains("ended as a ghost"),
            "no job is left to the ghost reaper: {job}"
        );
    }
    for minion in &mut minions {
        assert!(minion.is_running(), "the minions survived every crash");
    }
    drop(minions);
    drop(webapp);
    StateDb::open(&site.statedb())
        .expect("STATEDB")
        .integrity_check()
        .expect("integrity_check ok");
    assert_mirrored(&site, &upstreams, &names);
}

/// The command lines of the processes descending from `root` that run
/// git with `word` as one of its arguments.
fn descendants_running(root: u32, word: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        rest.split(' ').nth(1)?.parse().ok()
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_git = args.first().is_some_and(|a| a.ends_with("git"));
            if !is_git || !args.iter().any(|a| a == word) {
                return None;
            }
            let mut at = pid;
            for _ in 0..16 {
                match parent_of(at) {
                    Some(p) if p == root => return Some(args.join(" ")),
                    Some(p) if p > 1 => at = p,
                    _ => return None,
                }
            }
            None
        })
        .collect()
}

/// A minion killed with SIGKILL while its lorry fetches, and another
/// while its lorry pushes: the next minion ends the job, and the lorry's
/// next run succeeds with every ref downstream.
#[test]
fn a_minion_killed_mid_fetch_and_mid_push_leaves_a_lorry_that_mirrors_next_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstreams = dir.path().join("upstreams");
    let work = dir.path().join("work");
    upstream(&upstreams, &work, "big", 24 << 20);
    let daemon = Daemon::start(&upstreams);
    let mut site = Site::new(dir.path());
    let _webapp = site.start();
    {
        let db = StateDb::open(&site.statedb()).expect("STATEDB");
        let url = format!("git://127.0.0.1:{}/big.git", daemon.1);
        db.write(|tx| tx.upsert_lorry(&lorry_of("crash/big", &url, 0)))
            .expect("seed");
    }
    let working_area = dir.path().join("wa");
    let mut killed = 0;
    for (step, word) in ["fetch", "push"].into_iter().enumerate() {
        let mut minion = site.minion(&format!("m{step}"), &working_area);
        let pid = minion.0.id();
        let found = wait_for(&format!("lorry's git {word}"), READY_TIMEOUT * 2, || {
            descendants_running(pid, word).into_iter().next()
        });
        eprintln!("killing the minion while it runs {found}");
        minion.kill();
        killed += 1;
    }
    assert_eq!(killed, 2);
    let _minion = site.minion("m-last", &working_area);
    let jobs = wait_for(
        "a successful run after the kills",
        READY_TIMEOUT * 4,
        || {
            let jobs = site.jobs();
            jobs.values().any(|job| job["exit"] == "0").then_some(jobs)
        },
    );
    // The killed minions' jobs were ended by their successors, not left
    // to the ghost reaper.
    let ended_by_successor = jobs
        .values()
        .filter(|job| {
            job["output"]
                .as_str()
                .unwrap_or_default()
                .contains("the minion running this job was killed")
        })
        .count();
    assert!(ended_by_successor >= 2, "{jobs:?}");
    assert_mirrored(&site, &upstreams, &["big"]);
}

/// The webapp killed between handing out a job and its answer: the
/// minion never got it and asks again with `idle=yes`, which ends the
/// lost job at once instead of leaving it to the ghost timeout. Minions
/// that do not say `idle` (the original's) keep the old behaviour.
#[test]
fn a_job_whose_answer_was_lost_is_ended_when_its_minion_asks_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = crate::common::Webapp::init(dir.path()).start();
    webapp.seed(&[
        crate::common::lorry("lost/a"),
        crate::common::lorry("lost/b"),
    ]);
    let first = webapp.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "7")]);
    let lost = first["job_id"].as_i64().expect("a job");
    // Without idle: both jobs stay running.
    let second = webapp.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "7")]);
    let kept = second["job_id"].as_i64().expect("a second job");
    assert_eq!(webapp.job(lost)["exit"], "no");
    webapp.finish(kept, 0);
    let third = webapp.post_ok(
        "/1.0/give-me-job",
        &[("host", "m"), ("pid", "7"), ("idle", "yes")],
    );
    assert_eq!(third["job_id"], Value::Null, "{third}");
    let job = webapp.job(lost);
    assert_eq!(job["exit"], "127", "{job}");
    assert!(
        job["output"]
            .as_str()
            .unwrap_or_default()
            .contains("the answer handing it out never reached it"),
        "{job}"
    );
    assert!(webapp.log().contains("never received them"));
}
