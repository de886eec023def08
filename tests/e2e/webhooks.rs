//! Webhooks: real receivers on loopback that check every signature
//! (HMAC-SHA256 with the secret, as a receiver should), one that fails
//! for a while and then recovers, one that never answers, filters from a
//! `--webhooks-file`, and a webapp killed with SIGKILL with undelivered
//! events.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::common::{READY_TIMEOUT, Webapp, all_output, lorry, wait_for};

const SECRET: &str = "HOOK-SECRET-51c9";
const URL_PASSWORD: &str = "URL-PASSWORD-a07e";
const T0: i64 = 1_800_000_000;

/// One POST a receiver took (answered 2xx).
#[derive(Debug, Clone)]
struct Delivery {
    event: Value,
    event_header: String,
    id_header: String,
}

/// An HTTP receiver that checks each POST's `X-Lorry-Signature` against
/// its secret (a bad or missing one is a test failure, recorded), answers
/// 503 while `failing`, else 200 and records the delivery.
struct Receiver {
    port: u16,
    failing: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Delivery>>>,
    refused: Arc<Mutex<usize>>,
    bad: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start(secret: &'static str, failing: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let receiver = Receiver {
            port: listener.local_addr().expect("addr").port(),
            failing: Arc::new(AtomicBool::new(failing)),
            got: Arc::default(),
            refused: Arc::default(),
            bad: Arc::default(),
        };
        let (failing, got, refused, bad) = (
            Arc::clone(&receiver.failing),
            Arc::clone(&receiver.got),
            Arc::clone(&receiver.refused),
            Arc::clone(&receiver.bad),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (failing, got, refused, bad) = (
                    Arc::clone(&failing),
                    Arc::clone(&got),
                    Arc::clone(&refused),
                    Arc::clone(&bad),
                );
                std::thread::spawn(move || {
                    serve(stream, secret, &failing, &got, &refused, &bad);
                });
            }
        });
        receiver
    }

    fn url(&self) -> String {
        format!("http://hook:{URL_PASSWORD}@127.0.0.1:{}/hook", self.port)
    }

    fn ids(&self) -> Vec<i64> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .map(|d| d.event["id"].as_i64().expect("id"))
            .collect()
    }
}

/// Serves one connection's requests (keep-alive) until it closes.
fn serve(
    stream: TcpStream,
    secret: &str,
    failing: &AtomicBool,
    got: &Mutex<Vec<Delivery>>,
    refused: &Mutex<usize>,
    bad: &Mutex<Vec<String>>,
) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let length: usize = header("content-length").parse().unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(&body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let signature = header("x-lorry-signature");
        if !request_line.starts_with("POST /hook ")
            || signature != format!("sha256={expected}")
            || header("content-type") != "application/json"
        {
            bad.lock()
                .expect("lock")
                .push(format!("{request_line} {signature}"));
        }
        let status = if failing.load(Ordering::SeqCst) {
            *refused.lock().expect("lock") += 1;
            "503 Service Unavailable"
        } else {
            got.lock().expect("lock").push(Delivery {
                event: serde_json::from_slice(&body).unwrap_or(Value::Null),
                event_header: header("x-lorry-event"),
                id_header: header("x-lorry-event-id"),
            });
            "200 OK"
        };
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A listener that accepts connections and never answers.
fn black_hole() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// Every event in the log, oldest first.
fn all_events(webapp: &Webapp) -> Vec<Value> {
    webapp.get_ok("/1.0/events?limit=1000")["events"]
        .as_array()
        .expect("events")
        .clone()
}

fn hook<'a>(hooks: &'a Value, name_part: &str) -> &'a Value {
    hooks["webhooks"]
        .as_array()
        .expect("webhooks")
        .iter()
        .find(|h| h["name"].as_str().is_some_and(|n| n.contains(name_part)))
        .unwrap_or_else(|| panic!("no hook {name_part} in {hooks}"))
}

/// The ids received with repeats of the same delivery (at least once)
/// folded.
fn folded(ids: &[i64]) -> Vec<i64> {
    let mut ids = ids.to_vec();
    ids.dedup();
    ids
}

/// Stops and starts the queue `n` times: 2n events with no lorry.
fn queue_events(webapp: &Webapp, n: usize) {
    for _ in 0..n {
        webapp.post_ok("/1.0/stop-queue", &[]);
        webapp.post_ok("/1.0/start-queue", &[]);
    }
}

