//! The webapp's command line, with the original's option names. Every
//! option can also be set in a `--config FILE` (`[config]` section, keys
//! are the long option names), see [`lc_startup::args_with_config_file`].
//! [`Options::web_config`] turns it into a [`WebConfig`], building the
//! Downstream Host of `--git-server-type`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use lc_hosts::{self as hosts, Politeness, Secret};
use lc_startup::logging::LogOptions;

use crate::{
    DEFAULT_CONFGIT_BRANCH, DEFAULT_CONFGIT_TIMEOUT, DEFAULT_GHOST_TIMEOUT,
    DEFAULT_JOB_KEEP_PER_LORRY, DEFAULT_JOB_MAX_AGE, HostSettings, WebConfig,
};

/// The least `--job-output-max`: room for a few lines at each end.
const MIN_JOB_OUTPUT_MAX: u64 = 1024;

/// An option, or a combination of options, that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    /// The message names the option(s) and what is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("--{option}: cannot read {}", file.display())]
    Read {
        option: String,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn invalid(message: impl Into<String>) -> OptionError {
    OptionError::Invalid(message.into())
}

/// Mirrors upstream repositories on a schedule: the controlling web application.
#[derive(Debug, Parser)]
#[command(name = "lorry-controller-webapp", version, args_override_self = true)]
pub struct Options {
    /// Read options from this INI file's [config] section (keys are long option names).
    #[arg(long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Check the CONFGIT checked out in DIR, print its problems and exit (1 on problems).
    #[arg(long, value_name = "DIR")]
    pub check_config: Option<PathBuf>,
    /// Put the STATEDB backup FILE in place of --statedb and exit; the
    /// webapp must be stopped. FILE is checked first (integrity, a schema
    /// version not newer than this binary's); STATEDB is replaced atomically.
    #[arg(long, value_name = "FILE", conflicts_with = "check_config")]
    pub restore: Option<PathBuf>,
    /// The STATEDB SQLite file; created if missing.
    #[arg(long, value_name = "FILE", required_unless_present = "check_config")]
    pub statedb: Option<PathBuf>,
    /// Where the local clone of CONFGIT lives.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/lorry-controller/confgit"
    )]
    pub configuration_directory: PathBuf,
    /// URL of CONFGIT.
    #[arg(long, value_name = "URL")]
    pub confgit_url: Option<String>,
    /// Branch of CONFGIT to follow.
    #[arg(long, value_name = "BRANCH", default_value = DEFAULT_CONFGIT_BRANCH)]
    pub confgit_branch: String,
    /// Seconds one update of the CONFGIT checkout may take; git is then
    /// killed and the read fails (503).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_CONFGIT_TIMEOUT,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub confgit_timeout: u64,
    /// Clone or update CONFGIT before reading it (the default).
    #[arg(long, overrides_with = "no_debug_real_confgit")]
    pub debug_real_confgit: bool,
    /// Read the configuration directory as it is, without git.
    #[arg(long)]
    pub no_debug_real_confgit: bool,
    /// Also write the status page to this file on every status request.
    #[arg(long, value_name = "FILE")]
    pub status_html: Option<PathBuf>,
    /// Write a copy of the grokmirror manifest (`/1.0/manifest.js.gz`) to
    /// this file (atomically) when it is requested and has changed.
    #[arg(long, value_name = "FILE")]
    pub manifest_file: Option<PathBuf>,
    /// The URL under which consumers fetch the downstream's repositories
    /// (`<URL>/<path>.git`), written into exported snapshot manifests
    /// (`?format=repo|text`); default for a local downstream: its
    /// directory as a file:// URL.
    #[arg(long, value_name = "URL")]
    pub export_fetch_base: Option<String>,
    /// Directory of static files served at /lc-static/.
    #[arg(long, value_name = "DIR")]
    pub static_files: Option<PathBuf>,
    /// Accepted for compatibility; templates are built into the binary.
    #[arg(long, value_name = "DIR", hide = true)]
    pub templates: Option<PathBuf>,
    /// Accepted for compatibility; the webapp always serves HTTP itself.
    #[arg(long, hide = true)]
    pub wsgi: bool,
    /// Address to listen on.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub debug_host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = 12765)]
    pub debug_port: u16,
    /// Write the port listened on to this file once connections are accepted.
    #[arg(long, value_name = "FILE")]
    pub debug_port_file: Option<PathBuf>,
    /// Longest, in seconds, a give-me-job that asks with `wait` is held
    /// open until a job can start (0: answered at once).
    #[arg(long, value_name = "SECONDS", default_value_t = crate::DEFAULT_GIVE_ME_JOB_MAX_WAIT.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub give_me_job_max_wait: u64,
    /// Seconds without an update after which a running job counts as lost.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_GHOST_TIMEOUT)]
    pub ghost_timeout: i64,
    /// remove-old-jobs forgets finished jobs older than this many seconds...
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_JOB_MAX_AGE)]
    pub job_max_age: i64,
    /// ... but keeps this many of the newest jobs of each lorry.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_JOB_KEEP_PER_LORRY)]
    pub job_keep_per_lorry: i64,
    /// Show the output of failed jobs on the status page.
    #[arg(long)]
    pub publish_failures: bool,
    /// Output kept per job (a size: 8MiB, 1G...): the first half and the
    /// most recent half, with a line saying how much was dropped between.
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = lc_startup::parse_size)]
    pub job_output_max: u64,
    /// Free space needed on STATEDB's file system (a size: 1GiB, 500M...);
    /// below it no job is handed out and the health check fails. 0: no limit.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = lc_startup::parse_size)]
    pub min_free_disk: u64,
    /// Type of the Downstream Host.
    #[arg(long, alias = "downstream-host-type", value_enum, default_value_t = ServerType::Gitano)]
    pub git_server_type: ServerType,
    /// Directory of the bare repositories of a local Downstream Host.
    #[arg(long, value_name = "DIR")]
    pub local_base_directory: Option<PathBuf>,
    /// Name of the Downstream Host: Gitano is reached as git@HOST over ssh;
    /// GitLab and Gitea at https://HOST unless --downstream-http-url says otherwise.
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    pub downstream_host: String,
    /// Web address of a GitLab or Gitea Downstream Host (https://gitlab.example.com).
    #[arg(long, value_name = "URL")]
    pub downstream_http_url: Option<String>,
    /// ssh address of a Gerrit Downstream Host.
    #[arg(
        long,
        value_name = "URL",
        default_value = "ssh://lorry@localhost:29418"
    )]
    pub downstream_ssh_url: String,
    /// Visibility of groups, organisations and repositories created downstream.
    #[arg(long, value_name = "VISIBILITY", default_value = "private",
          value_parser = ["private", "internal", "public"])]
    pub downstream_visibility: String,
    /// API token of a GitLab Downstream Host (better: the -file option or the environment).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LORRY_GITLAB_PRIVATE_TOKEN",
        hide_env_values = true
    )]
    pub gitlab_private_token: Option<Secret>,
    /// File holding the API token of a GitLab Downstream Host.
    #[arg(long, value_name = "FILE")]
    pub gitlab_private_token_file: Option<PathBuf>,
    /// Access token of a Gitea Downstream Host (better: the -file option or the environment).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LORRY_GITEA_ACCESS_TOKEN",
        hide_env_values = true
    )]
    pub gitea_access_token: Option<Secret>,
    /// File holding the access token of a Gitea Downstream Host.
    #[arg(long, value_name = "FILE")]
    pub gitea_access_token_file: Option<PathBuf>,
    /// Token of a GitHub Downstream Host (better: the -file option or the environment).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LORRY_GITHUB_TOKEN",
        hide_env_values = true
    )]
    pub github_token: Option<Secret>,
    /// File holding the token of a GitHub Downstream Host.
    #[arg(long, value_name = "FILE")]
    pub github_token_file: Option<PathBuf>,
    /// Keep CI/CD (GitLab pipelines, Gitea and GitHub Actions) on in
    /// repositories created downstream; off by default, so that mirrored
    /// pipelines never run.
    #[arg(long)]
    pub downstream_ci: bool,
    /// Parent project of projects created on a Gerrit Downstream Host.
    #[arg(long, value_name = "PROJECT")]
    pub gerrit_parent_project: Option<String>,
    /// Largest share of an Upstream Host's lorries one listing may remove, in
    /// percent; a listing that would remove more removes nothing.
    #[arg(long, value_name = "PERCENT", default_value = "5", value_parser = parse_percent)]
    pub ls_shrink_limit: f64,
    /// A lorry unchanged per its host's manifest is still given a job at
    /// least this often (30m, 2h, 1d, seconds or ISO 8601).
    #[arg(long, value_name = "DURATION", default_value = "24h",
          value_parser = lc_core::config::parse_duration)]
    pub full_check_every: i64,
    /// Running jobs allowed per Upstream Host (lorries generated from its listing).
    #[arg(long, value_name = "N")]
    pub max_jobs_per_host: Option<i64>,
    /// API calls per second allowed to each host (GitLab, Gitea, Trove over http).
    #[arg(long, value_name = "N")]
    pub max_api_calls_per_second: Option<f64>,
    /// List Upstream Host HOST from the JSON file FILE instead of asking it (tests).
    #[arg(long, alias = "debug-fake-trove", value_name = "HOST=FILE")]
    pub debug_fake_upstream_host: Vec<String>,
    /// Serve POST /1.0/pretend-time (tests).
    #[arg(long)]
    pub debug_allow_pretend_time: bool,
    /// Record no events: the baseline of benches/event_cost.rs only
    /// (webhooks, MQTT, mail and /1.0/events then see nothing).
    #[arg(long, hide = true)]
    pub debug_bench_without_events: bool,
    /// Events older than this many seconds are forgotten.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::events::DEFAULT_EVENT_MAX_AGE)]
    pub event_max_age: i64,
    /// A lorry not mirrored successfully within N times its interval (or,
    /// never mirrored, that failed N times in a row) gets a lorry-overdue event.
    #[arg(long, value_name = "N", default_value_t = crate::events::DEFAULT_OVERDUE_FACTOR,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub overdue_factor: i64,
    /// Keep at most N snapshots (the newest; those a channel points at are
    /// always kept). Default: all.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub snapshot_keep: Option<i64>,
    /// Remove snapshots taken more than this many seconds ago (those a
    /// channel points at are always kept). Default: never.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(0..))]
    pub snapshot_max_age: Option<i64>,
    /// Remove ref ledger rows that ended more than this many seconds ago
    /// and that no remaining snapshot shows. Default: never.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(0..))]
    pub ledger_max_age: Option<i64>,
    /// Seconds between looks for overdue lorries and old events.
    #[arg(long, value_name = "SECONDS",
          default_value_t = crate::events::DEFAULT_HOUSEKEEPING_INTERVAL,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub housekeeping_interval: u64,
    /// POST every event as JSON to URL (repeatable; see README, Webhooks).
    #[arg(long = "webhook", value_name = "URL")]
    pub webhook: Vec<String>,
    /// Sign --webhook deliveries (X-Lorry-Signature, HMAC-SHA256 of the
    /// body) with the secret in FILE.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// More webhooks, each with its own name, secret file, event types and
    /// prefix: a JSON list in FILE.
    #[arg(long, value_name = "FILE")]
    pub webhooks_file: Option<PathBuf>,
    /// Seconds before retrying a failed webhook delivery; doubled after
    /// each failure in a row up to --webhook-retry-max.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::webhooks::DEFAULT_RETRY_MIN)]
    pub webhook_retry_min: f64,
    /// The longest wait between attempts of a failing webhook.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::webhooks::DEFAULT_RETRY_MAX)]
    pub webhook_retry_max: f64,
    /// Publish every event to this MQTT broker (mqtt://HOST[:PORT]), QoS 1,
    /// on topic PREFIX/TYPE.
    #[arg(long, value_name = "URL")]
    pub mqtt_url: Option<String>,
    /// The topic prefix of --mqtt-url's publications.
    #[arg(long, value_name = "PREFIX", default_value = crate::mqtt::DEFAULT_TOPIC_PREFIX)]
    pub mqtt_topic_prefix: String,
    /// The user name to give the MQTT broker.
    #[arg(long, value_name = "NAME")]
    pub mqtt_username: Option<String>,
    /// The password to give the MQTT broker, read from FILE.
    #[arg(long, value_name = "FILE")]
    pub mqtt_password_file: Option<PathBuf>,
    /// Mail lorry failures, recoveries and overdue lorries to ADDRESS
    /// (repeatable).
    #[arg(long, value_name = "ADDRESS")]
    pub mail_to: Vec<String>,
    /// The sender of those mails.
    #[arg(long, value_name = "ADDRESS")]
    pub mail_from: Option<String>,
    /// At most one mail per lorry per this many seconds: later events of
    /// the period go in one mail at its end (0: a mail per event).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub mail_digest: u64,
    /// The SMTP server mail is submitted to.
    #[arg(long, value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// Its port (587 with STARTTLS, 465 with TLS, 25 without).
    #[arg(long, value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// How the connection is secured.
    #[arg(long, value_enum, default_value_t = crate::mail::SmtpTls::Starttls)]
    pub smtp_tls: crate::mail::SmtpTls,
    /// The user name to authenticate with.
    #[arg(long, value_name = "NAME")]
    pub smtp_username: Option<String>,
    /// The password to authenticate with, read from FILE.
    #[arg(long, value_name = "FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// Also trust the CA certificates (PEM) in FILE for the SMTP server.
    #[arg(long, value_name = "FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    #[command(flatten)]
    pub logging: LogOptions,
    /// Tokens, host names and connection limits.
    #[command(flatten)]
    pub access: crate::AccessOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerType {
    Local,
    Gitano,
    Gitlab,
    Gitea,
    Github,
    Gerrit,
}

