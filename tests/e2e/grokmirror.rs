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

/// The bare repository `top/<repo>` on `main`, with one commit `file`
/// (made through a clone in `work`, see [`commit`]) unless `file` is None.
fn bare_repository(top: &Path, work: &Path, repo: &str, file: Option<&str>) {
    let bare = top.join(repo);
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    if let Some(file) = file {
        commit(top, work, repo, file);
    }
}

/// In the clone [`commit`] made of `up/b.git`: the annotated tag `v1` and,
/// when `light`, the lightweight tag `light`, pushed with `refspecs`.
fn tag_up_b(work: &Path, light: bool, refspecs: &[&str]) {
    let clone = work.join("up_b.git");
    git(&clone, &["tag", "-a", "-m", "annotated", "v1"]);
    let mut push = vec!["push", "-q", "origin", "v1"];
    if light {
        git(&clone, &["tag", "light"]);
        push.push("light");
    }
    push.extend(refspecs);
    git(&clone, &push);
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
        let first = (!repo.contains("empty")).then_some("first");
        bare_repository(&top, &work, repo, first);
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
    let first_jobs = now - hour - 1;
    for path in ["kernel/a", "kernel/b"] {
        let lorry = webapp.get_ok(&format!("/1.0/lorry/{path}"));
        assert_eq!(lorry["last_run"], now, "{lorry}");
        assert_eq!(lorry["last_run_exit"], "0", "{lorry}");
        // Operators see that no job ran, why, and when the last one did.
        assert_eq!(lorry["last_checked_without_job"], now, "{lorry}");
        assert_eq!(lorry["checked_without_job_how"], "unchanged per manifest");
        assert_eq!(lorry["last_job_run"], first_jobs, "{lorry}");
    }
    let page = webapp.get("/1.0/lorry-html/kernel/a").text;
    assert!(page.contains("unchanged per manifest"), "{page}");

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
        let first = (path != "up/never-pushed").then_some("one");
        bare_repository(&downstream, &work, &format!("{path}.git"), first);
    }
    tag_up_b(
        &work,
        true,
        &[
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
        bare_repository(&downstream, &work, &format!("{path}.git"), Some("one"));
    }
    tag_up_b(
        &work,
        false,
        &[
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

/// The refs of `repo` that lorry reports as mirrored (`held`): all but
/// its own `refs/lorry/` ones.
fn held_refs(repo: &Path) -> serde_json::Map<String, Value> {
    refs_of(repo)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, name)| !name.starts_with("refs/lorry/"))
        .map(|(oid, name)| (name.to_owned(), Value::from(oid)))
        .collect()
}

/// Runs the job of lorry `path` (moved to the top, so it is the one
/// handed out) to success with the result lorry would send for `spec`.
fn run_with_result(webapp: &Webapp, path: &str, spec: Value) {
    webapp.post_ok("/1.0/move-to-top", &[("path", path)]);
    let (id, given) = webapp.give_me_job().expect("a job");
    assert_eq!(given, path);
    let mut spec_result = json!({
        "name": path, "importer": "git", "ok": true, "refs": [], "preserved": [],
        "bytes_received": 0, "pushed": "yes",
    });
    if let (Some(base), Some(extra)) = (spec_result.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    let result = json!({"version": 1, "specs": [spec_result]}).to_string();
    webapp.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", &id.to_string()),
            ("exit", "0"),
            ("result", &result),
        ],
    );
}

/// GET the manifest with `If-Modified-Since: since`: status, its
/// `Last-Modified`, and the manifest when there is a body.
fn get_manifest(webapp: &Webapp, since: Option<&str>) -> (u16, String, Option<Value>) {
    let client = reqwest::blocking::Client::new();
    let mut request = client.get(webapp.url("/1.0/manifest.js.gz"));
    if let Some(since) = since {
        request = request.header("If-Modified-Since", since);
    }
    let response = request.send().expect("GET manifest");
    let status = response.status().as_u16();
    let modified = response
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().expect("body");
    let manifest = (status == 200).then(|| gunzip(&bytes));
    (status, modified, manifest)
}

