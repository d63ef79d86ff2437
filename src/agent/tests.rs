//! The flag -> settings mapping is tested with the flags, in `cli::agent`. Here: the interval
//! bound [`MAX_INTERVAL`] keeps every piece of the agent's time arithmetic from panicking.

use std::time::Instant;

use super::*;

fn settings(sample: Duration, heartbeat: Duration, min_write: Duration) -> Settings {
    Settings {
        node_name: "n1".into(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        sample,
        heartbeat,
        jitter: 0.5,
        min_write,
        thresholds: Thresholds::default(),
    }
}

#[test]
fn run_refuses_intervals_past_the_bound() {
    let s = Duration::from_secs(5);
    let huge = Duration::from_secs(10_000_000_000_000_000_000);
    assert!(check(&settings(s, s, s)).is_ok());
    assert!(check(&settings(MAX_INTERVAL, MAX_INTERVAL, MAX_INTERVAL)).is_ok());
    let e = check(&settings(huge, huge, s)).expect_err("sample");
    assert!(e.to_string().contains("sample interval"), "{e}");
    let e = check(&settings(s, huge, s)).expect_err("heartbeat");
    assert!(e.to_string().contains("heartbeat interval"), "{e}");
    let e = check(&settings(s, s, MAX_INTERVAL + Duration::from_secs(1))).expect_err("write");
    assert!(e.to_string().contains("minimum write interval"), "{e}");
    let e = check(&settings(Duration::ZERO, s, s)).expect_err("zero");
    assert!(e.to_string().contains("must not be zero"), "{e}");
}

/// Every sum the agent makes of its intervals, at the bound: the stall limit, the write
/// schedule (heartbeat with the largest jitter, back-off, minimum interval) and the sample
/// ticker. None panics, and the stall limit saturates even past the bound.
#[tokio::test]
async fn arithmetic_at_the_bound_does_not_overflow() {
    assert_eq!(
        stall_limit(MAX_INTERVAL),
        MAX_INTERVAL * 3 + publish::CALL_TIMEOUT * 4
    );
    assert_eq!(stall_limit(Duration::MAX), Duration::MAX);
    Metrics::new().set_stall_limit(stall_limit(MAX_INTERVAL));

    let now = Instant::now();
    let mut schedule = Schedule::new(MAX_INTERVAL, 0.5, MAX_INTERVAL);
    assert_eq!(schedule.due(now, None), Some(Why::First));
    schedule.written(now, 0.999_999);
    let next = schedule.next_heartbeat().expect("next heartbeat");
    assert!(next > now && next <= now + MAX_INTERVAL);
    assert_eq!(schedule.due(now + MAX_INTERVAL, None), Some(Why::Heartbeat));
    assert_eq!(schedule.due(now, Some(Change::Cpu)), None);
    for _ in 0..40 {
        assert!(schedule.failed(now, 0.5) <= change::BACKOFF_MAX);
    }

    let mut ticks = tokio::time::interval(MAX_INTERVAL);
    ticks.tick().await; // the first tick is immediate; the next is scheduled a day on
}
