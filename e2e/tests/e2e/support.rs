//! Test plumbing: find the e2e control plane (or fail saying how to start one), temporary
//! namespaces, kubectl, polling, allot processes.

mod curl;
pub use curl::{curl, curl_ok};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

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

/// `cargo build --locked <args>` in the workspace (debug profile); the path of `artifact` in
/// the target directory. Each distinct build runs once per test process.
pub fn cargo_artifact(args: &[&str], artifact: &str) -> Result<PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, String>>>> = OnceLock::new();
    let key = args.join(" ");
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    built
        .entry(key.clone())
        .or_insert_with(|| {
            let root = repo_root();
            let status = allot_e2e::cargo::nested_cargo()
                .args(["build", "--locked"])
                .args(args)
                .current_dir(&root)
                .status()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build {key} failed ({status})"));
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), PathBuf::from);
            Ok(target.join("debug").join(artifact))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The `allot` binary under test: `$ALLOT_BIN` if set, else the workspace's debug build.
pub fn allot_binary() -> Result<PathBuf> {
    match std::env::var_os("ALLOT_BIN").filter(|b| !b.is_empty()) {
        Some(bin) => Ok(PathBuf::from(bin)),
        None => cargo_artifact(&["--bin", "allot"], "allot"),
    }
}

/// A running allot process (extender, controller, agent), killed when dropped. Its stderr
/// goes to `target/e2e-logs/<name>.log`, which `e2e/run` keeps after the run.
pub struct AllotProcess {
    pub name: String,
    pub log: PathBuf,
    child: std::process::Child,
}

impl AllotProcess {
    /// Start `allot <args>` against this control plane's kubeconfig.
    pub fn start(cluster: &Cluster, name: &str, args: &[&str]) -> Result<Self> {
        Self::start_with_env(cluster, name, args, &[])
    }

    pub fn start_with_env(
        cluster: &Cluster,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let bin = allot_binary()?;
        let dir = repo_root().join("target").join("e2e-logs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join(format!("{name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&bin)
            .args(args)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {} {}", bin.display(), args.join(" ")))?;
        Ok(Self {
            name: name.to_string(),
            log,
            child,
        })
    }

    /// Fail (with the log's tail) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); last log lines:\n{}",
                self.name,
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Wait until `url` answers 200 (e.g. an admin `/readyz`), failing early if the process dies.
    pub async fn wait_ready(&mut self, url: &str) -> Result<()> {
        let what = format!("{} at {url}", self.name);
        let start = std::time::Instant::now();
        loop {
            self.check_alive()?;
            let ok = Command::new("curl")
                .args(["-sf", "-o", "/dev/null", url])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if start.elapsed() > WAIT {
                bail!(
                    "timed out after {WAIT:?} waiting for {what}; last log lines:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last `n` lines of the process's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Stop the process (SIGKILL) and wait for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AllotProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests run one at a time).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
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

/// The NodeTelemetry API, untyped (the tests write what an agent would, and read what one wrote).
pub fn telemetry_api(cluster: &Cluster) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("allot.dev", "v1alpha1", "NodeTelemetry");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "nodetelemetries");
    Api::all_with(cluster.client.clone(), &resource)
}

/// Write `node`'s NodeTelemetry as an agent would (server-side apply of the object and its
/// status): heartbeat `age` ago, one GPU of `model` per entry of `gpus`, each Healthy (`None`)
/// or Unhealthy with the given reason.
pub async fn publish_telemetry(
    cluster: &Cluster,
    node: &str,
    model: &str,
    age: Duration,
    gpus: &[Option<&str>],
) -> Result<()> {
    let beat = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::try_from(age).context("heartbeat age")?;
    let list: Vec<serde_json::Value> = gpus
        .iter()
        .enumerate()
        .map(|(i, reason)| {
            serde_json::json!({ "index": i, "uuid": format!("GPU-e2e-{node}-{i}"), "model": model,
                "memoryTotalBytes": 0, "memoryUsedBytes": 0, "utilizationGpuPercent": 0,
                "utilizationMemoryPercent": 0, "temperatureCelsius": 40, "powerMilliwatts": 0,
                "health": if reason.is_some() { "Unhealthy" } else { "Healthy" }, "reason": reason })
        })
        .collect();
    let healthy = gpus.iter().filter(|r| r.is_none()).count();
    let report = serde_json::json!({ "apiVersion": "allot.dev/v1alpha1", "kind": "NodeTelemetry",
        "metadata": { "name": node }, "spec": { "nodeName": node },
        "status": { "heartbeatTime": beat.to_string(), "agentVersion": "e2e",
            "cpu": { "allocatableMilli": 0, "usedMilli": 0 },
            "memory": { "allocatableBytes": 0, "usedBytes": 0 },
            "gpuCount": gpus.len(), "healthyGpus": healthy, "gpus": list } });
    let api = telemetry_api(cluster);
    let ssa = kube::api::PatchParams::apply("allot-e2e").force();
    api.patch(node, &ssa, &kube::api::Patch::Apply(&report))
        .await
        .with_context(|| format!("applying NodeTelemetry {node}"))?;
    api.patch_status(node, &ssa, &kube::api::Patch::Apply(&report))
        .await
        .with_context(|| format!("applying NodeTelemetry {node} status"))?;
    Ok(())
}

/// The fake NVML's device file (`fake-nvml/`) for `count` GPUs of `model` with 16 GiB each,
/// UUIDs `GPU-<node>-<i>`; GPU `failing` (if any) is lost.
pub fn fake_gpus(node: &str, model: &str, count: u64, failing: Option<u64>) -> Value {
    let gpus: Vec<Value> = (0..count)
        .map(|i| {
            let mut g = json!({
                "uuid": format!("GPU-{node}-{i}"),
                "name": model,
                "memoryTotalBytes": 16u64 << 30,
                "memoryUsedBytes": 1u64 << 30,
                "utilizationGpu": 20,
                "temperatureCelsius": 40,
                "powerMilliwatts": 70_000,
                "eccUncorrected": 0,
            });
            if failing == Some(i) {
                g["fail"] = json!("lost");
            }
            g
        })
        .collect();
    json!({ "driverVersion": "550.0-e2e", "gpus": gpus })
}

/// Writes a device file for the fake NVML, atomically.
pub fn write_devices(path: &Path, devices: &Value) -> Result<()> {
    // Write then rename, so an agent never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(devices)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}
