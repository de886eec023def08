//! Upstream and Downstream Hosts, end to end: the real webapp against
//! doubles of GitLab (REST v4), Gitea (v1), Gerrit and Gitano (a stand-in
//! `ssh` on PATH), a Trove's `gitano-command.cgi` over real HTTP, and the
//! fake upstream host option.

use crate::common::{self, Webapp, lorry};
use crate::doubles;

use std::path::Path;
use std::time::Duration;

use doubles::Forge;
use doubles::gitea_v1::GiteaV1;
use doubles::github_rest::GithubRest;
use doubles::gitlab_v4::GitlabV4;
use doubles::ssh::SshDouble;
use doubles::trove_http::TroveHttp;
use serde_json::{Value, json};

const TOKEN: &str = "glpat-double-secret-token";
const T0: i64 = 1_700_000_000;
/// Longest wait for something the webapp does in the background.
const READY: Duration = Duration::from_secs(60);

fn token_file(dir: &Path) -> String {
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).expect("token file");
    format!("{}", file.display())
}

/// A webapp whose downstream is the GitLab double.
fn gitlab_app(dir: &Path, gitlab: &GitlabV4, extra: &[&str]) -> Webapp {
    Webapp::init(dir)
        .with_downstream(&[
            "--git-server-type=gitlab".into(),
            format!("--downstream-http-url={}", gitlab.server.url()),
            format!("--gitlab-private-token-file={}", token_file(dir)),
        ])
        .with_args(extra)
        .start()
}

/// A webapp whose downstream is the Gitea double, its token in the
/// environment.
fn gitea_app(dir: &Path, gitea: &GiteaV1, extra: &[&str]) -> Webapp {
    Webapp::init(dir)
        .with_downstream(&[
            "--git-server-type=gitea".into(),
            format!("--downstream-http-url={}", gitea.server.url()),
        ])
        .with_args(extra)
        .with_env(&[("LORRY_GITEA_ACCESS_TOKEN", TOKEN)])
        .start()
}

/// A webapp with a local downstream in `dir/downstream`.
fn local_app(dir: &Path, extra: &[&str], env: &[(String, String)]) -> Webapp {
    Webapp::init(dir).with_args(extra).with_env(env).start()
}

/// The output of the last job of lorry `path`.
fn last_job(app: &Webapp, path: &str) -> Value {
    let lorry = app.get_ok(&format!("/1.0/lorry/{path}"));
    let id = lorry["jobs"]
        .as_array()
        .and_then(|j| j.last())
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no job for {path}: {lorry}"));
    app.job(id)
}

/// Takes jobs until none is given; the paths handed out.
fn drain(app: &Webapp) -> Vec<String> {
    let mut paths = Vec::new();
    for _ in 0..50 {
        // A failed preparation answers "no job" although others may be due:
        // stop only when the queue has nothing due left.
        match app.give_me_job() {
            Some((_, path)) => paths.push(path),
            None => {
                let due = app.get_ok("/1.0/status")["run_queue"]
                    .as_array()
                    .expect("queue")
                    .iter()
                    .any(|l| l["running_job"].is_null() && l["due"].as_i64() <= Some(T0));
                if !due {
                    break;
                }
            }
        }
    }
    paths
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [TOKEN, "s3cret-password"] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

// ---------------------------------------------------------------- GitLab

#[test]
fn gitlab_downstream_creates_missing_groups_level_by_level_then_the_project() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = GitlabV4::start(TOKEN);
    let a = gitlab.add_group("a");
    gitlab.set_visibility("a", "public");
    gitlab.add_project("a/existing", None, None);
    let app = gitlab_app(dir.path(), &gitlab, &["--downstream-visibility=internal"]);
    app.pretend_time(T0);
    app.seed(&[lorry("a/b/c/repo"), lorry("a/existing")]);

    let (_, path) = app.give_me_job().expect("a job");
    assert_eq!(path, "a/b/c/repo");
    let ab = gitlab.namespace("a/b").expect("group a/b").id;
    let abc = gitlab.namespace("a/b/c").expect("group a/b/c").id;
    assert_eq!(
        gitlab.changes(),
        [
            (
                "POST /api/v4/groups".to_owned(),
                json!({"name": "b", "path": "b", "parent_id": a, "visibility": "internal"})
            ),
            (
                "POST /api/v4/groups".to_owned(),
                json!({"name": "c", "path": "c", "parent_id": ab, "visibility": "internal"})
            ),
            (
                "POST /api/v4/projects".to_owned(),
                json!({"name": "repo", "path": "repo", "namespace_id": abc,
                       "visibility": "internal", "lfs_enabled": true,
                       "builds_access_level": "disabled",
                       "pages_access_level": "disabled",
                       "container_registry_access_level": "disabled",
                       "auto_devops_enabled": false,
                       "description": "Mirror of git://example.invalid/a/b/c/repo"})
            ),
        ]
    );
    let lookups: Vec<String> = gitlab
        .seen()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        lookups,
        [
            "/api/v4/projects/a/b/c/repo",
            "/api/v4/groups/a",
            "/api/v4/groups/a/b",
            "/api/v4/groups/a/b/c"
        ]
    );
    assert_eq!(
        gitlab.project("a/b/c/repo").expect("created").namespace_id,
        abc
    );

    // An existing project: one lookup, nothing created or changed.
    let before = gitlab.seen().len();
    let (_, path) = app.give_me_job().expect("a job");
    assert_eq!(path, "a/existing");
    let after: Vec<String> = gitlab.seen()[before..].iter().map(|r| r.line()).collect();
    assert_eq!(after, ["GET /api/v4/projects/a/existing"]);
    assert_eq!(gitlab.changes().len(), 3);
    assert_no_secret("the log", &app.log());
}

#[test]
fn gitlab_downstream_visibility_is_never_above_a_parents_or_a_restricted_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = GitlabV4::start(TOKEN);
    gitlab.add_group("priv");
    gitlab.add_group("open");
    gitlab.set_visibility("open", "internal");
    let app = gitlab_app(dir.path(), &gitlab, &["--downstream-visibility=public"]);
    app.pretend_time(T0);
    app.seed(&[
        lorry("priv/sub/repo"),
        lorry("open/repo"),
        lorry("lorry/own"),
    ]);
    assert_eq!(drain(&app), ["lorry/own", "open/repo", "priv/sub/repo"]);
    let visibility = |path: &str| gitlab.project(path).expect(path).visibility;
    assert_eq!(
        gitlab.namespace("priv/sub").expect("sub").visibility,
        "private"
    );
    assert_eq!(visibility("priv/sub/repo"), "private");
    assert_eq!(visibility("open/repo"), "internal");
    // A user's own namespace sets no limit.
    assert_eq!(visibility("lorry/own"), "public");

    // A level the administrator restricted: the job fails with GitLab's words.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let strict = GitlabV4::start(TOKEN);
    strict.state().restricted_visibility = vec!["public".into()];
    strict.add_group("g");
    strict.set_visibility("g", "public");
    let app2 = gitlab_app(dir2.path(), &strict, &["--downstream-visibility=public"]);
    app2.pretend_time(T0);
    app2.seed(&[lorry("g/r")]);
    assert_eq!(app2.give_me_job(), None);
    let out = last_job(&app2, "g/r")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(
        out.contains("restricted by your GitLab administrator"),
        "{out}"
    );
}

