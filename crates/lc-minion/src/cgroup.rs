//! A control group per job, for limits on the whole job (memory, tasks,
//! CPU seconds) rather than on each process.
//!
//! cgroup v1 (the `memory`, `pids` and `cpuacct` controllers, each where
//! it is mounted) or v2 (one directory; the minion moves itself into a
//! `minion` leaf so that its own cgroup may enable `memory` and `pids` for
//! the jobs' siblings, as systemd's `Delegate=yes` allows). The job
//! cgroups are children of the minion's own. The job joins its cgroup
//! before anything of it runs: a `/bin/sh` in front of it writes its own
//! pid into `cgroup.procs` and executes the rest (no `pre_exec`: `unsafe`
//! is forbidden).
//!
//! A minion runs one job at a time, and its jobs take turns in one cgroup,
//! `lorry-job-<minion pid>-slot`: a fresh cgroup cost each job a few ms
//! more in the kernel and, removed after it, a wait for the sandbox's last
//! process to leave it (`benches/job_sandbox.rs`; ARCH.md has the figures). Between jobs the slot is emptied (every process
//! killed), its limits are written anew and its counters read, so that a
//! job is measured by what changed during it. When the slot cannot be made
//! ready (a process of an earlier job will not die, a lower memory limit
//! cannot be reached) the job gets a cgroup of its own, `lorry-job-<minion
//! pid>-<job id>`, removed after it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The per-job limits: the minion's options, lowered by a spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobLimits {
    /// Bytes of memory of the whole job.
    pub memory_max: Option<u64>,
    /// Processes and threads of the whole job.
    pub tasks_max: Option<u64>,
    /// CPU seconds of the whole job.
    pub cpu_seconds: Option<u64>,
}

impl JobLimits {
    pub fn is_empty(&self) -> bool {
        *self == JobLimits::default()
    }

    /// These limits lowered (never raised) by a spec's `memory-max` and
    /// `tasks-max`. A value that is not a positive number (bytes may take
    /// a K, M, G or T suffix) is an error naming the field.
    pub fn lowered_by(self, spec: &serde_json::Value) -> Result<JobLimits, String> {
        let mut limits = self;
        let entries = spec.as_object().into_iter().flat_map(|m| m.values());
        for entry in entries {
            if let Some(value) = entry.get("memory-max") {
                let bytes = parse_bytes(value)
                    .ok_or_else(|| format!("field memory-max: {value} is not a size in bytes"))?;
                limits.memory_max = Some(limits.memory_max.map_or(bytes, |m| m.min(bytes)));
            }
            if let Some(value) = entry.get("tasks-max") {
                let tasks = value
                    .as_u64()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("field tasks-max: {value} is not a positive number"))?;
                limits.tasks_max = Some(limits.tasks_max.map_or(tasks, |m| m.min(tasks)));
            }
        }
        Ok(limits)
    }
}

/// A positive number of bytes: a number, or a string with an optional
/// binary K, M, G or T suffix.
fn parse_bytes(value: &serde_json::Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return (n > 0).then_some(n);
    }
    let text = value.as_str()?.trim();
    let (digits, shift) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 10),
        (i, 'M' | 'm') => (&text[..i], 20),
        (i, 'G' | 'g') => (&text[..i], 30),
        (i, 'T' | 't') => (&text[..i], 40),
        _ => (text, 0),
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1u64 << shift).filter(|&n| n > 0)
}

/// Where job cgroups are made, found at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// v1: the minion's own cgroup in each controller's hierarchy.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
    },
    /// v2: the minion's own cgroup (whose `minion` leaf it moved into).
    V2 { base: PathBuf },
}

/// The name of a job's cgroup: `lorry-job-<minion pid>-<job id>`.
const PREFIX: &str = "lorry-job-";

