//! Logging for the binaries: `--log`, `--log-level` and `--log-format`.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::traces::{SpanLayer, Traces};

/// How log lines look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `--log`, `--log-level` and `--log-format`, as every logging binary
/// takes them (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct LogOptions {
    /// Where to log: a file, or stderr (syslog means stderr, which the journal collects).
    #[arg(long, value_name = "FILE")]
    pub log: Option<String>,
    /// Log level or tracing filter.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log lines as readable text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

impl LogOptions {
    /// Sets up logging as the options say, and traces when the
    /// environment asks for them (see [`crate::traces`]; `service` is the
    /// default `service.name`). Keep the [`Traces`] until the program
    /// ends: dropping it sends the last spans.
    pub fn init(&self, service: &str) -> anyhow::Result<Traces> {
        init_with_format(
            self.log.as_deref(),
            &self.log_level,
            self.log_format,
            service,
        )
    }
}

/// Sends tracing output to `target`: `stderr`; `journald` (stderr, which
/// systemd's journal collects); `syslog` (the local syslog socket
/// `/dev/log`, one datagram per event with its level as the priority,
/// except under systemd, whose journal has the service's stderr and passes
/// it on to syslog, or where there is no `/dev/log`: stderr); or a file
/// appended to. `level` is a tracing filter such as `info` or
/// `lc_web=debug`; it filters the log only, not the exported spans.
pub fn init_with_format(
    target: Option<&str>,
    level: &str,
    format: LogFormat,
    service: &str,
) -> anyhow::Result<Traces> {
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("--log-level: {level:?} is not a log level"))?;
    let (spans, traces) = crate::traces::layer(service)?;
    log_panics();
    if target == Some("syslog")
        && std::env::var_os("JOURNAL_STREAM").is_none()
        && let Ok(syslog) = Syslog::connect(Path::new(DEV_LOG))
    {
        // Syslog stamps the time itself.
        let layer = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_writer(syslog);
        let layer = match format {
            LogFormat::Human => layer.with_filter(filter).boxed(),
            LogFormat::Json => layer
                .json()
                .with_current_span(true)
                .with_filter(filter)
                .boxed(),
        };
        tracing_subscriber::registry()
            .with(spans)
            .with(layer)
            .init();
        log_traces_on(&traces);
        return Ok(traces);
    }
    match target {
        None | Some("") | Some("stderr") | Some("syslog") | Some("journald") => {
            install(
                filter,
                format,
                std::io::stderr().is_terminal(),
                std::io::stderr,
                spans,
            );
        }
        Some(file) => {
            let handle = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(file))
                .with_context(|| format!("--log: cannot open {file}"))?;
            install(filter, format, false, Mutex::new(handle), spans);
        }
    }
    log_traces_on(&traces);
    Ok(traces)
}

fn log_traces_on(traces: &Traces) {
    if traces.enabled() {
        tracing::info!("traces: exporting spans over OTLP/HTTP (OTEL_EXPORTER_OTLP_*)");
    }
}

/// A panic is logged (with where it happened) before the default hook
/// prints it to stderr, so it shows in `--log` files and syslog too.
fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "panicked");
        default(info);
    }));
}

fn install<W>(filter: EnvFilter, format: LogFormat, ansi: bool, writer: W, spans: Option<SpanLayer>)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(writer);
    let layer = match format {
        LogFormat::Human => layer.with_ansi(ansi).with_filter(filter).boxed(),
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(spans)
        .with(layer)
        .init();
}

/// The local syslog socket.
const DEV_LOG: &str = "/dev/log";

/// Writes each event as one syslog datagram (RFC 3164 framing, facility
/// daemon) to a local socket.
struct Syslog {
    socket: std::os::unix::net::UnixDatagram,
    /// `program[pid]`.
    tag: String,
}

impl Syslog {
    fn connect(path: &Path) -> std::io::Result<Syslog> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        socket.connect(path)?;
        let program = std::env::args()
            .next()
            .as_deref()
            .map(Path::new)
            .and_then(Path::file_name)
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "lorry-controller".into());
        Ok(Syslog {
            socket,
            tag: format!("{program}[{}]", std::process::id()),
        })
    }
}

/// One event's writer: sends what it is given as one datagram.
struct SyslogEvent<'a> {
    syslog: &'a Syslog,
    priority: u8,
}

impl std::io::Write for SyslogEvent<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let message = format!(
            "<{}>{}: {}",
            self.priority,
            self.syslog.tag,
            text.trim_end()
        );
        // A lost log line must not stop the program: syslog may be
        // restarting, or its buffer full.
        let _ = self.syslog.socket.send(message.as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Facility daemon (3) and the event's level as the severity.
fn priority(level: &tracing::Level) -> u8 {
    let severity = match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        tracing::Level::DEBUG | tracing::Level::TRACE => 7,
    };
    3 * 8 + severity
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogEvent<'a>;

    fn make_writer(&'a self) -> SyslogEvent<'a> {
        SyslogEvent {
            syslog: self,
            priority: priority(&tracing::Level::INFO),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogEvent<'a> {
        SyslogEvent {
            syslog: self,
            priority: priority(meta.level()),
        }
    }
}

#[cfg(test)]
mod syslog_tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn events_are_datagrams_with_their_priority() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let server = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        let syslog = Syslog::connect(&path).expect("connect");
        let mut event = SyslogEvent {
            syslog: &syslog,
            priority: priority(&tracing::Level::WARN),
        };
        event.write_all(b"job ended job_id=3\n").expect("write");
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).expect("recv");
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<28>"), "{got}");
        assert!(
            got.ends_with(&format!("[{}]: job ended job_id=3", std::process::id())),
            "{got}"
        );
        assert_eq!(priority(&tracing::Level::ERROR), 27);
        assert_eq!(priority(&tracing::Level::DEBUG), 31);
    }

    #[test]
    fn no_socket_is_an_error_to_fall_back_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Syslog::connect(&dir.path().join("none")).is_err());
    }
}
