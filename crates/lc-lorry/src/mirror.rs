//! Mirroring one spec: bring the upstream into the bare mirror in the working
//! area, decide what each changed ref may do (`on-rewrite`), push exactly
//! those refs downstream, verify, and only then move the mirror's own refs.
//!
//! Invariants:
//! * the mirror's refs under the spec's namespaces are the last good copy:
//!   they move only after the whole run (push and verification included) has
//!   succeeded; fetched refs wait in `refs/lorry/staging/`;
//! * a downstream ref is never moved to something that does not contain it,
//!   nor deleted, without its old tip being pushed first (in the same atomic
//!   push) to `refs/lorry/preserved/<UTC timestamp>/<ref>`, unless the spec
//!   says `on-rewrite: follow`;
//! * an unchanged upstream costs one connection to it (a fetch that brings
//!   nothing, or for specs with filters an `ls-remote`) and no connection
//!   to the downstream.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use lc_git::{Git, GitError, Lease, RefUpdate};

use crate::import;
use crate::lfs;
use crate::options::When;
use crate::refspec::{self, PRESERVED, RefspecError, Refspecs};
use crate::source::{OnRewrite, Source, Spec};
use crate::state::{self, State, StateError};
use crate::upstream::{self, UpstreamError};
use crate::{Context, SpecRun};

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("{0}")]
    Refspec(#[from] RefspecError),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Import(#[from] import::ImportError),
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another lorry is mirroring this spec (lock {0} is held)")]
    Busy(PathBuf),
    #[error("--mirror-base-url-push is required unless --pull-only is given")]
    NoPushUrl,
    #[error("downstream verification failed: {0}")]
    Verify(String),
    #[error("on-rewrite is refuse and upstream rewrote or deleted {0}; left as it was")]
    Refused(String),
    /// A push against the last run's record failed: the downstream is not
    /// as that run left it (never leaves [`publish`]).
    #[error("{0}")]
    Stale(GitError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MirrorError {
    let path = path.to_owned();
    move |source| MirrorError::Io {
        action,
        path,
        source,
    }
}

/// The directory of spec `name` in the working area (see [`crate::workdir`]).
pub fn spec_dir(working_area: &Path, name: &str) -> PathBuf {
    working_area.join(lc_base::spec::working_dir_name(name))
}

/// Makes `dir` readable by this user only (creating it if missing): a spec's directory
/// holds what came from its upstream with credentials (svn and cvs
/// checkouts, archives).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// `<base>/<name>.git`.
pub fn push_url(base: &str, name: &str) -> String {
    format!("{}/{}.git", base.trim_end_matches('/'), name)
}

/// Mirrors one spec.
pub fn mirror(ctx: &mut Context<'_>, spec: &Spec) -> Result<(), MirrorError> {
    let push_key = match &ctx.options.mirror_base_url_push {
        Some(base) if !ctx.options.pull_only => Some(state::push_key(&push_url(base, &spec.name))),
        _ => None,
    };
    let (dir, moves) = crate::workdir::open(&ctx.working_area, &spec.name, push_key.as_deref())?;
    for note in moves.notes {
        ctx.log.note(&format!("{}: {note}", spec.name));
    }
    private_dir(&dir).map_err(io("create", &dir))?;
    ctx.tally = crate::summary::Tally::start(&dir.join("git"));
    let lock_path = dir.join("lock");
    let lock = File::create(&lock_path).map_err(io("create", &lock_path))?;
    // A process forked elsewhere in this program may hold a copy of a
    // just-closed lock until it execs, so a held lock is retried briefly
    // before it counts as another lorry at work.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while lock.try_lock().is_err() {
        if std::time::Instant::now() >= deadline {
            return Err(MirrorError::Busy(lock_path));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let result = mirror_locked(ctx, spec, &dir, &stamp);
    if result.is_err() {
        // A failed run must never let the next one take the no-op path.
        State::clear(&dir)?;
        keep_failed_run(ctx, spec, &dir.join("git"), &stamp);
    }
    drop(lock);
    result
}

/// Keeps what a failed git run fetched (its staging refs) under
/// `refs/lorry/post-fail/latest/`, or under `refs/lorry/post-fail/<UTC
/// timestamp>/` for every failure with `--keep-multiple-backups`: the
/// mirror's own refs are never touched by a failed run, so this is what
/// the original's post-failure copies become here. Best effort.
fn keep_failed_run(ctx: &mut Context<'_>, spec: &Spec, repo: &Path, stamp: &str) {
    if !repo.join("HEAD").is_file() {
        return;
    }
    let Ok(staged) = ctx.git.for_each_ref(repo, &[refspec::STAGING]) else {
        return;
    };
    if staged.is_empty() {
        return;
    }
    let base = if ctx.options.keep_multiple_backups {
        format!("{POST_FAIL}{stamp}/")
    } else {
        format!("{POST_FAIL}latest/")
    };
    let mut updates = Vec::new();
    let mut names = BTreeSet::new();
    for (name, oid) in staged {
        let rest = name.strip_prefix(refspec::STAGING).unwrap_or(&name);
        let kept = format!("{base}{rest}");
        names.insert(kept.clone());
        updates.push(RefUpdate::Set { name: kept, oid });
    }
    if let Ok(existing) = ctx.git.for_each_ref(repo, &[&base]) {
        for name in existing.into_keys().filter(|n| !names.contains(n)) {
            updates.push(RefUpdate::Delete { name });
        }
    }
    if ctx.git.update_refs(repo, &updates).is_ok() {
        ctx.log.note(&format!(
            "{}: the failed run's fetched refs are kept under {base}",
            spec.name
        ));
    }
}

/// Where failed runs' fetched refs are kept.
pub const POST_FAIL: &str = "refs/lorry/post-fail/";

fn mirror_locked(
    ctx: &mut Context<'_>,
    spec: &Spec,
    dir: &Path,
    stamp: &str,
) -> Result<(), MirrorError> {
    let repo = dir.join("git");
    let check_certificates = spec
        .check_certificates
        .unwrap_or(ctx.options.check_certificates_enabled());
    let allow_local = ctx.options.allow_local_upstreams;
    upstream::check(&spec.source, allow_local)?;
    let mut git = ctx.git.clone();
    if !check_certificates {
        git = git.config("http.sslVerify", "false");
    }
    // A new mirror holds no refs but what this run's fetch writes.
    let created = git.init_mirror(&repo)?;
    ctx.timings.step("init");
    // Raw files go to LFS only when their spec asks: `--lfs-default`
    // is about mirroring an upstream's LFS objects.
    let lfs = match spec.source {
        Source::Git { .. } => spec.lfs.unwrap_or(ctx.options.lfs_default),
        Source::RawFile { .. } => spec.lfs == Some(true),
        _ => false,
    };
    let run = SpecRun {
        git: &git,
        spec,
        dir,
        repo: &repo,
        check_certificates,
        lfs,
    };
    // What reaches the upstream; `git` itself also serves the downstream,
    // which may be file://.
    let from_upstream = git
        .clone()
        .env("GIT_ALLOW_PROTOCOL", upstream::git_protocols(allow_local));
    // A new mirror keeps what it fetches as the pack it came in, as `git
    // clone` does, rather than as loose objects (git's default below 100
    // objects), which the first push would then have to pack again.
    let from_upstream = if created {
        from_upstream.config("fetch.unpackLimit", "1")
    } else {
        from_upstream
    };

    let push_url = if ctx.options.pull_only {
        None
    } else {
        let base = ctx
            .options
            .mirror_base_url_push
            .as_deref()
            .ok_or(MirrorError::NoPushUrl)?;
        Some(push_url(base, &spec.name))
    };
    let push_key = push_url.as_deref().map(state::push_key);
    let previous = State::load(dir);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Whether the downstream is due a listing: the record's refs stand for
    // it only for `--downstream-check-every` after it was last listed
    // (a clock that went back counts as due).
    let check_due = push_key.is_some()
        && previous
            .as_ref()
            .and_then(|p| p.downstream_listed)
            .is_none_or(|t| t > now || now - t >= ctx.options.downstream_check_every);

    ctx.log.info(&format!(
        "{}: mirroring {} upstream into {}",
        spec.name,
        spec.source.type_name(),
        repo.display()
    ));

    let (refspecs, upstream, new, old, known) = match &spec.source {
        Source::Git {
            url,
            refspecs,
            include,
            exclude,
            prune_excluded,
        } => {
            let refspecs = Refspecs::with_filters(
                refspecs.as_deref(),
                &refspec::Filters {
                    include: include.as_deref(),
                    exclude: exclude.as_deref(),
                    prune_excluded: prune_excluded.unwrap_or(false),
                },
            )?;
            // The record of the last run, when it speaks of this push URL,
            // these refspecs and this LFS setting.
            let usable = previous.as_ref().filter(|p| {
                p.pushed_to == push_key && p.refspecs == refspecs.describe() && p.lfs == lfs
            });
            // Specs with filters list the upstream first (what they fetch
            // depends on it); the others fetch by pattern at once, and the
            // fetch's report (every ref, up to date or not) is the listing,
            // over the same connection.
            let listed = if refspecs.fetch_exact() || refspecs.has_filters() {
                let listed = from_upstream.ls_remote(url, &refspecs.src_prefixes())?;
                let selected =
                    refspecs.select(listed.iter().map(|r| (r.name.as_str(), r.oid.as_str())));
                ctx.timings.step("upstream");
                Some(selected)
            } else {
                None
            };
            if let (Some(previous), Some(selected)) = (usable, &listed)
                && !check_due
                && selected.len() == previous.upstream.len()
                && selected
                    .iter()
                    .all(|(_, dst, oid)| previous.upstream.get(dst) == Some(oid))
            {
                return unchanged(ctx, &run, url, previous, push_url.as_deref());
            }
            ctx.log.info(&format!("{}: fetching from {url}", spec.name));
            let fetched = match &listed {
                Some(selected) => {
                    let fetch: Vec<String> = if refspecs.fetch_exact() {
                        selected
                            .iter()
                            .map(|(src, dst, _)| format!("+{src}:{}", refspec::staging_name(dst)))
                            .collect()
                    } else {
                        refspecs.staging_fetch()
                    };
                    if fetch.is_empty() {
                        Vec::new()
                    } else {
                        from_upstream.fetch(&repo, url, &fetch)?
                    }
                }
                None => {
                    let fetched =
                        from_upstream.fetch_listing(&repo, url, &refspecs.staging_fetch())?;
                    let listing: BTreeMap<String, &str> = fetched
                        .iter()
                        .filter(|f| {
                            !matches!(
                                f.status,
                                lc_git::FetchStatus::Pruned | lc_git::FetchStatus::Rejected
                            )
                        })
                        .filter_map(|f| refspec::from_staging(&f.local).map(|n| (n, f)))
                        .filter(|(n, _)| refspecs.selects(n))
                        .map(|(n, f)| (n, f.new.as_str()))
                        .collect();
                    if let Some(previous) = usable
                        && !check_due
                        && fetched
                            .iter()
                            .all(|f| f.status == lc_git::FetchStatus::UpToDate)
                        && listing.len() == previous.upstream.len()
                        && listing.iter().all(|(n, oid)| {
                            previous.upstream.get(n).map(String::as_str) == Some(*oid)
                        })
                    {
                        ctx.timings.step("fetch");
                        return unchanged(ctx, &run, url, previous, push_url.as_deref());
                    }
                    fetched
                }
            };
            ctx.log.info(&format!(
                "{}: fetched, {} refs changed in staging",
                spec.name,
                fetched
                    .iter()
                    .filter(|f| f.status != lc_git::FetchStatus::UpToDate)
                    .count()
            ));
            ctx.timings.step("fetch");
            // Every ref of the mirror, read once: staging, preserved tips and
            // the mirror's own; in a mirror made by this run, what its fetch
            // wrote (atomically: all of it or nothing).
            let all = if created {
                fetched
                    .iter()
                    .filter(|f| {
                        !matches!(
                            f.status,
                            lc_git::FetchStatus::Pruned | lc_git::FetchStatus::Rejected
                        )
                    })
                    .map(|f| (f.local.clone(), f.new.clone()))
                    .collect()
            } else {
                git.for_each_ref(&repo, &[])?
            };
            let old = covered(&all, &refspecs);
            // What was listed and fetched: a staging ref left by an earlier
            // run, or one that appeared upstream between listing and
            // fetching, waits for a run that lists it. Without a listing,
            // the fetch (which prunes staging) is the listing.
            let staged = all
                .iter()
                .filter_map(|(name, oid)| refspec::from_staging(name).map(|n| (n, oid.clone())));
            let (upstream, new): (BTreeMap<String, String>, BTreeMap<String, String>) =
                match &listed {
                    Some(selected) => {
                        let upstream: BTreeMap<String, String> = selected
                            .iter()
                            .map(|(_, dst, oid)| (dst.clone(), oid.clone()))
                            .collect();
                        let new = staged
                            .filter(|(name, _)| upstream.contains_key(name))
                            .collect();
                        (upstream, new)
                    }
                    None => {
                        let new: BTreeMap<String, String> =
                            staged.filter(|(name, _)| refspecs.selects(name)).collect();
                        (new.clone(), new)
                    }
                };
            ctx.timings.step("refs");
            if lfs {
                fetch_lfs(ctx, &run, &from_upstream, url, &new)?;
                ctx.timings.step("fetch");
            }
            let lean = usable
                .filter(|p| p.refs == old && !check_due)
                .and_then(|_| fast_forwards_only(&old, &new, &fetched));
            // A first run (no record, a mirror that holds none of these
            // refs, something to push) expects the downstream to lack every
            // ref it pushes: the push's leases say "absent", and a
            // downstream that holds any of them elsewhere fails it and is
            // listed after all.
            let first = lean.is_none()
                && previous.is_none()
                && old.is_empty()
                && !new.is_empty()
                && ctx.options.downstream_check_every > 0
                && new.len() <= ABSENT_LEASES_MAX;
            let known = Known {
                taken: all
                    .range(PRESERVED.to_owned()..)
                    .take_while(|(name, _)| name.starts_with(PRESERVED))
                    .map(|(name, _)| name.clone())
                    .collect(),
                downstream: lean.or_else(|| first.then(BTreeMap::new)),
                first,
            };
            (refspecs, upstream, new, old, known)
        }
        _ => {
            let refspecs = Refspecs::heads_and_tags();
            let old = covered_refs(&git, &repo, &refspecs)?;
            ctx.timings.step("refs");
            // The importers reach the upstream: with the allow-list.
            import::import(
                ctx,
                &SpecRun {
                    git: &from_upstream,
                    ..run
                },
            )?;
            ctx.timings.step("fetch");
            let all = git.for_each_ref(&repo, &[])?;
            let new = covered(&all, &refspecs);
            ctx.timings.step("refs");
            if let Some(previous) = &previous
                && previous.refs == new
                && !check_due
                && previous.pushed_to == push_key
                && previous.lfs == lfs
            {
                ctx.log.note(&format!(
                    "{}: nothing new upstream; nothing pushed",
                    spec.name
                ));
                if push_key.is_some() {
                    ctx.tally.pushed = lc_api::Pushed::Unchanged;
                }
                report_held(ctx, dir, previous)?;
                pin_snapshots(ctx, &run, push_url.as_deref());
                ctx.timings.step("pins");
                after_update(ctx, &git, spec, &repo, false)?;
                return Ok(());
            }
            let known = Known {
                taken: all
                    .into_keys()
                    .filter(|name| name.starts_with(PRESERVED))
                    .collect(),
                downstream: None,
                first: false,
            };
            (refspecs, BTreeMap::new(), new, old, known)
        }
    };

    let (refused, final_refs, listed) = publish(
        ctx,
        &run,
        &refspecs,
        push_url.as_deref(),
        &new,
        &old,
        known,
        stamp,
    )?;
    pin_snapshots(ctx, &run, push_url.as_deref());
    ctx.timings.step("pins");

    after_update(ctx, &git, spec, &repo, true)?;

    if !refused.is_empty() {
        return Err(MirrorError::Refused(refused.join(", ")));
    }
    let submodules = match &spec.source {
        Source::Git { url, .. } => report_submodules(ctx, &run, url, &final_refs, None),
        _ => None,
    };
    // The ledger gets every ref whenever one moved, and once for a mirror
    // whose refs it never had whole.
    let report = !ctx.tally.refs.is_empty()
        || previous
            .as_ref()
            .is_none_or(|p| !p.held_reported || p.refs != final_refs);
    if report {
        ctx.tally.held = Some(final_refs.clone());
    }
    State {
        upstream,
        pushed_to: push_key,
        refs: final_refs,
        refspecs: refspecs.describe().to_owned(),
        lfs,
        held_reported: true,
        submodules,
        downstream_listed: if listed {
            Some(now)
        } else {
            previous.as_ref().and_then(|p| p.downstream_listed)
        },
    }
    .save(dir)?;
    ctx.log.info(&format!("{}: done", spec.name));
    Ok(())
}

/// A git spec whose upstream has not changed since the last successful run
/// (`previous`): nothing is pushed and the downstream is not contacted; the
/// record's refs and submodules are reported, pins still made.
fn unchanged(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    url: &str,
    previous: &State,
    push_url: Option<&str>,
) -> Result<(), MirrorError> {
    let spec = run.spec;
    ctx.log.note(&format!(
        "{}: upstream unchanged since the last run ({} refs); nothing fetched or pushed",
        spec.name,
        previous.upstream.len()
    ));
    let mut record = previous.clone();
    let known = record.submodules.take();
    record.submodules = report_submodules(ctx, run, url, &previous.refs, known.as_ref());
    if push_url.is_some() {
        ctx.tally.pushed = lc_api::Pushed::Unchanged;
    }
    if record.held_reported && record.submodules != previous.submodules {
        // A record from before submodules were kept in it.
        record.save(run.dir)?;
    }
    report_held(ctx, run.dir, &record)?;
    ctx.timings.step("result");
    pin_snapshots(ctx, run, push_url);
    ctx.timings.step("pins");
    after_update(ctx, run.git, spec, run.repo, false)
}

/// Names the submodule URLs of the mirrored branches' `.gitmodules`, one
/// line, for the admin to add lorries for them; nothing is fetched. Best
/// effort: a failure to read them is noted, never fails the spec. `known`:
/// what the last run found at these same refs (taken when it was resolved
/// against the same upstream URL). Returns what to record.
fn report_submodules(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    upstream: &str,
    refs: &BTreeMap<String, String>,
    known: Option<&crate::state::Submodules>,
) -> Option<crate::state::Submodules> {
    let urls = match known {
        Some(known) if known.upstream == upstream => Ok(known.urls.clone()),
        _ => {
            let tips = crate::submodules::branch_tips(refs);
            crate::submodules::urls(run.git, run.repo, &tips, upstream)
                .map(|urls| urls.into_iter().collect::<Vec<String>>())
        }
    };
    match urls {
        Ok(urls) => {
            if !urls.is_empty() {
                ctx.log.note(&format!(
                    "{}: submodules (not fetched; each needs its own lorry): {}",
                    run.spec.name,
                    urls.join(" ")
                ));
                ctx.tally.submodules = urls.clone();
            }
            Some(crate::state::Submodules {
                upstream: upstream.to_owned(),
                urls,
            })
        }
        Err(e) => {
            ctx.log
                .note(&format!("{}: cannot list submodules: {e}", run.spec.name));
            None
        }
    }
}

/// Makes the snapshot pins the spec asks for, after the refs moved and
/// before any repack (which could drop an unreferenced commit). Never
/// fails the spec; nothing is done when pulling only.
fn pin_snapshots(ctx: &mut Context<'_>, run: &SpecRun<'_>, push_url: Option<&str>) {
    for problem in &run.spec.pin_problems {
        ctx.log.note(&format!("{}: {problem}", run.spec.name));
    }
    let Some(url) = push_url else {
        return;
    };
    if run.spec.pins.is_empty() {
        return;
    }
    let (results, notes) = crate::pins::apply(run.git, run.repo, url, &run.spec.pins);
    for note in notes {
        ctx.log.note(&format!("{}: {note}", run.spec.name));
    }
    ctx.tally.pins = results;
}

/// On a run with nothing new: reports the recorded refs whole once, for a
/// record made before they were reported (an older lorry, or a result the
/// webapp never got because the run failed afterwards), and notes that
/// they have been.
fn report_held(ctx: &mut Context<'_>, dir: &Path, previous: &State) -> Result<(), MirrorError> {
    if previous.held_reported {
        return Ok(());
    }
    ctx.tally.held = Some(previous.refs.clone());
    State {
        held_reported: true,
        ..previous.clone()
    }
    .save(dir)?;
    Ok(())
}

/// Fetches the LFS objects of the history of the `new` tips from `url`
/// into the mirror's store, and says what the store gained.
fn fetch_lfs(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    from_upstream: &Git,
    url: &str,
    new: &BTreeMap<String, String>,
) -> Result<(), MirrorError> {
    let tips: BTreeSet<&str> = new.values().map(String::as_str).collect();
    let tips: Vec<&str> = tips.into_iter().collect();
    let before = lfs::store(run.repo);
    ctx.log.info(&format!(
        "{}: fetching the LFS objects of {} tips from {url}",
        run.spec.name,
        tips.len()
    ));
    lfs::fetch(from_upstream, run.repo, url, &tips)?;
    let after = lfs::store(run.repo);
    ctx.log.note(&format!(
        "{}: LFS: {} objects ({} bytes) fetched; the mirror holds {} LFS objects ({} bytes)",
        run.spec.name,
        after.objects.saturating_sub(before.objects),
        after.bytes.saturating_sub(before.bytes),
        after.objects,
        after.bytes
    ));
    Ok(())
}

/// The mirror's refs that the refspecs write.
fn covered_refs(
    git: &Git,
    repo: &Path,
    refspecs: &Refspecs,
) -> Result<BTreeMap<String, String>, GitError> {
    Ok(git
        .for_each_ref(repo, &[])?
        .into_iter()
        .filter(|(name, _)| refspecs.covers(name))
        .collect())
}

/// What happens to each ref, decided against `base` (the downstream's refs,
/// or the mirror's when nothing is pushed).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every covered ref as it must end up.
    pub target: BTreeMap<String, String>,
    /// (ref, old tip) to keep under `refs/lorry/preserved/`.
    pub preserve: Vec<(String, String)>,
    /// Refs rewritten or deleted upstream and moved anyway (`follow`).
    pub followed: Vec<String>,
    /// Refs left as they were (`refuse`).
    pub refused: Vec<String>,
}

/// Decides, for every ref in `base` or `new`, where it goes. `contains(a,
/// b)` says whether commit `b` contains `a` (a fast-forward from `a` to `b`).
/// A tag that moves is always a rewrite.
pub fn decide(
    base: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    policy: OnRewrite,
    mut contains: impl FnMut(&str, &str) -> bool,
) -> Plan {
    let mut plan = Plan::default();
    let names: BTreeSet<&String> = base.keys().chain(new.keys()).collect();
    for name in names {
        let old = base.get(name);
        let now = new.get(name);
        let rewrite = match (old, now) {
            (None, Some(n)) => {
                plan.target.insert(name.clone(), n.clone());
                continue;
            }
            (Some(o), Some(n)) if o == n => {
                plan.target.insert(name.clone(), n.clone());
                continue;
            }
            (Some(o), Some(n)) => name.starts_with("refs/tags/") || !contains(o, n),
            (Some(_), None) => true,
            (None, None) => continue,
        };
        if !rewrite {
            if let Some(n) = now {
                plan.target.insert(name.clone(), n.clone());
            }
            continue;
        }
        let Some(o) = old else { continue };
        match policy {
            OnRewrite::Preserve => {
                plan.preserve.push((name.clone(), o.clone()));
                if let Some(n) = now {
                    plan.target.insert(name.clone(), n.clone());
                }
            }
            OnRewrite::Follow => {
                plan.followed.push(name.clone());
                if let Some(n) = now {
                    plan.target.insert(name.clone(), n.clone());
                }
            }
            OnRewrite::Refuse => {
                plan.refused.push(name.clone());
                plan.target.insert(name.clone(), o.clone());
            }
        }
    }
    plan
}

/// A name under `refs/lorry/preserved/<stamp>/` for `name` that is in
/// neither `taken` set.
fn preserved_name(stamp: &str, name: &str, taken: &BTreeSet<String>) -> String {
    let base = format!("{PRESERVED}{stamp}/{name}");
    if !taken.contains(&base) {
        return base;
    }
    (1..)
        .map(|n| format!("{PRESERVED}{stamp}-{n}/{name}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(base)
}

/// Refspecs per `git push` (argv stays well under the kernel's limits).
const PUSH_CHUNK: usize = 1000;

/// What a run knows of the refs before it contacts the downstream.
struct Known {
    /// The preserved tips in the mirror (`refs/lorry/preserved/...`).
    taken: BTreeSet<String>,
    /// What the downstream holds, when the last run's record says so and
    /// every change since is a new ref or a fast-forward of what the mirror
    /// holds ([`fast_forwards_only`]): no ref can be rewritten, so the
    /// downstream is not listed; the push's leases catch a downstream
    /// changed behind lorry's back, and the run then lists it after all.
    /// Empty on a first run that expects an empty downstream (`first`).
    downstream: Option<BTreeMap<String, String>>,
    /// `downstream` is not a record but the guess of a first run: every
    /// ref is pushed with a lease that says it must not exist.
    first: bool,
}

/// The most refs a first run pushes with "absent" leases rather than
/// listing the downstream first: git matches every lease against every
/// pushed ref, which grows with their product.
const ABSENT_LEASES_MAX: usize = 256;

/// The mirror's refs (all of them, by name) that the refspecs write.
fn covered(all: &BTreeMap<String, String>, refspecs: &Refspecs) -> BTreeMap<String, String> {
    all.iter()
        .filter(|(name, _)| refspecs.covers(name))
        .map(|(name, oid)| (name.clone(), oid.clone()))
        .collect()
}

/// `Some(old)` when going from the mirror's refs `old` to `new` only adds
/// refs and moves refs other than tags forward, each forward move proven by
/// `git fetch`'s own report (a fast-forward from exactly the old tip, which
/// git checked as it fetched): then nothing can be a rewrite.
fn fast_forwards_only(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
    fetched: &[lc_git::FetchedRef],
) -> Option<BTreeMap<String, String>> {
    let forward: BTreeMap<String, &lc_git::FetchedRef> = fetched
        .iter()
        .filter(|f| f.status == lc_git::FetchStatus::FastForward)
        .filter_map(|f| refspec::from_staging(&f.local).map(|name| (name, f)))
        .collect();
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let all_forward = names
        .into_iter()
        .all(|name| match (old.get(name), new.get(name)) {
            (Some(o), Some(n)) if o == n => true,
            (None, Some(_)) => true,
            (Some(o), Some(n)) => {
                !name.starts_with("refs/tags/")
                    && forward
                        .get(name)
                        .is_some_and(|f| &f.old == o && &f.new == n)
            }
            _ => false,
        });
    all_forward.then(|| old.clone())
}

/// What [`publish`] returns: the refs `refuse` kept, every covered ref as
/// the mirror now holds it, and whether the downstream was listed.
type Published = (Vec<String>, BTreeMap<String, String>, bool);

/// Moves the downstream (unless pulling only) and then the mirror to the
/// new refs. Returns the refs that `refuse` kept, every covered ref as the
/// mirror now holds it, and whether the downstream was listed.
#[expect(
    clippy::too_many_arguments,
    reason = "the steps of one spec's run, each named"
)]
fn publish(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    refspecs: &Refspecs,
    push_url: Option<&str>,
    new: &BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
    known: Known,
    stamp: &str,
) -> Result<Published, MirrorError> {
    let (git, repo, spec) = (run.git, run.repo, run.spec);
    if let (Some(url), Some(held)) = (push_url, known.downstream) {
        ctx.timings.step("rewrite-check");
        let taken = known.taken.clone();
        match publish_against(
            ctx,
            run,
            refspecs,
            Some(url),
            new,
            old,
            held,
            taken,
            stamp,
            true,
        ) {
            Err(MirrorError::Stale(e)) => {
                ctx.log.note(&format!(
                    "{}: {}; listing it",
                    spec.name,
                    if known.first {
                        "the downstream already holds some of the refs of this first run"
                    } else {
                        "the downstream is not as the last run left it"
                    }
                ));
                ctx.log.info(&format!("{}: {e}", spec.name));
            }
            // A first push whose every lease held proved that none of its
            // refs was downstream before: that stands for a listing (refs
            // downstream that it did not name wait for the next check).
            other => return other.map(|(refused, refs)| (refused, refs, known.first)),
        }
    }
    let mut taken = known.taken;

    // The base against which rewrites are judged: what the downstream has.
    let base = match push_url {
        Some(url) => {
            let listed = git.ls_remote(url, &[])?;
            taken.extend(
                listed
                    .iter()
                    .filter(|r| r.name.starts_with(PRESERVED))
                    .map(|r| r.name.clone()),
            );
            let ds: BTreeMap<String, String> = listed
                .into_iter()
                .filter(|r| refspecs.covers(&r.name))
                .map(|r| (r.name, r.oid))
                .collect();
            fetch_missing_downstream(ctx, git, repo, url, &ds, new)?;
            ds
        }
        None => old.clone(),
    };
    let (refused, refs) = publish_against(
        ctx, run, refspecs, push_url, new, old, base, taken, stamp, false,
    )?;
    Ok((refused, refs, push_url.is_some()))
}

/// [`publish`] against `base`, the downstream's refs (or the mirror's when
/// nothing is pushed). `known_base`: `base` comes from the last run's
/// record, not from listing the downstream, and a failed push is
/// [`MirrorError::Stale`].
#[expect(
    clippy::too_many_arguments,
    reason = "the steps of one spec's run, each named"
)]
fn publish_against(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    refspecs: &Refspecs,
    push_url: Option<&str>,
    new: &BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
    base: BTreeMap<String, String>,
    mut taken: BTreeSet<String>,
    stamp: &str,
    known_base: bool,
) -> Result<(Vec<String>, BTreeMap<String, String>), MirrorError> {
    let (git, repo, spec) = (run.git, run.repo, run.spec);
    // Against the record, every move is a fast-forward git's fetch has
    // already proven ([`fast_forwards_only`]).
    let plan = decide(&base, new, spec.on_rewrite, |a, b| {
        known_base || git.is_ancestor(repo, a, b).unwrap_or(false)
    });

    let mut preserved = Vec::new();
    for (name, oid) in &plan.preserve {
        let pname = preserved_name(stamp, name, &taken);
        taken.insert(pname.clone());
        let why = if new.contains_key(name) {
            "rewritten"
        } else {
            "deleted"
        };
        ctx.log.note(&format!(
            "{}: {name} was {why} upstream; old tip {oid} preserved as {pname}",
            spec.name
        ));
        ctx.tally.preserved.push(lc_api::PreservedRef {
            name: name.clone(),
            oid: oid.clone(),
            kept_as: pname.clone(),
        });
        preserved.push((pname, oid.clone()));
    }
    for name in &plan.followed {
        ctx.log.note(&format!(
            "{}: {name} was rewritten or deleted upstream; followed (on-rewrite: follow), old tip not kept",
            spec.name
        ));
    }
    // On stdout: stderr gets one line per failed spec, at the end.
    for name in &plan.refused {
        ctx.log.note(&format!(
            "{}: {name} was rewritten or deleted upstream; left as it was (on-rewrite: refuse)",
            spec.name
        ));
    }
    ctx.timings.step("rewrite-check");

    // What the downstream held before the push: `base`, and the refs the
    // push found already where they had to go (a first run's guess of an
    // empty downstream can meet copies of the mirror's refs).
    let mut before = base.clone();
    if let Some(url) = push_url {
        let reports = push_and_verify(
            ctx, run, refspecs, url, &base, &plan, &preserved, known_base,
        )?;
        ctx.timings.step("push");
        let up_to_date: Vec<&lc_git::PushedRef> = reports
            .iter()
            .filter(|r| r.status == lc_git::PushStatus::UpToDate)
            .collect();
        for r in &up_to_date {
            if let Some(oid) = plan.target.get(&r.remote) {
                before.insert(r.remote.clone(), oid.clone());
            }
        }
        if !reports.is_empty() && up_to_date.len() == reports.len() {
            ctx.tally.pushed = lc_api::Pushed::Unchanged;
        }
    }

    // The mirror's own refs move last, in one transaction.
    let mut updates = Vec::new();
    for (name, oid) in &preserved {
        updates.push(RefUpdate::Set {
            name: name.clone(),
            oid: oid.clone(),
        });
    }
    let names: BTreeSet<&String> = old.keys().chain(plan.target.keys()).collect();
    for name in names {
        match (old.get(name), plan.target.get(name)) {
            (Some(o), Some(t)) if o == t => {}
            (_, Some(t)) => updates.push(RefUpdate::Set {
                name: name.clone(),
                oid: t.clone(),
            }),
            (Some(_), None) => updates.push(RefUpdate::Delete { name: name.clone() }),
            (None, None) => {}
        }
    }
    git.update_refs(repo, &updates)?;
    ctx.timings.step("result");
    ctx.tally.record_refs(&before, &plan.target);
    Ok((plan.refused, plan.target))
}

