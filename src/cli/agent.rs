//! `allot agent`: its flags, mapped onto [`crate::agent::Settings`] and
//! [`crate::agent::Sources`], and dispatch to [`crate::agent::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Name of the Node this agent reports for (usually from the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Seconds between heartbeats when nothing changes (readers call telemetry older than a
    /// few heartbeats stale); from --sample-seconds to 86400 (a day).
    #[arg(long, default_value_t = 30)]
    pub heartbeat_seconds: u64,
    /// Heartbeats come up to this fraction of the interval early, at random, so agents
    /// started together do not write together.
    #[arg(long, default_value_t = 0.1)]
    pub heartbeat_jitter: f64,
    /// Seconds between samples of CPU, memory and GPUs (also the /metrics resolution); 1 to
    /// 86400 (a day).
    #[arg(long, default_value_t = 5)]
    pub sample_seconds: u64,
    /// Least seconds between two writes caused by changes (heartbeats and retries excepted);
    /// 0 to 86400 (a day).
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
    /// Serve kubelet's device plugin API: whole GPUs as nvidia.com/gpu (in place of NVIDIA's
    /// plugin on this node) and shares as allot.dev/gpu-share, each container given exactly
    /// the GPUs allot chose at bind (README, "GPUs on the node").
    #[arg(long)]
    pub device_plugin: bool,
    /// kubelet's device-plugins directory (where kubelet.sock is).
    #[arg(
        long,
        default_value = "/var/lib/kubelet/device-plugins",
        value_name = "DIR"
    )]
    pub device_plugin_dir: PathBuf,
    /// Share slots advertised per GPU as allot.dev/gpu-share: the most containers that may
    /// share one GPU; 1 to 1000.
    #[arg(long, default_value_t = 100)]
    pub share_slots: u32,
    /// Also name each GPU to the runtime as a CDI device KIND=<uuid> (e.g. nvidia.com/gpu),
    /// for container runtimes with CDI enabled and NVIDIA's CDI spec on the node.
    #[arg(long, value_name = "KIND")]
    pub cdi_kind: Option<String>,
}

#[cfg(feature = "k8s")]
impl AgentArgs {
    /// The agent's settings from the flags; the error names the flag and what is wrong with
    /// it. Intervals are at most [`crate::agent::MAX_INTERVAL`] (a day): huge values would
    /// overflow the agent's time arithmetic.
    pub fn settings(&self) -> Result<crate::agent::Settings, String> {
        use std::time::Duration;

        let max = crate::agent::MAX_INTERVAL.as_secs();
        let node_name = self
            .node_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or(
                "no node name: pass --node-name or set NODE_NAME (the downward API's spec.nodeName)",
            )?;
        let listen =
            crate::process::listen_address("--listen", &self.listen).map_err(|e| e.to_string())?;
        if self.sample_seconds == 0 {
            return Err("--sample-seconds must be at least 1".into());
        }
        for (flag, v, least) in [
            ("--sample-seconds", self.sample_seconds, "1"),
            (
                "--heartbeat-seconds",
                self.heartbeat_seconds,
                "--sample-seconds",
            ),
            ("--min-write-seconds", self.min_write_seconds, "0"),
        ] {
            if v > max {
                return Err(format!(
                    "{flag} {v} is too large: it must be between {least} and {max} (a day)"
                ));
            }
        }
        if self.heartbeat_seconds < self.sample_seconds {
            return Err(format!(
                "--heartbeat-seconds ({}) must be at least --sample-seconds ({})",
                self.heartbeat_seconds, self.sample_seconds
            ));
        }
        if !(0.0..=0.5).contains(&self.heartbeat_jitter) {
            return Err(format!(
                "--heartbeat-jitter {} must be between 0 and 0.5",
                self.heartbeat_jitter
            ));
        }
        for (flag, v) in [
            ("--change-cpu-fraction", self.change_cpu_fraction),
            ("--change-memory-fraction", self.change_memory_fraction),
            (
                "--change-gpu-memory-fraction",
                self.change_gpu_memory_fraction,
            ),
            ("--change-power-fraction", self.change_power_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{flag} {v} must be a fraction between 0 and 1"));
            }
        }
        Ok(crate::agent::Settings {
            node_name,
            listen,
            sample: Duration::from_secs(self.sample_seconds),
            heartbeat: Duration::from_secs(self.heartbeat_seconds),
            jitter: self.heartbeat_jitter,
            min_write: Duration::from_secs(self.min_write_seconds),
            thresholds: crate::agent::Thresholds {
                cpu_fraction: self.change_cpu_fraction,
                memory_fraction: self.change_memory_fraction,
                gpu_util_points: self.change_gpu_util_points,
                gpu_memory_fraction: self.change_gpu_memory_fraction,
                temperature_celsius: self.change_temperature_celsius,
                power_fraction: self.change_power_fraction,
            },
        })
    }

