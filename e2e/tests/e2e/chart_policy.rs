//! The chart's extender policy settings (`extender.policy.*`): a ConfigMap the extender reads
//! with `--policy-dir` and follows without a restart. Rendered with the pinned helm: the
//! defaults give `default-policy: learned` and the Deployment mounts the ConfigMap (no `subPath`,
//! which never updates, and no checksum annotation, which would restart the pods);
//! `learned` with an `fgd` shadow and a policy file render; a policy file over 1 MiB fails the
//! render with the chart's message; unknown names and keys are refused by the schema. Then the
//! API server accepts the objects of the learned/shadow/file variant (`--dry-run=server`).
//!
//! The rendering test needs only helm (built by `e2e/build-deps`), not `e2e/up`; it is
//! ignored like the rest of this crate and runs with `--include-ignored` (as `e2e/run` does),
//! skipping, as `chart.rs` does, when helm has not been built.
//!
//! Not covered here: the extender following a change of the installed ConfigMap. The chart's
//! extender Deployment never runs on e2e's kwok nodes (they run no containers), and the
//! extender that `e2e/up` starts is a local process with flags of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::support::{Cluster, repo_root, skip};

const RELEASE: &str = "allot";
const MOUNT: &str = "/etc/allot/policy";
/// The most `extender.policy.file` may hold: a ConfigMap's limit, and `allot extender`'s.
const MAX_FILE: usize = 1 << 20;

/// helm and the Kubernetes version to render for, found as `chart.rs` (and `e2e/lib.sh`)
/// find them; `None` when helm has not been built.
fn helm() -> Result<Option<(PathBuf, String)>> {
    let path = repo_root().join("e2e/versions.env");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let pins: BTreeMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        .collect();
    let pin = |k: &str| {
        pins.get(k)
            .map(|v| (*v).to_string())
            .with_context(|| format!("e2e/versions.env has no {k}"))
    };
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
            root.join(format!(
                "k8s-{}_etcd-{}_kwok-{}_helm-{}",
                pin("K8S_VERSION")?,
                pin("ETCD_VERSION")?,
                pin("KWOK_VERSION")?,
                pin("HELM_VERSION")?
            ))
            .join("bin")
        }
    };
    let helm = bin.join("helm");
    Ok(helm.is_file().then_some((helm, pin("K8S_VERSION")?)))
}

/// What one `helm template` did: its stdout, or its stderr when it failed.
enum Rendered {
    Ok(String),
    Failed(String),
}

