//! Mail on lorry failure, recovery and overdue (`--mail-to`), over SMTP
//! with lettre: STARTTLS by default (`--smtp-tls`), AUTH with
//! `--smtp-username` and `--smtp-password-file`, `--smtp-ca-file` for a
//! private CA.
//!
//! Like a webhook, the mailer keeps its place in the event log in STATEDB
//! (a row named [`CURSOR_NAME`] in `webhooks`) and retries a failed send
//! with waits doubling up to [`RETRY_MAX`], so a mail server that is down
//! delays mail and loses none. With `--mail-digest SECONDS` a lorry gets
//! at most one mail per period: its first event is mailed at once, those
//! that follow within the period are gathered into one mail sent when the
//! period ends. Gathered events wait in memory: a restart mails them no
//! more (their events are in the log).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lc_api::{Event, EventType};
use lc_base::redact::Secret;
use lc_core::db::{EventFilter, StateDb};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::time::Instant;

/// The mailer's cursor row in `webhooks` (a webhook may not be named so).
pub const CURSOR_NAME: &str = "mail:";

/// The event types mailed.
pub const TYPES: [EventType; 3] = [
    EventType::LorryFailed,
    EventType::LorryRecovered,
    EventType::LorryOverdue,
];

/// The longest wait between attempts to send.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// How often the mailer looks for new events and ended periods.
const POLL: Duration = Duration::from_millis(500);

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    /// STARTTLS, required: no mail over a plain connection.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS (a local relay).
    None,
}

/// Where and how mail goes.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM text of extra CA certificates.
    pub ca_pem: Option<Vec<u8>>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// At most one mail per lorry per this period.
    pub digest: Option<Duration>,
}

impl MailSettings {
    /// Checks the options; errors name the option and value (never a
    /// password).
    #[expect(clippy::too_many_arguments, reason = "one per option")]
    pub fn new(
        host: Option<&str>,
        port: Option<u16>,
        tls: SmtpTls,
        username: Option<&str>,
        password_file: Option<&Path>,
        ca_file: Option<&Path>,
        from: Option<&str>,
        to: &[String],
        digest: u64,
    ) -> Result<MailSettings, String> {
        let host = host
            .filter(|h| !h.trim().is_empty())
            .ok_or("--mail-to needs --smtp-host")?
            .to_owned();
        let mailbox = |option: &str, text: &str| {
            text.parse::<Mailbox>()
                .map_err(|e| format!("{option} {text:?}: not a mail address: {e}"))
        };
        let from = mailbox("--mail-from", from.ok_or("--mail-to needs --mail-from")?)?;
        let to = to
            .iter()
            .map(|t| mailbox("--mail-to", t))
            .collect::<Result<Vec<_>, _>>()?;
        let password = password_file
            .map(|file| {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    format!(
                        "--smtp-password-file {}: cannot read it: {e}",
                        file.display()
                    )
                })?;
                Ok::<_, String>(Secret::new(text.trim()))
            })
            .transpose()?;
        if password.is_some() != username.is_some() {
            return Err("--smtp-username and --smtp-password-file go together".into());
        }
        if username.is_some() && tls == SmtpTls::None {
            return Err(
                "--smtp-username: a password is never sent without TLS (--smtp-tls none)".into(),
            );
        }
        let ca_pem = ca_file
            .map(|file| {
                let pem = std::fs::read(file).map_err(|e| {
                    format!("--smtp-ca-file {}: cannot read it: {e}", file.display())
                })?;
                Certificate::from_pem(&pem).map_err(|e| {
                    format!(
                        "--smtp-ca-file {}: not a PEM certificate: {e}",
                        file.display()
                    )
                })?;
                Ok::<_, String>(pem)
            })
            .transpose()?;
        Ok(MailSettings {
            port: port.unwrap_or(match tls {
                SmtpTls::Tls => 465,
                SmtpTls::Starttls => 587,
                SmtpTls::None => 25,
            }),
            host,
            tls,
            username: username.map(str::to_owned),
            password,
            ca_pem,
            from,
            to,
            digest: (digest > 0).then(|| Duration::from_secs(digest)),
        })
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let params = || {
            let mut builder = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.ca_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| e.to_string())?;
                builder = builder.add_root_certificate(cert);
            }
            builder.build_rustls().map_err(|e| e.to_string())
        };
        let tls = match self.tls {
            SmtpTls::Starttls => Tls::Required(params()?),
            SmtpTls::Tls => Tls::Wrapper(params()?),
            SmtpTls::None => Tls::None,
        };
        let hello = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .map_or_else(ClientId::default, ClientId::Domain);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .hello_name(hello)
            .timeout(Some(Duration::from_secs(30)));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(builder.build())
    }
}

