//! End to end: host activity as a hint (`"activity-hint": true`). The
//! GitLab, Gitea and GitHub doubles are backed by real bare repositories
//! whose `post-receive` hook records each push by the forge's clock, and
//! report `last_activity_at`, `updated_at` and `pushed_at` from those
//! pushes by each forge's documented rule (`doubles/forge_git.rs`). Jobs
//! are asked for and ended as a minion would; what is under test is which
//! due lorries get one and which are checked without one.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{Webapp, git};
use crate::doubles::Forge;
use crate::doubles::forge_git::ForgeGit;
use crate::doubles::gitea_v1::GiteaV1;
use crate::doubles::github_rest::GithubRest;
use crate::doubles::gitlab_v4::GitlabV4;

const TOKEN: &str = "activity-double-token";
const HOUR: i64 = 3_600;
const T0: i64 = 1_800_000_000;

/// Every job give-me-job hands out now, ended with exit 0; their paths,
/// sorted.
fn run_due(app: &Webapp) -> Vec<String> {
    let mut ran = Vec::new();
    while let Some((id, path)) = app.give_me_job() {
        app.finish(id, 0);
        ran.push(path);
    }
    ran.sort();
    ran
}

/// Lists every Upstream Host at `now` (our clock), then runs what is due.
fn list_and_run(app: &Webapp, now: i64) -> Vec<String> {
    app.pretend_time(now);
    let ls = app.post_ok("/1.0/force-ls-troves", &[]);
    for host in ls["hosts"].as_array().expect("hosts") {
        assert_eq!(host["listed"], true, "{ls}");
    }
    run_due(app)
}

/// Commits `file` in a clone of `full_name` and pushes it, at forge time
/// `at`.
fn push_commit(forge: &ForgeGit, work: &Path, full_name: &str, file: &str, at: i64) {
    push_dated(forge, work, full_name, file, at, None);
}

fn clone_of(forge: &ForgeGit, work: &Path, full_name: &str) -> std::path::PathBuf {
    let clone = work.join(full_name.replace('/', "_"));
    if !clone.exists() {
        git(
            work,
            &[
                "clone",
                "-q",
                &forge.repo(full_name).display().to_string(),
                &clone.display().to_string(),
            ],
        );
    }
    clone
}

/// [`push_commit`], the commit dated `committed` if given.
fn push_dated(
    forge: &ForgeGit,
    work: &Path,
    full_name: &str,
    file: &str,
    at: i64,
    committed: Option<i64>,
) {
    forge.set_clock(at);
    let clone = clone_of(forge, work, full_name);
    std::fs::write(clone.join(file), file).expect("write");
    git(&clone, &["add", "."]);
    let date = format!("@{} +0000", committed.unwrap_or(at));
    let out = Command::new("git")
        .current_dir(&clone)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .args(["commit", "-q", "-m", file])
        .output()
        .expect("git commit");
    assert!(out.status.success(), "{}", crate::common::all_output(&out));
    git(&clone, &["push", "-q", "origin", "HEAD:main"]);
}

/// Tags the clone's HEAD and pushes the tag alone, at forge time `at`.
fn push_tag(forge: &ForgeGit, work: &Path, full_name: &str, tag: &str, at: i64) {
    forge.set_clock(at);
    let clone = clone_of(forge, work, full_name);
    git(&clone, &["tag", tag]);
    git(&clone, &["push", "-q", "origin", tag]);
}

fn app(dir: &Path, full_check_every: &str) -> Webapp {
    Webapp::init(dir)
        .with_args(&[format!("--full-check-every={full_check_every}")])
        .start()
}

fn lorry(app: &Webapp, path: &str) -> Value {
    app.get_ok(&format!("/1.0/lorry/{path}"))
}