/// A remote downstream (the GitLab double): the manifest is built from
/// the refs the jobs reported, and its fingerprints are those the real
/// `grok-manifest` computes from repositories holding the same refs (what
/// lorry pushed: the mirrored refs and the preserved old tips). A job
/// that moves refs changes that entry alone; an unchanged manifest is
/// answered 304.
#[test]
fn a_remote_downstreams_manifest_has_grokmirrors_fingerprints_of_the_refs_jobs_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    // What the remote downstream holds, as bare repositories grok-manifest
    // can read: the test plays lorry, pushing there and reporting it.
    let held = dir.path().join("held");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    for path in ["up/a", "up/b"] {
        bare_repository(&held, &work, &format!("{path}.git"), Some("one"));
    }
    tag_up_b(&work, true, &["HEAD:refs/heads/topic"]);
    let gitlab = crate::doubles::gitlab_v4::GitlabV4::start("manifest-token");
    let token = dir.path().join("token");
    std::fs::write(&token, "manifest-token\n").expect("token");
    let webapp = Webapp::init(dir.path())
        .with_downstream(&[
            "--git-server-type=gitlab".into(),
            format!("--downstream-http-url={}", gitlab.server.url()),
            format!("--gitlab-private-token-file={}", token.display()),
        ])
        .start();
    webapp.seed(
        &["up/a", "up/b", "up/never-reported"]
            .iter()
            .map(|p| common::git_lorry(p, 3600, 600))
            .collect::<Vec<_>>(),
    );
    // Nothing reported yet: an empty manifest, not a 404.
    let (status, _, manifest) = get_manifest(&webapp, None);
    assert_eq!((status, manifest), (200, Some(json!({}))));
    for path in ["up/a", "up/b"] {
        let refs = held_refs(&held.join(format!("{path}.git")));
        run_with_result(&webapp, path, json!({"held": refs}));
    }
    // A job that reports no refs at all (an older lorry): left out.
    run_with_result(&webapp, "up/never-reported", json!({}));

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
    let theirs = |top: &Path| {
        grok_manifest(top, 0);
        gunzip(&std::fs::read(top.join("manifest.js.gz")).expect("read"))
    };
    let (status, first_date, ours) = get_manifest(&webapp, None);
    assert_eq!(status, 200);
    let ours = ours.expect("manifest");
    let before = theirs(&held);
    assert_eq!(
        fingerprints(&ours),
        fingerprints(&before),
        "{ours}\n{before}"
    );
    assert_eq!(fingerprints(&ours).len(), 2, "{ours}");
    // Unchanged: 304, however often asked.
    for _ in 0..3 {
        let (status, date, body) = get_manifest(&webapp, Some(&first_date));
        assert_eq!(
            (status, date.as_str(), body),
            (304, first_date.as_str(), None)
        );
    }

    // upstream rewrote b's topic: lorry kept the old tip under
    // refs/lorry/preserved/ and pushed both.
    let b = held.join("up/b.git");
    let old = git(&b, &["rev-parse", "refs/heads/topic"])
        .trim()
        .to_owned();
    let preserved = "refs/lorry/preserved/20270101T000000Z/refs/heads/topic";
    git(&b, &["update-ref", preserved, &old]);
    let clone = work.join("up_b.git");
    git(&clone, &["checkout", "-q", "--orphan", "other"]);
    std::fs::write(clone.join("other"), "other").expect("write");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "other"]);
    git(
        &clone,
        &["push", "-q", "-f", "origin", "HEAD:refs/heads/topic"],
    );
    let new = git(&b, &["rev-parse", "refs/heads/topic"])
        .trim()
        .to_owned();
    // A second apart, so that If-Modified-Since (whole seconds) can tell.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run_with_result(
        &webapp,
        "up/b",
        json!({
            "refs": [{"name": "refs/heads/topic", "old": old, "new": new}],
            "preserved": [{"name": "refs/heads/topic", "oid": old, "kept_as": preserved}],
            "held": held_refs(&b),
        }),
    );
    let (status, second_date, ours_after) = get_manifest(&webapp, Some(&first_date));
    assert_eq!(status, 200, "a changed manifest is sent again");
    assert_ne!(second_date, first_date);
    let ours_after = ours_after.expect("manifest");
    let after = theirs(&held);
    assert_eq!(
        fingerprints(&ours_after),
        fingerprints(&after),
        "{ours_after}\n{after}"
    );
    assert_eq!(ours_after["/up/a.git"], ours["/up/a.git"]);
    assert_ne!(
        ours_after["/up/b.git"]["fingerprint"],
        ours["/up/b.git"]["fingerprint"]
    );
}
