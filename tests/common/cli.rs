//! The `allot` binary as the CLI tests run it: its output, and its stderr as text.

use std::process::{Command, Output};

/// Run `allot ARGS` to completion.
pub fn allot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .output()
        .expect("the allot binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
