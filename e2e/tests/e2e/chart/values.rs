//! The chart's values: a typo or a bad value is refused by `helm template` with the key
//! named (the schema is strict); the kube-scheduler image follows the cluster's version; the
//! PodDisruptionBudgets and the `helm test` pod render as documented. Needs only helm.

use anyhow::{Context, Result, ensure};

use super::{find, helm_binary, objects, render, versions};
use crate::support::skip;

const NS: &str = "allot-system";

/// helm and the pinned Kubernetes version, or `None` (said) when helm is not built.
pub(crate) fn helm(test: &str) -> Result<Option<(std::path::PathBuf, String)>> {
    let pins = versions()?;
    let helm = helm_binary(&pins)?;
    if !helm.is_file() {
        skip(
            test,
            &format!("{} not found (e2e/build-deps builds it)", helm.display()),
        );
        return Ok(None);
    }
    let version = pins
        .get("K8S_VERSION")
        .cloned()
        .context("e2e/versions.env has no K8S_VERSION")?;
    Ok(Some((helm, version)))
}

#[test]
#[ignore = "needs e2e/up"]
fn bad_values_are_refused_with_the_key_named() -> Result<()> {
    let Some((helm, version)) = helm("bad_values_are_refused_with_the_key_named")? else {
        return Ok(());
    };
    let rows: [(&str, &str); 7] = [
        (
            "extender.enabeld=true",
            "at '/extender': additional properties 'enabeld' not allowed",
        ),
        (
            "scheduler.imag.tag=x",
            "at '/scheduler': additional properties 'imag' not allowed",
        ),
        ("typo=1", "additional properties 'typo' not allowed"),
        ("extender.logLevel=verbose", "at '/extender/logLevel'"),
        (
            "imageRegistry=https://registry.example",
            "at '/imageRegistry'",
        ),
        (
            "extender.resources.requests.cpu=lots",
            "at '/extender/resources/requests/cpu'",
        ),
        (
            "extender.gpuMap.enabled=perhaps",
            "at '/extender/gpuMap/enabled'",
        ),
    ];
    let mut wrong = Vec::new();
    for (set, expected) in rows {
        match render(&helm, &version, NS, &[set]) {
            Ok(_) => wrong.push(format!("{set}: accepted")),
            Err(e) if !format!("{e:#}").contains(expected) => {
                wrong.push(format!("{set}: expected {expected:?} in {e:#}"));
            }
            Err(_) => {}
        }
    }
    ensure!(
        wrong.is_empty(),
        "{} of {} rows:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
    Ok(())
}

#[test]
#[ignore = "needs e2e/up"]
fn the_scheduler_image_follows_the_cluster_and_the_budgets_never_block_a_drain() -> Result<()> {
    let test = "the_scheduler_image_follows_the_cluster_and_the_budgets_never_block_a_drain";
    let Some((helm, version)) = helm(test)? else {
        return Ok(());
    };
    let image = |kube: &str, sets: &[&str]| -> Result<String> {
        let objs = objects(&render(&helm, kube, NS, sets)?)?;
        let d = find(&objs, "Deployment", "allot-scheduler").context("no scheduler")?;
        let image = &d["spec"]["template"]["spec"]["containers"][0]["image"];
        Ok(image.as_str().unwrap_or_default().to_string())
    };
    ensure!(image(&version, &[])? == format!("kube-scheduler:{version}"));
    ensure!(image("v1.31.4+k3s1", &[])? == "kube-scheduler:v1.31.4");
    ensure!(image("v1.32.2-eks-bc803b4", &[])? == "kube-scheduler:v1.32.2");
    ensure!(
        image("v1.31.4", &["scheduler.image.tag=v1.31.0-custom"])?
            == "kube-scheduler:v1.31.0-custom"
    );
    ensure!(
        image(&version, &["imageRegistry=mirror.internal:5000/k8s"])?
            == format!("mirror.internal:5000/k8s/kube-scheduler:{version}")
    );

    let objs = objects(&render(&helm, &version, NS, &[])?)?;
    for component in ["scheduler", "extender"] {
        let name = format!("allot-{component}");
        let pdb = find(&objs, "PodDisruptionBudget", &name).context(name.clone())?;
        ensure!(pdb["spec"]["maxUnavailable"] == 1, "{pdb:?}");
        let selects = &pdb["spec"]["selector"]["matchLabels"];
        let deployment = find(&objs, "Deployment", &name).context("its Deployment")?;
        ensure!(
            *selects == deployment["spec"]["selector"]["matchLabels"],
            "{name} selector"
        );
        ensure!(
            pdb["spec"]["minAvailable"].is_null(),
            "minAvailable would block a drain"
        );
    }
    let test_pod = objs
        .iter()
        .find(|o| o["metadata"]["annotations"]["helm.sh/hook"] == "test")
        .context("no helm test pod")?;
    let script = test_pod["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap_or_default();
    ensure!(
        script.contains("allot-extender:8889") && script.contains("/readyz"),
        "{script}"
    );

    let objs = objects(&render(
        &helm,
        &version,
        NS,
        &[
            "networkPolicy.verbsFrom[0].podSelector.matchLabels.app=s",
            "scheduler.enabled=false",
        ],
    )?)?;
    ensure!(find(&objs, "PodDisruptionBudget", "allot-scheduler").is_none());
    ensure!(find(&objs, "PodDisruptionBudget", "allot-extender").is_some());
    let objs = objects(&render(
        &helm,
        &version,
        NS,
        &["extender.podDisruptionBudget.enabled=false"],
    )?)?;
    ensure!(find(&objs, "PodDisruptionBudget", "allot-extender").is_none());
    Ok(())
}
