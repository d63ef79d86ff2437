//! kwok's fake GPU nodes are what `e2e/up` promised: one Ready, untainted Node per row of the
//! openb node list (repeated under new names beyond its last row), with that row's cpu, memory,
//! `nvidia.com/gpu` and GPU model.

use std::collections::BTreeMap;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::support::{Cluster, WAIT, skip};

/// One row of an openb node list: sn,cpu_milli,memory_mib,gpu,model.
#[derive(Clone)]
struct Row {
    cpu_milli: String,
    memory_mib: String,
    gpu: String,
    model: String,
}

/// The first `n` nodes `e2e/nodes` makes from `csv`, by name: one per row, and beyond the last
/// row the list again under new names (`<name>-r1`, `-r2`, ...).
fn read_rows(csv: &str, n: usize) -> Result<BTreeMap<String, Row>> {
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {csv}"))?;
    let mut list = Vec::new();
    for line in text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .take(n)
    {
        let f: Vec<&str> = line.trim_end().split(',').collect();
        ensure!(f.len() == 5, "{csv}: bad row {line:?}");
        let row = Row {
            cpu_milli: f[1].into(),
            memory_mib: f[2].into(),
            gpu: f[3].into(),
            model: f[4].into(),
        };
        list.push((f[0].to_lowercase(), row));
    }
    ensure!(!list.is_empty(), "{csv}: no rows");
    let mut rows = BTreeMap::new();
    for i in 0..n {
        let (name, row) = &list[i % list.len()];
        let copy = i / list.len();
        let name = if copy == 0 {
            name.clone()
        } else {
            format!("{name}-r{copy}")
        };
        rows.insert(name, row.clone());
    }
    Ok(rows)
}

#[tokio::test]
#[ignore = "needs e2e/up"]
async fn kwok_nodes_match_the_openb_node_list() -> Result<()> {
    let test = "kwok_nodes_match_the_openb_node_list";
    let cluster = Cluster::from_env(test).await?;
    let (Ok(csv), Ok(n)) = (
        std::env::var("ALLOT_E2E_NODE_CSV"),
        std::env::var("ALLOT_E2E_NODES"),
    ) else {
        skip(
            test,
            "ALLOT_E2E_NODE_CSV / ALLOT_E2E_NODES not set (source $ALLOT_E2E_DIR/env)",
        );
        return Ok(());
    };
    let rows = read_rows(&csv, n.parse().context("ALLOT_E2E_NODES")?)?;
    // Other tests take nodes away and put them back; kwok then needs a moment to make a
    // restored node Ready and the node lifecycle controller to lift its taints.
    let api = Api::<Node>::all(cluster.client.clone());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let nodes = api.list(&ListParams::default()).await?;
        match check(&nodes.items, &rows, &csv) {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{test}: not yet: {e:#}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.context(format!("after {WAIT:?}"))),
        }
    }
}

/// The nodes are exactly the first rows of the node list, Ready, untainted, with its numbers.
fn check(nodes: &[Node], rows: &BTreeMap<String, Row>, csv: &str) -> Result<()> {
    ensure!(
        nodes.len() == rows.len(),
        "{} nodes, expected {}",
        nodes.len(),
        rows.len()
    );
    for node in nodes.iter().cloned() {
        let name = node.metadata.name.clone().unwrap_or_default();
        let row = rows
            .get(&name)
            .with_context(|| format!("node {name} is not in {csv}"))?;
        let labels = node.metadata.labels.unwrap_or_default();
        ensure!(
            labels.get("allot.dev/gpu-model") == Some(&row.model),
            "{name}: model label {:?}, expected {}",
            labels.get("allot.dev/gpu-model"),
            row.model
        );
        let spec = node.spec.unwrap_or_default();
        let taints: Vec<String> = (spec.taints.unwrap_or_default().into_iter())
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        ensure!(
            taints.is_empty(),
            "{name} is tainted: {}",
            taints.join(", ")
        );
        let status = node.status.unwrap_or_default();
        let ready = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ensure!(ready, "{name} is not Ready");
        let alloc = status.allocatable.unwrap_or_default();
        let get = |k: &str| alloc.get(k).map(|q| q.0.clone()).unwrap_or_default();
        // The API server keeps the quantities as e2e/nodes wrote them, or in canonical form.
        let cpu = get("cpu");
        ensure!(
            cpu == format!("{}m", row.cpu_milli) || format!("{cpu}000") == row.cpu_milli,
            "{name}: cpu {cpu}, expected {}m",
            row.cpu_milli
        );
        let memory = get("memory");
        let mib: u64 = row.memory_mib.parse()?;
        ensure!(
            memory == format!("{mib}Mi")
                || (mib.is_multiple_of(1024) && memory == format!("{}Gi", mib / 1024))
                || (mib.is_multiple_of(1 << 20) && memory == format!("{}Ti", mib >> 20)),
            "{name}: memory {memory}, expected {mib}Mi"
        );
        ensure!(
            get("nvidia.com/gpu") == row.gpu,
            "{name}: nvidia.com/gpu {}, expected {}",
            get("nvidia.com/gpu"),
            row.gpu
        );
    }
    Ok(())
}
