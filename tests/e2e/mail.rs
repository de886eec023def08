//! Failure and recovery mail through a real SMTP server on loopback:
//! Debian's aiosmtpd (`tests/fixtures/smtp_sink.py`), which requires
//! STARTTLS and then AUTH, with a certificate made by `openssl` for the
//! test; the digest mode gathers a lorry's events into one mail a period.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{READY_TIMEOUT, Webapp, all_output, lorry, wait_for};

const PASSWORD: &str = "SMTP-PASSWORD-3b8d";
const T0: i64 = 1_800_000_000;

/// The SMTP sink, stopped when dropped.
struct Sink {
    child: Child,
    port: u16,
    out: PathBuf,
    cert: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sink(dir: &Path) -> Sink {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        // A server certificate, not a CA's: rustls refuses a CA's as a
        // server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", all_output(&made));
    let out = dir.join("mail");
    std::fs::create_dir_all(&out).expect("mkdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_sink.py");
    // Debian's Python, where python3-aiosmtpd is installed.
    let child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .args([&cert, &key])
        .args(["lc-mailer", PASSWORD])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the SMTP sink (python3-aiosmtpd; see scripts/test-deps)");
    wait_for("the SMTP sink to listen", READY_TIMEOUT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    Sink {
        child,
        port,
        out,
        cert,
    }
}

/// Every mail received, oldest first.
fn mails(sink: &Sink) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&sink.out)
        .expect("mail dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("mail"))
        .collect()
}

fn subject(mail: &str) -> &str {
    mail.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
}

/// Ends a job for each due lorry: exit 1 for those in `failing`.
fn run_jobs(webapp: &Webapp, failing: &[&str]) {
    while let Some((id, path)) = webapp.give_me_job() {
        webapp.finish(
            id,
            if failing.contains(&path.as_str()) {
                1
            } else {
                0
            },
        );
    }
}

#[test]
fn failures_and_recoveries_are_mailed_in_digests_over_starttls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = start_sink(dir.path());
    let password_file = dir.path().join("smtp.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password");
    let webapp = Webapp::init(dir.path())
        .with_args(&[
            "--smtp-host=127.0.0.1".to_owned(),
            format!("--smtp-port={}", sink.port),
            "--smtp-username=lc-mailer".into(),
            format!("--smtp-password-file={}", password_file.display()),
            format!("--smtp-ca-file={}", sink.cert.display()),
            "--mail-from=Lorry Controller <lc@example.org>".into(),
            "--mail-to=ops@example.org".into(),
            "--mail-to=oncall@example.org".into(),
            "--mail-digest=20".into(),
            // No lorry-overdue among the events counted here.
            "--overdue-factor=10".into(),
        ])
        .start();
    webapp.pretend_time(T0);
    webapp.seed(&[lorry("ml/a"), lorry("ml/b")]);
    // ml/a fails three times; ml/b fails once, then recovers.
    run_jobs(&webapp, &["ml/a", "ml/b"]);
    webapp.pretend_time(T0 + 3_601);
    run_jobs(&webapp, &["ml/a"]);
    webapp.pretend_time(T0 + 2 * 3_601);
    run_jobs(&webapp, &["ml/a"]);

    // Each lorry's first event at once; the rest of its period in one
    // digest when the period ends.
    let all = wait_for(
        "four mails",
        READY_TIMEOUT + std::time::Duration::from_secs(30),
        || {
            let all = mails(&sink);
            (all.len() >= 4).then_some(all)
        },
    );
    assert_eq!(all.len(), 4, "{all:#?}");
    let about =
        |path: &str| -> Vec<&String> { all.iter().filter(|m| subject(m).contains(path)).collect() };
    let a = about("ml/a");
    let b = about("ml/b");
    assert_eq!((a.len(), b.len()), (2, 2), "{all:#?}");
    assert_eq!(subject(a[0]), "lorry-controller: ml/a failed (1 in a row)");
    assert_eq!(subject(a[1]), "lorry-controller: ml/a: 2 events");
    assert!(a[1].contains("\"consecutive_failures\": 3"), "{}", a[1]);
    assert_eq!(subject(b[0]), "lorry-controller: ml/b failed (1 in a row)");
    assert_eq!(subject(b[1]), "lorry-controller: ml/b recovered");
    for mail in &all {
        assert!(mail.contains("X-Sink-Tls: yes"), "{mail}");
        assert!(mail.contains("X-Sink-Auth: yes"), "{mail}");
        assert!(mail.contains("X-Sink-From: lc@example.org"), "{mail}");
        assert!(
            mail.contains("X-Sink-To: ops@example.org,oncall@example.org"),
            "{mail}"
        );
        assert!(!mail.contains(PASSWORD), "{mail}");
    }
    assert!(!webapp.log().contains(PASSWORD));
}

const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");

#[test]
fn bad_mail_options_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("pw");
    std::fs::write(&password, PASSWORD).expect("pw");
    let pw = format!("--smtp-password-file={}", password.display());
    for (args, named) in [
        (
            vec!["--mail-to=ops@example.org", "--mail-from=lc@example.org"],
            "--smtp-host",
        ),
        (
            vec!["--mail-to=ops@example.org", "--smtp-host=h"],
            "--mail-from",
        ),
        (
            vec![
                "--mail-to=not an address",
                "--smtp-host=h",
                "--mail-from=lc@example.org",
            ],
            "--mail-to",
        ),
        (
            vec![
                "--mail-to=ops@example.org",
                "--smtp-host=h",
                "--mail-from=lc@example.org",
                "--smtp-tls=none",
                "--smtp-username=u",
                &pw,
            ],
            "--smtp-tls none",
        ),
        (
            vec![
                "--mail-to=ops@example.org",
                "--smtp-host=h",
                "--mail-from=lc@example.org",
                "--smtp-ca-file=/nonexistent",
            ],
            "--smtp-ca-file",
        ),
    ] {
        let out = Command::new(WEBAPP)
            .arg(format!("--statedb={}", dir.path().join("w.db").display()))
            .args(&args)
            .output()
            .expect("run webapp");
        let text = all_output(&out);
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(text.contains(named), "{args:?}: {text}");
        assert!(!text.contains(PASSWORD), "{args:?}: {text}");
    }
}