#[test]
fn webhooks_deliver_signed_events_in_order_through_a_failing_receiver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("hook.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret");
    let flaky = Receiver::start(SECRET, true);
    let filtered = Receiver::start(SECRET, false);
    let hole = black_hole();
    let hooks_file = dir.path().join("hooks.json");
    std::fs::write(
        &hooks_file,
        json!([{"name": "failures-of-a", "url": filtered.url(),
                "secret-file": secret_file, "types": ["job-ended", "lorry-failed"],
                "prefix": "ev/a"}])
        .to_string(),
    )
    .expect("hooks file");
    let webapp = Webapp::init(dir.path())
        .with_args(&[
            format!("--webhook={}", flaky.url()),
            format!("--webhook=http://127.0.0.1:{hole}/never"),
            format!("--webhook-secret-file={}", secret_file.display()),
            format!("--webhooks-file={}", hooks_file.display()),
            "--webhook-retry-min=0.05".into(),
            "--webhook-retry-max=0.2".into(),
        ])
        .start();
    webapp.pretend_time(T0);
    webapp.seed(&[lorry("ev/a"), lorry("ev/b"), lorry("ev/ab")]);
    queue_events(&webapp, 3);
    while let Some((id, _path)) = webapp.give_me_job() {
        webapp.finish(id, 1);
    }
    queue_events(&webapp, 1);
    let events = all_events(&webapp);
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 8 + 3 * 3, "{events:#?}");

    // The flaky receiver refuses: retried, marked failing, shown.
    let hooks = wait_for("the flaky hook to be failing", READY_TIMEOUT, || {
        let hooks = webapp.get_ok("/1.0/webhooks");
        (hook(&hooks, &flaky.port.to_string())["failing"] == true).then_some(hooks)
    });
    let failing = hook(&hooks, &flaky.port.to_string());
    assert!(failing["failures"].as_i64() >= Some(5), "{failing}");
    assert_eq!(
        failing["last_error"], "HTTP 503 Service Unavailable",
        "{failing}"
    );
    assert_eq!(failing["pending"], ids.len(), "{failing}");
    assert_eq!(failing["signed"], true);
    assert!(flaky.got.lock().expect("lock").is_empty());
    let page = webapp.get("/1.0/status-html").text;
    assert!(page.contains("<h2>Webhooks</h2>"), "{page}");
    assert!(page.contains("failing"), "{page}");

    // The filtered hook got only job-ended and lorry-failed of ev/a*.
    wait_for("the filtered hook to be done", READY_TIMEOUT, || {
        (hook(&webapp.get_ok("/1.0/webhooks"), "failures-of-a")["pending"] == 0).then_some(())
    });
    let expected: Vec<i64> = events
        .iter()
        .filter(|e| {
            ["job-ended", "lorry-failed"].contains(&e["type"].as_str().unwrap_or(""))
                && e["path"].as_str().is_some_and(|p| p.starts_with("ev/a"))
        })
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(expected.len(), 4, "{events:#?}");
    assert_eq!(folded(&filtered.ids()), expected);

    // The receiver recovers: everything arrives, in order, once each
    // (repeats only of the same event in a row), exactly as in the log.
    flaky.failing.store(false, Ordering::SeqCst);
    wait_for("the flaky hook to catch up", READY_TIMEOUT, || {
        (folded(&flaky.ids()) == ids).then_some(())
    });
    for delivery in flaky.got.lock().expect("lock").iter() {
        let id = delivery.event["id"].as_i64().expect("id");
        let logged = events.iter().find(|e| e["id"] == id).expect("logged");
        assert_eq!(&delivery.event, logged);
        assert_eq!(
            delivery.event_header,
            logged["type"].as_str().expect("type")
        );
        assert_eq!(delivery.id_header, id.to_string());
    }
    assert!(*flaky.refused.lock().expect("lock") >= 5);
    for receiver in [&flaky, &filtered] {
        let bad = receiver.bad.lock().expect("lock");
        assert!(bad.is_empty(), "bad requests: {bad:?}");
    }
    let hooks = wait_for("the hook to be well again", READY_TIMEOUT, || {
        let hooks = webapp.get_ok("/1.0/webhooks");
        (hook(&hooks, &flaky.port.to_string())["failing"] == false).then_some(hooks)
    });
    let well = hook(&hooks, &flaky.port.to_string());
    assert_eq!(
        (&well["failures"], &well["pending"], &well["last_error"]),
        (&json!(0), &json!(0), &Value::Null),
        "{well}"
    );
    // The hook that never answers holds up no one.
    let never = hook(&hooks, "/never");
    assert_eq!(never["delivered"], 0, "{never}");
    assert_eq!(never["signed"], true);

    let page = webapp.get("/1.0/status-html").text;
    let api = webapp.get("/1.0/webhooks").text;
    for (what, text) in [("log", webapp.log()), ("page", page), ("API", api)] {
        assert!(!text.contains(SECRET), "the hook secret in the {what}");
        assert!(!text.contains(URL_PASSWORD), "a URL password in the {what}");
    }
}

