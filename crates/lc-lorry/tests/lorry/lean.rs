//! The lean job path: which git commands a run needs, read from the git
//! trace (never from timings). A first run lists the downstream once and
//! trusts the push's report; a run that only adds refs or fast-forwards
//! them pushes against the last run's record without listing the
//! downstream; anything else (a rewrite, a deletion, a downstream changed
//! behind lorry's back) is still judged against the listed downstream and
//! preserved.

use serde_json::json;

use crate::common::*;

const NAME: &str = "delta/lean";

fn spec(url: &str) -> serde_json::Value {
    json!({ NAME: { "type": "git", "url": url } })
}

/// The traced commands that reached the downstream.
fn downstream_commands(area: &Area, run: &Run) -> Vec<String> {
    let down = area.downstream_base().display().to_string();
    run.git
        .iter()
        .filter(|l| l.contains(&down))
        .cloned()
        .collect()
}

fn count(lines: &[String], what: &str) -> usize {
    lines
        .iter()
        .filter(|l| l.split_whitespace().any(|w| w == what))
        .count()
}

fn result(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("result file")).expect("JSON")
}

/// The git commands each step of spec NAME's `lorry: timings:` line ran,
/// by step.
fn step_gits(line: &str) -> std::collections::BTreeMap<String, usize> {
    let steps = line
        .strip_prefix(&format!("lorry: timings: {NAME}: "))
        .and_then(|rest| rest.split_once("; total "))
        .map_or("", |(steps, _)| steps);
    steps
        .split(", ")
        .filter_map(|step| {
            let (name, rest) = step.split_once(' ')?;
            let gits = rest.split_once('(')?.1.split_once(' ')?.0.parse().ok()?;
            Some((name.to_owned(), gits))
        })
        .collect()
}

#[test]
fn first_run_lists_neither_side_and_pushes_with_absent_leases() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    up.branch("feature");
    up.tag("v1");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let run = area.run(&[&file], &["--timings", &option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    // No record yet: the fetch lists the upstream; the downstream is not
    // listed: every ref goes with a lease that says it must not be there,
    // and the push's report stands for the check afterwards. The mirror is
    // made without a git process.
    assert_eq!(count(&run.git, "ls-remote"), 0, "{:#?}", run.git);
    assert_eq!(count(&run.git, "init"), 0, "{:#?}", run.git);
    assert_eq!(count(&run.git, "for-each-ref"), 0, "{:#?}", run.git);
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(down_cmds.len(), 1, "{down_cmds:#?}");
    for name in ["refs/heads/feature", "refs/heads/main", "refs/tags/v1"] {
        assert!(
            down_cmds[0].contains(&format!("--force-with-lease={name}: ")),
            "{down_cmds:#?}"
        );
    }
    let spec = &result(&result_file)["specs"][0];
    assert_eq!(spec["ok"], true, "{spec}");
    assert_eq!(spec["preserved"], json!([]), "{spec}");
    assert_eq!(spec["refs"].as_array().map(Vec::len), Some(3), "{spec}");
    // --timings: one line with the steps and the git commands they ran;
    // the mirror's refs move under "result", not "pins".
    let line = run
        .out
        .lines()
        .find(|l| l.starts_with(&format!("lorry: timings: {NAME}: ")))
        .unwrap_or_else(|| panic!("no timings line: {}", run.out));
    let gits = step_gits(line);
    assert_eq!(gits.get("init"), Some(&0), "{line}");
    assert_eq!(gits.get("fetch"), Some(&1), "{line}");
    assert_eq!(gits.get("push"), Some(&1), "{line}");
    assert_eq!(gits.get("pins"), Some(&0), "{line}");
    // update-ref; the submodules are looked for in-process.
    assert_eq!(gits.get("result"), Some(&1), "{line}");
    assert_eq!(count(&run.git, "cat-file"), 0, "{:#?}", run.git);
    // What the fetch brought stays the one pack it came in, as a clone
    // keeps it: no loose objects for the push to pack again.
    let mirror = area.mirror(NAME);
    assert_eq!(lc_git::pack_count(&mirror).expect("packs"), 1);
    let loose: usize = std::fs::read_dir(mirror.join("objects"))
        .expect("objects")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().len() == 2)
        .map(|e| std::fs::read_dir(e.path()).map_or(0, Iterator::count))
        .sum();
    assert_eq!(loose, 0);
    let names: Vec<&String> = gits.keys().collect();
    assert!(
        ["refs", "rewrite-check"]
            .iter()
            .all(|s| names.iter().any(|n| n == s)),
        "{line}"
    );
    assert!(
        line.find(" pins ") < line.find(" result "),
        "steps in their order: {line}"
    );
    assert!(
        line.contains("; total ") && line.ends_with(&format!("({} git)", run.git.len())),
        "{line} vs {} commands",
        run.git.len()
    );
    // The summary lines stay last.
    assert!(
        run.out
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("lorry: summary: ")),
        "{}",
        run.out
    );

    // The first push counts as a listing: the next fast-forward is lean.
    let mut up = up;
    up.commit("second");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 0, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
}