#[test]
fn gitlab_downstream_names_are_made_valid_and_descriptions_say_what_is_mirrored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = GitlabV4::start(TOKEN);
    let app = gitlab_app(dir.path(), &gitlab, &[]);
    app.pretend_time(T0);
    let mut secret = lorry("org/creds");
    secret.text = json!({"org/creds": {"type": "git",
        "url": "https://mirror:s3cret-password@example.invalid/creds.git"}})
    .to_string();
    app.seed(&[lorry(".dot/.github"), secret]);
    assert_eq!(drain(&app), [".dot/.github", "org/creds"]);
    let group = gitlab.namespace(".dot").expect("group");
    assert_eq!(group.path, ".dot");
    let project = gitlab.project(".dot/.github").expect("project");
    assert_eq!(
        (project.name.as_str(), project.path.as_str()),
        ("_.github", ".github")
    );
    assert_eq!(
        gitlab
            .project("org/creds")
            .expect("project")
            .description
            .as_deref(),
        Some("Mirror of https://example.invalid/creds.git")
    );
    assert_no_secret("the requests", &format!("{:?}", gitlab.changes()));
}

#[test]
fn gitlab_refuses_paths_outside_its_rules_and_the_job_says_which_rule() {
    // GitLab's paths are ASCII letters, digits, '_', '.' and '-': a space
    // or another alphabet in a lorry path (in a group or the project) fails
    // that job with GitLab's words; the others go on.
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = GitlabV4::start(TOKEN);
    gitlab.add_group("grp");
    let app = gitlab_app(dir.path(), &gitlab, &[]);
    app.pretend_time(T0);
    let refused = [
        "grp/caf\u{e9}",
        "grp/two words",
        "\u{e9}t\u{e9}/repo",
        "grp/x.atom",
    ];
    let outputs = only_fine_is_created(&app, &refused, "grp/fine_1.0", "400");
    for (path, out) in refused.iter().zip(outputs) {
        assert!(
            out.contains("can contain only letters, digits"),
            "{path}: {out}"
        );
    }
    assert!(gitlab.project("grp/fine_1.0").is_some());
    assert!(
        gitlab.namespace("\u{e9}t\u{e9}").is_none(),
        "no group was made"
    );
    app.get_ok("/1.0/status");
}

#[test]
fn gitlab_downstream_ci_stays_on_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = GitlabV4::start(TOKEN);
    gitlab.add_group("g");
    let app = gitlab_app(dir.path(), &gitlab, &["--downstream-ci"]);
    app.pretend_time(T0);
    app.seed(&[lorry("g/r")]);
    assert_eq!(drain(&app), ["g/r"]);
    let (line, body) = gitlab.changes().pop().expect("created");
    assert_eq!(line, "POST /api/v4/projects");
    assert_eq!(body["builds_access_level"], "enabled", "{body}");
}

#[test]
fn gitlab_downstream_default_branch_and_force_push_are_settled_after_the_first_push() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = GitlabV4::start(TOKEN);
    up.add_project("src/ok", Some("trunk"), None);
    up.add_project("src/failed", Some("trunk"), None);
    let down = GitlabV4::start(TOKEN);
    down.add_group("src");
    let app = gitlab_app(dir.path(), &down, &[]);
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitlab", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"src": "src"}
    }]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    let (failed, path) = app.give_me_job().expect("job");
    assert_eq!(path, "src/failed");
    let (ok, path) = app.give_me_job().expect("job");
    assert_eq!(path, "src/ok");
    // Created empty: GitLab would ignore a default branch now.
    for (line, body) in down.changes() {
        assert!(body.get("default_branch").is_none(), "{line}: {body}");
    }
    // The jobs push; GitLab makes `master` the default and protects it.
    down.push("src/failed", &["master", "trunk"]);
    down.push("src/ok", &["master", "trunk"]);
    assert!(!down.force_push_allowed("src/ok", "master"));
    app.finish(failed, 1);
    app.finish(ok, 0);
    common::wait_for("the default branch set after the push", READY, || {
        let p = down.project("src/ok")?;
        (p.default_branch.as_deref() == Some("trunk")
            && down.force_push_allowed("src/ok", "master"))
        .then_some(())
    });
    let id = down.project("src/ok").expect("ok").id;
    let puts: Vec<(String, Value)> = down
        .changes()
        .into_iter()
        .filter(|(line, _)| line.starts_with("PUT") || line.starts_with("PATCH"))
        .collect();
    assert_eq!(
        puts,
        [
            (
                format!("PUT /api/v4/projects/{id}"),
                json!({"default_branch": "trunk"})
            ),
            (
                format!("PATCH /api/v4/projects/{id}/protected_branches/master"),
                json!({"allow_force_push": true})
            ),
        ]
    );
    // The failed job changed nothing.
    let failed = down.project("src/failed").expect("failed");
    assert_eq!(failed.default_branch.as_deref(), Some("master"));
    assert!(!down.force_push_allowed("src/failed", "master"));
    assert_no_secret("the log", &app.log());
}

#[test]
fn gitlab_downstream_failures_fail_the_job_with_the_hosts_words_and_no_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = GitlabV4::start(TOKEN);
    gitlab.state().can_create_group = false;
    gitlab.add_group("vis");
    gitlab.add_hidden_group("vis/secret");
    let app = gitlab_app(dir.path(), &gitlab, &[]);
    app.pretend_time(T0);
    app.seed(&[
        lorry("toplevel"),
        lorry("newtop/repo"),
        lorry("vis/secret/repo"),
    ]);
    assert_eq!(drain(&app), Vec::<String>::new());

    let job = last_job(&app, "toplevel");
    assert_eq!(job["exit"], "1");
    let out = job["output"].as_str().expect("output");
    assert!(out.contains("at least two components"), "{out}");

    let out = last_job(&app, "newtop/repo")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(out.contains("403 Forbidden"), "{out}");
    assert!(out.contains("POST /api/v4/groups"), "{out}");

    // A subgroup the user cannot see but whose path is taken.
    let out = last_job(&app, "vis/secret/repo")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(out.contains("has already been taken"), "{out}");
    assert!(
        gitlab
            .changes()
            .iter()
            .all(|(line, _)| line == "POST /api/v4/groups")
    );

    // A wrong token: GitLab's 401, and the token nowhere.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let other = GitlabV4::start("another-token");
    let app2 = gitlab_app(dir2.path(), &other, &[]);
    app2.pretend_time(T0);
    app2.seed(&[lorry("g/r")]);
    assert_eq!(app2.give_me_job(), None);
    let job = last_job(&app2, "g/r");
    let out = job["output"].as_str().expect("output");
    assert!(out.contains("401 Unauthorized"), "{out}");
    assert_no_secret("job output", out);
    assert_no_secret("the log", &app2.log());
    assert_no_secret("status", &app2.get_ok("/1.0/status").to_string());
    assert!(other.changes().is_empty());
}

#[test]
fn redirects_to_another_origin_are_neither_followed_nor_given_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `elsewhere` accepts the same token, so a followed redirect would
    // succeed there: only the refusal to follow keeps it out.
    let elsewhere = GitlabV4::start(TOKEN);
    let moved = GitlabV4::start(TOKEN);
    moved.state().redirect_to = Some(elsewhere.server.url());
    let app = gitlab_app(dir.path(), &moved, &[]);
    app.pretend_time(T0);
    app.seed(&[lorry("g/r")]);
    assert_eq!(app.give_me_job(), None);
    let out = last_job(&app, "g/r")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(out.contains("302"), "{out}");
    assert!(out.contains(&elsewhere.server.url()), "{out}");

    // An Upstream Host listing is not followed either.
    app.configure(&json!([{
        "type": "gitlab", "host": moved.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"g": "g"}
    }]));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(summary["hosts"][0]["listed"], false, "{summary}");
    assert!(
        summary["hosts"][0]["errors"].to_string().contains("302"),
        "{summary}"
    );
    assert!(
        elsewhere.seen().is_empty(),
        "followed: {:?}",
        elsewhere.seen()
    );
    assert_no_secret("the log", &app.log());
}

