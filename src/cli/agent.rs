//! `allot agent`: its flags, and dispatch to [`crate::agent`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Name of the Node this agent reports for (usually from the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Seconds between heartbeats when nothing changes (readers call telemetry older than a
    /// few heartbeats stale).
    #[arg(long, default_value_t = 30)]
    pub heartbeat_seconds: u64,
    /// Heartbeats come up to this fraction of the interval early, at random, so agents
    /// started together do not write together.
    #[arg(long, default_value_t = 0.1)]
    pub heartbeat_jitter: f64,
    /// Seconds between samples of CPU, memory and GPUs (also the /metrics resolution).
    #[arg(long, default_value_t = 5)]
    pub sample_seconds: u64,
    /// Least seconds between two writes caused by changes (heartbeats and retries excepted).
    #[arg(long, default_value_t = 5)]
    pub min_write_seconds: u64,
    /// Address for /healthz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9400")]
    pub listen: String,
    /// The NVML library to load (default: the system's libnvidia-ml.so.1; without it the
    /// node reports zero GPUs).
    #[arg(long, value_name = "PATH")]
    pub nvml_lib: Option<PathBuf>,
    /// Where the kernel's process information is mounted (the host's /proc in a container).
    #[arg(long, default_value = "/proc", value_name = "DIR")]
    pub proc_dir: PathBuf,
    /// Change in CPU use, as a fraction of allocatable, worth a write before the heartbeat.
    #[arg(long, default_value_t = 0.10)]
    pub change_cpu_fraction: f64,
    /// Change in memory use, as a fraction of allocatable, worth a write.
    #[arg(long, default_value_t = 0.05)]
    pub change_memory_fraction: f64,
    /// Change in GPU or GPU-memory utilisation, in percentage points, worth a write.
    #[arg(long, default_value_t = 10)]
    pub change_gpu_util_points: u32,
    /// Change in GPU memory use, as a fraction of the device's memory, worth a write.
    #[arg(long, default_value_t = 0.05)]
    pub change_gpu_memory_fraction: f64,
    /// Change in GPU temperature, in °C, worth a write.
    #[arg(long, default_value_t = 5)]
    pub change_temperature_celsius: u32,
    /// Change in GPU power, as a fraction of the last written value, worth a write.
    #[arg(long, default_value_t = 0.20)]
    pub change_power_fraction: f64,
}

#[cfg(feature = "k8s")]
pub fn run(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    crate::agent::run(args)
}

#[cfg(not(feature = "k8s"))]
pub fn run(_: &AgentArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this allot was built without the `k8s` feature; rebuild with default features")
}
