//! Backups of STATEDB (`POST /1.0/backup`, `lorry-controller-admin backup`)
//! taken while jobs are being updated, and restoring one with
//! `lorry-controller-webapp --restore`.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{READY_TIMEOUT, WEBAPP, Webapp, git_lorry, wait_for};
use reqwest::blocking::Client;

const ADMIN_BIN: &str = env!("CARGO_BIN_EXE_lorry-controller-admin");
const ADMIN: &str = "admin-backup-5e1d";
const T0: i64 = 1_700_000_000;

fn token_file(dir: &Path, name: &str, token: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, format!("{token}\n")).expect("write token");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    file
}

fn admin_args(dir: &Path) -> Vec<String> {
    vec![format!(
        "--admin-token-file={}",
        token_file(dir, "admin.token", ADMIN).display()
    )]
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// POSTs a form with the admin token; the answer's JSON, which must be a success.
fn post(client: &Client, app_url: &str, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
    let reply = client
        .post(format!("{app_url}{path}"))
        .bearer_auth(ADMIN)
        .form(form)
        .send()
        .expect("POST");
    let status = reply.status();
    let text = reply.text().expect("body");
    assert!(status.is_success(), "POST {path}: {status} {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// Runs the admin CLI against `app` with `args`.
fn admin(app: &Webapp, token: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(ADMIN_BIN);
    cmd.arg(format!("--webapp-url=http://127.0.0.1:{}/", app.port))
        .env_remove("LORRY_CONTROLLER_ADMIN_TOKEN")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .stdin(Stdio::null());
    if let Some(token) = token {
        cmd.arg(format!("--token-file={}", token.display()));
    }
    cmd.args(args).output().expect("run lorry-controller-admin")
}

fn restore(statedb: &Path, backup: &Path) -> Output {
    Command::new(WEBAPP)
        .arg(format!("--statedb={}", statedb.display()))
        .arg(format!("--restore={}", backup.display()))
        .arg("--no-debug-real-confgit")
        .stdin(Stdio::null())
        .output()
        .expect("run lorry-controller-webapp --restore")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A minion's work, played by a thread: take a job, send output twice,
/// end it; when nothing is due, move the pretended clock on a day. Every
/// job whose end the webapp accepted is pushed to `ended`.
fn keep_writing(url: String, stop: Arc<AtomicBool>, ended: Arc<Mutex<Vec<i64>>>) {
    let client = client();
    let output = "x".repeat(16 * 1024);
    let mut now = T0;
    while !stop.load(Ordering::Relaxed) {
        let job = post(
            &client,
            &url,
            "/1.0/give-me-job",
            &[("host", "m"), ("pid", "1")],
        );
        let Some(id) = job["job_id"].as_i64() else {
            now += 86_400;
            post(
                &client,
                &url,
                "/1.0/pretend-time",
                &[("now", &now.to_string())],
            );
            continue;
        };
        let id_text = id.to_string();
        for _ in 0..2 {
            post(
                &client,
                &url,
                "/1.0/job-update",
                &[("job_id", &id_text), ("exit", "no"), ("stdout", &output)],
            );
        }
        post(
            &client,
            &url,
            "/1.0/job-update",
            &[("job_id", &id_text), ("exit", "0"), ("disk_usage", "4096")],
        );
        ended.lock().expect("lock").push(id);
    }
}

/// The test: a backup taken while jobs are updated restores to a
/// database that passes `integrity_check` and holds every job that had
/// ended before the backup started.
#[test]
fn a_backup_taken_while_jobs_are_updated_restores_every_job_ended_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = admin_args(dir.path());
    let app = Webapp::init(dir.path()).with_args(&args).start();
    let token = dir.path().join("admin.token");
    let url = app.url("");
    post(
        &client(),
        &url,
        "/1.0/pretend-time",
        &[("now", &T0.to_string())],
    );
    let lorries: Vec<_> = (0..30)
        .map(|i| git_lorry(&format!("up/repo-{i:02}"), 86_400, 600))
        .collect();
    app.seed(&lorries);

    let stop = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (url, stop, ended) = (url.clone(), Arc::clone(&stop), Arc::clone(&ended));
        std::thread::spawn(move || keep_writing(url, stop, ended))
    };
    wait_for("40 jobs ended", READY_TIMEOUT * 4, || {
        (ended.lock().expect("lock").len() >= 40).then_some(())
    });

    // Taken while the writer goes on.
    let before: Vec<i64> = ended.lock().expect("lock").clone();
    let file = dir.path().join("backups/statedb.sqlite");
    std::fs::create_dir(dir.path().join("backups")).expect("mkdir");
    let out = admin(&app, Some(&token), &["backup", &file.display().to_string()]);
    assert!(out.status.success(), "{}", common::all_output(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&file.display().to_string()), "{said}");
    let after_backup = ended.lock().expect("lock").len();
    // The webapp went on taking updates during and after the backup.
    wait_for("the writer to go on", READY_TIMEOUT * 4, || {
        (ended.lock().expect("lock").len() >= after_backup + 3).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let all_ended = ended.lock().expect("lock").clone();

    let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "backup mode {mode:o}");
    assert_eq!(entries(&dir.path().join("backups")), ["statedb.sqlite"]);
    // integrity_check and a known schema, on a copy (checking opens it).
    let copy = dir.path().join("copy.sqlite");
    std::fs::copy(&file, &copy).expect("copy");
    let info = lc_core::db::backup::check_backup(&copy).expect("a usable backup");
    assert_eq!(info.lorries, 30);
    assert!(info.jobs >= before.len() as i64, "{info:?}");

    // Not while the webapp runs.
    let out = restore(&app.statedb, &file);
    assert!(!out.status.success());
    assert!(
        common::all_output(&out).contains("stop the webapp"),
        "{}",
        common::all_output(&out)
    );
    let statedb = app.statedb.clone();
    app.stop();
    let out = restore(&statedb, &file);
    assert!(out.status.success(), "{}", common::all_output(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("30 lorries"),
        "{}",
        common::all_output(&out)
    );
    let mode = std::fs::metadata(&statedb)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "restored STATEDB mode {mode:o}");

    let app = Webapp::init(dir.path()).with_args(&args).start();
    for id in &before {
        let job = app.get_ok(&format!("/1.0/job/{id}"));
        assert_eq!(job["exit"], "0", "job {id} after restore: {job}");
    }
    // The jobs that ended after the backup finished are not in it.
    let listed = app.get_ok("/1.0/list-jobs")["job_ids"]
        .as_array()
        .expect("job ids")
        .len();
    assert!(listed < all_ended.len(), "{listed} of {}", all_ended.len());
    // Job ids are not given out again: a minion still running a job begun
    // after the backup must not have its updates land on another job.
    let url = app.url("");
    let later = (T0 + 1000 * 86_400).to_string();
    post(&client(), &url, "/1.0/pretend-time", &[("now", &later)]);
    let job = post(
        &client(),
        &url,
        "/1.0/give-me-job",
        &[("host", "m"), ("pid", "1")],
    );
    let newest = all_ended.iter().max().copied().unwrap_or(0);
    let id = job["job_id"].as_i64().expect("a job");
    assert!(id > newest, "job {id} after restore, {newest} before");
}

/// STATEDB holds the hosts' tokens: without an admin token configured the
/// webapp refuses every backup; with one, only that token gets it. A refused
/// backup leaves no file.
#[test]
fn backups_need_the_admin_token_and_a_refusal_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = Webapp::init(&dir.path().join("open")).start();
    let reply = client().post(open.url("/1.0/backup")).send().expect("POST");
    assert_eq!(reply.status().as_u16(), 403);
    let body: serde_json::Value = reply.json().expect("JSON body");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("admin token")),
        "{body}"
    );
    let target = dir.path().join("out/backup.sqlite");
    std::fs::create_dir(dir.path().join("out")).expect("mkdir");
    let out = admin(&open, None, &["backup", &target.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", common::all_output(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin token"));
    assert!(entries(&dir.path().join("out")).is_empty());
    drop(open);

    std::fs::create_dir(dir.path().join("locked")).expect("mkdir");
    let args = admin_args(&dir.path().join("locked"));
    let app = Webapp::init(&dir.path().join("locked"))
        .with_args(&args)
        .start();
    let wrong = token_file(dir.path(), "wrong.token", "not-the-admin-token");
    for token in [None, Some(wrong.as_path())] {
        let out = admin(&app, token, &["backup", &target.display().to_string()]);
        assert_eq!(out.status.code(), Some(1), "{}", common::all_output(&out));
        assert!(entries(&dir.path().join("out")).is_empty());
    }
    // A GET is not a backup.
    let reply = client()
        .get(app.url("/1.0/backup"))
        .bearer_auth(ADMIN)
        .send()
        .expect("GET");
    assert_eq!(reply.status().as_u16(), 405);
}