impl Cgroups {
    /// What this machine offers the minion: v1's memory and pids
    /// controllers where both can be written, else a v2 cgroup that can
    /// enable them for children, else nothing.
    pub fn detect() -> Result<Cgroups, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mut why = Vec::new();
        let v1 = |controller: &str| -> Result<PathBuf, String> {
            let path = own_path(&own, controller)
                .ok_or_else(|| format!("no v1 {controller} controller"))?;
            let mount = mount_point(&mounts, "cgroup", Some(controller))
                .ok_or_else(|| format!("the v1 {controller} controller is not mounted"))?;
            let dir = mount.join(path.trim_start_matches('/'));
            writable(&dir)?;
            Ok(dir)
        };
        match (v1("memory"), v1("pids")) {
            (Ok(memory), Ok(pids)) => {
                return Ok(Cgroups::V1 {
                    memory: Some(memory),
                    pids: Some(pids),
                    cpuacct: v1("cpuacct").ok(),
                });
            }
            (memory, pids) => why.extend([memory.err(), pids.err()].into_iter().flatten()),
        }
        match v2(&own, &mounts) {
            Ok(base) => Ok(Cgroups::V2 { base }),
            Err(e) => {
                why.push(e);
                Err(why.join("; "))
            }
        }
    }

    /// "cgroup v1" or "cgroup v2", for the isolation report.
    pub fn name(&self) -> &'static str {
        match self {
            Cgroups::V1 { .. } => "cgroup v1",
            Cgroups::V2 { .. } => "cgroup v2",
        }
    }

    fn parents(&self) -> Vec<(&'static str, PathBuf)> {
        match self {
            Cgroups::V1 {
                memory,
                pids,
                cpuacct,
            } => [("memory", memory), ("pids", pids), ("cpuacct", cpuacct)]
                .into_iter()
                .filter_map(|(name, dir)| Some((name, dir.clone()?)))
                .collect(),
            Cgroups::V2 { base } => vec![("v2", base.clone())],
        }
    }

    /// Removes the job cgroups of minions that are gone (killing what is
    /// left in them); answers how many.
    pub fn remove_stale(&self) -> usize {
        let mut removed = 0;
        for (_, parent) in self.parents() {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(pid) = name
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<i32>().ok())
                else {
                    continue;
                };
                let alive = pid == i32::try_from(std::process::id()).unwrap_or(0)
                    || Path::new(&format!("/proc/{pid}")).exists();
                if !alive {
                    kill_all(&entry.path());
                    if std::fs::remove_dir(entry.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
        removed
    }

    /// The cgroup for job `job_id` with `limits`: the minion's slot, or
    /// one of the job's own when the slot cannot be made ready.
    pub fn create(&self, job_id: i64, limits: &JobLimits) -> std::io::Result<JobCgroup> {
        let slot = format!("{PREFIX}{}-{SLOT}", std::process::id());
        match self.prepare(&slot, limits, true) {
            Ok(group) => Ok(group),
            Err(e) => {
                tracing::warn!(error = %e, "the minion's job cgroup is not ready; this job gets one of its own");
                self.create_own(job_id, limits)
            }
        }
    }

    /// A cgroup of job `job_id`'s own, removed after it (what
    /// [`Cgroups::create`] falls back to).
    pub fn create_own(&self, job_id: i64, limits: &JobLimits) -> std::io::Result<JobCgroup> {
        let name = format!("{PREFIX}{}-{job_id}", std::process::id());
        self.prepare(&name, limits, false)
    }

    /// Removes the minion's slot (at its end), killing what is in it.
    pub fn remove_slot(&self) {
        let name = format!("{PREFIX}{}-{SLOT}", std::process::id());
        for (_, parent) in self.parents() {
            remove_dir(&parent.join(&name));
        }
    }

    /// Makes (or, `reused`, empties) the cgroup `name`, writes `limits`
    /// (lifting any limit not asked for) and reads its counters.
    fn prepare(&self, name: &str, limits: &JobLimits, reused: bool) -> std::io::Result<JobCgroup> {
        let mut group = JobCgroup {
            v2: matches!(self, Cgroups::V2 { .. }),
            dirs: Vec::new(),
            limits: *limits,
            reused,
            before: Counters::default(),
        };
        for (controller, parent) in self.parents() {
            let dir = parent.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            group.dirs.push((controller, dir.clone()));
            if reused {
                kill_all(&dir);
                if !processes(&dir).is_empty() {
                    return Err(std::io::Error::other(format!(
                        "{} still holds processes of an earlier job",
                        dir.display()
                    )));
                }
            }
            let write = |file: &str, value: String| std::fs::write(dir.join(file), value);
            let max =
                |n: Option<u64>, none: &str| n.map_or_else(|| none.to_owned(), |n| n.to_string());
            match controller {
                "memory" => {
                    // memory+swap must stay at least memory: lifted first,
                    // then both set (swap only where the kernel counts it).
                    let _ = write("memory.memsw.limit_in_bytes", "-1".into());
                    write("memory.limit_in_bytes", max(limits.memory_max, "-1"))?;
                    if let Some(bytes) = limits.memory_max {
                        let _ = write("memory.memsw.limit_in_bytes", bytes.to_string());
                    }
                    write("memory.failcnt", "0".into())?;
                }
                "pids" => write("pids.max", max(limits.tasks_max, "max"))?,
                "cpuacct" => write("cpuacct.usage", "0".into())?,
                "v2" => {
                    write("memory.max", max(limits.memory_max, "max"))?;
                    let _ = write("memory.swap.max", "0".into());
                    write("pids.max", max(limits.tasks_max, "max"))?;
                }
                _ => {}
            }
        }
        group.before = group.counters();
        Ok(group)
    }
}

/// The suffix of the minion's reused job cgroup.
const SLOT: &str = "slot";

/// The minion's own path in the v1 hierarchy of `controller`, from
/// `/proc/self/cgroup` (lines `id:controllers:path`).
fn own_path(own: &str, controller: &str) -> Option<String> {
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_owned())
    })
}

