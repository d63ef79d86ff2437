//! One build of the extender's view at a time, and none when nothing changed: what a
//! filter's request for a fresh view costs when the caches have no news.

/// The passes that change the extender's view one at a time (the snapshot loop's builds, a
/// build a filter asks for, the holds of newly arrived consolidation records), and which of
/// the caches' changes the last build had read ([`crate::live::Caches::change_count`]).
#[derive(Debug, Default)]
pub struct Builds(std::sync::Mutex<Option<u64>>);

impl Builds {
    /// Take the lock (a panic elsewhere does not stop the builds).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run `build`, which reads the caches at change `count` or later, under the lock, unless
    /// `when` is [`Rebuild::IfChanged`] and the last build read that same count.
    pub fn build_if<T>(
        &self,
        count: impl FnOnce() -> u64,
        when: Rebuild,
        build: impl FnOnce() -> T,
    ) -> Option<T> {
        let mut last = self.lock();
        // Read under the lock and before the build: a change that lands during the build
        // makes the next request build again.
        let count = count();
        if when == Rebuild::IfChanged && *last == Some(count) {
            return None;
        }
        let built = build();
        *last = Some(count);
        Some(built)
    }
}

/// Whether a build is made when nothing changed since the last build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// The snapshot loop: also for what changes with time alone (telemetry growing stale).
    Always,
    /// A filter's request: the view already shows every change the caches have.
    IfChanged,
}

#[cfg(test)]
mod tests {
    use super::{Builds, Rebuild};

    #[test]
    fn a_requested_build_is_made_only_when_the_caches_changed_since_the_last() {
        let builds = Builds::default();
        let made = vec![
            // The first request builds: nothing was built yet.
            builds.build_if(|| 7, Rebuild::IfChanged, || "first"),
            // No change since: no build.
            builds.build_if(|| 7, Rebuild::IfChanged, || "same"),
            // The loop builds regardless (telemetry grows stale with time alone).
            builds.build_if(|| 7, Rebuild::Always, || "loop"),
            builds.build_if(|| 7, Rebuild::IfChanged, || "still same"),
            // A change landed: the next request builds, and remembers it.
            builds.build_if(|| 8, Rebuild::IfChanged, || "changed"),
            builds.build_if(|| 8, Rebuild::IfChanged, || "again"),
        ];
        assert_eq!(
            made,
            [
                Some("first"),
                None,
                Some("loop"),
                None,
                Some("changed"),
                None
            ]
        );
        assert_eq!(*builds.lock(), Some(8));
    }
}
