//! The CLI's aligned text tables (`allot simulate`, `allot plan`): comfy-table with a plain
//! style (two spaces between columns, a rule under the header, no borders, no terminal
//! styling).

use comfy_table::{CellAlignment, ContentLineStyle, LineStyle, Table, TableStyle};

/// Columns separated by two spaces and a dashed rule under the header.
const PLAIN: TableStyle = TableStyle::new()
    .header_lines(ContentLineStyle::none().junction(' '))
    .content_lines(ContentLineStyle::none().junction(' '))
    .header_separator(LineStyle::none().fill('-').junction(' '));

/// `header` over `rows`; columns from `right_from` on are right-aligned (numbers).
pub fn render<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>], right_from: usize) -> String {
    let mut table = Table::new();
    table.load_style(PLAIN);
    table.set_header(header.iter().copied());
    for row in rows {
        table.add_row(row.iter().map(AsRef::as_ref));
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((u16::from(i > 0), 0));
        if i >= right_from {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out: String = table
        .lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect();
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_sit_right() {
        let rows = vec![vec!["fgd", "4.72"], vec!["random-long", "10.5"]];
        let text = render(&["policy", "unalloc %"], &rows, 1);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "policy       unalloc %");
        assert_eq!(lines[1], "----------- ----------");
        assert_eq!(lines[2], "fgd               4.72");
        assert_eq!(lines[3], "random-long       10.5");
    }
}
