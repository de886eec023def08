//! The README's first command, `scripts/demo`, end to end: sample upstreams
//! and a CONFGIT, the webapp and two minions, every lorry mirrored. Run with
//! the binaries this test build made (`DEMO_BIN_DIR`) and stopped after its
//! summary (`DEMO_ONCE`).

use crate::common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_demo_mirrors_every_sample_and_stops_what_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_lorry-controller-webapp"))
        .parent()
        .expect("bin dir");
    // The minion runs the lorry next to it.
    assert!(Path::new(env!("CARGO_BIN_EXE_lorry")).starts_with(bin_dir));
    assert!(Path::new(env!("CARGO_BIN_EXE_lorry-controller-minion")).starts_with(bin_dir));
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo"))
        .env("DEMO_DIR", dir.path())
        .env("DEMO_BIN_DIR", bin_dir)
        .env("DEMO_ONCE", "1")
        .output()
        .expect("scripts/demo");
    let text = common::all_output(&out);
    assert!(out.status.success(), "{text}");
    for path in ["demo/docs", "demo/hello", "demo/widgets"] {
        assert!(
            text.lines().any(|l| l.contains(path) && l.contains(" ok ")),
            "{path}: {text}"
        );
    }
    assert!(
        text.contains("demo/widgets.git: main next stable v1.0"),
        "{text}"
    );
    // Everything it started is gone: nothing still serves its directory.
    let ps = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    let running = String::from_utf8_lossy(&ps.stdout);
    let demo_dir = dir.path().display().to_string();
    let left: Vec<&str> = running.lines().filter(|l| l.contains(&demo_dir)).collect();
    assert!(left.is_empty(), "left running: {left:?}");
}