/// `5`, `5%` or `0.5` percent, as a share from 0 to 1.
fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

/// A token given on the command line (or in the environment) or in a file;
/// not both.
fn token(
    value: &Option<Secret>,
    file: &Option<PathBuf>,
    name: &str,
) -> Result<Option<Secret>, OptionError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "--{name} and --{name}-file: give only one"
        ))),
        (Some(token), None) => Ok(Some(token.clone())),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|source| OptionError::Read {
                option: format!("{name}-file"),
                file: file.clone(),
                source,
            })?;
            let text = text.trim();
            if text.is_empty() {
                return Err(invalid(format!(
                    "--{name}-file: {} is empty",
                    file.display()
                )));
            }
            Ok(Some(Secret::new(text)))
        }
        (None, None) => Ok(None),
    }
}

/// The Downstream Host of `--git-server-type`, with its options.
fn downstream_host(
    options: &Options,
    polite: &Arc<Politeness>,
) -> Result<hosts::Downstream, OptionError> {
    let visibility = hosts::downstream::Visibility::parse(&options.downstream_visibility)
        .map_err(|e| invalid(format!("--downstream-visibility: {e}")))?;
    let http_url = || {
        options
            .downstream_http_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", options.downstream_host))
    };
    Ok(match options.git_server_type {
        ServerType::Local => {
            let Some(base) = &options.local_base_directory else {
                return Err(invalid(
                    "--git-server-type local needs --local-base-directory",
                ));
            };
            hosts::Downstream::Local(hosts::downstream::Local::new(base.clone()))
        }
        ServerType::Gitlab => {
            let Some(token) = token(
                &options.gitlab_private_token,
                &options.gitlab_private_token_file,
                "gitlab-private-token",
            )?
            else {
                return Err(invalid(
                    "--git-server-type gitlab needs --gitlab-private-token, \
                     --gitlab-private-token-file or LORRY_GITLAB_PRIVATE_TOKEN",
                ));
            };
            let gitlab =
                hosts::downstream::Gitlab::new(&http_url(), token, visibility, Arc::clone(polite))
                    .map_err(|e| invalid(format!("--downstream-http-url: {e}")))?
                    .with_ci(options.downstream_ci);
            hosts::Downstream::Gitlab(Arc::new(gitlab))
        }
        ServerType::Gitea => {
            let Some(token) = token(
                &options.gitea_access_token,
                &options.gitea_access_token_file,
                "gitea-access-token",
            )?
            else {
                return Err(invalid(
                    "--git-server-type gitea needs --gitea-access-token, \
                     --gitea-access-token-file or LORRY_GITEA_ACCESS_TOKEN",
                ));
            };
            let gitea =
                hosts::downstream::Gitea::new(&http_url(), token, visibility, Arc::clone(polite))
                    .map_err(|e| invalid(format!("--downstream-http-url: {e}")))?
                    .with_ci(options.downstream_ci);
            hosts::Downstream::Gitea(Arc::new(gitea))
        }
        ServerType::Github => {
            let Some(token) = token(
                &options.github_token,
                &options.github_token_file,
                "github-token",
            )?
            else {
                return Err(invalid(
                    "--git-server-type github needs --github-token, \
                     --github-token-file or LORRY_GITHUB_TOKEN",
                ));
            };
            let url = options
                .downstream_http_url
                .clone()
                .unwrap_or_else(|| "https://github.com".to_owned());
            let github =
                hosts::downstream::Github::new(&url, token, visibility, Arc::clone(polite))
                    .map_err(|e| invalid(format!("--downstream-http-url: {e}")))?
                    .with_ci(options.downstream_ci);
            hosts::Downstream::Github(Arc::new(github))
        }
        ServerType::Gerrit => {
            let target = hosts::ssh::SshTarget::parse(&options.downstream_ssh_url)
                .map_err(|e| invalid(format!("--downstream-ssh-url: {e}")))?;
            hosts::Downstream::Gerrit(hosts::downstream::Gerrit::new(
                target,
                options.gerrit_parent_project.clone(),
            ))
        }
        ServerType::Gitano => {
            let target = hosts::ssh::SshTarget::new(Some("git"), &options.downstream_host, None)
                .map_err(|e| invalid(format!("--downstream-host: {e}")))?;
            hosts::Downstream::Gitano(hosts::downstream::Gitano::new(target))
        }
    })
}