/// Fetches the downstream tips that the mirror lacks (a downstream changed
/// behind lorry's back, or a first run into a filled downstream), so that
/// they can be judged and preserved.
fn fetch_missing_downstream(
    ctx: &mut Context<'_>,
    git: &Git,
    repo: &Path,
    url: &str,
    ds: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<(), MirrorError> {
    let differing: Vec<&str> = ds
        .iter()
        .filter(|(name, oid)| new.get(*name) != Some(*oid))
        .map(|(_, oid)| oid.as_str())
        .collect();
    let missing: BTreeSet<String> = git.missing_objects(repo, &differing)?.into_iter().collect();
    if missing.is_empty() {
        return Ok(());
    }
    let fetch: Vec<String> = ds
        .iter()
        .filter(|(_, oid)| missing.contains(*oid))
        .map(|(name, _)| {
            format!(
                "+{name}:refs/lorry/downstream/{}",
                name.strip_prefix("refs/").unwrap_or(name)
            )
        })
        .collect();
    ctx.log.info(&format!(
        "fetching {} downstream tips this mirror lacks",
        fetch.len()
    ));
    git.fetch(repo, url, &fetch)?;
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "the steps of one spec's run, each named"
)]
fn push_and_verify(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    refspecs: &Refspecs,
    url: &str,
    base: &BTreeMap<String, String>,
    plan: &Plan,
    preserved: &[(String, String)],
    known_base: bool,
) -> Result<Vec<lc_git::PushedRef>, MirrorError> {
    let (git, repo, spec) = (run.git, run.repo, run.spec);
    if run.lfs {
        // The LFS objects first: no ref reaches the downstream before the
        // large files it points to.
        let tips: BTreeSet<&str> = plan
            .target
            .iter()
            .filter(|(name, oid)| base.get(*name) != Some(*oid))
            .map(|(_, oid)| oid.as_str())
            .collect();
        let tips: Vec<&str> = tips.into_iter().collect();
        if !tips.is_empty() {
            ctx.log.info(&format!(
                "{}: pushing the LFS objects of {} tips to {url}",
                spec.name,
                tips.len()
            ));
            lfs::push(git, repo, url, &tips)?;
        }
    }
    // What the push's report must show: each pushed ref's new value, or
    // None for a deletion.
    let mut expected: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut reports = Vec::new();
    if !known_base && base.is_empty() && preserved.is_empty() && !plan.target.is_empty() {
        // A first push into an empty downstream: everything, by pattern.
        // Explicit per-ref refspecs cost git time in proportion to refs
        // times refspecs, which matters for repositories with many tags.
        let from_staging = matches!(spec.source, Source::Git { .. });
        let all = refspecs.push_all(from_staging, |dst| plan.target.contains_key(dst));
        if let Some(all) = all {
            ctx.log.info(&format!(
                "{}: first push of {} refs to {url}",
                spec.name,
                plan.target.len()
            ));
            reports = git.push_with_leases(repo, url, &all, &[], &ctx.options.push_option)?;
            ctx.tally.pushed = lc_api::Pushed::Yes;
            expected.extend(
                plan.target
                    .iter()
                    .map(|(name, oid)| (name.clone(), Some(oid.clone()))),
            );
            check_report(
                ctx, git, spec, refspecs, url, plan, preserved, &reports, &expected,
            )?;
            return Ok(reports);
        }
    }

    // Preserved tips go first, so that a chunked push never moves a ref
    // before its old tip is kept.
    let mut pushes: Vec<(String, Lease)> = Vec::new();
    for (name, oid) in preserved {
        pushes.push((
            format!("{oid}:{name}"),
            Lease {
                name: name.clone(),
                expect: None,
            },
        ));
        expected.insert(name.clone(), Some(oid.clone()));
    }
    let preserved_count = pushes.len();
    let names: BTreeSet<&String> = base.keys().chain(plan.target.keys()).collect();
    for name in names {
        let refspec = match (base.get(name), plan.target.get(name)) {
            (Some(b), Some(t)) if b == t => continue,
            (_, Some(t)) => format!("{t}:{name}"),
            (Some(_), None) => format!(":{name}"),
            (None, None) => continue,
        };
        expected.insert(name.clone(), plan.target.get(name).cloned());
        pushes.push((
            refspec,
            Lease {
                name: name.clone(),
                expect: base.get(name).cloned(),
            },
        ));
    }
    if pushes.is_empty() {
        ctx.tally.pushed = lc_api::Pushed::Unchanged;
        ctx.log.info(&format!(
            "{}: downstream already has every ref; nothing to push",
            spec.name
        ));
        // The downstream was listed (or is as the record says) and holds
        // every planned ref: nothing to check.
        return Ok(Vec::new());
    }
    ctx.log.info(&format!(
        "{}: pushing {} refs and {preserved_count} preserved tips to {url}",
        spec.name,
        pushes.len() - preserved_count,
    ));
    for chunk in pushes.chunks(PUSH_CHUNK) {
        let (refs, leases): (Vec<String>, Vec<Lease>) = chunk.iter().cloned().unzip();
        match git.push_with_leases(repo, url, &refs, &leases, &ctx.options.push_option) {
            Ok(report) => reports.extend(report),
            // Pushed against the record rather than a listing, and a lease
            // did not hold: the caller lists the downstream and tries again.
            // Any other failure (network, credentials, a hook) is the run's.
            Err(e) if known_base && e.is_stale_lease() => return Err(MirrorError::Stale(e)),
            Err(e) => return Err(e.into()),
        }
        ctx.tally.pushed = lc_api::Pushed::Yes;
    }
    check_report(
        ctx, git, spec, refspecs, url, plan, preserved, &reports, &expected,
    )?;
    Ok(reports)
}

