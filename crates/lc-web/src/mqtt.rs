//! Events published to an MQTT broker (`--mqtt-url mqtt://HOST[:PORT]`),
//! each as its JSON on topic `<--mqtt-topic-prefix>/<type>`, QoS 1.
//!
//! Like a webhook, the publisher keeps its place in the event log in
//! STATEDB (a row named [`CURSOR_NAME`] prefix in `webhooks`), sends one
//! event at a time and moves on only when the broker acknowledged it
//! (PUBACK). So publishing never blocks or fails a job or a request, events
//! made while the broker is down wait in STATEDB and are sent, in order,
//! once it is back, and a crash repeats at most the one event in flight.
//! rumqttc's event loop runs in a task of its own, reconnecting after a
//! wait that doubles up to [`RETRY_MAX`]; it tells the publisher which
//! packet ids went out and which were acknowledged.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lc_api::Event;
use lc_base::redact::Secret;
use lc_core::db::{EventFilter, StateDb};
use rumqttc::{AsyncClient, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::mpsc;

/// Rows of the publishers' cursors in `webhooks` are named with this
/// prefix (a webhook may not be).
pub const CURSOR_PREFIX: &str = "mqtt:";

/// How long an acknowledgement may take before the event is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait between connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(30);

/// How often a publisher with nothing to send looks for new events.
const POLL: Duration = Duration::from_millis(250);

/// `--mqtt-topic-prefix` unless given.
pub const DEFAULT_TOPIC_PREFIX: &str = "lorry-controller/events";

/// Where events are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl MqttSettings {
    /// The settings of `--mqtt-url` and friends; errors name the option.
    pub fn new(
        url: &str,
        topic_prefix: &str,
        username: Option<&str>,
        password_file: Option<&Path>,
    ) -> Result<MqttSettings, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("--mqtt-url: not a URL: {e}"))?;
        if parsed.scheme() != "mqtt" {
            return Err(format!(
                "--mqtt-url: the scheme is {:?}; only mqtt://HOST[:PORT] is supported",
                parsed.scheme()
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(
                "--mqtt-url: give credentials with --mqtt-username and --mqtt-password-file, not in the URL"
                    .into(),
            );
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("--mqtt-url: no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if parsed.path() != "" && parsed.path() != "/" {
            return Err(
                "--mqtt-url: a path is not expected; the topic is --mqtt-topic-prefix".into(),
            );
        }
        let topic_prefix = topic_prefix.trim_end_matches('/').to_owned();
        if topic_prefix.is_empty() || topic_prefix.contains(['+', '#', '\0']) {
            return Err(format!(
                "--mqtt-topic-prefix: {topic_prefix:?} must be non-empty, without + # or NUL"
            ));
        }
        let password = password_file
            .map(|file| {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    format!(
                        "--mqtt-password-file {}: cannot read it: {e}",
                        file.display()
                    )
                })?;
                Ok::<_, String>(Secret::new(text.trim()))
            })
            .transpose()?;
        if password.is_some() && username.is_none() {
            return Err("--mqtt-password-file needs --mqtt-username".into());
        }
        Ok(MqttSettings {
            host,
            port: parsed.port().unwrap_or(1883),
            topic_prefix,
            username: username.map(str::to_owned),
            password,
        })
    }

    /// The publisher's cursor row in STATEDB.
    pub fn cursor_name(&self) -> String {
        format!(
            "{CURSOR_PREFIX}//{}:{}/{}",
            self.host, self.port, self.topic_prefix
        )
    }
}

/// What the event loop tells the publisher.
enum Note {
    Sent(u16),
    Acked(u16),
    /// The connection failed or was lost; this session is over.
    Down(String),
}

