//! Keeping a job's processes together: every process a job starts carries
//! a marker in its environment, so that it can be found and killed even
//! after it left lorry's process group (`setsid`, double forks) or after
//! the minion that started it was killed; and the minion is a child
//! subreaper, so such orphans stay below it instead of going to init.
//!
//! Linux only (`/proc`, `PR_SET_CHILD_SUBREAPER`). A process that clears
//! its environment and leaves the group escapes; under systemd the unit's
//! cgroup still holds it (`KillMode=control-group`).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// The environment variable marking a job's processes.
pub const MARKER_VAR: &str = "LORRY_CONTROLLER_MINION_JOB";

/// Makes the minion a child subreaper: descendants of its jobs whose
/// parents exit are re-parented to the minion rather than to init, so they
/// remain the minion's to find, kill and reap.
pub fn become_subreaper() {
    match nix::sys::prctl::set_child_subreaper(true) {
        Ok(()) => tracing::debug!("the minion is a child subreaper"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot become a child subreaper; orphans of jobs go to init")
        }
    }
}

/// A marker no other job has: the minion's pid, the job id, the time and
/// a counter (several minions may run in one process in tests).
pub fn new_marker(job_id: i64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}.{job_id}.{nanos}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The live processes whose environment carries `marker` (the minion
/// itself never does). Processes of other users cannot be read and are
/// not listed.
pub fn processes_with(marker: &str) -> BTreeSet<Pid> {
    let needle = format!("{MARKER_VAR}={marker}");
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
        })
        .filter_map(|pid| i32::try_from(pid).ok().map(Pid::from_raw))
        .collect()
}

/// The parent and state letter of `pid`, from `/proc/<pid>/stat`.
fn parent_and_state(pid: Pid) -> Option<(i32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((parent, state))
}

/// The start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`): with the pid it names one process, never a later
/// one that reused the pid.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3; the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid`, started at `start`, is still running.
pub fn is_running(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
        && parent_and_state(Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)))
            .is_some_and(|(_, state)| state != 'Z')
}

/// Sends SIGKILL to every process carrying `marker`, then reaps those that
/// were the minion's children (re-parented to it as a subreaper). Repeats
/// for a while, since a process may fork while the others are killed.
/// Returns how many processes were killed.
pub async fn kill_marked(marker: &str) -> usize {
    let mut killed = BTreeSet::new();
    for _ in 0..50 {
        let found = processes_with(marker);
        let alive: Vec<Pid> = found
            .into_iter()
            .filter(|&pid| parent_and_state(pid).is_some_and(|(_, state)| state != 'Z'))
            .collect();
        if alive.is_empty() {
            break;
        }
        for pid in alive {
            if kill(pid, Signal::SIGKILL).is_ok() {
                killed.insert(pid);
            }
        }
        reap(&killed);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    reap(&killed);
    killed.len()
}

/// Collects the exit of those of `pids` that are the minion's own
/// children and have ended; never touches any other child (lorry itself
/// is waited for by tokio).
pub fn reap(pids: &BTreeSet<Pid>) {
    let own = i32::try_from(std::process::id()).unwrap_or(0);
    for &pid in pids {
        if parent_and_state(pid).is_some_and(|(parent, state)| parent == own && state == 'Z') {
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_differ_and_start_times_name_processes() {
        assert_ne!(new_marker(1), new_marker(1));
        let own = std::process::id();
        let start = start_time(own).expect("own start time");
        assert!(is_running(own, start));
        assert!(!is_running(own, start + 1));
        assert!(!is_running(u32::MAX, start));
    }
}