#[test]
fn gitlab_upstream_listing_pages_past_100_projects_and_carries_metadata_downstream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = GitlabV4::start(TOKEN);
    for i in 0..250 {
        up.add_project(&format!("up/p{i:03}"), Some("main"), None);
    }
    up.add_project("up/ignored-x", None, None);
    up.add_project("other/q", None, None);
    up.add_project("up/sub/meta", Some("trunk"), Some("Words from upstream"));
    let app = local_app(dir.path(), &[], &[]);
    app.pretend_time(T0);
    let conf = json!([{
        "type": "gitlab", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN,
        "prefixmap": {"up": "mirror/up"}, "ignore": ["up/ignored-*"],
        "interval": "2H", "ls-interval": "1H"
    }]);
    app.configure(&conf);
    // read-configuration lists nothing by itself.
    assert!(app.queue().is_empty());
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    let host = &summary["hosts"][0];
    assert_eq!(host["host"], up.server.host());
    assert_eq!(host["listed"], true, "{summary}");
    // `other/q` is not under a prefixmap root: not even listed.
    assert_eq!(host["repositories"], 252);
    assert_eq!(host["ignored"], 1);
    assert_eq!(host["unmapped"], 0);
    assert_eq!(host["lorries_added"].as_array().expect("added").len(), 251);
    assert_eq!(host["errors"], json!([]));
    assert_no_secret("the answer", &summary.to_string());
    let pages: Vec<String> = up
        .seen()
        .iter()
        .filter(|r| r.path == "/api/v4/groups/up/projects")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(
        pages.iter().all(|q| q.contains("include_subgroups=true")),
        "{pages:?}"
    );
    assert!(
        pages.iter().all(|q| q.contains("per_page=100")),
        "{pages:?}"
    );
    let queue = app.queue();
    assert_eq!(queue.len(), 251);
    assert!(queue.contains(&"mirror/up/p249".to_owned()));
    assert!(queue.contains(&"mirror/up/sub/meta".to_owned()));

    let lorry = app.get_ok("/1.0/lorry/mirror/up/p007");
    assert_eq!(lorry["from_host"], up.server.host());
    assert_eq!(lorry["from_path"], "up/p007");
    assert_eq!(lorry["interval"], 7200);
    let spec: Value = serde_json::from_str(lorry["text"].as_str().expect("text")).expect("spec");
    assert_eq!(
        spec,
        json!({"mirror/up/p007": {"type": "git",
            "url": format!("{}/up/p007.git", up.server.url()),
            "refspecs": ["+refs/heads/*", "+refs/tags/*"]}})
    );
    let status = app.host_status(&up.server.host());
    assert_eq!(status["ls_last_run"], T0);
    assert_eq!(status["ls_last_error"], Value::Null);
    assert_no_secret("status", &app.get_ok("/1.0/status").to_string());

    // The upstream's default branch and description reach the new
    // downstream repository.
    app.post_ok("/1.0/move-to-top", &[("path", "mirror/up/sub/meta")]);
    let (_, path) = app.give_me_job().expect("job");
    assert_eq!(path, "mirror/up/sub/meta");
    let repo = dir.path().join("downstream/mirror/up/sub/meta.git");
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["symbolic-ref", "HEAD"])
        .output()
        .expect("git");
    assert_eq!(
        String::from_utf8_lossy(&head.stdout).trim(),
        "refs/heads/trunk"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("description")).expect("description"),
        "Words from upstream\n"
    );

    // Behind a proxy that drops X-Next-Page, the Link header is followed.
    up.state().omit_next_page_header = true;
    up.add_project("up/late", None, None);
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(
        summary["hosts"][0]["lorries_added"],
        json!(["mirror/up/late"])
    );
    assert_eq!(summary["hosts"][0]["lorries_unchanged"], 251);
    assert_no_secret("the log", &app.log());
}

#[test]
fn gitlab_and_gitea_upstreams_are_listed_per_namespace_without_archived_or_empty_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = GitlabV4::start(TOKEN);
    for path in ["a/x", "a/sub/y", "a/old", "a/new", "b/z", "lorry/mine"] {
        gitlab.add_project(path, Some("main"), None);
    }
    gitlab.set_project_state("a/old", true, false);
    gitlab.set_project_state("a/new", false, true);
    let gitea = GiteaV1::start(TOKEN);
    for (owner, name) in [
        ("org", "r"),
        ("org", "gone"),
        ("org", "blank"),
        ("lorry", "own"),
        ("else", "s"),
    ] {
        gitea.add_repo(owner, name, "main", "");
    }
    gitea.set_repo_state("org/gone", true, false);
    gitea.set_repo_state("org/blank", false, true);
    let app = local_app(dir.path(), &[], &[]);
    app.pretend_time(T0);
    app.configure(&json!([
        {"type": "gitlab", "host": gitlab.server.host(), "protocol": "http",
         "private-token": TOKEN,
         "prefixmap": {"a": "gl/a", "a/sub": "gl/s", "lorry/": "gl/u", "nosuch": "gl/n"}},
        {"type": "gitea", "host": gitea.server.host(), "protocol": "http",
         "private-token": TOKEN,
         "prefixmap": {"org": "gt/o", "lorry": "gt/u"}}
    ]));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    let mut queue = app.queue();
    queue.sort();
    assert_eq!(
        queue,
        ["gl/a/x", "gl/s/y", "gl/u/mine", "gt/o/r", "gt/u/own"],
        "{summary}"
    );
    let asked: Vec<String> = gitlab.seen().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        asked,
        [
            "/api/v4/groups/a/projects",
            "/api/v4/groups/lorry/projects",
            "/api/v4/users/lorry/projects",
            "/api/v4/groups/nosuch/projects",
            "/api/v4/users/nosuch/projects",
        ]
    );
    let asked: Vec<String> = gitea.seen().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        asked,
        [
            "/api/v1/orgs/lorry/repos",
            "/api/v1/users/lorry/repos",
            "/api/v1/orgs/org/repos",
        ]
    );

    // Told to, the listings include them.
    app.configure(&json!([
        {"type": "gitlab", "host": gitlab.server.host(), "protocol": "http",
         "private-token": TOKEN, "include-archived": true, "include-empty": true,
         "prefixmap": {"a": "gl/a", "a/sub": "gl/s", "lorry/": "gl/u", "nosuch": "gl/n"}},
        {"type": "gitea", "host": gitea.server.host(), "protocol": "http",
         "private-token": TOKEN, "include-archived": true,
         "prefixmap": {"org": "gt/o", "lorry": "gt/u"}}
    ]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    let queue = app.queue();
    for path in ["gl/a/old", "gl/a/new", "gt/o/gone"] {
        assert!(queue.contains(&path.to_owned()), "{path}: {queue:?}");
    }
    assert!(!queue.contains(&"gt/o/blank".to_owned()), "{queue:?}");
}

#[test]
fn busy_hosts_are_retried_after_retry_after_and_calls_are_rate_limited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = GitlabV4::start(TOKEN);
    for i in 0..450 {
        up.add_project(&format!("g/r{i}"), None, None);
    }
    up.state().busy = 2;
    let app = local_app(dir.path(), &["--max-api-calls-per-second=2"], &[]);
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitlab", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"g": "g"}
    }]));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(
        summary["hosts"][0]["lorries_added"]
            .as_array()
            .expect("added")
            .len(),
        450,
        "{summary}"
    );
    let seen = up.seen();
    // Two 429s, then five pages.
    assert_eq!(seen.len(), 7);
    // The waits, as the webapp decided them (the exact waits of the token
    // bucket are unit-tested in lc-hosts' polite.rs with the time passed
    // in; no test measures the clock).
    let log = app.log();
    let backoffs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("host is busy: backing off"))
        .collect();
    assert_eq!(backoffs.len(), 2, "{log}");
    assert!(
        backoffs
            .iter()
            .all(|l| l.contains("status=429") && l.contains("wait_s=1")),
        "Retry-After: 1 honoured: {backoffs:#?}"
    );
    // At 2 calls a second (a burst of 2), the five pages after the backoff
    // had to wait for their turn.
    assert!(
        log.lines().any(|l| l.contains("rate limit: waiting")),
        "{log}"
    );
    assert_eq!(app.queue().len(), 450);
}