/// `helm template` of the chart with `--set` values and `--set-file` files.
fn render(helm: &Path, kube: &str, sets: &[&str], files: &[(&str, &Path)]) -> Result<Rendered> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", RELEASE])
        .arg(repo_root().join("charts/allot"))
        .args(["--namespace", "allot-system", "--kube-version", kube]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    for (key, file) in files {
        cmd.arg("--set-file")
            .arg(format!("{key}={}", file.display()));
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", helm.display()))?;
    Ok(if out.status.success() {
        Rendered::Ok(String::from_utf8(out.stdout)?)
    } else {
        Rendered::Failed(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

fn rendered(helm: &Path, kube: &str, sets: &[&str], files: &[(&str, &Path)]) -> Result<String> {
    match render(helm, kube, sets, files)? {
        Rendered::Ok(text) => Ok(text),
        Rendered::Failed(err) => bail!("helm template {sets:?} {files:?} failed: {}", err.trim()),
    }
}

fn refused(helm: &Path, kube: &str, sets: &[&str], files: &[(&str, &Path)]) -> Result<String> {
    match render(helm, kube, sets, files)? {
        Rendered::Ok(_) => bail!("helm template {sets:?} {files:?} rendered; it must be refused"),
        Rendered::Failed(err) => Ok(err),
    }
}

fn objects(text: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for value in serde_saphyr::from_multiple::<Value>(text)? {
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> Result<&'a Value> {
    objs.iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .with_context(|| format!("no {kind} {name} rendered"))
}

/// The policy ConfigMap's data, and checks of how the extender Deployment uses it.
fn policy_data(text: &str) -> Result<BTreeMap<String, String>> {
    let objs = objects(text)?;
    let cm = find(&objs, "ConfigMap", &format!("{RELEASE}-extender-policy"))?;
    let data: BTreeMap<String, String> = serde_json::from_value(cm["data"].clone())
        .context("the policy ConfigMap's data is not a map of strings")?;

    let deploy = find(&objs, "Deployment", &format!("{RELEASE}-extender"))?;
    let pod = &deploy["spec"]["template"];
    let container = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"].as_str() == Some("extender")))
        .context("no extender container")?;
    let args: Vec<&str> = container["args"]
        .as_array()
        .context("the extender has no args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        args.contains(&format!("--policy-dir={MOUNT}").as_str()),
        "the extender must run with --policy-dir={MOUNT}: {args:?}"
    );
    ensure!(
        args.iter()
            .any(|a| a.starts_with("--policy-reload-seconds=")),
        "the extender must get --policy-reload-seconds: {args:?}"
    );
    for flag in ["--default-policy", "--shadow-policy", "--policy-file"] {
        ensure!(
            !args.iter().any(|a| a.starts_with(flag)),
            "{flag} conflicts with --policy-dir: {args:?}"
        );
    }
    let mount = container["volumeMounts"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["mountPath"].as_str() == Some(MOUNT)))
        .with_context(|| format!("nothing is mounted at {MOUNT}"))?;
    ensure!(
        mount.get("subPath").is_none() && mount.get("subPathExpr").is_none(),
        "a subPath mount never sees ConfigMap updates: {mount:?}"
    );
    ensure!(
        mount["readOnly"].as_bool() == Some(true),
        "mount it read-only: {mount:?}"
    );
    let volume = mount["name"]
        .as_str()
        .context("the mount has no volume name")?;
    let source = pod["spec"]["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"].as_str() == Some(volume)))
        .with_context(|| format!("no volume {volume}"))?;
    ensure!(
        source["configMap"]["name"].as_str() == cm["metadata"]["name"].as_str(),
        "{MOUNT} must be the policy ConfigMap: {source:?}"
    );
    // A checksum of the ConfigMap on the pod template would restart the pods on every change,
    // the opposite of what --policy-dir is for.
    if let Some(annotations) = pod["metadata"]["annotations"].as_object() {
        ensure!(
            !annotations.keys().any(|k| k.contains("checksum")),
            "no checksum annotation on the extender's pod template: {annotations:?}"
        );
    }
    Ok(data)
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "allot-e2e-chart-policy-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

#[test]
#[ignore = "needs helm from e2e/build-deps (e2e/run runs it)"]
fn chart_policy_values_render_and_bad_ones_are_refused() -> Result<()> {
    let test = "chart_policy_values_render_and_bad_ones_are_refused";
    let Some((helm, kube)) = helm()? else {
        skip(test, "helm not found (e2e/build-deps builds it)");
        return Ok(());
    };

    // Defaults: learned, no shadow, the binary's own weights, a look every 10 s.
    let text = rendered(&helm, &kube, &[], &[])?;
    let data = policy_data(&text)?;
    ensure!(
        data.get("default-policy").map(String::as_str) == Some("learned"),
        "default-policy must be learned by default: {data:?}"
    );
    ensure!(
        data.get("shadow-policy").map(String::as_str) == Some(""),
        "no shadow policy by default: {data:?}"
    );
    ensure!(
        !data.contains_key("policy.json"),
        "no policy.json by default (the binary's weights): {data:?}"
    );
    ensure!(
        text.contains("--policy-reload-seconds=10"),
        "reloadSeconds defaults to 10"
    );

    // learned in force, fgd in shadow, learned weights from a file, a faster look.
    let weights = r#"{"format": "allot-policy", "weights": [0.5]}"#;
    let file = TempFile::new("policy.json", weights.as_bytes())?;
    let text = rendered(
        &helm,
        &kube,
        &[
            "extender.policy.default=learned",
            "extender.policy.shadow=fgd",
            "extender.policy.reloadSeconds=3",
        ],
        &[("extender.policy.file", &file.0)],
    )?;
    let data = policy_data(&text)?;
    ensure!(
        data.get("default-policy").map(String::as_str) == Some("learned")
            && data.get("shadow-policy").map(String::as_str) == Some("fgd"),
        "default-policy learned and shadow-policy fgd expected: {data:?}"
    );
    ensure!(
        data.get("policy.json").map(String::as_str) == Some(weights),
        "policy.json must hold the file as given: {data:?}"
    );
    ensure!(
        text.contains("--policy-reload-seconds=3"),
        "reloadSeconds=3 must reach the extender"
    );

    // A policy file one byte over 1 MiB fails the render with the chart's own message.
    let big = TempFile::new("big.json", &vec![b' '; MAX_FILE + 1])?;
    let err = refused(&helm, &kube, &[], &[("extender.policy.file", &big.0)])?;
    ensure!(
        err.contains("extender.policy.file is 1048577 bytes")
            && err.contains("at most 1 MiB (1048576 bytes)"),
        "a policy file over 1 MiB must fail with the chart's message, got: {err}"
    );

    // Names the extender does not know, and keys the chart does not have, never render.
    for (set, needle) in [
        ("extender.policy.default=tetris", "/extender/policy/default"),
        ("extender.policy.shadow=tetris", "/extender/policy/shadow"),
        (
            "extender.policy.reloadSeconds=0",
            "/extender/policy/reloadSeconds",
        ),
        (
            "extender.policy.reloadSeconds=3601",
            "/extender/policy/reloadSeconds",
        ),
        ("extender.policy.defualt=fgd", "defualt"),
    ] {
        let err = refused(&helm, &kube, &[set], &[])?;
        ensure!(
            err.contains("schema") && err.contains(needle),
            "--set {set}: the schema must refuse it at {needle}, got: {err}"
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn chart_policy_objects_are_accepted_by_the_api_server() -> Result<()> {
    let test = "chart_policy_objects_are_accepted_by_the_api_server";
    let cluster = Cluster::from_env(test).await?;
    let Some((helm, kube)) = helm()? else {
        skip(test, "helm not found (e2e/build-deps builds it)");
        return Ok(());
    };
    let file = TempFile::new("policy-dry-run.json", br#"{"weights": [1.0]}"#)?;
    let text = rendered(
        &helm,
        &kube,
        &[
            "extender.policy.default=learned",
            "extender.policy.shadow=fgd",
        ],
        &[("extender.policy.file", &file.0)],
    )?;
    cluster
        .in_namespace("chart-policy", |cluster, ns| async move {
            // Render into the test's namespace: only the namespaced objects matter here, the
            // extender's Deployment and its policy ConfigMap.
            let text = text.replace("namespace: allot-system", &format!("namespace: {ns}"));
            let objs = objects(&text)?;
            let keep: Vec<&Value> = objs
                .iter()
                .filter(|o| {
                    let name = o["metadata"]["name"].as_str();
                    (o["kind"].as_str() == Some("ConfigMap")
                        && name == Some("allot-extender-policy"))
                        || (o["kind"].as_str() == Some("Deployment")
                            && name == Some("allot-extender"))
                })
                .collect();
            ensure!(
                keep.len() == 2,
                "the ConfigMap and the Deployment: {keep:?}"
            );
            let manifest = keep
                .iter()
                .map(serde_saphyr::to_string)
                .collect::<Result<Vec<_>, _>>()?
                .join("---\n");
            let path = TempFile::new("dry-run.yaml", manifest.as_bytes())?;
            let report =
                cluster.kubectl(&["apply", "--dry-run=server", "-f", &path.0.to_string_lossy()])?;
            ensure!(
                report.contains("configmap/allot-extender-policy created (server dry run)")
                    && report.contains("deployment.apps/allot-extender created (server dry run)"),
                "both objects must be accepted:\n{report}"
            );
            Ok(())
        })
        .await
}
