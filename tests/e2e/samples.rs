//! The sample configuration files in `etc/` are accepted by the binaries
//! they are for: an unknown key or a bad value in them would stop a fresh
//! installation at its first start.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{READY_TIMEOUT, Webapp, git, git_lorry, wait_for};

const MINION: &str = env!("CARGO_BIN_EXE_lorry-controller-minion");
const LORRY: &str = env!("CARGO_BIN_EXE_lorry");

fn etc(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("etc").join(name)
}

#[test]
fn webapp_conf_and_the_example_confgit_pass_check_config() {
    let out = Command::new(common::WEBAPP)
        .arg("--config")
        .arg(etc("lorry-controller/webapp.conf"))
        .arg("--check-config")
        .arg(etc("confgit-example"))
        .output()
        .expect("webapp");
    assert!(out.status.success(), "{}", common::all_output(&out));
}

#[test]
fn minion_conf_runs_a_minion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = Webapp::init(dir.path()).start();
    webapp.seed(&[git_lorry("sample/one", 3600, 600)]);
    let fake_lorry = dir.path().join("fake-lorry");
    std::fs::write(&fake_lorry, "#!/bin/sh\necho mirrored\n").expect("write");
    std::fs::set_permissions(
        &fake_lorry,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    // The sample's host, port and log are for a real installation: the
    // command line, which wins over the file, points at the test's webapp.
    let mut minion = Command::new(MINION)
        .arg("--config")
        .arg(etc("lorry-controller/minion.conf"))
        .args([
            "--webapp-host=127.0.0.1".to_owned(),
            format!("--webapp-port={}", webapp.port),
            format!("--lorry-path={}", fake_lorry.display()),
            format!(
                "--lorry-config={}",
                etc("lorry-controller/lorry.conf").display()
            ),
            format!("--log={}", dir.path().join("minion.log").display()),
            "--sleep=0.1".to_owned(),
            // A sandbox would make the sample's /srv/lorry directories on
            // this machine to show them to the job.
            "--sandbox=none".to_owned(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("minion");
    let log = dir.path().join("minion.log");
    let job = wait_for("the sample minion's job", READY_TIMEOUT, || {
        if let Ok(Some(status)) = minion.try_wait() {
            panic!(
                "minion exited: {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let answer = webapp.get("/1.0/job/1");
        (answer.status == 200 && answer.body["exit"] != "no").then_some(answer.body)
    });
    assert_eq!(job["exit"], "0", "{job}");
    let status = common::terminate(&mut minion);
    assert!(status.success(), "{status}");
}

#[test]
fn lorry_conf_mirrors_with_lorry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), "hello\n").expect("write");
    git(&work, &["add", "README"]);
    git(&work, &["commit", "-q", "-m", "hello"]);
    let down = dir.path().join("down");
    std::fs::create_dir_all(down.join("sample")).expect("mkdir");
    git(&down.join("sample"), &["init", "-q", "--bare", "hello.git"]);
    let spec = dir.path().join("hello.lorry");
    std::fs::write(
        &spec,
        serde_json::json!({"sample/hello": {
            "type": "git", "url": format!("file://{}", work.display())
        }})
        .to_string(),
    )
    .expect("write spec");
    // The sample's paths are a real installation's: overridden here.
    let down_url = format!("file://{}", down.display());
    let out = Command::new(LORRY)
        .arg("--config")
        .arg(etc("lorry-controller/lorry.conf"))
        .arg(format!(
            "--working-area={}",
            dir.path().join("wa").display()
        ))
        .arg(format!("--mirror-base-url-push={down_url}"))
        .arg(format!("--mirror-base-url-fetch={down_url}"))
        .arg("--allow-local-upstreams")
        .arg(&spec)
        .output()
        .expect("lorry");
    assert!(out.status.success(), "{}", common::all_output(&out));
    let heads = git(
        &down.join("sample/hello.git"),
        &["for-each-ref", "refs/heads"],
    );
    assert!(heads.contains("refs/heads/main"), "{heads}");
}