// ---------------------------------------------------------------- Gitea

#[test]
fn gitea_downstream_creates_the_organisation_then_the_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitea = GiteaV1::start(TOKEN);
    gitea.add_org("existing");
    gitea.add_repo("existing", "repo", "main", "");
    let app = gitea_app(dir.path(), &gitea, &["--downstream-visibility=public"]);
    app.pretend_time(T0);
    app.seed(&[
        lorry("team/app"),
        lorry("lorry/own"),
        lorry("existing/repo"),
        lorry("a/b/c"),
    ]);
    let handed = drain(&app);
    assert_eq!(handed, ["existing/repo", "lorry/own", "team/app"]);
    assert_eq!(
        gitea.changes(),
        [
            (
                "POST /api/v1/user/repos".to_owned(),
                json!({"name": "own", "private": false,
                       "description": "Mirror of git://example.invalid/lorry/own"})
            ),
            (
                "PATCH /api/v1/repos/lorry/own".to_owned(),
                json!({"has_actions": false})
            ),
            (
                "POST /api/v1/orgs".to_owned(),
                json!({"username": "team", "visibility": "public"})
            ),
            (
                "POST /api/v1/orgs/team/repos".to_owned(),
                json!({"name": "app", "private": false,
                       "description": "Mirror of git://example.invalid/team/app"})
            ),
            (
                "PATCH /api/v1/repos/team/app".to_owned(),
                json!({"has_actions": false})
            ),
        ]
    );
    assert!(gitea.repo("team/app").is_some());
    let out = last_job(&app, "a/b/c")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(out.contains("exactly two components"), "{out}");
    assert_no_secret("the log", &app.log());
}

/// Seeds lorries `refused` and `fine` and runs every job against the
/// downstream: only `fine` is handed out to mirror, and each refused
/// lorry's job failed with HTTP `status`, naming its path and no secret.
/// The refused jobs' outputs, in `refused`'s order.
fn only_fine_is_created(app: &Webapp, refused: &[&str], fine: &str, status: &str) -> Vec<String> {
    let mut lorries: Vec<_> = refused.iter().map(|p| lorry(p)).collect();
    lorries.push(lorry(fine));
    app.seed(&lorries);
    assert_eq!(drain(app), [fine]);
    refused
        .iter()
        .map(|path| {
            let job = last_job(app, path);
            assert_eq!(job["exit"], "1", "{path}: {job}");
            let out = job["output"].as_str().expect("output").to_owned();
            assert!(out.contains(status), "{path}: {out}");
            assert!(out.contains(&format!("cannot create {path:?}")), "{out}");
            assert_no_secret("job output", &out);
            out
        })
        .collect()
}

#[test]
fn gitea_refuses_names_outside_its_rules_and_the_job_says_which_rule() {
    // Gitea's names are ASCII letters, digits, '-', '_' and '.': a lorry
    // whose path has a space or another alphabet cannot be mirrored there.
    // The job fails with Gitea's words and the path; the others go on.
    let dir = tempfile::tempdir().expect("tempdir");
    let gitea = GiteaV1::start(TOKEN);
    gitea.add_org("org");
    let app = gitea_app(dir.path(), &gitea, &[]);
    app.pretend_time(T0);
    let refused = [
        "org/caf\u{e9}",
        "org/two words",
        "org/old.git",
        "sp ace/repo",
    ];
    let outputs = only_fine_is_created(&app, &refused, "org/fine-1.0", "422");
    assert!(
        outputs[0].contains("[Name]: AlphaDashDot"),
        "{}",
        outputs[0]
    );
    assert!(
        outputs[1].contains("[Name]: AlphaDashDot"),
        "{}",
        outputs[1]
    );
    assert!(
        outputs[2].contains("name pattern is not allowed"),
        "{}",
        outputs[2]
    );
    assert!(
        outputs[3].contains("[UserName]: Username"),
        "{}",
        outputs[3]
    );
    assert!(gitea.repo("org/fine-1.0").is_some());
    // Nothing half-made: no organisation named with a space.
    let orgs: Vec<String> = gitea.state().orgs.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(orgs, ["org"]);
    // The webapp stays up and answers.
    app.get_ok("/1.0/status");
}

#[test]
fn gitea_downstream_without_the_scope_or_the_right_fails_saying_what_is_needed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitea = GiteaV1::start(TOKEN);
    gitea.add_org("other");
    gitea.state().foreign_orgs = vec!["other".into()];
    gitea.state().scopes = Some(vec!["write:repository".into(), "read:user".into()]);
    let app = gitea_app(dir.path(), &gitea, &[]);
    app.pretend_time(T0);
    app.seed(&[lorry("team/app")]);
    assert_eq!(app.give_me_job(), None);
    let out = last_job(&app, "team/app")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(out.contains("403"), "{out}");
    assert!(out.contains("write:organization"), "{out}");
    assert!(out.contains("INSTALL.md"), "{out}");

    // With every scope, an organisation the user may not create in.
    gitea.state().scopes = None;
    app.seed(&[lorry("other/app")]);
    assert_eq!(app.give_me_job(), None);
    let out = last_job(&app, "other/app")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(
        out.contains("not allowed to create repository in organization other"),
        "{out}"
    );
    assert!(gitea.repo("other/app").is_none());
    assert_no_secret("the log", &app.log());
}

#[test]
fn gitea_downstream_existing_repositories_get_new_metadata_only_when_it_differs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = GiteaV1::start(TOKEN);
    let down = GiteaV1::start(TOKEN);
    up.add_repo("src", "same", "main", "Same words");
    up.add_repo("src", "moved", "trunk", "New words");
    down.add_org("src");
    down.add_repo("src", "same", "main", "Same words");
    down.add_repo("src", "moved", "master", "Old words");
    let app = Webapp::init(dir.path())
        .with_downstream(&[
            "--git-server-type=gitea".into(),
            format!("--downstream-http-url={}", down.server.url()),
            format!("--gitea-access-token-file={}", token_file(dir.path())),
        ])
        .start();
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitea", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"src": "src"}
    }]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(drain(&app), ["src/moved", "src/same"]);
    assert_eq!(
        down.changes(),
        [(
            "PATCH /api/v1/repos/src/moved".to_owned(),
            json!({"description": "New words"})
        )]
    );
}

#[test]
fn gitea_upstream_listing_follows_link_headers_past_100_repositories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = GiteaV1::start(TOKEN);
    // Gitea's public address is not the one we reach it by: its Link
    // headers name the former, the next pages are asked of the latter.
    // (Same host name, another port: a listing whose clone URLs name
    // another host is refused, see issue 11 and mapping::check_clone_url.)
    up.state().root_url = Some("https://127.0.0.1:9".into());
    for i in 0..120 {
        up.add_repo(
            if i % 2 == 0 { "even" } else { "odd" },
            &format!("r{i}"),
            "main",
            "",
        );
    }
    let app = local_app(dir.path(), &[], &[]);
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitea", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"even": "mirror/even"}
    }]));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    let host = &summary["hosts"][0];
    // Only the mapped owner is listed.
    assert_eq!(host["repositories"], 60, "{summary}");
    assert_eq!(host["unmapped"], 0);
    assert_eq!(host["lorries_added"].as_array().expect("added").len(), 60);
    let searches: Vec<String> = up
        .seen()
        .iter()
        .filter(|r| r.path == "/api/v1/orgs/even/repos")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(searches.len(), 2, "{searches:?}");
    assert!(searches[1].contains("page=2"), "{searches:?}");
    let text = app.get_ok("/1.0/lorry/mirror/even/r10")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    // Clone URLs are Gitea's own, in the configured protocol.
    assert!(text.contains("http://127.0.0.1:9/even/r10.git"), "{text}");
    // The token went in the header, and nowhere else.
    assert_no_secret("the log", &app.log());
    assert_no_secret("status", &app.get_ok("/1.0/status").to_string());
}

