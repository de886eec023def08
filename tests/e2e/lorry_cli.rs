//! The real `lorry` binary: exit codes, and the proxy taken from the
//! environment (`http_proxy`, as the minion sets from proxy.conf) for both
//! HTTP downloads and git.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::{Arc, Mutex};

fn lorry() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lorry"));
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// lorry `--pull-only` on `spec`, its working area `dir/wa`.
fn pull_only(dir: &std::path::Path, spec: &std::path::Path) -> Command {
    let mut cmd = lorry();
    cmd.arg("--pull-only")
        .arg(format!("--working-area={}", dir.join("wa").display()))
        .arg(spec);
    cmd
}

/// A fake proxy on 127.0.0.1: records each request line and the
/// Proxy-Authorization header, answers every request with `body`.
fn fake_proxy(body: &'static [u8]) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            record.lock().expect("lock").push(line.trim().to_owned());
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header.trim().is_empty() => break,
                    Ok(_) => {
                        if header
                            .to_ascii_lowercase()
                            .starts_with("proxy-authorization")
                        {
                            record.lock().expect("lock").push(header.trim().to_owned());
                        }
                    }
                }
            }
            let mut stream = stream;
            let status = if line.contains(".git/") {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let body: &[u8] = if status.starts_with("200") { body } else { b"" };
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = stream.write_all(body);
        }
    });
    (port, seen)
}

#[test]
fn help_usage_and_exit_codes() {
    let out = lorry().arg("--help").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--working-area",
        "--mirror-base-url-push",
        "--mirror-base-url-fetch",
        "--pull-only",
        "--verbose",
        "--repack",
        "--no-repack",
        "--bundle",
        "--bundle-dest",
        "--tarball",
        "--tarball-dest",
        "--push-option",
        "--check-certificates",
        "--no-check-certificates",
        "--keep-multiple-backups",
        "--config",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
    assert_eq!(lorry().output().expect("run").status.code(), Some(2));

    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("x.lorry");
    std::fs::write(
        &spec,
        r#"{"x": {"type": "git", "url": "file:///nonexistent/x"}}"#,
    )
    .expect("write");
    let out = pull_only(tmp.path(), &spec).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("Error mirroring x:"), "{stderr}");
}

#[test]
fn downloads_and_git_go_through_the_proxy_from_the_environment() {
    let (port, seen) = fake_proxy(b"payload through the proxy\n");
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = tmp.path().join("p.lorry");
    std::fs::write(
        &spec,
        r#"{
          "files/raw": {"type": "raw-file", "urls": [{"url": "http://upstream.invalid/dl/data.txt"}]},
          "code/repo": {"type": "git", "url": "http://upstream.invalid/code/repo.git"}
        }"#,
    )
    .expect("write");
    let proxy = format!("http://proxyuser:proxypass@127.0.0.1:{port}");
    let out = lorry()
        .env("http_proxy", &proxy)
        .env("HTTP_PROXY", &proxy)
        .arg("--pull-only")
        .arg("--verbose")
        .arg(format!(
            "--working-area={}",
            tmp.path().join("wa").display()
        ))
        .arg(&spec)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The git upstream does not exist behind the fake proxy: that spec fails.
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("Error mirroring code/repo"), "{stderr}");
    assert!(!stderr.contains("Error mirroring files/raw"), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("proxypass"));

    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET http://upstream.invalid/dl/data.txt")),
        "download not proxied: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET http://upstream.invalid/code/repo.git/info/refs")),
        "git not proxied: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l
            .to_ascii_lowercase()
            .starts_with("proxy-authorization: basic")),
        "proxy credentials not sent: {seen:?}"
    );
    // The downloaded file was committed.
    let mirror = tmp.path().join("wa/files%2Fraw/git");
    let out = Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg(format!("--git-dir={}", mirror.display()))
        .args(["cat-file", "-p", "master:data.txt"])
        .output()
        .expect("git");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "payload through the proxy\n"
    );
}

/// The program holding the client end of the loopback TCP connection
/// whose client port is `port`: its socket's inode from /proc/net/tcp,
/// then the process with that socket open.
fn program_connected_from(port: u16) -> Option<std::path::PathBuf> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&local.as_str())).then(|| fields.get(9).map(|s| s.to_string()))?
    })?;
    let socket = format!("socket:[{inode}]");
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str()) {
                return std::fs::read_link(process.path().join("exe")).ok();
            }
        }
    }
    None
}

