//! End to end: CONFGIT read by the real webapp over file:// and over HTTP
//! (`git http-backend` behind a small CGI bridge), and the post-update hook
//! against a running webapp.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::http_backend::{serve_http, serve_http_with_auth};
use common::{Webapp, git};

/// A bare CONFGIT at `dir/confgit.git`, edited through a work tree `dir/work`.
struct Confgit {
    bare: PathBuf,
    work: PathBuf,
}

impl Confgit {
    fn new(dir: &Path) -> Confgit {
        let bare = dir.join("confgit.git");
        let work = dir.join("work");
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "--quiet", "--bare", "-b", "master"]);
        git(
            dir,
            &["clone", "--quiet", bare.to_str().expect("utf8"), "work"],
        );
        git(&work, &["checkout", "--quiet", "-b", "master"]);
        Confgit { bare, work }
    }

    /// Commits and pushes; what the push printed on stderr (the hooks'
    /// messages among it).
    fn commit(&self, files: &[(&str, &str)], remove: &[&str]) -> String {
        for (name, text) in files {
            let path = self.work.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        for name in remove {
            git(&self.work, &["rm", "--quiet", name]);
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "--quiet", "--allow-empty", "-m", "change"],
        );
        let out = Command::new("git")
            .current_dir(&self.work)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["push", "--quiet", "origin", "master"])
            .output()
            .expect("git push");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "git push: {stderr}");
        stderr
    }
}

const CONF: &str =
    r#"[{"type": "lorries", "prefix": "up", "interval": "2H", "globs": ["lorries/*.lorry"]}]"#;

fn start_webapp(dir: &Path, url: &str) -> Webapp {
    Webapp::init(dir)
        .with_args(&[
            "--debug-real-confgit",
            &format!("--confgit-url={url}"),
            "--confgit-branch=master",
        ])
        .start()
}

