//! End to end: give-me-job's long poll (`wait`), against the real webapp.
//! The webapp's cap is raised to an hour, so a request that is not woken
//! by what should wake it hangs past the harness's limits and fails.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{READY_TIMEOUT, Webapp, git_lorry, wait_for};
use serde_json::Value;

/// Give-me-jobs held open now, from `/1.0/metrics`.
pub(crate) fn waiting(webapp: &Webapp) -> i64 {
    let text = webapp.get("/1.0/metrics").text;
    text.lines()
        .find_map(|l| l.strip_prefix("lorry_controller_give_me_job_waiting "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(-1, |v| v as i64)
}

fn wait_until_waiting(webapp: &Webapp, n: i64) {
    wait_for(&format!("{n} waiting give-me-jobs"), READY_TIMEOUT, || {
        (waiting(webapp) == n).then_some(())
    });
}

/// A webapp whose give-me-jobs may wait an hour.
fn webapp(dir: &std::path::Path) -> Webapp {
    Webapp::init(dir)
        .with_args(&["--give-me-job-max-wait=3600"])
        .start()
}

/// A give-me-job sent by hand on its own connection, answered later; what
/// has arrived of the answer so far.
struct Asking(TcpStream, Vec<u8>);

impl Asking {
    fn send(webapp: &Webapp, form: &str) -> Asking {
        let mut stream = TcpStream::connect(("127.0.0.1", webapp.port)).expect("connect");
        let request = format!(
            "POST /1.0/give-me-job HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            webapp.port,
            form.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        Asking(stream, Vec::new())
    }

    /// The JSON answer, waiting for it up to `limit`; `None` if none came.
    fn answer_within(&mut self, limit: Duration) -> Option<Value> {
        self.0.set_read_timeout(Some(limit)).expect("timeout");
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&self.1).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n")
                && let Some(length) = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|n| n.trim().parse::<usize>().ok())
                })
                && body.len() >= length
            {
                assert!(head.starts_with("HTTP/1.1 200"), "{text}");
                return Some(serde_json::from_str(&body[..length]).expect("JSON answer"));
            }
            match self.0.read(&mut chunk) {
                Ok(0) => panic!("closed without an answer: {text}"),
                Ok(n) => self.1.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn answer(&mut self) -> Value {
        self.answer_within(READY_TIMEOUT)
            .expect("an answer within the harness's limit")
    }
}

/// A lorry that becomes due while a request waits is handed to that
/// request, started at its due time; a request without `wait` (the
/// original's minions) is answered at once with no job.
#[test]
fn a_lorry_becoming_due_is_handed_to_the_waiting_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = webapp(dir.path());
    webapp.seed(&[git_lorry("lp/a", 100, 600)]);
    webapp.pretend_time(1_000_000);
    let (id, _) = webapp.give_me_job().expect("a first job");
    webapp.finish(id, 0);

    // Not due until 1,000,100: the original-style request is answered at
    // once (it would otherwise hang for the hour).
    assert_eq!(webapp.give_me_job(), None);

    let mut asking = Asking::send(&webapp, "host=waiter&pid=7&wait=3600");
    wait_until_waiting(&webapp, 1);
    webapp.pretend_time(1_000_100);
    let job = asking.answer();
    assert_eq!(job["path"], "lp/a", "{job}");
    let info = webapp.job(job["job_id"].as_i64().expect("job id"));
    assert_eq!(info["host"], "waiter");
    assert_eq!(info["started"], 1_000_100, "started when it became due");
    assert_eq!(waiting(&webapp), 0);
}

