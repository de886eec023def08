//! `lorry --check-refs FILE`: a batch check. FILE is an
//! [`lc_api::BatchSpec`] (written by the minion from give-me-job's
//! batch); each lorry's upstream heads and tags are listed with `git
//! ls-remote`, at most `parallel` at once, each killed after
//! `ls_remote_timeout`, none started after `deadline`, and only their
//! [`lc_api::refs_digest`] is reported (`--result-file`, an
//! [`lc_api::BatchResult`]). Network only: no working directory, no
//! mirror, no downstream. URLs are checked as a mirror's are
//! (`upstream::check`, `GIT_ALLOW_PROTOCOL`); credentials in them reach
//! git through the environment (lc-git) and every printed line is
//! redacted.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lc_api::{BatchCheck, BatchResult, BatchSpec};
use lc_git::Git;

use crate::log::Log;
use crate::options::Options;
use crate::source::Source;
use crate::upstream;

/// The largest batch file read.
const SPEC_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Bounds on what a batch file may ask.
const PARALLEL_MAX: usize = 64;
const TIMEOUT_MAX: u64 = 600;

/// The longest error kept per lorry (the output and the result stay
/// bounded whatever git prints).
const ERROR_MAX: usize = 400;

/// Runs the batch check of `file`; answers lorry's exit code: 0 when the
/// result was written (whatever each listing found), 1 when the file
/// cannot be read or the result cannot be written.
pub fn run(options: &Options, file: &Path, git: Git, log: &mut Log<'_>) -> i32 {
    let spec = match read_spec(file) {
        Ok(spec) => spec,
        Err(e) => {
            log.error(&format!(
                "lorry: cannot read the batch {}: {e}",
                file.display()
            ));
            return 1;
        }
    };
    let allow_local = options.allow_local_upstreams;
    let mut git = git.env("GIT_ALLOW_PROTOCOL", upstream::git_protocols(allow_local));
    if !options.check_certificates_enabled() {
        git = git.config("http.sslVerify", "false");
    }
    let checks = check_all(&spec, &git, allow_local);
    let mut failed = 0;
    for check in &checks {
        match &check.error {
            Some(e) => {
                failed += 1;
                log.note(&format!("{}: cannot list: {e}", check.path));
            }
            None => log.info(&format!("{}: listed", check.path)),
        }
    }
    log.note(&format!(
        "lorry: batch of {}: {} listed, {failed} not",
        checks.len(),
        checks.len() - failed
    ));
    let result = BatchResult { version: 1, checks };
    let Some(out) = &options.result_file else {
        return 0;
    };
    let written = serde_json::to_vec(&result)
        .map_err(std::io::Error::other)
        .and_then(|text| {
            let tmp = out.with_extension("tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, out)
        });
    match written {
        Ok(()) => 0,
        Err(e) => {
            log.error(&format!(
                "lorry: cannot write the result file {}: {e}",
                out.display()
            ));
            1
        }
    }
}

fn read_spec(file: &Path) -> Result<BatchSpec, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(SPEC_MAX_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > SPEC_MAX_BYTES {
        return Err(format!("larger than {SPEC_MAX_BYTES} bytes"));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Lists every lorry of `spec`, `parallel` at a time; the checks in the
/// order of `spec.lorries`.
fn check_all(spec: &BatchSpec, git: &Git, allow_local: bool) -> Vec<BatchCheck> {
    let start = Instant::now();
    let timeout = Duration::from_secs(spec.ls_remote_timeout.clamp(1, TIMEOUT_MAX));
    // The last moment an ls-remote may start and still end by the deadline.
    let last_start = start + Duration::from_secs(spec.deadline).saturating_sub(timeout);
    let parallel = spec.parallel.clamp(1, PARALLEL_MAX).min(spec.lorries.len());
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<BatchCheck>>> = Mutex::new(vec![None; spec.lorries.len()]);
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(lorry) = spec.lorries.get(i) else {
                        break;
                    };
                    let outcome = if Instant::now() > last_start {
                        Err("not listed: the batch's deadline came first".to_owned())
                    } else {
                        list(git, &lorry.url, timeout, allow_local)
                    };
                    let check = match outcome {
                        Ok(digest) => BatchCheck {
                            path: lorry.path.clone(),
                            refs: Some(digest),
                            error: None,
                        },
                        Err(e) => BatchCheck {
                            path: lorry.path.clone(),
                            refs: None,
                            error: Some(bounded(&e)),
                        },
                    };
                    match done.lock() {
                        Ok(mut done) => done[i] = Some(check),
                        Err(poisoned) => poisoned.into_inner()[i] = Some(check),
                    }
                }
            });
        }
    });
    let done = match done.into_inner() {
        Ok(done) => done,
        Err(poisoned) => poisoned.into_inner(),
    };
    done.into_iter()
        .zip(&spec.lorries)
        .map(|(check, lorry)| {
            check.unwrap_or_else(|| BatchCheck {
                path: lorry.path.clone(),
                refs: None,
                error: Some("not listed".into()),
            })
        })
        .collect()
}

/// The digest of the heads and tags at `url`.
fn list(git: &Git, url: &str, timeout: Duration, allow_local: bool) -> Result<String, String> {
    let source = Source::Git {
        url: url.to_owned(),
        refspecs: None,
        include: None,
        exclude: None,
        prune_excluded: None,
    };
    upstream::check(&source, allow_local).map_err(|e| e.to_string())?;
    let refs = git
        .ls_remote_within(url, &["refs/heads/", "refs/tags/"], Some(timeout))
        .map_err(|e| e.to_string())?;
    Ok(lc_api::refs_digest(
        refs.iter().map(|r| (r.name.as_str(), r.oid.as_str())),
    ))
}

/// One line of at most [`ERROR_MAX`] bytes, redacted.
fn bounded(text: &str) -> String {
    let line: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let line = lc_base::redact::redact(&line).into_owned();
    if line.len() <= ERROR_MAX {
        return line;
    }
    let mut cut = ERROR_MAX;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &line[..cut])
}