/// The nightly timer's form: a directory, named files, the newest N kept;
/// a file that is not a backup is never restored.
#[test]
fn directory_backups_keep_the_newest_and_restore_refuses_what_is_not_a_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = admin_args(dir.path());
    let token = dir.path().join("admin.token");
    let app = Webapp::init(dir.path()).with_args(&args).start();
    app.seed(&[git_lorry("up/one", 3600, 600)]);
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).expect("mkdir");
    let old = "statedb-20000101T000000Z.sqlite";
    std::fs::write(backups.join(old), b"old").expect("write");
    std::fs::write(backups.join("notes.txt"), b"mine").expect("write");
    let out = admin(
        &app,
        Some(&token),
        &["backup", "--keep=1", &backups.display().to_string()],
    );
    assert!(out.status.success(), "{}", common::all_output(&out));
    let names = entries(&backups);
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], "notes.txt");
    assert!(
        names[1].starts_with("statedb-2") && names[1] != old,
        "{names:?}"
    );
    // --keep is for directories only.
    let out = admin(
        &app,
        Some(&token),
        &[
            "backup",
            "--keep=1",
            &backups.join("x").display().to_string(),
        ],
    );
    assert!(!out.status.success());

    let statedb = app.statedb.clone();
    app.stop();
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, "SQLite format 3\0 but not really, just text").expect("write");
    let out = restore(&statedb, &garbage);
    assert!(!out.status.success());
    assert!(
        common::all_output(&out).contains(&garbage.display().to_string()),
        "{}",
        common::all_output(&out)
    );
    let app = Webapp::init(dir.path()).with_args(&args).start();
    assert_eq!(app.queue(), ["up/one"]);
}
