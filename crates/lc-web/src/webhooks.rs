//! Webhooks: every event (of a hook's types, about names with its prefix)
//! POSTed as its JSON to the hook's URL, signed with HMAC-SHA256 over the
//! body (`X-Lorry-Signature: sha256=<hex>`) when the hook has a secret.
//!
//! The event log is the outbox: each hook's row in STATEDB (`webhooks`)
//! holds the id of the last event it delivered, and a task per hook sends
//! the events after it in id order, one at a time, recording each success.
//! So delivery is at least once (a crash between a POST and its record
//! sends that event again), in order (per lorry too), and survives any
//! restart. A failed attempt (no answer within [`TIMEOUT`], or an answer
//! other than 2xx) is retried after a wait that doubles from
//! `--webhook-retry-min` up to `--webhook-retry-max`; after
//! [`FAILING_AFTER`] failures in a row the hook counts as failing (logged,
//! on the status page, in `GET /1.0/webhooks`) and is still retried. The
//! tasks use their own HTTP client and one short transaction per event, so
//! a slow or dead receiver never slows the webapp.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use hmac::{Hmac, Mac};
use lc_api::{Event, EventType, Webhook, Webhooks};
use lc_base::redact::{Secret, SecretUrl, redact};
use lc_core::db::{EventFilter, StateDb, WebhookRow};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;

/// Failures in a row after which a hook counts as failing.
pub const FAILING_AFTER: i64 = 5;

/// How long one delivery may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How often a hook with nothing to send looks for new events.
const POLL: Duration = Duration::from_millis(250);

/// Events read from STATEDB at a time.
const BATCH: i64 = 100;

/// `--webhook-retry-min` and `--webhook-retry-max` unless given, in seconds.
pub const DEFAULT_RETRY_MIN: f64 = 1.0;
pub const DEFAULT_RETRY_MAX: f64 = 600.0;

/// One hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Its key in STATEDB: the name given, else its URL with credentials
    /// hidden.
    pub name: String,
    pub url: SecretUrl,
    pub secret: Option<Secret>,
    /// Event types sent (all when empty).
    pub types: Vec<EventType>,
    pub prefix: Option<String>,
}

/// Every hook and how failed deliveries are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    pub hooks: Vec<Hook>,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for WebhookSettings {
    fn default() -> WebhookSettings {
        WebhookSettings {
            hooks: Vec::new(),
            retry_min: Duration::from_secs_f64(DEFAULT_RETRY_MIN),
            retry_max: Duration::from_secs_f64(DEFAULT_RETRY_MAX),
        }
    }
}

/// One entry of `--webhooks-file` (a JSON list of them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileHook {
    name: Option<String>,
    url: String,
    secret_file: Option<PathBuf>,
    #[serde(default)]
    types: Vec<String>,
    prefix: Option<String>,
}

/// The secret in `file` (one line; surrounding white space is not part
/// of it).
fn read_secret(file: &Path, what: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{what} {}: cannot read it: {e}", file.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{what} {}: the file is empty", file.display()));
    }
    Ok(Secret::new(secret))
}

/// `url` if it is an http(s) URL. The error does not repeat the URL, which
/// may hold credentials in a form the redaction does not know.
fn check_url(url: &str, what: &str) -> Result<SecretUrl, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{what}: not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{what}: the scheme is {:?}; only http and https are supported",
            parsed.scheme()
        ));
    }
    Ok(SecretUrl::new(url))
}

