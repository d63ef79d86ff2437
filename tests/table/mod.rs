//! The bad-input tables' report: every row that differs, at once.

/// Fails with each mismatch in `failures` (one block per row) when there is any.
pub fn assert_rows(failures: &[String], rows: usize) {
    assert!(
        failures.is_empty(),
        "{} of {} rows differ:\n\n{}",
        failures.len(),
        rows,
        failures.join("\n\n")
    );
}
