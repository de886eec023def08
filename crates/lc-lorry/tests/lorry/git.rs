//! git specs against real upstreams (git daemon and file://) and a local
//! bare downstream.

use std::collections::BTreeMap;

use serde_json::json;

use crate::common::*;

const NAME: &str = "delta/project";

fn spec(url: &str) -> serde_json::Value {
    json!({ NAME: { "type": "git", "url": url } })
}

#[test]
fn first_mirror_incremental_update_and_no_op_over_git_daemon() {
    let area = Area::new();
    let served = area.path().join("served");
    let mut up = Upstream::new(served.join("project"));
    up.branch("feature");
    up.tag("v1.0");
    let daemon = Daemon::start(&served);
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&daemon.url("project")));

    // First mirror.
    let run = area.run(&[&file], &["--verbose"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert_eq!(heads_and_tags(&area.mirror(NAME)), up.heads_and_tags());
    assert!(ran(&run, "push"));

    // Incremental: a new commit and a new branch.
    up.commit("second");
    up.branch("another");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert!(
        refs_under(&down, "refs/lorry/").is_empty(),
        "nothing preserved on fast-forward"
    );

    // No-op: one fetch that lists the refs and brings nothing, no push, no
    // contact with the downstream, no other git command.
    let objects = || walk_files(&area.mirror(NAME).join("objects"));
    let before = objects();
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(!ran(&run, "push"), "{:?}", run.git);
    assert!(!ran(&run, "ls-remote"), "{:?}", run.git);
    assert_eq!(run.git.len(), 1, "{:?}", run.git);
    assert!(ran(&run, "fetch"), "{:?}", run.git);
    assert!(run.git[0].contains(&daemon.url("project")));
    // Over git:// in protocol version 0, where the server speaks first (no
    // waits for delayed ACKs; see lc-git).
    assert!(
        run.git[0].starts_with("-c protocol.version=0 fetch "),
        "{:?}",
        run.git
    );
    assert_eq!(objects(), before, "nothing was fetched");
    assert!(
        !run.git
            .iter()
            .any(|l| l.contains(&area.downstream_base().display().to_string())),
        "the downstream must not be contacted: {:?}",
        run.git
    );
    assert!(run.out.contains("unchanged"), "{}", run.out);
}

#[test]
fn deleted_branch_and_force_push_are_preserved_downstream() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.commit("two");
    up.branch("doomed");
    let doomed_tip = up.head();
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);

    let old_main = up.head();
    let new_main = up.force_rewrite();
    up.delete_branch("doomed");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());

    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert_eq!(refs(&down)["refs/heads/main"], new_main);
    let preserved = refs_under(&down, "refs/lorry/preserved/");
    assert_eq!(preserved.len(), 2, "{preserved:?}");
    let main_kept = preserved
        .iter()
        .find(|(name, _)| name.ends_with("/refs/heads/main"))
        .expect("main preserved");
    assert_eq!(main_kept.1, &old_main);
    let doomed_kept = preserved
        .iter()
        .find(|(name, _)| name.ends_with("/refs/heads/doomed"))
        .expect("doomed preserved");
    assert_eq!(doomed_kept.1, &doomed_tip);
    // refs/lorry/preserved/<UTC timestamp>/<ref>
    let stamp = main_kept
        .0
        .strip_prefix("refs/lorry/preserved/")
        .and_then(|rest| rest.split('/').next())
        .expect("stamp");
    assert_eq!(stamp.len(), "20260101T000000Z".len(), "{stamp}");
    assert!(stamp.ends_with('Z') && stamp.contains('T'));
    // The output says so.
    assert!(
        run.out.contains("preserved as refs/lorry/preserved/"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("refs/heads/doomed was deleted"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("refs/heads/main was rewritten"),
        "{}",
        run.out
    );
    // And the mirror keeps them too.
    assert_eq!(
        refs_under(&area.mirror(NAME), "refs/lorry/preserved/"),
        preserved
    );
}

#[test]
fn on_rewrite_refuse_fails_and_leaves_the_ref() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.commit("two");
    up.branch("side");
    let down = area.downstream(NAME);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: { "type": "git", "url": up.url(), "on-rewrite": "refuse" } }),
    );
    assert_eq!(area.run(&[&file], &[]).code, 0);
    let old_main = up.head();

    up.force_rewrite();
    up.checkout("side");
    let side = up.commit("side moves on");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert_eq!(
        run.err.lines().count(),
        1,
        "one line per failed spec: {}",
        run.err
    );
    assert!(run.err.contains("refs/heads/main"), "{}", run.err);
    assert!(run.err.contains("refuse"), "{}", run.err);
    assert!(
        run.out.contains("left as it was (on-rewrite: refuse)"),
        "{}",
        run.out
    );
    let down_refs = refs(&down);
    assert_eq!(
        down_refs["refs/heads/main"], old_main,
        "refused ref left as it was"
    );
    assert_eq!(
        down_refs["refs/heads/side"], side,
        "other refs still mirrored"
    );
    assert!(refs_under(&down, "refs/lorry/").is_empty());
    assert_eq!(refs(&area.mirror(NAME))["refs/heads/main"], old_main);

    // Still refused on the next run: a failed run never takes the no-op path.
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert!(ran(&run, "fetch"));
}

