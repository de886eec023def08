//! Provenance end to end: the real webapp, minion and `lorry` against
//! upstreams served by `git http-backend`, into the webapp's local
//! downstream. The ref ledger follows a first mirror, a new commit, a
//! force-push and a deleted branch; the lorry page names the submodules.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::http_backend::serve_http;
use common::{READY_TIMEOUT, Webapp, git, wait_for};
use serde_json::Value;

/// The ended jobs of `path`, oldest first.
fn ended_jobs(webapp: &Webapp, path: &str) -> Vec<Value> {
    let ids: Vec<i64> =
        serde_json::from_value(webapp.get_ok("/1.0/list-jobs")["job_ids"].clone()).expect("ids");
    let mut jobs: Vec<Value> = ids
        .into_iter()
        .map(|id| webapp.get_ok(&format!("/1.0/job/{id}")))
        .filter(|job| job["path"] == path && job["exit"] != "no")
        .collect();
    jobs.sort_by_key(|job| job["job_id"].as_i64());
    jobs
}

/// Waits for the `n`th ended job of `path` and answers it; it must have succeeded.
fn nth_job(webapp: &Webapp, path: &str, n: usize) -> Value {
    let job = wait_for(&format!("job {n} of {path}"), READY_TIMEOUT, || {
        ended_jobs(webapp, path).into_iter().nth(n - 1)
    });
    assert_eq!(job["exit"], "0", "{job}");
    job
}

/// `repo`'s refs under `prefixes`, as the ledger's `name → oid`.
fn refs_of(repo: &Path, prefixes: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["for-each-ref", "--format=%(refname) %(objectname)"];
    args.extend(prefixes);
    git(repo, &args)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, o)| (n.to_owned(), o.to_owned()))
        .collect()
}