// ---------------------------------------------------------------- Gerrit and Gitano

#[test]
fn gerrit_downstream_over_ssh_creates_projects_under_the_parent_with_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ssh = SshDouble::new(dir.path());
    ssh.write(
        "gerrit-projects",
        &[
            "All-Projects",
            "All-Users",
            "Mirrors",
            "existing/proj",
            "new/projx",
        ],
    );
    let up = GitlabV4::start(TOKEN);
    up.add_project("up/meta", Some("trunk"), Some("It's odd: $(x) `y`"));
    let app = Webapp::init(dir.path())
        .with_downstream(&[
            "--git-server-type=gerrit",
            "--downstream-ssh-url=ssh://lorry@gerrit.example.com:29418",
            "--gerrit-parent-project=Mirrors",
        ])
        .with_env(&ssh.env())
        .start();
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitlab", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"up": "new"}, "interval": "1H"
    }]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    app.seed(&[lorry("existing/proj"), lorry("new/proj")]);
    assert_eq!(drain(&app), ["existing/proj", "new/meta", "new/proj"]);
    let calls = ssh.calls();
    let dest = ["lorry@gerrit.example.com", "29418"];
    let expect = |words: &[&str]| -> Vec<String> {
        dest.iter()
            .chain(words.iter())
            .map(|s| (*s).to_owned())
            .collect()
    };
    assert_eq!(
        calls,
        [
            expect(&[
                "gerrit",
                "ls-projects",
                "--type",
                "ALL",
                "--prefix",
                "existing/proj"
            ]),
            expect(&[
                "gerrit",
                "ls-projects",
                "--type",
                "ALL",
                "--prefix",
                "new/meta"
            ]),
            expect(&[
                "gerrit",
                "create-project",
                "--parent",
                "Mirrors",
                "--branch",
                "trunk",
                "--description",
                "It's odd: $(x) `y`",
                "new/meta"
            ]),
            expect(&[
                "gerrit",
                "ls-projects",
                "--type",
                "ALL",
                "--prefix",
                "new/proj"
            ]),
            expect(&[
                "gerrit",
                "create-project",
                "--parent",
                "Mirrors",
                "--description",
                "Mirror of git://example.invalid/new/proj",
                "new/proj"
            ]),
        ]
    );
    assert_eq!(ssh.lines("gerrit-heads"), ["new/meta\ttrunk"]);
    assert_eq!(
        ssh.lines("gerrit-descriptions"),
        [
            "new/meta\tIt's odd: $(x) `y`",
            "new/proj\tMirror of git://example.invalid/new/proj"
        ]
    );

    // An unreachable Gerrit fails the job with ssh's words.
    ssh.write(
        "fail",
        &["ssh: connect to host gerrit.example.com port 29418: Connection refused"],
    );
    app.seed(&[lorry("another/proj")]);
    assert_eq!(app.give_me_job(), None);
    let out = last_job(&app, "another/proj")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(out.contains("Connection refused"), "{out}");
    assert!(out.contains("exit 255"), "{out}");
}

#[test]
fn gitano_downstream_over_ssh_creates_and_configures_new_repositories_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ssh = SshDouble::new(dir.path());
    ssh.write("gitano-repos", &["up/existing"]);
    // The upstream listing carries a head and a description for the new
    // repository (and for the existing one, which is left alone).
    let up = GitlabV4::start(TOKEN);
    up.add_project("up/existing", Some("main"), Some("Old words"));
    up.add_project("up/new", Some("trunk"), Some("Words from upstream"));
    let app = Webapp::init(dir.path())
        .with_downstream(&[
            "--git-server-type=gitano",
            "--downstream-host=trove.example.com",
        ])
        .with_env(&ssh.env())
        .start();
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitlab", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"up": "up"},
        "interval": "2H", "ls-interval": "1H"
    }]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(drain(&app), ["up/existing", "up/new"]);
    let calls: Vec<Vec<String>> = ssh.calls();
    let target = "git@trove.example.com";
    assert_eq!(
        calls,
        [
            vec![target, "", "create", "up/existing"],
            vec![target, "", "ls"],
            vec![target, "", "create", "up/new"],
            vec![
                target,
                "",
                "config",
                "up/new",
                "set",
                "project.head",
                "refs/heads/trunk"
            ],
            vec![
                target,
                "",
                "config",
                "up/new",
                "set",
                "project.description",
                "Words from upstream"
            ],
        ]
    );
    assert_eq!(ssh.lines("gitano-repos"), ["up/existing", "up/new"]);
    assert_eq!(
        ssh.lines("gitano-config"),
        [
            "up/new\tproject.head\trefs/heads/trunk",
            "up/new\tproject.description\tWords from upstream"
        ]
    );
}

#[test]
fn trove_upstream_over_ssh_lists_readable_repositories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ssh = SshDouble::new(dir.path());
    ssh.write(
        "gitano-repos",
        &["baserock/definitions", "baserock/lorries", "delta/linux"],
    );
    let app = local_app(dir.path(), &[], &ssh.env());
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "trove", "trovehost": "trove.example.com", "protocol": "ssh",
        "prefixmap": {"baserock": "baserock", "delta": "delta"},
        "ignore": ["baserock/lorries"], "ls-interval": "4H", "interval": "2H"
    }]));
    let summary = app.post_ok("/1.0/ls-troves", &[]);
    assert_eq!(summary["hosts"][0]["repositories"], 3, "{summary}");
    assert_eq!(app.queue(), ["baserock/definitions", "delta/linux"]);
    assert_eq!(ssh.calls(), [vec!["git@trove.example.com", "", "ls"]]);
    // Shown with the user hidden; handed to the minion as it is.
    let text = app.get_ok("/1.0/lorry/delta/linux")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(text.contains("@trove.example.com/delta/linux"), "{text}");
    let job = app.post_ok("/1.0/give-me-job", &[("host", "minion"), ("pid", "1")]);
    assert!(
        job["text"]
            .as_str()
            .expect("text")
            .contains("ssh://git@trove.example.com/baserock/definitions"),
        "{job}"
    );
}

// ---------------------------------------------------------------- Trove over HTTP

