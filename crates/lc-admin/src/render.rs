//! Human renderings of the webapp's answers. Every function returns the
//! whole text to print, ending in a newline.

use lc_api::{JobInfo, LorryInfo, MaxJobs, Message, Queue, QueueState, RemovedJobs, Status};
use lc_base::timefmt;
use serde_json::Value;

use crate::table::{Table, clean};

/// The webapp's JSON, pretty-printed.
pub fn json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

pub fn status(status: &Status) -> String {
    let mut out = String::new();
    let mut summary = Table::headless(2);
    summary.row(&[
        "queue:",
        if status.running_queue {
            "running"
        } else {
            "stopped (no jobs are handed out)"
        },
    ]);
    summary.row(&["max jobs:", &limit(status.max_jobs)]);
    summary.row(&["disk free:", &size(i64::try_from(status.disk_free).ok())]);
    summary.row(&["time:", &status.timestamp]);
    let running = status
        .run_queue
        .iter()
        .filter(|e| e.lorry.running_job.is_some())
        .count();
    summary.row(&[
        "lorries:",
        &format!("{} ({running} running)", status.run_queue.len()),
    ]);
    out.push_str(&summary.render());

    out.push('\n');
    if status.run_queue.is_empty() {
        out.push_str("The run queue is empty.\n");
    } else {
        let mut queue = Table::new(&["PATH", "DUE", "LAST RUN", "EXIT", "INTERVAL", "DISK"]);
        for entry in &status.run_queue {
            let lorry = &entry.lorry;
            queue.row(&[
                lorry.path.as_str(),
                &entry.due_nice,
                &entry.last_run_nice,
                lorry.last_run_exit.as_deref().unwrap_or(""),
                &entry.interval_nice,
                &entry.disk_usage_nice,
            ]);
        }
        out.push_str(&queue.render());
    }

    if !status.hosts.is_empty() {
        out.push_str("\nUpstream Hosts:\n");
        let mut hosts = Table::new(&["HOST", "TYPE", "PROTOCOL", "LAST LISTED", "NEXT", "ERROR"]);
        for host in &status.hosts {
            hosts.row(&[
                host.host.as_str(),
                &host.host_type,
                &host.protocol,
                &host.last_run_nice,
                &host.due_nice,
                host.ls_last_error.as_deref().unwrap_or(""),
            ]);
        }
        out.push_str(&hosts.render());
    }

    if !status.config_problems.is_empty() {
        out.push_str("\nCONFGIT problems:\n");
        let mut problems = Table::new(&["FILE", "ITEM", "PROBLEM"]);
        for p in &status.config_problems {
            problems.row(&[p.file.as_str(), p.item.as_deref().unwrap_or(""), &p.problem]);
        }
        out.push_str(&problems.render());
    }
    if !status.warning_msg.is_empty() {
        out.push_str(&format!("\nwarning: {}\n", clean(&status.warning_msg)));
    }
    out
}

pub fn queue(queue: &Queue) -> String {
    if queue.queue.is_empty() {
        return "The run queue is empty.\n".to_owned();
    }
    let mut table = Table::new(&["#", "PATH"]).right(0);
    for (i, path) in queue.queue.iter().enumerate() {
        table.row(&[(i + 1).to_string(), path.clone()]);
    }
    table.render()
}

pub fn lorry(lorry: &LorryInfo) -> String {
    let mut t = Table::headless(2);
    t.row(&["path:", lorry.path.as_str()]);
    if !lorry.from_host.is_empty() {
        t.row(&[
            "from:".to_owned(),
            format!("{} {}", lorry.from_host, lorry.from_path),
        ]);
    }
    t.row(&["interval:", &timefmt::span(lorry.interval)]);
    t.row(&["timeout:", &timefmt::span(lorry.lorry_timeout)]);
    t.row(&[
        "state:",
        &match lorry.running_job {
            Some(job) => format!("running (job {job})"),
            None => "idle".to_owned(),
        },
    ]);
    t.row(&["last run:", &timefmt::utc(lorry.last_run)]);
    t.row(&["last exit:", lorry.last_run_exit.as_deref().unwrap_or("-")]);
    t.row(&[
        "last success:",
        &timefmt::utc(lorry.last_success.unwrap_or(0)),
    ]);
    t.row(&[
        "failures in a row:",
        &lorry.consecutive_failures.to_string(),
    ]);
    t.row(&["due:", &timefmt::utc(lorry.due)]);
    t.row(&["disk usage:", &size(lorry.disk_usage)]);
    if let Some(jobs) = &lorry.jobs {
        t.row(&["jobs:", &ids(jobs)]);
    }
    let mut out = t.render();
    out.push_str("spec:\n");
    out.push_str(&indented(&lorry.text));
    if let Some(error) = lorry.last_run_error.as_deref().filter(|e| !e.is_empty()) {
        out.push_str("last error:\n");
        out.push_str(&indented(error));
    }
    out
}

