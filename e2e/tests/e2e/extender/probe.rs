//! Asking an extender directly, past kube-scheduler: a `/filter` probe for a pod, a JSON
//! POST through curl, its `/metrics` counters; and a second extender with its own flags.

use anyhow::{Context, Result, ensure};
use serde_json::json;

use crate::support::{AllotProcess, Cluster, GPU, WAIT, free_port, poll};

/// Wait until the extender in the scheduling path (`ALLOT_EXTENDER_PORT`) filters `node` out
/// for a pod that needs `gpus` whole GPUs (`rejected`), or lets it pass.
pub(crate) async fn extender_sees(node: &str, gpus: u32, rejected: bool) -> Result<()> {
    let port = std::env::var("ALLOT_EXTENDER_PORT").unwrap_or_else(|_| "8888".into());
    let url = format!("http://127.0.0.1:{port}/filter");
    let request = probe_filter(&[node], gpus);
    let what = if rejected { "filter out" } else { "pass" };
    poll(&format!("the extender to {what} {node}"), WAIT, || {
        let (url, request) = (url.clone(), request.clone());
        async move {
            let answer = post_json(&url, &request)?;
            let failed = answer["FailedNodes"].get(node).is_some();
            Ok((failed == rejected).then_some(()))
        }
    })
    .await?;
    // With --filter-answer auto the probe's last answer holds its GPUs for a bind that never
    // comes; the same pod filtered again asking for nothing gives them back.
    post_json(&url, &probe_filter(&[node], 0)).map(drop)
}

/// A `/filter` request asking about a pod needing `gpus` whole GPUs on `nodes`.
pub(crate) fn probe_filter(nodes: &[&str], gpus: u32) -> serde_json::Value {
    json!({
        "Pod": { "metadata": { "name": "probe", "namespace": "default", "uid": "probe-uid" },
                 "spec": { "containers": [{ "name": "c", "resources": { "limits": { GPU: gpus.to_string() } } }] } },
        "NodeNames": nodes
    })
}

/// POST `body` to `url` and decode the JSON answer.
pub(crate) fn post_json(url: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
    use std::io::Write;
    let mut child = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            url,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("curl stdin")?
        .write_all(body.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "POST {url} failed ({})", out.status);
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub(super) async fn extender_metric(name: &str) -> Result<f64> {
    let admin =
        std::env::var("ALLOT_E2E_EXTENDER_ADMIN").context("ALLOT_E2E_EXTENDER_ADMIN not set")?;
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("{admin}/metrics")])
        .output()?;
    ensure!(out.status.success(), "GET {admin}/metrics failed");
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// A second extender watching this cluster, with `extra` flags after its listen addresses,
/// ready; and its listen address.
pub(super) async fn second_extender(
    cluster: &Cluster,
    name: &str,
    extra: &[&str],
) -> Result<(AllotProcess, String)> {
    let (port, admin) = (free_port()?, free_port()?);
    let (listen, admin) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    let mut args = vec!["extender", "--listen", &listen, "--admin-listen", &admin];
    args.extend_from_slice(extra);
    let mut ext = AllotProcess::start(cluster, name, &args)?;
    ext.wait_ready(&format!("http://{admin}/readyz")).await?;
    Ok((ext, listen))
}
