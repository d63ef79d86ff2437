//! Failpoints: named steps at which a test makes the process die, so that a crash "in the
//! middle" of some work happens at the same step every run (the e2e fault scenarios).
//!
//! `ALLOT_FAILPOINTS="name=N[,name=N...]"`: the N-th time the process passes `name` it logs
//! that and exits at once with status [`EXIT_CODE`], without shutting anything down, as a
//! killed process would. Unset (the normal case), passing a failpoint is one atomic load.
//! The points: `controller.pod-created` (after each pod the controller creates) and
//! `controller.consolidation-evicted` (after each eviction the consolidator makes, before its
//! record says so).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms failpoints.
pub const ENV: &str = "ALLOT_FAILPOINTS";
/// The exit status of a process stopped by a failpoint.
pub const EXIT_CODE: i32 = 86;
/// Every failpoint in the code, so that a misspelt name is refused rather than never hit.
pub const POINTS: &[&str] = &["controller.pod-created", "controller.consolidation-evicted"];

/// Armed failpoints: name -> (the hit that exits, hits so far).
static ARMED: OnceLock<HashMap<&'static str, (u64, AtomicU64)>> = OnceLock::new();

/// Parse a failpoint specification (the value of [`ENV`]).
pub fn parse(spec: &str) -> Result<HashMap<&'static str, u64>, String> {
    let mut armed = HashMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, n) = part
            .split_once('=')
            .ok_or_else(|| format!("{ENV}: '{part}' is not name=N"))?;
        let point = POINTS.iter().find(|p| **p == name.trim()).ok_or_else(|| {
            format!(
                "{ENV}: no failpoint '{}' (known: {})",
                name.trim(),
                POINTS.join(", ")
            )
        })?;
        let n: u64 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{ENV}: '{part}': N must be a whole number from 1"))?;
        armed.insert(*point, n);
    }
    Ok(armed)
}

/// Arm the failpoints [`ENV`] names, once per process; an error names what is wrong with it.
pub fn init() -> anyhow::Result<()> {
    let Some(spec) = std::env::var_os(ENV) else {
        return Ok(());
    };
    let spec = spec
        .into_string()
        .map_err(|_| anyhow::anyhow!("{ENV} is not UTF-8"))?;
    let armed = parse(&spec).map_err(anyhow::Error::msg)?;
    if !armed.is_empty() {
        tracing::warn!(failpoints = %spec, "failpoints armed: this process will exit on purpose");
    }
    let _ = ARMED.set(
        armed
            .into_iter()
            .map(|(k, n)| (k, (n, AtomicU64::new(0))))
            .collect(),
    );
    Ok(())
}

/// Pass the failpoint `name`: exits the process if this is the hit it was armed for.
pub fn hit(name: &'static str) {
    let Some((at, hits)) = ARMED.get().and_then(|armed| armed.get(name)) else {
        return;
    };
    if hits.fetch_add(1, Ordering::SeqCst) + 1 == *at {
        tracing::error!(
            failpoint = name,
            hit = *at,
            "failpoint reached: exiting now"
        );
        std::process::exit(EXIT_CODE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifications_parse_or_say_what_is_wrong() {
        let armed = parse("controller.pod-created=2").unwrap();
        assert_eq!(armed.get("controller.pod-created"), Some(&2));
        assert!(parse("").unwrap().is_empty());
        let rows = [
            ("controller.pod-created", "is not name=N"),
            (
                "controller.pod-created=0",
                "N must be a whole number from 1",
            ),
            (
                "controller.pod-created=-1",
                "N must be a whole number from 1",
            ),
            (
                "controller.pod-creatd=1",
                "no failpoint 'controller.pod-creatd'",
            ),
        ];
        for (spec, want) in rows {
            let err = parse(spec).unwrap_err();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn an_unarmed_failpoint_does_nothing() {
        hit("controller.pod-created");
    }
}