/// The state of a job in one word or two.
fn job_state(job: &JobInfo) -> String {
    match (job.exit.as_str(), job.kill_job) {
        (lc_api::EXIT_RUNNING, true) => "running, stop requested".to_owned(),
        (lc_api::EXIT_RUNNING, false) => "running".to_owned(),
        (exit, _) => format!("exit {exit}"),
    }
}

pub fn jobs(jobs: &[JobInfo], running_only: bool) -> String {
    if jobs.is_empty() {
        return if running_only {
            "No jobs are running.\n".to_owned()
        } else {
            "No jobs.\n".to_owned()
        };
    }
    let mut table =
        Table::new(&["JOB", "PATH", "STATE", "STARTED", "ENDED", "HOST", "PID"]).right(0);
    for job in jobs {
        table.row(&[
            job.job_id.to_string(),
            job.path.clone(),
            job_state(job),
            job.job_started.clone(),
            job.job_ended.clone(),
            job.host.clone(),
            job.pid.to_string(),
        ]);
    }
    table.render()
}

/// One job; its output with terminal control removed unless `raw`.
pub fn job(job: &JobInfo, raw: bool) -> String {
    let mut t = Table::headless(2);
    t.row(&["job:", &job.job_id.to_string()]);
    t.row(&["path:", job.path.as_str()]);
    t.row(&["state:", &job_state(job)]);
    t.row(&["minion:", &format!("{} pid {}", job.host, job.pid)]);
    t.row(&["started:", job.job_started.as_str()]);
    match job.ended {
        Some(ended) => {
            t.row(&["ended:", job.job_ended.as_str()]);
            t.row(&["took:", &timefmt::span(ended - job.started)]);
        }
        None => t.row(&["last update:", &timefmt::utc(job.updated)]),
    }
    t.row(&["disk usage:", &size(job.disk_usage)]);
    let mut out = t.render();
    if job.output.is_empty() {
        out.push_str("output: none\n");
    } else {
        out.push_str("output:\n");
        if raw {
            for line in job.output.lines() {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        } else {
            out.push_str(&indented(&job.output));
        }
    }
    out
}

pub fn message(message: &Message) -> String {
    format!("{}\n", clean(&message.message))
}

pub fn queue_state(state: &QueueState) -> String {
    format!("{}\n", clean(&state.message))
}

pub fn max_jobs(max: &MaxJobs) -> String {
    format!("max jobs: {}\n", limit(max.max_jobs))
}

/// `removed_jobs` answers; `kind` says which (`ghost`, `old`).
pub fn removed_jobs(removed: &RemovedJobs, kind: &str) -> String {
    match removed.removed_jobs.len() {
        0 => format!("No {kind} jobs to remove.\n"),
        1 => format!("Removed 1 {kind} job: {}\n", ids(&removed.removed_jobs)),
        n => format!("Removed {n} {kind} jobs: {}\n", ids(&removed.removed_jobs)),
    }
}

/// Any JSON object as `key: value` lines, `message` first; lists of
/// scalars on one line, anything deeper as one compact JSON line per item.
pub fn generic(value: &Value) -> String {
    let Value::Object(map) = value else {
        return format!("{}\n", scalar(value));
    };
    let mut out = String::new();
    if let Some(message) = map.get("message") {
        out.push_str(&format!("{}\n", scalar(message)));
    }
    let mut t = Table::headless(2);
    let mut blocks = String::new();
    for (key, value) in map.iter().filter(|(k, _)| k.as_str() != "message") {
        match value {
            Value::Array(items) if items.iter().all(|v| !v.is_array() && !v.is_object()) => {
                let text = if items.is_empty() {
                    "none".to_owned()
                } else {
                    items.iter().map(scalar).collect::<Vec<_>>().join(", ")
                };
                t.row(&[format!("{key}:"), text]);
            }
            Value::Array(items) => {
                blocks.push_str(&format!("{}:\n", clean(key)));
                for item in items {
                    blocks.push_str(&format!("  {}\n", clean(&item.to_string())));
                }
            }
            Value::Object(_) => {
                blocks.push_str(&format!("{}:\n", clean(key)));
                blocks.push_str(&indented(
                    &serde_json::to_string_pretty(value).unwrap_or_default(),
                ));
            }
            other => t.row(&[format!("{key}:"), scalar(other)]),
        }
    }
    out.push_str(&t.render());
    out.push_str(&blocks);
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => clean(s),
        Value::Null => "-".to_owned(),
        other => clean(&other.to_string()),
    }
}

