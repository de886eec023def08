//! Everything `lorry` prints goes through [`Log`], which redacts every line:
//! a credential in a URL never reaches stdout or stderr.

use std::io::Write;

use lc_base::redact::redact;

pub struct Log<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    verbose: bool,
}

impl<'a> Log<'a> {
    pub fn new(out: &'a mut dyn Write, err: &'a mut dyn Write, verbose: bool) -> Self {
        Self { out, err, verbose }
    }

    /// Progress, on stdout with `--verbose` only.
    pub fn info(&mut self, message: &str) {
        if self.verbose {
            write_lines(self.out, message);
        }
    }

    /// Something the job output must say (a preserved ref, a skipped run).
    pub fn note(&mut self, message: &str) {
        write_lines(self.out, message);
    }

    /// An error, on stderr.
    pub fn error(&mut self, message: &str) {
        write_lines(self.err, message);
    }
}

fn write_lines(to: &mut dyn Write, message: &str) {
    for line in message.lines() {
        // Nothing sensible can be done when stdout or stderr is gone.
        let _ = writeln!(to, "{}", redact(line));
    }
    let _ = to.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_redacted_and_info_needs_verbose() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        {
            let mut log = Log::new(&mut out, &mut err, false);
            log.info("quiet https://u:p@h/x");
            log.note("a https://u:p@h/x\nb http://t@h");
            log.error("c https://u:p@h/x");
        }
        let out = String::from_utf8(out).expect("utf8");
        let err = String::from_utf8(err).expect("utf8");
        assert_eq!(out, "a https://***@h/x\nb http://***@h\n");
        assert_eq!(err, "c https://***@h/x\n");
    }
}
