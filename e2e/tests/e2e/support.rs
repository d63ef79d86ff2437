//! Test plumbing: find the e2e control plane (or fail saying how to start one), temporary
//! namespaces, kubectl, polling, pods; allot processes (`process.rs`), faked GPUs
//! (`telemetry.rs`) and ScheduleRequests with their controller (`requests.rs`).

mod curl;
mod process;
pub mod requests;
mod telemetry;
pub use curl::{curl, curl_ok};
pub use process::{AllotProcess, allot_binary, cargo_artifact, free_port};
pub use telemetry::{fake_gpus, publish_telemetry, telemetry_api, write_devices};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Set by `e2e/run` (and in `$ALLOT_E2E_DIR/env` by `e2e/up`): the admin kubeconfig.
pub const KUBECONFIG_ENV: &str = "ALLOT_E2E_KUBECONFIG";
/// `1` when kube-scheduler must reach the allot extender (not ignorable), `0` when it may not.
pub const EXTENDER_ENV: &str = "ALLOT_E2E_EXTENDER";
/// Label on every namespace a test makes, so leftovers are easy to find.
pub const E2E_LABEL: &str = "allot.dev/e2e";

/// Generous next to what each wait takes on a warm control plane (well under 5 s).
pub const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// The control plane under test.
pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
    /// Whether kube-scheduler is configured to require the allot extender.
    pub extender_required: bool,
}

impl Cluster {
    /// The e2e control plane named by `ALLOT_E2E_KUBECONFIG`, or an error saying how to get
    /// one. Every test that calls this is `#[ignore = "needs e2e/up"]`: it runs only when
    /// asked for (`e2e/run` passes `--include-ignored`), and then no control plane is a
    /// failure, never a pass.
    pub async fn from_env(test: &str) -> Result<Self> {
        let Some(path) = std::env::var_os(KUBECONFIG_ENV).filter(|p| !p.is_empty()) else {
            bail!(
                "{test} needs the control plane of e2e/up, and {KUBECONFIG_ENV} is not set: \
                 run the suite with e2e/run (it starts e2e/up and sets {KUBECONFIG_ENV}), or \
                 start e2e/up and `source $ALLOT_E2E_DIR/env` (default /tmp/allot-e2e/env) first"
            );
        };
        let kubeconfig = PathBuf::from(path);
        let raw = Kubeconfig::read_from(&kubeconfig)
            .with_context(|| format!("reading {}", kubeconfig.display()))?;
        let config = Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default())
            .await
            .with_context(|| format!("loading {}", kubeconfig.display()))?;
        let client = Client::try_from(config)?;
        let extender_required = std::env::var(EXTENDER_ENV).map_or(true, |v| v != "0");
        Ok(Self {
            client,
            kubeconfig,
            extender_required,
        })
    }

    /// Run `scenario` in a fresh namespace, then delete the namespace whatever it returned.
    pub async fn in_namespace<'a, F, Fut>(&'a self, prefix: &str, scenario: F) -> Result<()>
    where
        F: FnOnce(&'a Self, String) -> Fut,
        Fut: Future<Output = Result<()>> + 'a,
    {
        let ns = self.create_namespace(prefix).await?;
        let outcome = scenario(self, ns.clone()).await;
        let cleanup = self.delete_namespace(&ns).await;
        match (outcome, cleanup) {
            (Err(e), _) => Err(e.context(format!("in namespace {ns}"))),
            (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    async fn create_namespace(&self, prefix: &str) -> Result<String> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos();
        let name = format!("e2e-{prefix}-{}-{nanos:x}", std::process::id());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { E2E_LABEL: "true" } }
        }))?;
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        // Pods are refused until kube-controller-manager has made the default ServiceAccount.
        let sas = Api::<ServiceAccount>::namespaced(self.client.clone(), &name);
        poll(&format!("ServiceAccount {name}/default"), WAIT, || async {
            Ok(sas.get_opt("default").await?.map(|_| ()))
        })
        .await?;
        Ok(name)
    }

    /// Delete a namespace and wait until its pods are gone. Not waiting for the namespace
    /// itself (kube-controller-manager takes ~5 s even for an empty one): names never repeat,
    /// and `e2e/down` throws the whole cluster away. The pods matter: they hold GPUs on the
    /// shared kwok nodes until deleted, and the next scenario may want those GPUs.
    async fn delete_namespace(&self, name: &str) -> Result<()> {
        let api = Api::<Namespace>::all(self.client.clone());
        api.delete(name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting namespace {name}"))?;
        let left = api.get_opt(name).await?;
        ensure!(
            left.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()),
            "namespace {name} is not being deleted"
        );
        let pods = Api::<Pod>::namespaced(self.client.clone(), name);
        poll(
            &format!("the pods of namespace {name} to be deleted"),
            WAIT,
            || async {
                let left = pods.list_metadata(&ListParams::default()).await?;
                Ok(left.items.is_empty().then_some(()))
            },
        )
        .await
    }

    /// Run kubectl against this control plane; its stdout, or an error with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let cache = self.kubeconfig.with_file_name("kubectl-cache");
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .context("running kubectl (is it installed?)")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

/// Poll `check` until it returns `Some`; fail after `limit` with `what` in the message.
pub async fn poll<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The repository root (the workspace this crate belongs to).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Say why a test skips part of its work on this control plane (e.g. `E2E_EXTENDER=0`), past
/// libtest's output capture so that it shows in a plain run.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    // Nothing useful to do if stderr is gone.
    let _ = writeln!(std::io::stderr(), "skipping {test}: {why}");
}

/// The whole-GPU extended resource.
pub const GPU: &str = "nvidia.com/gpu";

/// A pod for kwok (its image is never pulled): 100m CPU, 64Mi, `gpus` whole GPUs if any.
pub fn pod(
    name: &str,
    scheduler: &str,
    gpus: Option<u32>,
) -> Result<k8s_openapi::api::core::v1::Pod> {
    let mut resources = serde_json::json!({ "requests": { "cpu": "100m", "memory": "64Mi" } });
    if let Some(n) = gpus {
        // Extended resources are requested through limits (requests default to them).
        resources["limits"] = serde_json::json!({ GPU: n.to_string() });
    }
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "schedulerName": scheduler,
            "containers": [{ "name": "main", "image": "allot-e2e/pause:never-pulled", "resources": resources }]
        }
    }))?)
}

/// Wait until pod `name` is Running.
pub async fn wait_running(
    pods: &Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
) -> Result<k8s_openapi::api::core::v1::Pod> {
    use kube::runtime::wait::{await_condition, conditions};
    tokio::time::timeout(
        WAIT,
        await_condition(pods.clone(), name, conditions::is_pod_running()),
    )
    .await
    .with_context(|| format!("pod {name} not Running after {WAIT:?}"))??
    .with_context(|| format!("pod {name} disappeared"))
}
