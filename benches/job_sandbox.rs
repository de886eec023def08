//! Benchmark: what the job sandbox costs each job (issue 18). A job that
//! does nothing (`/bin/true` standing in for lorry) is started and waited
//! for as the minion starts lorry: the environment cleaned, and
//!
//! 1. plain: no sandbox, no cgroup (the baseline, measured in the same run);
//! 2. bwrap: the minion's bwrap command line for a job (`Sandbox::argv`,
//!    with a working area, a spec directory and a hidden home);
//! 3. bwrap + the minion's cgroup slot: made ready for the job (emptied,
//!    limits written, counters read), joined by the `sh` in front, emptied
//!    after it, as for every job (`Cgroups::create`);
//! 4. bwrap + a fresh cgroup per job, made and removed around it (what a
//!    job gets when the slot cannot be made ready, and what every job got
//!    before the slot).
//!
//! Target: the sandbox adds under 20 ms a job (median). `cargo bench
//! --bench job_sandbox`; `LC_BENCH_ROUNDS` sets the jobs per kind
//! (default 200). A kind that cannot run here (no bwrap, no writable
//! cgroup) is reported as not measured.

#![expect(
    clippy::disallowed_methods,
    reason = "the bench starts the jobs' command lines as the minion does"
)]

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lc_minion::cgroup::{Cgroups, JobLimits};
use lc_minion::sandbox::{JobPaths, Sandbox, job_env};

fn run(argv: &[OsString], env: &[(OsString, OsString)]) {
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status()
        .expect("spawn");
    assert!(status.success(), "{argv:?}: {status}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn measure(rounds: usize, mut job: impl FnMut()) -> Vec<Duration> {
    job(); // warm the caches
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            job();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn main() {
    let rounds: usize = std::env::var("LC_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let area = dir.path().join("wa");
    let own = area.join("bench%2Fjob");
    let spec_dir = dir.path().join("spec");
    let home = dir.path().join("home");
    for d in [&own, &spec_dir, &home] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let lorry: Vec<OsString> = vec!["/bin/true".into()];
    let plain_env = job_env(std::env::vars_os(), false);
    let boxed_env = job_env(std::env::vars_os(), true);

    let plain = measure(rounds, || run(&lorry, &plain_env));
    println!("job_sandbox: {rounds} jobs of /bin/true per kind");
    let report = |kind: &str, times: &[Duration]| {
        let extra = percentile(times, 0.5).saturating_sub(percentile(&plain, 0.5));
        println!(
            "  {kind:<24} median {:>9}  p90 {:>9}  added (median) {:>9}",
            ms(percentile(times, 0.5)),
            ms(percentile(times, 0.9)),
            ms(extra)
        );
        extra
    };
    report("plain", &plain);

    let mut sandbox = Sandbox::new("bwrap");
    sandbox.working_area = Some(area.clone());
    sandbox.home = Some(home.clone());
    let paths = JobPaths {
        spec_dir: spec_dir.clone(),
        working_dirs: vec![own.clone()],
        local_upstreams: Vec::new(),
    };
    if let Err(why) = lc_minion::sandbox::probe(std::path::Path::new("bwrap")) {
        println!("  bwrap            not measured: {why}");
        return;
    }
    let mut boxed = sandbox.argv(&paths);
    boxed.extend(lorry.iter().cloned());
    let bwrap = measure(rounds, || run(&boxed, &boxed_env));
    let mut added = report("bwrap", &bwrap);

    match Cgroups::detect() {
        Ok(cgroups) => {
            let limits = JobLimits {
                memory_max: Some(1 << 30),
                tasks_max: Some(512),
                cpu_seconds: None,
            };
            let mut job_id = 0;
            let mut with = |fresh: bool, job: &[OsString]| {
                measure(rounds, || {
                    job_id += 1;
                    let cgroup = if fresh {
                        cgroups.create_own(job_id, &limits)
                    } else {
                        cgroups.create(job_id, &limits)
                    }
                    .expect("cgroup");
                    let mut argv = cgroup.join_argv();
                    argv.extend(job.iter().cloned());
                    run(&argv, &boxed_env);
                    assert!(cgroup.limits_hit().is_empty());
                    cgroup.remove();
                })
            };
            let slot_only = with(false, &lorry);
            let slot = with(false, &boxed);
            let fresh = with(true, &boxed);
            cgroups.remove_slot();
            report(&format!("{} slot alone", cgroups.name()), &slot_only);
            added = report(&format!("bwrap + {} slot", cgroups.name()), &slot);
            report(&format!("bwrap + fresh {}", cgroups.name()), &fresh);
        }
        Err(why) => println!("  bwrap + cgroup   not measured: {why}"),
    }
    println!(
        "  target: the sandbox (bwrap and the job's cgroup, where there is one) adds under 20 ms a job: {}",
        if added < Duration::from_millis(20) {
            "met"
        } else {
            "NOT met"
        }
    );
}
