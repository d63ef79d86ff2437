//! `allot controller`: its flags, mapped onto [`crate::controller::Settings`], and dispatch
//! to [`crate::controller::run`].

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Namespace of the coordination.k8s.io Lease used for leader election (default: this
    /// pod's namespace, or the kubeconfig context's; it must exist).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub lease_namespace: String,
    /// Seconds a Lease holds without renewal (how long a dead leader delays the next one).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_duration_seconds: u64,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:8890")]
    pub admin_listen: String,
    /// Telemetry older than this many seconds is stale: the node's replicas move elsewhere.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub stale_after_seconds: u64,
    /// Whether a node without any NodeTelemetry may hold replicas (fail-open) or not.
    #[arg(long, value_enum, default_value = "fail-open")]
    pub stale_policy: crate::cli::StaleFlag,
    /// LP backend of the plans: clarabel, microlp, or highs (when built with it).
    #[arg(long, default_value = "clarabel")]
    pub backend: String,
    /// Wall-clock limit of one plan, in milliseconds; past it the greedy plan is used.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub time_limit_ms: u64,
    /// Move opted-in pods (label allot.dev/movable=true) to make room for pods no node can
    /// take: off, dry-run (plan and report in Events only), or on.
    #[arg(long, value_enum, default_value = "off")]
    pub consolidation: ConsolidationFlag,
    /// Seconds a pod must have been Unschedulable before anything moves for it.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub consolidation_grace_seconds: u64,
    /// Seconds between two consolidation plans for the same pod.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub consolidation_cooldown_seconds: u64,
    /// Seconds the room made for a pod is held for it (the extender keeps others off it).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub consolidation_hold_seconds: u64,
    /// Most pods moved for one waiting pod.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub consolidation_max_moves: u64,
    /// Most evictions by the consolidator in any minute.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub consolidation_moves_per_minute: u64,
    /// Seconds between two passes of the consolidation loop.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub consolidation_interval_seconds: u64,
    /// Consolidate only in this namespace (repeatable): only its waiting pods are looked
    /// after, and only its pods are moved or given back. Every namespace when not given.
    #[arg(long = "consolidation-namespace", value_name = "NS", value_parser = namespace_name)]
    pub consolidation_namespaces: Vec<String>,
}

/// A namespace name as Kubernetes allows it (an RFC 1123 label).
fn namespace_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    ok.then(|| text.to_string()).ok_or_else(|| {
        format!("{text:?} is not a namespace name (lowercase letters, digits and '-', at most 63, not starting or ending with '-')")
    })
}

/// `--consolidation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsolidationFlag {
    Off,
    DryRun,
    On,
}

#[cfg(feature = "k8s")]
impl ControllerArgs {
    /// The controller's settings from the flags; fails on a bad --backend or --admin-listen.
    pub fn settings(&self) -> anyhow::Result<crate::controller::Settings> {
        use std::time::Duration;

        let mut config = crate::controller::Config::new(&self.lease_namespace);
        config.lease = config
            .lease
            .with_duration(Duration::from_secs(self.lease_duration_seconds));
        config.stale_after = Duration::from_secs(self.stale_after_seconds);
        config.stale_policy = self.stale_policy.into();
        config.plan.backend = self
            .backend
            .parse()
            .map_err(|e| anyhow::anyhow!("--backend: {e}"))?;
        config.plan.time_limit = Duration::from_millis(self.time_limit_ms);
        config.consolidation = self.consolidation_settings();
        let admin_listen = crate::process::listen_address("--admin-listen", &self.admin_listen)?;
        Ok(crate::controller::Settings {
            config,
            admin_listen,
        })
    }
}

#[cfg(feature = "k8s")]
impl ControllerArgs {
    fn consolidation_settings(&self) -> crate::controller::consolidate::Settings {
        use crate::controller::consolidate::{Mode, Settings};
        use std::time::Duration;

        Settings {
            mode: match self.consolidation {
                ConsolidationFlag::Off => Mode::Off,
                ConsolidationFlag::DryRun => Mode::DryRun,
                ConsolidationFlag::On => Mode::On,
            },
            interval: Duration::from_secs(self.consolidation_interval_seconds),
            grace: Duration::from_secs(self.consolidation_grace_seconds),
            cooldown: Duration::from_secs(self.consolidation_cooldown_seconds),
            hold: Duration::from_secs(self.consolidation_hold_seconds),
            max_moves: self.consolidation_max_moves as usize,
            moves_per_minute: self.consolidation_moves_per_minute as usize,
            namespaces: self.consolidation_namespaces.clone(),
            ..Settings::default()
        }
    }
}

#[cfg(feature = "k8s")]
pub fn run(args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    crate::controller::run(args.settings()?)
}

#[cfg(not(feature = "k8s"))]
pub fn run(_: &ControllerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this allot was built without the `k8s` feature; rebuild with default features")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consolidation_namespaces_are_checked_names() {
        assert_eq!(namespace_name("team-a").as_deref(), Ok("team-a"));
        for bad in ["", "Team", "a_b", "-a", "a-", &"x".repeat(64)] {
            let e = namespace_name(bad).expect_err(bad);
            assert!(e.contains("is not a namespace name"), "{bad}: {e}");
        }
        let settings = |namespaces: Vec<String>| crate::controller::consolidate::Settings {
            namespaces,
            ..Default::default()
        };
        assert!(settings(vec![]).covers("any"));
        assert!(settings(vec!["a".into()]).covers("a"));
        assert!(!settings(vec!["a".into()]).covers("b"));
    }
}
