//! Benchmark of read-configuration as a user sees it: `POST
//! /1.0/read-configuration` to the real webapp binary, timed from this
//! process, with a real CONFGIT git repository of 10,000 `.lorry` files
//! (one spec each) that the webapp clones on the first read and fetches
//! and resets to on every later one.
//!
//! Per webapp: the first read (clone, parse, add 10,000 lorries), then
//! re-reads with nothing changed (median and worst of
//! `LC_BENCH_REPEATS`, default 7), then re-reads after a commit changing
//! one file (median). For scale, in the same run: `git clone` of the same
//! repository alone, and reading its files from disk alone.
//!
//! Targets (issue 14 item 7): the first read within 1 s, an unchanged
//! re-read within 100 ms.
//!
//! `LC_BENCH_BASELINE_WEBAPP=/path/to/lorry-controller-webapp` (a build of
//! an older commit) runs the same against it, in the same run, and prints
//! the ratios. `cargo bench --bench read_configuration`; `LC_BENCH_FILES`
//! (10,000).

#![expect(
    clippy::disallowed_methods,
    reason = "the bench drives the real webapp binary and git"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::env_or;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "B")
        .env("GIT_AUTHOR_EMAIL", "b@example.com")
        .env("GIT_COMMITTER_NAME", "B")
        .env("GIT_COMMITTER_EMAIL", "b@example.com")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("git");
    assert!(status.success(), "git {args:?}");
}

fn lorry_text(f: usize, version: usize) -> String {
    format!(
        "{{\n  \"group{f}/project\": {{\"type\": \"git\", \"url\": \"https://git.example.org/group{f}/project{version}.git\", \"refspecs\": [\"+refs/heads/*\", \"+refs/tags/*\"]}}\n}}\n"
    )
}

/// A CONFGIT repository (branch master) of `files` `.lorry` files.
fn write_confgit(dir: &Path, files: usize) {
    std::fs::create_dir_all(dir.join("lorries")).expect("mkdir");
    git(dir, &["init", "-q", "-b", "master"]);
    std::fs::write(
        dir.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "bench", "interval": "1h", "globs": ["lorries/*.lorry"]}]"#,
    )
    .expect("conf");
    for f in 0..files {
        std::fs::write(dir.join(format!("lorries/f{f:05}.lorry")), lorry_text(f, 0))
            .expect("lorry");
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "lorries"]);
}

fn read_files_only(dir: &Path) -> usize {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir.join("lorries")).expect("readdir") {
        bytes += std::fs::read(entry.expect("entry").path())
            .expect("read")
            .len();
    }
    bytes
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `POST /1.0/read-configuration`, timed; its answer must be a 200.
fn read(client: &reqwest::blocking::Client, port: u16) -> (serde_json::Value, Duration) {
    time(|| {
        let answer = client
            .post(format!("http://127.0.0.1:{port}/1.0/read-configuration"))
            .send()
            .expect("read-configuration");
        let status = answer.status().as_u16();
        let text = answer.text().expect("its answer");
        assert_eq!(status, 200, "read-configuration: {text}");
        serde_json::from_str(&text).expect("its summary")
    })
}

struct Row {
    first: Duration,
    unchanged: Duration,
    unchanged_worst: Duration,
    one_changed: Duration,
}

fn measure(binary: &Path, confgit: &Path, files: usize, repeats: usize, bump: &mut usize) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", confgit.display());
    let (_webapp, port) =
        common::start_webapp_binary(binary, dir.path(), &[format!("--confgit-url={url}")]);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("client");
    let (summary, first) = read(&client, port);
    assert_eq!(
        summary["lorries_added"].as_array().map(Vec::len),
        Some(files),
        "every lorry added"
    );
    let mut unchanged = Vec::new();
    for _ in 0..repeats {
        let (summary, took) = read(&client, port);
        assert_eq!(summary["lorries_unchanged"], files, "nothing changed");
        unchanged.push(took);
    }
    let mut one_changed = Vec::new();
    for _ in 0..3 {
        *bump += 1;
        std::fs::write(confgit.join("lorries/f00007.lorry"), lorry_text(7, *bump)).expect("edit");
        git(confgit, &["commit", "-q", "-am", "one change"]);
        let (summary, took) = read(&client, port);
        assert_eq!(
            summary["lorries_changed"].as_array().map(Vec::len),
            Some(1),
            "one lorry changed"
        );
        one_changed.push(took);
    }
    Row {
        first,
        unchanged_worst: unchanged.iter().copied().max().unwrap_or_default(),
        unchanged: median(unchanged),
        one_changed: median(one_changed),
    }
}

fn main() {
    let files = env_or("LC_BENCH_FILES", 10_000) as usize;
    let repeats = env_or("LC_BENCH_REPEATS", 7).max(1) as usize;
    let tmp = tempfile::tempdir().expect("tempdir");
    let confgit = tmp.path().join("confgit-origin");
    write_confgit(&confgit, files);
    let (_, clone_alone) = time(|| {
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                "--no-tags",
                "--single-branch",
                &format!("file://{}", confgit.display()),
                "clone-alone",
            ],
        );
    });
    let (_, files_alone) = time(|| read_files_only(&tmp.path().join("clone-alone")));

    let mut binaries: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(baseline) = common::baseline_webapp() {
        binaries.push(("baseline", baseline));
    }
    binaries.push(("this build", PathBuf::from(common::WEBAPP)));
    println!("read-configuration through HTTP, CONFGIT of {files} .lorry files (git, file:// URL)");
    println!(
        "for scale: git clone alone {:.1} ms, reading the files alone {:.1} ms",
        ms(clone_alone),
        ms(files_alone)
    );
    println!("targets: first read <= 1 s, unchanged re-read <= 100 ms");
    println!();
    println!(
        "| webapp | first read ms | unchanged re-read ms (median / worst of {repeats}) | one file changed ms | first vs baseline | unchanged vs baseline | target |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut bump = 0;
    let mut baseline: Option<Row> = None;
    for (name, binary) in &binaries {
        let row = measure(binary, &confgit, files, repeats, &mut bump);
        let ratios = match &baseline {
            Some(b) => (
                format!("{:.2}x", ms(row.first) / ms(b.first)),
                format!("{:.2}x", ms(row.unchanged) / ms(b.unchanged)),
            ),
            None => ("-".into(), "-".into()),
        };
        let met =
            row.first <= Duration::from_secs(1) && row.unchanged <= Duration::from_millis(100);
        println!(
            "| {name} | {:.1} | {:.1} / {:.1} | {:.1} | {} | {} | {} |",
            ms(row.first),
            ms(row.unchanged),
            ms(row.unchanged_worst),
            ms(row.one_changed),
            ratios.0,
            ratios.1,
            if met { "met" } else { "MISSED" },
        );
        if *name == "baseline" {
            baseline = Some(row);
        }
    }
}