/// The hooks of `--webhook` (each signed with `--webhook-secret-file`'s
/// secret, if given) and of `--webhooks-file`. Errors name the option or
/// file and the entry and field at fault.
pub fn load(
    urls: &[String],
    secret_file: Option<&Path>,
    file: Option<&Path>,
) -> Result<Vec<Hook>, String> {
    let secret = secret_file
        .map(|f| read_secret(f, "--webhook-secret-file"))
        .transpose()?;
    let mut hooks = Vec::new();
    for url in urls {
        let url = check_url(url, "--webhook")?;
        hooks.push(Hook {
            name: url.to_string(),
            url,
            secret: secret.clone(),
            types: Vec::new(),
            prefix: None,
        });
    }
    if let Some(file) = file {
        let shown = file.display();
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--webhooks-file {shown}: cannot read it: {e}"))?;
        let entries: Vec<FileHook> = serde_json::from_str(&text).map_err(|e| {
            format!("--webhooks-file {shown}: expected a JSON list of hooks (fields name, url, secret-file, types, prefix): {e}")
        })?;
        for (n, entry) in entries.into_iter().enumerate() {
            let what = format!("--webhooks-file {shown}: hook {}", n + 1);
            let url = check_url(&entry.url, &format!("{what}: url"))?;
            let secret = entry
                .secret_file
                .as_deref()
                .map(|f| read_secret(f, &format!("{what}: secret-file")))
                .transpose()?;
            let types = entry
                .types
                .iter()
                .map(|t| {
                    EventType::parse(t).ok_or_else(|| {
                        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
                        format!(
                            "{what}: types: no event type {t:?}; the types are {}",
                            known.join(", ")
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let name = match entry.name {
                Some(name) if name.trim().is_empty() => {
                    return Err(format!("{what}: name: must not be empty"));
                }
                Some(name)
                    if name.starts_with(crate::mqtt::CURSOR_PREFIX)
                        || name.starts_with(crate::mail::CURSOR_NAME) =>
                {
                    return Err(format!(
                        "{what}: name: {name:?}: names starting {:?} or {:?} are reserved",
                        crate::mqtt::CURSOR_PREFIX,
                        crate::mail::CURSOR_NAME
                    ));
                }
                Some(name) => name,
                None => url.to_string(),
            };
            hooks.push(Hook {
                name,
                url,
                secret,
                types,
                prefix: entry.prefix.filter(|p| !p.is_empty()),
            });
        }
    }
    let mut names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "two webhooks are named {:?}: give each a name of its own in --webhooks-file",
            pair[0]
        ));
    }
    Ok(hooks)
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut text = String::with_capacity(7 + 2 * digest.len());
    text.push_str("sha256=");
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// The wait before retrying after `failures` failures in a row.
fn backoff(settings: &WebhookSettings, failures: i64) -> Duration {
    let doublings = u32::try_from((failures - 1).clamp(0, 30)).unwrap_or(30);
    settings
        .retry_min
        .saturating_mul(1 << doublings)
        .min(settings.retry_max)
        .max(settings.retry_min.min(settings.retry_max))
}

/// Registers the configured hooks and `others` (the MQTT publisher's
/// cursor) in STATEDB (a new one starts at the newest event), before the
/// webapp serves, so no event made after start is missed. Answers their
/// states.
pub fn register(
    db: &StateDb,
    settings: &WebhookSettings,
    others: &[String],
) -> lc_core::Result<Vec<WebhookRow>> {
    let mut names: Vec<String> = settings.hooks.iter().map(|h| h.name.clone()).collect();
    names.extend_from_slice(others);
    db.write(|tx| tx.set_webhooks(&names))
}

/// Runs every hook's delivery task until dropped.
pub async fn deliver(db: Arc<StateDb>, settings: WebhookSettings, rows: Vec<WebhookRow>) {
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lorry-controller/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(err = %lc_base::errors::chain(&err), "webhooks: cannot make an HTTP client; no webhook will be delivered");
            return;
        }
    };
    let settings = Arc::new(settings);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, hook) in settings.hooks.iter().enumerate() {
        let Some(row) = rows.iter().find(|r| r.name == hook.name) else {
            continue;
        };
        tasks.spawn(run_hook(
            Arc::clone(&db),
            client.clone(),
            Arc::clone(&settings),
            index,
            row.delivered,
            row.failures,
        ));
    }
    while tasks.join_next().await.is_some() {}
}

