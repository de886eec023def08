//! Logging for the binaries: `--log` and `--log-level`, as in the original.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// Sends tracing output to `target`: `stderr` (also the choice for
/// `syslog`, since systemd's journal collects a service's stderr) or a file
/// appended to. `level` is a tracing filter such as `info` or `lc_web=debug`.
pub fn init(target: Option<&str>, level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("--log-level: {level:?} is not a log level"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match target {
        None | Some("") | Some("stderr") | Some("syslog") | Some("journald") => {
            builder.with_writer(std::io::stderr).init();
        }
        Some(file) => {
            let handle = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(file))
                .with_context(|| format!("--log: cannot open {file}"))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(handle))
                .init();
        }
    }
    Ok(())
}
