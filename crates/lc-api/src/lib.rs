//! Wire types of the `/1.0/...` HTTP API.
//!
//! These are the only serialisable API types in the project: the webapp
//! produces them, the minion and the admin CLI consume them. Key names are
//! those of the original Lorry Controller and must not change; fields that
//! the original did not have are additions, never renames.

use serde::{Deserialize, Serialize};

mod batch;
mod provenance;
mod result;
pub use batch::{
    BATCH_MAX, BatchCheck, BatchJob, BatchLorry, BatchResult, BatchSpec, is_compared_ref,
    refs_digest,
};
pub use provenance::{
    ChannelInfo, ChannelPointing, Channels, LorryDiff, LorryHistory, LorryRefs, MovedRef,
    PinCounts, RefHistoryEntry, RefTip, SnapshotDiff, SnapshotInfo, SnapshotManifest, Snapshots,
};
pub use result::{
    JOB_RESULT_VERSION, JobResult, PinOutcome, PinResult, PreservedRef, Pushed, RefChange,
    SpecResult,
};

/// Exit value of a job that is still running, as the original spelled it.
pub const EXIT_RUNNING: &str = "no";

/// Everything the webapp knows about one lorry (one mirror).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LorryInfo {
    /// Path of the repository on the Downstream Host; the lorry's identity.
    pub path: String,
    /// The spec handed to `lorry`: a JSON map with the single key `path`.
    pub text: String,
    /// Upstream Host that generated this lorry; empty for CONFGIT lorries.
    pub from_host: String,
    /// Repository path on the Upstream Host; empty for CONFGIT lorries.
    pub from_path: String,
    /// Seconds between runs.
    pub interval: i64,
    /// Seconds a job may run before the webapp asks for it to be killed.
    pub lorry_timeout: i64,
    /// Unix time the last job started; 0 when never run.
    pub last_run: i64,
    /// Exit code of the last finished job, as a string.
    pub last_run_exit: Option<String>,
    /// Output of the last failed job.
    pub last_run_error: Option<String>,
    /// Job currently running for this lorry.
    pub running_job: Option<i64>,
    /// Bytes used by the lorry's working area after its last job.
    pub disk_usage: Option<i64>,
    /// Unix time the lorry becomes due (`last_run + interval`).
    pub due: i64,
    /// Unix time its last successful job ended; `None` when none has.
    #[serde(default)]
    pub last_success: Option<i64>,
    /// Failed jobs since the last successful one.
    #[serde(default)]
    pub consecutive_failures: i64,
    /// Ids of the jobs the webapp remembers for this lorry (only in `/1.0/lorry/<path>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<i64>>,
    /// Unix time the lorry was last checked without a job: its Upstream
    /// Host said it was unchanged, and that counted as a successful run
    /// (`last_run` and `last_success` moved too). Absent when it never was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_without_job: Option<i64>,
    /// What said so: `unchanged per manifest` or `unchanged per host
    /// activity`. Present with `last_checked_without_job`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_without_job_how: Option<String>,
    /// Unix time its latest job (a real one) started. Present with
    /// `last_checked_without_job`; the lorry's latest run was that check
    /// when `last_checked_without_job` is later than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_job_run: Option<i64>,
}

/// One row of the run queue in `/1.0/status`: lorry info plus readable times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    #[serde(flatten)]
    pub lorry: LorryInfo,
    pub interval_nice: String,
    pub due_nice: String,
    pub last_run_nice: String,
    pub disk_usage_nice: String,
}

/// Answer of `POST /1.0/give-me-job`: `{"job_id": null}` or the lorry plus `job_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GiveMeJob {
    pub job_id: Option<i64>,
    #[serde(flatten)]
    pub lorry: Option<LorryInfo>,
    /// A batch of lorries to check (only for a minion that asked with
    /// `batch=N`; `job_id` is then null, so a client that does not know
    /// batches sees no job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchJob>,
}

