//! The systemd units in `units/` pass `systemd-analyze verify`.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("units")
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: install Debian's systemd package (.ci/run does)"
    );
    // Verify copies whose ExecStart points at the binaries just built, since
    // nothing is installed in /usr/bin here.
    let bin_dir = Path::new(common::WEBAPP).parent().expect("target dir");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(units_dir()).expect("units/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read unit");
        let text = text.replace(
            "/usr/bin/lorry-controller-",
            &format!("{}/lorry-controller-", bin_dir.display()),
        );
        // A template is verified as one of its instances.
        let name = name.replace("@.service", "@1.service");
        std::fs::write(dir.path().join(&name), text).expect("write unit");
        units.push(name);
    }
    units.sort();
    assert!(units.len() >= 12, "units/ holds {units:?}");
    for unit in &units {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(unit)
            .current_dir(dir.path())
            .output()
            .expect("systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Warnings about the host's own units are not ours.
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("lorry-controller"))
            .collect();
        assert!(out.status.success() && ours.is_empty(), "{unit}:\n{stderr}");
    }
}

#[test]
fn every_service_is_hardened_and_every_timer_has_its_service() {
    for entry in std::fs::read_dir(units_dir()).expect("units/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read unit");
        if name.ends_with(".service") {
            for setting in [
                "User=lorry",
                "NoNewPrivileges=yes",
                "PrivateTmp=yes",
                "ProtectSystem=strict",
            ] {
                assert!(text.contains(setting), "{name} lacks {setting}");
            }
        } else if let Some(stem) = name.strip_suffix(".timer") {
            assert!(
                units_dir().join(format!("{stem}.service")).is_file(),
                "{name} has no service"
            );
        }
    }
}
