//! The target workload FGD measures fragmentation against, derived from the running pods and
//! kept across snapshot rebuilds while the workload has not moved much.
//!
//! The extender rebuilds its base snapshot after every burst of cluster changes (every 100 ms
//! to 2 s while pods are being bound). Re-deriving the target each time would make every
//! rebuild a new scoring problem, and every node's score cold at 5,000 nodes. Kept, the
//! policies carry their per-node-shape caches into the new view ([`crate::policy::Policy::rebase`])
//! and only nodes whose shape changed are scored again. The target is derived again when it is
//! [`TARGET_REFRESH`] old or the number of running pods has moved by more than
//! [`TARGET_DRIFT`] of what it was derived from.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::model::PodShape;
use crate::model::frag::TargetWorkload;
use crate::snapshot::ClusterSnapshot;

/// Longest a derived target is kept.
pub const TARGET_REFRESH: Duration = Duration::from_secs(60);

/// Relative change in the number of running pods that derives the target again.
pub const TARGET_DRIFT: f64 = 0.05;

#[derive(Debug)]
struct Derived {
    at: Instant,
    pods: usize,
    target: Arc<TargetWorkload>,
}

/// The last derived target, shared by the views built on it.
#[derive(Debug, Default)]
pub struct DerivedTarget(Mutex<Option<Derived>>);

impl DerivedTarget {
    /// The target for `base`: the kept one while it is fresh enough, else derived from the
    /// running pods (`fallback` when none runs).
    pub fn for_base(&self, base: &ClusterSnapshot, fallback: &[PodShape]) -> Arc<TargetWorkload> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let pods = base.pods.len();
        if let Some(d) = slot.as_ref().filter(|d| d.still_fits(pods, Instant::now())) {
            return d.target.clone();
        }
        let target = Arc::new(base.target(fallback));
        *slot = Some(Derived {
            at: Instant::now(),
            pods,
            target: target.clone(),
        });
        target
    }
}

impl Derived {
    fn still_fits(&self, pods: usize, now: Instant) -> bool {
        let drift = (pods as f64 - self.pods as f64).abs() / (self.pods.max(1) as f64);
        now.duration_since(self.at) < TARGET_REFRESH
            && (pods == 0) == (self.pods == 0)
            && drift <= TARGET_DRIFT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_kept_until_it_is_old_or_the_pod_count_moves() {
        let d = Derived {
            at: Instant::now(),
            pods: 100,
            target: Arc::new(TargetWorkload::default()),
        };
        let now = d.at;
        assert!(d.still_fits(100, now));
        assert!(d.still_fits(105, now));
        assert!(d.still_fits(95, now));
        assert!(!d.still_fits(106, now), "more than 5 % more pods");
        assert!(!d.still_fits(94, now));
        assert!(!d.still_fits(0, now), "from running pods to none");
        assert!(!d.still_fits(100, now + TARGET_REFRESH));
        let empty = Derived { pods: 0, ..d };
        assert!(empty.still_fits(0, now));
        assert!(!empty.still_fits(1, now), "the first pods derive it again");
    }
}
