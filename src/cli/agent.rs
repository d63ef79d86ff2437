//! `allot agent`: its flags, and dispatch to [`crate::agent`].

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Name of the Node this agent reports for (usually from the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Seconds between heartbeats when nothing changes.
    #[arg(long, default_value_t = 30)]
    pub heartbeat_seconds: u64,
    /// Address for /healthz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9400")]
    pub listen: String,
}

#[cfg(feature = "k8s")]
pub fn run(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    crate::agent::run(args)
}

#[cfg(not(feature = "k8s"))]
pub fn run(_: &AgentArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this allot was built without the `k8s` feature; rebuild with default features")
}
