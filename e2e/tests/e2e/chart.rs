//! The Helm chart (`charts/allot`) renders with the pinned helm and every object it renders is
//! accepted by the real API server (`kubectl apply --dry-run=server`: schemas, RBAC role
//! references, the CRDs' kinds), in its default shape and with the controller embedded or the
//! agent off. The rendered scheduler configuration calls the extender through the chart's
//! Service, with the same extender settings as `e2e/up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::support::{Cluster, repo_root};

mod history;
mod manifests;
pub(crate) mod values;

const RELEASE: &str = "allot";

/// The pins of `e2e/versions.env` (plain `KEY=value` lines).
pub(crate) fn versions() -> Result<BTreeMap<String, String>> {
    let path = repo_root().join("e2e/versions.env");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect())
}

/// Where `e2e/build-deps` puts helm, found as `e2e/lib.sh` does: `$ALLOT_E2E_BIN`, else
/// `<$ALLOT_E2E_CACHE or ~/.cache/allot-e2e>/<key from versions.env>/bin`.
pub(crate) fn helm_binary(pins: &BTreeMap<String, String>) -> Result<PathBuf> {
    let bin = match std::env::var_os("ALLOT_E2E_BIN").filter(|b| !b.is_empty()) {
        Some(bin) => PathBuf::from(bin),
        None => {
            let root = match std::env::var_os("ALLOT_E2E_CACHE").filter(|c| !c.is_empty()) {
                Some(cache) => PathBuf::from(cache),
                None => {
                    let home = std::env::var_os("HOME").context("HOME is not set")?;
                    Path::new(&home).join(".cache/allot-e2e")
                }
            };
            let pin = |k: &str| {
                pins.get(k)
                    .map(String::as_str)
                    .with_context(|| format!("e2e/versions.env has no {k}"))
            };
            let key = format!(
                "k8s-{}_etcd-{}_kwok-{}_helm-{}",
                pin("K8S_VERSION")?,
                pin("ETCD_VERSION")?,
                pin("KWOK_VERSION")?,
                pin("HELM_VERSION")?
            );
            root.join(key).join("bin")
        }
    };
    Ok(bin.join("helm"))
}