#[test]
fn a_fast_forward_is_pushed_without_listing_the_downstream() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.tag("v1");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);

    let before = up.head();
    let after = up.commit("second");
    up.branch("new-branch");
    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 0, "{down_cmds:#?}");
    assert_eq!(count(&down_cmds, "push"), 1, "{down_cmds:#?}");
    assert!(!ran(&run, "merge-base"), "{:#?}", run.git);
    assert!(refs_under(&down, "refs/lorry/").is_empty());
    // The job result still says exactly what moved, and holds every ref.
    let spec = &result(&result_file)["specs"][0];
    assert_eq!(spec["ok"], true, "{spec}");
    assert_eq!(spec["pushed"], "yes", "{spec}");
    assert_eq!(spec["preserved"], json!([]), "{spec}");
    let moved: Vec<(String, serde_json::Value, serde_json::Value)> = spec["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["old"].clone(),
                r["new"].clone(),
            )
        })
        .collect();
    assert_eq!(
        moved,
        vec![
            ("refs/heads/main".into(), json!(before), json!(after)),
            ("refs/heads/new-branch".into(), json!(null), json!(after)),
        ]
    );
    let held: std::collections::BTreeMap<String, String> =
        serde_json::from_value(spec["held"].clone()).expect("held");
    assert_eq!(held, up.heads_and_tags());

    // Then a rewrite: the downstream is listed again and the old tip kept.
    let rewritten = up.force_rewrite();
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(refs(&down)["refs/heads/new-branch"], after);
    assert_eq!(refs(&down)["refs/heads/main"], rewritten);
    let preserved = refs_under(&down, "refs/lorry/preserved/");
    assert_eq!(
        preserved.values().collect::<Vec<_>>(),
        vec![&after],
        "{preserved:?}"
    );
}

#[test]
fn a_moved_tag_and_a_deleted_branch_are_still_judged_against_the_downstream() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.tag("v1");
    up.branch("doomed");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);
    let old_tag = refs(&down)["refs/tags/v1"].clone();
    let doomed = refs(&down)["refs/heads/doomed"].clone();

    // A tag moved forward is a rewrite all the same.
    up.commit("later");
    git(&up.dir, &["tag", "-f", "-a", "-m", "again", "v1"]);
    up.delete_branch("doomed");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let mut kept: Vec<String> = refs_under(&down, "refs/lorry/preserved/")
        .into_values()
        .collect();
    kept.sort();
    let mut want = vec![old_tag, doomed];
    want.sort();
    assert_eq!(kept, want);
}

#[test]
fn a_downstream_changed_behind_lorrys_back_fails_the_lease_and_is_preserved() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);

    // Someone pushes unrelated history onto the downstream's main...
    let stranger = stranger_pushes_main(area.path().join("other"), &down);
    // ...while upstream's main moves forward.
    up.commit("upstream goes on");
    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(
        run.out.contains("not as the last run left it"),
        "{}",
        run.out
    );
    // The push against the record was refused by its lease; the
    // downstream was then listed and the stranger's tip kept.
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "push"), 2, "{down_cmds:#?}");
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let preserved = refs_under(&down, "refs/lorry/preserved/");
    assert_eq!(preserved.values().collect::<Vec<_>>(), vec![&stranger]);
    let spec = &result(&result_file)["specs"][0];
    assert_eq!(spec["preserved"][0]["oid"], json!(stranger), "{spec}");
    assert_eq!(spec["refs"][0]["old"], json!(stranger), "{spec}");
}

/// The `lorry-state.json` of the spec.
fn state_file(area: &Area) -> std::path::PathBuf {
    area.mirror(NAME)
        .parent()
        .expect("spec dir")
        .join("lorry-state.json")
}

fn moved_refs(spec: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    spec["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["new"].clone(),
            )
        })
        .collect()
}