#[test]
fn trove_upstream_over_http_uses_basic_auth_and_records_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trove = TroveHttp::start(
        &["base/one", "base/two", "other/x"],
        Some("lorry:s3cret-password"),
    );
    let app = local_app(dir.path(), &[], &[]);
    app.pretend_time(T0);
    let conf = |password: &str| {
        json!([{
            "type": "trove", "host": trove.server.host(), "protocol": "http",
            "auth": {"username": "lorry", "password": password},
            "prefixmap": {"base": "mirror"}, "ls-interval": "1H"
        }])
    };
    app.configure(&conf("s3cret-password"));
    let summary = app.post_ok("/1.0/ls-troves", &[]);
    assert_eq!(
        summary["hosts"][0]["lorries_added"],
        json!(["mirror/one", "mirror/two"]),
        "{summary}"
    );
    {
        let s = trove.state.lock().expect("lock");
        assert_eq!(s.requests.len(), 1);
        assert_eq!(s.requests[0].0, "cmd=ls");
        assert_eq!(s.requests[0].1.as_deref(), Some("lorry:s3cret-password"));
    }
    let text = app.get_ok("/1.0/lorry/mirror/one")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(
        text.contains(&format!("http://{}/git/base/one", trove.server.host())),
        "{text}"
    );

    // A wrong password: the 401 is recorded, the lorries stay, no password shown.
    app.configure(&conf("wrong-password"));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    let errors = summary["hosts"][0]["errors"].to_string();
    assert!(errors.contains("401"), "{summary}");
    assert_eq!(summary["hosts"][0]["listed"], false);
    assert_eq!(app.queue().len(), 2);
    let status = app.host_status(&trove.server.host());
    assert!(
        status["ls_last_error"]
            .as_str()
            .expect("error")
            .contains("401"),
        "{status}"
    );
    assert_eq!(status["ls_last_run"], T0);
    let whole = app.get_ok("/1.0/status").to_string();
    assert_no_secret("status", &whole);
    assert!(!whole.contains("wrong-password"), "{whole}");
    assert_no_secret("the log", &app.log());
}

// ---------------------------------------------------------------- Listing rules

#[test]
fn fake_upstream_host_with_ignore_and_prefixmap_edge_cases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path())
        .with_fake_host(&[
            "foo/bar",
            "foobar/x",
            "foo",
            "foo/a/b",
            "baz/q",
            "foo/skip-me",
            "foo/../escape",
            "example/foo",
        ])
        .start();
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "trove", "host": "fake.example", "protocol": "ssh",
        "prefixmap": {"foo": "mirror/foo", "baz/": "b", "example": "example"},
        "ignore": ["foo/skip-*"], "interval": "1H", "ls-interval": "1H"
    }]));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    let host = &summary["hosts"][0];
    assert_eq!(host["repositories"], 8);
    assert_eq!(host["ignored"], 1);
    assert_eq!(host["unmapped"], 2, "foobar/x and foo itself: {summary}");
    let errors = host["errors"].to_string();
    assert!(errors.contains("foo/../escape"), "{summary}");
    let mut queue = app.queue();
    queue.sort();
    assert_eq!(
        queue,
        ["b/q", "example/foo", "mirror/foo/a/b", "mirror/foo/bar"]
    );
}

#[test]
fn the_shrink_guard_removes_nothing_and_status_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repos = |n: usize| -> Vec<String> { (0..n).map(|i| format!("up/r{i:02}")).collect() };
    let app = Webapp::init(dir.path()).with_fake_host(&repos(40)).start();
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "trove", "host": "fake.example", "protocol": "ssh",
        "prefixmap": {"up": "up"}, "ls-interval": "1H"
    }]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(app.queue().len(), 40);

    // 3 of 40 would go: more than 5%, so none goes.
    app.fake_host_lists(&repos(37));
    app.pretend_time(T0 + 10);
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(summary["hosts"][0]["lorries_removed"], json!([]));
    assert!(
        summary["hosts"][0]["errors"]
            .to_string()
            .contains("would remove 3"),
        "{summary}"
    );
    assert_eq!(app.queue().len(), 40);
    let status = app.host_status("fake.example");
    assert!(
        status["ls_last_error"]
            .as_str()
            .expect("error")
            .contains("shrink limit"),
        "{status}"
    );
    assert_eq!(
        status["ls_last_run"], T0,
        "a refused listing is tried again"
    );

    // 2 of 40 is 5%: allowed, and the error is cleared.
    app.fake_host_lists(&repos(38));
    app.pretend_time(T0 + 20);
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(
        summary["hosts"][0]["lorries_removed"],
        json!(["up/r38", "up/r39"])
    );
    assert_eq!(app.queue().len(), 38);
    let status = app.host_status("fake.example");
    assert_eq!(status["ls_last_error"], Value::Null);
    assert_eq!(status["ls_last_run"], T0 + 20);
    // Removed lorries leave their downstream repositories alone (none was touched).
    assert!(!dir.path().join("downstream/up/r38.git").exists());

    // A higher limit lets a real shrink through.
    drop(app);
    let app = Webapp::init(dir.path())
        .with_fake_host(&repos(10))
        .with_args(&["--ls-shrink-limit=80%"])
        .start();
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(
        summary["hosts"][0]["lorries_removed"]
            .as_array()
            .expect("removed")
            .len(),
        28
    );
}

#[test]
fn failed_listings_remove_nothing_and_are_shown_in_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab_host = format!("127.0.0.1:{}", common::closed_port());
    let app = Webapp::init(dir.path())
        .with_fake_host(&["up/a", "up/b"])
        .start();
    app.pretend_time(T0);
    app.configure(&json!([
        {"type": "trove", "host": "fake.example", "protocol": "ssh", "prefixmap": {"up": "up"}},
        {"type": "gitlab", "host": gitlab_host, "protocol": "http", "private-token": TOKEN,
         "prefixmap": {"x": "x"}}
    ]));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(summary["hosts"][0]["host"], gitlab_host);
    assert!(
        summary["hosts"][0]["errors"]
            .to_string()
            .contains("cannot connect"),
        "{summary}"
    );
    assert_eq!(summary["hosts"][1]["listed"], true);
    assert_eq!(app.queue(), ["up/a", "up/b"]);

    std::fs::write(dir.path().join(common::FAKE_LISTING), "not json").expect("break");
    app.pretend_time(T0 + 5);
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(summary["hosts"][1]["listed"], false);
    assert_eq!(app.queue(), ["up/a", "up/b"]);
    let status = app.host_status("fake.example");
    assert!(
        status["ls_last_error"]
            .as_str()
            .expect("error")
            .contains("fake listing"),
        "{status}"
    );
    assert_eq!(status["ls_last_run"], T0);
    let gitlab = app.host_status(&gitlab_host);
    assert!(
        gitlab["ls_last_error"]
            .as_str()
            .expect("error")
            .contains("/api/v4/groups/x/projects"),
        "{gitlab}"
    );
    assert_no_secret("status", &app.get_ok("/1.0/status").to_string());
    assert_no_secret("the log", &app.log());
}

#[test]
fn ls_troves_lists_only_hosts_whose_interval_has_passed_and_redirects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).with_fake_host(&["up/a"]).start();
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "trove", "host": "fake.example", "protocol": "ssh",
        "prefixmap": {"up": "up"}, "ls-interval": "1H"
    }]));
    assert_eq!(
        app.post_ok("/1.0/ls-troves", &[])["hosts"]
            .as_array()
            .expect("hosts")
            .len(),
        1
    );
    app.pretend_time(T0 + 3599);
    assert_eq!(app.post_ok("/1.0/ls-troves", &[])["hosts"], json!([]));
    assert_eq!(
        app.post_ok("/1.0/force-ls-troves", &[])["hosts"]
            .as_array()
            .expect("hosts")
            .len(),
        1
    );
    app.pretend_time(T0 + 3599 + 3600);
    let answer = app.post("/1.0/ls-troves", &[("redirect", "/1.0/status-html")]);
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(answer.location.as_deref(), Some("/1.0/status-html"));
    assert_eq!(app.host_status("fake.example")["ls_last_run"], T0 + 7199);
    let answer = app.post("/1.0/ls-troves", &[("redirect", "http://elsewhere/")]);
    assert_eq!(answer.status, 400, "{answer:?}");
}