/// The mail about `events` (one lorry's, oldest first).
fn message(settings: &MailSettings, path: &str, events: &[Event]) -> Result<Message, String> {
    let subject = match events {
        [one] => match one.event_type {
            EventType::LorryFailed => format!(
                "lorry-controller: {path} failed ({} in a row)",
                one.body["consecutive_failures"]
            ),
            EventType::LorryRecovered => format!("lorry-controller: {path} recovered"),
            EventType::LorryOverdue => format!("lorry-controller: {path} is overdue"),
            other => format!("lorry-controller: {path}: {}", other.name()),
        },
        many => format!("lorry-controller: {path}: {} events", many.len()),
    };
    let mut text = String::new();
    for event in events {
        text.push_str(&format!(
            "#{}  {}  {}  {}\n{}\n\n",
            event.id,
            lc_base::timefmt::utc(event.time),
            event.event_type.name(),
            path,
            serde_json::to_string_pretty(&event.body).unwrap_or_default()
        ));
    }
    let mut builder = Message::builder()
        .from(settings.from.clone())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in &settings.to {
        builder = builder.to(to.clone());
    }
    builder.body(text).map_err(|e| e.to_string())
}

/// One lorry's digest state.
#[derive(Default)]
struct Digest {
    last_sent: Option<Instant>,
    waiting: Vec<Event>,
}

/// Sends `events` about `path`, retrying until it went.
async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    settings: &MailSettings,
    path: &str,
    events: &[Event],
) {
    let message = match message(settings, path, events) {
        Ok(message) => message,
        Err(err) => {
            tracing::warn!(%path, %err, "cannot make a mail");
            return;
        }
    };
    let mut wait = Duration::from_secs(1);
    loop {
        match transport.send(message.clone()).await {
            Ok(_) => return,
            Err(err) => {
                let err = lc_base::redact::redact(&lc_base::errors::chain(&err)).into_owned();
                tracing::warn!(%path, %err, "cannot send mail; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Mails events after `delivered`, forever.
pub async fn mail(db: Arc<StateDb>, settings: MailSettings, mut delivered: i64) {
    let transport = match settings.transport() {
        Ok(transport) => transport,
        Err(err) => {
            tracing::error!(%err, "mail: cannot set up SMTP; no mail will be sent");
            return;
        }
    };
    let mut digests: BTreeMap<String, Digest> = BTreeMap::new();
    loop {
        // Periods that ended: their gathered events go.
        if let Some(period) = settings.digest {
            for (path, digest) in &mut digests {
                if !digest.waiting.is_empty()
                    && digest.last_sent.is_none_or(|t| t.elapsed() >= period)
                {
                    let events = std::mem::take(&mut digest.waiting);
                    send(&transport, &settings, path, &events).await;
                    digest.last_sent = Some(Instant::now());
                }
            }
            digests.retain(|_, d| {
                !d.waiting.is_empty() || d.last_sent.is_some_and(|t| t.elapsed() < period)
            });
        }
        let filter = EventFilter {
            since: delivered,
            types: TYPES.to_vec(),
            limit: 100,
            ..EventFilter::default()
        };
        let read = {
            let db = Arc::clone(&db);
            tokio::task::spawn_blocking(move || db.read(|tx| tx.events(&filter))).await
        };
        let events = match read {
            Ok(Ok((events, _))) => events,
            Ok(Err(err)) => {
                tracing::warn!(%err, "mail: cannot read events");
                Vec::new()
            }
            Err(err) => {
                tracing::warn!(%err, "mail: cannot read events");
                Vec::new()
            }
        };
        if events.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        for event in events {
            let path = event.path.clone().unwrap_or_default();
            match settings.digest {
                None => send(&transport, &settings, &path, std::slice::from_ref(&event)).await,
                Some(period) => {
                    let digest = digests.entry(path.clone()).or_default();
                    if digest.last_sent.is_none_or(|t| t.elapsed() >= period)
                        && digest.waiting.is_empty()
                    {
                        send(&transport, &settings, &path, std::slice::from_ref(&event)).await;
                        digest.last_sent = Some(Instant::now());
                    } else {
                        digest.waiting.push(event.clone());
                    }
                }
            }
            delivered = event.id;
            let db = Arc::clone(&db);
            let recorded = tokio::task::spawn_blocking(move || {
                db.write(|tx| tx.webhook_delivered(CURSOR_NAME, delivered))
            })
            .await;
            if !matches!(recorded, Ok(Ok(()))) {
                tracing::warn!("mail: cannot record where mail got to; it may be sent again");
            }
        }
    }
}
