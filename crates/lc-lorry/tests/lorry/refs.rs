//! Ref filters: negative refspecs, `include`/`exclude` globs and
//! `prune-excluded`, against a forge-like upstream.

use std::path::Path;

use serde_json::json;

use crate::common::*;

const NAME: &str = "forge/project";

/// Adds `count` refs `refs/pull/<n>/head` to `repo`, all at `oid`, in one
/// `update-ref --stdin` transaction.
fn add_pull_refs(repo: &Path, count: usize, oid: &str) {
    let mut stream = String::new();
    for i in 0..count {
        stream.push_str(&format!("create refs/pull/{i}/head {oid}\n"));
    }
    let mut child = git_cmd(repo)
        .args(["update-ref", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("update-ref");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stream.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success());
}

/// A commit only a pull request holds (not on any branch).
fn pull_request_commit(up: &Upstream) -> String {
    let tree = git(&up.dir, &["rev-parse", "HEAD^{tree}"]);
    git(
        &up.dir,
        &["commit-tree", "-p", "HEAD", "-m", "pull request", &tree],
    )
}

fn has_object(repo: &Path, oid: &str) -> bool {
    git_cmd(repo)
        .args(["cat-file", "-e", oid])
        .status()
        .expect("cat-file")
        .success()
}

#[test]
fn negative_refspecs_leave_out_ten_thousand_pull_refs_and_filter_changes_apply_next_run() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.branch("feature");
    up.tag("v1.0");
    let pr = pull_request_commit(&up);
    add_pull_refs(&up.dir, 10_000, &pr);
    git(
        &up.dir,
        &["update-ref", "refs/merge-requests/1/head", &up.head()],
    );
    let down = area.downstream(NAME);
    let mut spec = json!({ NAME: {
        "type": "git",
        "url": up.url(),
        "refspecs": ["refs/*:refs/*", "^refs/pull/*"],
    }});
    let file = area.lorry_file("p.lorry", &spec);

    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let wanted: std::collections::BTreeMap<String, String> = refs(&up.dir)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("refs/pull/"))
        .collect();
    assert_eq!(wanted.len(), 4, "{wanted:?}");
    assert_eq!(refs(&down), wanted);
    // Excluded at the fetch: the pull request's commit never came.
    assert!(!has_object(&area.mirror(NAME), &pr));
    assert!(!has_object(&down, &pr));
    assert!(
        refs_under(&area.mirror(NAME), "refs/lorry/staging/pull/").is_empty(),
        "pull refs were fetched"
    );

    // Unchanged: nothing fetched.
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(!ran(&run, "fetch"), "{:?}", run.git);

    // A new exclusion in the spec: taken at the next run although the
    // upstream is unchanged; the newly excluded ref stays downstream.
    spec[NAME]["exclude"] = json!(["refs/merge-requests/*"]);
    let file = area.lorry_file("p.lorry", &spec);
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(ran(&run, "ls-remote"), "{:?}", run.git);
    assert_eq!(refs(&down), wanted, "an excluded ref is not deleted");
    // New refs under the excluded namespace are not mirrored.
    git(&up.dir, &["update-ref", "refs/merge-requests/2/head", &pr]);
    up.commit("more");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(down_ref(&down, "refs/heads/main"), Some(up.head()));
    assert_eq!(down_ref(&down, "refs/merge-requests/2/head"), None);
    assert!(down_ref(&down, "refs/merge-requests/1/head").is_some());

    // prune-excluded: the excluded ref goes, its tip preserved.
    let mr1 = wanted["refs/merge-requests/1/head"].clone();
    spec[NAME]["prune-excluded"] = json!(true);
    let file = area.lorry_file("p.lorry", &spec);
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(down_ref(&down, "refs/merge-requests/1/head"), None);
    let preserved = refs_under(&down, "refs/lorry/preserved/");
    assert_eq!(preserved.len(), 1, "{preserved:?}");
    let (name, oid) = preserved.iter().next().expect("one");
    assert!(name.ends_with("/refs/merge-requests/1/head"), "{name}");
    assert_eq!(oid, &mr1);
    assert!(refs_under(&down, "refs/pull/").is_empty());
    assert_eq!(
        down_ref(&down, "refs/tags/v1.0"),
        up.heads_and_tags().get("refs/tags/v1.0").cloned()
    );
}

fn down_ref(repo: &Path, name: &str) -> Option<String> {
    refs(repo).remove(name)
}

#[test]
fn include_names_the_only_refs_mirrored_and_deletions_still_follow() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.branch("release/1");
    up.branch("release/2-wip");
    up.tag("v1");
    up.tag("nightly");
    up.checkout("release/1");
    up.commit("on release 1");
    up.checkout("main");
    let main_only = up.commit("main only");
    let down = area.downstream(NAME);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: {
            "type": "git",
            "url": up.url(),
            "include": ["refs/heads/release/*", "refs/tags/v*"],
            "exclude": ["refs/heads/*-wip"],
        }}),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let names: Vec<String> = refs(&down).into_keys().collect();
    assert_eq!(names, ["refs/heads/release/1", "refs/tags/v1"]);
    assert!(!has_object(&area.mirror(NAME), &main_only));

    // A wanted ref deleted upstream is deleted downstream (preserved), even
    // though its staging ref from the last fetch is still there.
    up.delete_branch("release/1");
    up.branch("release/3");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let names: Vec<String> = refs_under(&down, "refs/heads/").into_keys().collect();
    assert_eq!(names, ["refs/heads/release/3"]);
    assert_eq!(refs_under(&down, "refs/lorry/preserved/").len(), 1);
}