impl Options {
    /// The settings of the webapp, with the Downstream Host built; an
    /// option that cannot be used is an error naming it.
    pub fn web_config(&self) -> Result<WebConfig, OptionError> {
        let options = self;
        if let Some(n) = options.max_jobs_per_host
            && n < 1
        {
            return Err(invalid(format!(
                "--max-jobs-per-host: {n} must be at least 1"
            )));
        }
        if let Some(rate) = options.max_api_calls_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(invalid(format!(
                "--max-api-calls-per-second: {rate} must be a positive number"
            )));
        }
        let polite = Arc::new(Politeness::new(
            options.max_api_calls_per_second,
            hosts::Backoff::default(),
        ));
        // Preparing runs inside give-me-job, which a minion waits for: shorter
        // waits on a busy Downstream Host.
        let downstream_polite = Arc::new(Politeness::new(
            options.max_api_calls_per_second,
            hosts::Backoff {
                retries: 2,
                initial: std::time::Duration::from_secs(1),
                max_wait: std::time::Duration::from_secs(10),
            },
        ));
        let downstream = downstream_host(options, &downstream_polite)?;
        let mut fake_upstream_hosts = BTreeMap::new();
        for spec in &options.debug_fake_upstream_host {
            let Some((host, file)) = spec.split_once('=') else {
                return Err(invalid(format!(
                    "--debug-fake-upstream-host: expected HOST=FILE, not {spec:?}"
                )));
            };
            fake_upstream_hosts.insert(host.to_owned(), PathBuf::from(file));
        }
        for (name, value) in [
            ("--ghost-timeout", options.ghost_timeout),
            ("--job-max-age", options.job_max_age),
            ("--job-keep-per-lorry", options.job_keep_per_lorry),
            ("--event-max-age", options.event_max_age),
        ] {
            if value < 0 {
                return Err(invalid(format!("{name}: {value} is negative")));
            }
        }
        if options.job_output_max < MIN_JOB_OUTPUT_MAX {
            return Err(invalid(format!(
                "--job-output-max: {} bytes is less than the least allowed, {MIN_JOB_OUTPUT_MAX}",
                options.job_output_max
            )));
        }
        let mut webhooks = crate::webhooks::WebhookSettings {
            hooks: crate::webhooks::load(
                &options.webhook,
                options.webhook_secret_file.as_deref(),
                options.webhooks_file.as_deref(),
            )
            .map_err(invalid)?,
            ..Default::default()
        };
        for (name, value, into) in [
            (
                "--webhook-retry-min",
                options.webhook_retry_min,
                &mut webhooks.retry_min,
            ),
            (
                "--webhook-retry-max",
                options.webhook_retry_max,
                &mut webhooks.retry_max,
            ),
        ] {
            *into = std::time::Duration::try_from_secs_f64(value)
                .ok()
                .filter(|d| !d.is_zero() && d.as_secs() <= 86_400)
                .ok_or_else(|| {
                    invalid(format!(
                        "{name}: {value} is not between 0 and 86400 seconds"
                    ))
                })?;
        }
        let mqtt = match &options.mqtt_url {
            Some(url) => Some(
                crate::mqtt::MqttSettings::new(
                    url,
                    &options.mqtt_topic_prefix,
                    options.mqtt_username.as_deref(),
                    options.mqtt_password_file.as_deref(),
                )
                .map_err(invalid)?,
            ),
            None if options.mqtt_username.is_some() || options.mqtt_password_file.is_some() => {
                return Err(invalid(
                    "--mqtt-username and --mqtt-password-file need --mqtt-url",
                ));
            }
            None => None,
        };
        let mail = if options.mail_to.is_empty() {
            if options.smtp_host.is_some() || options.mail_from.is_some() {
                return Err(invalid("--smtp-host and --mail-from need --mail-to"));
            }
            None
        } else {
            Some(
                crate::mail::MailSettings::new(
                    options.smtp_host.as_deref(),
                    options.smtp_port,
                    options.smtp_tls,
                    options.smtp_username.as_deref(),
                    options.smtp_password_file.as_deref(),
                    options.smtp_ca_file.as_deref(),
                    options.mail_from.as_deref(),
                    &options.mail_to,
                    options.mail_digest,
                )
                .map_err(invalid)?,
            )
        };
        Ok(WebConfig {
            webhooks,
            mqtt,
            mail,
            job_output_max: options.job_output_max,
            min_free_disk: options.min_free_disk,
            confgit_timeout: std::time::Duration::from_secs(options.confgit_timeout),
            confgit_url: options.confgit_url.clone(),
            confgit_branch: options.confgit_branch.clone(),
            debug_real_confgit: !options.no_debug_real_confgit,
            status_html: options.status_html.clone(),
            static_files: options.static_files.clone(),
            manifest_file: options.manifest_file.clone(),
            export_fetch_base: options.export_fetch_base.clone(),
            ghost_timeout: options.ghost_timeout,
            give_me_job_max_wait: std::time::Duration::from_secs(options.give_me_job_max_wait),
            job_max_age: options.job_max_age,
            job_keep_per_lorry: options.job_keep_per_lorry,
            publish_failures: options.publish_failures,
            full_check_every: options.full_check_every,
            hosts: HostSettings {
                polite,
                ls_shrink_limit: options.ls_shrink_limit,
                max_jobs_per_host: options.max_jobs_per_host,
            },
            fake_upstream_hosts,
            allow_pretend_time: options.debug_allow_pretend_time,
            bench_without_events: options.debug_bench_without_events,
            housekeeping: crate::events::Housekeeping {
                interval: options.housekeeping_interval,
                overdue_factor: options.overdue_factor,
                event_max_age: options.event_max_age,
                retention: lc_core::db::Retention {
                    snapshot_keep: options.snapshot_keep,
                    snapshot_max_age: options.snapshot_max_age,
                    ledger_max_age: options.ledger_max_age,
                },
            },
            ..WebConfig::new(options.configuration_directory.clone(), downstream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(
            std::iter::once("lorry-controller-webapp").chain(args.iter().copied()),
        )
    }

    #[test]
    fn statedb_is_required_unless_checking_a_confgit() {
        let err = parse(&[]).expect_err("no --statedb");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(err.to_string().contains("--statedb"), "{err}");
        let options = parse(&["--check-config", "/x"]).expect("check only");
        assert_eq!(options.check_config, Some(PathBuf::from("/x")));
        assert_eq!(options.statedb, None);
        let options = parse(&["--statedb=/s.db"]).expect("statedb");
        assert_eq!(options.statedb, Some(PathBuf::from("/s.db")));
    }

    #[test]
    fn defaults_are_the_constructors() {
        let options = parse(&[
            "--statedb=/s.db",
            "--git-server-type=local",
            "--local-base-directory=/d",
        ])
        .expect("parse");
        let config = options.web_config().expect("config");
        let new = WebConfig::new(
            options.configuration_directory.clone(),
            config.downstream.clone(),
        );
        assert_eq!(config.confgit_branch, new.confgit_branch);
        assert_eq!(config.debug_real_confgit, new.debug_real_confgit);
        assert_eq!(config.ghost_timeout, new.ghost_timeout);
        assert_eq!(config.give_me_job_max_wait, new.give_me_job_max_wait);
        assert_eq!(config.job_max_age, new.job_max_age);
        assert_eq!(config.job_keep_per_lorry, new.job_keep_per_lorry);
        assert_eq!(config.publish_failures, new.publish_failures);
        assert_eq!(config.job_output_max, new.job_output_max);
        assert_eq!(config.min_free_disk, new.min_free_disk);
        assert_eq!(config.confgit_timeout, new.confgit_timeout);
        assert_eq!(config.hosts.ls_shrink_limit, new.hosts.ls_shrink_limit);
        assert_eq!(config.hosts.max_jobs_per_host, new.hosts.max_jobs_per_host);
        assert_eq!(config.downstream.kind(), "local");
    }

    #[test]
    fn unusable_options_are_named() {
        for (args, named) in [
            (&["--git-server-type=local"][..], "--local-base-directory"),
            (&["--git-server-type=gitlab"][..], "--gitlab-private-token"),
            (&["--ghost-timeout=-1"][..], "--ghost-timeout"),
            (&["--job-output-max=100"][..], "--job-output-max"),
            (&["--max-jobs-per-host=0"][..], "--max-jobs-per-host"),
            (
                &["--debug-fake-upstream-host=x"][..],
                "--debug-fake-upstream-host",
            ),
        ] {
            let mut all = vec!["--statedb=/s.db"];
            all.extend_from_slice(args);
            let err = parse(&all)
                .expect("parse")
                .web_config()
                .expect_err("unusable");
            assert!(err.to_string().contains(named), "{args:?}: {err}");
        }
    }
}