    /// The device plugin's options, when --device-plugin is given; the error names the flag.
    pub fn device_plugin(&self) -> Result<Option<crate::agent::plugin::Options>, String> {
        if !self.device_plugin {
            return Ok(None);
        }
        if !(1..=1000).contains(&self.share_slots) {
            return Err(format!(
                "--share-slots {} must be between 1 and 1000",
                self.share_slots
            ));
        }
        let cdi_kind = match self.cdi_kind.as_deref().map(str::trim) {
            None => None,
            Some(k) if crate::agent::plugin::valid_cdi_kind(k) => Some(k.to_string()),
            Some(k) => {
                return Err(format!(
                    "--cdi-kind {k:?} is not a CDI kind: it must look like vendor.com/class \
                     (e.g. nvidia.com/gpu)"
                ));
            }
        };
        Ok(Some(crate::agent::plugin::Options {
            dir: self.device_plugin_dir.clone(),
            share_slots: self.share_slots,
            cdi_kind,
        }))
    }

    /// Where the agent reads from (--proc-dir, --nvml-lib); nothing to validate.
    pub fn sources(&self) -> crate::agent::Sources {
        crate::agent::Sources {
            proc_dir: self.proc_dir.clone(),
            nvml_lib: self.nvml_lib.clone(),
        }
    }
}

