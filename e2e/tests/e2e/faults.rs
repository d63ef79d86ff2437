//! Faults survived on the real control plane: kube-apiserver restarted under the extender,
//! the extender gone and back behind a kube-scheduler configured by the chart. (A controller
//! killed mid-reconcile is in `controller/crash.rs`, a deleted node under a running request in
//! `controller/failover.rs`, a stopped agent in `agent.rs`.) Components of `e2e/up` are
//! stopped and started with `e2e/component`; a guard puts each back if a scenario fails, so
//! the tests after it find the control plane whole.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::support::repo_root;

mod apiserver;
mod extender_down;

/// `e2e/component ACTION NAME` on the control plane under test.
fn component(action: &str, name: &str) -> Result<()> {
    let script = repo_root().join("e2e/component");
    let out = Command::new(&script)
        .args([action, name])
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "e2e/component {action} {name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Starts component `0` again when dropped, if it is not running.
struct Restore(&'static str);

impl Drop for Restore {
    fn drop(&mut self) {
        if component("status", self.0).is_err()
            && let Err(e) = component("start", self.0)
        {
            eprintln!("could not restart {}: {e:#}", self.0);
        }
    }
}

/// The status and body of a GET of `url`.
fn get(url: &str) -> Result<(u16, String)> {
    let reply = crate::support::curl(&[url])?;
    Ok((reply.status, reply.body))
}

/// The sum of a metric's samples over its label sets, from a `/metrics` text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metric_sums_add_every_label_set_and_only_that_metric() {
    let text =
        "# HELP x\nallot_gpus{model=\"A\"} 1.5\nallot_gpus{model=\"B\"} 2\nallot_gpus_total 9\n";
    assert!((metric_sum(text, "allot_gpus") - 3.5).abs() < 1e-9);
}
