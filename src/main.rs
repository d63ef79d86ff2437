//! The `allot` binary: one subcommand per role (see `allot --help`).

use std::process::ExitCode;

use clap::Parser;

use allot::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
