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
            exit_code(&err)
        }
    }
}

/// 2 for input the user must fix before anything can run (as clap does for bad flags): a
/// missing, corrupt or mismatched policy file, policy settings directory or checkpoint to
/// resume from; 1 for every other failure.
fn exit_code(err: &anyhow::Error) -> ExitCode {
    let bad_input = err.chain().any(|e| {
        #[cfg(feature = "k8s")]
        if e.is::<allot::extender::policies::PolicyDirError>() {
            return true;
        }
        e.is::<allot::policy::learned::PolicyFileError>()
            || e.is::<allot::learn::checkpoint::CheckpointError>()
    });
    if bad_input {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}
