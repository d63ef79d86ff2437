//! The `allot` binary: one subcommand per role (see `allot --help`).

use std::process::ExitCode;

use clap::Parser;

use allot::cli::usage::exit_code;
use allot::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit_code(&err)
        }
    }
}