#[test]
fn on_rewrite_follow_moves_without_preserving() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.commit("two");
    let down = area.downstream(NAME);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: { "type": "git", "url": up.url(), "on-rewrite": "follow" } }),
    );
    assert_eq!(area.run(&[&file], &[]).code, 0);
    let new_main = up.force_rewrite();
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(refs(&down)["refs/heads/main"], new_main);
    assert!(refs_under(&down, "refs/lorry/").is_empty());
    assert!(run.out.contains("followed"), "{}", run.out);
}

#[test]
fn a_failed_push_leaves_mirror_and_downstream_intact_and_the_next_run_recovers() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.commit("two");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);
    let good_down = refs(&down);
    let good_mirror = heads_and_tags(&area.mirror(NAME));

    // The downstream rejects every push for now.
    let hook = down.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'host says no' >&2\nexit 1\n").expect("hook");
    set_executable(&hook);
    let rewritten = up.force_rewrite();
    up.branch("new-branch");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert!(
        run.err.contains("Error mirroring delta/project"),
        "{}",
        run.err
    );
    assert_eq!(
        run.err.lines().count(),
        1,
        "one line per failed spec: {}",
        run.err
    );
    assert_eq!(refs(&down), good_down, "downstream untouched");
    assert_eq!(
        heads_and_tags(&area.mirror(NAME)),
        good_mirror,
        "last good copy untouched"
    );

    // What the failed run fetched is kept aside, not in the mirror's refs.
    let kept = refs_under(&area.mirror(NAME), "refs/lorry/post-fail/");
    assert_eq!(
        kept.get("refs/lorry/post-fail/latest/heads/main"),
        Some(&rewritten),
        "{kept:?}"
    );
    let run = area.run(&[&file], &["--keep-multiple-backups"]);
    assert_eq!(run.code, 1);
    let kept = refs_under(&area.mirror(NAME), "refs/lorry/post-fail/");
    assert!(
        kept.keys()
            .any(|k| k.starts_with("refs/lorry/post-fail/2") && k.ends_with("/heads/main")),
        "{kept:?}"
    );
    assert_eq!(refs(&down), good_down, "downstream untouched");

    // An unreachable upstream fails too, and changes nothing.
    let broken = area.lorry_file("broken.lorry", &spec("file:///nonexistent/upstream"));
    let run = area.run(&[&broken], &[]);
    assert_eq!(run.code, 1);

    std::fs::remove_file(&hook).expect("unhook");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(refs(&down)["refs/heads/main"], rewritten);
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert_eq!(refs_under(&down, "refs/lorry/preserved/").len(), 1);
}

#[test]
fn a_downstream_changed_behind_lorrys_back_is_preserved_not_lost() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    // The downstream already holds a branch main with unrelated history.
    let stranger = stranger_pushes_main(area.path().join("other"), &down);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let preserved = refs_under(&down, "refs/lorry/preserved/");
    assert_eq!(preserved.values().collect::<Vec<_>>(), vec![&stranger]);
}

