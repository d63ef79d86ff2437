//! Mutual TLS between kube-scheduler and the extender as the chart sets it up: the chart's
//! Secret (its CA, the extender's certificate for the Service's name, the scheduler's client
//! certificate) written out where the pods would mount it, kube-scheduler run with the
//! chart's ConfigMap (`enableHTTPS`, `tlsConfig`) and the extender with the chart's `--tls-*`
//! flags. A pod binds through it with allot's devices, kube-scheduler speaking HTTP/2; a
//! client without the scheduler's certificate gets no answer from the verbs port.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use crate::chart::find;
use crate::chart::values::helm;
use crate::own::{DEVICES, NS, devices, extender, rendered, scheduler};
use crate::support::{Cluster, free_port, pod, repo_root, wait_running};

/// `base64 -d` of `text`.
fn decode(text: &str) -> Result<Vec<u8>> {
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running base64")?;
    child
        .stdin
        .take()
        .context("base64's stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "base64 -d failed");
    Ok(out.stdout)
}

/// `curl` to the verbs port by the Service's name (resolved to 127.0.0.1): the HTTP status,
/// or `None` when no HTTP answer came (curl's exit status otherwise).
fn curl(dir: &Path, host: &str, port: u16, client: bool) -> Result<Result<u16, i32>> {
    let (ca, cert, key) = (
        dir.join("ca.crt"),
        dir.join("client.crt"),
        dir.join("client.key"),
    );
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}/filter");
    let mut args: Vec<&OsStr> = vec!["--cacert".as_ref(), ca.as_os_str()];
    args.extend(["--resolve", &resolve].map(OsStr::new));
    if client {
        args.extend([
            OsStr::new("--cert"),
            cert.as_os_str(),
            "--key".as_ref(),
            key.as_os_str(),
        ]);
    }
    args.extend(["-X", "POST", "-d", "{}", &url].map(OsStr::new));
    let reply = crate::support::curl(&args)?;
    Ok(if reply.exit == 0 {
        Ok(reply.status)
    } else {
        Err(reply.exit)
    })
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn kube_scheduler_reaches_the_extender_over_the_charts_mutual_tls() -> Result<()> {
    let test = "kube_scheduler_reaches_the_extender_over_the_charts_mutual_tls";
    let cluster = Cluster::from_env(test).await?;
    let Some((helm, version)) = helm(test)? else {
        return Ok(());
    };
    cluster
        .in_namespace("mtls", |cluster, ns| async move {
            let dir = repo_root()
                .join("target/e2e-logs")
                .join(format!("mtls-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let (port, admin) = (free_port()?, free_port()?);
            let name = "allot-mtls";
            let sets = vec![
                "extender.tls.enabled=true".to_string(),
                format!("extender.tls.mountPath={}", dir.display()),
                format!("scheduler.extender.urlPrefix=https://127.0.0.1:{port}"),
            ];
            let objs = rendered(&helm, &version, name, &sets)?;
            let secret = find(&objs, "Secret", "allot-extender-tls")
                .context("the chart rendered no allot-extender-tls Secret")?;
            for key in ["ca.crt", "tls.crt", "tls.key", "client.crt", "client.key"] {
                let b64 = secret["data"][key]
                    .as_str()
                    .with_context(|| format!("the Secret has no {key}"))?;
                std::fs::write(dir.join(key), decode(b64)?)?;
            }
            let deployment = find(&objs, "Deployment", "allot-extender")
                .context("no extender Deployment")?;
            let tls_flags: Vec<&str> = deployment["spec"]["template"]["spec"]["containers"][0]
                ["args"]
                .as_array()
                .context("no extender args")?
                .iter()
                .filter_map(|a| a.as_str())
                .filter(|a| a.starts_with("--tls-"))
                .collect();
            ensure!(tls_flags.len() == 3, "the chart's TLS flags: {tls_flags:?}");
            let _ext = extender(cluster, "extender-mtls", port, admin, &tls_flags).await?;
            let _sched = scheduler(&helm, &version, name, &sets).await?;

            let pods = Api::<Pod>::namespaced(cluster.client.clone(), &ns);
            pods.create(&PostParams::default(), &pod("secure", name, Some(1))?)
                .await?;
            let placed = wait_running(&pods, "secure").await?;
            ensure!(
                devices(&placed).is_some(),
                "a pod placed over mutual TLS has no {DEVICES}"
            );
            // kube-scheduler's extender client offers HTTP/2 over TLS, and the extender takes
            // it: every verb request so far (this pod's filter and bind) came over h2.
            let metrics = crate::support::curl_ok(&[format!("http://127.0.0.1:{admin}/metrics")])?;
            let count = |protocol: &str| {
                let series = format!("allot_extender_http_requests_total{{protocol=\"{protocol}\"}} ");
                metrics
                    .lines()
                    .find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok())
            };
            let (h2, h1) = (count("h2"), count("http/1.1"));
            ensure!(
                h2.is_some_and(|n| n >= 2.0) && h1 == Some(0.0),
                "verb requests by HTTP version: h2 {h2:?}, http/1.1 {h1:?}; want kube-scheduler on h2 only"
            );

            let host = format!("allot-extender.{NS}.svc");
            let with = curl(&dir, &host, port, true)?;
            ensure!(
                matches!(with, Ok(code) if code >= 200),
                "with the scheduler's certificate: {with:?}, want an HTTP answer"
            );
            let without = curl(&dir, &host, port, false)?;
            ensure!(without.is_err(), "answered without a client certificate: {without:?}");
            println!("over mutual TLS (HTTP/2, {h2:?} requests): pod bound with devices {:?}; without a client certificate curl exited {without:?}", devices(&placed));
            Ok(())
        })
        .await
}
