//! Components a scenario runs itself next to `e2e/up`'s: a kube-scheduler configured by the
//! chart (`helm template`, its scheduler ConfigMap as rendered, with a profile of the
//! scenario's own) and an allot extender on ports of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;

use crate::chart::{objects, render};
use crate::support::{AllotProcess, Cluster, WAIT, free_port, poll, repo_root};

/// The annotation allot's bind writes: the devices it chose.
pub const DEVICES: &str = "allot.dev/gpu-devices";
/// The chart's release namespace in these renders.
pub const NS: &str = "allot-system";

/// The devices allot chose for `p`, if it bound it.
pub fn devices(p: &Pod) -> Option<&String> {
    p.metadata.annotations.as_ref()?.get(DEVICES)
}

/// `$ALLOT_E2E_DIR`, the run directory of `e2e/up`.
pub fn run_dir() -> Result<PathBuf> {
    Ok(PathBuf::from(
        std::env::var("ALLOT_E2E_DIR").context("ALLOT_E2E_DIR not set (e2e/up's env sets it)")?,
    ))
}

/// The chart rendered with `sets` plus what points its scheduler at this control plane.
pub fn rendered(
    helm: &Path,
    version: &str,
    name: &str,
    sets: &[String],
) -> Result<Vec<serde_json::Value>> {
    let kubeconfig = run_dir()?.join("scheduler.kubeconfig");
    let mut all = vec![
        format!("scheduler.schedulerName={name}"),
        format!(
            "scheduler.clientConnection.kubeconfig={}",
            kubeconfig.display()
        ),
        "scheduler.leaderElection.enabled=false".to_string(),
    ];
    all.extend(sets.iter().cloned());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    objects(&render(helm, version, NS, &all)?)
}

/// A kube-scheduler run by a test, stopped when dropped.
pub struct Scheduler {
    child: Child,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start kube-scheduler (from helm's bin directory) with the chart's configuration for
/// profile `name` and the chart values `sets`; wait until it is ready.
pub async fn scheduler(
    helm: &Path,
    version: &str,
    name: &str,
    sets: &[String],
) -> Result<Scheduler> {
    let objs = rendered(helm, version, name, sets)?;
    let config = objs
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .find_map(|o| o["data"]["config.yaml"].as_str())
        .context("the chart rendered no scheduler ConfigMap with config.yaml")?;
    let run_dir = run_dir()?;
    let kubeconfig = run_dir.join("scheduler.kubeconfig");
    let logs = repo_root().join("target/e2e-logs");
    std::fs::create_dir_all(&logs)?;
    let config_path = logs.join(format!("{name}-config.yaml"));
    std::fs::write(&config_path, config)?;
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let port = free_port()?.to_string();
    let pki = run_dir.join("pki");
    let bin = helm.with_file_name("kube-scheduler");
    let child = Command::new(&bin)
        .arg("--config")
        .arg(&config_path)
        .arg("--authentication-kubeconfig")
        .arg(&kubeconfig)
        .arg("--authorization-kubeconfig")
        .arg(&kubeconfig)
        .args(["--bind-address", "127.0.0.1", "--secure-port", &port])
        .arg("--tls-cert-file")
        .arg(pki.join("serving.crt"))
        .arg("--tls-private-key-file")
        .arg(pki.join("serving.key"))
        .arg("--client-ca-file")
        .arg(pki.join("ca.crt"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut s = Scheduler { child };
    let cacert = pki.join("ca.crt");
    poll(&format!("kube-scheduler {name} ready"), WAIT, || {
        let exited = s.child.try_wait().map(|e| e.is_some());
        let ok = Command::new("curl")
            .arg("-sf")
            .arg("--cacert")
            .arg(&cacert)
            .arg(format!("https://127.0.0.1:{port}/readyz"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        async move {
            ensure!(
                !exited?,
                "kube-scheduler {name} exited (see target/e2e-logs/{name}.log)"
            );
            Ok(ok.then_some(()))
        }
    })
    .await?;
    Ok(s)
}

/// An allot extender of a test's own on `port` (admin on `admin`) with `extra` flags, ready.
pub async fn extender(
    cluster: &Cluster,
    name: &str,
    port: u16,
    admin: u16,
    extra: &[&str],
) -> Result<AllotProcess> {
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{admin}");
    let mut args = vec!["extender", "--listen", &listen, "--admin-listen", &admin];
    args.extend_from_slice(extra);
    let mut p = AllotProcess::start(cluster, name, &args)?;
    p.wait_ready(&format!("http://{admin}/readyz")).await?;
    Ok(p)
}
