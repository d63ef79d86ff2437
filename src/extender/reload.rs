//! Following `--policy-dir` while the extender serves: every few seconds its files are
//! fingerprinted; after a change they are read whole and, if valid, swapped in at once. A
//! change that cannot be read keeps the settings in force, is logged once (until the files
//! change again) and counted, so a typo in a ConfigMap never stops placement.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::policies::{self, PolicySettings};
use super::state::Store;

/// What one look at the directory did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Nothing changed since the last look.
    Unchanged,
    /// New settings are in force.
    Applied,
    /// The files changed but cannot be used; the previous settings stay.
    Refused(String),
}

/// The directory being followed and the fingerprint of what was last read from it.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    seen: u64,
}

impl Follower {
    /// Follow `dir`, whose current contents the store already decides with.
    pub fn new(dir: &Path) -> Self {
        Follower {
            dir: dir.to_path_buf(),
            seen: policies::fingerprint(dir),
        }
    }

    /// Look at the directory once and apply a change to `store`.
    pub fn check(&mut self, store: &Store) -> Reload {
        let now = policies::fingerprint(&self.dir);
        if now == self.seen {
            return Reload::Unchanged;
        }
        self.seen = now;
        let stats = store.policy_stats();
        match policies::read_dir(&self.dir) {
            Ok(settings) => {
                log_change(&store.policies(), &settings);
                store.set_policies(settings);
                stats.reloaded("ok");
                Reload::Applied
            }
            Err(e) => {
                tracing::warn!(error = %e, "policy settings changed but cannot be used; keeping the previous ones");
                stats.reloaded(e.reason());
                Reload::Refused(e.to_string())
            }
        }
    }
}

fn log_change(old: &PolicySettings, new: &PolicySettings) {
    tracing::info!(
        default = new.default.name(),
        shadow = new.shadow.map_or("none", |s| s.name()),
        learned_hash = new.learned_hash(),
        previous_default = old.default.name(),
        previous_learned_hash = old.learned_hash(),
        "policy settings reloaded"
    );
}

/// Check `dir` every `every` for as long as the extender runs.
pub async fn follow(dir: PathBuf, store: Arc<Store>, every: Duration) {
    let mut follower = Follower::new(&dir);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (f, s) = (follower, store.clone());
        // File reads off the async threads.
        match tokio::task::spawn_blocking(move || {
            let mut f = f;
            f.check(&s);
            f
        })
        .await
        {
            Ok(f) => follower = f,
            Err(_) => {
                tracing::error!("reading --policy-dir panicked; no longer following it");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
