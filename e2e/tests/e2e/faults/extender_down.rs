//! The extender gone and back, behind kube-schedulers of this test's own configured by the
//! chart (`helm template`, its scheduler ConfigMap as rendered): with `ignorable: false` (the
//! default) allot's pods wait while it is down and schedule, with allot's device choice, once
//! it answers again; with `ignorable: true` they schedule without it and without devices.

use std::time::Instant;

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};

use crate::chart::values::helm;
use crate::own::{DEVICES, devices, extender, scheduler};
use crate::support::{Cluster, WAIT, free_port, pod, poll, wait_running};

/// The chart's values for a plain-HTTP extender at `url`, ignorable or not.
fn chart_sets(url: &str, ignorable: bool) -> Vec<String> {
    vec![
        format!("scheduler.extender.urlPrefix={url}"),
        format!("scheduler.extender.ignorable={ignorable}"),
        "extender.tls.enabled=false".to_string(),
    ]
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
            let _strict = scheduler(&helm, &version, strict, &chart_sets(&url, false)).await?;

            let mut ext = extender(cluster, "extender-faults-1", port, admin, &[]).await?;
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
            let _ext = extender(cluster, "extender-faults-2", port, admin, &[]).await?;
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
            let _ign = scheduler(&helm, &version, ignorable, &chart_sets(&nowhere, true)).await?;
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
