//! `allot controller`: its flags, and dispatch to [`crate::controller`].

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Namespace of the coordination.k8s.io Lease used for leader election.
    #[arg(long, default_value = "allot-system")]
    pub lease_namespace: String,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:8890")]
    pub admin_listen: String,
}

#[cfg(feature = "k8s")]
pub fn run(args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    crate::controller::run(args)
}

#[cfg(not(feature = "k8s"))]
pub fn run(_: &ControllerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this allot was built without the `k8s` feature; rebuild with default features")
}
