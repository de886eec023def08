//! `lorry-controller-admin`: drives a running webapp over its `/1.0` HTTP API.
//!
//! [`Cli`] is the command line, [`run`] sends the one or few requests a
//! command needs and returns what to print: the webapp's JSON as it came
//! (`--json`) or a human rendering ([`render`]). Errors carry the exit code
//! scripts see ([`Error::exit_code`]). The binary in `src/bin/` only parses
//! options and prints.

pub mod backup;
pub mod client;
pub mod parse;
pub mod render;
pub mod table;
pub mod terminal;

use clap::{Parser, Subcommand};
use lc_api::{JobIds, JobInfo, RunningJobs};
use reqwest::Url;
use std::path::PathBuf;

pub use client::{Client, EXIT_FILE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, Error};
pub use parse::{MaxJobsArg, Seconds};

/// How the exit codes read in every `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the webapp refused the request (a 4xx answer: unknown lorry or job, bad value); its message is printed
  2  usage error (bad options or arguments)
  3  the webapp cannot be reached, timed out, failed (5xx) or gave an answer that is not the expected JSON
  4  a local file cannot be written (backup)";

/// Drive a running lorry-controller webapp: queue, lorries, jobs, configuration.
#[derive(Debug, Parser)]
#[command(
    name = "lorry-controller-admin",
    version,
    after_help = EXIT_CODES,
    args_override_self = true,
    propagate_version = true
)]
pub struct Cli {
    /// Read options from this INI file's [config] section (keys are long option names).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Host name or address of the webapp.
    #[arg(long, global = true, value_name = "HOST", default_value = "localhost")]
    pub webapp_host: String,
    /// Port of the webapp.
    #[arg(long, global = true, value_name = "PORT", default_value_t = 12765)]
    pub webapp_port: u16,
    /// Base URL of the webapp (http://host:port/ or behind a path prefix);
    /// overrides --webapp-host and --webapp-port.
    #[arg(long, global = true, value_name = "URL", value_parser = parse::webapp_url)]
    pub webapp_url: Option<Url>,
    /// Give up on a request after this many seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// File holding the webapp's admin token (or LORRY_CONTROLLER_ADMIN_TOKEN);
    /// readable by this user only.
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the webapp's JSON answer as it came, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the queue state, the run queue, Upstream Hosts and CONFGIT problems.
    #[command(after_help = EXIT_CODES)]
    Status,
    /// List the paths of the run queue, next to run first.
    #[command(after_help = EXIT_CODES)]
    ListQueue,
    /// Show one lorry: its spec, schedule, last run and jobs.
    #[command(after_help = EXIT_CODES)]
    ShowLorry {
        /// Path of the lorry on the Downstream Host (upstream/foo).
        path: String,
    },
    /// List the jobs the webapp remembers, with their state.
    #[command(after_help = EXIT_CODES)]
    ListJobs {
        /// Only the jobs running now.
        #[arg(long)]
        running: bool,
    },
    /// Show one job and its output.
    #[command(after_help = EXIT_CODES)]
    ShowJob {
        /// The job's id.
        id: i64,
        /// Print only the job's output (--json is ignored).
        #[arg(long)]
        output: bool,
        /// Print the output exactly as recorded, terminal escape sequences and
        /// control characters included (by default they are removed, newlines
        /// and tabs kept: the output is an upstream's text).
        #[arg(long)]
        raw: bool,
    },
    /// Ask for a running job to be killed (its minion kills it at its next update).
    #[command(after_help = EXIT_CODES)]
    StopJob {
        /// The job's id.
        id: i64,
    },
    /// Make a lorry the next to run, due or not.
    #[command(after_help = EXIT_CODES)]
    MoveToTop {
        /// Path of the lorry.
        path: String,
    },
    /// Make a lorry run after every other due lorry.
    #[command(after_help = EXIT_CODES)]
    MoveToBottom {
        /// Path of the lorry.
        path: String,
    },
    /// Stop handing out jobs (running jobs go on).
    #[command(after_help = EXIT_CODES)]
    StopQueue,
    /// Start handing out jobs again.
    #[command(after_help = EXIT_CODES)]
    StartQueue,
    /// Show the limit of jobs running at once.
    #[command(after_help = EXIT_CODES)]
    GetMaxJobs,
    /// Set the limit of jobs running at once.
    #[command(after_help = EXIT_CODES)]
    SetMaxJobs {
        /// A number of jobs, or "none" for no limit.
        #[arg(value_name = "N|none", value_parser = parse::max_jobs)]
        max_jobs: MaxJobsArg,
    },
    /// Read CONFGIT and update the run queue and Upstream Hosts.
    #[command(after_help = EXIT_CODES)]
    ReadConfiguration {
        /// Only report what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// End jobs whose minion has gone silent for the webapp's --ghost-timeout (exit 127).
    #[command(after_help = EXIT_CODES)]
    RemoveGhostJobs,
    /// Forget finished jobs older than an age, keeping the newest of each lorry.
    #[command(after_help = EXIT_CODES)]
    RemoveOldJobs {
        /// Age of the jobs to forget: 3d, 12h, 90min, 45s or plain seconds
        /// (default: the webapp's --job-max-age).
        #[arg(long, value_name = "AGE", value_parser = parse::seconds)]
        max_age: Option<Seconds>,
        /// Newest finished jobs of each lorry kept whatever their age
        /// (default: the webapp's --job-keep-per-lorry).
        #[arg(long, value_name = "N")]
        keep: Option<u32>,
    },
    /// Show the newest events (state changes), oldest first; --follow
    /// keeps printing new ones.
    #[command(after_help = EXIT_CODES)]
    Events(EventsArgs),
    /// Save a consistent copy of STATEDB, taken while the webapp runs
    /// (needs the admin token; the webapp refuses when it has none).
    #[command(after_help = EXIT_CODES)]
    Backup {
        /// The file to write (atomically, mode 0600), or an existing
        /// directory to write statedb-<UTC time>.sqlite into.
        path: PathBuf,
        /// With a directory: keep only the newest N statedb-*.sqlite files in it.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
    },
}

/// What `events` asks for.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Keep printing new events as they happen, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// Only events of this type (repeatable): job-started, job-ended,
    /// lorry-failed, lorry-recovered, lorry-overdue, host-listing-failed,
    /// host-shrink-refused, config-problems, queue-stopped, queue-started,
    /// upstream-refs-rewritten.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse::event_type)]
    pub types: Vec<String>,
    /// Only events about lorries (or Upstream Hosts) whose name starts with this.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Events after this id (default: the newest --last ones).
    #[arg(long, value_name = "ID")]
    pub since: Option<i64>,
    /// How many of the newest events to show first.
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub last: u32,
}

