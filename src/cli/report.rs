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
        }
    }
}

fn pm(v: Option<MeanSd>) -> String {
    v.map_or_else(
        || "-".to_string(),
        |v| format!("{:.2} ± {:.2}", v.mean, v.sd),
    )
}

/// The human table: one row per policy, best (lowest unallocated) first.
pub fn table(s: &Summary) -> String {
    let mut rows: Vec<&PolicySummary> = s.policies.iter().collect();
    rows.sort_by(|a, b| {
        let key = |p: &PolicySummary| p.unallocated_gpu_pct_at.map_or(f64::INFINITY, |v| v.mean);
        key(a).total_cmp(&key(b))
    });
    let header = [
        "policy".to_string(),
        format!("unalloc GPU % @{}", s.at),
        "published".to_string(),
        "repro".to_string(),
        "frag %".to_string(),
        "frag ratio %".to_string(),
        "failed pods".to_string(),
        "gap to LP".to_string(),
        "ms/replay".to_string(),
        "µs/pod".to_string(),
    ];
    let body: Vec<[String; 10]> = rows
        .iter()
        .map(|p| {
            [
                p.policy.clone(),
                pm(p.unallocated_gpu_pct_at),
                pm(p.published_unallocated_gpu_pct_at),
                match p.within_published_spread {
                    Some(true) => "ok",
                    Some(false) => "OFF",
                    None => "-",
                }
                .to_string(),
                pm(p.frag_pct_at),
                pm(p.frag_ratio_pct_at),
                p.failed_pods.map_or_else(
                    || "-".to_string(),
                    |v| format!("{:.0} ± {:.0}", v.mean, v.sd),
                ),
                p.gap_to_bound_pct_points
                    .map_or_else(|| "-".to_string(), |g| format!("{g:+.2}")),
                format!("{:.0}", p.mean_replay_ms),
                format!("{:.1}", p.mean_decision_us),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            body.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
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
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w - c.chars().count();
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header));
    let _ = writeln!(
        out,
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for row in &body {
        let _ = writeln!(out, "{}", line(row));
    }
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
    if let Some(b) = s.lp_bound_unallocated_gpu_pct_at {
        let _ = writeln!(
            out,
            "offline LP bound (every arrival known in advance): unallocated GPU % >= {:.2} ± {:.2}; gap to LP = points above it",
            b.mean, b.sd
        );
    }
    let _ = writeln!(
        out,
        "published = the FGD authors' results for this trace (USENIX ATC'23); repro ok = within max(2 sd, 0.5) of it"
    );
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

/// One row per (policy, seed): the run's totals and its values at arrived = 100%.
pub fn runs_csv(trace: &str, results: &[PolicyResult]) -> String {
    let mut out = String::from(
        "trace,policy,seed,arrivals,placed,failed,failed_gpu_milli,unallocated_gpu_pct_at_100,frag_pct_at_100,frag_ratio_pct_at_100,replay_ms\n",
    );
    let cell = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.4}"));
    for r in results {
        for s in &r.runs {
            let _ = writeln!(
                out,
                "{trace},{},{},{},{},{},{},{},{},{},{:.1}",
                r.policy,
                s.seed,
                s.arrivals,
                s.placed,
                s.failed,
                s.failed_gpu_milli,
                cell(s.curves.unallocated_pct[100]),
                cell(s.curves.frag_pct[100]),
                cell(s.curves.frag_ratio_pct[100]),
                s.elapsed.as_secs_f64() * 1e3
            );
        }
    }
    out
}

/// Long format: one row per (policy, seed, metric) with the values at x = 0..=130.
pub fn curves_csv(trace: &str, results: &[PolicyResult]) -> String {
    let mut out = String::from("trace,policy,seed,metric");
    for x in 0..=MAX_X {
        let _ = write!(out, ",{x}");
    }
    out.push('\n');
    for r in results {
        for s in &r.runs {
            for (metric, curve) in [
                ("unallocated_gpu_pct", &s.curves.unallocated_pct),
                ("frag_pct", &s.curves.frag_pct),
                ("frag_ratio_pct", &s.curves.frag_ratio_pct),
            ] {
                let _ = write!(out, "{trace},{},{},{metric}", r.policy, s.seed);
                for v in curve {
                    match v {
                        Some(v) => write!(out, ",{v:.4}"),
                        None => write!(out, ","),
                    }
                    .ok();
                }
                out.push('\n');
            }
        }
    }
    out
}