/// Everything the webapp knows about one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub job_id: i64,
    /// Host name the minion gave in `give-me-job`.
    pub host: String,
    /// Process id the minion gave in `give-me-job`.
    pub pid: i64,
    pub path: String,
    /// `"no"` while running, otherwise the exit code.
    pub exit: String,
    /// Whether the minion must kill the job.
    pub kill_job: bool,
    /// stdout and stderr of the job, in arrival order.
    pub output: String,
    pub disk_usage: Option<i64>,
    pub disk_usage_nice: String,
    /// Start, `YYYY-MM-DD HH:MM:SS UTC`.
    pub job_started: String,
    /// End, same format; empty while running.
    pub job_ended: String,
    /// Unix times behind the two fields above, and of the last update.
    pub started: i64,
    pub ended: Option<i64>,
    pub updated: i64,
    /// What the job did, as lorry reported it ([`JobResult`], JSON with a
    /// `version`), once the job has ended with one; otherwise null.
    #[serde(default)]
    pub result: Option<serde_json::Value>,
}

/// A job in the run queue of `/1.0/list-running-jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningJobs {
    pub running_jobs: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobIds {
    pub job_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    pub queue: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxJobs {
    pub max_jobs: Option<i64>,
}

/// Answer of `start-queue` and `stop-queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueState {
    pub running_queue: bool,
    pub message: String,
}

/// A plain acknowledgement of a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub message: String,
}

/// Answer of `remove-ghost-jobs`: the jobs that were ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedGhostJobs {
    pub removed_jobs: Vec<i64>,
}

/// Answer of `remove-old-jobs`: the jobs that were forgotten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedJobs {
    pub removed_jobs: Vec<i64>,
}

/// An Upstream Host as shown in `/1.0/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub host: String,
    #[serde(rename = "type")]
    pub host_type: String,
    pub protocol: String,
    pub lorry_interval: i64,
    pub lorry_timeout: i64,
    pub ls_interval: i64,
    /// Unix time of the last successful listing; 0 when never listed.
    pub ls_last_run: i64,
    pub ls_last_error: Option<String>,
    pub last_run_nice: String,
    pub ls_interval_nice: String,
    pub due_nice: String,
    pub prefixmap: serde_json::Value,
    pub ignore: Vec<String>,
}

/// A problem found while reading CONFGIT, shown until it is fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// File in CONFGIT, relative to its root.
    pub file: String,
    /// Spec or section inside the file, when the problem is that narrow.
    pub item: Option<String>,
    pub problem: String,
}

/// `GET /1.0/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub running_queue: bool,
    pub run_queue: Vec<QueueEntry>,
    pub hosts: Vec<HostInfo>,
    pub max_jobs: Option<i64>,
    pub disk_free: u64,
    pub disk_free_mib: f64,
    pub disk_free_gib: f64,
    pub timestamp: String,
    pub config_problems: Vec<ConfigProblem>,
    pub publish_failures: bool,
    /// Always true; the original's status had it (for its page template,
    /// which read the same dictionary).
    #[serde(default = "yes")]
    pub links: bool,
    pub warning_msg: String,
}

fn yes() -> bool {
    true
}

/// The body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /1.0/read-configuration`: what reading CONFGIT changed in STATEDB,
/// or, with `dry_run`, what it would change. Paths and host names only:
/// host secrets never appear here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadConfigurationSummary {
    pub dry_run: bool,
    pub lorries_added: Vec<String>,
    pub lorries_changed: Vec<String>,
    /// Includes the lorries generated from removed Upstream Hosts.
    pub lorries_removed: Vec<String>,
    pub lorries_unchanged: usize,
    pub hosts_added: Vec<String>,
    pub hosts_changed: Vec<String>,
    pub hosts_removed: Vec<String>,
    pub problems: Vec<ConfigProblem>,
}

/// `POST /1.0/ls-troves` and `POST /1.0/force-ls-troves`: what listing each
/// Upstream Host did. Host names, paths and messages only: host secrets
/// never appear here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsTrovesSummary {
    pub hosts: Vec<HostListing>,
}

/// The listing of one Upstream Host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostListing {
    pub host: String,
    /// Whether the listing succeeded (and was applied, perhaps without removals).
    pub listed: bool,
    /// Repositories the host listed.
    pub repositories: usize,
    /// Repositories skipped by `ignore`.
    pub ignored: usize,
    /// Repositories no `prefixmap` prefix maps.
    pub unmapped: usize,
    pub lorries_added: Vec<String>,
    pub lorries_changed: Vec<String>,
    pub lorries_removed: Vec<String>,
    pub lorries_unchanged: usize,
    /// What went wrong: the listing's failure, the shrink guard, paths
    /// already taken, bad paths. Also kept in the host's `ls_last_error`.
    pub errors: Vec<String>,
}