/// Whether `push --porcelain`'s `reports` show every ref of `expected`
/// (name → new value, None for a deletion) accepted as asked and nothing
/// else: the downstream then holds what was pushed.
pub fn report_proves(
    reports: &[lc_git::PushedRef],
    expected: &BTreeMap<String, Option<String>>,
) -> bool {
    use lc_git::PushStatus as S;
    let mut seen = BTreeSet::new();
    for r in reports {
        let Some(want) = expected.get(&r.remote) else {
            return false;
        };
        let accepted = match want {
            Some(oid) => {
                matches!(r.status, S::New | S::FastForward | S::Forced | S::UpToDate)
                    // An explicit push names the object; a push by pattern
                    // names the local ref, whose value the plan is.
                    && (!lc_git::is_oid(&r.local) || &r.local == oid)
            }
            None => r.status == S::Deleted,
        };
        if !accepted || !seen.insert(r.remote.as_str()) {
            return false;
        }
    }
    seen.len() == expected.len()
}

/// Accepts a push whose report proves the result; otherwise lists the
/// downstream and checks it ([`verify`]).
#[expect(
    clippy::too_many_arguments,
    reason = "the steps of one spec's run, each named"
)]
fn check_report(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    refspecs: &Refspecs,
    url: &str,
    plan: &Plan,
    preserved: &[(String, String)],
    reports: &[lc_git::PushedRef],
    expected: &BTreeMap<String, Option<String>>,
) -> Result<(), MirrorError> {
    if report_proves(reports, expected) {
        ctx.log.info(&format!(
            "{}: the push's report shows every ref accepted ({} refs)",
            spec.name,
            expected.len()
        ));
        return Ok(());
    }
    verify(ctx, git, spec, refspecs, url, plan, preserved)
}

