//! The FGD authors' published per-seed results (`analysis_allo_discrete.csv`): allocation
//! ratio curves per workload, policy and seed, for side-by-side comparison.

use std::collections::BTreeMap;
use std::path::Path;

use super::metrics::{Band, Curve, MAX_X, MeanSd};
use super::trace::{TraceError, read_text};
use crate::policy::PolicyKind;

/// Published curves of unallocated GPU % by (workload, policy label), one per seed.
#[derive(Debug, Clone, Default)]
pub struct Published {
    curves: BTreeMap<(String, String), Vec<(u64, Curve)>>,
}

impl Published {
    pub fn load(path: &Path) -> Result<Self, TraceError> {
        let text = read_text(path)?;
        let file = path.display().to_string();
        Self::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<Self, TraceError> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let err = |line: Option<u64>, problem: String| TraceError {
            file: file.to_string(),
            line,
            column: None,
            problem,
        };
        let headers = reader
            .headers()
            .map_err(|e| err(None, e.to_string()))?
            .clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| err(Some(1), format!("missing column `{name}`")))
        };
        let (workload, policy, seed, first_x) =
            (col("workload")?, col("sc_policy")?, col("seed")?, col("0")?);
        let mut out = Published::default();
        for record in reader.records() {
            let record = record.map_err(|e| err(e.position().map(|p| p.line()), e.to_string()))?;
            let line = record.position().map(|p| p.line());
            let seed: u64 = record
                .get(seed)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| err(line, "bad `seed`".to_string()))?;
            let curve: Curve = (0..=MAX_X)
                .map(|x| {
                    record
                        .get(first_x + x)
                        .and_then(|v| v.parse::<f64>().ok())
                        .map(|alloc| 100.0 - alloc)
                })
                .collect();
            let key = (
                record.get(workload).unwrap_or_default().to_string(),
                record.get(policy).unwrap_or_default().to_string(),
            );
            out.curves.entry(key).or_default().push((seed, curve));
        }
        Ok(out)
    }

    fn runs(&self, trace: &str, policy: PolicyKind) -> Option<&Vec<(u64, Curve)>> {
        let label = policy.published_label()?;
        self.curves
            .get(&(format!("openb_pod_list_{trace}"), label.to_string()))
    }

    /// Mean and sd over the published seeds of unallocated GPU % at `x`.
    pub fn unallocated_at(&self, trace: &str, policy: PolicyKind, x: usize) -> Option<MeanSd> {
        let values: Vec<f64> = self
            .runs(trace, policy)?
            .iter()
            .filter_map(|(_, c)| c.get(x).copied().flatten())
            .collect();
        MeanSd::of(&values)
    }

    /// Median and quartiles of the published curves.
    pub fn band(&self, trace: &str, policy: PolicyKind) -> Option<Band> {
        let runs = self.runs(trace, policy)?;
        Some(Band::of(&runs.iter().map(|(_, c)| c).collect::<Vec<_>>()))
    }

    pub fn seeds(&self, trace: &str, policy: PolicyKind) -> Vec<u64> {
        self.runs(trace, policy)
            .map(|r| r.iter().map(|(s, _)| *s).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_published_layout() {
        let mut text = String::from("workload,sc_policy,tune,seed,total_gpus");
        for x in 0..=MAX_X {
            text.push_str(&format!(",{x}"));
        }
        for seed in [42, 43] {
            text.push_str(&format!("\nopenb_pod_list_default,06-FGD,1.3,{seed},6212"));
            for x in 0..=MAX_X {
                text.push_str(&format!(",{}", x as f64 * 0.5 + (seed - 42) as f64));
            }
        }
        let p = Published::parse("t.csv", &text).unwrap();
        let at = p.unallocated_at("default", PolicyKind::Fgd, 100).unwrap();
        assert_eq!(at.mean, 100.0 - 50.5);
        assert_eq!(p.seeds("default", PolicyKind::Fgd), vec![42, 43]);
        assert!(
            p.unallocated_at("default", PolicyKind::LeastAllocated, 100)
                .is_none()
        );
    }
}