/// Delivers hook number `index`'s events after `delivered`, forever.
async fn run_hook(
    db: Arc<StateDb>,
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
    index: usize,
    mut delivered: i64,
    mut failures: i64,
) {
    let hook = &settings.hooks[index];
    loop {
        let filter = EventFilter {
            since: delivered,
            types: hook.types.clone(),
            prefix: hook.prefix.clone(),
            limit: BATCH,
            last: false,
        };
        let events = {
            let db = Arc::clone(&db);
            tokio::task::spawn_blocking(move || db.read(|tx| tx.events(&filter)))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        };
        let events = match events {
            Ok((events, _)) if !events.is_empty() => events,
            Ok(_) => {
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(err) => {
                tracing::warn!(hook = %hook.name, %err, "webhook: cannot read events");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        for event in events {
            loop {
                match post(&client, hook, &event).await {
                    Ok(()) => break,
                    Err(error) => {
                        failures = record(&db, {
                            let name = hook.name.clone();
                            let error = error.clone();
                            move |tx| tx.webhook_failed(&name, &error)
                        })
                        .await
                        .unwrap_or(failures + 1);
                        if failures == FAILING_AFTER {
                            tracing::warn!(hook = %hook.name, %error, failures, "webhook failing");
                        } else {
                            tracing::debug!(hook = %hook.name, %error, failures, "webhook delivery failed");
                        }
                        tokio::time::sleep(backoff(&settings, failures)).await;
                    }
                }
            }
            if failures >= FAILING_AFTER {
                tracing::info!(hook = %hook.name, "webhook delivers again");
            }
            failures = 0;
            delivered = event.id;
            let name = hook.name.clone();
            let id = event.id;
            if let Err(err) = record(&db, move |tx| tx.webhook_delivered(&name, id)).await {
                // Sent again after a restart: at least once.
                tracing::warn!(hook = %hook.name, %err, "webhook: cannot record a delivery");
            }
        }
    }
}

/// Runs `f` in a write transaction on a blocking thread.
async fn record<T: Send + 'static>(
    db: &Arc<StateDb>,
    f: impl FnOnce(&lc_core::db::WriteTx<'_>) -> lc_core::Result<T> + Send + 'static,
) -> Result<T, String> {
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || db.write(f))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// One attempt to deliver `event`; the error never holds a secret.
async fn post(client: &reqwest::Client, hook: &Hook, event: &Event) -> Result<(), String> {
    let body = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let mut request = client
        .post(hook.url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Lorry-Event", event.event_type.name())
        .header("X-Lorry-Event-Id", event.id.to_string());
    if let Some(secret) = &hook.secret {
        request = request.header("X-Lorry-Signature", signature(secret, &body));
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| redact(&lc_base::errors::chain(&e.without_url())).into_owned())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// `GET /1.0/webhooks`: every hook, its filters and how delivery stands.
pub async fn webhooks(State(state): State<AppState>) -> Result<Json<Webhooks>, ApiError> {
    let hooks = state.config.webhooks.hooks.clone();
    let webhooks = state
        .read(move |tx| {
            let rows = tx.webhooks()?;
            let mut out = Vec::with_capacity(hooks.len());
            for hook in hooks {
                let row = rows.iter().find(|r| r.name == hook.name);
                let delivered = row.map_or(0, |r| r.delivered);
                let pending = tx.count_events(&EventFilter {
                    since: delivered,
                    types: hook.types.clone(),
                    prefix: hook.prefix.clone(),
                    ..EventFilter::default()
                })?;
                let failures = row.map_or(0, |r| r.failures);
                out.push(Webhook {
                    url: hook.url.to_string(),
                    signed: hook.secret.is_some(),
                    delivered,
                    pending,
                    failures,
                    failing: failures >= FAILING_AFTER,
                    last_error: row.and_then(|r| r.last_error.clone()),
                    last_attempt: row.and_then(|r| r.last_attempt),
                    last_success: row.and_then(|r| r.last_success),
                    name: hook.name,
                    types: hook.types,
                    prefix: hook.prefix,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(Json(Webhooks { webhooks }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        let secret = Secret::new("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_wait_longer_up_to_the_most() {
        let settings = WebhookSettings {
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..WebhookSettings::default()
        };
        let waits: Vec<u128> = [1, 2, 3, 4, 5, 1000]
            .map(|n| backoff(&settings, n).as_millis())
            .to_vec();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn bad_hooks_are_refused_naming_the_entry_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").expect("secret");
        let file = dir.path().join("hooks.json");
        let load_file = |text: &str| {
            std::fs::write(&file, text).expect("write");
            load(&[], None, Some(&file))
        };
        for (text, named) in [
            ("{", "expected a JSON list"),
            (r#"[{"url": "http://x/", "colour": 1}]"#, "colour"),
            (r#"[{"url": "ftp://x/"}]"#, "hook 1: url"),
            (
                r#"[{"url": "http://x/"}, {"url": "nonsense"}]"#,
                "hook 2: url",
            ),
            (
                r#"[{"url": "http://x/", "types": ["nope"]}]"#,
                "types: no event type \"nope\"",
            ),
            (
                r#"[{"url": "http://x/", "secret-file": "/nonexistent/s"}]"#,
                "secret-file",
            ),
            (
                r#"[{"url": "http://x/"}, {"url": "http://x/"}]"#,
                "two webhooks are named",
            ),
        ] {
            let err = load_file(text).expect_err(text);
            assert!(err.contains(named), "{text}: {err}");
        }
        let err = load(
            &["https://u:pw@h.example/?x".into()],
            Some(&dir.path().join("no")),
            None,
        )
        .expect_err("no secret file");
        assert!(err.contains("--webhook-secret-file"), "{err}");
        let err = load(&["mailto:u:pw@h.example".into()], None, None).expect_err("scheme");
        assert!(!err.contains("pw"), "{err}");

        let hooks = load_file(&format!(
            r#"[{{"name": "ci", "url": "https://u:pw@ci.example/hook", "secret-file": "{}",
                 "types": ["job-ended"], "prefix": "up/"}}]"#,
            secret.display()
        ))
        .expect("good");
        assert_eq!(hooks[0].name, "ci");
        assert_eq!(hooks[0].secret.as_ref().map(Secret::expose), Some("s3cret"));
        assert_eq!(hooks[0].types, [EventType::JobEnded]);
        let hooks = load(
            &["https://u:pw@ci.example/hook".into()],
            Some(&secret),
            None,
        )
        .expect("good");
        assert!(!hooks[0].name.contains("pw"), "{:?}", hooks[0].name);
        assert!(!format!("{hooks:?}").contains("s3cret"));
    }
}
