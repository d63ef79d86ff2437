//! `allot controller`: the ScheduleRequest controller (work in progress).

pub mod decide;
pub mod pods;
pub mod status;
pub mod validate;

use std::process::ExitCode;

use crate::cli::ControllerArgs;

pub fn run(_: &ControllerArgs) -> anyhow::Result<ExitCode> {
    eprintln!("allot controller: not implemented yet");
    Ok(ExitCode::from(2))
}
