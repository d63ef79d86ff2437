//! What `allot simulate` prints and writes: the summary (table and JSON) and per-seed CSVs.

use std::fmt::Write as _;

use serde::Serialize;

use crate::alloc::OfflineBound;
use crate::sim::metrics::{MAX_X, MeanSd};
use crate::sim::replay::ReplayOptions;
use crate::sim::{LoadedTrace, NodeSampling, PolicyResult, Published};

/// How close to the published mean counts as "reproduced": two published standard
/// deviations, but never tighter than half a point (some spreads are tiny).
pub fn reproduction_tolerance(published: MeanSd) -> f64 {
    (2.0 * published.sd).max(0.5)
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub trace: String,
    pub pods_source: String,
    pub nodes_source: String,
    pub pods: usize,
    pub nodes: usize,
    pub gpus: usize,
    pub seeds: Vec<u64>,
    /// Arrived workload (% of GPU capacity) of the `*_at` fields.
    pub at: usize,
    /// Lower bound on unallocated GPU % at `at` from the offline LP (with `--bound`).
    pub lp_bound_unallocated_gpu_pct_at: Option<MeanSd>,
    /// The nodes each decision chose among (`--node-sampling`): `all` (every feasible node,
    /// the paper's protocol), or kube-scheduler's sampling, `adaptive` or `N%`.
    pub node_sampling: String,
    /// Feasible nodes kube-scheduler looks for per pod in this cluster under `node_sampling`
    /// (every node for `all`).
    pub nodes_to_find: usize,
    /// What kube-scheduler counted as feasible while sampling (`requests` or `allot`); only
    /// with a `node_sampling` other than `all`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_filter: Option<String>,
    pub policies: Vec<PolicySummary>,
    /// Where each policy's unallocated GPU lies at `at` (with `--leftover`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leftover: Option<Vec<super::leftover::PolicyLeftover>>,
}

#[derive(Debug, Serialize)]
pub struct PolicySummary {
    pub policy: String,
    pub trace: String,
    pub seeds: Vec<u64>,
    pub unallocated_gpu_pct_at_100: Option<MeanSd>,
    pub unallocated_gpu_pct_at: Option<MeanSd>,
    pub frag_pct_at: Option<MeanSd>,
    pub frag_ratio_pct_at: Option<MeanSd>,
    pub failed_pods: Option<MeanSd>,
    pub published_unallocated_gpu_pct_at: Option<MeanSd>,
    /// Whether our mean lies within the published mean +/- max(2 sd, 0.5); None when the
    /// authors published no run for this trace and policy.
    pub within_published_spread: Option<bool>,
    /// Mean over seeds of (ours - offline LP bound) in unallocated GPU points (with `--bound`).
    pub gap_to_bound_pct_points: Option<f64>,
    pub mean_replay_ms: f64,
    pub mean_decision_us: f64,
}