/// Add, change, remove and an unchanged re-read, through a real CONFGIT.
fn exercise(webapp: &Webapp, confgit: &Confgit) {
    confgit.commit(
        &[
            ("lorry-controller.conf", CONF),
            ("lorries/a.lorry", "a: {type: git, url: 'https://example.org/a.git'}\n"),
            ("lorries/b.lorry", r#"{"b": {"type": "tarball", "url": "https://example.org/b.tgz"}, "bad": {"url": "x"}}"#),
        ],
        &[],
    );
    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(
        s["lorries_added"],
        serde_json::json!(["up/a", "up/b"]),
        "{s}"
    );
    assert_eq!(webapp.queue(), ["up/a", "up/b"]);
    let status = webapp.get_ok("/1.0/status");
    assert_eq!(status["config_problems"][0]["file"], "lorries/b.lorry");
    assert_eq!(status["config_problems"][0]["item"], "bad");

    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(s["lorries_unchanged"], 2, "{s}");
    assert!(s["lorries_added"].as_array().expect("list").is_empty());

    confgit.commit(
        &[(
            "lorries/a.lorry",
            "a: {type: git, url: 'https://example.org/a2.git'}\n",
        )],
        &["lorries/b.lorry"],
    );
    let dry = webapp.post_ok("/1.0/read-configuration", &[("dry_run", "1")]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["lorries_changed"], serde_json::json!(["up/a"]), "{dry}");
    assert_eq!(dry["lorries_removed"], serde_json::json!(["up/b"]), "{dry}");
    assert_eq!(webapp.queue(), ["up/a", "up/b"], "dry run wrote nothing");
    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(s["lorries_removed"], serde_json::json!(["up/b"]), "{s}");
    assert_eq!(webapp.queue(), ["up/a"]);
    let lorry = webapp.get_ok("/1.0/lorry/up/a");
    assert!(lorry.to_string().contains("a2.git"), "{lorry}");
    assert!(
        webapp.get_ok("/1.0/status")["config_problems"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    confgit.commit(&[("lorry-controller.conf", r#"[{"type": "trove"}]"#)], &[]);
    let answer = webapp.post("/1.0/read-configuration", &[]);
    assert_eq!(answer.status, 400, "{}", answer.text);
    let error = answer.body["error"].as_str().expect("error");
    assert!(
        error.contains("lorry-controller.conf: section 0 (type trove)"),
        "{error}"
    );
    assert_eq!(webapp.queue(), ["up/a"], "a bad conf leaves STATEDB alone");
}

#[test]
fn confgit_over_file_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let confgit = Confgit::new(dir.path());
    let url = format!("file://{}", confgit.bare.display());
    let webapp = start_webapp(dir.path(), &url);
    exercise(&webapp, &confgit);
    webapp.stop();
}

/// Upgrading from the Python Lorry Controller (or an older version of
/// ours), whose configuration directory is a checkout of CONFGIT that
/// scripts may read: the webapp says so at start-up, reads the fetched
/// commit, and keeps the checkout at it (changed, added and removed files;
/// the operator's own files kept). A local edit in its way is never lost:
/// the checkout stays, the problem is shown until the edit is undone.
/// Removing the directory ends the checkout.
#[test]
fn a_checkout_left_by_an_older_version_is_kept_at_the_fetched_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let confgit = Confgit::new(dir.path());
    let url = format!("file://{}", confgit.bare.display());
    let a = |n: u32| format!("a: {{type: git, url: 'https://example.org/a{n}.git'}}\n");
    confgit.commit(
        &[
            ("lorry-controller.conf", CONF),
            ("lorries/a.lorry", &a(1)),
            (
                "lorries/b.lorry",
                "b: {type: git, url: 'https://example.org/b.git'}\n",
            ),
        ],
        &[],
    );
    // What the original's first read left: `git clone -b <branch>`.
    let checkout = dir.path().join("confgit");
    git(
        dir.path(),
        &["clone", "--quiet", "-b", "master", &url, "confgit"],
    );
    std::fs::write(checkout.join("operator-notes.txt"), "mine").expect("write");
    let webapp = start_webapp(dir.path(), &url);
    common::wait_for("the start-up notice", Duration::from_secs(30), || {
        webapp
            .log()
            .contains("is a checkout left by an older version")
            .then_some(())
    });
    let read = |name: &str| std::fs::read_to_string(checkout.join(name)).ok();
    let problems =
        |answer: &serde_json::Value| answer["problems"].as_array().expect("list").clone();

    confgit.commit(
        &[
            ("lorries/a.lorry", &a(2)),
            (
                "lorries/c.lorry",
                "c: {type: git, url: 'https://example.org/c.git'}\n",
            ),
        ],
        &["lorries/b.lorry"],
    );
    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert!(problems(&s).is_empty(), "{s}");
    assert_eq!(webapp.queue(), ["up/a", "up/c"]);
    assert_eq!(read("lorries/a.lorry"), Some(a(2)));
    assert!(read("lorries/c.lorry").is_some());
    assert_eq!(read("lorries/b.lorry"), None);
    assert_eq!(read("operator-notes.txt").as_deref(), Some("mine"));
    assert_eq!(
        git(&checkout, &["status", "--porcelain"]),
        "?? operator-notes.txt\n"
    );

    // An edit made in the checkout, in the way of the next commit.
    std::fs::write(checkout.join("lorries/a.lorry"), "edited here").expect("edit");
    confgit.commit(&[("lorries/a.lorry", &a(3))], &[]);
    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert!(
        webapp
            .get_ok("/1.0/lorry/up/a")
            .to_string()
            .contains("a3.git")
    );
    assert_eq!(read("lorries/a.lorry").as_deref(), Some("edited here"));
    let problem = &problems(&s)[0];
    assert_eq!(problem["file"], ".", "{s}");
    let text = problem["problem"].as_str().expect("text");
    assert!(
        text.contains("stale") && text.contains("lorries/a.lorry"),
        "{text}"
    );
    let status = webapp.get_ok("/1.0/status");
    assert_eq!(status["config_problems"][0]["problem"], text);
    assert!(webapp.log().contains("was not updated"));

    // Undone: followed again, and the problem is gone.
    git(&checkout, &["checkout", "--quiet", "lorries/a.lorry"]);
    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert!(problems(&s).is_empty(), "{s}");
    assert_eq!(read("lorries/a.lorry"), Some(a(3)));
    assert!(
        webapp.get_ok("/1.0/status")["config_problems"]
            .as_array()
            .expect("list")
            .is_empty()
    );

    // The operator removes the directory: the next read fetches CONFGIT
    // again, into a repository without a working tree.
    std::fs::remove_dir_all(&checkout).expect("rm");
    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(s["lorries_unchanged"], 2, "{s}");
    let left: Vec<_> = std::fs::read_dir(&checkout)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, [".git"]);
    webapp.stop();
}

#[test]
fn confgit_over_http_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let confgit = Confgit::new(dir.path());
    let (_server, port) = serve_http(dir.path(), dir.path());
    let url = format!("http://127.0.0.1:{port}/confgit.git");
    let webapp = start_webapp(dir.path(), &url);
    exercise(&webapp, &confgit);

    // A CONFGIT that asks for credentials: they travel in the webapp's
    // environment to git, and the checkout does not keep them.
    webapp.stop();
    confgit.commit(&[("lorry-controller.conf", CONF)], &[]);
    let (_auth_server, auth_port) =
        serve_http_with_auth(dir.path(), dir.path(), Some("admin:p@ss w0rd"));
    let dir3 = tempfile::tempdir().expect("tempdir");
    let webapp = start_webapp(
        dir3.path(),
        &format!("http://admin:p%40ss%20w0rd@127.0.0.1:{auth_port}/confgit.git"),
    );
    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert!(
        s["lorries_added"].as_array().is_some_and(|a| !a.is_empty()),
        "{s}"
    );
    let checkout_config =
        std::fs::read_to_string(dir3.path().join("confgit/.git/config")).expect("checkout");
    assert!(!checkout_config.contains("w0rd"), "{checkout_config}");
    assert!(checkout_config.contains(&format!("http://127.0.0.1:{auth_port}/confgit.git")));
    let s = webapp.post_ok("/1.0/read-configuration", &[]);
    assert!(
        s["lorries_unchanged"].as_u64().is_some_and(|n| n > 0),
        "fetch: {s}"
    );
    let wrong = tempfile::tempdir().expect("tempdir");
    let refused = start_webapp(
        wrong.path(),
        &format!("http://admin:nope@127.0.0.1:{auth_port}/confgit.git"),
    );
    let answer = refused.post("/1.0/read-configuration", &[]);
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(!answer.text.contains("nope"), "{}", answer.text);
    refused.stop();

    // An unreachable CONFGIT with credentials in its URL: 503, credentials hidden.
    webapp.stop();
    let dir2 = tempfile::tempdir().expect("tempdir");
    let webapp = start_webapp(dir2.path(), "http://admin:hunter2@127.0.0.1:9/confgit.git");
    let answer = webapp.post("/1.0/read-configuration", &[]);
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(
        answer.text.contains("127.0.0.1:9/confgit.git"),
        "{}",
        answer.text
    );
    assert!(!answer.text.contains("hunter2"), "{}", answer.text);
    webapp.stop();
}

const HOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/git-hooks/post-update");

#[test]
fn post_update_hook_asks_a_running_webapp_and_never_fails_the_push() {
    let dir = tempfile::tempdir().expect("tempdir");
    let confgit = Confgit::new(dir.path());
    let hook = confgit.bare.join("hooks/post-update");
    std::fs::copy(HOOK, &hook).expect("install hook");
    let url = format!("file://{}", confgit.bare.display());
    let webapp = start_webapp(dir.path(), &url);
    git(
        &confgit.bare,
        &["config", "lorry-controller.url", &webapp.url("")],
    );
    let said = confgit.commit(
        &[
            ("lorry-controller.conf", CONF),
            (
                "lorries/a.lorry",
                "a: {type: git, url: 'https://example.org/a.git'}\n",
            ),
        ],
        &[],
    );
    // The push ran the hook, which asked the webapp to read CONFGIT.
    assert!(
        said.contains("lorry-controller: configuration re-read"),
        "{said}"
    );
    assert_eq!(webapp.queue(), ["up/a"]);
    webapp.stop();

    // Webapp down: the push still succeeds (commit() asserts it), and the
    // hook says the webapp could not be asked.
    let said = confgit.commit(&[("lorries/b.lorry", "b: {type: hg, url: u}\n")], &[]);
    assert!(
        said.contains("could not ask") && said.contains("it will on its next timer"),
        "{said}"
    );
}

#[test]
fn check_config_exits_non_zero_on_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("lorries")).expect("mkdir");
    std::fs::write(d.join("lorry-controller.conf"), CONF).expect("conf");
    std::fs::write(d.join("lorries/a.lorry"), "a: {type: git, url: u}\n").expect("a");
    let run = |arg: String| {
        Command::new(common::WEBAPP)
            .arg(arg)
            .output()
            .expect("run webapp")
    };
    let out = run(format!("--check-config={}", d.display()));
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 lorries"),
        "{out:?}"
    );
    std::fs::write(d.join("lorries/b.lorry"), "b: {type: darcs, url: u}\n").expect("b");
    let out = run(format!("--check-config={}", d.display()));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("lorries/b.lorry: b: unknown type"),
        "{stdout}"
    );
}

