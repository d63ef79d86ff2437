//! Doubling back-off with "equal jitter", the one retry schedule every loop in allot uses (a
//! watch listing again, an agent retrying its write): try `n + 1` waits `min * 2^n`, capped at
//! `max`, less up to half of that by a random unit, so that clients cut off by one outage do
//! not all come back in the same instant.

use std::time::Duration;

/// The wait before try number `failures + 1`, with `unit` in `[0, 1)` taking up to half off
/// (values outside are clamped).
pub fn equal_jitter(min: Duration, max: Duration, failures: u32, unit: f64) -> Duration {
    let full = min.saturating_mul(1 << failures.min(16)).min(max);
    full.saturating_sub(full.mul_f64(0.5 * unit.clamp(0.0, 1.0)))
}

/// A number in `[0, 1)` that differs between clients and tries: jitter needs nothing better
/// than the clock's nanoseconds.
pub fn jitter_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(4);

    #[test]
    fn doubles_up_to_the_cap_and_jitter_takes_at_most_half() {
        let waits: Vec<u128> = (0..7)
            .map(|n| equal_jitter(MIN, MAX, n, 0.0).as_millis())
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(equal_jitter(MIN, MAX, 2, 0.5), Duration::from_millis(750));
        assert_eq!(equal_jitter(MIN, MAX, 2, 7.0), Duration::from_millis(500));
        assert_eq!(equal_jitter(MIN, MAX, 2, -1.0), Duration::from_millis(1000));
        assert_eq!(equal_jitter(MIN, MAX, u32::MAX, 0.0), MAX);
        let u = jitter_unit();
        assert!((0.0..1.0).contains(&u), "{u}");
    }
}
