//! `allot extender`: its flags, their mapping onto [`crate::extender::Settings`], and the
//! `--controller` wiring that runs the ScheduleRequest controller beside it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct ExtenderArgs {
    /// Address for the extender verbs (/filter, /prioritize, /bind, /preempt).
    #[arg(long, default_value = "127.0.0.1:8888")]
    pub listen: String,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "127.0.0.1:8889")]
    pub admin_listen: String,
    /// Serve from a static cluster snapshot (JSON) instead of watching an API server.
    /// Without it the extender watches the cluster of KUBECONFIG (or the in-cluster config)
    /// and binds pods through the API server.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Telemetry older than this many seconds is stale (see --stale-policy).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub stale_after_seconds: u64,
    /// What a node with stale or missing NodeTelemetry gets: fail-open keeps placing on it
    /// from allocation state alone; fail-closed filters it (retryable) until its agent
    /// reports again.
    #[arg(long, value_enum, default_value = "fail-open")]
    pub stale_policy: super::StaleFlag,
    /// Seconds a placement made by bind is kept on top of the watched state, covering the
    /// time until the watch shows the pod bound.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub overlay_ttl_seconds: u64,
    /// Which nodes /filter passes: every feasible node (kube-scheduler ranks them with its
    /// plugins and /prioritize), only the one allot's policy chooses (kube-scheduler then
    /// binds it without scoring or calling /prioritize: one round trip per pod instead of
    /// two), or auto: the chosen node, unless the pod has soft preferences kube-scheduler's
    /// scoring weighs.
    #[arg(long, value_enum, default_value = "auto")]
    pub filter_answer: super::FilterAnswerFlag,
    /// Serve the GPU map page on --admin-listen (`/gpus`: every node's GPUs, allocation,
    /// health, fragmentation and the latest decisions). It shows pod names: off by default.
    #[arg(long)]
    pub gpu_map: bool,
    /// Serve the verbs over TLS with this certificate (PEM, the chain from the leaf); needs
    /// --tls-private-key-file. The files are read again when they change.
    #[arg(long, value_name = "PATH", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Mutual TLS: accept only clients (kube-scheduler's `tlsConfig` certFile) with a
    /// certificate this CA (PEM) signed. Needs --tls-cert-file.
    #[arg(long, value_name = "PATH", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Also run the ScheduleRequest controller in this process, sharing its caches (its
    /// metrics are then served under /controller/metrics on --admin-listen).
    #[arg(long)]
    pub controller: bool,
    /// With --controller or --history-dir: namespace of the controller's and the history
    /// recorder's coordination.k8s.io Leases (default:
    /// this pod's namespace, or the kubeconfig context's; it must exist).
    #[arg(long, default_value = "", hide_default_value = true)]
    pub lease_namespace: String,
    /// Seed of the order in which equal scores are broken and of policies' random draws:
    /// the extender decides as `allot simulate --seeds SEED` does.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Policy file (from `allot train`) the `learned` policy scores with; without it, the
    /// policy embedded in the binary. A missing or broken file stops the extender at start.
    #[arg(long, value_name = "PATH", conflicts_with = "policy_dir")]
    pub policy_file: Option<PathBuf>,
    /// Policy of pods without an allot.dev/policy annotation.
    #[arg(long, default_value = "learned", value_name = "POLICY", conflicts_with = "policy_dir",
          value_parser = policy_name)]
    pub default_policy: crate::policy::PolicyKind,
    /// Also decide every pod with this policy at filter, without placing by it, and count at
    /// bind whether it chose the same node (allot_extender_shadow_binds): a trial run.
    #[arg(long, value_name = "POLICY", conflicts_with = "policy_dir", value_parser = policy_name)]
    pub shadow_policy: Option<crate::policy::PolicyKind>,
    /// Read the default policy, the shadow policy and the learned weights from files in DIR
    /// (default-policy, shadow-policy, policy.json; each optional), e.g. a mounted ConfigMap,
    /// and re-read them when they change: switching policies needs no restart. Unreadable
    /// settings stop the extender at start; later, they are refused and the previous stay.
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
    /// Seconds a request's head may take to arrive (also closes idle keep-alive connections).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_seconds: u64,
    /// Seconds a request's body may take to arrive once its head has (then 408).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_seconds: u64,
    /// Connections served at once on --listen (more wait to be accepted).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_connections: u64,
    /// Connections served at once on --admin-listen (its own budget, so probes always get in).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub admin_max_connections: u64,
    /// Seconds open requests get to finish after SIGTERM before they are closed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_seconds: u64,
    /// With --policy-dir: seconds between looks for a change.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub policy_reload_seconds: u64,
    /// Seconds between solves of the shadow prices the learned policy's lp_price_cost feature
    /// reads: the pricing LP over the last 1,000 pods filtered, solved off the decision path
    /// while the default or shadow policy is learned with weights that read prices. 0: never.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub price_seconds: u64,
    /// Threads serving requests, watches and binds (the async runtime's workers); 0: one
    /// per core. Snapshot rebuilds and price solves run on threads of their own.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub worker_threads: u64,
    #[command(flatten)]
    pub history: history::HistoryArgs,
}

