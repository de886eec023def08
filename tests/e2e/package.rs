//! The Debian package (`scripts/build-deb`): built from the test build's
//! binaries, installed, upgraded from an older version, removed and purged
//! with the real `dpkg`, into a private root (`dpkg --root` with the
//! maintainer scripts run against `DPKG_ROOT`), so the machine running the
//! tests is not changed. Needs root (the package's directories are owned
//! by the user it creates); skipped otherwise with a note, a failure when
//! `LORRY_TEST_PACKAGE=1` (CI sets it).

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use lc_core::db::StateDb;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}",
        common::all_output(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build(version: &str, out: &Path) -> PathBuf {
    let bin_dir = Path::new(common::WEBAPP).parent().expect("bin dir");
    let deb = run(Command::new(repo().join("scripts/build-deb"))
        .args(["--version", version, "--uncompressed", "--bin-dir"])
        .arg(bin_dir)
        .arg("--out")
        .arg(out));
    PathBuf::from(deb.trim())
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--force-confold",
            "--log=/dev/null",
        ])
        .args(args))
}

fn lorry_ids(root: &Path) -> (u32, u32) {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("lorry:"))
        .unwrap_or_else(|| panic!("no user lorry in {passwd}"));
    let fields: Vec<&str> = line.split(':').collect();
    (
        fields[2].parse().expect("uid"),
        fields[3].parse().expect("gid"),
    )
}

#[test]
fn the_package_installs_upgrades_keeping_data_and_purges() {
    // /proc/self belongs to the effective user.
    let root_user = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let have = |p: &str| Command::new(p).arg("--version").output().is_ok();
    if !(root_user && have("dpkg-deb") && have("systemd-sysusers")) {
        assert!(
            std::env::var_os("LORRY_TEST_PACKAGE").is_none(),
            "the package test needs root, dpkg-deb and systemd-sysusers"
        );
        eprintln!("skipped: the package test needs root, dpkg-deb and systemd-sysusers");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let old = build("0.0.1", &dir.path().join("old"));
    let version = env!("CARGO_PKG_VERSION");
    let new = build(version, &dir.path().join("new"));
    let root = dir.path().join("root");
    for d in ["var/lib/dpkg/updates", "var/lib/dpkg/info", "etc"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\n").expect("group");

    dpkg(&root, &["-i", &old.display().to_string()]);
    for bin in [
        "lorry-controller-webapp",
        "lorry-controller-minion",
        "lorry",
        "lorry-controller-admin",
    ] {
        let meta = std::fs::metadata(root.join("usr/bin").join(bin)).expect(bin);
        assert_eq!(meta.permissions().mode() & 0o777, 0o755, "{bin}");
    }
    assert!(
        root.join("usr/share/lorry-controller/static/style.css")
            .exists()
    );
    let (uid, gid) = lorry_ids(&root);
    assert!(uid > 0 && uid < 1000, "a system user: {uid}");
    for (d, mode) in [
        ("var/lib/lorry-controller", 0o750),
        ("srv/lorry/working-area", 0o750),
        ("srv/lorry/git", 0o755),
        ("var/backups/lorry-controller", 0o700),
    ] {
        let meta = std::fs::metadata(root.join(d)).expect(d);
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{d}");
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{d}");
    }
    let conf = root.join("etc/lorry-controller/webapp.conf");
    assert_eq!(std::fs::metadata(&conf).expect("conf").gid(), gid);
    let conffiles = run(Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${Conffiles}", "lorry-controller"]));
    for f in [
        "/etc/lorry-controller/webapp.conf",
        "/etc/lorry-controller/minion.conf",
        "/etc/lorry-controller/lorry.conf",
        "/etc/default/lorry-controller",
    ] {
        assert!(conffiles.contains(f), "{f} not a conffile: {conffiles}");
    }
    // The installed units, as installed.
    let units = root.join("usr/lib/systemd/system");
    let mut names: Vec<String> = std::fs::read_dir(&units)
        .expect("units")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        std::fs::read_dir(repo().join("units"))
            .expect("units/")
            .count()
    );
    // The installed units, their ExecStart pointed into the private root
    // (systemd-analyze checks that the programs exist).
    let verify = dir.path().join("verify");
    std::fs::create_dir(&verify).expect("mkdir");
    for name in &names {
        let text = std::fs::read_to_string(units.join(name)).expect("unit");
        let text = text.replace("/usr/bin/", &format!("{}/usr/bin/", root.display()));
        std::fs::write(verify.join(name.replace("@.service", "@1.service")), text)
            .expect("write unit");
    }
    for name in &names {
        let name = name.replace("@.service", "@1.service");
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&name)
            .current_dir(&verify)
            .output()
            .expect("systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("lorry-controller"))
            .collect();
        assert!(out.status.success() && ours.is_empty(), "{name}:\n{stderr}");
    }

    // State the upgrade must keep: STATEDB, the working area, an edited conffile.
    let statedb = root.join("var/lib/lorry-controller/webapp.db");
    StateDb::open(&statedb)
        .expect("STATEDB")
        .write(|tx| tx.set_max_jobs(Some(3)))
        .expect("write");
    let marker = root.join("srv/lorry/working-area/up%2Fa/lorry-name");
    std::fs::create_dir_all(marker.parent().expect("dir")).expect("mkdir");
    std::fs::write(&marker, "up/a").expect("marker");
    let mut edited = std::fs::read_to_string(&conf).expect("conf");
    edited.push_str("max-jobs-per-host = 2\n");
    std::fs::write(&conf, &edited).expect("edit conf");

    dpkg(&root, &["-i", &new.display().to_string()]);
    let status = run(Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${Version} ${Status}", "lorry-controller"]));
    assert_eq!(status, format!("{version} install ok installed"));
    let db = StateDb::open(&statedb).expect("STATEDB after the upgrade");
    assert_eq!(db.read(|tx| tx.max_jobs()).expect("read"), Some(3));
    drop(db);
    assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "up/a");
    assert_eq!(std::fs::read_to_string(&conf).expect("conf"), edited);

    // Removing keeps the data and the configuration.
    dpkg(&root, &["-r", "lorry-controller"]);
    assert!(!root.join("usr/bin/lorry-controller-webapp").exists());
    assert!(statedb.exists() && marker.exists() && conf.exists());
    // Purging removes them.
    dpkg(&root, &["-P", "lorry-controller"]);
    assert!(!root.join("var/lib/lorry-controller").exists());
    assert!(!root.join("srv/lorry").exists());
    assert!(!conf.exists());
}
