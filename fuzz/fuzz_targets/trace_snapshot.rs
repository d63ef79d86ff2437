//! The trace loaders (node and pod lists, CSV and JSON) and the snapshot loader, on the bytes
//! as a file's text.
#![no_main]

use allot::model::ModelCatalog;
use allot::sim::trace::{parse_nodes_csv, parse_nodes_json, parse_pods_csv, parse_pods_json};
use allot::snapshot::parse_snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_snapshot("fuzz.json", text);
    match parse_nodes_csv("nodes.csv", text) {
        Ok(cluster) => {
            let mut models = cluster.models.clone();
            let _ = parse_pods_csv("pods.csv", text, &mut models);
        }
        Err(_) => {
            let _ = parse_pods_csv("pods.csv", text, &mut ModelCatalog::default());
        }
    }
    let _ = parse_nodes_json("nodes.json", text);
    let _ = parse_pods_json("pods.json", text, &mut ModelCatalog::default());
});