#[test]
fn max_jobs_per_host_caps_running_jobs_of_one_upstream_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path())
        .with_fake_host(&["up/a", "up/b", "up/c"])
        .with_args(&["--max-jobs-per-host=2"])
        .start();
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "trove", "host": "fake.example", "protocol": "ssh", "prefixmap": {"up": "up"},
        "interval": "1H"
    }]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    app.seed(&[lorry("zz/plain")]);
    let (first, a) = app.give_me_job().expect("job");
    let (_, b) = app.give_me_job().expect("job");
    let (_, plain) = app.give_me_job().expect("job");
    assert_eq!(
        (a.as_str(), b.as_str(), plain.as_str()),
        ("up/a", "up/b", "zz/plain")
    );
    assert_eq!(
        app.give_me_job(),
        None,
        "up/c waits: its host has 2 jobs running"
    );
    app.finish(first, 0);
    assert_eq!(app.give_me_job().map(|j| j.1).as_deref(), Some("up/c"));
}

#[test]
fn bad_downstream_options_stop_the_webapp_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(common::WEBAPP)
            .arg(format!("--statedb={}", dir.path().join("x.db").display()))
            .args(args)
            .env_remove("LORRY_GITLAB_PRIVATE_TOKEN")
            .env_remove("LORRY_GITEA_ACCESS_TOKEN")
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--git-server-type=gitlab"]);
    assert!(err.contains("--gitlab-private-token"), "{err}");
    let file = token_file(dir.path());
    let err = run(&[
        "--git-server-type=gitlab",
        &format!("--gitlab-private-token={TOKEN}"),
        &format!("--gitlab-private-token-file={file}"),
    ]);
    assert!(err.contains("give only one"), "{err}");
    assert_no_secret("the error", &err);
    let err = run(&[
        "--git-server-type=gitea",
        "--gitea-access-token=x",
        "--downstream-http-url=https://user:pw@gitea.example/",
    ]);
    assert!(err.contains("not in the URL"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
    let err = run(&["--ls-shrink-limit=150"]);
    assert!(err.contains("percentage"), "{err}");
    let err = run(&[
        "--git-server-type=gerrit",
        "--downstream-ssh-url=ssh://-oProxyCommand=x",
    ]);
    assert!(err.contains("--downstream-ssh-url"), "{err}");
}

#[test]
fn gitlab_downstream_takes_upstream_metadata_and_waits_out_a_busy_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = GitlabV4::start(TOKEN);
    up.add_project("src/new", Some("trunk"), Some("Brand new"));
    up.add_project("src/old", Some("develop"), Some("Changed words"));
    up.add_project("src/same", Some("main"), Some("Same words"));
    let down = GitlabV4::start(TOKEN);
    down.add_group("src");
    down.add_project("src/old", Some("master"), Some("Old words"));
    down.add_project("src/same", Some("main"), Some("Same words"));
    let app = gitlab_app(dir.path(), &down, &[]);
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitlab", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"src": "src"}
    }]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    down.state().busy = 1;
    assert_eq!(drain(&app), ["src/new", "src/old", "src/same"]);
    let src = down.namespace("src").expect("src").id;
    assert_eq!(
        down.changes(),
        [
            (
                "POST /api/v4/projects".to_owned(),
                json!({"name": "new", "path": "new", "namespace_id": src,
                       "visibility": "private", "lfs_enabled": true,
                       "builds_access_level": "disabled",
                       "pages_access_level": "disabled",
                       "container_registry_access_level": "disabled",
                       "auto_devops_enabled": false,
                       "description": "Brand new"})
            ),
            (
                format!(
                    "PUT /api/v4/projects/{}",
                    down.project("src/old").expect("old").id
                ),
                json!({"description": "Changed words"})
            ),
        ]
    );
    // The first call was answered 429 and repeated after Retry-After.
    let seen = down.seen();
    assert_eq!(seen[0].line(), seen[1].line());
    let log = app.log();
    assert!(
        log.lines().any(|l| l.contains("host is busy: backing off")
            && l.contains("status=429")
            && l.contains("wait_s=1")),
        "{log}"
    );
}

/// CONFGIT at an ssh:// URL: git runs the `ssh` on PATH (here the stand-in,
/// serving `git-upload-pack` from its own directory).
#[test]
fn confgit_over_ssh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ssh = SshDouble::new(dir.path());
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("lorries")).expect("mkdir");
    common::git(&work, &["init", "-q", "-b", "master"]);
    std::fs::write(
        work.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "up", "globs": ["lorries/*.lorry"]}]"#,
    )
    .expect("conf");
    std::fs::write(
        work.join("lorries/a.lorry"),
        "a: {type: git, url: 'https://example.org/a.git'}\n",
    )
    .expect("lorry");
    common::git(&work, &["add", "-A"]);
    common::git(&work, &["commit", "-q", "-m", "conf"]);
    let root = ssh.dir.join("git-root");
    std::fs::create_dir_all(&root).expect("git-root");
    common::git(
        &root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            "confgit.git",
        ],
    );

    let app = Webapp::init(&dir.path().join("app"))
        .with_args(&[
            "--debug-real-confgit",
            "--confgit-url=ssh://git@confgit.example.com/confgit.git",
        ])
        .with_env(&ssh.env())
        .start();
    let summary = app.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(summary["lorries_added"], json!(["up/a"]), "{summary}");
    let calls = ssh.calls();
    assert!(
        calls.iter().any(|c| c[0] == "git@confgit.example.com"
            && c.iter().any(|w| w == "git-upload-pack")
            && c.iter().any(|w| w == "/confgit.git")),
        "{calls:?}"
    );
    // A second read fetches over ssh again and finds nothing new.
    let again = app.post_ok("/1.0/read-configuration", &[]);
    assert_eq!(again["lorries_unchanged"], 1, "{again}");
}

// ---------------------------------------------------------------- GitHub

fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn github_upstream_lists_owners_across_pages_and_waits_out_rate_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gh = GithubRest::start(Some(TOKEN));
    for i in 0..150 {
        gh.add_repo("org", &format!("r{i:03}"), None);
    }
    for name in ["old", "forked", "blank"] {
        gh.add_repo("org", name, None);
    }
    gh.update_repo("org/old", |r| r.archived = true);
    gh.update_repo("org/forked", |r| r.fork = true);
    gh.update_repo("org/blank", |r| r.size = 0);
    gh.add_repo("lorry", "mine", Some("Mine"));
    gh.update_repo("lorry/mine", |r| r.default_branch = "trunk".into());
    gh.add_repo("other", "never", None);
    // Two calls left before the primary limit, which resets in 2 s.
    {
        let mut s = gh.state();
        s.remaining = 2;
        s.reset_at = epoch_now() + 2;
    }
    let app = local_app(dir.path(), &[], &[]);
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "github", "host": gh.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"org": "gh/org", "lorry": "gh/me"}
    }]));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(summary["hosts"][0]["listed"], true, "{summary}");
    let queue = app.queue();
    assert_eq!(queue.len(), 151, "{summary}");
    assert!(queue.contains(&"gh/org/r149".to_owned()));
    assert!(queue.contains(&"gh/me/mine".to_owned()));
    for left_out in ["gh/org/old", "gh/org/forked", "gh/org/blank"] {
        assert!(!queue.contains(&left_out.to_owned()), "{left_out}");
    }
    let asked: Vec<String> = gh
        .seen()
        .iter()
        .map(|r| format!("{} {}", r.path, r.query))
        .collect();
    // The user is not an organisation; then two pages of the organisation,
    // the limit's 403 once, waited out until its reset, never asked early.
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert!(
        asked[0].starts_with("/api/v3/orgs/lorry/repos "),
        "{asked:?}"
    );
    assert!(
        asked[1].starts_with("/api/v3/users/lorry/repos "),
        "{asked:?}"
    );
    assert!(asked[4].contains("page=2"), "{asked:?}");
    assert_eq!(gh.state().statuses, [404, 200, 403, 200, 200]);
    let lorry = app.get_ok("/1.0/lorry/gh/org/r007");
    assert!(
        lorry["text"]
            .as_str()
            .expect("text")
            .contains(&format!("{}/org/r007.git", gh.server.url())),
        "{lorry}"
    );

    // A secondary limit: Retry-After is waited out, and no token is needed
    // for public repositories.
    gh.state().secondary = 1;
    let before = gh.state().statuses.len();
    app.configure(&json!([{
        "type": "github", "host": gh.server.host(), "protocol": "http",
        "prefixmap": {"lorry": "gh/me"}
    }]));
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(summary["hosts"][0]["listed"], true, "{summary}");
    assert_eq!(gh.state().statuses[before..], [403, 404, 200]);
    assert_no_secret("the log", &app.log());
}