/// Checks that the downstream now holds exactly the planned refs.
fn verify(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    refspecs: &Refspecs,
    url: &str,
    plan: &Plan,
    preserved: &[(String, String)],
) -> Result<(), MirrorError> {
    let listed = git.ls_remote(url, &[])?;
    let after: BTreeMap<String, String> = listed.into_iter().map(|r| (r.name, r.oid)).collect();
    let mut problems = Vec::new();
    for (name, oid) in plan
        .target
        .iter()
        .chain(preserved.iter().map(|(n, o)| (n, o)))
    {
        match after.get(name) {
            Some(got) if got == oid => {}
            Some(got) => problems.push(format!("{name} is {got}, expected {oid}")),
            None => problems.push(format!("{name} is missing, expected {oid}")),
        }
    }
    for name in after.keys() {
        if refspecs.covers(name) && !plan.target.contains_key(name) {
            problems.push(format!("{name} should have been deleted"));
        }
    }
    if !problems.is_empty() {
        return Err(MirrorError::Verify(problems.join("; ")));
    }
    ctx.log.info(&format!(
        "{}: downstream verified ({} refs)",
        spec.name,
        plan.target.len()
    ));
    Ok(())
}

/// Repack, bundle and tarball, as the options ask; `always` means after
/// every run that `changed` the mirror, `first` whenever none exists yet.
fn after_update(
    ctx: &mut Context<'_>,
    git: &Git,
    spec: &Spec,
    repo: &Path,
    changed: bool,
) -> Result<(), MirrorError> {
    if changed && ctx.options.repack_enabled() && needs_repack(repo) {
        ctx.log.info(&format!("{}: repacking", spec.name));
        git.repack(repo)?;
    }
    let fetch_base = ctx
        .options
        .mirror_base_url_fetch
        .clone()
        .unwrap_or_default();
    let stem = quote_url(&push_url(&fetch_base, &spec.name));
    if let Some(dest) = ctx.options.bundle_dest.clone() {
        let file = dest.join(format!("{stem}.bndl"));
        if wanted(ctx.options.bundle, &file, changed) {
            std::fs::create_dir_all(&dest).map_err(io("create", &dest))?;
            if git
                .for_each_ref(repo, &["refs/heads/", "refs/tags/"])?
                .is_empty()
            {
                ctx.log
                    .info(&format!("{}: no refs yet; no bundle written", spec.name));
            } else {
                ctx.log
                    .info(&format!("{}: writing bundle {}", spec.name, file.display()));
                let tmp = dest.join(format!("{stem}.bndl.tmp"));
                git.bundle_create(repo, &tmp)?;
                std::fs::rename(&tmp, &file).map_err(io("rename into place", &file))?;
            }
        }
    }
    if let Some(dest) = ctx.options.tarball_dest.clone() {
        let file = dest.join(format!("{stem}.tar"));
        if wanted(ctx.options.tarball, &file, changed) {
            std::fs::create_dir_all(&dest).map_err(io("create", &dest))?;
            ctx.log.info(&format!(
                "{}: writing tarball {}",
                spec.name,
                file.display()
            ));
            let tmp = dest.join(format!("{stem}.tar.tmp"));
            write_tarball(repo, &tmp).map_err(io("write", &tmp))?;
            std::fs::rename(&tmp, &file).map_err(io("rename into place", &file))?;
        }
    }
    Ok(())
}

