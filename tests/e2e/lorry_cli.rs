//! The real `lorry` binary: exit codes, and the proxy taken from the
//! environment (`http_proxy`, as the minion sets from proxy.conf) for both
//! HTTP downloads and git.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
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
    let out = lorry()
        .arg("--pull-only")
        .arg(format!(
            "--working-area={}",
            tmp.path().join("wa").display()
        ))
        .arg(&spec)
        .output()
        .expect("run");
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
