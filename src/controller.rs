//! `allot controller` (work in progress).

use std::process::ExitCode;

use crate::cli::ControllerArgs;

pub fn run(_: &ControllerArgs) -> anyhow::Result<ExitCode> {
    eprintln!("allot controller: not implemented yet");
    Ok(ExitCode::from(2))
}
