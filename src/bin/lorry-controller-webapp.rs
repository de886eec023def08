//! `lorry-controller-webapp`: owns STATEDB and the run queue, serves the HTTP API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use clap::{CommandFactory, Parser, ValueEnum};
use lc_core::db::StateDb;
use lc_hosts::{self as hosts, Politeness, Secret};
use lc_web::{AppState, Downstream, HostSettings, WebConfig};
use lorry_controller::logging::LogFormat;

/// Mirrors upstream repositories on a schedule: the controlling web application.
#[derive(Debug, Parser)]
#[command(name = "lorry-controller-webapp", version, args_override_self = true)]
struct Options {
    /// Read options from this INI file's [config] section (keys are long option names).
    #[arg(long, value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Check the CONFGIT checked out in DIR, print its problems and exit (1 on problems).
    #[arg(long, value_name = "DIR")]
    check_config: Option<PathBuf>,
    /// The STATEDB SQLite file; created if missing.
    #[arg(long, value_name = "FILE")]
    statedb: PathBuf,
    /// Where the local clone of CONFGIT lives.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/lorry-controller/confgit"
    )]
    configuration_directory: PathBuf,
    /// URL of CONFGIT.
    #[arg(long, value_name = "URL")]
    confgit_url: Option<String>,
    /// Branch of CONFGIT to follow.
    #[arg(long, value_name = "BRANCH", default_value = "master")]
    confgit_branch: String,
    /// Clone or update CONFGIT before reading it (the default).
    #[arg(long, overrides_with = "no_debug_real_confgit")]
    debug_real_confgit: bool,
    /// Read the configuration directory as it is, without git.
    #[arg(long)]
    no_debug_real_confgit: bool,
    /// Also write the status page to this file on every status request.
    #[arg(long, value_name = "FILE")]
    status_html: Option<PathBuf>,
    /// Directory of static files served at /lc-static/.
    #[arg(long, value_name = "DIR")]
    static_files: Option<PathBuf>,
    /// Accepted for compatibility; templates are built into the binary.
    #[arg(long, value_name = "DIR", hide = true)]
    templates: Option<PathBuf>,
    /// Accepted for compatibility; the webapp always serves HTTP itself.
    #[arg(long, hide = true)]
    wsgi: bool,
    /// Address to listen on.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    debug_host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = 12765)]
    debug_port: u16,
    /// Write the port listened on to this file once connections are accepted.
    #[arg(long, value_name = "FILE")]
    debug_port_file: Option<PathBuf>,
    /// Seconds without an update after which a running job counts as lost.
    #[arg(long, value_name = "SECONDS", default_value_t = 6 * 3600)]
    ghost_timeout: i64,
    /// remove-old-jobs forgets finished jobs older than this many seconds...
    #[arg(long, value_name = "SECONDS", default_value_t = 3 * 86_400)]
    job_max_age: i64,
    /// ... but keeps this many of the newest jobs of each lorry.
    #[arg(long, value_name = "N", default_value_t = 3)]
    job_keep_per_lorry: i64,
    /// Show the output of failed jobs on the status page.
    #[arg(long)]
    publish_failures: bool,
    /// Type of the Downstream Host.
    #[arg(long, alias = "downstream-host-type", value_enum, default_value_t = ServerType::Gitano)]
    git_server_type: ServerType,
    /// Directory of the bare repositories of a local Downstream Host.
    #[arg(long, value_name = "DIR")]
    local_base_directory: Option<PathBuf>,
    /// Name of the Downstream Host: Gitano is reached as git@HOST over ssh;
    /// GitLab and Gitea at https://HOST unless --downstream-http-url says otherwise.
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    downstream_host: String,
    /// Web address of a GitLab or Gitea Downstream Host (https://gitlab.example.com).
    #[arg(long, value_name = "URL")]
    downstream_http_url: Option<String>,
    /// ssh address of a Gerrit Downstream Host.
    #[arg(
        long,
        value_name = "URL",
        default_value = "ssh://lorry@localhost:29418"
    )]
    downstream_ssh_url: String,
    /// Visibility of groups, organisations and repositories created downstream.
    #[arg(long, value_name = "VISIBILITY", default_value = "private",
          value_parser = ["private", "internal", "public"])]
    downstream_visibility: String,
    /// API token of a GitLab Downstream Host (better: the -file option or the environment).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LORRY_GITLAB_PRIVATE_TOKEN",
        hide_env_values = true
    )]
    gitlab_private_token: Option<Secret>,
    /// File holding the API token of a GitLab Downstream Host.
    #[arg(long, value_name = "FILE")]
    gitlab_private_token_file: Option<PathBuf>,
    /// Access token of a Gitea Downstream Host (better: the -file option or the environment).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "LORRY_GITEA_ACCESS_TOKEN",
        hide_env_values = true
    )]
    gitea_access_token: Option<Secret>,
    /// File holding the access token of a Gitea Downstream Host.
    #[arg(long, value_name = "FILE")]
    gitea_access_token_file: Option<PathBuf>,
    /// Parent project of projects created on a Gerrit Downstream Host.
    #[arg(long, value_name = "PROJECT")]
    gerrit_parent_project: Option<String>,
    /// Largest share of an Upstream Host's lorries one listing may remove, in
    /// percent; a listing that would remove more removes nothing.
    #[arg(long, value_name = "PERCENT", default_value = "5", value_parser = parse_percent)]
    ls_shrink_limit: f64,
    /// Running jobs allowed per Upstream Host (lorries generated from its listing).
    #[arg(long, value_name = "N")]
    max_jobs_per_host: Option<i64>,
    /// API calls per second allowed to each host (GitLab, Gitea, Trove over http).
    #[arg(long, value_name = "N")]
    max_api_calls_per_second: Option<f64>,
    /// List Upstream Host HOST from the JSON file FILE instead of asking it (tests).
    #[arg(long, alias = "debug-fake-trove", value_name = "HOST=FILE")]
    debug_fake_upstream_host: Vec<String>,
    /// Serve POST /1.0/pretend-time (tests).
    #[arg(long)]
    debug_allow_pretend_time: bool,
    /// Where to log: a file, or stderr (syslog means stderr, which the journal collects).
    #[arg(long, value_name = "FILE")]
    log: Option<String>,
    /// Log level or tracing filter.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// Log lines as readable text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ServerType {
    Local,
    Gitano,
    Gitlab,
    Gitea,
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
) -> anyhow::Result<Option<Secret>> {
    match (value, file) {
        (Some(_), Some(_)) => bail!("--{name} and --{name}-file: give only one"),
        (Some(token), None) => Ok(Some(token.clone())),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("--{name}-file: cannot read {}", file.display()))?;
            let text = text.trim();
            if text.is_empty() {
                bail!("--{name}-file: {} is empty", file.display());
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
) -> anyhow::Result<hosts::Downstream> {
    let visibility = hosts::downstream::Visibility::parse(&options.downstream_visibility)
        .map_err(|e| anyhow!("--downstream-visibility: {e}"))?;
    let http_url = || {
        options
            .downstream_http_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", options.downstream_host))
    };
    Ok(match options.git_server_type {
        ServerType::Local => {
            let Some(base) = &options.local_base_directory else {
                bail!("--git-server-type local needs --local-base-directory");
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
                bail!(
                    "--git-server-type gitlab needs --gitlab-private-token, \
                     --gitlab-private-token-file or LORRY_GITLAB_PRIVATE_TOKEN"
                );
            };
            let gitlab =
                hosts::downstream::Gitlab::new(&http_url(), token, visibility, Arc::clone(polite))
                    .map_err(|e| anyhow!("--downstream-http-url: {e}"))?;
            hosts::Downstream::Gitlab(Arc::new(gitlab))
        }
        ServerType::Gitea => {
            let Some(token) = token(
                &options.gitea_access_token,
                &options.gitea_access_token_file,
                "gitea-access-token",
            )?
            else {
                bail!(
                    "--git-server-type gitea needs --gitea-access-token, \
                     --gitea-access-token-file or LORRY_GITEA_ACCESS_TOKEN"
                );
            };
            let gitea =
                hosts::downstream::Gitea::new(&http_url(), token, visibility, Arc::clone(polite))
                    .map_err(|e| anyhow!("--downstream-http-url: {e}"))?;
            hosts::Downstream::Gitea(Arc::new(gitea))
        }
        ServerType::Gerrit => {
            let target = hosts::ssh::SshTarget::parse(&options.downstream_ssh_url)
                .map_err(|e| anyhow!("--downstream-ssh-url: {e}"))?;
            hosts::Downstream::Gerrit(hosts::downstream::Gerrit::new(
                target,
                options.gerrit_parent_project.clone(),
            ))
        }
        ServerType::Gitano => {
            let target = hosts::ssh::SshTarget::new(Some("git"), &options.downstream_host, None)
                .map_err(|e| anyhow!("--downstream-host: {e}"))?;
            hosts::Downstream::Gitano(hosts::downstream::Gitano::new(target))
        }
    })
}

fn web_config(options: &Options) -> anyhow::Result<WebConfig> {
    if let Some(n) = options.max_jobs_per_host
        && n < 1
    {
        bail!("--max-jobs-per-host: {n} must be at least 1");
    }
    if let Some(rate) = options.max_api_calls_per_second
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--max-api-calls-per-second: {rate} must be a positive number");
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
    let downstream = Downstream::Host {
        host: downstream_host(options, &downstream_polite)?,
        settings: HostSettings {
            polite,
            ls_shrink_limit: options.ls_shrink_limit,
            max_jobs_per_host: options.max_jobs_per_host,
        },
    };
    let mut fake_upstream_hosts = BTreeMap::new();
    for spec in &options.debug_fake_upstream_host {
        let Some((host, file)) = spec.split_once('=') else {
            bail!("--debug-fake-upstream-host: expected HOST=FILE, not {spec:?}");
        };
        fake_upstream_hosts.insert(host.to_owned(), PathBuf::from(file));
    }
    for (name, value) in [
        ("--ghost-timeout", options.ghost_timeout),
        ("--job-max-age", options.job_max_age),
        ("--job-keep-per-lorry", options.job_keep_per_lorry),
    ] {
        if value < 0 {
            bail!("{name}: {value} is negative");
        }
    }
    Ok(WebConfig {
        configuration_directory: options.configuration_directory.clone(),
        confgit_url: options.confgit_url.clone(),
        confgit_branch: options.confgit_branch.clone(),
        debug_real_confgit: !options.no_debug_real_confgit,
        status_html: options.status_html.clone(),
        static_files: options.static_files.clone(),
        ghost_timeout: options.ghost_timeout,
        job_max_age: options.job_max_age,
        job_keep_per_lorry: options.job_keep_per_lorry,
        publish_failures: options.publish_failures,
        downstream,
        fake_upstream_hosts,
        allow_pretend_time: options.debug_allow_pretend_time,
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(%err, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// The DIR of `--check-config DIR` (or `--check-config=DIR`), if given.
fn check_config_dir() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--check-config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(dir) = arg.to_str().and_then(|a| a.strip_prefix("--check-config=")) {
            return Some(PathBuf::from(dir));
        }
    }
    None
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(dir) = check_config_dir() {
        // A CI gate for CONFGIT: no STATEDB, no server; exit 1 on any problem.
        let report = lc_core::config::check_config(&dir);
        print!("{report}");
        std::process::exit(if report.is_clean() { 0 } else { 1 });
    }
    let args = lorry_controller::args_with_config_file(std::env::args_os(), &Options::command())?;
    let options = Options::parse_from(args);
    lorry_controller::logging::init_with_format(
        options.log.as_deref(),
        &options.log_level,
        options.log_format,
    )?;
    let config = web_config(&options)?;
    let db = StateDb::open(&options.statedb)?;
    // The per-host cap is an option of this run: recorded once at start-up
    // for give-me-job's queries, not on every request.
    let max_jobs_per_host = config.downstream.settings().max_jobs_per_host;
    db.write(|tx| tx.set_max_jobs_per_host(max_jobs_per_host))
        .context("cannot record --max-jobs-per-host in STATEDB")?;
    let listener = tokio::net::TcpListener::bind((options.debug_host.as_str(), options.debug_port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}",
                options.debug_host, options.debug_port
            )
        })?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    if let Some(file) = &options.debug_port_file {
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", address.port()))
            .and_then(|()| std::fs::rename(&tmp, file))
            .with_context(|| format!("--debug-port-file: cannot write {}", file.display()))?;
    }
    tracing::info!(%address, statedb = %options.statedb.display(), "listening");
    lc_web::serve(listener, AppState::new(db, config), shutdown_signal()).await?;
    Ok(())
}
