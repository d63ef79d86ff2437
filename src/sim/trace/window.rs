//! A time window over a trace's pods (`--since`/`--until` of `allot simulate` and `allot train
//! --history`): which pods were created in it, by their `creation_time`. Pure; the CLI parses
//! the flags with [`parse_bound`] and applies the window to a loaded trace.

use super::times::Lifetime;

/// One end of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A time on the trace's own clock, in seconds: Unix seconds for a recorded history,
    /// seconds from the trace's origin for an openb list.
    At(u64),
    /// This many seconds before the newest pod's creation_time.
    BeforeNewest(u64),
}

/// Pods created at or after `since` and before `until` (either end open when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub since: Option<Bound>,
    pub until: Option<Bound>,
}

/// What a window kept of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Per pod of the trace, in its order: created inside the window.
    pub mask: Vec<bool>,
    /// Pods outside the window.
    pub left_out: usize,
    /// The window resolved on the trace's clock: `[from, until)`.
    pub from: Option<u64>,
    pub until: Option<u64>,
}

impl Window {
    /// No bound given: every pod is kept and nothing needs times.
    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// Which of the pods with `lifetimes` (row by row) were created in the window. A relative
    /// bound counts back from the newest creation_time (a bound before the clock's origin is
    /// the origin).
    pub fn apply(&self, lifetimes: &[Lifetime]) -> Kept {
        let newest = lifetimes.iter().map(|l| l.created).max().unwrap_or(0);
        let resolve = |b: Bound| match b {
            Bound::At(t) => t,
            Bound::BeforeNewest(s) => newest.saturating_sub(s),
        };
        let from = self.since.map(resolve);
        let until = self.until.map(resolve);
        let mask: Vec<bool> = lifetimes
            .iter()
            .map(|l| from.is_none_or(|f| l.created >= f) && until.is_none_or(|u| l.created < u))
            .collect();
        let left_out = mask.iter().filter(|&&k| !k).count();
        Kept {
            mask,
            left_out,
            from,
            until,
        }
    }
}

impl Kept {
    /// `[from, until)` for messages, `..` for an open end.
    pub fn describe(&self) -> String {
        let end = |t: Option<u64>| t.map_or_else(|| "..".to_string(), |t| t.to_string());
        format!("[{}, {})", end(self.from), end(self.until))
    }
}

/// A `--since`/`--until` value: a whole number of seconds on the trace's clock (Unix seconds
/// for a recorded history), or a duration before the newest pod's creation: a whole number
/// followed by `d`, `h`, `m` or `s` (`7d`, `36h`, `90m`, `45s`). The error names the value;
/// the caller adds the flag.
pub fn parse_bound(text: &str) -> Result<Bound, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!(
            "{text:?}: empty; give Unix seconds or a duration before the newest record (7d, 36h, 90m, 45s)"
        ));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let scale: u64 = match unit {
        "" => 0,
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: give Unix seconds (a whole number) or a whole number with d, h, m or s \
                 (a duration before the newest record, e.g. 7d)"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: not a whole, non-negative number"))?;
    if scale == 0 {
        return Ok(Bound::At(n));
    }
    n.checked_mul(scale)
        .map(Bound::BeforeNewest)
        .ok_or_else(|| format!("{text:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(created: u64) -> Lifetime {
        Lifetime {
            created,
            deleted: created + 10,
        }
    }

    #[test]
    fn bounds_parse_as_unix_seconds_or_a_duration_before_the_newest() {
        assert_eq!(parse_bound("1733000000"), Ok(Bound::At(1_733_000_000)));
        assert_eq!(parse_bound(" 0 "), Ok(Bound::At(0)));
        assert_eq!(parse_bound("7d"), Ok(Bound::BeforeNewest(7 * 86_400)));
        assert_eq!(parse_bound("36h"), Ok(Bound::BeforeNewest(36 * 3_600)));
        assert_eq!(parse_bound("90m"), Ok(Bound::BeforeNewest(5_400)));
        assert_eq!(parse_bound("45s"), Ok(Bound::BeforeNewest(45)));
    }

    #[test]
    fn bad_bounds_are_refused_naming_the_value() {
        for bad in [
            "",
            "7w",
            "-3",
            "1.5d",
            "d",
            "7 d",
            "last week",
            "99999999999999999999d",
        ] {
            let e = parse_bound(bad).expect_err(bad);
            assert!(e.starts_with(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn the_window_keeps_pods_created_from_since_and_before_until() {
        let lives: Vec<Lifetime> = [100, 200, 300, 400].map(life).to_vec();
        let w = Window {
            since: Some(Bound::At(200)),
            until: Some(Bound::At(400)),
        };
        let kept = w.apply(&lives);
        assert_eq!(kept.mask, [false, true, true, false]);
        assert_eq!(
            (kept.left_out, kept.describe()),
            (2, "[200, 400)".to_string())
        );
    }

    #[test]
    fn durations_count_back_from_the_newest_creation() {
        let lives: Vec<Lifetime> = [100, 200, 300, 400].map(life).to_vec();
        let since = Window {
            since: Some(Bound::BeforeNewest(150)),
            until: None,
        };
        assert_eq!(since.apply(&lives).mask, [false, false, true, true]);
        let until = Window {
            since: None,
            until: Some(Bound::BeforeNewest(100)),
        };
        assert_eq!(until.apply(&lives).mask, [true, true, false, false]);
        // Further back than the first record: every pod is after it.
        let all = Window {
            since: Some(Bound::BeforeNewest(10_000)),
            until: None,
        };
        assert_eq!(
            (all.apply(&lives).left_out, all.apply(&lives).from),
            (0, Some(0))
        );
        assert!(Window::default().is_open() && !all.is_open());
    }
}