fn wanted(when: When, file: &Path, changed: bool) -> bool {
    match when {
        When::Never => false,
        When::Always => changed || !file.exists(),
        When::First => !file.exists(),
    }
}

/// git's gc.autoPackLimit and gc.auto defaults.
const PACK_LIMIT: usize = 50;
const LOOSE_LIMIT: usize = 6700;

/// Whether the mirror has grown enough packs or loose objects to be worth
/// repacking (the same estimate as `git gc --auto`: one fan-out directory
/// times 256).
pub fn needs_repack(repo: &Path) -> bool {
    if lc_git::pack_count(repo).unwrap_or(0) > PACK_LIMIT {
        return true;
    }
    let loose = std::fs::read_dir(repo.join("objects/17"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    loose * 256 > LOOSE_LIMIT
}

/// A file name made from a URL, as the original's `quote_url`: every
/// character other than letters, digits, '.', '-' and '_' becomes '_'.
pub fn quote_url(url: &str) -> String {
    url.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write_tarball(repo: &Path, file: &Path) -> std::io::Result<()> {
    let out = File::create(file)?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.append_dir_all("git", repo)?;
    builder.into_inner()?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn decide_classifies_refs() {
        let base = map(&[
            ("refs/heads/ff", "a"),
            ("refs/heads/forced", "b"),
            ("refs/heads/gone", "c"),
            ("refs/heads/same", "d"),
            ("refs/tags/moved", "e"),
        ]);
        let new = map(&[
            ("refs/heads/ff", "a2"),
            ("refs/heads/forced", "b2"),
            ("refs/heads/same", "d"),
            ("refs/heads/new", "f"),
            ("refs/tags/moved", "e2"),
        ]);
        let contains = |a: &str, b: &str| b.starts_with(a) && a != "b" && a != "e";
        let plan = decide(&base, &new, OnRewrite::Preserve, contains);
        assert_eq!(plan.target, new);
        assert_eq!(
            plan.preserve,
            vec![
                ("refs/heads/forced".into(), "b".into()),
                ("refs/heads/gone".into(), "c".into()),
                ("refs/tags/moved".into(), "e".into()),
            ]
        );
        let plan = decide(&base, &new, OnRewrite::Refuse, contains);
        assert_eq!(plan.refused.len(), 3);
        assert_eq!(plan.target["refs/heads/forced"], "b");
        assert_eq!(plan.target["refs/heads/gone"], "c");
        assert_eq!(plan.target["refs/heads/ff"], "a2");
        let plan = decide(&base, &new, OnRewrite::Follow, contains);
        assert_eq!(plan.target, new);
        assert_eq!(plan.followed.len(), 3);
        assert!(plan.preserve.is_empty());
    }

    #[test]
    fn preserved_names_are_unique() {
        let mut taken = BTreeSet::new();
        let a = preserved_name("T", "refs/heads/x", &taken);
        assert_eq!(a, "refs/lorry/preserved/T/refs/heads/x");
        taken.insert(a);
        assert_eq!(
            preserved_name("T", "refs/heads/x", &taken),
            "refs/lorry/preserved/T-1/refs/heads/x"
        );
    }

    #[test]
    fn names_and_urls() {
        assert_eq!(
            spec_dir(Path::new("/wa"), "delta/linux"),
            PathBuf::from("/wa/delta%2Flinux")
        );
        assert_eq!(push_url("file:///d/", "a/b"), "file:///d/a/b.git");
        assert_eq!(quote_url("git://h/a/b.git"), "git___h_a_b.git");
    }
}