/// `helm template` of the chart into `ns` with extra `--set` values; the rendered YAML.
pub(crate) fn render(helm: &Path, kube_version: &str, ns: &str, sets: &[&str]) -> Result<String> {
    let chart = repo_root().join("charts").join("allot");
    let mut cmd = Command::new(helm);
    // --kube-version: helm's default capabilities come from link-time variables that a plain
    // `go build` (as in e2e/build-deps) leaves at v1.20, below the chart's kubeVersion.
    cmd.args(["template", RELEASE]).arg(&chart).args([
        "--namespace",
        ns,
        "--kube-version",
        kube_version,
    ]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", helm.display()))?;
    if !out.status.success() {
        bail!(
            "helm template {sets:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The rendered objects, as YAML values (empty documents dropped).
pub(crate) fn objects(rendered: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for value in serde_saphyr::from_multiple::<Value>(rendered)? {
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

pub(crate) fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objs.iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
}

/// The extender's NetworkPolicy admits only the chart's kube-scheduler pods to the verbs
/// port and anyone to the metrics port (probes, /metrics). Its shape only: the e2e cluster
/// has no network plugin to enforce it.
fn check_network_policy(objs: &[Value]) -> Result<()> {
    let name = format!("{RELEASE}-extender");
    let np = find(objs, "NetworkPolicy", &name)
        .with_context(|| format!("no NetworkPolicy {name} rendered"))?;
    let spec = &np["spec"];
    let component = |selector: &Value| {
        selector["matchLabels"]["app.kubernetes.io/component"]
            .as_str()
            .map(str::to_string)
    };
    ensure!(
        component(&spec["podSelector"]).as_deref() == Some("extender"),
        "the NetworkPolicy does not select the extender's pods: {spec:?}"
    );
    let rules = spec["ingress"].as_array().context("no ingress rules")?;
    ensure!(rules.len() == 2, "expected two ingress rules: {rules:?}");
    let port = |rule: &Value| {
        let ports = rule["ports"].as_array().cloned().unwrap_or_default();
        ports
            .iter()
            .map(|p| p["port"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    ensure!(port(&rules[0]) == [Some("http".to_string())], "{rules:?}");
    let from = rules[0]["from"]
        .as_array()
        .context("the verbs rule names no peers")?;
    ensure!(
        from.len() == 1 && component(&from[0]["podSelector"]).as_deref() == Some("scheduler"),
        "the verbs port admits more than the scheduler's pods: {from:?}"
    );
    ensure!(
        port(&rules[1]) == [Some("metrics".to_string())],
        "{rules:?}"
    );
    ensure!(
        rules[1]["from"].is_null(),
        "the metrics port is open to anyone by default"
    );
    Ok(())
}

/// The scheduler configuration names the extender's Service and port, with e2e/up's settings.
fn check_scheduler_config(objs: &[Value], ns: &str) -> Result<()> {
    let service = format!("{RELEASE}-extender");
    let svc = find(objs, "Service", &service)
        .with_context(|| format!("no Service {service} rendered"))?;
    let port = svc["spec"]["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|p| p["name"].as_str() == Some("http")))
        .and_then(|p| p["port"].as_u64())
        .context("the extender Service has no port named http")?;

    let cm_name = format!("{RELEASE}-scheduler");
    let cm = find(objs, "ConfigMap", &cm_name)
        .with_context(|| format!("no ConfigMap {cm_name} rendered"))?;
    let text = cm["data"]["config.yaml"]
        .as_str()
        .context("the scheduler ConfigMap has no config.yaml")?;
    let config: Value = serde_saphyr::from_str(text).context("parsing config.yaml")?;
    ensure!(
        config["kind"].as_str() == Some("KubeSchedulerConfiguration"),
        "config.yaml is not a KubeSchedulerConfiguration:\n{text}"
    );
    let profiles: Vec<_> = config["profiles"]
        .as_array()
        .context("no profiles")?
        .iter()
        .filter_map(|p| p["schedulerName"].as_str())
        .collect();
    ensure!(
        profiles == ["allot"],
        "profiles must be exactly [allot], got {profiles:?}"
    );
    let leader = &config["leaderElection"];
    ensure!(
        leader["leaderElect"].as_bool() == Some(true)
            && leader["resourceNamespace"].as_str() == Some(ns)
            && leader["resourceName"].as_str() == Some("allot-scheduler"),
        "leader election must use the Lease {ns}/allot-scheduler: {leader:?}"
    );
    // The extender twice: the scheduling cycle's verbs, then bind alone (own HTTP clients).
    let extenders = config["extenders"].as_array().context("no extenders")?;
    let verbs = [
        ("filterVerb", "filter"),
        ("prioritizeVerb", "prioritize"),
        ("preemptVerb", "preempt"),
        ("bindVerb", "bind"),
    ];
    let want_verbs: [&[&str]; 2] = [&["filter", "prioritize", "preempt"], &["bind"]];
    ensure!(
        extenders.len() == want_verbs.len(),
        "two extender entries expected: {extenders:?}"
    );
    // Mutual TLS by default: https, the scheduler's client certificate, the chart's CA, and
    // the extender's certificate checked for the Service's name.
    let want_url = format!("https://{service}.{ns}.svc:{port}");
    let tls_dir = "/etc/allot/tls";
    for (ext, want) in extenders.iter().zip(want_verbs) {
        let has: Vec<&str> = verbs
            .iter()
            .filter_map(|(key, verb)| (ext[key].as_str() == Some(verb)).then_some(*verb))
            .collect();
        ensure!(has == want, "verbs must be {want:?}, got {has:?}: {ext:?}");
        ensure!(
            ext["urlPrefix"].as_str() == Some(want_url.as_str()),
            "urlPrefix must name the extender Service ({want_url}), got {:?}",
            ext["urlPrefix"]
        );
        let tls = &ext["tlsConfig"];
        ensure!(
            ext["enableHTTPS"].as_bool() == Some(true)
                && tls["certFile"].as_str() == Some(&format!("{tls_dir}/client.crt"))
                && tls["keyFile"].as_str() == Some(&format!("{tls_dir}/client.key"))
                && tls["caFile"].as_str() == Some(&format!("{tls_dir}/ca.crt"))
                && tls["serverName"].as_str() == Some(&format!("{service}.{ns}.svc")),
            "mutual TLS settings expected: {ext:?}"
        );
        ensure!(
            ext["httpTimeout"].as_str() == Some("10s"),
            "httpTimeout must be 10s, got {:?}",
            ext["httpTimeout"]
        );
        ensure!(
            ext["nodeCacheCapable"].as_bool() == Some(true),
            "nodeCacheCapable must be true"
        );
        ensure!(
            ext["ignorable"].as_bool() == Some(false),
            "ignorable must be false"
        );
        ensure!(
            ext.get("managedResources").is_none(),
            "managedResources would let annotation-only GPU shares bypass the extender"
        );
    }
    ensure!(
        extenders[0]["weight"].as_u64() == Some(1),
        "weight must be 1"
    );
    // kube-scheduler's resource scoring is off in the allot profile, at both points.
    let plugins = &config["profiles"][0]["plugins"];
    for point in ["preScore", "score"] {
        let disabled: Vec<_> = plugins[point]["disabled"]
            .as_array()
            .map(|s| s.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        ensure!(
            disabled == ["NodeResourcesFit", "NodeResourcesBalancedAllocation"],
            "{point}: the allot profile must disable kube-scheduler's resource scoring, got {disabled:?}"
        );
    }
    Ok(())
}

/// `kubectl apply --dry-run=server` of the rendered objects; kubectl's report.
fn apply_dry_run(cluster: &Cluster, rendered: &str, ns: &str, variant: &str) -> Result<String> {
    let file = std::env::temp_dir().join(format!(
        "allot-e2e-chart-{}-{ns}-{variant}.yaml",
        std::process::id()
    ));
    std::fs::write(&file, rendered).with_context(|| format!("writing {}", file.display()))?;
    let path = file.to_string_lossy().into_owned();
    let result = cluster.kubectl(&["apply", "--dry-run=server", "-f", &path]);
    std::fs::remove_file(&file).ok();
    result.with_context(|| format!("applying the chart ({variant}) with --dry-run=server"))
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn chart_renders_and_the_api_server_accepts_it() -> Result<()> {
    let test = "chart_renders_and_the_api_server_accepts_it";
    let cluster = Cluster::from_env(test).await?;
    let Some((helm, kube_version)) = values::helm(test)? else {
        return Ok(());
    };

    cluster
        .in_namespace("chart", |cluster, ns| async move {
            let variants: [(&str, &[&str]); 3] = [
                ("default", &[]),
                ("embedded", &["controller.embedded=true"]),
                (
                    "no-agent",
                    &["agent.enabled=false", "extender.gpuMap.enabled=true"],
                ),
            ];
            // Without the chart's scheduler, the policy needs the user's peers: said, not guessed.
            let refused = render(&helm, &kube_version, &ns, &["scheduler.enabled=false"])
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            ensure!(
                refused.contains("networkPolicy.verbsFrom"),
                "scheduler.enabled=false without networkPolicy.verbsFrom rendered: {refused}"
            );
            for (variant, sets) in variants {
                let rendered = render(&helm, &kube_version, &ns, sets)?;
                let objs = objects(&rendered)?;
                check_scheduler_config(&objs, &ns).with_context(|| format!("variant {variant}"))?;
                check_network_policy(&objs).with_context(|| format!("variant {variant}"))?;

                let has = |kind: &str, component: &str| {
                    find(&objs, kind, &format!("{RELEASE}-{component}")).is_some()
                };
                ensure!(has("Deployment", "scheduler") && has("Deployment", "extender"));
                ensure!(
                    has("Deployment", "controller") == (variant != "embedded"),
                    "{variant}: the controller Deployment exists only when not embedded"
                );
                ensure!(
                    has("DaemonSet", "agent") == (variant != "no-agent"),
                    "{variant}: the agent DaemonSet exists only when enabled"
                );

                let report = apply_dry_run(cluster, &rendered, &ns, variant)?;
                let accepted = report
                    .lines()
                    .filter(|l| l.ends_with("(server dry run)"))
                    .count();
                ensure!(
                    accepted == objs.len(),
                    "{variant}: {accepted} of {} objects accepted:\n{report}",
                    objs.len()
                );
                ensure!(
                    report.contains(&format!("deployment.apps/{RELEASE}-scheduler")),
                    "{variant}: the scheduler Deployment was not applied:\n{report}"
                );
            }
            Ok(())
        })
        .await
}
