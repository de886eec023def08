//! Job output comes from upstreams and converters: text that a hostile
//! upstream controls. Printed to an admin's terminal as it came, an escape
//! sequence could retitle the window, rewrite earlier lines, or on some
//! terminals answer back as if typed. [`printable`] keeps only what prints.

/// `text` without terminal control: escape sequences (CSI, OSC, DCS, ...)
/// and C0/C1 control characters are dropped, newlines and tabs kept; a
/// carriage return not followed by a newline becomes a newline, so progress
/// lines stay readable and cannot hide the line before them.
pub fn printable(text: &str) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_owned();
    }
    let mut keep = Keep {
        out: String::with_capacity(text.len()),
        carriage_return: false,
    };
    let mut parser = vte::Parser::new();
    parser.advance(&mut keep, text.as_bytes());
    keep.end_of_line();
    keep.out
}

struct Keep {
    out: String,
    carriage_return: bool,
}

impl Keep {
    /// A carriage return seen last that no newline followed becomes one.
    fn end_of_line(&mut self) {
        if std::mem::take(&mut self.carriage_return) {
            self.out.push('\n');
        }
    }
}

impl vte::Perform for Keep {
    fn print(&mut self, c: char) {
        self.end_of_line();
        // vte passes C1 controls written as UTF-8 (U+0080..U+009F) on as text.
        if !c.is_control() {
            self.out.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => {
                self.carriage_return = false;
                self.out.push('\n');
            }
            b'\r' => {
                self.end_of_line();
                self.carriage_return = true;
            }
            b'\t' => {
                self.end_of_line();
                self.out.push('\t');
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn plain_text_newlines_and_tabs_are_kept() {
        assert_eq!(printable("a\tb\nc\n"), "a\tb\nc\n");
        assert_eq!(printable("dos\r\nline\r\n"), "dos\nline\n");
        assert_eq!(printable("ünïcode ✓\n"), "ünïcode ✓\n");
    }

    #[test]
    fn escape_sequences_and_controls_are_dropped() {
        for (text, want) in [
            ("\x1b[31mred\x1b[0m\n", "red\n"),
            ("\x1b]0;pwned title\x07after", "after"),
            ("\x1b]8;;https://evil/\x1b\\link\x1b]8;;\x1b\\", "link"),
            ("x\x1b[2J\x1b[Hy", "xy"),
            ("bell\x07 back\x08space", "bell backspace"),
            ("c1 \u{9b}31mcsi", "c1 31mcsi"),
            ("dcs \x1bP1$r\x1b\\done", "dcs done"),
            ("\x1b[6n", ""),
        ] {
            assert_eq!(printable(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_carriage_return_cannot_hide_a_line() {
        assert_eq!(
            printable("secret line\rfake line"),
            "secret line\nfake line"
        );
        assert_eq!(printable("10%\r20%\r"), "10%\n20%\n");
    }
}