/// With tokens, the hook sends the refresh token from a file
/// (`curl -H @FILE`), so CONFGIT's server never holds the admin token; without
/// the file its request is refused and nothing is read.
#[test]
fn post_update_hook_sends_the_refresh_token_from_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let confgit = Confgit::new(dir.path());
    std::fs::copy(HOOK, confgit.bare.join("hooks/post-update")).expect("install hook");
    let token_file = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        file
    };
    let admin = token_file("admin.token", "admin-secret\n");
    let refresh = token_file("refresh.token", "Authorization: Bearer refresh-secret\n");
    let url = format!("file://{}", confgit.bare.display());
    let webapp = Webapp::init(dir.path())
        .with_args(&[
            "--debug-real-confgit",
            &format!("--confgit-url={url}"),
            "--confgit-branch=master",
            &format!("--admin-token-file={}", admin.display()),
            &format!("--refresh-token-file={}", refresh.display()),
        ])
        .start();
    git(
        &confgit.bare,
        &["config", "lorry-controller.url", &webapp.url("")],
    );
    let a = "a: {type: git, url: 'https://example.org/a.git'}\n";
    confgit.commit(
        &[("lorry-controller.conf", CONF), ("lorries/a.lorry", a)],
        &[],
    );
    assert!(webapp.queue().is_empty(), "read without the token");
    git(
        &confgit.bare,
        &[
            "config",
            "lorry-controller.token-file",
            &refresh.display().to_string(),
        ],
    );
    confgit.commit(
        &[(
            "lorries/b.lorry",
            "b: {type: git, url: 'https://example.org/b.git'}\n",
        )],
        &[],
    );
    assert_eq!(webapp.queue(), ["up/a", "up/b"]);
    webapp.stop();
}
