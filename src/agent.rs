//! `allot agent` (work in progress).

use std::process::ExitCode;

use crate::cli::AgentArgs;

pub fn run(_: &AgentArgs) -> anyhow::Result<ExitCode> {
    eprintln!("allot agent: not implemented yet");
    Ok(ExitCode::from(2))
}