/// What operators are told of `path`'s last check without a job, in
/// `/1.0/lorry`, `/1.0/status` and on the pages: when (`checked`), how,
/// and when its last job started (`job`); `latest`: no job since.
fn assert_checked(app: &Webapp, path: &str, checked: i64, job: i64, latest: bool) {
    let how = "unchanged per host activity";
    let lorry = lorry(app, path);
    let status = app.get_ok("/1.0/status");
    let entry = status["run_queue"]
        .as_array()
        .expect("run_queue")
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} in {status}"));
    for shown in [&lorry, entry] {
        assert_eq!(shown["last_checked_without_job"], checked, "{shown}");
        assert_eq!(shown["checked_without_job_how"], how, "{shown}");
        assert_eq!(shown["last_job_run"], job, "{shown}");
    }
    let page = app.get(&format!("/1.0/lorry-html/{path}")).text;
    assert!(
        page.contains("<dt>Checked without a job</dt>") && page.contains(how),
        "{page}"
    );
    assert_eq!(page.contains("badge checked"), latest, "{page}");
    // The status page's row of the lorry says so only while the check is
    // its latest run.
    let status_page = app.get("/1.0/status-html").text;
    let row = status_page
        .split("<tr class=\"state-")
        .find(|row| row.contains(&format!(">{path}</a>")))
        .unwrap_or_else(|| panic!("no row of {path}: {status_page}"));
    assert_eq!(row.contains(&format!("no job: {how}")), latest, "{row}");
}

#[test]
fn gitlab_last_activity_skips_unchanged_projects_within_its_hourly_granularity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let gitlab = GitlabV4::start(TOKEN);
    let forge = gitlab.attach_git(&dir.path().join("forge"));
    forge.set_clock(T0 - 24 * HOUR);
    for path in ["grp/a", "grp/b"] {
        gitlab.add_project(path, Some("main"), None);
        forge.create(path);
        push_commit(&forge, &work, path, "first", T0 - 24 * HOUR);
    }
    let app = app(dir.path(), "6h");
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitlab", "host": gitlab.server.host(), "protocol": "http",
        "private-token": TOKEN, "activity-hint": true, "interval": "1h",
        "prefixmap": {"grp": "gl"}
    }]));
    assert_eq!(list_and_run(&app, T0), ["gl/a", "gl/b"]);

    // Two hours later nothing was pushed: both are checked without a job,
    // as successful runs.
    let t1 = T0 + 2 * HOUR;
    assert!(list_and_run(&app, t1).is_empty());
    for path in ["gl/a", "gl/b"] {
        let lorry = lorry(&app, path);
        assert_eq!(lorry["last_run"], t1, "{lorry}");
        assert_eq!(lorry["last_run_exit"], "0", "{lorry}");
    }
    assert_checked(&app, "gl/a", t1, T0, true);

    // b is pushed to shortly before its next job starts (last_activity_at
    // moves: it was older than an hour), and again just after it started
    // (within the hour, so last_activity_at stays where it was).
    let t2 = t1 + 2 * HOUR;
    push_commit(&forge, &work, "grp/b", "second", t2 - 600);
    assert_eq!(list_and_run(&app, t2), ["gl/b"]);
    // b's latest run is a job again; its check is still told, a's too.
    assert_checked(&app, "gl/b", t1, t2, false);
    assert_checked(&app, "gl/a", t2, T0, true);
    push_commit(&forge, &work, "grp/b", "third", t2 + 60);

    // The listing shows no change since b's job started, but GitLab does
    // not promise better than the hour: b gets a job, which fetches the
    // third commit. a's last job started 6 h ago: the safety net.
    let t3 = t2 + 2 * HOUR;
    assert_eq!(list_and_run(&app, t3), ["gl/a", "gl/b"]);
    assert!(list_and_run(&app, t3 + 2 * HOUR).is_empty());

    // A listing without the field, or with nonsense in it: jobs.
    let t4 = t3 + 4 * HOUR;
    gitlab.state().activity_override = Some(None);
    assert_eq!(list_and_run(&app, t4), ["gl/a", "gl/b"]);
    for nonsense in [json!("yesterday"), json!(12), json!("0001-01-01T00:00:00Z")] {
        gitlab.state().activity_override = Some(Some(nonsense));
        let now = app.get_ok("/1.0/lorry/gl/a")["last_run"]
            .as_i64()
            .expect("last_run")
            + 2 * HOUR;
        assert_eq!(list_and_run(&app, now), ["gl/a", "gl/b"]);
    }
    gitlab.state().activity_override = None;

    // The forge's clock two hours ahead of ours: its "now" is our future,
    // so a push it reports proves nothing, whatever the margin.
    let t5 = lorry(&app, "gl/a")["last_run"].as_i64().expect("last_run") + 2 * HOUR;
    push_commit(&forge, &work, "grp/a", "skewed", t5 + 2 * HOUR);
    assert_eq!(list_and_run(&app, t5), ["gl/a"]);
}

