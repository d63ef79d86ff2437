//! The store's policy settings: the default and shadow policies and the learned weights,
//! swapped whole while serving (a `--policy-dir` change) and shown in `/metrics`, and which part
//! of the learned policy file scores the running workload (logged when it changes).

use std::sync::{Arc, PoisonError};

use super::{PolicySettings, PolicyStats, Store};
use crate::model::frag::TargetWorkload;
use crate::policy::learned::PolicyFile;

impl Store {
    /// Score `learned` with `file` (`--policy-file`), from the current snapshot on.
    pub fn with_learned(self, file: Arc<PolicyFile>) -> Self {
        let settings = PolicySettings {
            learned: Some(file),
            ..(*self.policies()).clone()
        };
        self.with_policies(settings)
    }

    /// Decide with `settings` from the current snapshot on.
    pub fn with_policies(self, settings: PolicySettings) -> Self {
        self.set_policies(settings);
        self
    }

    /// Switch to `settings` while serving (a `--policy-dir` change): requests after the swap
    /// decide with them; the view is rebuilt only when the learned weights changed.
    pub fn set_policies(&self, settings: PolicySettings) {
        let weights_changed = self.policies().learned_hash() != settings.learned_hash();
        self.policy_stats.in_force(&settings);
        *self
            .policies
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
        if weights_changed {
            self.refresh_context();
        }
    }

    /// The policy settings in force.
    pub fn policies(&self) -> Arc<PolicySettings> {
        self.policies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn policy_stats(&self) -> &Arc<PolicyStats> {
        &self.policy_stats
    }

    /// The hash of the policy file `learned` scores with.
    pub fn learned_hash(&self) -> String {
        self.policies().learned_hash().to_string()
    }

    /// Say (once per change, in the log and a gauge) whether `target` lies outside the learned
    /// policy's support, where `learned` places as FGD.
    pub(super) fn check_support(&self, target: &TargetWorkload) {
        let policies = self.policies();
        let (scored_by, outside) = policies.learned_choice(target);
        let mut said = self
            .support_said
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *said != scored_by {
            let hash = policies.learned_hash();
            match &outside {
                Some(o) => tracing::warn!(learned_policy_hash = hash, "learned places as FGD: {o}"),
                None => tracing::info!(
                    learned_policy_hash = hash,
                    "learned scores with {scored_by}"
                ),
            }
            *said = scored_by;
        }
        self.policy_stats.support(outside.as_ref());
    }
}
