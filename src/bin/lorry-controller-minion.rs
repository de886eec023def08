//! `lorry-controller-minion`: runs lorry for the jobs the webapp hands out.
//! Everything is in `lc_minion`; this parses options, sets up logging and
//! signals, and calls [`lc_minion::run`].

use anyhow::Context;
use clap::{CommandFactory, Parser};
use lc_minion::options::Options;
use lc_minion::{Shutdown, run};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> anyhow::Result<()> {
    let args = lorry_controller::args_with_config_file(std::env::args_os(), &Options::command())?;
    let options = Options::parse_from(args);
    // Held to the end: dropping it sends the last spans.
    let _traces = options.logging.init("lorry-controller-minion")?;
    let own_exe = std::env::current_exe().ok();
    let config = options.into_config(own_exe.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (trigger, shutdown) = Shutdown::new();
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
            }
            trigger.trigger();
        });
        run(config, shutdown).await.map_err(anyhow::Error::from)
    })
}