/// Bad flags print what is wrong and exit 2 (as clap's own errors do).
#[cfg(feature = "k8s")]
pub fn run(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    let (settings, plugin) = match args.settings().and_then(|s| Ok((s, args.device_plugin()?))) {
        Ok(both) => both,
        Err(e) => {
            eprintln!("allot agent: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    crate::agent::run(settings, args.sources(), plugin)
}

#[cfg(not(feature = "k8s"))]
pub fn run(_: &AgentArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this allot was built without the `k8s` feature; rebuild with default features")
}

#[cfg(all(test, feature = "k8s"))]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use crate::agent::{MAX_INTERVAL, Settings, Thresholds};
    use crate::cli::{Cli, Command};

    /// `allot agent ARGS...` through the real command line, then the mapping.
    fn parse(args: &[&str]) -> Result<Settings, String> {
        let cli = Cli::try_parse_from(["allot", "agent"].into_iter().chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Agent(agent) => agent.settings(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let s = parse(&["--node-name", "n1"]).expect("valid");
        assert_eq!(s.node_name, "n1");
        assert_eq!(s.heartbeat, Duration::from_secs(30));
        assert_eq!(s.sample, Duration::from_secs(5));
        assert_eq!(s.min_write, Duration::from_secs(5));
        assert_eq!(s.thresholds, Thresholds::default());
    }

    #[test]
    fn bad_flags_are_named() {
        // NODE_NAME may be set in the environment running the tests; an empty flag wins.
        let e = parse(&["--node-name", " "]).expect_err("no node");
        assert!(e.contains("--node-name or set NODE_NAME"), "{e}");
        let e = parse(&["--node-name", "n", "--listen", "nowhere"]).expect_err("listen");
        assert!(e.contains("--listen \"nowhere\""), "{e}");
        let e = parse(&["--node-name", "n", "--sample-seconds", "0"]).expect_err("sample");
        assert!(e.contains("--sample-seconds must be at least 1"), "{e}");
        let e = parse(&[
            "--node-name",
            "n",
            "--heartbeat-seconds",
            "2",
            "--sample-seconds",
            "5",
        ])
        .expect_err("heartbeat");
        assert!(e.contains("--heartbeat-seconds (2)"), "{e}");
        let e = parse(&["--node-name", "n", "--change-cpu-fraction", "3"]).expect_err("fraction");
        assert!(e.contains("--change-cpu-fraction 3"), "{e}");
        let e = parse(&["--node-name", "n", "--heartbeat-jitter", "0.9"]).expect_err("jitter");
        assert!(e.contains("--heartbeat-jitter"), "{e}");
        let e = parse(&["--node-name", "n", "--heartbeat-jitter", "NaN"]).expect_err("NaN");
        assert!(e.contains("--heartbeat-jitter NaN"), "{e}");
    }

    /// The reported panic: `--sample-seconds 10000000000000000000` (it fits a u64) used to
    /// overflow the stall limit (3 x sample) and, for the heartbeat, `Instant + heartbeat`.
    #[test]
    fn huge_intervals_are_errors_naming_flag_and_range() {
        let huge = "10000000000000000000";
        for (flag, range) in [
            ("--sample-seconds", "between 1 and 86400"),
            ("--heartbeat-seconds", "between --sample-seconds and 86400"),
            ("--min-write-seconds", "between 0 and 86400"),
        ] {
            let e = parse(&["--node-name", "n", flag, huge]).expect_err(flag);
            assert!(e.contains(&format!("{flag} {huge} is too large")), "{e}");
            assert!(e.contains(range), "{e}");
        }
        // A huge sample with a heartbeat "at least as long" is still the sample's error.
        let e = parse(&[
            "--node-name",
            "n",
            "--sample-seconds",
            huge,
            "--heartbeat-seconds",
            huge,
        ])
        .expect_err("both");
        assert!(e.contains("--sample-seconds"), "{e}");
        // Past u64 clap itself refuses the number, naming the flag.
        let e = parse(&[
            "--node-name",
            "n",
            "--sample-seconds",
            "99999999999999999999",
        ])
        .expect_err("past u64");
        assert!(e.contains("--sample-seconds"), "{e}");
        // One past the bound is refused; the bound itself is allowed.
        let e = parse(&["--node-name", "n", "--min-write-seconds", "86401"]).expect_err("day+1");
        assert!(e.contains("--min-write-seconds 86401"), "{e}");
        let day = "86400";
        let s = parse(&[
            "--node-name",
            "n",
            "--sample-seconds",
            day,
            "--heartbeat-seconds",
            day,
            "--min-write-seconds",
            day,
        ])
        .expect("a day is allowed");
        assert_eq!(
            (s.sample, s.heartbeat, s.min_write),
            (MAX_INTERVAL, MAX_INTERVAL, MAX_INTERVAL)
        );
    }

    #[test]
    fn sources_come_from_the_flags() {
        let cli = Cli::try_parse_from([
            "allot",
            "agent",
            "--proc-dir",
            "/host/proc",
            "--nvml-lib",
            "/opt/libnvidia-ml.so.1",
        ])
        .expect("parse");
        let Command::Agent(agent) = cli.command else {
            panic!("not agent");
        };
        let s = agent.sources();
        assert_eq!(s.proc_dir, std::path::Path::new("/host/proc"));
        assert_eq!(
            s.nvml_lib.as_deref(),
            Some(std::path::Path::new("/opt/libnvidia-ml.so.1"))
        );
    }
}