#[test]
fn refs_deleted_downstream_are_restored_when_the_check_is_due() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    up.branch("feature");
    up.tag("v1");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);
    let feature = refs(&down)["refs/heads/feature"].clone();
    let tag = refs(&down)["refs/tags/v1"].clone();

    // Behind lorry's back the downstream loses a branch and a tag (which
    // never move upstream); then upstream's main moves forward.
    git(&down, &["update-ref", "-d", "refs/heads/feature"]);
    git(&down, &["update-ref", "-d", "refs/tags/v1"]);
    let after = up.commit("second");
    let conf = area.path().join("lorry.conf");
    std::fs::write(&conf, "[config]\ndownstream-check-every = 0\n").expect("conf");
    let conf = format!("--config={}", conf.display());
    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let run = area.run(&[&file], &[&conf, &option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let spec = &result(&result_file)["specs"][0];
    assert_eq!(spec["ok"], true, "{spec}");
    assert_eq!(spec["pushed"], "yes", "{spec}");
    assert_eq!(
        moved_refs(spec),
        vec![
            ("refs/heads/feature".into(), json!(feature)),
            ("refs/heads/main".into(), json!(after)),
            ("refs/tags/v1".into(), json!(tag)),
        ],
        "{spec}"
    );
}

#[test]
fn a_downstream_recreated_empty_is_filled_again_when_the_check_is_due() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    up.branch("feature");
    up.tag("v1");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);

    // The downstream project is deleted and created again, empty (as the
    // webapp's prepare does after a host lost it); upstream adds a tag.
    std::fs::remove_dir_all(&down).expect("remove downstream");
    let down = area.downstream(NAME);
    up.tag("v2");
    let run = area.run(&[&file], &["--downstream-check-every=0"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert_eq!(heads_and_tags(&down).len(), 4);
}

#[test]
fn a_record_that_never_saw_the_downstream_listed_lists_it() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);

    // A record from before listings were recorded.
    let path = state_file(&area);
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("record")).expect("JSON");
    let fields = record.as_object_mut().expect("object");
    assert!(fields["downstream_listed"].is_u64(), "{fields:?}");
    fields.remove("downstream_listed");
    std::fs::write(&path, record.to_string()).expect("write record");

    up.commit("second");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());

    // Now recorded: the next fast-forward is lean again.
    up.commit("third");
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 0, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
}

#[test]
fn an_unchanged_upstream_repairs_the_downstream_when_the_check_is_due() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    up.branch("feature");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);
    let feature = refs(&down)["refs/heads/feature"].clone();

    // Nothing moves upstream; the downstream loses a branch and gets a
    // stranger's history on main.
    git(&down, &["update-ref", "-d", "refs/heads/feature"]);
    let stranger = stranger_pushes_main(area.path().join("other"), &down);

    // Within the check interval the run trusts its record: nothing is
    // fetched into or asked of the downstream.
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(
        downstream_commands(&area, &run).is_empty(),
        "{:#?}",
        run.git
    );

    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let run = area.run(&[&file], &["--downstream-check-every=0s", &option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let preserved = refs_under(&down, "refs/lorry/preserved/");
    assert_eq!(preserved.values().collect::<Vec<_>>(), vec![&stranger]);
    let spec = &result(&result_file)["specs"][0];
    assert_eq!(spec["ok"], true, "{spec}");
    assert_eq!(spec["pushed"], "yes", "{spec}");
    assert_eq!(spec["preserved"][0]["oid"], json!(stranger), "{spec}");
    assert_eq!(
        moved_refs(spec),
        vec![
            ("refs/heads/feature".into(), json!(feature)),
            ("refs/heads/main".into(), json!(up.head())),
        ],
        "{spec}"
    );

    // Repaired and listed: with the check not due, nothing to do.
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(
        downstream_commands(&area, &run).is_empty(),
        "{:#?}",
        run.git
    );
}

/// A first run whose downstream someone already filled: the "absent"
/// leases fail, the downstream is listed and judged as ever, and the
/// stranger's tip is kept.
#[test]
fn a_first_run_into_a_filled_downstream_fails_its_leases_and_preserves() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    up.tag("v1");
    let down = area.downstream(NAME);
    let stranger = stranger_pushes_main(area.path().join("other"), &down);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(
        run.out
            .contains("already holds some of the refs of this first run"),
        "{}",
        run.out
    );
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "push"), 2, "{down_cmds:#?}");
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let preserved = refs_under(&down, "refs/lorry/preserved/");
    assert_eq!(preserved.values().collect::<Vec<_>>(), vec![&stranger]);
    let spec = &result(&result_file)["specs"][0];
    assert_eq!(spec["preserved"][0]["oid"], json!(stranger), "{spec}");
    let main = spec["refs"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["name"] == "refs/heads/main"))
        .unwrap_or_else(|| panic!("main moved: {spec}"));
    assert_eq!(main["old"], json!(stranger), "{spec}");
    assert_eq!(main["new"], json!(up.head()), "{spec}");
}

/// With `on-rewrite: refuse`, the same first run fails as a listing would
/// have made it fail, and leaves the stranger's ref where it was.
#[test]
fn a_first_run_into_a_filled_downstream_refuses_as_a_listing_would() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    up.branch("side");
    let down = area.downstream(NAME);
    let stranger = stranger_pushes_main(area.path().join("other"), &down);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: { "type": "git", "url": up.url(), "on-rewrite": "refuse" } }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert!(
        run.err.contains(
            "on-rewrite is refuse and upstream rewrote or deleted refs/heads/main; left as it was"
        ),
        "{}",
        run.err
    );
    assert_eq!(refs(&down)["refs/heads/main"], stranger);
    assert_eq!(refs(&down)["refs/heads/side"], up.head());
    assert!(refs_under(&down, "refs/lorry/").is_empty());
}

