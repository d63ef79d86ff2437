//! Trace loading: the openb CSVs, generic quantity columns, JSON lists, and errors that name the
//! file, line and column.

use super::*;
use crate::model::GpuDemand;

const NODES: &str = "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,P100\nn1,96000,786432,8,V100M32\nc0,32000,131072,0,\n";

#[test]
fn openb_nodes_and_pods_load() {
    let mut cluster = parse_nodes_csv("nodes.csv", NODES).unwrap();
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.gpu_count(), 10);
    assert_eq!(cluster.nodes()[0].memory_capacity, 262_144 << 20);
    let pods = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos\n\
                p0,12000,16384,1,1000,,LS\np1,6000,12288,1,460,V100M16|V100M32,BE\np2,4000,4096,0,0,,BE\n";
    let list = parse_pods_csv("pods.csv", pods, &mut cluster.models).unwrap();
    assert_eq!(list.pods.len(), 3);
    assert_eq!(list.pods[1].gpu, GpuDemand::Shared { milli: 460 });
    let v32 = cluster.models.lookup("V100M32").unwrap();
    let p100 = cluster.models.lookup("P100").unwrap();
    assert!(list.pods[1].models.contains(v32) && !list.pods[1].models.contains(p100));
    assert!(list.pods[0].models.is_any());
}

#[test]
fn generic_quantity_columns_load() {
    let nodes = "name,cpu,memory,gpus,model\nn0,64,256Gi,4,A100\n";
    let mut c = parse_nodes_csv("nodes.csv", nodes).unwrap();
    assert_eq!(c.nodes()[0].cpu_capacity, 64_000);
    let pods = "name,cpu,memory,num_gpu\np0,500m,1Gi,2\n";
    let list = parse_pods_csv("pods.csv", pods, &mut c.models).unwrap();
    assert_eq!(list.pods[0].cpu_milli, 500);
    assert_eq!(list.pods[0].gpu, GpuDemand::Whole { count: 2 });
}

#[test]
fn bad_rows_name_file_line_and_column() {
    let mut models = ModelCatalog::default();
    let bad = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,10,1,500\np1,abc,10,0,0\n";
    let e = parse_pods_csv("pods.csv", bad, &mut models).unwrap_err();
    assert_eq!((e.line, e.column.as_deref()), (Some(3), Some("cpu_milli")));
    assert!(
        e.to_string().starts_with("pods.csv:3: column `cpu_milli`:"),
        "{e}"
    );

    let shared_multi = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,1000,10,2,500\n";
    let e = parse_pods_csv("pods.csv", shared_multi, &mut models).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pods.csv:2: column `gpu_milli`: 500 milli is a share of one GPU, but num_gpu is 2 \
         (whole GPUs are 1000 milli each)"
    );

    let missing = "name,cpu_milli,num_gpu\np0,1000,1\n";
    let e = parse_pods_csv("pods.csv", missing, &mut models).unwrap_err();
    assert!(e.to_string().contains("memory_mib` or `memory"), "{e}");

    let ragged = "name,cpu_milli,memory_mib,num_gpu\np0,1000,10\n";
    let e = parse_pods_csv("pods.csv", ragged, &mut models).unwrap_err();
    assert_eq!(e.line, Some(2));

    let negative = "name,cpu,memory,num_gpu\np0,-1,1Gi,0\n";
    let e = parse_pods_csv("pods.csv", negative, &mut models).unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");

    let no_model = "sn,cpu_milli,memory_mib,gpu,model\nn0,1000,10,2,\n";
    let e = parse_nodes_csv("nodes.csv", no_model).unwrap_err();
    assert_eq!((e.line, e.column.as_deref()), (Some(2), Some("gpu")));

    let twice = "sn,cpu_milli,memory_mib,gpu,model\nn0,1000,10,0,\nn0,1000,10,0,\n";
    assert!(
        parse_nodes_csv("nodes.csv", twice)
            .unwrap_err()
            .to_string()
            .contains("twice")
    );

    let empty = "sn,cpu_milli,memory_mib,gpu,model\n";
    assert!(
        parse_nodes_csv("nodes.csv", empty)
            .unwrap_err()
            .to_string()
            .contains("no nodes")
    );
}

#[test]
fn json_lists_load_and_errors_point_at_the_entry() {
    let nodes = r#"[{"name":"n0","cpu":"64","memory":"256Gi","gpus":8,"model":"A100"}]"#;
    let mut c = parse_nodes_json("nodes.json", nodes).unwrap();
    assert_eq!(c.gpu_count(), 8);
    let pods = r#"[{"name":"p0","cpu":"4","memory":"16Gi","gpuMilli":250,"gpuModels":["A100"]},
                   {"name":"p1","cpu":"4","memory":"16Gi","gpus":2}]"#;
    let list = parse_pods_json("pods.json", pods, &mut c.models).unwrap();
    assert_eq!(list.pods[0].gpu, GpuDemand::Shared { milli: 250 });
    assert_eq!(list.pods[1].gpu, GpuDemand::Whole { count: 2 });
    let bad = r#"[{"name":"p0","cpu":"4","memory":"16GB"}]"#;
    let e = parse_pods_json("pods.json", bad, &mut c.models).unwrap_err();
    assert_eq!(e.column.as_deref(), Some("[0].memory"));
    let both = r#"[{"name":"p0","cpu":"4","memory":"1Gi","gpus":1,"gpuMilli":500}]"#;
    assert_eq!(
        parse_pods_json("pods.json", both, &mut c.models)
            .unwrap_err()
            .to_string(),
        "pods.json: column `[0].gpuMilli`: 500 conflicts with gpus: 1; ask for a share of one \
         GPU or for whole GPUs, not both"
    );
    let unknown = r#"[{"name":"p0","cpu":"4","memory":"1Gi","gpu":1}]"#;
    assert!(
        parse_pods_json("pods.json", unknown, &mut c.models)
            .unwrap_err()
            .to_string()
            .contains("unknown field")
    );
}

#[test]
fn the_bundled_openb_trace_matches_its_published_statistics() {
    let trace = crate::sim::load_trace("default", None, &[]).unwrap();
    assert_eq!(trace.cluster.len(), 1213);
    assert_eq!(trace.cluster.gpu_count(), 6212);
    let cpu: u64 = trace.cluster.nodes().iter().map(|n| n.cpu_capacity).sum();
    assert_eq!(cpu, 107_018_000);
    assert_eq!(trace.pods.pods.len(), 8152);
    let gpu: u64 = trace.pods.pods.iter().map(|p| p.gpu.total_milli()).sum();
    assert_eq!(gpu, 6_086_800);
    let cpu_only = trace.pods.pods.iter().filter(|p| !p.needs_gpu()).count();
    assert_eq!(cpu_only, 1088);
    let target = trace.workload().target();
    assert_eq!(
        (target.classes().len(), target.distinct_classes()),
        (35, 91)
    );
    // Fragmentation ratio of the empty cluster: 14.01% in the published results.
    let frag: f64 = trace
        .cluster
        .nodes()
        .iter()
        .map(|n| target.node_frag(n))
        .sum();
    let ratio = frag / trace.cluster.gpu_capacity_milli() as f64 * 100.0;
    assert!((ratio - 14.0).abs() < 0.2, "{ratio}");
}
