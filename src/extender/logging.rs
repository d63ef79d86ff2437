//! How the extender logs what clients send: a refused request at DEBUG, one by one, and at
//! WARN at most once every [`SUMMARY_EVERY`] (the first one, then a count with the last
//! one's message), so a client or fuzzer sending garbage cannot fill the disk. Client text
//! is logged with Debug formatting (quoted, control characters escaped); the process-wide
//! subscriber (`process::log_subscriber`) escapes any that slip through.

use std::fmt::Display;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most one WARN line a minute about bad requests, however fast they come: a fuzzer
/// once wrote 36 MB of INFO lines in 6 minutes, one per request.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

static BAD_REQUESTS: RateLimit = RateLimit::new(SUMMARY_EVERY);

/// Log a request refused as malformed or impossible: `verb` names the endpoint, `message`
/// is what the client was told (it may quote the client's text).
pub fn bad_request(verb: &str, message: &dyn Display) {
    let message = message.to_string();
    tracing::debug!(verb, error = ?message, "bad request");
    match BAD_REQUESTS.note(Instant::now()) {
        None => {}
        Some(Summary { over: None, .. }) => tracing::warn!(
            verb,
            error = ?message,
            "bad request (further ones are logged at DEBUG and counted here once a minute)"
        ),
        Some(Summary {
            count,
            over: Some(over),
        }) => tracing::warn!(
            count,
            verb,
            last = ?message,
            "{count} bad requests in the last {} s",
            over.as_secs()
        ),
    }
}

/// Counts events and says when one should be logged: the first at once, then a count at
/// most once every `every`. A count is reported by the first event after the interval (no
/// timer runs in between).
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    window: Mutex<Option<Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    since: Instant,
    count: u64,
}

/// What to log now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Events since the last line, this one included.
    pub count: u64,
    /// Time since the last line; `None` for the very first event.
    pub over: Option<Duration>,
}

impl RateLimit {
    pub const fn new(every: Duration) -> Self {
        RateLimit {
            every,
            window: Mutex::new(None),
        }
    }

    /// Count an event at `now`; `Some` when a line is due.
    pub fn note(&self, now: Instant) -> Option<Summary> {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(w) = window.as_mut() else {
            *window = Some(Window {
                since: now,
                count: 0,
            });
            return Some(Summary {
                count: 1,
                over: None,
            });
        };
        w.count = w.count.saturating_add(1);
        let over = now.saturating_duration_since(w.since);
        if over < self.every {
            return None;
        }
        let count = w.count;
        *w = Window {
            since: now,
            count: 0,
        };
        Some(Summary {
            count,
            over: Some(over),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_then_one_count_per_interval() {
        let limit = RateLimit::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            limit.note(t0),
            Some(Summary {
                count: 1,
                over: None
            })
        );
        for s in 1..60 {
            assert_eq!(limit.note(at(s)), None, "second {s}");
        }
        assert_eq!(
            limit.note(at(61)),
            Some(Summary {
                count: 60,
                over: Some(Duration::from_secs(61))
            })
        );
        assert_eq!(limit.note(at(62)), None);
        // A quiet hour: the next one reports the one before it and itself.
        assert_eq!(
            limit.note(at(3662)),
            Some(Summary {
                count: 2,
                over: Some(Duration::from_secs(3601))
            })
        );
    }

    #[test]
    fn a_clock_going_backwards_is_not_an_interval() {
        let limit = RateLimit::new(Duration::from_secs(60));
        let t0 = Instant::now() + Duration::from_secs(10);
        assert!(limit.note(t0).is_some());
        assert_eq!(limit.note(t0 - Duration::from_secs(5)), None);
    }
}