fn limit(max: Option<i64>) -> String {
    max.map_or_else(|| "no limit".to_owned(), |n| n.to_string())
}

fn size(bytes: Option<i64>) -> String {
    match timefmt::bytes(bytes) {
        s if s.is_empty() => "unknown".to_owned(),
        s => s,
    }
}

fn ids(ids: &[i64]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `text` with every line indented by two spaces, ending in a newline, and
/// terminal control removed ([`crate::terminal::printable`]).
fn indented(text: &str) -> String {
    let mut out = String::new();
    for line in crate::terminal::printable(text).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Events, one line each: time, id, type, lorry or host, then the body's
/// fields as `key=value` (text from outside made printable).
pub fn events(events: &[lc_api::Event]) -> String {
    let mut out = String::new();
    for event in events {
        let about = event
            .path
            .as_deref()
            .or(event.host.as_deref())
            .unwrap_or("-");
        let mut line = format!(
            "{}  #{}  {}  {}",
            timefmt::utc(event.time),
            event.id,
            event.event_type.name(),
            clean(about)
        );
        if let Value::Object(fields) = &event.body {
            for (key, value) in fields {
                let value = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                line.push_str(&format!("  {key}={}", clean(&value)));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Events as JSON Lines, one object each (`--json` with `--follow`).
pub fn event_lines(events: &[lc_api::Event]) -> String {
    let mut out = String::new();
    for event in events {
        out.push_str(&serde_json::to_string(event).unwrap_or_default());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generic_answers_list_every_field() {
        let out = generic(&json!({
            "message": "read 2 lorries",
            "added": ["a", "b"],
            "removed": [],
            "dry_run": true,
            "problems": [{"file": "x.lorry", "problem": "bad"}],
        }));
        assert!(out.starts_with("read 2 lorries\n"), "{out}");
        assert!(out.contains("added:    a, b\n"), "{out}");
        assert!(out.contains("removed:  none\n"), "{out}");
        assert!(out.contains("dry_run:  true\n"), "{out}");
        assert!(
            out.contains("problems:\n  {\"file\":\"x.lorry\",\"problem\":\"bad\"}\n"),
            "{out}"
        );
        assert_eq!(generic(&json!("plain")), "plain\n");
    }

    #[test]
    fn status_lists_hosts_and_confgit_problems() {
        let status = Status {
            running_queue: false,
            run_queue: Vec::new(),
            hosts: vec![lc_api::HostInfo {
                host: "git.example.org".into(),
                host_type: "gitlab".into(),
                protocol: "https".into(),
                lorry_interval: 3600,
                lorry_timeout: 3600,
                ls_interval: 3600,
                ls_last_run: 0,
                ls_last_error: Some("401 Unauthorized".into()),
                last_run_nice: "never".into(),
                ls_interval_nice: "1 h".into(),
                due_nice: "now".into(),
                prefixmap: json!({}),
                ignore: Vec::new(),
            }],
            max_jobs: Some(2),
            disk_free: 3 * 1024 * 1024 * 1024,
            disk_free_mib: 3072.0,
            disk_free_gib: 3.0,
            timestamp: "2023-11-14 22:13:20 UTC".into(),
            config_problems: vec![lc_api::ConfigProblem {
                file: "bad.lorry".into(),
                item: None,
                problem: "not JSON".into(),
            }],
            publish_failures: false,
            links: true,
            warning_msg: String::new(),
        };
        assert_eq!(
            self::status(&status),
            "queue:      stopped (no jobs are handed out)\n\
             max jobs:   2\n\
             disk free:  3.0 GiB\n\
             time:       2023-11-14 22:13:20 UTC\n\
             lorries:    0 (0 running)\n\
             \n\
             The run queue is empty.\n\
             \n\
             Upstream Hosts:\n\
             HOST             TYPE    PROTOCOL  LAST LISTED  NEXT  ERROR\n\
             git.example.org  gitlab  https     never        now   401 Unauthorized\n\
             \n\
             CONFGIT problems:\n\
             FILE       ITEM  PROBLEM\n\
             bad.lorry        not JSON\n"
        );
    }

    #[test]
    fn removed_jobs_reads_well() {
        let r = |v: Vec<i64>| RemovedJobs { removed_jobs: v };
        assert_eq!(removed_jobs(&r(vec![]), "old"), "No old jobs to remove.\n");
        assert_eq!(
            removed_jobs(&r(vec![3]), "ghost"),
            "Removed 1 ghost job: 3\n"
        );
        assert_eq!(
            removed_jobs(&r(vec![1, 2]), "old"),
            "Removed 2 old jobs: 1, 2\n"
        );
    }
}
