//! svn, hg, bzr and cvs specs against real local upstreams made here.
//!
//! Each test needs its converter. When one is missing the test fails naming
//! the Debian package if `LORRY_TEST_CONVERTERS=1` (as CI sets), and
//! otherwise says it was skipped and why, uncaptured, so every run shows it.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::*;

/// Whether the tools are installed; panics naming the packages when they
/// are not and `LORRY_TEST_CONVERTERS=1`.
fn have(tools: &[(&str, &[&str], &str)]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(program, args, _)| {
            !Command::new(program)
                .args(*args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, _, package)| *package)
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("LORRY_TEST_CONVERTERS").is_some_and(|v| v == "1") {
        panic!(
            "converter missing: install the Debian packages {}",
            missing.join(" ")
        );
    }
    // Straight to the process's stderr, not through eprintln!, which the
    // test harness captures (and shows only for failures): a skip is seen
    // in every run, beside the test's "ok".
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {}: install the Debian packages {} (CI sets LORRY_TEST_CONVERTERS=1 to require them)",
        std::thread::current().name().unwrap_or("a converter test"),
        missing.join(" ")
    );
    false
}

/// Runs an upstream tool with HOME in the test area; panics on failure.
fn tool(home: &Path, dir: &Path, program: &str, args: &[&str]) -> String {
    std::fs::create_dir_all(home).expect("home");
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("HGPLAIN", "1")
        .env("BRZ_EMAIL", "Test <test@example.com>")
        .env("LC_ALL", "C")
        .output()
        .expect("spawn tool");
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn log_count(repo: &Path, rev: &str) -> usize {
    git(repo, &["rev-list", "--count", rev])
        .parse()
        .expect("count")
}

#[test]
fn svn_with_standard_layout() {
    if !have(&[
        ("svnadmin", &["--version", "--quiet"], "subversion"),
        ("git", &["svn", "--version"], "git-svn"),
    ]) {
        return;
    }
    let area = Area::new();
    let home = area.path().join("home");
    let root = area.path().join("svnrepo");
    tool(
        &home,
        area.path(),
        "svnadmin",
        &["create", root.to_str().expect("utf8")],
    );
    let url = format!("file://{}", root.display());
    let layout = area.path().join("layout");
    for d in ["trunk", "branches", "tags"] {
        std::fs::create_dir_all(layout.join(d)).expect("mkdir");
    }
    std::fs::write(layout.join("trunk/hello.txt"), "hello\n").expect("write");
    tool(
        &home,
        area.path(),
        "svn",
        &["import", "-q", "-m", "init", "layout", &url],
    );
    tool(
        &home,
        area.path(),
        "svn",
        &[
            "copy",
            "-q",
            "-m",
            "branch",
            &format!("{url}/trunk"),
            &format!("{url}/branches/stable"),
        ],
    );
    tool(
        &home,
        area.path(),
        "svn",
        &[
            "copy",
            "-q",
            "-m",
            "tag",
            &format!("{url}/trunk"),
            &format!("{url}/tags/v1"),
        ],
    );

    let down = area.downstream("svn/project");
    let file = area.lorry_file(
        "s.lorry",
        &json!({ "svn/project": { "type": "svn", "url": url, "layout": "standard" } }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let refs = heads_and_tags(&down);
    assert_eq!(
        refs.keys().collect::<Vec<_>>(),
        vec!["refs/heads/master", "refs/heads/stable", "refs/tags/v1"]
    );
    assert_eq!(git(&down, &["cat-file", "-p", "master:hello.txt"]), "hello");

    // Incremental.
    std::fs::write(area.path().join("more.txt"), "more\n").expect("write");
    tool(
        &home,
        area.path(),
        "svn",
        &[
            "import",
            "-q",
            "-m",
            "more",
            "more.txt",
            &format!("{url}/trunk/more.txt"),
        ],
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["cat-file", "-p", "master:more.txt"]), "more");
    assert_eq!(
        git(&down, &["rev-parse", "master^"]),
        refs["refs/heads/master"]
    );
}

#[test]
fn hg_via_git_remote_hg() {
    if !have(&[
        ("hg", &["--version", "--quiet"], "mercurial"),
        ("sh", &["-c", "command -v git-remote-hg"], "git-remote-hg"),
    ]) {
        return;
    }
    let area = Area::new();
    let home = area.path().join("home");
    let hgrepo = area.path().join("hgrepo");
    tool(&home, area.path(), "hg", &["init", "hgrepo"]);
    std::fs::write(hgrepo.join("a.txt"), "a\n").expect("write");
    tool(&home, &hgrepo, "hg", &["add", "-q", "a.txt"]);
    tool(
        &home,
        &hgrepo,
        "hg",
        &["commit", "-q", "-u", "T <t@e>", "-m", "one"],
    );
    tool(&home, &hgrepo, "hg", &["tag", "-u", "T <t@e>", "v1"]);

    let down = area.downstream("hg/project");
    let file = area.lorry_file(
        "h.lorry",
        &json!({ "hg/project": { "type": "hg", "url": format!("file://{}", hgrepo.display()) } }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let refs = heads_and_tags(&down);
    assert!(refs.contains_key("refs/heads/master"), "{refs:?}");
    assert!(refs.contains_key("refs/tags/v1"), "{refs:?}");
    assert_eq!(git(&down, &["cat-file", "-p", "master:a.txt"]), "a");

    std::fs::write(hgrepo.join("b.txt"), "b\n").expect("write");
    tool(&home, &hgrepo, "hg", &["add", "-q", "b.txt"]);
    tool(
        &home,
        &hgrepo,
        "hg",
        &["commit", "-q", "-u", "T <t@e>", "-m", "two"],
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["cat-file", "-p", "master:b.txt"]), "b");
    assert_eq!(
        git(&down, &["rev-parse", "master^"]),
        refs["refs/heads/master"]
    );
}

#[test]
fn bzr_via_brz_fast_export() {
    if !have(&[
        ("brz", &["version"], "brz"),
        ("brz", &["help", "fast-export"], "brz"),
        // brz runs on the system python, not on a python3 earlier in PATH.
        (
            "/usr/bin/python3",
            &["-c", "import fastimport"],
            "python3-fastimport",
        ),
    ]) {
        return;
    }
    let area = Area::new();
    let home = area.path().join("home");
    let branch = area.path().join("bzrbranch");
    tool(&home, area.path(), "brz", &["init", "-q", "bzrbranch"]);
    std::fs::write(branch.join("a.txt"), "a\n").expect("write");
    tool(&home, &branch, "brz", &["add", "-q", "a.txt"]);
    tool(&home, &branch, "brz", &["commit", "-q", "-m", "one"]);

    let down = area.downstream("bzr/project");
    let file = area.lorry_file(
        "b.lorry",
        &json!({ "bzr/project": { "type": "bzr", "url": format!("file://{}", branch.display()) } }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let first = heads_and_tags(&down)["refs/heads/master"].clone();
    assert_eq!(git(&down, &["cat-file", "-p", "master:a.txt"]), "a");

    std::fs::write(branch.join("a.txt"), "a\nb\n").expect("write");
    tool(&home, &branch, "brz", &["commit", "-q", "-m", "two"]);
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(log_count(&down, "master"), 2);
    assert_eq!(
        git(&down, &["rev-parse", "master^"]),
        first,
        "history kept its ids"
    );
    assert!(
        refs_under(&down, "refs/lorry/").is_empty(),
        "a fast-forward"
    );
}

#[test]
fn cvs_via_git_cvsimport() {
    if !have(&[
        ("cvs", &["--version"], "cvs"),
        ("sh", &["-c", "command -v cvsps"], "cvsps"),
        (
            "sh",
            &["-c", "git cvsimport -h 2>&1 | grep -q usage:"],
            "git-cvs",
        ),
    ]) {
        return;
    }
    let area = Area::new();
    let home = area.path().join("home");
    let root = area.path().join("cvsroot");
    let root_s = root.to_str().expect("utf8");
    tool(&home, area.path(), "cvs", &["-Q", "-d", root_s, "init"]);
    let import = area.path().join("import");
    std::fs::create_dir_all(&import).expect("mkdir");
    std::fs::write(import.join("a.txt"), "a\n").expect("write");
    tool(
        &home,
        &import,
        "cvs",
        &[
            "-Q", "-d", root_s, "import", "-m", "init", "mod", "vendor", "start",
        ],
    );

    let down = area.downstream("cvs/mod");
    let file = area.lorry_file(
        "c.lorry",
        &json!({ "cvs/mod": { "type": "cvs", "url": root_s, "module": "mod" } }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["cat-file", "-p", "master:a.txt"]), "a");
    let first = heads_and_tags(&down)["refs/heads/master"].clone();

    tool(
        &home,
        area.path(),
        "cvs",
        &["-Q", "-d", root_s, "checkout", "-d", "work", "mod"],
    );
    let work = area.path().join("work");
    std::fs::write(work.join("a.txt"), "a\nb\n").expect("write");
    tool(&home, &work, "cvs", &["-Q", "commit", "-m", "two"]);
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["cat-file", "-p", "master:a.txt"]), "a\nb");
    assert_eq!(git(&down, &["rev-parse", "master^"]), first);
}

/// Every process's command line, scanned until `stop` is set: what any user
/// of the machine can read with `ps`.
fn watch_command_lines(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut seen = std::collections::BTreeSet::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
                    seen.insert(String::from_utf8_lossy(&raw).replace('\0', " "));
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        seen.into_iter().collect()
    })
}

/// svn credentials in the URL reach git-svn through its askpass prompt: never
/// a command line, the mirror's configuration, or lorry's output.
#[test]
fn svn_credentials_stay_out_of_argv_and_config() {
    if !have(&[
        ("svnadmin", &["--version", "--quiet"], "subversion"),
        ("svnserve", &["--version", "--quiet"], "subversion"),
        ("git", &["svn", "--version"], "git-svn"),
    ]) {
        return;
    }
    const PASSWORD: &str = "pw-5e1f9c";
    let area = Area::new();
    let home = area.path().join("home");
    let root = area.path().join("svnroot");
    std::fs::create_dir_all(&root).expect("mkdir");
    let repo = root.join("repo");
    tool(
        &home,
        area.path(),
        "svnadmin",
        &["create", repo.to_str().expect("utf8")],
    );
    std::fs::write(
        repo.join("conf/svnserve.conf"),
        "[general]\nanon-access = none\nauth-access = write\npassword-db = passwd\nrealm = test\n",
    )
    .expect("conf");
    std::fs::write(
        repo.join("conf/passwd"),
        format!("[users]\nalice = {PASSWORD}\n"),
    )
    .expect("passwd");
    let layout = area.path().join("layout");
    std::fs::create_dir_all(layout.join("trunk")).expect("mkdir");
    std::fs::write(layout.join("trunk/hello.txt"), "hello\n").expect("write");
    let file_url = format!("file://{}", repo.display());
    tool(
        &home,
        area.path(),
        "svn",
        &["import", "-q", "-m", "init", "layout", &file_url],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = Command::new("svnserve")
        .args(["-d", "--foreground", "--listen-host=127.0.0.1"])
        .arg(format!("--listen-port={port}"))
        .arg("-r")
        .arg(&root)
        .spawn()
        .expect("svnserve");
    let url = format!("svn://alice:{PASSWORD}@127.0.0.1:{port}/repo");
    let down = area.downstream("svn/secret");
    let file = area.lorry_file(
        "s.lorry",
        &json!({ "svn/secret": { "type": "svn", "url": url, "layout": {"trunk": "trunk"} } }),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_command_lines(stop.clone());
    let run = area.run(&[&file], &["--verbose"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lines = watcher.join().expect("watcher");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["cat-file", "-p", "master:hello.txt"]), "hello");
    assert!(
        lines.iter().any(|l| l.contains("svn")),
        "the scan saw git-svn run"
    );
    for line in &lines {
        assert!(!line.contains(PASSWORD), "in a command line: {line}");
    }
    assert!(!run.all_output().contains(PASSWORD), "{}", run.all_output());
    let mirror_config =
        std::fs::read_to_string(area.mirror("svn/secret").join("config")).expect("config");
    assert!(!mirror_config.contains(PASSWORD), "{mirror_config}");
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// hg credentials in the URL go to Mercurial through the spec's private
/// ~/.hgrc for the length of the fetch: never a command line, and no file of
/// the working area keeps them.
#[test]
fn hg_credentials_stay_out_of_argv_and_the_working_area() {
    if !have(&[
        ("hg", &["--version", "--quiet"], "mercurial"),
        ("sh", &["-c", "command -v git-remote-hg"], "git-remote-hg"),
    ]) {
        return;
    }
    const PASSWORD: &str = "pw-hg-7c41d2";
    let area = Area::new();
    let home = area.path().join("home");
    let hgrepo = area.path().join("hgrepo");
    tool(&home, area.path(), "hg", &["init", "hgrepo"]);
    std::fs::write(hgrepo.join("a.txt"), "a\n").expect("write");
    tool(&home, &hgrepo, "hg", &["add", "-q", "a.txt"]);
    tool(
        &home,
        &hgrepo,
        "hg",
        &["commit", "-q", "-u", "T <t@e>", "-m", "one"],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = Command::new("hg")
        .args([
            "serve",
            "--address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .current_dir(&hgrepo)
        .env("HOME", &home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hg serve");
    wait_until_listening(port);
    let url = format!("http://alice:{PASSWORD}@127.0.0.1:{port}/");
    let down = area.downstream("hg/secret");
    let file = area.lorry_file(
        "h.lorry",
        &json!({ "hg/secret": { "type": "hg", "url": url } }),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_command_lines(stop.clone());
    let run = area.run(&[&file], &["--verbose"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lines = watcher.join().expect("watcher");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["cat-file", "-p", "master:a.txt"]), "a");
    assert!(
        lines.iter().any(|l| l.contains("hg")),
        "the scan saw hg run"
    );
    for line in &lines {
        assert!(!line.contains(PASSWORD), "in a command line: {line}");
    }
    assert!(!run.all_output().contains(PASSWORD), "{}", run.all_output());
    assert_eq!(
        files_holding(&area.working_area(), PASSWORD),
        Vec::<String>::new()
    );
}

fn wait_until_listening(port: u16) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "server on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// bzr credentials in the URL go to brz through the spec's private
/// authentication.conf while brz runs: never a command line, and no file of
/// the working area keeps them.
#[test]
fn bzr_credentials_stay_out_of_argv_and_the_working_area() {
    if !have(&[
        ("brz", &["version"], "brz"),
        ("brz", &["help", "fast-export"], "brz"),
        (
            "/usr/bin/python3",
            &["-c", "import fastimport"],
            "python3-fastimport",
        ),
    ]) {
        return;
    }
    const PASSWORD: &str = "pw-bzr-93aa10";
    let area = Area::new();
    let home = area.path().join("home");
    let branch = area.path().join("bzrbranch");
    tool(&home, area.path(), "brz", &["init", "-q", "bzrbranch"]);
    std::fs::write(branch.join("a.txt"), "a\n").expect("write");
    tool(&home, &branch, "brz", &["add", "-q", "a.txt"]);
    tool(&home, &branch, "brz", &["commit", "-q", "-m", "one"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = Command::new("brz")
        .args(["serve", "--listen=127.0.0.1", &format!("--port={port}")])
        .arg(format!("--directory={}", branch.display()))
        .env("HOME", &home)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("brz serve");
    wait_until_listening(port);
    let url = format!("bzr://alice:{PASSWORD}@127.0.0.1:{port}/");
    let down = area.downstream("bzr/secret");
    let file = area.lorry_file(
        "b.lorry",
        &json!({ "bzr/secret": { "type": "bzr", "url": url } }),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_command_lines(stop.clone());
    let run = area.run(&[&file], &["--verbose"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lines = watcher.join().expect("watcher");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["cat-file", "-p", "master:a.txt"]), "a");
    assert!(
        lines.iter().any(|l| l.contains("brz")),
        "the scan saw brz run"
    );
    for line in &lines {
        assert!(!line.contains(PASSWORD), "in a command line: {line}");
    }
    assert!(!run.all_output().contains(PASSWORD), "{}", run.all_output());
    assert_eq!(
        files_holding(&area.working_area(), PASSWORD),
        Vec::<String>::new()
    );
}

/// A cvs pserver password in the CVSROOT goes to git cvsimport and cvsps
/// through a scrambled ~/.cvspass in the spec's private HOME while the import
/// runs: never a command line, lorry's output or a file of the working area.
/// The upstream is a real `cvs pserver`, one per connection as inetd runs it,
/// that refuses a wrong password.
#[test]
fn cvs_pserver_password_stays_out_of_argv_and_the_working_area() {
    if !have(&[
        ("cvs", &["--version"], "cvs"),
        ("sh", &["-c", "command -v cvsps"], "cvsps"),
        ("openssl", &["version"], "openssl"),
        (
            "sh",
            &["-c", "git cvsimport -h 2>&1 | grep -q usage:"],
            "git-cvs",
        ),
    ]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    const PASSWORD: &str = "pw-cvs-5be07f";
    let area = Area::new();
    let home = area.path().join("home");
    // The pserver switches to the system user named in CVSROOT/passwd (when
    // run as root it refuses root itself): its repository lives in a
    // directory that user can reach and write (cvs takes locks).
    let server_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(server_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let root = server_dir.path().join("cvsroot");
    let root_s = root.to_str().expect("utf8");
    tool(&home, area.path(), "cvs", &["-Q", "-d", root_s, "init"]);
    let import = area.path().join("import");
    std::fs::create_dir_all(&import).expect("mkdir");
    std::fs::write(import.join("a.txt"), "a\n").expect("write");
    tool(
        &home,
        &import,
        "cvs",
        &[
            "-Q", "-d", root_s, "import", "-m", "init", "mod", "vendor", "start",
        ],
    );
    let mut openssl = Command::new("openssl")
        .args(["passwd", "-1", "-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    {
        use std::io::Write;
        let mut stdin = openssl.stdin.take().expect("stdin");
        writeln!(stdin, "{PASSWORD}").expect("password to openssl");
    }
    let hash = openssl.wait_with_output().expect("openssl");
    assert!(hash.status.success());
    let hash = String::from_utf8(hash.stdout).expect("utf8");
    let system_user = if tool(&home, area.path(), "id", &["-u"]).trim() == "0" {
        "nobody".to_owned()
    } else {
        tool(&home, area.path(), "id", &["-un"]).trim().to_owned()
    };
    std::fs::write(
        root.join("CVSROOT/passwd"),
        format!("alice:{}:{system_user}\n", hash.trim()),
    )
    .expect("passwd");
    let config = root.join("CVSROOT/config");
    let mut text = std::fs::read_to_string(&config).unwrap_or_default();
    text.push_str("SystemAuth=no\n");
    std::fs::write(&config, text).expect("config");
    tool(&home, area.path(), "chmod", &["-R", "a+rwX", root_s]);

    // One `cvs pserver` per connection, its stdin and stdout the socket.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let allow = format!("--allow-root={root_s}");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (Ok(input), output) = (stream.try_clone(), stream) else {
                continue;
            };
            let child = Command::new("cvs")
                .args([allow.as_str(), "pserver"])
                .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(input)))
                .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                    output,
                )))
                .stderr(std::process::Stdio::null())
                .spawn();
            if let Ok(mut child) = child {
                std::thread::spawn(move || child.wait());
            }
        }
    });

    let cvsroot = |password: &str| format!(":pserver:alice:{password}@127.0.0.1:{port}{root_s}");
    let down = area.downstream("cvs/secret");
    let wrong = area.lorry_file(
        "wrong.lorry",
        &json!({ "cvs/secret": { "type": "cvs", "url": cvsroot("not-it"), "module": "mod" } }),
    );
    let run = area.run(&[&wrong], &[]);
    assert_ne!(
        run.code,
        0,
        "the pserver checks the password: {}",
        run.all_output()
    );

    let file = area.lorry_file(
        "c.lorry",
        &json!({ "cvs/secret": { "type": "cvs", "url": cvsroot(PASSWORD), "module": "mod" } }),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_command_lines(stop.clone());
    let run = area.run(&[&file], &["--verbose"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lines = watcher.join().expect("watcher");
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["cat-file", "-p", "master:a.txt"]), "a");
    assert!(
        lines.iter().any(|l| l.contains("cvsimport")),
        "the scan saw git cvsimport run"
    );
    for line in &lines {
        assert!(!line.contains(PASSWORD), "in a command line: {line}");
    }
    assert!(!run.all_output().contains(PASSWORD), "{}", run.all_output());
    assert_eq!(
        files_holding(&area.working_area(), PASSWORD),
        Vec::<String>::new()
    );
    assert_eq!(
        files_holding(&area.working_area(), "/1 :pserver:"),
        Vec::<String>::new(),
        "the .cvspass is gone after the import"
    );
}
