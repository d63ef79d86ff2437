//! `allot extender --history-*`: recording the cluster's GPU workload history (off unless
//! `--history-dir` is given), mapped to the recorder's settings; errors name the flag.

use std::path::PathBuf;

use clap::Args;

/// The recorder's flags.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Record the GPU workload history (every pod allot bound or found no node for, with its
    /// times, node and devices, and the node inventory) into this directory, in the openb
    /// pod-list format plus allot's columns (docs/history-format.md). Off by default.
    #[arg(long, value_name = "DIR")]
    pub history_dir: Option<PathBuf>,
    /// With --history-dir: the most the directory may hold (bytes, or with Ki, Mi, Gi); the
    /// oldest pod files are deleted first.
    #[arg(long, default_value = "1Gi", value_name = "BYTES", value_parser = parse_bytes)]
    pub history_max_bytes: u64,
    /// With --history-dir: the size at which a pod file is closed and the next one started.
    #[arg(long, default_value = "16Mi", value_name = "BYTES", value_parser = parse_bytes)]
    pub history_file_bytes: u64,
    /// With --history-dir: write pod names and UIDs as they are. By default they are written
    /// as keyed hashes (HMAC-SHA256), so no name leaves the cluster with the files.
    #[arg(long)]
    pub history_plain_names: bool,
    /// With --history-dir: the key names are hashed with (a file, e.g. a mounted Secret, of
    /// at least 16 bytes). Default: DIR/history.key, made with random bytes if missing.
    #[arg(long, value_name = "PATH")]
    pub history_key_file: Option<PathBuf>,
    /// With --history-dir: record without competing for the `allot-history` Lease (one
    /// replica only; several would each record the same pods).
    #[arg(long)]
    pub history_without_lease: bool,
}

/// Smallest file or directory bound: a few hundred rows.
const MIN_BYTES: u64 = 64 << 10;

/// `1048576`, `512Ki`, `16Mi`, `1Gi`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, scale) = match t.find(|c: char| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some(i) => match &t[i..] {
            "Ki" => (&t[..i], 1 << 10),
            "Mi" => (&t[..i], 1 << 20),
            "Gi" => (&t[..i], 1 << 30),
            "Ti" => (&t[..i], 1 << 40),
            _ => {
                return Err(format!(
                    "{text:?}: give bytes, or a number with Ki, Mi, Gi or Ti"
                ));
            }
        },
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: not a whole number of bytes"))?;
    let bytes = n
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?}: too large"))?;
    if bytes < MIN_BYTES {
        return Err(format!("{text:?}: at least 64Ki"));
    }
    Ok(bytes)
}

impl HistoryArgs {
    /// The recorder's settings, or `None` without --history-dir. `lease_namespace` is the
    /// extender's --lease-namespace (empty: the client's).
    #[cfg(feature = "k8s")]
    pub fn settings(
        &self,
        lease_namespace: &str,
    ) -> anyhow::Result<Option<crate::extender::history::HistorySettings>> {
        use crate::extender::history as h;
        let Some(dir) = self.history_dir.clone() else {
            if self.history_plain_names || self.history_key_file.is_some() {
                anyhow::bail!("--history-plain-names and --history-key-file need --history-dir");
            }
            return Ok(None);
        };
        if self.history_file_bytes > self.history_max_bytes / 2 {
            anyhow::bail!(
                "--history-file-bytes {} must be at most half of --history-max-bytes {} (the \
                 file being written counts against the bound too)",
                self.history_file_bytes,
                self.history_max_bytes
            );
        }
        if self.history_plain_names && self.history_key_file.is_some() {
            anyhow::bail!("--history-key-file means nothing with --history-plain-names");
        }
        let lease = (!self.history_without_lease).then(|| lease_gate(lease_namespace));
        Ok(Some(h::HistorySettings {
            dir,
            max_bytes: self.history_max_bytes,
            file_bytes: self.history_file_bytes,
            plain_names: self.history_plain_names,
            key_file: self.history_key_file.clone(),
            channel: h::DEFAULT_CHANNEL,
            max_open: h::DEFAULT_MAX_OPEN,
            tick: h::DEFAULT_TICK,
            checkpoint: h::DEFAULT_CHECKPOINT,
            lease,
        }))
    }
}

/// The `allot-history` Lease, competed for with the controller's Lease code.
#[cfg(feature = "k8s")]
fn lease_gate(namespace: &str) -> crate::extender::history::LeaseGate {
    use crate::controller::{lease, metrics::Metrics};
    let namespace = namespace.to_string();
    let identity = lease::default_identity();
    let config = move |client: &kube::Client| {
        let mut config = lease::LeaseConfig {
            namespace: namespace.clone(),
            name: HISTORY_LEASE.to_string(),
            identity: identity.clone(),
            duration: lease::DEFAULT_DURATION,
            renew_every: lease::DEFAULT_RENEW_EVERY,
        };
        config.or_namespace_of(client);
        config
    };
    let release = config.clone();
    let release = move |client: kube::Client| -> futures::future::BoxFuture<'static, ()> {
        let config = release(&client);
        Box::pin(async move {
            if let Err(e) = lease::release(client, &config).await {
                tracing::warn!(error = %e, lease = HISTORY_LEASE, "could not give the history Lease up");
            }
        })
    };
    let gate = move |client: kube::Client| {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let config = config(&client);
        // Its problems are logged by the Lease task; this registry is not served.
        tokio::spawn(lease::run(
            client,
            config,
            tx,
            std::sync::Arc::new(Metrics::default()),
        ));
        rx
    };
    crate::extender::history::LeaseGate(std::sync::Arc::new(gate), std::sync::Arc::new(release))
}

/// The Lease the extender replicas compete for to record.
#[cfg(feature = "k8s")]
pub const HISTORY_LEASE: &str = "allot-history";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_with_binary_suffixes_and_bad_ones_say_why() {
        assert_eq!(parse_bytes("16Mi"), Ok(16 << 20));
        assert_eq!(parse_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_bytes("65536"), Ok(65536));
        for (bad, why) in [
            ("1G", "Ki, Mi"),
            ("12", "at least"),
            ("-1Mi", "bytes"),
            ("99999999999Ti", "too large"),
        ] {
            let e = parse_bytes(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
