//! Benchmark of read-configuration without git: a CONFGIT checkout of many
//! `.lorry` files read and synced into a fresh STATEDB, then re-read with no
//! change, beside the time to merely read the files from disk.
//!
//! Both reads go through one `LorryFileCache`, as the webapp's do. The
//! checkout's files are dated a minute back, as a checkout made before the
//! read is: a file changed less than 2 s before it was read is not trusted
//! from the cache (see `lc_core::config::RACY_MARGIN`).
//!
//! Run with `cargo bench --bench read_configuration`. Targets: a full read of
//! 10,000 files within 1 s, a no-change re-read within 100 ms.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use lc_core::config::{LorryFileCache, load_config_cached};
use lc_core::db::StateDb;

fn write_confgit(dir: &Path, files: usize, specs_per_file: usize) {
    std::fs::create_dir_all(dir.join("lorries")).expect("mkdir");
    std::fs::write(
        dir.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "bench", "interval": "1h", "globs": ["lorries/*.lorry"]}]"#,
    )
    .expect("conf");
    for f in 0..files {
        let mut text = String::from("{\n");
        for s in 0..specs_per_file {
            if s > 0 {
                text.push_str(",\n");
            }
            text.push_str(&format!(
                r#"  "group{f}/project{s}": {{"type": "git", "url": "https://git.example.org/group{f}/project{s}.git", "refspecs": ["+refs/heads/*", "+refs/tags/*"]}}"#
            ));
        }
        text.push_str("\n}\n");
        let path = dir.join(format!("lorries/f{f:05}.lorry"));
        std::fs::write(&path, text).expect("lorry");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(SystemTime::now() - Duration::from_secs(60)))
            .expect("date the file a minute back");
    }
}

fn read_files_only(dir: &Path) -> usize {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir.join("lorries")).expect("readdir") {
        bytes += std::fs::read_to_string(entry.expect("entry").path())
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

fn main() {
    println!(
        "{:<28} {:>10} {:>14} {:>14} {:>18} {:>8}",
        "scenario", "lorries", "read files", "full read", "no-change re-read", "target"
    );
    for (name, files, per_file) in [
        ("10,000 files x 1 spec", 10_000, 1),
        ("10,000 files x 10 specs", 10_000, 10),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let confgit = tmp.path().join("confgit");
        write_confgit(&confgit, files, per_file);
        let db = StateDb::open(&tmp.path().join("state.db")).expect("statedb");
        let (_, read_only) = time(|| read_files_only(&confgit));
        let cache = LorryFileCache::default();
        let (summary, full) = time(|| {
            let loaded = load_config_cached(&confgit, &cache).expect("config");
            db.write(|tx| tx.apply_config(&loaded)).expect("apply")
        });
        assert_eq!(summary.lorries_added.len(), files * per_file);
        let (summary, again) = time(|| {
            let loaded = load_config_cached(&confgit, &cache).expect("config");
            assert_eq!(loaded.files_parsed, 0, "every file from the cache");
            db.write(|tx| tx.apply_config(&loaded)).expect("apply")
        });
        assert_eq!(summary.lorries_unchanged, files * per_file);
        // Targets for 10,000 files (of one spec each): full read 1 s,
        // no-change re-read 100 ms.
        let target = if per_file == 1 {
            if full <= Duration::from_secs(1) && again <= Duration::from_millis(100) {
                "met"
            } else {
                "MISSED"
            }
        } else {
            "-"
        };
        println!(
            "{name:<28} {:>10} {:>11.1} ms {:>11.1} ms {:>15.1} ms {target:>8}",
            files * per_file,
            read_only.as_secs_f64() * 1e3,
            full.as_secs_f64() * 1e3,
            again.as_secs_f64() * 1e3,
        );
    }
}