#[test]
fn refspecs_limit_what_is_mirrored() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    up.branch("other");
    up.tag("v1");
    let down = area.downstream(NAME);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: { "type": "git", "url": up.url(), "refspecs": ["refs/heads/main"] } }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(
        heads_and_tags(&down).keys().collect::<Vec<_>>(),
        vec!["refs/heads/main"]
    );
}

#[test]
fn pull_only_updates_the_working_area_and_pushes_nothing() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.commit("two");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let wa = format!("--working-area={}", area.working_area().display());
    let run = lorry(&["--pull-only", &wa, file.to_str().expect("utf8")]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(!ran(&run, "push"));
    assert!(refs(&down).is_empty());
    assert_eq!(heads_and_tags(&area.mirror(NAME)), up.heads_and_tags());
    // A rewrite is preserved in the mirror itself.
    let old = up.head();
    up.force_rewrite();
    let run = lorry(&["--pull-only", &wa, file.to_str().expect("utf8")]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let kept = refs_under(&area.mirror(NAME), "refs/lorry/preserved/");
    assert_eq!(kept.values().collect::<Vec<_>>(), vec![&old]);
}

#[test]
fn credentials_are_redacted_in_every_line() {
    let area = Area::new();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://alice:hunter2@127.0.0.1:{closed}/repo.git");
    let file = area.lorry_file("p.lorry", &spec(&url));
    let wa = format!("--working-area={}", area.working_area().display());
    let run = lorry(&[
        "--verbose",
        &wa,
        "--mirror-base-url-push=https://bob:tok3n@downstream.invalid/base",
        file.to_str().expect("utf8"),
    ]);
    assert_eq!(run.code, 1);
    let all = run.all_output();
    assert!(!all.contains("hunter2") && !all.contains("alice"), "{all}");
    assert!(!all.contains("tok3n"), "{all}");
    assert!(
        all.contains(&format!("127.0.0.1:{closed}/repo.git")),
        "{all}"
    );
    for line in &run.git {
        assert!(!line.contains("hunter2"), "{line}");
    }
}

#[test]
fn exit_codes_and_one_line_per_failed_spec() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    area.downstream("good");
    let file = area.lorry_file(
        "mixed.lorry",
        &json!({
            "good": { "type": "git", "url": up.url() },
            "bad-url": { "type": "git", "url": "file:///no/such/repo" },
            "bad-type": { "type": "darcs", "url": "x" },
        }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    let lines: Vec<&str> = run.err.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.err);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Error mirroring bad-url:"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Error mirroring bad-type:") && l.contains("darcs"))
    );
    assert_eq!(
        heads_and_tags(&area.downstream("good")),
        up.heads_and_tags()
    );

    let good = area.lorry_file(
        "good.lorry",
        &json!({ "good": { "type": "git", "url": up.url() } }),
    );
    assert_eq!(area.run(&[&good], &[]).code, 0);

    // Files that are not .lorry files.
    let garbage = area.path().join("garbage.lorry");
    std::fs::write(&garbage, "{ this is not json").expect("write");
    let missing = area.path().join("missing.lorry");
    let run = area.run(&[&garbage, &missing, &good], &[]);
    assert_eq!(run.code, 1);
    assert!(run.err.contains("garbage.lorry"), "{}", run.err);
    assert!(run.err.contains("missing.lorry"), "{}", run.err);
    assert_eq!(run.err.lines().count(), 2, "{}", run.err);

    // Usage errors.
    assert_eq!(lorry(&[]).code, 2);
    assert_eq!(lorry(&["x.lorry"]).code, 2, "no working area");
    let wa = format!("--working-area={}", area.working_area().display());
    let run = lorry(&[&wa, good.to_str().expect("utf8")]);
    assert_eq!(run.code, 2, "no push URL without --pull-only");
    assert!(run.err.contains("--mirror-base-url-push"));
    assert_eq!(lorry(&["--help"]).code, 0);
}