/// A working area lost (or a lorry that moved to another minion): its
/// first run finds the downstream holding every ref already where it must
/// go (git's push calls them up to date before it looks at a lease), and
/// reports that nothing moved.
#[test]
fn a_first_run_into_a_downstream_that_is_already_a_copy_pushes_nothing() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    up.branch("feature");
    up.tag("v1");
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    assert_eq!(area.run(&[&file], &[]).code, 0);
    std::fs::remove_dir_all(area.working_area()).expect("lose the working area");
    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 0, "{down_cmds:#?}");
    assert_eq!(count(&down_cmds, "push"), 1, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert!(refs_under(&down, "refs/lorry/").is_empty());
    let spec = &result(&result_file)["specs"][0];
    assert_eq!(spec["ok"], true, "{spec}");
    assert_eq!(spec["pushed"], "unchanged", "{spec}");
    assert_eq!(spec["preserved"], json!([]), "{spec}");
    assert_eq!(spec["refs"], json!([]), "{spec}");
    let held: std::collections::BTreeMap<String, String> =
        serde_json::from_value(spec["held"].clone()).expect("held");
    assert_eq!(held, up.heads_and_tags());

    // An older copy: main is behind downstream, so its lease fails; the
    // downstream is listed and main moves forward, nothing preserved.
    std::fs::remove_dir_all(area.working_area()).expect("lose it again");
    let mut up = up;
    let after = up.commit("second");
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    assert!(refs_under(&down, "refs/lorry/").is_empty());
    let spec = &result(&result_file)["specs"][0];
    assert_eq!(spec["pushed"], "yes", "{spec}");
    assert_eq!(
        moved_refs(spec),
        vec![("refs/heads/main".into(), json!(after))]
    );
}

/// What a first run does not name downstream, it leaves as it is (no
/// history is lost), until the downstream check lists and judges it.
#[test]
fn a_first_run_leaves_other_downstream_refs_to_the_check() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    let mut other = Upstream::new(area.path().join("other"));
    let legacy = other.commit("legacy work");
    git(
        &other.dir,
        &[
            "push",
            "-q",
            &format!("file://{}", down.display()),
            "main:refs/heads/legacy",
        ],
    );
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(count(&downstream_commands(&area, &run), "ls-remote"), 0);
    assert_eq!(refs(&down)["refs/heads/legacy"], legacy);
    assert_eq!(refs(&down)["refs/heads/main"], up.head());

    let run = area.run(&[&file], &["--downstream-check-every=0"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let preserved = refs_under(&down, "refs/lorry/preserved/");
    assert_eq!(preserved.values().collect::<Vec<_>>(), vec![&legacy]);
}

/// `--downstream-check-every=0` lists the downstream on every run, the
/// first one too.
#[test]
fn a_first_run_with_the_check_every_run_lists_the_downstream() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let run = area.run(&[&file], &["--downstream-check-every=0"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let down_cmds = downstream_commands(&area, &run);
    assert_eq!(count(&down_cmds, "ls-remote"), 1, "{down_cmds:#?}");
    assert_eq!(count(&down_cmds, "push"), 1, "{down_cmds:#?}");
    assert!(
        !down_cmds[1].contains("--force-with-lease"),
        "{down_cmds:#?}"
    );
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
}

/// Hostile review: git matches a `--force-with-lease=NAME:...` against a
/// pushed ref by DWIM (`refname_match`: NAME, refs/NAME, refs/heads/NAME,
/// ...), the first lease given that matches wins. The lease of
/// `refs/heads/main` (sorted first) therefore also governs the pushed ref
/// `refs/heads/refs/heads/main`, whose own lease is never read. An
/// upstream that creates `refs/heads/refs/heads/main` while `main` moves
/// makes every push fail as stale: the lean push, the listed retry, and
/// every run after it.
#[test]
fn a_ref_named_like_another_refs_full_name_does_not_borrow_its_lease() {
    let area = Area::new();
    let mut up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    let file = area.lorry_file("p.lorry", &spec(&up.url()));
    let first = area.run(&[&file], &[]);
    assert_eq!(first.code, 0, "{}", first.all_output());
    up.commit("forward");
    git(
        &up.dir,
        &["update-ref", "refs/heads/refs/heads/main", "HEAD"],
    );
    for attempt in 0..2 {
        let run = area.run(&[&file], &[]);
        assert_eq!(run.code, 0, "attempt {attempt}: {}", run.all_output());
        assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    }
}
