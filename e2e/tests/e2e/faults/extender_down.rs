//! The extender gone and back, behind kube-schedulers of this test's own configured by the
//! chart (`helm template`, its scheduler ConfigMap as rendered): with `ignorable: false` (the
//! default) allot's pods wait while it is down and schedule, with allot's device choice, once
//! it answers again; with `ignorable: true` they schedule without it and without devices.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};

use crate::chart::values::helm;
use crate::chart::{objects, render};
use crate::support::{AllotProcess, Cluster, WAIT, free_port, pod, poll, repo_root, wait_running};

const DEVICES: &str = "allot.dev/gpu-devices";

/// A kube-scheduler run by the test, stopped when dropped.
struct Scheduler {
    child: Child,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start kube-scheduler (from helm's bin directory) with the chart's configuration: profile
/// `name`, the extender at `url`, `ignorable` as given; wait until it is ready.
async fn scheduler(
    helm: &Path,
    version: &str,
    name: &str,
    url: &str,
    ignorable: bool,
) -> Result<Scheduler> {
    let run_dir = PathBuf::from(std::env::var("ALLOT_E2E_DIR").context("ALLOT_E2E_DIR not set")?);
    let kubeconfig = run_dir.join("scheduler.kubeconfig");
    let sets = [
        format!("scheduler.schedulerName={name}"),
        format!("scheduler.extender.urlPrefix={url}"),
        format!("scheduler.extender.ignorable={ignorable}"),
        format!(
            "scheduler.clientConnection.kubeconfig={}",
            kubeconfig.display()
        ),
        "scheduler.leaderElection.enabled=false".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let objs = objects(&render(helm, version, "allot-system", &sets)?)?;
    let config = objs
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .find_map(|o| o["data"]["config.yaml"].as_str())
        .context("the chart rendered no scheduler ConfigMap with config.yaml")?;
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

fn devices(p: &Pod) -> Option<&String> {
    p.metadata.annotations.as_ref()?.get(DEVICES)
}

/// An allot extender of this test's own on `port` (admin on `admin`), ready.
async fn extender(cluster: &Cluster, name: &str, port: u16, admin: u16) -> Result<AllotProcess> {
    let listen = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{admin}");
    let mut p = AllotProcess::start(
        cluster,
        name,
        &["extender", "--listen", &listen, "--admin-listen", &admin],
    )?;
    p.wait_ready(&format!("http://{admin}/readyz")).await?;
    Ok(p)
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn without_the_extender_allot_pods_wait_unless_it_is_ignorable() -> Result<()> {
    let test = "without_the_extender_allot_pods_wait_unless_it_is_ignorable";
    let cluster = Cluster::from_env(test).await?;
    let Some((helm, version)) = helm(test)? else {
        return Ok(());
    };
    cluster
        .in_namespace("ext-down", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            let (port, admin) = (free_port()?, free_port()?);
            let url = format!("http://127.0.0.1:{port}");
            let strict = "allot-faults-strict";
            let _strict = scheduler(&helm, &version, strict, &url, false).await?;

            let mut ext = extender(cluster, "extender-faults-1", port, admin).await?;
            pods.create(&PostParams::default(), &pod("up", strict, Some(1))?)
                .await?;
            let up = wait_running(&pods, "up").await?;
            ensure!(
                devices(&up).is_some(),
                "a pod placed through the extender has no {DEVICES}"
            );

            // Down: the pod waits, and its events say why.
            ext.stop();
            pods.create(&PostParams::default(), &pod("waits", strict, Some(1))?)
                .await?;
            let events = Api::<Event>::namespaced(cluster.client.clone(), &ns);
            let why = poll("a FailedScheduling event for the waiting pod", WAIT, || {
                let events = events.clone();
                async move {
                    let list = events
                        .list(&ListParams::default().fields("involvedObject.name=waits"))
                        .await?;
                    Ok(list
                        .items
                        .into_iter()
                        .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
                        .and_then(|e| e.message))
                }
            })
            .await?;
            let waiting = pods.get("waits").await?;
            ensure!(
                waiting
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_none(),
                "a pod was bound while the extender was down"
            );
            println!("while the extender is down: {why}");

            // Back: the same pod schedules through it.
            let _ext = extender(cluster, "extender-faults-2", port, admin).await?;
            let back = Instant::now();
            let placed = wait_running(&pods, "waits").await?;
            ensure!(
                devices(&placed).is_some(),
                "the waiting pod was placed without {DEVICES}"
            );
            println!(
                "the waiting pod ran {:.1} s after the extender was back",
                back.elapsed().as_secs_f64()
            );

            // Ignorable: with no extender at all the pod schedules, by kube-scheduler alone.
            let ignorable = "allot-faults-ignorable";
            let nowhere = format!("http://127.0.0.1:{}", free_port()?);
            let _ign = scheduler(&helm, &version, ignorable, &nowhere, true).await?;
            pods.create(&PostParams::default(), &pod("ignored", ignorable, Some(1))?)
                .await?;
            let ignored = wait_running(&pods, "ignored").await?;
            ensure!(
                devices(&ignored).is_none(),
                "a pod scheduled without the extender has {DEVICES}: {:?}",
                devices(&ignored)
            );
            Ok(())
        })
        .await
}
