//! Running cargo from inside a test. Shared with `tests/agent_nvml.rs` of the allot package,
//! which includes this file by path (`#[path]`): both build an artifact with a nested cargo.

use std::process::Command;

/// `cargo` (the one running the tests, from `$CARGO`) without the variables cargo sets for a
/// test process. A nested cargo that inherits them sees a changed environment and rebuilds
/// every crate whose build script reads them (ring reads `CARGO_MANIFEST_DIR` and
/// `CARGO_PKG_*`): half the dependency tree, mid-run.
pub fn nested_cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os().filter(|(k, _)| is_test_only_cargo_var(k)) {
        cmd.env_remove(key);
    }
    cmd
}

fn is_test_only_cargo_var(key: &std::ffi::OsStr) -> bool {
    let key = key.to_string_lossy();
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ]
    .iter()
    .any(|p| key.starts_with(p))
}