mod history;

/// A policy name, as clap reads it (a bad one is a usage error, exit 2).
fn policy_name(text: &str) -> Result<crate::policy::PolicyKind, crate::policy::UnknownPolicy> {
    text.parse()
}

#[cfg(feature = "k8s")]
impl ExtenderArgs {
    /// The extender's settings; errors name the flag.
    pub fn settings(&self) -> anyhow::Result<crate::extender::Settings> {
        use crate::extender::{Settings, Source};
        use std::time::Duration;
        Ok(Settings {
            listen: crate::process::listen_address("--listen", &self.listen)?,
            admin_listen: crate::process::listen_address("--admin-listen", &self.admin_listen)?,
            source: self
                .snapshot
                .clone()
                .map_or(Source::Cluster, Source::Snapshot),
            stale_after: Duration::from_secs(self.stale_after_seconds),
            stale_policy: self.stale_policy.into(),
            overlay_ttl: Duration::from_secs(self.overlay_ttl_seconds),
            filter_answer: self.filter_answer.into(),
            seed: self.seed,
            policies: self.policies()?,
            policy_dir: self.policy_dir.clone(),
            policy_reload: Duration::from_secs(self.policy_reload_seconds),
            price_every: (self.price_seconds > 0).then(|| Duration::from_secs(self.price_seconds)),
            gpu_map: self.gpu_map,
            tls: self
                .tls_cert_file
                .clone()
                .zip(self.tls_private_key_file.clone())
                .map(|(cert, key)| crate::extender::tls::TlsFiles {
                    cert,
                    key,
                    client_ca: self.tls_client_ca_file.clone(),
                }),
            limits: crate::extender::listen::Limits {
                header_read_timeout: Duration::from_secs(self.header_timeout_seconds),
                body_read_timeout: Duration::from_secs(self.body_timeout_seconds),
                max_connections: self.max_connections as usize,
                admin_max_connections: self.admin_max_connections as usize,
                drain: Duration::from_secs(self.drain_seconds),
                ..Default::default()
            },
            history: self.history.settings(&self.lease_namespace)?,
            worker_threads: (self.worker_threads > 0).then_some(self.worker_threads as usize),
        })
    }

    /// The policy settings the extender starts with, from `--policy-dir` or the flags.
    fn policies(&self) -> anyhow::Result<crate::extender::policies::PolicySettings> {
        use crate::extender::policies::{PolicySettings, read_dir};
        if let Some(dir) = &self.policy_dir {
            return Ok(read_dir(dir)?);
        }
        Ok(PolicySettings {
            default: self.default_policy,
            shadow: self.shadow_policy,
            learned: match &self.policy_file {
                Some(path) => Some(std::sync::Arc::new(
                    crate::policy::learned::PolicyFile::load(path)?,
                )),
                None => None,
            },
        })
    }

    /// The ScheduleRequest controller as the extender's sidecar, sharing its caches; its
    /// metrics are served under /controller/ on the admin address.
    fn embedded_controller(&self) -> crate::extender::Sidecar {
        use crate::controller::{self, Config};
        let mut config = Config::new(&self.lease_namespace);
        config.stale_after = std::time::Duration::from_secs(self.stale_after_seconds);
        config.stale_policy = self.stale_policy.into();
        let admin = controller::metrics::admin_router(config.metrics.clone());
        let lease = config.lease.clone();
        crate::extender::Sidecar {
            admin,
            start: Box::new(move |client, caches| {
                Box::pin(async move {
                    if let Err(e) = controller::spawn(client, caches, config).await {
                        tracing::error!(error = %e, "the embedded controller stopped");
                    }
                })
            }),
            // Hand the Lease over now rather than make a successor wait it out.
            stop: Box::new(move |client| {
                Box::pin(async move {
                    if let Err(e) = controller::lease::release(client, &lease).await {
                        tracing::warn!(error = %e, "could not release the controller's lease; it expires by itself");
                    }
                })
            }),
        }
    }
}

