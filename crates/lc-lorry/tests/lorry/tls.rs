//! TLS verification, global and per spec, against `openssl s_server` with
//! a self-signed certificate on 127.0.0.1.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

/// `openssl s_server -WWW` serving the files of `dir` over HTTPS with a
/// fresh self-signed certificate; killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path) -> Self {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl is needed: install the Debian package openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ]);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut child = Command::new("openssl")
            .args([
                "s_server", "-quiet", "-WWW", "-cert", "cert.pem", "-key", "key.pem",
            ])
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "s_server exited"
            );
            assert!(Instant::now() < deadline, "s_server not listening");
            std::thread::yield_now();
        }
        Self { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn certificate_checks_follow_the_option_and_each_spec() {
    let area = Area::new();
    let site = area.path().join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(site.join("data.txt"), "over tls\n").expect("write");
    let server = TlsServer::start(&site);
    let raw = |check: Option<bool>| {
        let mut spec = json!({ "type": "raw-file", "urls": [{ "url": server.url("data.txt") }] });
        if let Some(check) = check {
            spec["check-certificates"] = json!(check);
        }
        spec
    };
    let file = area.lorry_file(
        "tls.lorry",
        &json!({
            "tls/verified": raw(None),
            "tls/unverified": raw(Some(false)),
            "tls/git-verified": { "type": "git", "url": server.url("repo.git") },
            "tls/git-unverified": { "type": "git", "url": server.url("repo.git"), "check-certificates": false },
        }),
    );
    let wa = format!("--working-area={}", area.working_area().display());
    let run = lorry(&["--pull-only", &wa, file.to_str().expect("utf8")]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    let line = |name: &str| {
        run.err
            .lines()
            .find(|l| l.starts_with(&format!("Error mirroring {name}:")))
            .map(str::to_owned)
    };
    // The self-signed certificate is refused by default...
    let verified = line("tls/verified").expect("verified download fails");
    assert!(
        verified.to_lowercase().contains("certificate"),
        "{verified}"
    );
    let git_verified = line("tls/git-verified").expect("verified git fails");
    assert!(git_verified.contains("certificate"), "{git_verified}");
    // ...and accepted when the spec says so: the download succeeds, and git
    // gets past TLS (s_server cannot speak git's smart HTTP, so it then
    // fails, but not on the certificate).
    assert!(line("tls/unverified").is_none(), "{}", run.err);
    assert_eq!(
        git(
            &area.mirror("tls/unverified"),
            &["cat-file", "-p", "master:data.txt"]
        ),
        "over tls"
    );
    let git_unverified = line("tls/git-unverified").expect("no git repository there");
    assert!(!git_unverified.contains("certificate"), "{git_unverified}");

    // --no-check-certificates applies to specs that do not say otherwise;
    // a spec's check-certificates: true still wins.
    let file = area.lorry_file(
        "global.lorry",
        &json!({ "tls/global": raw(None), "tls/strict": raw(Some(true)) }),
    );
    let run = lorry(&[
        "--pull-only",
        "--no-check-certificates",
        &wa,
        file.to_str().expect("utf8"),
    ]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert!(!run.err.contains("tls/global"), "{}", run.err);
    assert!(
        run.err.contains("Error mirroring tls/strict"),
        "{}",
        run.err
    );
}
