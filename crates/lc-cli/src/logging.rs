//! Logging for the binaries: `--log`, `--log-level` and `--log-format`.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Human-readable logs to `target`; see [`init_with_format`].
pub fn init(target: Option<&str>, level: &str) -> anyhow::Result<()> {
    init_with_format(target, level, LogFormat::Human)
}

/// Sends tracing output to `target`: `stderr` (also the choice for `syslog`
/// and `journald`, since systemd's journal collects a service's stderr) or
/// a file appended to. `level` is a tracing filter such as `info` or
/// `lc_web=debug`.
pub fn init_with_format(
    target: Option<&str>,
    level: &str,
    format: LogFormat,
) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("--log-level: {level:?} is not a log level"))?;
    match target {
        None | Some("") | Some("stderr") | Some("syslog") | Some("journald") => {
            install(
                filter,
                format,
                std::io::stderr().is_terminal(),
                std::io::stderr,
            );
        }
        Some(file) => {
            let handle = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(file))
                .with_context(|| format!("--log: cannot open {file}"))?;
            install(filter, format, false, Mutex::new(handle));
        }
    }
    Ok(())
}

fn install<W>(filter: EnvFilter, format: LogFormat, ansi: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    match format {
        LogFormat::Human => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}