#[cfg(feature = "k8s")]
pub fn run(args: &ExtenderArgs) -> anyhow::Result<ExitCode> {
    let sidecar = args.controller.then(|| args.embedded_controller());
    crate::extender::run(args.settings()?, sidecar)
}

#[cfg(not(feature = "k8s"))]
pub fn run(_: &ExtenderArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this allot was built without the `k8s` feature; rebuild with default features")
}

#[cfg(all(test, feature = "k8s"))]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use crate::cli::{Cli, Command};

    /// `allot extender ARGS...` through the real command line, then the mapping.
    fn parse(args: &[&str]) -> Result<crate::extender::Settings, String> {
        let cli = Cli::try_parse_from(
            ["allot", "extender"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Extender(ext) => ext.settings().map_err(|e| e.to_string()),
            other => Err(format!("parsed as {other:?}")),
        }
    }

    #[test]
    fn the_filter_answer_defaults_to_auto_as_the_chart_and_the_docs_say() {
        use crate::extender::FilterAnswer;
        let answer = |args: &[&str]| parse(args).map(|s| s.filter_answer);
        assert_eq!(answer(&[]), Ok(FilterAnswer::Auto));
        assert_eq!(answer(&[]), Ok(FilterAnswer::default()));
        assert_eq!(
            answer(&["--filter-answer", "feasible"]),
            Ok(FilterAnswer::Feasible)
        );
        let bad = answer(&["--filter-answer", "all"]).unwrap_err();
        assert!(bad.contains("--filter-answer"), "{bad}");
    }

    #[test]
    fn worker_threads_default_to_one_per_core_and_out_of_range_is_refused() {
        let threads = |args: &[&str]| parse(args).map(|s| s.worker_threads);
        assert_eq!(threads(&[]), Ok(None));
        assert_eq!(threads(&["--worker-threads", "0"]), Ok(None));
        assert_eq!(threads(&["--worker-threads", "1"]), Ok(Some(1)));
        for bad in ["2000", "-1", "one"] {
            let e = threads(&[&format!("--worker-threads={bad}")]).unwrap_err();
            assert!(e.contains("--worker-threads"), "{bad}: {e}");
        }
    }

    #[test]
    fn history_is_off_by_default_and_bad_history_flags_name_themselves() {
        let on =
            |args: &[&str]| parse(args).map(|s| s.history.map(|h| (h.max_bytes, h.file_bytes)));
        assert_eq!(on(&[]), Ok(None));
        assert_eq!(
            on(&["--history-dir", "/h", "--history-max-bytes", "2Gi"]),
            Ok(Some((2 << 30, 16 << 20)))
        );
        let lease = parse(&["--history-dir", "/h", "--history-without-lease"])
            .map(|s| s.history.map(|h| h.lease.is_none()));
        assert_eq!(lease, Ok(Some(true)));
        for (args, flag) in [
            (&["--history-plain-names"][..], "--history-dir"),
            (
                &["--history-dir", "/h", "--history-file-bytes", "1Gi"][..],
                "--history-file-bytes",
            ),
            (
                &["--history-dir", "/h", "--history-max-bytes", "1G"][..],
                "--history-max-bytes",
            ),
        ] {
            let e = parse(args).expect_err(flag);
            assert!(e.contains(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn price_seconds_defaults_to_ten_zero_disables_and_absurd_values_are_refused() {
        let every = |args: &[&str]| parse(args).map(|s| s.price_every);
        assert_eq!(every(&[]), Ok(Some(Duration::from_secs(10))));
        assert_eq!(every(&["--price-seconds", "0"]), Ok(None));
        assert_eq!(
            every(&["--price-seconds", "60"]),
            Ok(Some(Duration::from_secs(60)))
        );
        for bad in ["3601", "-1", "ten"] {
            let e = every(&[&format!("--price-seconds={bad}")]).expect_err(bad);
            assert!(e.contains("--price-seconds"), "{e}");
        }
    }
}
