//! Aligned plain-text tables for human output.
//!
//! Small enough to keep here rather than pull in a table crate: columns are
//! separated by two spaces, the last column is not padded (no trailing
//! blanks), and control characters in cells are shown escaped so that a
//! strange path cannot break the layout or drive the terminal.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, every column left-aligned.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// A table without a header row (key/value lists).
    pub fn headless(columns: usize) -> Table {
        Table {
            headers: Vec::new(),
            align: vec![Align::Left; columns],
            rows: Vec::new(),
        }
    }

    /// Right-aligns column `column` (numbers).
    pub fn right(mut self, column: usize) -> Table {
        if let Some(a) = self.align.get_mut(column) {
            *a = Align::Right;
        }
        self
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let mut row: Vec<String> = cells
            .iter()
            .take(self.align.len())
            .map(|c| clean(c.as_ref()))
            .collect();
        row.resize(self.align.len(), String::new());
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.align.len();
        let mut widths = vec![0; columns];
        let lines = std::iter::once(&self.headers)
            .filter(|h| !h.is_empty())
            .chain(&self.rows);
        for row in lines.clone() {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in lines {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let last = i + 1 == columns;
                if i > 0 {
                    line.push_str("  ");
                }
                match self.align[i] {
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                    Align::Left => {
                        line.push_str(cell);
                        if !last {
                            line.extend(std::iter::repeat_n(' ', pad));
                        }
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `text` with control characters escaped (`\n`, `\u{1b}`).
pub fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_without_trailing_blanks() {
        let mut t = Table::new(&["JOB", "PATH", "EXIT"]).right(0);
        t.row(&["1", "upstream/a", "0"]);
        t.row(&["12", "b", ""]);
        assert_eq!(
            t.render(),
            "JOB  PATH        EXIT\n  1  upstream/a  0\n 12  b\n"
        );
    }

    #[test]
    fn headless_tables_and_ragged_rows() {
        let mut t = Table::headless(2);
        t.row(&["path:"]);
        t.row(&["interval:", "1 h", "dropped"]);
        assert_eq!(t.render(), "path:\ninterval:  1 h\n");
    }

    #[test]
    fn control_characters_cannot_break_the_layout() {
        let mut t = Table::new(&["PATH", "X"]);
        t.row(&["a\nb\u{1b}[31m", "y"]);
        let out = t.render();
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.contains("a\\nb\\u{1b}[31m"), "{out}");
        assert_eq!(clean("plain ünïcode"), "plain ünïcode");
    }
}