/// With the real clock: a request waiting for a lorry due in two seconds
/// is answered with it when it is due, not before, by the webapp's own
/// timer (nothing else happens meanwhile).
#[test]
fn the_waiting_request_wakes_at_the_next_due_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = Webapp::init(dir.path())
        .with_args(&["--give-me-job-max-wait=3600"])
        .start();
    webapp.seed(&[git_lorry("lp/soon", 2, 600)]);
    let (id, _) = webapp.give_me_job().expect("a first job");
    webapp.finish(id, 0);
    let due = webapp.get_ok("/1.0/lorry/lp/soon")["due"]
        .as_i64()
        .expect("due");
    let mut asking = Asking::send(&webapp, "host=waiter&pid=7&idle=yes&wait=3600");
    let job = asking.answer();
    assert_eq!(job["path"], "lp/soon", "{job}");
    let info = webapp.job(job["job_id"].as_i64().expect("job id"));
    assert!(
        info["started"].as_i64().expect("started") >= due,
        "handed out only once due ({due}): {info}"
    );
}

/// 100 requests wait (the original's form without idle, and ours);
/// half hang up; then lorries become due. Only requests still there get
/// jobs, each job is running for the request that received it, and no
/// job runs for a request that is gone. Meanwhile the bound holds (a
/// request beyond it is answered at once), and stopping the webapp
/// answers the requests still waiting at once.
#[test]
fn hung_up_waiters_get_no_job_and_shutdown_answers_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = webapp(dir.path());
    let lorries: Vec<_> = (0..10)
        .map(|i| git_lorry(&format!("lp/r{i}"), 100, 600))
        .collect();
    webapp.seed(&lorries);
    webapp.pretend_time(2_000_000);
    // Every lorry runs once, so that none is due until 2,000,100.
    while let Some((id, _)) = webapp.give_me_job() {
        webapp.finish(id, 0);
    }
    let mut gone: Vec<Asking> = (0..50)
        .map(|i| Asking::send(&webapp, &format!("host=gone&pid={i}&wait=3600")))
        .collect();
    let live: Vec<Asking> = (0..50)
        .map(|i| Asking::send(&webapp, &format!("host=live&pid={i}&idle=yes&wait=3600")))
        .collect();
    wait_until_waiting(&webapp, 100);

    // Up to the bound of 128 waiting; one more is answered at once.
    let fill: Vec<Asking> = (0..28)
        .map(|i| Asking::send(&webapp, &format!("host=fill&pid={i}&wait=3600")))
        .collect();
    wait_until_waiting(&webapp, 128);
    let beyond = webapp.post_ok(
        "/1.0/give-me-job",
        &[("host", "beyond"), ("pid", "1"), ("wait", "3600")],
    );
    assert_eq!(beyond["job_id"], Value::Null, "{beyond}");
    drop(fill);

    for asking in gone.drain(..) {
        let _ = asking.0.shutdown(std::net::Shutdown::Both);
    }
    wait_until_waiting(&webapp, 50);
    webapp.pretend_time(2_000_100);

    let running = wait_for("10 jobs running", READY_TIMEOUT, || {
        let ids = webapp.get_ok("/1.0/list-running-jobs")["running_jobs"].clone();
        let ids: Vec<i64> = serde_json::from_value(ids).expect("ids");
        (ids.len() == 10).then_some(ids)
    });
    // Each job's answer follows its commit: look until all ten are in.
    let mut received = Vec::new();
    let mut still_waiting: Vec<Asking> = live;
    wait_for("the ten answers", READY_TIMEOUT, || {
        let mut waiting_yet = Vec::new();
        for mut asking in still_waiting.drain(..) {
            match asking.answer_within(Duration::from_millis(5)) {
                Some(job) => received.push(job["job_id"].as_i64().expect("a job")),
                None => waiting_yet.push(asking),
            }
        }
        still_waiting = waiting_yet;
        (received.len() >= 10).then_some(())
    });
    received.sort_unstable();
    assert_eq!(received, running, "each running job went to a live request");
    for id in &running {
        assert_eq!(webapp.job(*id)["host"], "live");
    }
    assert_eq!(still_waiting.len(), 40);

    // Shutdown does not wait for the hour: the waiting requests are
    // answered with no job and the webapp exits (within `stop`'s limit).
    let webapp_stopping = std::thread::spawn(move || webapp.stop());
    for asking in &mut still_waiting {
        assert_eq!(asking.answer()["job_id"], Value::Null);
    }
    webapp_stopping.join().expect("the webapp stopped");
}
