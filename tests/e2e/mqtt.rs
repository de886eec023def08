//! Events published to a real Mosquitto broker started by the test, read
//! by a real `mosquitto_sub` with a persistent session: delivered in order,
//! nothing lost while the broker is down, and jobs and requests never
//! held up by it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::{READY_TIMEOUT, Webapp, all_output, lorry, terminate, wait_for};

/// A Mosquitto broker on `port`, stopped when dropped. Its persistence
/// file keeps the subscriber's session across a restart.
struct Broker {
    child: Child,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Broker {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                // As root, mosquitto would switch to its own user, which
                // cannot write the test's directory: stay.
                "user {}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nlog_dest file {}\n",
                String::from_utf8_lossy(
                    &Command::new("id").arg("-un").output().expect("id").stdout
                )
                .trim(),
                dir.display(),
                dir.join("mosquitto.log").display()
            ),
        )
        .expect("mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (Debian package mosquitto; see scripts/test-deps)");
        wait_for("mosquitto to listen", READY_TIMEOUT, || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Broker { child }
    }

    fn stop(mut self) {
        terminate(&mut self.child);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_sub` with a persistent session (QoS 1, clean session off),
/// each message a line `topic payload` in `out`; it reconnects by itself.
struct Subscriber {
    child: Child,
    out: PathBuf,
}

impl Subscriber {
    fn start(dir: &Path, port: u16) -> Subscriber {
        let out = dir.join("sub.out");
        let child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-c", "-i", "lc-e2e-subscriber", "-q", "1"])
            .args(["-t", "lc/events/#", "-F", "%t %p"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("sub.out"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_sub (Debian package mosquitto-clients)");
        let subscriber = Subscriber { child, out };
        // Subscribed once a probe comes through.
        wait_for("the subscriber to subscribe", READY_TIMEOUT, || {
            let probe = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-q", "1", "-t", "lc/events/probe", "-m", "{}"])
                .output()
                .expect("mosquitto_pub");
            assert!(probe.status.success(), "{}", all_output(&probe));
            std::thread::sleep(std::time::Duration::from_millis(100));
            subscriber
                .lines()
                .iter()
                .any(|(t, _)| t == "lc/events/probe")
                .then_some(())
        });
        subscriber
    }

    /// Every message as (topic, payload).
    fn lines(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(t, p)| (t.to_owned(), p.to_owned()))
            .collect()
    }

    /// The events received (probes left out), in arrival order.
    fn events(&self) -> Vec<(String, Value)> {
        self.lines()
            .into_iter()
            .filter(|(t, _)| t != "lc/events/probe")
            .map(|(t, p)| (t, serde_json::from_str(&p).expect("event JSON")))
            .collect()
    }

    /// The ids received, repeats of one publication in a row folded (QoS 1
    /// is at least once).
    fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .events()
            .iter()
            .map(|(_, e)| e["id"].as_i64().expect("id"))
            .collect();
        ids.dedup();
        ids
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn all_events(webapp: &Webapp) -> Vec<Value> {
    webapp.get_ok("/1.0/events?limit=1000")["events"]
        .as_array()
        .expect("events")
        .clone()
}

#[test]
fn events_reach_mosquitto_in_order_and_wait_while_it_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).expect("mkdir");
    let port = free_port();
    let broker = Broker::start(&broker_dir, port);
    let subscriber = Subscriber::start(&broker_dir, port);
    let webapp = Webapp::init(dir.path())
        .with_args(&[
            format!("--mqtt-url=mqtt://127.0.0.1:{port}"),
            "--mqtt-topic-prefix=lc/events/".into(),
        ])
        .start();
    webapp.pretend_time(1_800_000_000);
    webapp.post_ok("/1.0/stop-queue", &[]);
    webapp.post_ok("/1.0/start-queue", &[]);
    wait_for("the first events", READY_TIMEOUT, || {
        (subscriber.ids() == [1, 2]).then_some(())
    });

    // The broker goes away: jobs and requests go on, events wait.
    broker.stop();
    webapp.seed(&[lorry("mq/a"), lorry("mq/b")]);
    let mut jobs = 0;
    while let Some((id, _)) = webapp.give_me_job() {
        webapp.finish(id, if jobs == 0 { 0 } else { 1 });
        jobs += 1;
    }
    assert_eq!(jobs, 2);
    webapp.post_ok("/1.0/stop-queue", &[]);
    let events = all_events(&webapp);
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2 + 2 * 2 + 1 + 1, "{events:#?}");
    wait_for("the webapp to notice", READY_TIMEOUT, || {
        webapp
            .log()
            .contains("MQTT broker unreachable")
            .then_some(())
    });

    // Back on the same port: everything arrives, in order, as in the log.
    let _broker = Broker::start(&broker_dir, port);
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while subscriber.ids() != ids {
        assert!(
            std::time::Instant::now() < deadline,
            "every event: got {:?}, want {ids:?}; webapp log:\n{}\nmosquitto log:\n{}",
            subscriber.ids(),
            webapp.log(),
            std::fs::read_to_string(broker_dir.join("mosquitto.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for (topic, event) in subscriber.events() {
        let logged = events
            .iter()
            .find(|e| e["id"] == event["id"])
            .expect("logged");
        assert_eq!(&event, logged);
        assert_eq!(
            topic,
            format!("lc/events/{}", logged["type"].as_str().expect("type"))
        );
    }
}

const WEBAPP: &str = env!("CARGO_BIN_EXE_lorry-controller-webapp");

#[test]
fn bad_mqtt_options_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, named) in [
        (vec!["--mqtt-url=http://127.0.0.1:1883"], "--mqtt-url"),
        (
            vec!["--mqtt-url=mqtt://u:pw-5e1@127.0.0.1"],
            "--mqtt-username",
        ),
        (
            vec!["--mqtt-url=mqtt://127.0.0.1", "--mqtt-topic-prefix=a/#"],
            "--mqtt-topic-prefix",
        ),
        (
            vec![
                "--mqtt-url=mqtt://127.0.0.1",
                "--mqtt-password-file=/nonexistent",
            ],
            "--mqtt-password-file",
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
        assert!(!text.contains("pw-5e1"), "{args:?}: {text}");
    }
}