fn ledger_tips(answer: &Value) -> Vec<(String, String)> {
    answer["refs"]
        .as_array()
        .expect("refs")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["oid"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn commit(clone: &Path, file: &str) {
    std::fs::write(clone.join(file), file).expect("write");
    git(clone, &["add", "."]);
    git(clone, &["commit", "-q", "-m", file]);
}

/// Upstreams `proj` (branches main, topic, gone, tag v1; `.gitmodules`
/// naming `../sib.git` and a repository no lorry mirrors) and `sib`, under
/// `dir/upstreams`, with working clones under `dir/work`.
fn upstreams(dir: &Path) -> PathBuf {
    let upstreams = dir.join("upstreams");
    for name in ["proj", "sib"] {
        let bare = upstreams.join(format!("{name}.git"));
        std::fs::create_dir_all(&bare).expect("mkdir");
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        let clone = dir.join("work").join(name);
        std::fs::create_dir_all(dir.join("work")).expect("mkdir");
        git(
            dir,
            &[
                "clone",
                "-q",
                &bare.display().to_string(),
                &clone.display().to_string(),
            ],
        );
        commit(&clone, "README");
        if name == "proj" {
            std::fs::write(
                clone.join(".gitmodules"),
                "[submodule \"sib\"]\n\tpath = sib\n\turl = ../sib.git\n\
                 [submodule \"far\"]\n\tpath = far\n\turl = https://far.example/far.git\n",
            )
            .expect("gitmodules");
            let head = git(&clone, &["rev-parse", "HEAD"]);
            for path in ["sib", "far"] {
                git(
                    &clone,
                    &[
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        &format!("160000,{},{path}", head.trim()),
                    ],
                );
            }
            commit(&clone, "modules");
            for branch in ["topic", "gone"] {
                git(&clone, &["checkout", "-q", "-b", branch]);
                commit(&clone, branch);
            }
            git(&clone, &["checkout", "-q", "main"]);
            git(&clone, &["tag", "-a", "-m", "v1", "v1"]);
            git(
                &clone,
                &["push", "-q", "origin", "main", "topic", "gone", "v1"],
            );
        } else {
            git(&clone, &["push", "-q", "origin", "main"]);
        }
    }
    upstreams
}

#[test]
fn the_ref_ledger_follows_real_mirrors_through_moves_rewrites_and_deletions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstreams = upstreams(dir.path());
    let (_http, port) = serve_http(&upstreams, dir.path());
    let webapp = Webapp::init(dir.path()).start();
    let t0 = 1_800_000_000;
    webapp.pretend_time(t0);
    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(confgit.join("lorries")).expect("mkdir");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "prov", "interval": "1h", "lorry-timeout": "10m",
             "globs": ["lorries/*.lorry"]}]"#,
    )
    .expect("conf");
    let url = |name: &str| format!("http://127.0.0.1:{port}/{name}.git");
    std::fs::write(
        confgit.join("lorries/p.lorry"),
        serde_json::json!({
            "proj": {"type": "git", "url": url("proj")},
            "sib": {"type": "git", "url": url("sib")},
        })
        .to_string(),
    )
    .expect("lorry file");
    webapp.post_ok("/1.0/read-configuration", &[]);
    let _minion = common::RealMinion::start(&webapp, dir.path());

    let first = nth_job(&webapp, "prov/proj", 1);
    assert_eq!(
        first["result"]["specs"][0]["submodules"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{first}"
    );
    nth_job(&webapp, "prov/sib", 1);
    let down = dir.path().join("downstream/prov/proj.git");
    let before = refs_of(&down, &["refs/heads", "refs/tags"]);
    assert_eq!(before, refs_of(&upstreams.join("proj.git"), &[]));
    let now = webapp.get_ok("/1.0/lorry-refs/prov/proj");
    assert_eq!(now["complete"], true, "{now}");
    assert_eq!(ledger_tips(&now), before, "{now}");

    // The page names both submodules: one mirrored by prov/sib, one not.
    let page = webapp.get("/1.0/lorry-html/prov/proj");
    let html = page.text.clone();
    assert!(
        html.contains(&format!(
            "<code>{}</code> mirrored by <a href=\"/1.0/lorry-html/prov/sib\">prov/sib</a>",
            url("sib")
        )),
        "{html}"
    );
    assert!(
        html.contains("<code>https://far.example/far.git</code> <span class=\"badge failed\">not mirrored</span>"),
        "{html}"
    );

    // Upstream moves on: a new commit, a force-push, a deleted branch.
    let clone = dir.path().join("work/proj");
    commit(&clone, "new");
    git(&clone, &["checkout", "-q", "-B", "topic", "main~1"]);
    commit(&clone, "rewritten");
    git(
        &clone,
        &["push", "-q", "--force", "origin", "main", "topic", ":gone"],
    );
    let t1 = t0 + 3601;
    webapp.pretend_time(t1);
    nth_job(&webapp, "prov/proj", 2);
    let after = refs_of(&down, &["refs/heads", "refs/tags"]);
    assert_eq!(after, refs_of(&upstreams.join("proj.git"), &[]));
    assert_ne!(after, before);

    // The refs as they were, and as they are.
    let then = webapp.get_ok(&format!("/1.0/lorry-refs/prov/proj?at={t0}"));
    assert_eq!(ledger_tips(&then), before, "{then}");
    let then = webapp.get_ok(&format!("/1.0/lorry-refs/prov/proj?at={}", t1 - 1));
    assert_eq!(ledger_tips(&then), before, "{then}");
    let now = webapp.get_ok(&format!("/1.0/lorry-refs/prov/proj?at={t1}"));
    assert_eq!(ledger_tips(&now), after, "{now}");
    assert!(
        ledger_tips(&webapp.get_ok(&format!("/1.0/lorry-refs/prov/proj?at={}", t0 - 1))).is_empty()
    );

    // The history, newest first, with the rewrite and deletion preserved
    // under the names the downstream has.
    let history = webapp.get_ok("/1.0/lorry-history/prov/proj");
    let changes = history["changes"].as_array().expect("changes");
    let at_t1: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| c["time"] == t1)
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["how"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        at_t1,
        [
            ("refs/heads/gone", "deleted"),
            ("refs/heads/main", "moved"),
            ("refs/heads/topic", "rewritten"),
        ],
        "{history}"
    );
    let preserved = refs_of(&down, &["refs/lorry/preserved"]);
    for change in changes
        .iter()
        .filter(|c| c["time"] == t1 && c["how"] != "moved")
    {
        let kept = change["kept_as"].as_str().expect("kept_as");
        assert!(
            preserved
                .iter()
                .any(|(n, o)| n == kept && change["old"] == o.as_str()),
            "{change} not in {preserved:?}"
        );
    }
    assert_eq!(
        changes.iter().filter(|c| c["time"] == t0).count(),
        4,
        "{history}"
    );
    let page = webapp.get("/1.0/lorry-html/prov/proj").text;
    assert!(
        page.contains("<span class=\"badge failed\">rewritten</span>"),
        "{page}"
    );

    // An unchanged run adds nothing to the ledger.
    webapp.pretend_time(t1 + 3601);
    nth_job(&webapp, "prov/proj", 3);
    let again = webapp.get_ok("/1.0/lorry-history/prov/proj");
    assert_eq!(again["changes"], history["changes"]);
}

