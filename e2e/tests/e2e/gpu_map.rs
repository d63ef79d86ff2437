//! The extender's GPU map page (`--gpu-map`) in a real browser: Debian's Chromium, headless
//! (installed by `e2e/chromium`, which `e2e/run` calls). On a snapshot, the page loads without
//! a script error and shows every node and GPU of it; with 5,000 nodes it still renders,
//! navigation start to the mark the page sets, in under 2 s (median of 5 loads). Needs no
//! control plane: the extender serves a snapshot file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::support::{allot_binary, free_port, repo_root};

/// The render budget for 5,000 nodes.
const BUDGET_MS: f64 = 2000.0;

struct Extender(Child);

impl Drop for Extender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `allot extender --snapshot FILE --gpu-map`, ready; its admin address.
fn serve(snapshot: &Path, log: &Path) -> Result<(Extender, String)> {
    let (port, admin) = (free_port()?, free_port()?);
    let admin = format!("127.0.0.1:{admin}");
    let log = std::fs::File::create(log)?;
    let child = Command::new(allot_binary()?)
        .args(["extender", "--gpu-map", "--snapshot"])
        .arg(snapshot)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &admin,
        ])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting allot extender")?;
    let ext = Extender(child);
    let start = Instant::now();
    loop {
        let ok = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &format!("http://{admin}/readyz")])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok((ext, admin));
        }
        ensure!(
            start.elapsed() < Duration::from_secs(60),
            "extender never ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn chromium() -> Result<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()?;
    let path = String::from_utf8(out.stdout)?.trim().to_string();
    if path.is_empty() {
        bail!("no chromium on PATH: run e2e/chromium (e2e/run does) to install Debian's package");
    }
    Ok(PathBuf::from(path))
}

/// One headless load of `url`: the DOM after the load event, and what the browser logged.
fn load(browser: &Path, url: &str, extra: &[&str]) -> Result<(String, String)> {
    // A new empty profile per load, as a first visit.
    let profile = repo_root().join("target/e2e-logs/chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .context("running chromium")?;
    ensure!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The value of `data-NAME` on the page's body.
fn data_attr(dom: &str, name: &str) -> Option<String> {
    let key = format!("data-{name}=\"");
    let at = dom.find(&key)? + key.len();
    Some(dom[at..].split('"').next()?.to_string())
}

/// The page must have rendered without a script error.
fn rendered(dom: &str, log: &str) -> Result<()> {
    ensure!(
        data_attr(dom, "error").is_none(),
        "script error: {:?}",
        data_attr(dom, "error")
    );
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    ensure!(
        console.is_empty(),
        "the page logged to the console:\n{}",
        console.join("\n")
    );
    ensure!(
        data_attr(dom, "rendered-ms").is_some(),
        "never rendered:\n{dom}"
    );
    Ok(())
}

/// A snapshot of `nodes` 8-GPU nodes, every third one with a whole-GPU pod and a share.
fn big_snapshot(nodes: usize) -> Value {
    let models = ["V100M32", "A100", "T4", "P100"];
    let list: Vec<Value> = (0..nodes)
        .map(|i| {
            json!({ "name": format!("node-{i:05}"), "cpu": "96", "memory": "512Gi",
                         "gpus": 8, "model": models[i % models.len()] })
        })
        .collect();
    let pods: Vec<Value> = (0..nodes)
        .step_by(3)
        .flat_map(|i| {
            let node = format!("node-{i:05}");
            [
                json!({ "name": format!("train-{i}"), "namespace": "ml", "node": node,
                        "cpu": "8", "memory": "32Gi", "gpus": 2, "devices": [0, 1] }),
                json!({ "name": format!("nb-{i}"), "namespace": "ml", "node": node,
                        "cpu": "2", "memory": "8Gi", "gpuMilli": 400, "devices": [5] }),
            ]
        })
        .collect();
    json!({ "nodes": list, "pods": pods })
}

#[test]
#[ignore = "needs e2e/run (Chromium)"]
fn the_gpu_map_shows_every_node_and_gpu_and_renders_5000_nodes_within_budget() -> Result<()> {
    let browser = chromium()?;
    let logs = repo_root().join("target/e2e-logs");
    std::fs::create_dir_all(&logs)?;

    // The example cluster: 4 nodes, 14 GPUs; the node names appear in the page.
    let example = repo_root().join("examples/cluster.json");
    let (_ext, admin) = serve(&example, &logs.join("gpu-map-example.log"))?;
    let url = format!("http://{admin}/gpus");
    let (dom, log) = load(&browser, &url, &["--dump-dom"])?;
    rendered(&dom, &log)?;
    ensure!(
        data_attr(&dom, "nodes").as_deref() == Some("4"),
        "nodes: {dom}"
    );
    ensure!(
        data_attr(&dom, "gpus").as_deref() == Some("14"),
        "GPU cells: {dom}"
    );
    for name in ["v100-a", "v100-b", "t4-a", "cpu-a", "alice/notebook"] {
        ensure!(dom.contains(name), "{name} missing from the page");
    }
    let shot = logs.join("gpu-map.png");
    load(
        &browser,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,700",
        ],
    )?;
    ensure!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
        "no screenshot"
    );

    // 5,000 nodes: median render time of 5 loads.
    let file = logs.join("gpu-map-snapshot-5000.json");
    std::fs::write(&file, serde_json::to_vec(&big_snapshot(5000))?)?;
    let (_big, admin) = serve(&file, &logs.join("gpu-map-5000.log"))?;
    let url = format!("http://{admin}/gpus");
    let mut times = Vec::new();
    for _ in 0..5 {
        let (dom, log) = load(&browser, &url, &["--dump-dom"])?;
        rendered(&dom, &log)?;
        ensure!(
            data_attr(&dom, "nodes").as_deref() == Some("5000"),
            "not every node shown"
        );
        ensure!(
            data_attr(&dom, "gpus").as_deref() == Some("40000"),
            "not every GPU shown"
        );
        let ms: f64 = data_attr(&dom, "rendered-ms").unwrap_or_default().parse()?;
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    eprintln!("gpu map, 5,000 nodes: rendered in {times:?} ms (median {median})");
    ensure!(
        median < BUDGET_MS,
        "median {median} ms over {BUDGET_MS} ms: {times:?}"
    );
    Ok(())
}
