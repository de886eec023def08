//! Faults survived (issue 12): a CONFGIT upstream that never answers.

use crate::common;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Webapp, wait_for};

/// A TCP listener that accepts connections and never answers; counts them.
fn silent_upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            // Read what the client says, answer nothing, keep it open.
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    (port, accepted)
}

#[test]
fn a_confgit_that_never_answers_is_killed_and_reads_asked_meanwhile_are_coalesced() {
    let (port, accepted) = silent_upstream();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("git://127.0.0.1:{port}/confgit.git");
    let app = Arc::new(
        Webapp::init(dir.path())
            .with_args(&[
                "--debug-real-confgit",
                &format!("--confgit-url={url}"),
                "--confgit-timeout=3",
            ])
            .start(),
    );
    let first = {
        let app = Arc::clone(&app);
        std::thread::spawn(move || app.post("/1.0/read-configuration", &[]))
    };
    wait_for("git to connect", Duration::from_secs(30), || {
        (accepted.load(Ordering::SeqCst) >= 1).then_some(())
    });
    // While the first read hangs, every other request is answered at once:
    // 202 (coalesced), or 409 for a dry run, which cannot wait.
    for _ in 0..20 {
        let answer = app.post("/1.0/read-configuration", &[]);
        assert_eq!(answer.status, 202, "{}", answer.text);
        assert!(
            answer.body["message"]
                .as_str()
                .is_some_and(|m| m.contains("coalesced into one more read")),
            "{}",
            answer.text
        );
    }
    let dry = app.post("/1.0/read-configuration", &[("dry_run", "1")]);
    assert_eq!(dry.status, 409, "{}", dry.text);
    assert_eq!(app.get("/1.0/status").status, 200);
    assert!(
        !first.is_finished(),
        "the first read ended before its timeout"
    );

    let first = first.join().expect("first read");
    assert_eq!(first.status, 503, "{}", first.text);
    assert!(
        first.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish within 3 s and was killed")),
        "{}",
        first.text
    );
    // The twenty requests became one more read, which hangs and is killed too.
    let log = dir.path().join("webapp.log");
    wait_for(
        "the coalesced read to fail",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(&log)
                .ok()?
                .contains("coalesced read of CONFGIT failed")
                .then_some(())
        },
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one coalesced read");
    // Then the gate is free: a new read runs (and times out) itself.
    let again = app.post("/1.0/read-configuration", &[]);
    assert_eq!(again.status, 503, "{}", again.text);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
