//! `manifests/`, for users without Helm: it is the chart rendered with default values
//! (`scripts/render-manifests --check`), the API server accepts every object in it, and each
//! of `manifests/examples/` is accepted too; the two pod examples are applied for real and
//! bound by kube-scheduler through allot.

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::support::{Cluster, repo_root, skip, wait_running};

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn manifests_are_the_rendered_chart_and_every_object_and_example_is_accepted() -> Result<()> {
    let test = "manifests_are_the_rendered_chart_and_every_object_and_example_is_accepted";
    let cluster = Cluster::from_env(test).await?;
    let root = repo_root();
    let check = std::process::Command::new(root.join("scripts/render-manifests"))
        .arg("--check")
        .output()
        .context("running scripts/render-manifests --check")?;
    ensure!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let dir = root.join("manifests");
    let file = |name: &str| dir.join(name).display().to_string();
    // The objects in allot-system: server-side dry run, in the namespace as it will exist.
    let ns_file = file("00-namespace.yaml");
    cluster.kubectl(&["apply", "--server-side", "-f", &ns_file])?;
    let accepted = cluster.kubectl(&[
        "apply",
        "--dry-run=server",
        "-f",
        &file("01-crds.yaml"),
        "-f",
        &file("10-allot.yaml"),
    ]);
    cluster.kubectl(&["delete", "-f", &ns_file, "--wait=false"])?;
    let accepted = accepted?;
    for kind in [
        "deployment.apps/allot-extender",
        "daemonset.apps/allot-agent",
    ] {
        ensure!(accepted.contains(kind), "{kind} not applied:\n{accepted}");
    }

    cluster
        .in_namespace("examples", |cluster, ns| async move {
            let examples = dir.join("examples");
            let out = cluster.kubectl(&[
                "apply",
                "--dry-run=server",
                "-n",
                &ns,
                "-f",
                &examples.display().to_string(),
            ])?;
            for name in ["pod/train-resnet", "pod/notebook", "pod/inference-a100"] {
                ensure!(out.contains(name), "{name} not accepted:\n{out}");
            }
            ensure!(out.contains("schedulerequest.allot.dev/finetune"), "{out}");
            if !cluster.extender_required {
                skip(
                    test,
                    "E2E_EXTENDER=0: the pod examples are not scheduled by allot",
                );
                return Ok(());
            }
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            for (file, pod) in [
                ("training-pod.yaml", "train-resnet"),
                ("notebook-share.yaml", "notebook"),
            ] {
                let path = examples.join(file).display().to_string();
                cluster.kubectl(&["apply", "-n", &ns, "-f", &path])?;
                let running = wait_running(&pods, pod).await?;
                let annotations = running.metadata.annotations.unwrap_or_default();
                ensure!(
                    annotations.contains_key("allot.dev/gpu-devices"),
                    "{pod} was not bound by allot: {annotations:?}"
                );
            }
            Ok(())
        })
        .await
}
