//! The mirror tool `lorry`: takes upstream source (git, Subversion,
//! Mercurial, Bazaar, CVS, archives, plain files) named by `.lorry` files,
//! keeps it as a bare git mirror in a working area, and pushes it to
//! `<mirror-base-url-push>/<name>.git`.
//!
//! The binary is a thin wrapper around [`main`]; tests call [`run`] with their
//! own output buffers and a traced [`lc_git::Git`].
//!
//! The working area holds one directory per spec, its name with `%` and `/`
//! percent-encoded ([`workdir`]; directories of the old `/` → `_` naming
//! are moved on first use):
//! `git/` (the bare mirror; refs under `refs/lorry/` are lorry's own:
//! `staging/` for fetched refs, `preserved/` for old tips, `post-fail/` for
//! what failed runs fetched), `lorry-state.json` (what the last successful
//! run saw and pushed; delete it to force a full run), `lock`, `lorry-name`
//! (the spec's name), and the
//! importers' files (`archives/`, `raw-files/`, `bzr/`, `cvs-git/`, `home/`).
//!
//! Invariants: only `lc-git` spawns git; every printed line passes through
//! [`log::Log`], which redacts credentials; one failed spec never stops the
//! others, and the exit code is 0 only when every spec was mirrored.

pub mod check;
pub mod import;
pub mod lfs;
pub mod log;
pub mod mirror;
pub mod options;
pub mod pins;
pub mod refspec;
pub mod source;
pub mod specs;
pub mod state;
pub mod submodules;
pub mod summary;
pub mod timings;
pub mod upstream;
pub mod workdir;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use lc_git::Git;

use crate::log::Log;
use crate::options::Options;
use crate::source::Spec;

/// What one run of `lorry` shares between its specs.
pub struct Context<'a> {
    pub options: &'a Options,
    pub git: Git,
    pub log: Log<'a>,
    pub working_area: PathBuf,
    /// What the current spec's run has done so far.
    pub tally: summary::Tally,
    /// Where the current spec's run has spent its time (`--timings`).
    pub timings: timings::Timings,
}

/// One spec's run: what its steps (import, publish, push) share beside the
/// [`Context`].
#[derive(Clone, Copy)]
pub struct SpecRun<'a> {
    /// `Context::git` with this spec's settings (TLS verification).
    pub git: &'a Git,
    pub spec: &'a Spec,
    /// The spec's directory in the working area.
    pub dir: &'a Path,
    /// The bare mirror, `<dir>/git`.
    pub repo: &'a Path,
    pub check_certificates: bool,
    /// Git LFS objects are mirrored (the spec's `lfs`, or `--lfs-default`);
    /// for a raw-file spec, its files are stored in LFS.
    pub lfs: bool,
}

/// Runs `lorry` with the process's arguments and standard streams; returns
/// the exit code.
pub fn main() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    if std::env::var_os(lc_git::proxy::CHILD_ENV).is_some() {
        // Started by git as the proxy of a `git://` connection.
        return lc_git::proxy::run(args.get(1..).unwrap_or_default());
    }
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    run(
        args,
        lorry_git(std::env::current_exe().ok()),
        &mut stdout,
        &mut stderr,
    )
}

/// The git environment of a lorry run: `git://` listings and fetches go
/// through `exe` (lorry's own program) as `core.gitProxy`, which turns Nagle's
/// algorithm off (see [`lc_git::proxy`]: 40 ms saved per exchange). A
/// program replaced on disk since it started (an upgrade) is named by its
/// path, which holds the new one; without a program file, git connects
/// itself.
fn lorry_git(exe: Option<std::path::PathBuf>) -> Git {
    let exe = exe.map(
        |exe| match exe.to_str().and_then(|e| e.strip_suffix(" (deleted)")) {
            Some(path) => std::path::PathBuf::from(path),
            None => exe,
        },
    );
    match exe.filter(|exe| exe.is_file()) {
        Some(exe) => Git::new().git_proxy(exe.to_string_lossy()),
        None => Git::new(),
    }
}