#[test]
fn yaml_lorry_files_mirror_like_json_ones() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    let file = area.path().join("p.lorry");
    std::fs::write(
        &file,
        format!(
            "# as CONFGIT may hold it\n{NAME}:\n  type: git\n  url: {}\n  refspecs:\n    - 'refs/heads/*'\n",
            up.url()
        ),
    )
    .expect("write");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());

    std::fs::write(&file, format!("{NAME}:\n  type: git\n  url: [1]\n")).expect("write");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.err.starts_with(&format!(
            "Error mirroring {NAME}: invalid spec in {}",
            file.display()
        )) && run.err.contains("field url:"),
        "{}",
        run.err
    );
}

#[test]
fn config_file_is_read_and_bad_keys_fail() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let conf = area.path().join("lorry.conf");
    std::fs::write(
        &conf,
        format!(
            "[config]\nworking-area = {}\nmirror-base-url-push = file://{}\nbundle = never\ntarball = never\nverbose = yes\n",
            area.working_area().display(),
            area.downstream_base().display()
        ),
    )
    .expect("write");
    let conf_arg = format!("--config={}", conf.display());
    let run = lorry(&[&conf_arg, file.to_str().expect("utf8")]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert!(!run.out.is_empty(), "verbose from the file");

    std::fs::write(&conf, "[config]\nworking-area = /x\nno-such-option = 1\n").expect("write");
    let run = lorry(&[&conf_arg, file.to_str().expect("utf8")]);
    assert_ne!(run.code, 0);
    assert!(
        run.err.contains("lorry.conf") && run.err.contains("no-such-option"),
        "{}",
        run.err
    );
}

#[test]
fn bundles_tarballs_and_push_options() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    // The downstream records the push options it receives.
    git(&down, &["config", "receive.advertisePushOptions", "true"]);
    let hook = down.join("hooks/pre-receive");
    let seen = area.path().join("push-options.txt");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ni=0\nwhile [ $i -lt ${{GIT_PUSH_OPTION_COUNT:-0}} ]; do eval echo \\$GIT_PUSH_OPTION_$i >> {}; i=$((i+1)); done\n",
            seen.display()
        ),
    )
    .expect("hook");
    set_executable(&hook);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let bundles = area.path().join("bundles");
    let tarballs = area.path().join("tarballs");
    let run = area.run(
        &[&file],
        &[
            "--bundle=always",
            &format!("--bundle-dest={}", bundles.display()),
            "--tarball=first",
            &format!("--tarball-dest={}", tarballs.display()),
            "--mirror-base-url-fetch=git://example.com/",
            "--push-option=ci.skip",
            "--push-option=note=x",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all_output());
    let bundle = bundles.join("git___example.com_delta_project.git.bndl");
    assert!(
        bundle.is_file(),
        "{:?}",
        std::fs::read_dir(&bundles).map(|d| d.count())
    );
    let restored = area.path().join("restored.git");
    git(
        area.path(),
        &[
            "clone",
            "-q",
            "--bare",
            bundle.to_str().expect("utf8"),
            restored.to_str().expect("utf8"),
        ],
    );
    assert_eq!(heads_and_tags(&restored), up.heads_and_tags());
    assert!(
        tarballs
            .join("git___example.com_delta_project.git.tar")
            .is_file()
    );
    assert_eq!(
        std::fs::read_to_string(&seen).expect("options seen"),
        "ci.skip\nnote=x\n"
    );
}

fn set_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path).expect("meta").permissions();
    perms.set_mode(0o755);
    std::fs::set_permissions(path, perms).expect("chmod");
}

#[test]
fn a_downstream_without_atomic_push_still_gets_everything() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.commit("two");
    let down = area.downstream(NAME);
    git(&down, &["config", "receive.advertiseAtomic", "false"]);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    up.force_rewrite();
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert_eq!(refs_under(&down, "refs/lorry/preserved/").len(), 1);
    assert!(
        run.git.iter().filter(|l| l.starts_with("push")).count() >= 2,
        "an atomic attempt, then a plain one: {:?}",
        run.git
    );
}

/// Adds tags `<prefix>0000`.. to `repo`, all at `oid`.
fn add_tags(repo: &std::path::Path, prefix: &str, count: usize, oid: &str) {
    let mut stream = String::new();
    for i in 0..count {
        stream.push_str(&format!("reset refs/tags/{prefix}{i:04}\nfrom {oid}\n\n"));
    }
    let mut child = git_cmd(repo)
        .args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("fast-import");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stream.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success());
}