/// What kind of state change an [`Event`] records (its `type`). README
/// lists each with its `body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventType {
    /// A minion was given a job.
    JobStarted,
    /// A job ended (the minion's final report, or ended as a ghost).
    JobEnded,
    /// A lorry's job failed; the body says how many times in a row.
    LorryFailed,
    /// A lorry's job succeeded after one or more failures.
    LorryRecovered,
    /// A lorry was not mirrored successfully within N × its interval;
    /// recorded once per such spell.
    LorryOverdue,
    /// Listing an Upstream Host failed.
    HostListingFailed,
    /// An Upstream Host's listing would have removed more lorries than the
    /// shrink limit allows: nothing was removed.
    HostShrinkRefused,
    /// A read of CONFGIT found problems different from the last read's.
    ConfigProblems,
    /// The run queue was stopped.
    QueueStopped,
    /// The run queue was started.
    QueueStarted,
    /// A job found that upstream rewrote (forced) or deleted refs; the body
    /// lists them, each with where its old tip was preserved.
    UpstreamRefsRewritten,
    /// STATEDB's file system has less free space than `--min-free-disk`:
    /// no jobs are handed out.
    DiskLow,
    /// Free space is back above `--min-free-disk` after disk-low.
    DiskOk,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::JobStarted,
        EventType::JobEnded,
        EventType::LorryFailed,
        EventType::LorryRecovered,
        EventType::LorryOverdue,
        EventType::HostListingFailed,
        EventType::HostShrinkRefused,
        EventType::ConfigProblems,
        EventType::QueueStopped,
        EventType::QueueStarted,
        EventType::UpstreamRefsRewritten,
        EventType::DiskLow,
        EventType::DiskOk,
    ];

    /// The name in JSON and in `?type=`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::JobStarted => "job-started",
            EventType::JobEnded => "job-ended",
            EventType::LorryFailed => "lorry-failed",
            EventType::LorryRecovered => "lorry-recovered",
            EventType::LorryOverdue => "lorry-overdue",
            EventType::HostListingFailed => "host-listing-failed",
            EventType::HostShrinkRefused => "host-shrink-refused",
            EventType::ConfigProblems => "config-problems",
            EventType::QueueStopped => "queue-stopped",
            EventType::QueueStarted => "queue-started",
            EventType::UpstreamRefsRewritten => "upstream-refs-rewritten",
            EventType::DiskLow => "disk-low",
            EventType::DiskOk => "disk-ok",
        }
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One state change, as `GET /1.0/events` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing, never reused: `?since=` takes the last one seen.
    pub id: i64,
    /// Unix seconds.
    pub time: i64,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The lorry it is about, if any.
    pub path: Option<String>,
    /// The Upstream Host it is about, if any.
    pub host: Option<String>,
    /// Details of the type; never a secret.
    pub body: serde_json::Value,
}

/// One webhook and how its deliveries stand, as `GET /1.0/webhooks`
/// answers it. Never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub name: String,
    /// Where events are POSTed, credentials hidden.
    pub url: String,
    /// The event types sent (all when empty).
    pub types: Vec<EventType>,
    /// Only events about lorries or hosts whose name starts with this.
    pub prefix: Option<String>,
    /// Whether deliveries carry `X-Lorry-Signature`.
    pub signed: bool,
    /// The id of the last event delivered.
    pub delivered: i64,
    /// Events waiting to be delivered.
    pub pending: i64,
    /// Failed attempts in a row.
    pub failures: i64,
    /// Whether it has failed so often in a row that an admin should look.
    pub failing: bool,
    pub last_error: Option<String>,
    /// Unix seconds.
    pub last_attempt: Option<i64>,
    pub last_success: Option<i64>,
}

/// `GET /1.0/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhooks {
    pub webhooks: Vec<Webhook>,
}

/// `GET /1.0/events`: one page of events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Events {
    pub events: Vec<Event>,
    /// Give as `since` for the next page (the last event's id, or the
    /// `since` asked for when the page is empty).
    pub next_since: i64,
    /// Whether more events matched than the page holds.
    pub more: bool,
}