/// A webapp killed with SIGKILL while its hook's receiver was down sends
/// what it had not delivered once it runs again.
#[test]
fn undelivered_events_are_delivered_after_a_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("hook.secret");
    std::fs::write(&secret_file, SECRET).expect("secret");
    let receiver = Receiver::start(SECRET, false);
    let args = [
        format!("--webhook={}", receiver.url()),
        format!("--webhook-secret-file={}", secret_file.display()),
        "--webhook-retry-min=0.05".into(),
        "--webhook-retry-max=0.2".into(),
    ];
    let webapp = Webapp::init(dir.path()).with_args(&args).start();
    queue_events(&webapp, 1);
    wait_for("the first two events", READY_TIMEOUT, || {
        (receiver.ids() == [1, 2]).then_some(())
    });
    receiver.failing.store(true, Ordering::SeqCst);
    queue_events(&webapp, 2);
    wait_for("a refused delivery", READY_TIMEOUT, || {
        (*receiver.refused.lock().expect("lock") > 0).then_some(())
    });
    drop(webapp); // SIGKILL
    receiver.failing.store(false, Ordering::SeqCst);
    let webapp = Webapp::init(dir.path()).with_args(&args).start();
    wait_for("every event", READY_TIMEOUT, || {
        (folded(&receiver.ids()) == [1, 2, 3, 4, 5, 6]).then_some(())
    });
    // Events made after the restart follow.
    queue_events(&webapp, 1);
    wait_for("the new events", READY_TIMEOUT, || {
        (folded(&receiver.ids()) == [1, 2, 3, 4, 5, 6, 7, 8]).then_some(())
    });
    let bad = receiver.bad.lock().expect("lock");
    assert!(bad.is_empty(), "bad requests: {bad:?}");
}

const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");

/// Bad webhook options stop the webapp at start, naming what is wrong and
/// never showing a secret.
#[test]
fn bad_webhook_options_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks_file = dir.path().join("hooks.json");
    std::fs::write(
        &hooks_file,
        r#"[{"url": "http://127.0.0.1:1/", "types": ["job-ended", "nonsense"]}]"#,
    )
    .expect("hooks file");
    let run = |args: &[String]| {
        let out = Command::new(WEBAPP)
            .arg(format!("--statedb={}", dir.path().join("w.db").display()))
            .arg("--debug-port=0")
            .args(args)
            .output()
            .expect("run webapp");
        assert!(!out.status.success(), "{args:?}: {}", all_output(&out));
        all_output(&out)
    };
    let text = run(&[format!("--webhooks-file={}", hooks_file.display())]);
    assert!(
        text.contains("hook 1: types") && text.contains("nonsense"),
        "{text}"
    );
    let text = run(&[format!("--webhook=ftp://u:{URL_PASSWORD}@x.example/")]);
    assert!(text.contains("--webhook") && text.contains("ftp"), "{text}");
    assert!(!text.contains(URL_PASSWORD), "{text}");
    let text = run(&[
        "--webhook=http://127.0.0.1:1/".into(),
        format!(
            "--webhook-secret-file={}",
            dir.path().join("missing").display()
        ),
    ]);
    assert!(text.contains("--webhook-secret-file"), "{text}");
    let text = run(&["--webhook-retry-min=0".into()]);
    assert!(text.contains("--webhook-retry-min"), "{text}");
}