#[test]
fn github_pushed_at_and_the_safety_net_for_what_it_does_not_cover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let gh = GithubRest::start(Some(TOKEN));
    let forge = gh.attach_git(&dir.path().join("forge"));
    forge.set_clock(T0 - 24 * HOUR);
    for name in ["r", "s"] {
        gh.add_repo("org", name, None);
        forge.create(&format!("org/{name}"));
        push_commit(
            &forge,
            &work,
            &format!("org/{name}"),
            "first",
            T0 - 24 * HOUR,
        );
    }
    let app = app(dir.path(), "5h");
    let conf = |hint: bool| {
        json!([{
            "type": "github", "host": gh.server.host(), "protocol": "http",
            "private-token": TOKEN, "activity-hint": hint, "interval": "1h",
            "prefixmap": {"org": "gh"}
        }])
    };
    app.pretend_time(T0);
    app.configure(&conf(true));
    assert_eq!(list_and_run(&app, T0), ["gh/r", "gh/s"]);

    // r gets a tag and nothing else. GitHub does not say that a push of
    // tags alone moves pushed_at (and this double does not move it), so r
    // waits for the full check.
    push_tag(&forge, &work, "org/r", "v1", T0 + 60);
    assert!(list_and_run(&app, T0 + 2 * HOUR).is_empty());
    // s gets a commit: a job.
    push_commit(&forge, &work, "org/s", "second", T0 + 2 * HOUR + 60);
    assert_eq!(list_and_run(&app, T0 + 4 * HOUR), ["gh/s"]);
    // 5 h after r's last job: the safety net fetches its tag.
    assert_eq!(list_and_run(&app, T0 + 6 * HOUR), ["gh/r"]);
    assert!(list_and_run(&app, T0 + 8 * HOUR).is_empty());

    // With the hint off, every due lorry gets its job again.
    app.configure(&conf(false));
    assert_eq!(list_and_run(&app, T0 + 10 * HOUR), ["gh/r", "gh/s"]);
    assert_eq!(list_and_run(&app, T0 + 12 * HOUR), ["gh/r", "gh/s"]);
}

#[test]
fn gitea_updated_at_is_trusted_except_for_pull_mirrors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let gitea = GiteaV1::start(TOKEN);
    let forge = gitea.attach_git(&dir.path().join("forge"));
    forge.set_clock(T0 - 24 * HOUR);
    for name in ["n", "m"] {
        gitea.add_repo("org", name, "main", "");
        forge.create(&format!("org/{name}"));
        push_commit(
            &forge,
            &work,
            &format!("org/{name}"),
            "first",
            T0 - 24 * HOUR,
        );
    }
    // m is a pull mirror: its updated_at follows the commits it fetches.
    gitea
        .state()
        .repos
        .iter_mut()
        .for_each(|r| r.mirror = r.name == "m");
    let app = app(dir.path(), "24h");
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitea", "host": gitea.server.host(), "protocol": "http",
        "private-token": TOKEN, "activity-hint": true, "interval": "1h",
        "prefixmap": {"org": "gt"}
    }]));
    assert_eq!(list_and_run(&app, T0), ["gt/m", "gt/n"]);
    // Nothing pushed: n is checked without a job; the mirror always gets one.
    assert_eq!(list_and_run(&app, T0 + 2 * HOUR), ["gt/m"]);
    // Both move. The mirror's sync fetched a commit made a week ago, and
    // its updated_at says so: trusting it would miss the commit.
    push_commit(&forge, &work, "org/n", "second", T0 + 2 * HOUR + 60);
    push_dated(
        &forge,
        &work,
        "org/m",
        "old",
        T0 + 2 * HOUR + 60,
        Some(T0 - 7 * 24 * HOUR),
    );
    assert_eq!(list_and_run(&app, T0 + 4 * HOUR), ["gt/m", "gt/n"]);
    assert_eq!(list_and_run(&app, T0 + 6 * HOUR), ["gt/m"]);
}
