//! Independent jobs (replays of one policy and seed, offline bounds of one seed) spread over
//! scoped worker threads: each worker takes the next job index from a shared counter, so a
//! slow job never holds up the others, and the results come back in job order whatever the
//! order they finished in.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Run `job(i)` for every `i` in `0..n` on at most `threads` workers (at least one), calling
/// `finished(i, count)` after each with how many have finished so far. The results are in
/// index order.
pub fn run_indexed<R: Send>(
    n: usize,
    threads: usize,
    job: impl Fn(usize) -> R + Sync,
    finished: impl Fn(usize, usize) + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(n));
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let r = job(i);
            if let Ok(mut all) = results.lock() {
                all.push((i, r));
            }
            finished(i, done.fetch_add(1, Ordering::Relaxed) + 1);
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            scope.spawn(worker);
        }
    });
    let mut all = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::run_indexed;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_job_runs_once_and_results_keep_their_order() {
        for threads in [0, 1, 3, 64] {
            let calls = AtomicUsize::new(0);
            let last = AtomicUsize::new(0);
            let out = run_indexed(
                10,
                threads,
                |i| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    i * i
                },
                |_, count| {
                    last.fetch_max(count, Ordering::Relaxed);
                },
            );
            assert_eq!(out, (0..10).map(|i| i * i).collect::<Vec<_>>());
            assert_eq!(calls.load(Ordering::Relaxed), 10);
            assert_eq!(last.load(Ordering::Relaxed), 10);
        }
        assert!(run_indexed(0, 2, |i| i, |_, _| {}).is_empty());
    }
}
