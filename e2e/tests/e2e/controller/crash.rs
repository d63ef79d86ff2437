//! A controller that dies in the middle of creating a request's pods (a failpoint makes the
//! moment the same every run) is succeeded by another that finishes the work: every replica
//! exists once, none is lost, and the pods made before the crash are kept, not recreated.

use std::collections::BTreeMap;

use anyhow::{Result, bail, ensure};
use serde_json::json;

use super::{bound_pods, controller, create, request_pods, status_where, task};
use crate::support::{AllotProcess, Cluster, WAIT, free_port, poll};

/// The failpoint `allot controller` exits at (`src/process/failpoint.rs`), and its status.
const FAILPOINT: (&str, &str) = ("ALLOT_FAILPOINTS", "controller.pod-created=2");
const FAILPOINT_EXIT: i32 = 86;

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn a_controller_killed_mid_reconcile_is_succeeded_without_lost_or_duplicated_pods()
-> Result<()> {
    let test = "a_controller_killed_mid_reconcile_is_succeeded_without_lost_or_duplicated_pods";
    let cluster = Cluster::from_env(test).await?;
    cluster
        .in_namespace("sr-crash", |cluster, ns| async move {
            let admin = format!("127.0.0.1:{}", free_port()?);
            let args = [
                "controller",
                "--lease-namespace",
                &ns,
                "--lease-duration-seconds",
                "3",
                "--admin-listen",
                &admin,
            ];
            let mut first =
                AllotProcess::start_with_env(cluster, "controller-crash-1", &args, &[FAILPOINT])?;
            first.wait_ready(&format!("http://{admin}/readyz")).await?;
            let spec = json!({ "tasks": [task("w", 4, json!({ "cpu": "100m", "memory": "64Mi" }))] });
            create(cluster, &ns, "crashy", spec).await?;

            let status = poll("the controller to exit at its failpoint", WAIT, || {
                let status = first.exit_status();
                async move { status }
            })
            .await?;
            if status.code() != Some(FAILPOINT_EXIT) {
                bail!(
                    "the controller exited with {status}, not the failpoint's {FAILPOINT_EXIT}; \
                     last log lines:\n{}",
                    first.log_tail(20)
                );
            }
            let made: BTreeMap<String, String> = request_pods(cluster, &ns, "crashy")
                .await?
                .into_iter()
                .filter_map(|p| Some((p.metadata.name?, p.metadata.uid?)))
                .collect();
            ensure!(
                (2..=4).contains(&made.len()),
                "{} pods when the controller died at its second creation: {made:?}",
                made.len()
            );

            // The successor takes the Lease once the dead holder's 3 s run out.
            let _second = controller(cluster, &ns, "controller-crash-2").await?;
            let bound = bound_pods(cluster, &ns, "crashy", 4).await?;
            let names: Vec<&str> = bound.keys().map(String::as_str).collect();
            ensure!(
                names == ["crashy-w-0", "crashy-w-1", "crashy-w-2", "crashy-w-3"],
                "replicas after the restart: {names:?}"
            );
            let now: BTreeMap<String, String> = request_pods(cluster, &ns, "crashy")
                .await?
                .into_iter()
                .filter_map(|p| Some((p.metadata.name?, p.metadata.uid?)))
                .collect();
            ensure!(now.len() == 4, "{} pods, not 4: {now:?}", now.len());
            for (name, uid) in &made {
                ensure!(
                    now.get(name) == Some(uid),
                    "{name} was recreated after the crash (uid {uid} -> {:?})",
                    now.get(name)
                );
            }
            status_where(cluster, &ns, "crashy", "4 bound in the status", |s| {
                s["counts"]["bound"].as_i64() == Some(4)
            })
            .await?;
            println!(
                "{} of 4 pods made before the failpoint; the successor made the rest, recreated none",
                made.len()
            );
            Ok(())
        })
        .await
}
