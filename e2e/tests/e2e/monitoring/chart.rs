//! The chart ships the dashboard and the alert rules only when asked: the dashboard's
//! ConfigMap carries `monitoring/dashboard.json` as it is (under 1 MiB, accepted by the API
//! server), the PrometheusRule carries `monitoring/rules.yaml`'s groups and is rendered only
//! where the cluster serves monitoring.coreos.com/v1 PrometheusRule.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::support::{Cluster, repo_root, skip};

/// helm from `e2e/build-deps --print-bin`, if built.
fn helm() -> Result<Option<PathBuf>> {
    let out = Command::new(repo_root().join("e2e/build-deps"))
        .arg("--print-bin")
        .output()
        .context("running e2e/build-deps --print-bin")?;
    ensure!(out.status.success(), "e2e/build-deps --print-bin failed");
    let helm = PathBuf::from(String::from_utf8(out.stdout)?.trim()).join("helm");
    Ok(helm.is_file().then_some(helm))
}

/// The objects `helm template` renders with `args`, as YAML values.
fn render(helm: &PathBuf, kube: &str, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let chart = repo_root().join("charts/allot");
    let out = Command::new(helm)
        .args(["template", "allot"])
        .arg(&chart)
        .args(["--namespace", "allot-system", "--kube-version", kube])
        .args(args)
        .output()
        .with_context(|| format!("running {}", helm.display()))?;
    ensure!(
        out.status.success(),
        "helm template {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8(out.stdout)?;
    let mut objects = Vec::new();
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).context("rendered YAML")?;
    for value in docs {
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn kinds(objects: &[serde_json::Value]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| o["kind"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn chart_ships_the_dashboard_and_rules_only_when_asked() -> Result<()> {
    let test = "chart_ships_the_dashboard_and_rules_only_when_asked";
    let cluster = Cluster::from_env(test).await?;
    let Some(helm) = helm()? else {
        skip(test, "helm not found (e2e/build-deps builds it)");
        return Ok(());
    };
    let kube = cluster.client.apiserver_version().await?.git_version;
    let dashboard = "metrics.grafanaDashboard.enabled=true";
    let rules = "metrics.prometheusRule.enabled=true";
    let api = "monitoring.coreos.com/v1/PrometheusRule";

    let plain = kinds(&render(&helm, &kube, &[])?);
    ensure!(
        !plain.contains("PrometheusRule"),
        "rendered by default: {plain:?}"
    );
    let no_api = render(&helm, &kube, &["--set", dashboard, "--set", rules])?;
    ensure!(
        !kinds(&no_api).contains("PrometheusRule"),
        "a PrometheusRule rendered without the monitoring.coreos.com API"
    );

    let objects = render(
        &helm,
        &kube,
        &["--set", dashboard, "--set", rules, "--api-versions", api],
    )?;
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .with_context(|| format!("no {kind} {name} rendered"))
    };
    let configmap = find("ConfigMap", "allot-dashboard")?;
    ensure!(
        configmap["metadata"]["labels"]["grafana_dashboard"] == "1",
        "the dashboard ConfigMap lacks grafana_dashboard: \"1\""
    );
    let shipped: serde_json::Value = serde_json::from_str(
        configmap["data"]["allot.json"]
            .as_str()
            .context("no data.allot.json")?,
    )
    .context("the ConfigMap's allot.json is not JSON")?;
    let file = repo_root().join("charts/allot/monitoring/dashboard.json");
    let source: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    ensure!(
        shipped == source,
        "the ConfigMap's dashboard differs from {}",
        file.display()
    );
    let size = serde_json::to_vec(configmap)?.len();
    ensure!(
        size < 1 << 20,
        "the dashboard ConfigMap is {size} bytes, over 1 MiB"
    );

    let rule = find("PrometheusRule", "allot")?;
    let text = std::fs::read_to_string(repo_root().join("charts/allot/monitoring/rules.yaml"))?;
    let groups: serde_json::Value = serde_saphyr::from_str(&text)?;
    ensure!(
        rule["spec"]["groups"] == groups["groups"],
        "the PrometheusRule's groups differ from monitoring/rules.yaml's"
    );

    // The API server takes the ConfigMap (it refuses ConfigMaps over 1 MiB), in a namespace
    // of the test's.
    let mut configmap = serde_json::to_value(configmap)?;
    if let Some(meta) = configmap["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    let configmap = &configmap;
    cluster
        .in_namespace("monitoring-chart", |cluster, ns| async move {
            let path = repo_root().join(format!("target/e2e-logs/{ns}-dashboard.json"));
            std::fs::write(&path, serde_json::to_vec(configmap)?)?;
            let file = path.to_string_lossy().into_owned();
            cluster.kubectl(&["create", "--dry-run=server", "-n", &ns, "-f", &file])?;
            Ok(())
        })
        .await?;
    Ok(())
}