/// Runs `lorry` with `args` (program name first), running git through
/// `git`. Returns 0 when every spec of every file was mirrored, 1 when any
/// failed (one line on `err` per failure), 2 for unusable options.
pub fn run(args: Vec<OsString>, git: Git, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(options::OptionsError::Help(text)) => {
            let _ = write!(out, "{text}");
            return 0;
        }
        Err(options::OptionsError::Usage(text)) => {
            let _ = write!(err, "{}", lc_base::redact::redact(&text));
            return 2;
        }
        Err(e) => {
            let _ = writeln!(err, "lorry: {}", lc_base::redact::redact(&e.to_string()));
            return 2;
        }
    };
    let mut log = Log::new(out, err, options.verbose);
    if options.check_refs {
        let [file] = options.files.as_slice() else {
            log.error("lorry: --check-refs takes one batch file");
            return 2;
        };
        return check::run(&options, file, git, &mut log);
    }
    let Some(working_area) = options.working_area.clone() else {
        log.error("lorry: --working-area is required");
        return 2;
    };
    if !options.pull_only && options.mirror_base_url_push.is_none() {
        log.error("lorry: --mirror-base-url-push is required unless --pull-only is given");
        return 2;
    }
    // --timings counts the git commands each step starts.
    let git = match git.trace() {
        None if options.timings => git.traced(lc_git::Trace::new()),
        _ => git,
    };
    let mut ctx = Context {
        options: &options,
        git,
        log,
        working_area,
        tally: summary::Tally::default(),
        timings: timings::Timings::default(),
    };
    let mut result = lc_api::JobResult::default();
    let mut failed = 0usize;
    let mut mirrored = 0usize;
    for file in &options.files {
        let specs = match specs::load(file) {
            Ok(specs) => specs,
            Err(e) => {
                ctx.log.error(&format!(
                    "Error in {}: {}",
                    file.display(),
                    one_line(&e.to_string())
                ));
                failed += 1;
                continue;
            }
        };
        for spec in specs {
            match spec {
                Ok(spec) => {
                    ctx.timings = timings::Timings::start(ctx.git.trace());
                    let outcome = mirror::mirror(&mut ctx, &spec);
                    let error = outcome
                        .as_ref()
                        .err()
                        .map(|e| lc_base::redact::redact(&one_line(&e.to_string())).into_owned());
                    let repo = mirror::spec_dir(&ctx.working_area, &spec.name).join("git");
                    let tally = std::mem::take(&mut ctx.tally);
                    result.specs.push(tally.finish(
                        &spec.name,
                        spec.source.type_name(),
                        &repo,
                        error.clone(),
                    ));
                    if options.timings {
                        ctx.timings.step("result");
                        let line = ctx.timings.line(&spec.name);
                        ctx.log.note(&line);
                    }
                    match error {
                        None => mirrored += 1,
                        Some(e) => {
                            ctx.log
                                .error(&format!("Error mirroring {}: {e}", spec.name));
                            failed += 1;
                        }
                    }
                }
                Err((name, e)) => {
                    let error = format!("invalid spec in {}: {}", file.display(), one_line(&e));
                    ctx.log.error(&format!("Error mirroring {name}: {error}"));
                    result.specs.push(summary::Tally::default().finish(
                        &name,
                        "unknown",
                        std::path::Path::new(""),
                        Some(lc_base::redact::redact(&error).into_owned()),
                    ));
                    failed += 1;
                }
            }
        }
    }
    ctx.log
        .info(&format!("{mirrored} mirrored, {failed} failed"));
    // The output ends with one summary line per spec.
    for spec in &result.specs {
        ctx.log.note(&spec.summary_line());
    }
    if let Some(file) = &options.result_file
        && let Err(e) = summary::write_result(file, &result)
    {
        ctx.log.error(&format!(
            "lorry: cannot write the result file {}: {e}",
            file.display()
        ));
        return 1;
    }
    if failed == 0 { 0 } else { 1 }
}

/// A message on one line: its lines trimmed and joined by "; ".
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod git_proxy_tests {
    use super::lorry_git;
    use std::path::PathBuf;

    #[test]
    fn lorry_is_the_git_proxy_when_its_program_is_there() {
        let exe = std::env::current_exe().expect("exe");
        let program = exe.to_string_lossy().into_owned();
        assert_eq!(
            lorry_git(Some(exe.clone())).proxy_program(),
            Some(program.as_str())
        );
        // Replaced on disk since it started: the path holds the new one.
        let mut deleted = exe.into_os_string();
        deleted.push(" (deleted)");
        assert_eq!(
            lorry_git(Some(PathBuf::from(deleted))).proxy_program(),
            Some(program.as_str())
        );
        assert_eq!(
            lorry_git(Some(PathBuf::from("/nonexistent/lorry"))).proxy_program(),
            None
        );
        assert_eq!(lorry_git(None).proxy_program(), None);
    }
}