/// A relay on 127.0.0.1 to `to`: records, for each connection, the
/// program at its other end, then passes the bytes both ways.
fn spy(to: u16) -> (u16, Arc<Mutex<Vec<Option<std::path::PathBuf>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let from = client.peer_addr().expect("peer").port();
            record
                .lock()
                .expect("lock")
                .push(program_connected_from(from));
            let server = std::net::TcpStream::connect(("127.0.0.1", to)).expect("daemon");
            for (mut a, mut b) in [
                (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                ),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (port, seen)
}

/// `git://` upstreams are reached through lorry itself as git's proxy
/// (which turns Nagle's algorithm off: 40 ms less per exchange), and the
/// mirror is whole; an upstream nobody listens at fails naming it.
#[test]
fn git_urls_go_through_lorry_itself_as_proxy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("up");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    crate::common::one_commit_upstream(&root, &work, "r");
    let daemon = crate::minion::Daemon::start(&root);
    let (port, seen) = spy(daemon.1);
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let spec = tmp.path().join("r.lorry");
    std::fs::write(
        &spec,
        format!(
            r#"{{"r": {{"type": "git", "url": "git://127.0.0.1:{port}/r.git"}},
                "gone": {{"type": "git", "url": "git://127.0.0.1:{closed}/r.git"}}}}"#
        ),
    )
    .expect("write");
    let out = pull_only(tmp.path(), &spec).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("Error mirroring r:"), "{stderr}");
    assert!(
        stderr.contains("Error mirroring gone:")
            && stderr.contains(&format!("cannot connect to 127.0.0.1:{closed}")),
        "{stderr}"
    );
    let lorry = std::fs::canonicalize(env!("CARGO_BIN_EXE_lorry")).expect("lorry");
    let seen = seen.lock().expect("lock").clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|p| p.as_ref() == Some(&lorry)), "{seen:?}");
    let mirror = tmp.path().join("wa/r/git");
    assert_eq!(
        crate::common::git(&mirror, &["rev-parse", "refs/heads/main"]),
        crate::common::git(&root.join("r.git"), &["rev-parse", "refs/heads/main"])
    );
}

/// A `git://` server that answers with an empty advertisement (a flush:
/// no refs) and then keeps its connection open, ignoring the client's
/// end of input (a half-close a middlebox does not pass on, or a server
/// that simply does not hang up).
fn server_that_never_hangs_up() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 4096];
                // The request line, then "no refs".
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"0000");
                while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                std::thread::sleep(std::time::Duration::from_secs(120));
            });
        }
    });
    port
}

/// Hostile review: git waits for its `core.gitProxy` to exit
/// (`finish_connect`), and lorry's proxy exits only when the server closes.
/// Without the proxy git closes its socket and is done at once; through
/// it, a server that does not hang up keeps the proxy, git and the whole
/// lorry run waiting for ever (nothing kills a fetch but the minion's
/// lorry-timeout). When git dies instead (a protocol error), the proxy
/// outlives it holding git's stderr, and lorry's wait for git's output
/// hangs the same way.
#[test]
fn a_git_server_that_never_hangs_up_does_not_hang_lorry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = server_that_never_hangs_up();
    let url = format!("git://127.0.0.1:{port}/r.git");
    // Control: git by itself is done (it closes its socket and ends).
    let plain = Command::new("git")
        .args(["-c", "protocol.version=0", "ls-remote", &url])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git");
    assert!(plain.status.success(), "{plain:?}");
    let spec = tmp.path().join("r.lorry");
    std::fs::write(
        &spec,
        format!(r#"{{"r": {{"type": "git", "url": "{url}"}}}}"#),
    )
    .expect("write");
    let mut child = pull_only(tmp.path(), &spec)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("run");
    // A hang guard: lorry ends as soon as git is done, long before this.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let finished = loop {
        if child.try_wait().expect("wait").is_some() {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    if !finished {
        let group = i32::try_from(child.id()).expect("pid");
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .status();
        let _ = child.wait();
    }
    assert!(
        finished,
        "lorry still waiting after 60 s for a server that never hangs up"
    );
}
