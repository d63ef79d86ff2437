//! The GPU map page on the admin port (`--gpu-map`): every node as a row of its GPUs,
//! coloured by how much of each is allocated, with model, health, telemetry age and
//! fragmentation, the cluster's totals (the `/metrics` gauges' figures) and the latest
//! decisions with their explanation. `/gpus` is one self-contained HTML page with the data
//! inlined (it renders without a second request); it then refreshes from `/gpus.json`.
//! It shows pod names, so it is off unless asked for, like the chart's other admin views.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::gauges::ClusterGauges;
use super::state::{Decision, Store, View};
use crate::model::MILLI_PER_GPU;
use crate::snapshot::Telemetry;

const PAGE: &str = include_str!("gpu_map.html");

/// What the page shows.
#[derive(Debug, Serialize)]
pub struct MapData {
    pub snapshot_age_seconds: f64,
    pub cluster: Totals,
    pub nodes: Vec<NodeRow>,
    pub decisions: Vec<Decision>,
}

/// The cluster's GPUs, in GPUs (fractional for shares), as `/metrics` reports them.
#[derive(Debug, Serialize)]
pub struct Totals {
    pub gpus: u64,
    pub allocated: f64,
    pub unallocated: f64,
    pub fragmented: f64,
    pub frag_ratio: f64,
    pub unhealthy: u64,
}

#[derive(Debug, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub model: Option<String>,
    pub ready: bool,
    pub cordoned: bool,
    /// `fresh`, `stale (120 s old)` or `missing`.
    pub telemetry: String,
    /// FGD's fragmentation of this node, in GPUs.
    pub fragmented: f64,
    pub cpu_free: u64,
    pub cpu_capacity: u64,
    pub gpus: Vec<GpuCell>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GpuCell {
    /// Milli-GPU the pods on this device hold (0..=1000).
    pub used_milli: u32,
    pub healthy: bool,
    /// `namespace/name` of each pod on the device.
    pub pods: Vec<String>,
}

impl MapData {
    /// The page's data for `view`, with `decisions` (oldest first).
    pub fn of(view: &View, decisions: Vec<Decision>) -> Self {
        let cluster = &view.cluster;
        let mut cells: Vec<Vec<GpuCell>> = cluster
            .nodes()
            .iter()
            .map(|n| vec![GpuCell::default(); n.gpu_count()])
            .collect();
        for pod in view.pods() {
            let Some(devices) = cells.get_mut(pod.at.node) else {
                continue;
            };
            let per = pod.demand.gpu.per_gpu_milli();
            for d in pod.at.devices.iter() {
                if let Some(cell) = devices.get_mut(d) {
                    cell.used_milli = (cell.used_milli + per).min(MILLI_PER_GPU);
                    cell.pods.push(pod.key.clone());
                }
            }
        }
        let nodes = cluster
            .nodes()
            .iter()
            .zip(cells)
            .enumerate()
            .map(|(i, (node, mut gpus))| {
                let state = view.state(i);
                for (d, cell) in gpus.iter_mut().enumerate() {
                    cell.healthy = state.is_none_or(|s| !s.unhealthy.contains(d));
                }
                NodeRow {
                    name: node.name.to_string(),
                    model: node.model.map(|m| cluster.models.name(m).to_string()),
                    ready: state.is_none_or(|s| s.ready),
                    cordoned: state.is_some_and(|s| s.unschedulable),
                    telemetry: match state.map(|s| s.telemetry) {
                        None | Some(Telemetry::Fresh) => "fresh".into(),
                        Some(Telemetry::Stale { age, .. }) => {
                            format!("stale ({} s old)", age.as_secs())
                        }
                        Some(Telemetry::Missing) => "missing".into(),
                    },
                    fragmented: view.ctx.target.node_frag(node) / f64::from(MILLI_PER_GPU),
                    cpu_free: node.cpu_free,
                    cpu_capacity: node.cpu_capacity,
                    gpus,
                }
            })
            .collect();
        let gauges = ClusterGauges::of(view);
        let t = gauges.total();
        let per = f64::from(MILLI_PER_GPU);
        MapData {
            snapshot_age_seconds: view.age().as_secs_f64(),
            cluster: Totals {
                gpus: t.gpus,
                allocated: t.allocated_milli as f64 / per,
                unallocated: t.unallocated_milli() as f64 / per,
                fragmented: t.fragmented_milli / per,
                frag_ratio: gauges.frag_ratio(),
                unhealthy: t.unhealthy,
            },
            nodes,
            decisions,
        }
    }
}

/// `/gpus` and `/gpus.json` over `store`, for the admin router to merge.
pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/gpus", get(page))
        .route("/gpus.json", get(json))
        .with_state(store)
}

fn data(store: &Store) -> MapData {
    MapData::of(&store.view(), store.decisions())
}

/// JSON that may sit inside a `<script>` element: no `</script>` or `<!--` can end it early.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// `/gpus`: the page with the current data inlined.
async fn page(State(store): State<Arc<Store>>) -> Response {
    let json = serde_json::to_string(&data(&store)).unwrap_or_else(|_| "null".into());
    let html = PAGE.replacen("/*DATA*/", &script_safe(&json), 1);
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// `/gpus.json`: the data alone, for the page's refresh.
async fn json(State(store): State<Arc<Store>>) -> Response {
    axum::Json(data(&store)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extender::state::Store;
    use crate::snapshot::parse_snapshot;

    #[test]
    fn cells_show_each_devices_pods_and_health_and_json_cannot_close_the_script() {
        let mut snap = parse_snapshot(
            "inline",
            r#"{"nodes": [{"name": "a", "cpu": "16", "memory": "64Gi", "gpus": 2, "model": "T4"}],
                "pods": [{"name": "</script><b>x", "namespace": "ns", "node": "a", "cpu": "1",
                          "memory": "1Gi", "gpuMilli": 300, "devices": [1]}]}"#,
        )
        .unwrap();
        snap.states[0].unhealthy = crate::model::DeviceSet::single(0);
        let store = Store::new(None, Vec::new());
        store.replace(snap);
        let data = MapData::of(&store.view(), Vec::new());
        let gpus = &data.nodes[0].gpus;
        assert_eq!((gpus[0].used_milli, gpus[0].healthy), (0, false));
        assert_eq!((gpus[1].used_milli, gpus[1].healthy), (300, true));
        assert_eq!(gpus[1].pods, ["ns/</script><b>x"]);
        assert_eq!((data.cluster.gpus, data.cluster.unhealthy), (2, 1));
        let json = script_safe(&serde_json::to_string(&data).unwrap());
        assert!(!json.contains('<'), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["nodes"][0]["gpus"][1]["pods"][0], "ns/</script><b>x");
    }
}