impl EventsArgs {
    /// The query of the first request.
    fn first_query(&self) -> Vec<(String, String)> {
        let mut query = self.filter_query();
        match self.since {
            Some(since) => {
                query.push(("since".into(), since.to_string()));
                query.push(("limit".into(), self.last.to_string()));
            }
            None => query.push(("last".into(), self.last.to_string())),
        }
        query
    }

    fn filter_query(&self) -> Vec<(String, String)> {
        let mut query: Vec<(String, String)> = self
            .types
            .iter()
            .map(|t| ("type".to_owned(), t.clone()))
            .collect();
        if let Some(prefix) = &self.prefix {
            query.push(("prefix".into(), prefix.clone()));
        }
        query
    }
}

/// How often `events --follow` asks for new events.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// `events --follow`: prints the first events, then every new one as it
/// comes, until `out` fails (the reader went away) or the webapp refuses.
/// A webapp that cannot be reached is asked again, with a note on stderr.
pub fn follow_events(
    cli: &Cli,
    client: &Client,
    args: &EventsArgs,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let mut query = args.first_query();
    loop {
        let pairs: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match client.get_query("1.0/events", &pairs) {
            Ok(answer) => {
                let events: lc_api::Events = answer.decode()?;
                let text = if cli.json {
                    render::event_lines(&events.events)
                } else {
                    render::events(&events.events)
                };
                if out
                    .write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return Ok(());
                }
                query = args.filter_query();
                query.push(("since".into(), events.next_since.to_string()));
                query.push(("limit".into(), "1000".into()));
                if events.more {
                    continue;
                }
            }
            Err(err @ Error::Refused { .. }) => return Err(err),
            Err(err) => eprintln!("lorry-controller-admin: {err}; trying again"),
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

impl Cli {
    /// The webapp's base URL: `--webapp-url`, else `http://HOST:PORT/`.
    pub fn base_url(&self) -> Result<Url, String> {
        if let Some(url) = &self.webapp_url {
            return Ok(url.clone());
        }
        let host = &self.webapp_host;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let text = format!("http://{host}:{}/", self.webapp_port);
        Url::parse(&text)
            .ok()
            .filter(|url| url.host_str().is_some_and(|h| !h.is_empty()))
            .ok_or_else(|| format!("--webapp-host: {:?} is not a host name", self.webapp_host))
    }
}

/// What a command prints on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output(pub String);

/// Runs the command against the webapp `client` talks to.
pub fn run(cli: &Cli, client: &Client) -> Result<Output, Error> {
    let json = cli.json;
    let out = |answer: client::Answer, human: &dyn Fn(&client::Answer) -> Result<String, Error>| {
        if json {
            Ok(Output(render::json(&answer.json)))
        } else {
            human(&answer).map(Output)
        }
    };
    match &cli.command {
        Command::Status => out(client.get("1.0/status", &[])?, &|a| {
            Ok(render::status(&a.decode()?))
        }),
        Command::ListQueue => out(client.get("1.0/list-queue", &[])?, &|a| {
            Ok(render::queue(&a.decode()?))
        }),
        Command::ShowLorry { path } => out(client.get("1.0/lorry", &[path])?, &|a| {
            Ok(render::lorry(&a.decode()?))
        }),
        Command::ListJobs { running } => {
            let answer = if *running {
                client.get("1.0/list-running-jobs", &[])?
            } else {
                client.get("1.0/list-jobs", &[])?
            };
            out(answer, &|a| {
                let ids = if *running {
                    a.decode::<RunningJobs>()?.running_jobs
                } else {
                    a.decode::<JobIds>()?.job_ids
                };
                let jobs = job_details(client, &ids)?;
                Ok(render::jobs(&jobs, *running))
            })
        }
        Command::ShowJob { id, output, raw } => {
            let answer = client.get("1.0/job", &[&id.to_string()])?;
            if *output {
                let job: JobInfo = answer.decode()?;
                return Ok(Output(if *raw {
                    job.output
                } else {
                    terminal::printable(&job.output)
                }));
            }
            out(answer, &|a| Ok(render::job(&a.decode()?, *raw)))
        }
        Command::StopJob { id } => out(
            client.post("1.0/stop-job", &[("job_id", &id.to_string())])?,
            &|a| Ok(render::message(&a.decode()?)),
        ),
        Command::MoveToTop { path } => {
            out(client.post("1.0/move-to-top", &[("path", path)])?, &|a| {
                Ok(render::message(&a.decode()?))
            })
        }
        Command::MoveToBottom { path } => out(
            client.post("1.0/move-to-bottom", &[("path", path)])?,
            &|a| Ok(render::message(&a.decode()?)),
        ),
        Command::StopQueue => out(client.post("1.0/stop-queue", &[])?, &|a| {
            Ok(render::queue_state(&a.decode()?))
        }),
        Command::StartQueue => out(client.post("1.0/start-queue", &[])?, &|a| {
            Ok(render::queue_state(&a.decode()?))
        }),
        Command::GetMaxJobs => out(client.get("1.0/get-max-jobs", &[])?, &|a| {
            Ok(render::max_jobs(&a.decode()?))
        }),
        Command::SetMaxJobs { max_jobs } => out(
            client.post("1.0/set-max-jobs", &[("max_jobs", &max_jobs.form_value())])?,
            &|a| Ok(render::max_jobs(&a.decode()?)),
        ),
        Command::ReadConfiguration { dry_run } => {
            let form: &[(&str, &str)] = if *dry_run { &[("dry_run", "1")] } else { &[] };
            out(client.post("1.0/read-configuration", form)?, &|a| {
                Ok(render::generic(&a.json))
            })
        }
        Command::Events(args) => {
            if args.follow {
                let mut stdout = std::io::stdout().lock();
                follow_events(cli, client, args, &mut stdout)?;
                return Ok(Output(String::new()));
            }
            let query = args.first_query();
            let pairs: Vec<(&str, &str)> = query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            out(client.get_query("1.0/events", &pairs)?, &|a| {
                Ok(render::events(&a.decode::<lc_api::Events>()?.events))
            })
        }
        Command::RemoveGhostJobs => out(client.post("1.0/remove-ghost-jobs", &[])?, &|a| {
            Ok(render::removed_jobs(&a.decode()?, "ghost"))
        }),
        Command::RemoveOldJobs { max_age, keep } => {
            let max_age = max_age.map(|s| s.0.to_string());
            let keep = keep.map(|k| k.to_string());
            let mut form = Vec::new();
            if let Some(max_age) = &max_age {
                form.push(("max_age", max_age.as_str()));
            }
            if let Some(keep) = &keep {
                form.push(("keep", keep.as_str()));
            }
            out(client.post("1.0/remove-old-jobs", &form)?, &|a| {
                Ok(render::removed_jobs(&a.decode()?, "old"))
            })
        }
        Command::Backup { path, keep } => {
            let done = backup::backup(client, path, *keep)?;
            if json {
                Ok(Output(render::json(
                    &serde_json::to_value(&done).unwrap_or_default(),
                )))
            } else {
                Ok(Output(backup::render(&done)))
            }
        }
    }
}

/// Details of each job in `ids`; a job forgotten since it was listed is skipped.
fn job_details(client: &Client, ids: &[i64]) -> Result<Vec<JobInfo>, Error> {
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        match client.get("1.0/job", &[&id.to_string()]) {
            Ok(answer) => jobs.push(answer.decode()?),
            Err(Error::Refused { status: 404, .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn base_url_from_host_and_port() {
        let cli = Cli::parse_from(["x", "--webapp-host", "::1", "--webapp-port", "8", "status"]);
        assert_eq!(cli.base_url().expect("url").as_str(), "http://[::1]:8/");
        let cli = Cli::parse_from(["x", "status", "--webapp-url", "https://lc.example/x/"]);
        assert_eq!(
            cli.base_url().expect("url").as_str(),
            "https://lc.example/x/"
        );
        let cli = Cli::parse_from(["x", "--webapp-host", "a b", "status"]);
        assert!(cli.base_url().is_err());
    }
}
