//! `--check-config DIR`: a CONFGIT checked as a CI gate would.

use std::path::Path;

use lc_api::ConfigProblem;

use super::conf::ConfError;
use super::load::load_config;

/// The result of `--check-config DIR`: what a CONFGIT holds and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub lorries: usize,
    pub hosts: usize,
    pub files_read: usize,
    /// The conf file's error, if it was refused; nothing else is read then.
    pub conf_error: Option<ConfError>,
    pub problems: Vec<ConfigProblem>,
}

impl CheckReport {
    /// Whether the CONFGIT is free of problems (the exit status of a CI gate).
    pub fn is_clean(&self) -> bool {
        self.conf_error.is_none() && self.problems.is_empty()
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.conf_error {
            return writeln!(f, "error: {e}");
        }
        for p in &self.problems {
            match &p.item {
                Some(item) => writeln!(f, "problem: {}: {item}: {}", p.file, p.problem)?,
                None => writeln!(f, "problem: {}: {}", p.file, p.problem)?,
            }
        }
        writeln!(
            f,
            "{} lorries from {} files, {} upstream hosts, {} problems",
            self.lorries,
            self.files_read,
            self.hosts,
            self.problems.len()
        )
    }
}

/// Checks the CONFGIT checked out at `dir` without touching any STATEDB.
pub fn check_config(dir: &Path) -> CheckReport {
    match load_config(dir) {
        Ok(c) => CheckReport {
            lorries: c.lorries.len(),
            hosts: c.hosts.len(),
            files_read: c.files_read,
            conf_error: None,
            problems: c.problems,
        },
        Err(e) => CheckReport {
            lorries: 0,
            hosts: 0,
            files_read: 0,
            conf_error: Some(e),
            problems: Vec::new(),
        },
    }
}
