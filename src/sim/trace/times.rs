//! Pod lifetimes for the dynamic replay (`sim::dynamic`): the openb `creation_time` and
//! `deletion_time` columns (whole seconds from the trace origin), read only when asked, so a
//! static replay never fails on a time it ignores. `scheduled_time` is not read: a dynamic
//! replay decides itself when a pod starts.

use std::io::Read;
use std::path::Path;

use super::{TraceError, is_json, open, read_csv};

/// The column a pod's arrival is read from.
pub const CREATED: &str = "creation_time";
/// The column a pod's departure is read from.
pub const DELETED: &str = "deletion_time";

/// When a pod of the trace was created and deleted, in seconds from the trace origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub created: u64,
    pub deleted: u64,
}

impl Lifetime {
    /// How long the pod ran (or existed), in seconds.
    pub fn duration(self) -> u64 {
        self.deleted - self.created
    }
}

/// The lifetimes of the pods in a CSV pod list `text`, row by row; `None` when the file
/// has neither time column. A file with one of the two, or a row whose time is missing,
/// negative, not a whole number, or a deletion before its creation, is an error naming the
/// file, line and column.
pub fn parse_lifetimes_csv(file: &str, text: &str) -> Result<Option<Vec<Lifetime>>, TraceError> {
    lifetimes_csv(file, text.as_bytes())
}

/// [`parse_lifetimes_csv`] of the file at `path`; a JSON pod list has no times (`None`).
pub fn load_lifetimes(path: &Path) -> Result<Option<Vec<Lifetime>>, TraceError> {
    if is_json(path) {
        return Ok(None);
    }
    lifetimes_csv(&path.display().to_string(), open(path)?)
}

fn lifetimes_csv(file: &str, input: impl Read) -> Result<Option<Vec<Lifetime>>, TraceError> {
    let mut out = Vec::new();
    let mut present: Option<bool> = None;
    read_csv(file, input, |row| {
        let has = (row.get(CREATED).is_some(), row.get(DELETED).is_some());
        match has {
            (false, false) => {
                present = Some(false);
                return Ok(());
            }
            (true, false) => {
                return Err(row.error(DELETED, "missing column (creation_time is there)"));
            }
            (false, true) => {
                return Err(row.error(CREATED, "missing column (deletion_time is there)"));
            }
            (true, true) => present = Some(true),
        }
        let seconds = |column: &str| -> Result<u64, TraceError> {
            let text = row.get(column).unwrap_or("");
            if text.is_empty() {
                return Err(row.error(column, "empty; a dynamic replay needs every pod's time"));
            }
            if text.starts_with('-') {
                return Err(row.error(column, format!("{text:?} is negative")));
            }
            text.parse::<u64>().map_err(|_| {
                row.error(column, format!("{text:?} is not a whole number of seconds"))
            })
        };
        let created = seconds(CREATED)?;
        let deleted = seconds(DELETED)?;
        if deleted < created {
            return Err(row.error(
                DELETED,
                format!("{deleted} is before the pod's creation_time {created}"),
            ));
        }
        out.push(Lifetime { created, deleted });
        Ok(())
    })?;
    Ok(if present == Some(true) {
        Some(out)
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_when_present_and_absent_times_are_none() {
        let text = "name,cpu_milli,creation_time,deletion_time\np0,1,0,10\np1,1,5,5\n";
        let got = parse_lifetimes_csv("p.csv", text).unwrap().unwrap();
        assert_eq!(
            got[1],
            Lifetime {
                created: 5,
                deleted: 5
            }
        );
        assert_eq!(got[0].duration(), 10);
        let none = "name,cpu_milli\np0,1\n";
        assert_eq!(parse_lifetimes_csv("p.csv", none).unwrap(), None);
    }

    #[test]
    fn bad_times_name_line_and_column() {
        let cases = [
            ("p0,-3,10", "creation_time", "negative"),
            ("p0,,10", "creation_time", "empty"),
            ("p0,1.5,10", "creation_time", "whole number"),
            ("p0,20,10", "deletion_time", "before"),
        ];
        for (row, column, words) in cases {
            let text = format!("name,creation_time,deletion_time\np9,0,1\n{row}\n");
            let e = parse_lifetimes_csv("p.csv", &text).unwrap_err();
            assert_eq!(
                (e.line, e.column.as_deref()),
                (Some(3), Some(column)),
                "{row}"
            );
            assert!(e.problem.contains(words), "{row}: {e}");
        }
        let half = "name,creation_time\np0,1\n";
        let e = parse_lifetimes_csv("p.csv", half).unwrap_err();
        assert_eq!(e.column.as_deref(), Some("deletion_time"));
    }
}