impl Summary {
    pub fn new(
        trace: &LoadedTrace,
        seeds: &[u64],
        results: &[PolicyResult],
        published: &Published,
        at: usize,
        bounds: Option<&[(u64, OfflineBound)]>,
        options: ReplayOptions,
    ) -> Self {
        let sampling = options.sampling;
        let sampled = sampling != NodeSampling::All;
        let bound_of = |seed: u64| {
            bounds
                .and_then(|b| b.iter().find(|(s, _)| *s == seed))
                .and_then(|(_, b)| b.unallocated_pct_at(at))
        };
        let lp_bound = bounds.and_then(|b| {
            MeanSd::of(
                &b.iter()
                    .filter_map(|(_, b)| b.unallocated_pct_at(at))
                    .collect::<Vec<_>>(),
            )
        });
        let policies = results
            .iter()
            .map(|r| {
                let ours = r.unallocated_at(at);
                let theirs = published.unallocated_at(&trace.name, r.policy, at);
                let arrivals: usize = r.runs.iter().map(|s| s.arrivals).sum();
                let elapsed = r.runs.iter().map(|s| s.elapsed.as_secs_f64()).sum::<f64>();
                PolicySummary {
                    policy: r.policy.name().to_string(),
                    trace: trace.name.clone(),
                    seeds: r.runs.iter().map(|s| s.seed).collect(),
                    unallocated_gpu_pct_at_100: r.unallocated_at(100),
                    unallocated_gpu_pct_at: ours,
                    frag_pct_at: r.frag_at(at),
                    frag_ratio_pct_at: r.frag_ratio_at(at),
                    failed_pods: r.failed(),
                    published_unallocated_gpu_pct_at: theirs,
                    within_published_spread: ours
                        .zip(theirs)
                        .map(|(o, t)| (o.mean - t.mean).abs() <= reproduction_tolerance(t)),
                    gap_to_bound_pct_points: {
                        let gaps: Vec<f64> = r
                            .runs
                            .iter()
                            .filter_map(|run| {
                                Some(
                                    run.curves.unallocated_pct.get(at).copied().flatten()?
                                        - bound_of(run.seed)?,
                                )
                            })
                            .collect();
                        MeanSd::of(&gaps).map(|g| g.mean)
                    },
                    mean_replay_ms: r.mean_elapsed().as_secs_f64() * 1e3,
                    mean_decision_us: if arrivals == 0 {
                        0.0
                    } else {
                        elapsed / arrivals as f64 * 1e6
                    },
                }
            })
            .collect();
        Summary {
            trace: trace.name.clone(),
            pods_source: trace.pods_origin.describe(),
            nodes_source: trace.nodes_origin.describe(),
            pods: trace.pods.pods.len(),
            nodes: trace.cluster.len(),
            gpus: trace.cluster.gpu_count(),
            seeds: seeds.to_vec(),
            at,
            lp_bound_unallocated_gpu_pct_at: lp_bound,
            node_sampling: sampling.to_string(),
            nodes_to_find: sampling.nodes_to_find(trace.cluster.len()),
            kube_filter: sampled.then(|| options.kube_filter.to_string()),
            policies,
            leftover: None,
        }
    }
}

fn pm(v: Option<MeanSd>) -> String {
    v.map_or_else(
        || "-".to_string(),
        |v| format!("{:.2} ± {:.2}", v.mean, v.sd),
    )
}

/// The human table: one row per policy, best (lowest unallocated) first. The published and
/// gap-to-LP columns appear only when there is something to put in them.
pub fn table(s: &Summary) -> String {
    let mut rows: Vec<&PolicySummary> = s.policies.iter().collect();
    rows.sort_by(|a, b| {
        let key = |p: &PolicySummary| p.unallocated_gpu_pct_at.map_or(f64::INFINITY, |v| v.mean);
        key(a).total_cmp(&key(b))
    });
    let published = rows
        .iter()
        .any(|p| p.published_unallocated_gpu_pct_at.is_some());
    let bound = rows.iter().any(|p| p.gap_to_bound_pct_points.is_some());
    let at = format!("unalloc GPU % @{}", s.at);
    let mut header = vec!["policy", at.as_str()];
    if published {
        header.extend(["published", "repro"]);
    }
    header.extend(["frag %", "frag ratio %", "failed pods"]);
    if bound {
        header.push("gap to LP");
    }
    header.extend(["ms/replay", "µs/pod"]);
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|p| {
            let mut row = vec![p.policy.clone(), pm(p.unallocated_gpu_pct_at)];
            if published {
                row.push(pm(p.published_unallocated_gpu_pct_at));
                row.push(
                    match p.within_published_spread {
                        Some(true) => "ok",
                        Some(false) => "OFF",
                        None => "-",
                    }
                    .to_string(),
                );
            }
            row.push(pm(p.frag_pct_at));
            row.push(pm(p.frag_ratio_pct_at));
            row.push(p.failed_pods.map_or_else(
                || "-".to_string(),
                |v| format!("{:.0} ± {:.0}", v.mean, v.sd),
            ));
            if bound {
                row.push(
                    p.gap_to_bound_pct_points
                        .map_or_else(|| "-".to_string(), |g| format!("{g:+.2}")),
                );
            }
            row.push(format!("{:.0}", p.mean_replay_ms));
            row.push(format!("{:.1}", p.mean_decision_us));
            row
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {} ({} pods, {} nodes, {} GPUs), seeds {}; mean ± sd over seeds at arrived = {}% of GPU capacity",
        s.trace,
        s.pods,
        s.nodes,
        s.gpus,
        seed_list(&s.seeds),
        s.at
    );
    out.push_str(&super::table::render(&header, &body, 1));
    if let Some(filter) = &s.kube_filter {
        let _ = writeln!(
            out,
            "node sampling {} (percentageOfNodesToScore): each pod chose among the first {} of {} nodes kube-scheduler finds feasible by {} from its rotating start",
            s.node_sampling,
            s.nodes_to_find,
            s.nodes,
            if filter == "allot" {
                "allot's filter"
            } else {
                "CPU, memory and whole-GPU requests (less those allot's filter then drops)"
            }
        );
    }
    let _ = writeln!(
        out,
        "unalloc GPU % = GPU capacity no pod holds; frag % = the part of it the typical pods cannot use (FGD's fragmentation, % of capacity); frag ratio % = the same as % of the unallocated GPU"
    );
    if let Some(b) = s.lp_bound_unallocated_gpu_pct_at {
        let _ = writeln!(
            out,
            "offline LP bound (every arrival known in advance): unallocated GPU % >= {:.2} ± {:.2}; gap to LP = points above it",
            b.mean, b.sd
        );
    }
    if published {
        let _ = writeln!(
            out,
            "published = the FGD authors' results for this trace (USENIX ATC'23); repro ok = within max(2 sd, 0.5) of it"
        );
    }
    out
}