/// The mount point of a cgroup file system of type `fstype` whose super
/// options name `controller` (any, when `None`), from
/// `/proc/self/mountinfo`.
fn mount_point(mounts: &str, fstype: &str, controller: Option<&str>) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount = left.split(' ').nth(4)?;
        let mut right = right.split(' ');
        let (kind, _source, options) = (right.next()?, right.next()?, right.next()?);
        let matches = kind == fstype
            && controller.is_none_or(|c| options.split(',').any(|option| option == c));
        matches.then(|| PathBuf::from(mount))
    })
}

/// Whether the minion can make child cgroups in `dir`.
fn writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!("{PREFIX}probe-{}", std::process::id()));
    std::fs::create_dir(&probe)
        .and_then(|()| std::fs::remove_dir(&probe))
        .map_err(|e| format!("cannot make a cgroup in {}: {e}", dir.display()))
}

/// The v2 base: the minion's own cgroup, with `memory` and `pids` enabled
/// for its children, the minion itself moved into its `minion` leaf.
fn v2(own: &str, mounts: &str) -> Result<PathBuf, String> {
    let path = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("no cgroup v2")?;
    let mount = mount_point(mounts, "cgroup2", None).ok_or("cgroup v2 is not mounted")?;
    let mut base = mount.join(path.trim_start_matches('/'));
    if base.file_name().is_some_and(|n| n == "minion") {
        // A minion started before moved this process's predecessor here.
        base.pop();
    }
    let controllers = std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
    for needed in ["memory", "pids"] {
        if !controllers.split_whitespace().any(|c| c == needed) {
            return Err(format!(
                "cgroup v2 {} does not offer the {needed} controller (Delegate=yes?)",
                base.display()
            ));
        }
    }
    writable(&base)?;
    let subtree = std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
    if !(subtree.contains("memory") && subtree.contains("pids")) {
        let leaf = base.join("minion");
        let fail = |e: std::io::Error| format!("cannot set up cgroup v2 {}: {e}", base.display());
        match std::fs::create_dir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
        std::fs::write(leaf.join("cgroup.procs"), std::process::id().to_string()).map_err(fail)?;
        std::fs::write(base.join("cgroup.subtree_control"), "+memory +pids").map_err(fail)?;
    }
    Ok(base)
}

