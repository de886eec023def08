//! End to end: a `grokmirror` Upstream Host. The manifest is made by the
//! real `grok-manifest` (grokmirror from PyPI, installed by
//! `scripts/test-deps`) from bare repositories that `git daemon` serves,
//! and served by Python's `http.server`, which answers `If-Modified-Since`
//! with 304 and logs every answer. Jobs are asked for and ended as a
//! minion would; what is under test is which lorries get one.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{READY_TIMEOUT, Webapp, git, wait_for};
use serde_json::{Value, json};

/// `grok-manifest`: from `$LORRY_TEST_GROKMIRROR` (a bin directory), the
/// virtual environment `scripts/test-deps` makes, or PATH.
pub fn grok_tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("LORRY_TEST_GROKMIRROR") {
        dirs.push(dir.into());
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cache/lorry-controller/grokmirror/bin"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found: run scripts/test-deps (pip installs grokmirror)")
        })
}

/// Writes (or updates) the manifest of every repository under `top`, as
/// an origin's post-update hook would, and gives it a modification time
/// `age` seconds in the future, so that If-Modified-Since (a whole-second
/// date) sees every rewrite.
fn grok_manifest(top: &Path, age: u64) {
    let manifest = top.join("manifest.js.gz");
    let out = Command::new(grok_tool("grok-manifest"))
        .arg("-m")
        .arg(&manifest)
        .arg("-t")
        .arg(top)
        .output()
        .expect("run grok-manifest");
    assert!(out.status.success(), "{}", common::all_output(&out));
    let when = std::time::SystemTime::now() + std::time::Duration::from_secs(age);
    std::fs::File::options()
        .write(true)
        .open(&manifest)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

/// `python3 -m http.server` serving `dir`; its request log in `log`.
struct Server(Child, u16);

impl Server {
    fn start(dir: &Path, log: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("python3 http.server");
        wait_for("http.server", READY_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Server(child, port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many answers with `status` the server's log shows.
fn answers(log: &Path, status: u16) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let needle = format!("\" {status} ");
    text.lines()
        .filter(|l| l.contains("GET /manifest.js.gz") && l.contains(&needle))
        .count()
}

/// Every job give-me-job hands out now, ended with exit 0; their paths.
fn run_due(webapp: &Webapp) -> Vec<String> {
    let mut ran = Vec::new();
    while let Some((id, path)) = webapp.give_me_job() {
        webapp.finish(id, 0);
        ran.push(path);
    }
    ran
}

fn commit(top: &Path, work: &Path, repo: &str, file: &str) {
    let clone = work.join(repo.replace('/', "_"));
    if !clone.exists() {
        git(
            work,
            &[
                "clone",
                "-q",
                &top.join(repo).display().to_string(),
                &clone.display().to_string(),
            ],
        );
    }
    std::fs::write(clone.join(file), file).expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", file]);
    git(&clone, &["push", "-q", "origin", "HEAD:main"]);
}

#[test]
fn unchanged_repositories_per_manifest_are_checked_without_a_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let top = dir.path().join("origin");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    for repo in [
        "pub/scm/a.git",
        "pub/scm/b.git",
        "pub/scm/old/c.git",
        "pub/scm/empty.git",
        "other/d.git",
    ] {
        let bare = top.join(repo);
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        if !repo.contains("empty") {
            commit(&top, &work, repo, "first");
        }
    }
    grok_manifest(&top, 0);
    let log = dir.path().join("http.log");
    let server = Server::start(&top, &log);
    let host = format!("127.0.0.1:{}", server.1);
    let webapp = Webapp::init(dir.path())
        .with_args(&["--full-check-every=2h"])
        .start();
    let hour = 3_600;
    let mut now = 1_800_000_000;
    webapp.pretend_time(now);
    webapp.configure(&json!([{
        "type": "grokmirror",
        "manifest-url": format!("http://{host}/manifest.js.gz"),
        "clone-base": "git://127.0.0.1:9/",
        "prefixmap": {"pub/scm": "kernel"},
        "ignore": ["pub/scm/old/*"],
        "interval": "1h",
    }]));
    let ls = webapp.post_ok("/1.0/ls-troves", &[]);
    let listing = &ls["hosts"][0];
    assert_eq!(
        listing["lorries_added"],
        json!(["kernel/a", "kernel/b"]),
        "{ls}"
    );
    assert_eq!(
        (listing["ignored"].as_u64(), listing["unmapped"].as_u64()),
        (Some(1), Some(1))
    );
    let spec = webapp.get_ok("/1.0/lorry/kernel/a");
    assert!(
        spec["text"]
            .to_string()
            .contains("git://127.0.0.1:9/pub/scm/a.git"),
        "{spec}"
    );
    assert_eq!(run_due(&webapp), ["kernel/a", "kernel/b"]);

    // An hour later nothing changed: the manifest is asked for with
    // If-Modified-Since, answered 304, and both lorries are checked
    // without a job, as successful runs.
    now += hour + 1;
    webapp.pretend_time(now);
    webapp.post_ok("/1.0/ls-troves", &[]);
    assert_eq!((answers(&log, 200), answers(&log, 304)), (1, 1));
    assert!(run_due(&webapp).is_empty());
    for path in ["kernel/a", "kernel/b"] {
        let lorry = webapp.get_ok(&format!("/1.0/lorry/{path}"));
        assert_eq!(lorry["last_run"], now, "{lorry}");
        assert_eq!(lorry["last_run_exit"], "0", "{lorry}");
    }

    // Without a newer read of the manifest nothing is known: jobs.
    now += hour + 1;
    webapp.pretend_time(now);
    assert_eq!(run_due(&webapp), ["kernel/a", "kernel/b"]);

    // b moves on upstream: the rewritten manifest is read in full, and
    // only b gets a job.
    commit(&top, &work, "pub/scm/b.git", "second");
    grok_manifest(&top, 10);
    now += hour + 1;
    webapp.pretend_time(now);
    webapp.post_ok("/1.0/ls-troves", &[]);
    assert_eq!(answers(&log, 200), 2);
    assert_eq!(run_due(&webapp), ["kernel/b"]);

    // The safety net: a's last job started more than 2 h ago.
    now += hour + 1;
    webapp.pretend_time(now);
    webapp.post_ok("/1.0/ls-troves", &[]);
    assert_eq!(answers(&log, 304), 2);
    assert_eq!(run_due(&webapp), ["kernel/a"]);

    // A damaged manifest: the listing fails, nothing is removed, and with
    // nothing known every due lorry gets its job.
    std::fs::write(top.join("manifest.js.gz"), b"\x1f\x8bnot gzip").expect("write");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(20);
    std::fs::File::options()
        .write(true)
        .open(top.join("manifest.js.gz"))
        .and_then(|f| f.set_modified(later))
        .expect("mtime");
    now += hour + 1;
    webapp.pretend_time(now);
    let ls = webapp.post_ok("/1.0/ls-troves", &[]);
    let errors = ls["hosts"][0]["errors"].to_string();
    assert!(errors.contains("not valid gzip"), "{ls}");
    let status = webapp.host_status(&host);
    assert!(status["ls_last_error"].is_string(), "{status}");
    assert_eq!(run_due(&webapp), ["kernel/a", "kernel/b"]);

    // A manifest that loses most repositories is refused by the shrink
    // guard, and the next read is a full one, not a 304.
    std::fs::remove_dir_all(top.join("pub/scm/a.git")).expect("rm");
    std::fs::remove_file(top.join("manifest.js.gz")).expect("rm");
    grok_manifest(&top, 30);
    now += hour + 1;
    webapp.pretend_time(now);
    let ls = webapp.post_ok("/1.0/ls-troves", &[]);
    assert!(
        ls["hosts"][0]["errors"]
            .to_string()
            .contains("shrink limit"),
        "{ls}"
    );
    let full_reads = answers(&log, 200);
    now += hour + 1;
    webapp.pretend_time(now);
    webapp.post_ok("/1.0/ls-troves", &[]);
    assert_eq!(answers(&log, 200), full_reads + 1);
    let queue: Vec<Value> = webapp.queue().into_iter().map(Value::from).collect();
    assert_eq!(queue, [json!("kernel/a"), json!("kernel/b")]);
}

/// Our own manifest: the fingerprints `/1.0/manifest.js.gz` gives for the
/// repositories of a local downstream are those the real `grok-manifest`
/// computes from the same repositories (refs of every kind: branches,
/// tags, annotated tags, preserved refs), and `--manifest-file` holds the
/// same manifest.
#[test]
fn our_manifest_has_grokmirrors_fingerprints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let downstream = dir.path().join("downstream");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let paths = ["up/a", "up/b", "c", "up/never-pushed"];
    for path in paths {
        let bare = downstream.join(format!("{path}.git"));
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    }
    commit(&downstream, &work, "up/a.git", "one");
    commit(&downstream, &work, "up/b.git", "one");
    commit(&downstream, &work, "c.git", "one");
    let clone = work.join("up_b.git");
    git(&clone, &["tag", "-a", "-m", "annotated", "v1"]);
    git(&clone, &["tag", "light"]);
    git(
        &clone,
        &[
            "push",
            "-q",
            "origin",
            "v1",
            "light",
            "HEAD:refs/heads/topic",
            "HEAD:refs/lorry/preserved/20260101T000000Z/refs/heads/x",
        ],
    );
    let manifest_file = dir.path().join("published/manifest.js.gz");
    std::fs::create_dir_all(manifest_file.parent().expect("parent")).expect("mkdir");
    let webapp = Webapp::init(dir.path())
        .with_args(&[format!("--manifest-file={}", manifest_file.display())])
        .start();
    webapp.seed(
        &paths
            .iter()
            .map(|p| common::git_lorry(p, 3600, 600))
            .collect::<Vec<_>>(),
    );
    let response = reqwest::blocking::get(webapp.url("/1.0/manifest.js.gz")).expect("GET");
    assert_eq!(response.status(), 200);
    let ours = gunzip(&response.bytes().expect("body"));
    assert_eq!(gunzip(&std::fs::read(&manifest_file).expect("file")), ours);

    // grokmirror's own manifest of the same repositories.
    grok_manifest(&downstream, 0);
    let theirs = gunzip(&std::fs::read(downstream.join("manifest.js.gz")).expect("read"));
    let fingerprints = |m: &Value| -> Vec<(String, Value)> {
        let mut v: Vec<_> = m
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, e)| (k.clone(), e["fingerprint"].clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(
        fingerprints(&ours),
        fingerprints(&theirs),
        "{ours}\n{theirs}"
    );
    assert_eq!(fingerprints(&ours).len(), 3, "{ours}");
    assert_eq!(ours["/up/b.git"]["head"], "ref: refs/heads/main");
}

fn gunzip(bytes: &[u8]) -> Value {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("gzip");
    serde_json::from_str(&text).expect("json")
}

/// Every ref of `repo` with its object, one per line.
fn refs_of(repo: &Path) -> String {
    git(repo, &["for-each-ref", "--format=%(objectname) %(refname)"])
}

/// Runs the real `grok-pull` with `config`, the manifest re-read whatever
/// its date when `always`; its output.
fn grok_pull(config: &Path, always: bool) -> String {
    let out = Command::new(grok_tool("grok-pull"))
        .arg("-v")
        .args(always.then_some("-n"))
        .arg("-c")
        .arg(config)
        .output()
        .expect("run grok-pull");
    let text = common::all_output(&out);
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn grok_pull_replicates_our_downstream_from_our_manifest() {
    // A grokmirror replica downstream of us: the real grok-pull reads the
    // manifest the webapp publishes and fetches from our downstream (here
    // served by git daemon). It gets every ref, and on a refresh fetches
    // only the repository whose fingerprint changed.
    let dir = tempfile::tempdir().expect("tempdir");
    let downstream = dir.path().join("downstream");
    let work = dir.path().join("work");
    let replica = dir.path().join("replica");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::create_dir_all(&replica).expect("mkdir");
    let paths = ["up/a", "up/b", "c"];
    for path in paths {
        let bare = downstream.join(format!("{path}.git"));
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        commit(&downstream, &work, &format!("{path}.git"), "one");
    }
    let clone = work.join("up_b.git");
    git(&clone, &["tag", "-a", "-m", "annotated", "v1"]);
    git(
        &clone,
        &[
            "push",
            "-q",
            "origin",
            "v1",
            "HEAD:refs/heads/topic",
            "HEAD:refs/lorry/preserved/20260101T000000Z/refs/heads/x",
        ],
    );
    let webapp = Webapp::init(dir.path()).start();
    webapp.seed(
        &paths
            .iter()
            .map(|p| common::git_lorry(p, 3600, 600))
            .collect::<Vec<_>>(),
    );
    let daemon = crate::minion::Daemon::start(&downstream);
    let config = dir.path().join("pull.conf");
    std::fs::write(
        &config,
        format!(
            "[core]\ntoplevel = {top}\nmanifest = {top}/manifest.js.gz\nlog = {top}/grok.log\n\
             [remote]\nsite = git://127.0.0.1:{port}\nmanifest = {manifest}\n\
             [pull]\npull_threads = 2\nrefresh = 0\n",
            top = replica.display(),
            port = daemon.1,
            manifest = webapp.url("/1.0/manifest.js.gz"),
        ),
    )
    .expect("write pull.conf");

    let first = grok_pull(&config, true);
    for path in paths {
        let name = format!("{path}.git");
        assert_eq!(
            refs_of(&replica.join(&name)),
            refs_of(&downstream.join(&name)),
            "{name} after the first pull: {first}"
        );
    }
    assert!(refs_of(&replica.join("up/b.git")).contains("refs/tags/v1"));

    // One repository moves: the refresh fetches it alone.
    commit(&downstream, &work, "up/a.git", "two");
    let second = grok_pull(&config, false);
    for path in paths {
        let name = format!("{path}.git");
        assert_eq!(
            refs_of(&replica.join(&name)),
            refs_of(&downstream.join(&name)),
            "{name} after the refresh: {second}"
        );
    }
    let fetched: Vec<&str> = second
        .lines()
        .filter_map(|l| l.trim().strip_prefix("fetch: "))
        .collect();
    assert_eq!(fetched, ["/up/a.git"], "{second}");

    // Nothing changed since: grok-pull asks with If-Modified-Since and the
    // webapp answers 304.
    let third = grok_pull(&config, false);
    assert!(third.contains("manifest: unchanged"), "{third}");
}
