//! How many replicas a task asks for: `replicas`, or an elastic task's `minReplicas` and
//! `maxReplicas`. The CRD's rules hold the same; this says it to the controller and the CLI.

use super::{ScheduleRequestSpec, TaskSpec};

impl ScheduleRequestSpec {
    /// Replicas requested over all tasks, elastic ones at their maximum (a task whose counts
    /// are inconsistent, which the schema refuses, counts as 0).
    pub fn total_replicas(&self) -> i64 {
        self.tasks
            .iter()
            .map(|t| i64::from(t.bounds().map_or(0, |(_, max)| max)))
            .sum()
    }

    /// Replicas that must be placed over all tasks: elastic ones at their minimum.
    pub fn min_replicas(&self) -> i64 {
        self.tasks
            .iter()
            .map(|t| i64::from(t.bounds().map_or(0, |(min, _)| min)))
            .sum()
    }
}

impl TaskSpec {
    /// The task's (minimum, maximum) replicas: `replicas` for both, or an elastic task's
    /// `minReplicas` and `maxReplicas`; an error says what is inconsistent.
    pub fn bounds(&self) -> Result<(i32, i32), String> {
        let (min, max) = match (self.replicas, self.min_replicas, self.max_replicas) {
            (Some(n), None, None) => (n, n),
            (None, Some(min), Some(max)) => (min, max),
            (None, None, None) => {
                return Err("set replicas, or minReplicas and maxReplicas".into());
            }
            (Some(_), _, _) => {
                return Err("set replicas, or minReplicas and maxReplicas, not both".into());
            }
            (None, _, _) => {
                return Err("an elastic task sets both minReplicas and maxReplicas".into());
            }
        };
        if min < 0 || max < 0 {
            return Err(format!("must be >= 0, got {}", min.min(max)));
        }
        if min > max {
            return Err(format!("minReplicas {min} exceeds maxReplicas {max}"));
        }
        Ok((min, max))
    }

    /// Whether the task is elastic (its minimum below its maximum).
    pub fn elastic(&self) -> bool {
        self.bounds().is_ok_and(|(min, max)| min < max)
    }
}