#[test]
fn bad_filters_fail_the_spec_by_name() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    area.downstream(NAME);
    for (key, value, says) in [
        ("refspecs", json!(["^+refs/pull/*"]), "negative refspec"),
        (
            "refspecs",
            json!(["^refs/pull/*:refs/x/*"]),
            "negative refspec",
        ),
        ("exclude", json!(["pull/*"]), "exclude glob \"pull/*\""),
        ("include", json!(["refs/heads/a b"]), "include glob"),
    ] {
        let file = area.lorry_file(
            "p.lorry",
            &json!({ NAME: { "type": "git", "url": up.url(), key: value }}),
        );
        let run = area.run(&[&file], &[]);
        assert_eq!(run.code, 1, "{}", run.all_output());
        assert!(
            run.err.contains(NAME) && run.err.contains(says),
            "{}",
            run.err
        );
        assert!(!ran(&run, "fetch"), "{:?}", run.git);
    }
}

#[test]
fn submodule_urls_of_mirrored_branches_are_reported_not_fetched() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    let some_commit = up.head();
    std::fs::write(
        up.dir.join(".gitmodules"),
        "[submodule \"lib\"]\n\tpath = lib\n\turl = https://example.org/lib.git\n\
         [submodule \"sib\"]\n\tpath = sib\n\turl = ../sibling.git\n",
    )
    .expect("write");
    let gitlink = |path: &str| format!("160000,{some_commit},{path}");
    git(
        &up.dir,
        &["update-index", "--add", "--cacheinfo", &gitlink("lib")],
    );
    git(
        &up.dir,
        &["update-index", "--add", "--cacheinfo", &gitlink("sib")],
    );
    git(&up.dir, &["add", ".gitmodules"]);
    up.commit("submodules");
    up.branch("other");
    up.checkout("other");
    git(&up.dir, &["update-index", "--force-remove", "lib", "sib"]);
    std::fs::write(
        up.dir.join(".gitmodules"),
        "[submodule \"x\"]\n\tpath = x\n\turl = git://elsewhere.example/x.git\n",
    )
    .expect("write");
    git(
        &up.dir,
        &["update-index", "--add", "--cacheinfo", &gitlink("x")],
    );
    git(&up.dir, &["add", ".gitmodules"]);
    up.commit("other submodule");
    up.checkout("main");
    let down = area.downstream(NAME);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: { "type": "git", "url": up.url() }}),
    );

    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let result = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&result_file).expect("result")).expect("json")
    };
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let sibling = format!("file://{}/sibling.git", area.path().display());
    let line = run
        .out
        .lines()
        .find(|l| l.contains("submodules"))
        .unwrap_or_else(|| panic!("no submodule line: {}", run.out));
    for url in [
        "https://example.org/lib.git",
        sibling.as_str(),
        "git://elsewhere.example/x.git",
    ] {
        assert!(line.contains(url), "{url} not in {line}");
    }
    assert!(
        !run.git.iter().any(|l| l.contains("example")),
        "a submodule was contacted: {:?}",
        run.git
    );
    // In the job result too, sorted, and counted in the summary line.
    let mut expected = vec![
        "https://example.org/lib.git".to_owned(),
        sibling.clone(),
        "git://elsewhere.example/x.git".to_owned(),
    ];
    expected.sort();
    assert_eq!(result()["specs"][0]["submodules"], json!(expected));
    assert!(run.out.contains(" submodules=3 "), "{}", run.out);
    // Reported again by a run with nothing new, from the record of the
    // last run: no git command reads them again.
    let run = area.run(&[&file], &[&option]);
    assert!(
        run.out.contains("https://example.org/lib.git"),
        "{}",
        run.out
    );
    assert_eq!(result()["specs"][0]["submodules"], json!(expected));
    assert_eq!(run.git.len(), 1, "only the upstream listing: {:?}", run.git);
    // A record without them (an older lorry's) gets them on the next
    // unchanged run, and keeps them.
    let record = area
        .working_area()
        .join(lc_base::spec::working_dir_name(NAME))
        .join("lorry-state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).expect("record")).expect("json");
    state.as_object_mut().expect("object").remove("submodules");
    std::fs::write(&record, state.to_string()).expect("write");
    for reads in [true, false] {
        let run = area.run(&[&file], &[&option]);
        assert_eq!(result()["specs"][0]["submodules"], json!(expected));
        let blob_reads = run
            .git
            .iter()
            .filter(|l| l.contains("config --blob"))
            .count();
        assert_eq!(blob_reads > 0, reads, "{:?}", run.git);
    }
}