fn seed_list(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if seeds.len() > 2 && seeds.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("{a}-{b}")
        }
        _ => seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// CSV text of `header` and `rows`, quoted where a field needs it (a trace name may hold a
/// comma).
fn csv_text(header: &[String], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing into a Vec cannot fail, and every row has the header's length.
    let _ = w.write_record(header);
    for row in rows {
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.4}"))
}

/// One row per (policy, seed): the run's totals and its values at arrived = 100%.
pub fn runs_csv(trace: &str, results: &[PolicyResult]) -> String {
    let header = [
        "trace",
        "policy",
        "seed",
        "arrivals",
        "placed",
        "failed",
        "failed_gpu_milli",
        "unallocated_gpu_pct_at_100",
        "frag_pct_at_100",
        "frag_ratio_pct_at_100",
        "replay_ms",
    ]
    .map(String::from);
    let rows = results.iter().flat_map(|r| {
        r.runs.iter().map(|s| {
            vec![
                trace.to_string(),
                r.policy.to_string(),
                s.seed.to_string(),
                s.arrivals.to_string(),
                s.placed.to_string(),
                s.failed.to_string(),
                s.failed_gpu_milli.to_string(),
                cell(s.curves.unallocated_pct[100]),
                cell(s.curves.frag_pct[100]),
                cell(s.curves.frag_ratio_pct[100]),
                format!("{:.1}", s.elapsed.as_secs_f64() * 1e3),
            ]
        })
    });
    csv_text(&header, rows)
}

/// Long format: one row per (policy, seed, metric) with the values at x = 0..=130.
pub fn curves_csv(trace: &str, results: &[PolicyResult]) -> String {
    let header: Vec<String> = ["trace", "policy", "seed", "metric"]
        .map(String::from)
        .into_iter()
        .chain((0..=MAX_X).map(|x| x.to_string()))
        .collect();
    let rows = results.iter().flat_map(|r| {
        r.runs.iter().flat_map(move |s| {
            [
                ("unallocated_gpu_pct", &s.curves.unallocated_pct),
                ("frag_pct", &s.curves.frag_pct),
                ("frag_ratio_pct", &s.curves.frag_ratio_pct),
            ]
            .map(|(metric, curve)| {
                [trace.to_string(), r.policy.to_string(), s.seed.to_string()]
                    .into_iter()
                    .chain([metric.to_string()])
                    .chain(curve.iter().map(|v| cell(*v)))
                    .collect()
            })
        })
    });
    csv_text(&header, rows)
}
