//! `lorry-controller-admin`: drives a running webapp from the shell.
//!
//! Exit codes: 0 success, 1 the webapp refused the request, 2 usage error,
//! 3 the webapp cannot be reached or failed (see `lc_admin::EXIT_CODES`).

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use lc_admin::{Cli, Client, EXIT_UNAVAILABLE, EXIT_USAGE};

fn main() -> ExitCode {
    let args = match lorry_controller::args_with_config_file(std::env::args_os(), &Cli::command()) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("lorry-controller-admin: {err:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Usage errors exit with 2, --help and --version with 0, as clap does.
    let cli = Cli::parse_from(args);
    let base = match cli.base_url() {
        Ok(base) => base,
        Err(problem) => Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, problem)
            .exit(),
    };
    let token = match lorry_controller::token::from_file_or_env(
        cli.token_file.as_deref(),
        "LORRY_CONTROLLER_ADMIN_TOKEN",
    ) {
        Ok(token) => token,
        Err(err) => {
            eprintln!("lorry-controller-admin: --token-file: {err}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = Client::new(
        base,
        std::time::Duration::from_secs(cli.timeout),
        token.as_deref(),
    )
    .and_then(|client| lc_admin::run(&cli, &client));
    match result {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(output.0.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                // A reader that stopped early (`| head`) is not our failure.
                Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("lorry-controller-admin: cannot write the output: {err}");
                    ExitCode::from(EXIT_UNAVAILABLE)
                }
            }
        }
        Err(err) => {
            eprintln!("lorry-controller-admin: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