/// Kills every process in the cgroup `dir` (with v2's `cgroup.kill` where
/// there is one) and waits until it is empty, killing again what forked
/// meanwhile, for up to half a second.
fn kill_all(dir: &Path) {
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    for round in 0..500 {
        let pids = processes(dir);
        if pids.is_empty() {
            return;
        }
        if round % 10 == 0 {
            signal_all(&pids);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// SIGKILL to each of `pids`.
fn signal_all(pids: &[i32]) {
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The pids in the cgroup `dir`.
fn processes(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills what is left in the cgroup `dir` and removes it. The last
/// process may still be leaving it (EBUSY): polled briefly, up to half a
/// second.
fn remove_dir(dir: &Path) {
    kill_all(dir);
    for _ in 0..500 {
        match std::fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
}

/// A cgroup's counters that only grow: the job's share is the change.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    /// Processes the kernel killed for memory (v1 also counts a failed
    /// charge while the cgroup was out of memory).
    oom: u64,
    /// Forks refused at `pids.max`.
    tasks: u64,
    /// CPU seconds.
    cpu: Option<f64>,
}

/// One job's cgroup (one directory per v1 controller).
#[derive(Debug)]
pub struct JobCgroup {
    v2: bool,
    dirs: Vec<(&'static str, PathBuf)>,
    limits: JobLimits,
    /// The minion's slot: emptied, not removed, after the job.
    reused: bool,
    /// The counters when the job started.
    before: Counters,
}

impl JobCgroup {
    /// `/bin/sh` joining this cgroup and executing the command that
    /// follows it.
    pub fn join_argv(&self) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec![
            "/bin/sh".into(),
            "-c".into(),
            "while [ \"$1\" != -- ]; do echo $$ > \"$1\" || exit 125; shift; done; shift; exec \"$@\""
                .into(),
            "lorry-controller-minion-cgroup".into(),
        ];
        argv.extend(
            self.dirs
                .iter()
                .map(|(_, dir)| dir.join("cgroup.procs").into_os_string()),
        );
        argv.push("--".into());
        argv
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(name, _)| *name == controller || (self.v2 && *name == "v2"))
            .map(|(_, dir)| dir.as_path())
    }

    /// CPU seconds the job has used (`cpuacct.usage` or v2's `cpu.stat`).
    pub fn cpu_seconds(&self) -> Option<f64> {
        let now = self.counters().cpu?;
        Some(now - self.before.cpu.unwrap_or(0.0))
    }

    /// The counters as they are now.
    fn counters(&self) -> Counters {
        let read = |controller: &str, file: &str| {
            self.dir(controller)
                .and_then(|dir| std::fs::read_to_string(dir.join(file)).ok())
                .unwrap_or_default()
        };
        if self.v2 {
            let memory = read("v2", "memory.events");
            let cpu = counter(&read("v2", "cpu.stat"), "usage_usec");
            return Counters {
                // Not `max`: it counts reclaim at the limit (a job
                // reclaiming the page cache an earlier one left in the
                // slot, say), not a kill.
                oom: counter(&memory, "oom_kill").unwrap_or(0),
                tasks: counter(&read("v2", "pids.events"), "max").unwrap_or(0),
                cpu: cpu.map(|usec| usec as f64 / 1e6),
            };
        }
        let control = read("memory", "memory.oom_control");
        let failcnt: u64 = read("memory", "memory.failcnt").trim().parse().unwrap_or(0);
        let cpu: Option<u64> = read("cpuacct", "cpuacct.usage").trim().parse().ok();
        Counters {
            oom: counter(&control, "oom_kill").unwrap_or(0).max(u64::from(
                failcnt > 0 && counter(&control, "under_oom").unwrap_or(0) > 0,
            )),
            tasks: counter(&read("pids", "pids.events"), "max").unwrap_or(0),
            cpu: cpu.map(|nanos| nanos as f64 / 1e9),
        }
    }

    /// The limits the job ran into, each as a line naming it.
    pub fn limits_hit(&self) -> Vec<String> {
        let mut hit = Vec::new();
        let now = self.counters();
        let oom = now.oom.saturating_sub(self.before.oom);
        let tasks = now.tasks.saturating_sub(self.before.tasks);
        if let (Some(bytes), true) = (self.limits.memory_max, oom > 0) {
            hit.push(format!(
                "the job reached its memory-max limit ({bytes} bytes) and the kernel killed a process of it"
            ));
        }
        if let (Some(max), true) = (self.limits.tasks_max, tasks > 0) {
            hit.push(format!(
                "the job reached its tasks-max limit ({max} processes and threads) and could not start more ({tasks} refused)"
            ));
        }
        hit
    }

    /// Kills what is left in the cgroup; a cgroup of the job's own is
    /// removed, the minion's slot kept for the next job. Processes still
    /// on their way out (bwrap's own pid 1 may outlive the bwrap the
    /// minion waited for by a few milliseconds) are not waited for in the
    /// slot: the next job's [`Cgroups::create`] does that.
    pub fn remove(self) {
        for (_, dir) in &self.dirs {
            if self.reused {
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
                signal_all(&processes(dir));
            } else {
                remove_dir(dir);
            }
        }
    }
}

/// The number after `key` in a flat-keyed file (`key value` lines).
fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == key).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_lowers_the_limits_but_never_raises_them() {
        let minion = JobLimits {
            memory_max: Some(1 << 30),
            tasks_max: Some(100),
            cpu_seconds: Some(60),
        };
        let spec =
            serde_json::json!({"a": {"type": "git", "memory-max": "512M", "tasks-max": 1000}});
        let lowered = minion.lowered_by(&spec).expect("valid");
        assert_eq!(lowered.memory_max, Some(512 << 20));
        assert_eq!(lowered.tasks_max, Some(100));
        assert_eq!(lowered.cpu_seconds, Some(60));
        let unlimited = JobLimits::default()
            .lowered_by(&serde_json::json!({"a": {"tasks-max": 5}}))
            .expect("valid");
        assert_eq!(unlimited.tasks_max, Some(5));
        for bad in [
            serde_json::json!({"a": {"memory-max": "lots"}}),
            serde_json::json!({"a": {"memory-max": 0}}),
            serde_json::json!({"a": {"tasks-max": -1}}),
            serde_json::json!({"a": {"memory-max": "99999999999T"}}),
        ] {
            let err = minion.lowered_by(&bad).expect_err("invalid");
            assert!(err.starts_with("field "), "{err}");
        }
    }

    #[test]
    fn own_cgroups_and_mount_points_are_parsed() {
        let own = "12:pids:/a\n4:cpu,cpuacct:/b\n0::/c\n";
        assert_eq!(own_path(own, "pids").as_deref(), Some("/a"));
        assert_eq!(own_path(own, "cpuacct").as_deref(), Some("/b"));
        assert_eq!(own_path(own, "memory"), None);
        let mounts = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
                      31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_point(mounts, "cgroup", Some("memory")),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(mount_point(mounts, "cgroup", Some("pids")), None);
        assert_eq!(
            mount_point(mounts, "cgroup2", None),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(counter("max 3\noom_kill 2\n", "oom_kill"), Some(2));
    }
}
