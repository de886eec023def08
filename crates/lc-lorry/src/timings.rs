//! Where a spec's run spends its time (`--timings`): the wall time of each
//! step and the git commands it started, printed as one `lorry: timings:`
//! line per spec, e.g.
//!
//! `lorry: timings: delta/x: init 0.3 ms (0 git), fetch 35.0 ms (1 git),
//! refs 3.1 ms (1 git), rewrite-check 0.0 ms (0 git), push 20.4 ms (1 git),
//! pins 0.0 ms (0 git), result 6.9 ms (2 git); total 76.6 ms (6 git)`
//!
//! Steps: `init` (the working area), `upstream` (listing the upstream's
//! refs, for specs with filters), `fetch` (or the
//! importer), `refs` (reading the mirror's refs), `rewrite-check` (listing
//! the downstream and judging non-fast-forward changes), `push` (LFS
//! objects, refs, and checking the push's report), `pins` (snapshot pins),
//! `result` (moving the mirror's refs, submodules, repack, bundle, tarball,
//! the state record). A step that did not run is not printed; the steps
//! are printed in that order, whatever order they ran in (the mirror's refs
//! move before the pins are made, and count for `result`).

use std::time::{Duration, Instant};

use lc_git::Trace;

/// The steps in the order they are printed.
const ORDER: [&str; 8] = [
    "init",
    "upstream",
    "fetch",
    "refs",
    "rewrite-check",
    "push",
    "pins",
    "result",
];

/// The steps of one spec's run so far.
#[derive(Debug, Clone)]
pub struct Timings {
    start: Instant,
    mark: Instant,
    /// The trace that counts git commands, when there is one.
    trace: Option<Trace>,
    start_count: usize,
    mark_count: usize,
    steps: Vec<(&'static str, Duration, usize)>,
}

impl Timings {
    pub fn start(trace: Option<&Trace>) -> Self {
        let now = Instant::now();
        let count = trace.map_or(0, Trace::len);
        Timings {
            start: now,
            mark: now,
            trace: trace.cloned(),
            start_count: count,
            mark_count: count,
            steps: Vec::new(),
        }
    }

    /// Ends step `name`: the time and git commands since the last step
    /// ended count for it (added up when a step is named twice).
    pub fn step(&mut self, name: &'static str) {
        let now = Instant::now();
        let count = self.trace.as_ref().map_or(0, Trace::len);
        let took = now - self.mark;
        let gits = count.saturating_sub(self.mark_count);
        match self.steps.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, d, g)) => {
                *d += took;
                *g += gits;
            }
            None => self.steps.push((name, took, gits)),
        }
        self.mark = now;
        self.mark_count = count;
    }

    /// The steps as `(name, time, git commands)`, in their order (see
    /// the module's documentation; unknown names last, in the order they
    /// first ended).
    pub fn steps(&self) -> Vec<(&'static str, Duration, usize)> {
        let mut steps = self.steps.clone();
        steps.sort_by_key(|(n, _, _)| ORDER.iter().position(|o| o == n).unwrap_or(ORDER.len()));
        steps
    }

    /// The `lorry: timings:` line of spec `name`.
    pub fn line(&self, name: &str) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let steps: Vec<String> = self
            .steps()
            .iter()
            .map(|(n, d, g)| format!("{n} {:.1} ms ({g} git)", ms(*d)))
            .collect();
        let total = self
            .trace
            .as_ref()
            .map_or(0, Trace::len)
            .saturating_sub(self.start_count);
        format!(
            "lorry: timings: {name}: {}; total {:.1} ms ({total} git)",
            steps.join(", "),
            ms(self.start.elapsed())
        )
    }
}

impl Default for Timings {
    fn default() -> Self {
        Timings::start(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_add_up_and_print_in_their_order() {
        let trace = Trace::new();
        let mut t = Timings::start(Some(&trace));
        t.step("fetch");
        t.step("upstream");
        t.step("result");
        t.step("pins");
        t.step("fetch");
        let names: Vec<&str> = t.steps().iter().map(|s| s.0).collect();
        assert_eq!(names, ["upstream", "fetch", "pins", "result"]);
        let line = t.line("a/b");
        assert!(line.starts_with("lorry: timings: a/b: upstream "), "{line}");
        assert!(line.contains("(0 git)"), "{line}");
        assert!(line.contains("; total "), "{line}");
    }
}