#[test]
fn thousands_of_refs_first_by_pattern_then_in_chunks() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    let head = up.head();
    add_tags(&up.dir, "a", 1500, &head);
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    // Into an empty downstream: one push by pattern.
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down).len(), 1501);
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert_eq!(
        run.git.iter().filter(|l| l.starts_with("push")).count(),
        1,
        "{:?}",
        run.git
            .iter()
            .filter(|l| l.starts_with("push"))
            .map(|l| &l[..60.min(l.len())])
            .collect::<Vec<_>>()
    );
    // 2,001 more: explicit refspecs with leases, at most 1,000 per push.
    add_tags(&up.dir, "b", 2001, &head);
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert_eq!(run.git.iter().filter(|l| l.starts_with("push")).count(), 3);
}

#[test]
fn names_that_used_to_collide_get_a_working_directory_each() {
    let area = Area::new();
    let names = ["c/d", "c_d", "c%2Fd"];
    let mut specs = serde_json::Map::new();
    let mut ups = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut up = Upstream::new(area.path().join(format!("up{i}")));
        up.commit(&format!("only in upstream {i}"));
        up.branch(&format!("only-{i}"));
        specs.insert(
            (*name).to_owned(),
            json!({ "type": "git", "url": up.url() }),
        );
        ups.push(up);
    }
    let file = area.lorry_file("c.lorry", &serde_json::Value::Object(specs));
    // Pull only: a file:// push URL would be percent-decoded by git, which
    // makes "c%2Fd.git" the downstream of "c/d" (a downstream matter).
    let run = area.run(&[&file], &["--pull-only"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    for (name, up) in names.iter().zip(&ups) {
        assert_eq!(
            heads_and_tags(&area.mirror(name)),
            up.heads_and_tags(),
            "{name}"
        );
    }
    // A second run finds each unchanged: three state files, one per lorry.
    let run = area.run(&[&file], &["--pull-only"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(
        run.out
            .matches("upstream unchanged since the last run")
            .count(),
        3,
        "{}",
        run.out
    );
    assert_eq!(run.git.len(), 3, "one listing fetch each: {:?}", run.git);
}

#[test]
fn a_working_directory_under_its_old_name_is_moved_not_fetched_again() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    up.branch("feature");
    area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    // Make it look as an older lorry left it: named with '/' → '_'.
    let new_dir = area.mirror(NAME).parent().expect("dir").to_owned();
    let old_dir = area.working_area().join("delta_project");
    std::fs::remove_file(new_dir.join("lorry-name")).expect("remove name file");
    std::fs::rename(&new_dir, &old_dir).expect("rename");
    let objects = git(&old_dir.join("git"), &["count-objects", "-v"]);

    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(!old_dir.exists(), "moved away");
    assert!(run.out.contains("moved working directory"), "{}", run.out);
    // The state came along: the unchanged upstream is found unchanged
    // (its listing fetch brings nothing) and nothing is pushed.
    assert!(
        run.out.contains("upstream unchanged since the last run"),
        "{}",
        run.out
    );
    assert_eq!(run.git.len(), 1, "{:?}", run.git);
    assert!(!ran(&run, "push"), "{:?}", run.git);
    assert_eq!(heads_and_tags(&area.mirror(NAME)), up.heads_and_tags());
    assert_eq!(git(&area.mirror(NAME), &["count-objects", "-v"]), objects);
}

/// A spec is untrusted input: without `--allow-local-upstreams` it may not
/// make lorry read this machine's disk, and a URL that begins with `-` is
/// never handed to git. Nothing runs against the upstream either way.
#[test]
fn local_and_dash_upstreams_are_refused_before_git_runs() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.commit("private");
    let down = area.downstream(NAME);
    let wa = format!("--working-area={}", area.working_area().display());
    let push = format!(
        "--mirror-base-url-push=file://{}",
        area.downstream_base().display()
    );
    let strict = |file: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            wa.as_str(),
            push.as_str(),
            "--bundle=never",
            "--tarball=never",
        ];
        args.extend_from_slice(extra);
        args.push(file.to_str().expect("utf8"));
        lorry_strict(&args)
    };
    let untouched = refs(&down);

    for url in [up.url(), up.dir.display().to_string()] {
        let file = area.lorry_file("local.lorry", &spec(&url));
        let run = strict(&file, &[]);
        assert_eq!(run.code, 1, "{}", run.all_output());
        assert!(run.err.contains("--allow-local-upstreams"), "{}", run.err);
        assert!(
            !ran(&run, "ls-remote") && !ran(&run, "fetch") && !ran(&run, "push"),
            "{:?}",
            run.git
        );
        assert_eq!(refs(&down), untouched);
    }

    let file = area.lorry_file("dash.lorry", &spec("--upload-pack=touch pwned"));
    let run = strict(&file, &["--allow-local-upstreams"]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert!(run.err.contains("begins with '-'"), "{}", run.err);
    assert!(
        !ran(&run, "ls-remote") && !ran(&run, "fetch"),
        "{:?}",
        run.git
    );

    // Allowed on the command line or in lorry.conf, it mirrors.
    let file = area.lorry_file("local.lorry", &spec(&up.url()));
    let run = strict(&file, &["--allow-local-upstreams"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    // The spec's directory is private: what came from upstream stays there.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(area.mirror(NAME).parent().expect("spec dir"))
            .expect("stat")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    let conf = area.path().join("lorry.conf");
    std::fs::write(&conf, "[config]\nallow-local-upstreams = yes\n").expect("write");
    let conf_arg = format!("--config={}", conf.display());
    let run = strict(&file, &[&conf_arg]);
    assert_eq!(run.code, 0, "{}", run.all_output());
}

/// Every importer refuses an upstream that begins with `-` (it would be
/// taken for an option), and a local one without `--allow-local-upstreams`,
/// before running anything.
#[test]
fn every_importer_refuses_a_dash_url_and_a_local_one() {
    let area = Area::new();
    let wa = format!("--working-area={}", area.working_area().display());
    let dash = "--config-option=evil";
    let local = "file:///etc";
    for (kind, spec) in [
        ("git", json!({"type": "git", "url": "URL"})),
        ("tarball", json!({"type": "tarball", "url": "URL"})),
        ("zip", json!({"type": "zip", "url": "URL"})),
        ("gzip", json!({"type": "gzip", "url": "URL"})),
        (
            "raw-file",
            json!({"type": "raw-file", "urls": [{"url": "URL"}]}),
        ),
        (
            "svn",
            json!({"type": "svn", "url": "URL", "layout": "standard"}),
        ),
        ("hg", json!({"type": "hg", "url": "URL"})),
        ("bzr", json!({"type": "bzr", "url": "URL"})),
        ("cvs", json!({"type": "cvs", "url": "URL", "module": "m"})),
    ] {
        let local = if kind == "cvs" { ":local:/etc" } else { local };
        for (url, refusal) in [
            (dash, "begins with '-'"),
            (local, "--allow-local-upstreams"),
        ] {
            let text = spec.to_string().replace("URL", url);
            let value: serde_json::Value = serde_json::from_str(&text).expect("json");
            let file = area.lorry_file("x.lorry", &json!({ "x/y": value }));
            let run = lorry_strict(&["--pull-only", &wa, file.to_str().expect("utf8")]);
            assert_eq!(run.code, 1, "{kind} {url}: {}", run.all_output());
            assert!(run.err.contains(refusal), "{kind} {url}: {}", run.err);
            assert!(
                run.git.iter().all(|line| line.starts_with("init")),
                "{kind} {url}: {:?}",
                run.git
            );
        }
    }
}

#[test]
fn every_run_ends_with_a_summary_line_and_writes_a_result_file() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.commit("second");
    up.branch("feature");
    up.tag("v1");
    area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&result_file).expect("result file"))
            .expect("JSON")
    };
    let summary = |run: &Run| run.out.lines().last().unwrap_or_default().to_owned();

    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let last = summary(&run);
    assert!(
        last.starts_with(
            "lorry: summary: importer=git ok=yes refs_updated=3 refs_deleted=0 refs_preserved=0 bytes_received="
        ) && last.ends_with(&format!(
            " pushed=yes lfs_bytes_received=0 submodules=0 name={NAME}"
        )),
        "{last}"
    );
    let result = read();
    assert_eq!(result["version"], lc_api::JOB_RESULT_VERSION);
    let first = &result["specs"][0];
    assert_eq!(
        (first["name"].as_str(), first["ok"].as_bool()),
        (Some(NAME), Some(true))
    );
    let refs = first["refs"].as_array().expect("refs");
    assert_eq!(refs.len(), 3, "{first}");
    assert!(
        refs.iter()
            .all(|r| r["old"].is_null() && r["new"].is_string()),
        "{first}"
    );
    assert!(first["bytes_received"].as_u64().unwrap_or(0) > 0, "{first}");
    // Every ref, whole, for the webapp's ref ledger.
    let held: BTreeMap<String, String> =
        serde_json::from_value(first["held"].clone()).expect("held");
    assert_eq!(held, up.heads_and_tags(), "{first}");

    // Nothing new: nothing changed, nothing received, nothing pushed.
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(
        summary(&run).contains(
            " refs_updated=0 refs_deleted=0 refs_preserved=0 bytes_received=0 pushed=unchanged "
        ),
        "{}",
        summary(&run)
    );
    assert_eq!(read()["specs"][0]["refs"], serde_json::json!([]));
    // Already reported whole: an unchanged run sends no `held`.
    assert!(read()["specs"][0].get("held").is_none(), "{}", read());
    // A state record of an older lorry (no `held_reported`): the unchanged
    // run reports the refs whole once, then no more.
    let state_file = area
        .working_area()
        .join(lc_base::spec::working_dir_name(NAME))
        .join("lorry-state.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).expect("state")).expect("json");
    record
        .as_object_mut()
        .expect("object")
        .remove("held_reported");
    std::fs::write(&state_file, record.to_string()).expect("write state");
    let run = area.run(&[&file], &[&option]);
    assert!(summary(&run).contains(" pushed=unchanged "), "{}", run.out);
    assert_eq!(read()["specs"][0]["held"], serde_json::json!(held));
    area.run(&[&file], &[&option]);
    assert!(read()["specs"][0].get("held").is_none(), "{}", read());

    // A force-push and a deleted branch: both old tips preserved.
    let before = up.heads_and_tags();
    let rewritten = up.force_rewrite();
    up.delete_branch("feature");
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(
        summary(&run).contains(" refs_updated=1 refs_deleted=1 refs_preserved=2 "),
        "{}",
        summary(&run)
    );
    let spec_result = read()["specs"][0].clone();
    let preserved = spec_result["preserved"].as_array().expect("preserved");
    assert_eq!(preserved.len(), 2, "{spec_result}");
    for kept in preserved {
        let name = kept["name"].as_str().expect("name");
        assert_eq!(
            kept["oid"].as_str(),
            before.get(name).map(String::as_str),
            "{kept}"
        );
        assert!(
            kept["kept_as"]
                .as_str()
                .is_some_and(|k| k.starts_with("refs/lorry/preserved/"))
        );
    }
    assert!(
        spec_result["refs"]
            .as_array()
            .expect("refs")
            .iter()
            .any(|r| r["new"] == rewritten.as_str()),
        "{spec_result}"
    );
    let held: BTreeMap<String, String> =
        serde_json::from_value(spec_result["held"].clone()).expect("held");
    assert_eq!(held, up.heads_and_tags(), "{spec_result}");

    // A failed spec has a summary line too.
    let broken = area.lorry_file(
        "broken.lorry",
        &serde_json::json!({ "broken/one": { "type": "git", "url": "file:///nonexistent/repo" } }),
    );
    let run = area.run(&[&broken], &[&option]);
    assert_eq!(run.code, 1);
    assert!(
        summary(&run).starts_with("lorry: summary: importer=git ok=no refs_updated=0"),
        "{}",
        summary(&run)
    );
    assert!(read()["specs"][0]["error"].is_string());
}

/// Every file under `dir`, sorted.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