#[test]
fn github_downstream_creates_repositories_with_issues_and_actions_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gh = GithubRest::start(Some(TOKEN));
    gh.add_org("mirrors", true);
    gh.add_org("closed", false);
    // The upstream: an organisation of the same GitHub.
    gh.add_repo("src", "p", Some("Upstream words"));
    gh.update_repo("src/p", |r| {
        r.default_branch = "trunk".into();
        r.branches = vec!["trunk".into()];
    });
    let app = Webapp::init(dir.path())
        .with_downstream(&[
            "--git-server-type=github".into(),
            format!("--downstream-http-url={}", gh.server.url()),
        ])
        .with_env(&[("LORRY_GITHUB_TOKEN", TOKEN)])
        .start();
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "github", "host": gh.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"src": "mirrors"}
    }]));
    app.post_ok("/1.0/force-ls-troves", &[]);
    app.seed(&[lorry("lorry/own"), lorry("nobody/x"), lorry("closed/y")]);
    let before = gh.changes().len();
    let mut handed = drain(&app);
    handed.sort();
    assert_eq!(handed, ["lorry/own", "mirrors/p"]);
    let changes = gh.changes()[before..].to_vec();
    let own = changes
        .iter()
        .find(|(line, _)| line == "POST /api/v3/user/repos")
        .expect("created for the user");
    assert_eq!(
        own.1,
        json!({"name": "own", "private": true, "has_issues": false,
               "has_projects": false, "has_wiki": false,
               "description": "Mirror of git://example.invalid/lorry/own"})
    );
    let p = gh.repo("mirrors/p").expect("created in the organisation");
    assert_eq!(p.description.as_deref(), Some("Upstream words"));
    assert!(p.private && !p.has_issues && !p.actions_enabled, "{p:?}");
    assert!(!gh.repo("lorry/own").expect("own").actions_enabled);
    let out = last_job(&app, "nobody/x")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(out.contains("cannot be created through the API"), "{out}");
    let out = last_job(&app, "closed/y")["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(out.contains("admin access to the organization"), "{out}");

    // The job pushes; then the webapp sets the upstream's default branch.
    gh.update_repo("mirrors/p", |r| {
        r.branches = vec!["master".into(), "trunk".into()];
        r.default_branch = "master".into();
        r.size = 1;
    });
    let id = app.get_ok("/1.0/lorry/mirrors/p")["jobs"][0]
        .as_i64()
        .expect("job");
    app.finish(id, 0);
    common::wait_for("the default branch set after the push", READY, || {
        (gh.repo("mirrors/p")?.default_branch == "trunk").then_some(())
    });
    assert_no_secret("the log", &app.log());
}

/// Non-ASCII letters and spaces in a lorry name reach Gitano and Gerrit as
/// one word each (quoted for their command parsers), and the repository
/// gets exactly that name.
#[test]
fn unicode_and_spaces_in_names_reach_gitano_and_gerrit_as_one_word() {
    let name = "ünï cöde/ré po";
    let dir = tempfile::tempdir().expect("tempdir");
    let ssh = SshDouble::new(dir.path());
    let app = Webapp::init(dir.path())
        .with_downstream(&[
            "--git-server-type=gitano",
            "--downstream-host=trove.example.com",
        ])
        .with_env(&ssh.env())
        .start();
    app.pretend_time(T0);
    app.seed(&[lorry(name)]);
    assert_eq!(drain(&app), [name]);
    assert_eq!(
        ssh.calls(),
        [vec!["git@trove.example.com", "", "create", name]]
    );
    assert_eq!(ssh.lines("gitano-repos"), [name]);

    let dir = tempfile::tempdir().expect("tempdir");
    let ssh = SshDouble::new(dir.path());
    ssh.write("gerrit-projects", &["All-Projects", "Mirrors"]);
    let app = Webapp::init(dir.path())
        .with_downstream(&[
            "--git-server-type=gerrit",
            "--downstream-ssh-url=ssh://lorry@gerrit.example.com:29418",
            "--gerrit-parent-project=Mirrors",
        ])
        .with_env(&ssh.env())
        .start();
    app.pretend_time(T0);
    app.seed(&[lorry(name)]);
    assert_eq!(drain(&app), [name]);
    let created: Vec<Vec<String>> = ssh
        .calls()
        .into_iter()
        .filter(|call| call.iter().any(|w| w == "create-project"))
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        created[0].last().map(String::as_str),
        Some(name),
        "{created:?}"
    );
    assert!(
        ssh.lines("gerrit-projects").iter().any(|p| p == name),
        "{:?}",
        ssh.lines("gerrit-projects")
    );
}

/// A listing is the host's word, not the admin's (issue 11 item 4): a Gitea
/// whose clone URLs name a local path, a `file:` URL, git's `ext::`
/// transport or another host gets a problem for that host, shown in its
/// status and the listing's answer, and no lorry. Its own clone base, the
/// control, gives the lorry.
#[test]
fn hostile_clone_urls_in_a_listing_are_problems_of_the_host_not_lorries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = GiteaV1::start(TOKEN);
    up.add_repo("src", "r", "main", "");
    let app = local_app(dir.path(), &[], &[]);
    app.pretend_time(T0);
    app.configure(&json!([{
        "type": "gitea", "host": up.server.host(), "protocol": "http",
        "private-token": TOKEN, "prefixmap": {"src": "mirror"}
    }]));
    for base in [
        "/srv/git",
        "file:///srv/git",
        "ext::sh%20-c%20id",
        "https://elsewhere.example.org",
        "git@elsewhere.example.org:",
    ] {
        // Gitea builds clone URLs from its ROOT_URL: the hostile part.
        up.state().root_url = Some(base.to_owned());
        let summary = app.post_ok("/1.0/force-ls-troves", &[]);
        let host = &summary["hosts"][0];
        assert_eq!(
            host["lorries_added"].as_array().map_or(0, Vec::len),
            0,
            "{base}: {summary}"
        );
        let errors = host["errors"].to_string();
        assert!(
            errors.contains("src/r") && errors.contains("refused"),
            "{base}: {summary}"
        );
        let status = app.host_status(&up.server.host());
        let problem = status["ls_last_error"].as_str().unwrap_or_default();
        assert!(problem.contains("refused"), "{base}: {status}");
        assert!(app.queue().is_empty(), "{base}: no lorry queued");
        let lorry = app.get("/1.0/lorry/mirror/r");
        assert_eq!(lorry.status, 404, "{base}: {}", lorry.text);
    }
    up.state().root_url = None;
    let summary = app.post_ok("/1.0/force-ls-troves", &[]);
    assert_eq!(
        summary["hosts"][0]["lorries_added"],
        json!(["mirror/r"]),
        "{summary}"
    );
    assert_eq!(
        app.host_status(&up.server.host())["ls_last_error"],
        Value::Null
    );
}