/// Snapshot `name` as `GET /1.0/snapshots` lists it.
fn snapshot_info(webapp: &Webapp, name: &str) -> Value {
    let list = webapp.get_ok("/1.0/snapshots");
    list["snapshots"]
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no snapshot {name} in {list}"))
}

/// The files of commit `oid` in `repo` (it fails when the commit or a
/// part of its tree is missing).
fn tree_of(repo: &Path, oid: &str) -> String {
    git(repo, &["ls-tree", "-r", "--full-tree", oid])
}

/// Snapshots end to end: a lorry that preserves rewrites and one that
/// follows them; a snapshot before upstream rewrites and deletes; pins
/// only where the rewrite was followed; `git gc --prune=now` downstream;
/// every commit of the snapshot still there with its tree; diff; delete
/// removes the pins; an unchanged repository gains no ref per snapshot.
#[test]
fn snapshots_keep_every_named_commit_through_rewrites_and_gc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstreams = upstreams(dir.path());
    // A second upstream like proj, for the lorry that follows rewrites.
    let work = dir.path().join("work");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &upstreams.join("proj.git").display().to_string(),
            &upstreams.join("fol.git").display().to_string(),
        ],
    );
    git(
        &work,
        &[
            "clone",
            "-q",
            &upstreams.join("fol.git").display().to_string(),
            "fol",
        ],
    );
    git(
        &work.join("fol"),
        &["fetch", "-q", "origin", "topic:topic", "gone:gone"],
    );
    let (_http, port) = serve_http(&upstreams, dir.path());
    let webapp = Webapp::init(dir.path()).start();
    let t0 = 1_800_000_000;
    webapp.pretend_time(t0);
    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(confgit.join("lorries")).expect("mkdir");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "s", "interval": "1h", "lorry-timeout": "10m",
             "globs": ["lorries/*.lorry"]}]"#,
    )
    .expect("conf");
    let url = |name: &str| format!("http://127.0.0.1:{port}/{name}.git");
    let evil = git(&upstreams.join("fol.git"), &["rev-parse", "main~1"]);
    let evil = evil.trim();
    std::fs::write(
        confgit.join("lorries/s.lorry"),
        serde_json::json!({
            "proj": {"type": "git", "url": url("proj")},
            "fol": {"type": "git", "url": url("fol"), "on-rewrite": "follow",
                    // A CONFGIT cannot ask for pins: the webapp drops this
                    // (a commit fol has: lorry would answer for it if asked).
                    "snapshot-pins": {"refs/lorry/snapshots/evil/refs/heads/x": evil}},
        })
        .to_string(),
    )
    .expect("lorry file");
    webapp.post_ok("/1.0/read-configuration", &[]);
    let _minion = common::RealMinion::start(&webapp, dir.path());
    nth_job(&webapp, "s/proj", 1);
    let first_fol = nth_job(&webapp, "s/fol", 1);
    let down = |name: &str| dir.path().join(format!("downstream/s/{name}.git"));
    assert!(refs_of(&down("fol"), &["refs/lorry/snapshots"]).is_empty());
    // lorry was not asked about the CONFGIT's pin at all.
    assert!(
        first_fol["result"]["specs"][0].get("pins").is_none(),
        "{first_fol}"
    );

    // Snapshot rel1, and one with the default name.
    let rel1 = webapp.post_ok("/1.0/snapshots", &[("name", "rel1")]);
    assert_eq!(
        (rel1["lorries"].clone(), rel1["taken"].clone()),
        (2.into(), t0.into()),
        "{rel1}"
    );
    let stamp = webapp.post_ok("/1.0/snapshots", &[("prefix", "s/f")]);
    assert_eq!(stamp["name"], "20270115T080000Z", "{stamp}");
    assert_eq!(stamp["lorries"], 1);
    let again = webapp.post("/1.0/snapshots", &[("name", "rel1")]);
    assert_eq!(again.status, 409, "{again:?}");
    let bad = webapp.post("/1.0/snapshots", &[("name", "../x")]);
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(
        bad.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("snapshot name"))
    );
    let manifest = webapp.get_ok("/1.0/snapshots/rel1");
    let before: std::collections::BTreeMap<String, Vec<(String, String)>> = ["proj", "fol"]
        .iter()
        .map(|n| {
            (
                format!("s/{n}"),
                refs_of(&down(n), &["refs/heads", "refs/tags"]),
            )
        })
        .collect();
    for (path, refs) in &before {
        let listed: Vec<(String, String)> = manifest["lorries"][path]
            .as_object()
            .expect("lorry")
            .iter()
            .map(|(n, o)| (n.clone(), o.as_str().unwrap_or_default().to_owned()))
            .collect();
        assert_eq!(&listed, refs, "{path}: {manifest}");
    }
    let trees: Vec<(String, String)> = before
        .iter()
        .flat_map(|(path, refs)| refs.iter().map(move |(_, oid)| (path.clone(), oid.clone())))
        .map(|(path, oid)| {
            let name = path.trim_start_matches("s/").to_owned();
            let tree = tree_of(&down(&name), &oid);
            (oid, tree)
        })
        .collect();

    // Upstream of both: a new commit on main, topic force-pushed, gone deleted.
    for name in ["proj", "fol"] {
        let clone = work.join(name);
        git(&clone, &["checkout", "-q", "main"]);
        commit(&clone, "later");
        git(&clone, &["checkout", "-q", "-B", "topic", "main~1"]);
        commit(&clone, "rewritten");
        git(
            &clone,
            &["push", "-q", "--force", "origin", "main", "topic", ":gone"],
        );
    }
    webapp.pretend_time(t0 + 3601);
    nth_job(&webapp, "s/proj", 2);
    nth_job(&webapp, "s/fol", 2);
    // fol followed: its old topic and gone tips need pins; main moved in
    // both (a fast-forward: their jobs will find it reachable); proj
    // preserved topic and gone: nothing asked for them.
    let rel1_info = snapshot_info(&webapp, "rel1");
    let info = &rel1_info;
    assert_eq!(rel1_info["pins"]["pending"], 4, "{info}");
    assert_eq!(rel1_info["pinned_lorries"], 0, "{info}");

    webapp.pretend_time(t0 + 2 * 3601);
    let third = nth_job(&webapp, "s/fol", 3);
    nth_job(&webapp, "s/proj", 3);
    let pins = refs_of(&down("fol"), &["refs/lorry/snapshots"]);
    let pin_names: Vec<&str> = pins.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        pin_names,
        [
            "refs/lorry/snapshots/20270115T080000Z/refs/heads/gone",
            "refs/lorry/snapshots/20270115T080000Z/refs/heads/topic",
            "refs/lorry/snapshots/rel1/refs/heads/gone",
            "refs/lorry/snapshots/rel1/refs/heads/topic",
        ],
        "{third}"
    );
    assert!(refs_of(&down("proj"), &["refs/lorry/snapshots"]).is_empty());
    let outcomes: Vec<String> = third["result"]["specs"][0]["pins"]
        .as_array()
        .expect("pins")
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap_or(""),
                p["outcome"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        outcomes.contains(&"refs/lorry/snapshots/rel1/refs/heads/main reachable".to_owned()),
        "{outcomes:?}"
    );
    let rel1_info = snapshot_info(&webapp, "rel1");
    assert_eq!(
        (
            rel1_info["pins"]["pending"].clone(),
            rel1_info["pins"]["pushed"].clone(),
            rel1_info["pins"]["reachable"].clone()
        ),
        (0.into(), 2.into(), 2.into()),
        "{rel1_info}"
    );
    assert_eq!(rel1_info["pinned_lorries"], 2);

    // Downstream garbage-collected: every commit of rel1 is still there,
    // with the tree it had.
    for name in ["proj", "fol"] {
        git(&down(name), &["reflog", "expire", "--expire=now", "--all"]);
        git(&down(name), &["gc", "-q", "--prune=now"]);
    }
    for (oid, tree) in &trees {
        let repo = if before["s/fol"].iter().any(|(_, o)| o == oid) {
            down("fol")
        } else {
            down("proj")
        };
        assert_eq!(&tree_of(&repo, oid), tree, "{oid}");
    }
    // And a clone of fol checks each of them out.
    let clone = dir.path().join("checkout");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--mirror",
            &down("fol").display().to_string(),
            &clone.display().to_string(),
        ],
    );
    for (_, oid) in &before["s/fol"] {
        git(&clone, &["cat-file", "-e", &format!("{oid}^{{tree}}")]);
    }

    // Exported: the text file checks out with git alone, every tree as it
    // was; the repo manifest is valid against the manifest format's DTD.
    let text = webapp.get("/1.0/snapshots/rel1?format=text");
    assert_eq!(text.status, 200, "{text:?}");
    assert!(text.content_type.starts_with("text/plain"), "{text:?}");
    let lines: Vec<&str> = text.text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", text.text);
    for line in lines {
        let [name, commit, url] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("not 'name commit url': {line}");
        };
        assert_eq!(
            manifest["lorries"][name]["refs/heads/main"].as_str(),
            Some(commit),
            "{line}"
        );
        // As README's walk-through does it.
        let out = dir.path().join("export").join(name);
        std::fs::create_dir_all(&out).expect("mkdir");
        git(&out, &["init", "-q"]);
        git(&out, &["fetch", "-q", url, "+refs/*:refs/mirror/*"]);
        git(&out, &["checkout", "-q", commit]);
        let tree = trees
            .iter()
            .find(|(oid, _)| oid == commit)
            .map(|(_, t)| t.clone())
            .expect("a commit of the snapshot");
        assert_eq!(
            git(&out, &["ls-tree", "-r", "--full-tree", "HEAD"]),
            tree,
            "{name}"
        );
        assert!(
            git(&out, &["status", "--porcelain"]).trim().is_empty(),
            "{name}"
        );
    }
    let xml = webapp.get("/1.0/snapshots/rel1?format=repo");
    assert_eq!(xml.status, 200, "{xml:?}");
    assert!(xml.content_type.starts_with("application/xml"), "{xml:?}");
    let file = dir.path().join("rel1.xml");
    std::fs::write(&file, &xml.text).expect("write xml");
    let dtd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-manifest.dtd");
    let valid = Command::new("xmllint")
        .args(["--noout", "--dtdvalid"])
        .arg(&dtd)
        .arg(&file)
        .output()
        .expect("xmllint (Debian package libxml2-utils)");
    assert!(
        valid.status.success(),
        "{}\n{}",
        xml.text,
        common::all_output(&valid)
    );
    for path in ["s/proj", "s/fol"] {
        let main = manifest["lorries"][path]["refs/heads/main"]
            .as_str()
            .expect("main");
        assert!(
            xml.text.contains(&format!(
                "<project name=\"{path}.git\" path=\"{path}\" revision=\"{main}\" upstream=\"refs/heads/main\"/>"
            )),
            "{}",
            xml.text
        );
    }
    assert!(xml.text.contains(&format!(
        "<remote name=\"lorry\" fetch=\"file://{}\"/>",
        dir.path().join("downstream").display()
    )));
    assert_eq!(webapp.get("/1.0/snapshots/rel1?format=zip").status, 400);

    // rel2 after the changes; the diff names them.
    let rel2 = webapp.post_ok("/1.0/snapshots", &[("name", "rel2")]);
    assert_eq!(rel2["lorries"], 2);
    let diff = webapp.get_ok("/1.0/snapshots/rel1/diff/rel2");
    for path in ["s/proj", "s/fol"] {
        let lorry = &diff["changed"][path];
        assert_eq!(
            lorry["moved"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>()),
            Some(vec![
                "refs/heads/main".to_owned(),
                "refs/heads/topic".to_owned()
            ]),
            "{diff}"
        );
        assert!(lorry["removed"]["refs/heads/gone"].is_string(), "{diff}");
    }
    assert_eq!(webapp.get("/1.0/snapshots/nope/diff/rel2").status, 404);

    // Promotion: a channel points at rel1, then rel2; its manifest follows,
    // the snapshots do not change, and the history keeps both.
    let promoted = webapp.post_ok("/1.0/channels/release", &[("snapshot", "rel1")]);
    assert_eq!(promoted["snapshot"], "rel1", "{promoted}");
    assert_eq!(webapp.get_ok("/1.0/channels/release"), manifest);
    assert_eq!(
        webapp.get("/1.0/channels/release?format=text").text,
        webapp.get("/1.0/snapshots/rel1?format=text").text
    );
    webapp.pretend_time(t0 + 2 * 3601 + 60);
    webapp.post_ok("/1.0/channels/release", &[("snapshot", "rel2")]);
    assert_eq!(webapp.get_ok("/1.0/channels/release")["name"], "rel2");
    assert_eq!(
        webapp.get_ok("/1.0/snapshots/rel1"),
        manifest,
        "promotion changes no snapshot"
    );
    let channels = webapp.get_ok("/1.0/channels");
    let history: Vec<&str> = channels["channels"][0]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|p| p["snapshot"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(history, ["rel2", "rel1"], "{channels}");
    assert_eq!(webapp.post("/1.0/snapshots/rel2/delete", &[]).status, 409);
    assert_eq!(
        webapp
            .post("/1.0/channels/release", &[("snapshot", "nope")])
            .status,
        404
    );
    assert_eq!(webapp.post("/1.0/channels/release", &[]).status, 400);
    assert_eq!(webapp.get("/1.0/channels/nope").status, 404);

    // An unchanged repository gains no ref from a snapshot.
    let refs_before = refs_of(&down("proj"), &[]);
    webapp.post_ok("/1.0/snapshots", &[("name", "rel3")]);
    webapp.pretend_time(t0 + 3 * 3601);
    nth_job(&webapp, "s/proj", 4);
    assert_eq!(refs_of(&down("proj"), &[]), refs_before);

    // Deleting rel1 removes its pins at fol's next job.
    let deleted = webapp.post_ok("/1.0/snapshots/rel1/delete", &[]);
    assert!(deleted["message"].is_string());
    assert_eq!(webapp.get("/1.0/snapshots/rel1").status, 404);
    assert_eq!(webapp.post("/1.0/snapshots/rel1/delete", &[]).status, 404);
    webapp.pretend_time(t0 + 4 * 3601);
    nth_job(&webapp, "s/fol", 5);
    let left: Vec<String> = refs_of(&down("fol"), &["refs/lorry/snapshots"])
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        left,
        [
            "refs/lorry/snapshots/20270115T080000Z/refs/heads/gone",
            "refs/lorry/snapshots/20270115T080000Z/refs/heads/topic",
        ]
    );
}

/// `--snapshot-keep`: the housekeeping task removes all but the newest
/// snapshots, sparing those a channel points at.
#[test]
fn retention_keeps_the_newest_snapshots_and_those_channels_point_at() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = Webapp::init(dir.path())
        .with_args(&["--snapshot-keep=1", "--housekeeping-interval=1"])
        .start();
    let t0 = 1_800_000_000;
    for (i, name) in ["old", "pointed", "middle", "newest"].iter().enumerate() {
        webapp.pretend_time(t0 + i64::try_from(i).unwrap_or(0));
        webapp.post_ok("/1.0/snapshots", &[("name", name)]);
        if *name == "pointed" {
            webapp.post_ok("/1.0/channels/stable", &[("snapshot", "pointed")]);
        }
    }
    let names = || -> Vec<String> {
        webapp.get_ok("/1.0/snapshots")["snapshots"]
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    wait_for("retention to run", READY_TIMEOUT, || {
        (names() == ["newest", "pointed"]).then_some(())
    });
    assert_eq!(webapp.get_ok("/1.0/channels/stable")["name"], "pointed");
}
