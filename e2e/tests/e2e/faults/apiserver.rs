//! kube-apiserver stopped and started again under a running extender: `/readyz` fails while
//! the watches do and passes once every watch has listed afresh, and what happens after the
//! restart (a pod deleted, a pod created) reaches the extender's figures and decisions.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};

use super::{Restore, component, get, metric_sum};
use crate::support::{Cluster, WAIT, pod, poll, skip, wait_running};

const ALLOCATED: &str = "allot_cluster_gpus_allocated";

/// GPUs held by bound pods, as the extender's `/metrics` says.
fn allocated(admin: &str) -> Result<f64> {
    let (code, text) = get(&format!("{admin}/metrics"))?;
    ensure!(code == 200, "{admin}/metrics answered {code}");
    Ok(metric_sum(&text, ALLOCATED))
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_restarted_api_server_makes_the_extender_unready_until_its_watches_list_afresh()
-> Result<()> {
    let test = "a_restarted_api_server_makes_the_extender_unready_until_its_watches_list_afresh";
    let cluster = Cluster::from_env(test).await?;
    if !cluster.extender_required {
        skip(test, "E2E_EXTENDER=0: no allot extender runs");
        return Ok(());
    }
    let admin = std::env::var("ALLOT_E2E_EXTENDER_ADMIN")
        .context("ALLOT_E2E_EXTENDER_ADMIN not set (e2e/up's env sets it)")?;
    let run_dir = std::env::var("ALLOT_E2E_DIR").context("ALLOT_E2E_DIR not set")?;
    cluster
        .in_namespace("api-restart", |cluster, ns| async move {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            for name in ["before-a", "before-b"] {
                pods.create(&PostParams::default(), &pod(name, "allot", Some(1))?)
                    .await?;
            }
            for name in ["before-a", "before-b"] {
                wait_running(&pods, name).await?;
            }
            let held = allocated(&admin)?;
            let readyz = format!("{admin}/readyz");

            let (unready_after, ready_after) = {
                let _restore = Restore("kube-apiserver");
                component("stop", "kube-apiserver")?;
                let stopped = Instant::now();
                let body = poll("the extender's /readyz to fail", WAIT, || async {
                    let (code, body) = get(&readyz)?;
                    Ok((code == 503 && body.contains("watches failing")).then_some(body))
                })
                .await?;
                let unready_after = stopped.elapsed();
                println!("with kube-apiserver down, /readyz: {}", body.trim());
                component("start", "kube-apiserver")?;
                let started = Instant::now();
                poll("kube-apiserver to answer again", WAIT, || async {
                    Ok(cluster.client.apiserver_version().await.ok().map(|_| ()))
                })
                .await?;
                poll("the extender's /readyz to pass again", WAIT, || async {
                    Ok((get(&readyz)?.0 == 200).then_some(()))
                })
                .await?;
                (unready_after, started.elapsed())
            };
            let log = std::fs::read_to_string(format!("{run_dir}/logs/allot-extender.log"))
                .context("reading the extender's log")?;
            ensure!(
                log.contains("watch recovered: listed afresh"),
                "the extender's log does not say its watches listed afresh"
            );

            // After the restart the extender follows the cluster: a deletion frees a GPU in
            // its figures, and a new pod is placed through it.
            pods.delete("before-a", &DeleteParams::default().grace_period(0))
                .await?;
            poll("the extender to see before-a's GPU freed", WAIT, || async {
                let now = allocated(&admin)?;
                Ok(((now - (held - 1.0)).abs() < 1e-6).then_some(()))
            })
            .await?;
            pods.create(&PostParams::default(), &pod("after", "allot", Some(1))?)
                .await?;
            let placed = Instant::now();
            wait_running(&pods, "after").await?;
            println!(
                "/readyz failed {:.1} s after the stop and passed {:.1} s after the start; \
                 a pod created after the restart ran in {:.1} s",
                unready_after.as_secs_f64(),
                ready_after.as_secs_f64(),
                placed.elapsed().as_secs_f64()
            );
            ensure!(
                unready_after < Duration::from_secs(30),
                "the extender took {unready_after:?} to notice"
            );
            Ok(())
        })
        .await
}