fn mqtt_options(settings: &MqttSettings) -> MqttOptions {
    let mut options = MqttOptions::new(
        format!("lorry-controller-{}", std::process::id()),
        settings.host.clone(),
        settings.port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    if let Some(user) = &settings.username {
        options.set_credentials(
            user.clone(),
            settings
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default(),
        );
    }
    options
}

/// Drives one session's event loop until its connection fails.
async fn drive(mut eventloop: rumqttc::EventLoop, notes: mpsc::UnboundedSender<Note>) {
    loop {
        let note = match eventloop.poll().await {
            Ok(rumqttc::Event::Outgoing(Outgoing::Publish(pkid))) => Note::Sent(pkid),
            Ok(rumqttc::Event::Incoming(Packet::PubAck(ack))) => Note::Acked(ack.pkid),
            Ok(_) => continue,
            Err(err) => {
                let _ = notes.send(Note::Down(err.to_string()));
                return;
            }
        };
        if notes.send(note).is_err() {
            return;
        }
    }
}

/// The next events after `since` (empty when none or unreadable).
async fn next_events(db: &Arc<StateDb>, since: i64) -> Vec<Event> {
    let filter = EventFilter {
        since,
        limit: 100,
        ..EventFilter::default()
    };
    let db = Arc::clone(db);
    match tokio::task::spawn_blocking(move || db.read(|tx| tx.events(&filter))).await {
        Ok(Ok((events, _))) => events,
        Ok(Err(err)) => {
            tracing::warn!(%err, "MQTT: cannot read events");
            Vec::new()
        }
        Err(err) => {
            tracing::warn!(%err, "MQTT: cannot read events");
            Vec::new()
        }
    }
}

/// Publishes events after `delivered`, forever: one session (a client,
/// its event loop, a connection) at a time, a new one after a wait when
/// the connection fails or an acknowledgement does not come.
pub async fn publish(db: Arc<StateDb>, settings: MqttSettings, mut delivered: i64) {
    let name = settings.cursor_name();
    let broker = format!("{}:{}", settings.host, settings.port);
    let mut failures: u32 = 0;
    let mut queue: VecDeque<Event> = VecDeque::new();
    loop {
        let (client, eventloop) = AsyncClient::new(mqtt_options(&settings), 16);
        let (notes_tx, mut notes) = mpsc::unbounded_channel();
        let _driver = AbortOnDrop(tokio::spawn(drive(eventloop, notes_tx)));
        let error = loop {
            if queue.is_empty() {
                queue.extend(next_events(&db, delivered).await);
                if queue.is_empty() {
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            }
            let Some(event) = queue.front() else {
                continue;
            };
            if let Err(error) = send_one(&client, &mut notes, &settings, event).await {
                break error;
            }
            if failures > 0 {
                tracing::info!(%broker, "MQTT broker reachable again");
                failures = 0;
            }
            delivered = event.id;
            queue.pop_front();
            let db = Arc::clone(&db);
            let name = name.clone();
            let recorded = tokio::task::spawn_blocking(move || {
                db.write(|tx| tx.webhook_delivered(&name, delivered))
            })
            .await;
            if !matches!(recorded, Ok(Ok(()))) {
                tracing::warn!("MQTT: cannot record a publication; it may be sent again");
            }
        };
        failures = failures.saturating_add(1);
        if failures == 1 {
            tracing::warn!(%broker, %error, "MQTT broker unreachable; events wait in STATEDB");
        } else {
            tracing::debug!(%broker, %error, failures, "MQTT broker still unreachable");
        }
        drop(client);
        let wait = Duration::from_millis(100)
            .saturating_mul(1 << failures.min(16))
            .min(RETRY_MAX);
        tokio::time::sleep(wait).await;
    }
}

/// Publishes `event` and waits for the broker's acknowledgement.
async fn send_one(
    client: &AsyncClient,
    notes: &mut mpsc::UnboundedReceiver<Note>,
    settings: &MqttSettings,
    event: &Event,
) -> Result<(), String> {
    // Notes of an earlier event; a lost connection ends the session.
    while let Ok(note) = notes.try_recv() {
        if let Note::Down(error) = note {
            return Err(error);
        }
    }
    let topic = format!("{}/{}", settings.topic_prefix, event.event_type.name());
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let wait = async {
        client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .map_err(|e| e.to_string())?;
        let mut sent = None;
        while let Some(note) = notes.recv().await {
            match note {
                Note::Sent(pkid) if sent.is_none() => sent = Some(pkid),
                Note::Acked(pkid) if Some(pkid) == sent => return Ok(()),
                Note::Down(error) => return Err(error),
                _ => {}
            }
        }
        Err("the MQTT event loop ended".to_owned())
    };
    tokio::time::timeout(ACK_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| Err("no acknowledgement within 10 s".to_owned()))
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
