//! `GET /1.0/status`: the JSON status, built at most once per state of
//! STATEDB and second, and served from memory with an `ETag`.
//!
//! # What is cached, and for how long
//! The body depends on STATEDB and on the time: `timestamp`, each lorry's
//! `due_nice` ("in 40 s") and the queue's order (due lorries first) move
//! with the clock even when nothing is written. A body is kept while
//! STATEDB's generation ([`lc_core::db::StateDb::generation`], which
//! changes with every committed change, from this process or another) and
//! whether the disk is short of `--min-free-disk` (`warning_msg`) stay
//! what they were when it was built, for at most [`TIME_STEP`] seconds of
//! its `timestamp` (the pretended time in tests). So a change is seen by
//! the next request, always; with nothing written, the status is a
//! snapshot at most 5 s old, consistent with its own `timestamp` (its
//! `due_nice` are relative to it). Why 5 s and not 1: a rebuilt body has
//! a new ETag, so a client polling every second would otherwise never get
//! a 304, and at 100,000 lorries each rebuild costs a few hundred ms and
//! every polling client ~45 MB. `disk_free` may be as old as the body.
//!
//! Slow clients: while an older body is still being sent (a response
//! holds its body until its last slice is taken) and STATEDB has not
//! changed, the current body is served up to [`SENDING_MAX`] seconds old
//! rather than a third built: at 100,000 lorries a body is 47 MB and 64
//! clients take longer than [`TIME_STEP`] to receive it.
//!
//! A body is built only when a client asks, never two at once. While one
//! is being built, a request of the same generation gets the body held
//! (if its time is at most [`STALE_MAX`] seconds past) rather than
//! waiting; after a change, requests wait for the new body. The ETag is
//! the key (generation, time the body was built, low disk) and this
//! process's start, so a restarted webapp never repeats one;
//! `If-None-Match` naming it gets a 304.
//!
//! # Built from the rows that changed
//! The builder keeps, beside the last body, where each lorry's entry sits
//! in it and what places it in the queue ([`QueueIndex`], by rowid). A
//! build asks STATEDB which `lorries` rows changed since the last one
//! ([`lc_core::db::StateDb::read_tracked`]), reads those rows alone,
//! sorts all lorries in Rust ([`lc_core::db::queue_place`], the order the
//! query sorts by) and writes the new body: a changed lorry's entry
//! serialised afresh, every other one copied from the last body with its
//! `due_nice` written anew (the one part that moves with the clock). The
//! whole queue is read (in the query's order, streamed) only for the first
//! body, after another process wrote STATEDB, or after a failed build.
//! `incremental_builds_equal_full_builds` checks the two give the same
//! bytes after random changes.
//!
//! # Memory
//! The body is written straight from the rows or the last body into one
//! buffer, sized from the previous body: no vector of lorries. Responses
//! share it (`Bytes`). While a body is built the last one is kept (it is
//! copied from); the index is about 60 bytes and the path per lorry.

use std::collections::HashMap;

use futures_util::StreamExt;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use lc_api::{ConfigProblem, HostInfo};
use lc_base::timefmt;
use lc_core::db::{LorryChanges, LorryTracker, QueueRow, ReadTx, StateDb};

use crate::AppState;
use crate::error::ApiError;

/// Seconds a body is served for while STATEDB does not change.
pub const TIME_STEP: i64 = 5;

/// Oldest body (in seconds of its time) served while the next one is
/// being built, when STATEDB has not changed since it was.
pub const STALE_MAX: i64 = TIME_STEP + 2;

/// Oldest body (in seconds of its time) served, when STATEDB has not
/// changed since it was, while an older body is still being sent: so
/// that slow clients of full bodies (47 MB at 100,000 lorries) keep at
/// most two alive, not one more every [`TIME_STEP`].
pub const SENDING_MAX: i64 = 30;

/// A body is sent in slices of this size (no copy).
const SEND_CHUNK: usize = 1 << 20;

/// What a body was built from: STATEDB's generation, the second, and
/// whether the disk was short of `--min-free-disk` (`warning_msg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    generation: u64,
    now: i64,
    low_disk: bool,
}

/// A built JSON status.
pub struct StatusBody {
    key: Key,
    pub etag: HeaderValue,
    pub json: Bytes,
    /// The body gzipped, made for the first client that accepts it.
    gzip: tokio::sync::OnceCell<(HeaderValue, Bytes)>,
}

impl StatusBody {
    /// The body gzipped (fastest level: JSON this repetitive shrinks
    /// about tenfold even so), and its ETag: compressed once, on a
    /// blocking thread, by the first request that asks; the others wait
    /// for that one.
    pub async fn gzipped(&self) -> Result<&(HeaderValue, Bytes), ApiError> {
        self.gzip
            .get_or_try_init(|| async {
                let json = self.json.clone();
                let gzip = tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    let mut encoder = flate2::write::GzEncoder::new(
                        Vec::with_capacity(json.len() / 8 + 64),
                        flate2::Compression::fast(),
                    );
                    encoder.write_all(&json)?;
                    encoder.finish()
                })
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
                // A strong ETag names one representation (RFC 9110
                // §8.8.3): the gzipped one gets its own.
                let tag = self.etag.as_bytes();
                let tag = format!(
                    "{}-gzip\"",
                    String::from_utf8_lossy(tag.strip_suffix(b"\"").unwrap_or(tag))
                );
                let etag = HeaderValue::from_str(&tag).map_err(ApiError::internal)?;
                Ok::<_, ApiError>((etag, Bytes::from(gzip)))
            })
            .await
    }
}

/// Whether `Accept-Encoding` of `headers` accepts gzip: a `gzip` or
/// `x-gzip` coding, or `*`, whose `q` is not zero (RFC 9110 §12.5.3).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    // RFC 9110 12.5.3: a coding named explicitly has its own weight; `*`
    // stands only for the codings not named.
    let mut named: Option<bool> = None;
    let mut any: Option<bool> = None;
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
    {
        let mut parts = coding.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let refused = parts.any(|param| {
            let param = param.trim_ascii();
            param.len() > 2
                && param[..2].eq_ignore_ascii_case(b"q=")
                && param[2..].iter().all(|&b| b == b'0' || b == b'.')
        });
        if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            named = Some(named.unwrap_or(false) || !refused);
        } else if name == b"*" {
            any = Some(any.unwrap_or(false) || !refused);
        }
    }
    named.or(any).unwrap_or(false)
}

/// The body served last, and the one build allowed at a time.
pub struct StatusCache {
    /// This process's start (nanoseconds since the epoch): in the ETag, so
    /// that a restarted webapp never answers 304 for an older body.
    boot: u128,
    current: Mutex<Option<Arc<StatusBody>>>,
    /// Held by the one build at a time, with what it builds from (`None`
    /// before the first build and after a failed one).
    building: Arc<tokio::sync::Mutex<Option<QueueIndex>>>,
    /// Bodies built, for tests and the bench.
    pub builds: std::sync::atomic::AtomicU64,
    /// The bodies responses were given, alive while one is being sent.
    sending: Mutex<Vec<std::sync::Weak<StatusBody>>>,
}

impl Default for StatusCache {
    fn default() -> StatusCache {
        StatusCache {
            boot: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            current: Mutex::new(None),
            building: Arc::default(),
            builds: Default::default(),
            sending: Mutex::default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl StatusCache {
    /// The current body: the one held if it is current, else a new one.
    pub async fn current(&self, state: &AppState) -> Result<Arc<StatusBody>, ApiError> {
        let key = key_now(state)?;
        let held = lock(&self.current).clone();
        if let Some(body) = &held
            && (body.key.serves(key)
                || (body.key.same_state(key)
                    && key.now - body.key.now <= SENDING_MAX
                    && self.older_being_sent(body)))
        {
            return Ok(Arc::clone(body));
        }
        let mut guard = match Arc::clone(&self.building).try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                // A build is running: a body of the same state, only a
                // little older, is served rather than waited for.
                if let Some(body) = &held
                    && body.key.same_state(key)
                    && key.now - body.key.now <= STALE_MAX
                {
                    return Ok(Arc::clone(body));
                }
                Arc::clone(&self.building).lock_owned().await
            }
        };
        drop(held);
        // The build waited for may have been this one's.
        let key = key_now(state)?;
        let size_hint = {
            let mut current = lock(&self.current);
            match current.as_ref() {
                Some(body) if body.key.serves(key) => return Ok(Arc::clone(body)),
                Some(body) if body.key.generation != key.generation => {
                    // Nothing may serve it any more: let it go before the
                    // next one is built.
                    current.take().map_or(0, |b| b.json.len())
                }
                Some(body) => body.json.len(),
                None => 0,
            }
        };
        // On a task of its own, holding the build's lock, so a client
        // hanging up does not waste the build: the next request finds it.
        // A failed build leaves no index: the next one reads every row.
        let index = guard.take();
        let state2 = state.clone();
        let body = tokio::spawn(async move {
            let (body, index) = build(&state2, key, size_hint, index).await?;
            let body = Arc::new(body);
            *guard = Some(index);
            let cache = &state2.status_cache;
            cache
                .builds
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *lock(&cache.current) = Some(Arc::clone(&body));
            drop(guard);
            Ok::<_, ApiError>(body)
        })
        .await
        .map_err(ApiError::internal)??;
        Ok(body)
    }
}

impl Key {
    /// Whether a body built at this key may answer a request at `now`.
    fn serves(self, now: Key) -> bool {
        self.same_state(now) && (0..TIME_STEP).contains(&(now.now - self.now))
    }

    /// Whether only the time differs.
    fn same_state(self, other: Key) -> bool {
        (self.generation, self.low_disk) == (other.generation, other.low_disk)
    }
}

impl StatusCache {
    /// Whether a body other than `current` is still being sent.
    fn older_being_sent(&self, current: &Arc<StatusBody>) -> bool {
        let mut sending = lock(&self.sending);
        sending.retain(|b| b.strong_count() > 0);
        sending
            .iter()
            .any(|b| !std::ptr::eq(b.as_ptr(), Arc::as_ptr(current)))
    }

    /// A response body of `bytes` (of `body`: its JSON or gzip), in
    /// slices of [`SEND_CHUNK`] sharing its memory, that keeps `body`
    /// counted as being sent until the last slice is taken.
    pub fn sending(&self, body: Arc<StatusBody>, bytes: Bytes) -> axum::body::Body {
        {
            let mut sending = lock(&self.sending);
            if !sending
                .iter()
                .any(|b| std::ptr::eq(b.as_ptr(), Arc::as_ptr(&body)))
            {
                sending.push(Arc::downgrade(&body));
            }
        }
        let chunks: Vec<Bytes> = (0..bytes.len())
            .step_by(SEND_CHUNK)
            .map(|at| bytes.slice(at..bytes.len().min(at + SEND_CHUNK)))
            .collect();
        let mut held = Some(body);
        let chunks = futures_util::stream::iter(chunks).map(move |chunk| {
            // Keeps the body alive until the stream is dropped.
            let _ = &mut held;
            Ok::<_, std::convert::Infallible>(chunk)
        });
        axum::body::Body::from_stream(chunks)
    }
}

/// STATEDB's generation, read before the transaction that reads the
/// state (so the state is at least that new), the time, and the disk.
fn key_now(state: &AppState) -> Result<Key, ApiError> {
    Ok(Key {
        generation: state.db.generation()?,
        now: state.db.now(),
        low_disk: state.disk_free() < state.config.min_free_disk,
    })
}

/// Whether `If-None-Match` of `headers` names `etag` (weak comparison, as
/// RFC 9110 §13.1.2 asks for this header; `*` matches any). Anything that
/// is not a list of entity tags matches nothing, so the body is sent.
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|tag| tag.trim_ascii())
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == ours)
}

/// What the status shows besides STATEDB, read before the transaction.
struct Outside {
    disk_free: u64,
    publish_failures: bool,
    warning_msg: String,
}

async fn build(
    state: &AppState,
    key: Key,
    size_hint: usize,
    index: Option<QueueIndex>,
) -> Result<(StatusBody, QueueIndex), ApiError> {
    let outside = Outside {
        disk_free: state.disk_free(),
        publish_failures: state.config.publish_failures,
        warning_msg: state.disk_warning().unwrap_or_default(),
    };
    let boot = state.status_cache.boot;
    let db = Arc::clone(&state.db);
    tokio::task::spawn_blocking(move || {
        let (now, json, index) = build_json(&db, index, &outside, size_hint)?;
        let key = Key { now, ..key };
        let etag = HeaderValue::from_str(&format!(
            "\"{boot:x}-{}-{now}{}\"",
            key.generation,
            if key.low_disk { "-low" } else { "" }
        ))
        .map_err(ApiError::internal)?;
        let body = StatusBody {
            key,
            etag,
            json,
            gzip: tokio::sync::OnceCell::new(),
        };
        Ok((body, index))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Builds the JSON status from `index` (the last build's) and the rows
/// changed since, or from every row when there is no index or STATEDB
/// cannot say what changed; answers its time, the body and the index of it.
fn build_json(
    db: &StateDb,
    index: Option<QueueIndex>,
    outside: &Outside,
    size_hint: usize,
) -> lc_core::Result<(i64, Bytes, QueueIndex)> {
    let (tracker, last) = match index {
        Some(QueueIndex {
            tracker,
            body,
            entries,
        }) => (tracker, Some((body, entries))),
        None => (db.lorry_tracker(), None),
    };
    let (now, out, entries) = db.read_tracked(&tracker, |tx, changes| {
        let now = tx.now();
        let head = Head::read(tx, now)?;
        // Room for the previous body and a little growth: one
        // allocation, whose untouched pages cost nothing.
        let mut out = Vec::with_capacity(size_hint + size_hint / 8 + 4096);
        let entries = match (changes, last) {
            (LorryChanges::Rows(rows), Some((body, entries))) => {
                let mut queue = Incremental::new(tx, &rows, body, entries)?;
                write_status(&mut out, &head, outside, |out| queue.write(out, now))?;
                queue.entries
            }
            (_, last) => {
                // Nothing to copy from: the last body goes first. Its
                // index's table is kept, emptied: freeing a block of
                // megabytes makes glibc's malloc keep that much more in
                // its arenas from then on (its mmap threshold follows the
                // largest block freed), which the webapp's resident
                // memory showed.
                let mut entries = last.map_or_else(HashMap::new, |(body, mut entries)| {
                    drop(body);
                    entries.clear();
                    entries
                });
                write_status(&mut out, &head, outside, |out| {
                    let mut first = true;
                    tx.for_each_queue_row(|row| {
                        if !std::mem::take(&mut first) {
                            out.push(b',');
                        }
                        let rowid = row.rowid;
                        let entry = write_fresh(out, row, now)?;
                        entries.insert(rowid, entry);
                        Ok::<_, lc_core::Error>(())
                    })?
                })?;
                entries
            }
        };
        Ok((now, out, entries))
    })?;
    let body = Bytes::from(out);
    let index = QueueIndex {
        tracker,
        body: body.clone(),
        entries,
    };
    Ok((now, body, index))
}

/// What the last build wrote the run queue from: the tracker of the
/// `lorries` rows changed since, its body, and where each lorry's entry
/// sits in it, by rowid.
pub struct QueueIndex {
    tracker: LorryTracker,
    body: Bytes,
    entries: HashMap<i64, Entry>,
}

/// One lorry's entry in a body: what places it in the queue, and where it
/// is (`start..end`, its `due_nice` value `due_start..due_end`).
struct Entry {
    path: Box<str>,
    running: bool,
    move_kind: i64,
    move_seq: i64,
    due: i64,
    start: usize,
    due_start: usize,
    due_end: usize,
    end: usize,
}

impl Entry {
    fn place(&self, now: i64) -> (i64, i64) {
        lc_core::db::queue_place(self.running, self.move_kind, self.move_seq, self.due, now)
    }
}

/// A run queue written from the last body and the rows changed since.
struct Incremental {
    body: Bytes,
    entries: HashMap<i64, Entry>,
    /// Rows changed and still there, by rowid.
    fresh: HashMap<i64, QueueRow>,
}

impl Incremental {
    /// Reads the rows `changed` (and forgets the entries of those gone).
    fn new(
        tx: &ReadTx<'_>,
        changed: &[i64],
        body: Bytes,
        mut entries: HashMap<i64, Entry>,
    ) -> lc_core::Result<Incremental> {
        let mut fresh = HashMap::with_capacity(changed.len());
        for &rowid in changed {
            entries.remove(&rowid);
            if let Some(row) = tx.queue_row_by_rowid(rowid)? {
                fresh.insert(rowid, row);
            }
        }
        Ok(Incremental {
            body,
            entries,
            fresh,
        })
    }

    /// Writes the entries, comma-separated, in queue order at `now`, and
    /// points the index at where they are now.
    fn write(&mut self, out: &mut Vec<u8>, now: i64) -> lc_core::Result<()> {
        let mut order: Vec<((i64, i64), &str, i64)> = self
            .entries
            .iter()
            .map(|(&rowid, e)| (e.place(now), &*e.path, rowid))
            .chain(
                self.fresh
                    .iter()
                    .map(|(&rowid, row)| (row.place(now), row.lorry.path.as_str(), rowid)),
            )
            .collect();
        // Paths are unique: the order is total.
        order.sort_unstable_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
        let order: Vec<i64> = order.into_iter().map(|(_, _, rowid)| rowid).collect();
        for (i, rowid) in order.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if let Some(row) = self.fresh.remove(&rowid) {
                let entry = write_fresh(out, row, now)?;
                self.entries.insert(rowid, entry);
            } else if let Some(entry) = self.entries.get_mut(&rowid) {
                let old = &self.body;
                let start = out.len();
                out.extend_from_slice(&old[entry.start..entry.due_start]);
                let due_start = out.len();
                write_due_nice(out, entry.running, entry.due, now)?;
                let due_end = out.len();
                out.extend_from_slice(&old[entry.due_end..entry.end]);
                (entry.start, entry.due_start, entry.due_end, entry.end) =
                    (start, due_start, due_end, out.len());
            }
        }
        Ok(())
    }
}

fn json_err(e: serde_json::Error) -> lc_core::Error {
    lc_core::Error::Corrupt(format!("JSON status: {e}"))
}

/// A run queue entry's `due_nice`, as a JSON string.
fn write_due_nice(out: &mut Vec<u8>, running: bool, due: i64, now: i64) -> lc_core::Result<()> {
    if running {
        out.extend_from_slice(b"\"running\"");
    } else if due <= now {
        out.extend_from_slice(b"\"now\"");
    } else {
        serde_json::to_writer(&mut *out, &timefmt::due(due, now)).map_err(json_err)?;
    }
    Ok(())
}

/// Writes `row` as serde writes its [`lc_api::QueueEntry`] (credentials
/// hidden, times readable; tested), and answers where it is.
fn write_fresh(out: &mut Vec<u8>, row: QueueRow, now: i64) -> lc_core::Result<Entry> {
    let lorry = crate::api::shown(row.lorry);
    let running = lorry.running_job.is_some();
    let start = out.len();
    serde_json::to_writer(&mut *out, &lorry).map_err(json_err)?;
    // The flattened lorry's fields come first, then the entry's own.
    if out.pop() != Some(b'}') {
        return Err(lc_core::Error::Corrupt(
            "JSON status: a lorry is not an object".into(),
        ));
    }
    out.extend_from_slice(b",\"interval_nice\":");
    serde_json::to_writer(&mut *out, &timefmt::span(lorry.interval)).map_err(json_err)?;
    out.extend_from_slice(b",\"due_nice\":");
    let due_start = out.len();
    write_due_nice(out, running, lorry.due, now)?;
    let due_end = out.len();
    out.extend_from_slice(b",\"last_run_nice\":");
    serde_json::to_writer(&mut *out, &timefmt::utc(lorry.last_run)).map_err(json_err)?;
    out.extend_from_slice(b",\"disk_usage_nice\":");
    serde_json::to_writer(&mut *out, &timefmt::bytes(lorry.disk_usage)).map_err(json_err)?;
    out.push(b'}');
    Ok(Entry {
        path: lorry.path.into_boxed_str(),
        running,
        move_kind: row.move_kind,
        move_seq: row.move_seq,
        due: lorry.due,
        start,
        due_start,
        due_end,
        end: out.len(),
    })
}

/// What the status shows of STATEDB, but the run queue.
struct Head {
    running_queue: bool,
    hosts: Vec<HostInfo>,
    max_jobs: Option<i64>,
    config_problems: Vec<ConfigProblem>,
    now: i64,
}

impl Head {
    fn read(tx: &ReadTx<'_>, now: i64) -> lc_core::Result<Head> {
        Ok(Head {
            running_queue: tx.running_queue()?,
            hosts: tx.hosts()?,
            max_jobs: tx.max_jobs()?,
            config_problems: tx.config_problems()?,
            now,
        })
    }
}

/// Writes the status object as serde writes [`lc_api::Status`] (the same
/// keys in the same order, tested); `queue` writes the run queue's
/// entries, comma-separated.
fn write_status(
    out: &mut Vec<u8>,
    head: &Head,
    outside: &Outside,
    queue: impl FnOnce(&mut Vec<u8>) -> lc_core::Result<()>,
) -> lc_core::Result<()> {
    let field = |out: &mut Vec<u8>, name: &str, value: &dyn erased::Value| {
        out.push(if out.is_empty() { b'{' } else { b',' });
        serde_json::to_writer(&mut *out, name).map_err(json_err)?;
        out.push(b':');
        value.write(out).map_err(json_err)
    };
    field(out, "running_queue", &head.running_queue)?;
    out.extend_from_slice(b",\"run_queue\":[");
    queue(out)?;
    out.push(b']');
    field(out, "hosts", &head.hosts)?;
    field(out, "max_jobs", &head.max_jobs)?;
    field(out, "disk_free", &outside.disk_free)?;
    field(
        out,
        "disk_free_mib",
        &(outside.disk_free as f64 / (1024.0 * 1024.0)),
    )?;
    field(
        out,
        "disk_free_gib",
        &(outside.disk_free as f64 / (1024.0 * 1024.0 * 1024.0)),
    )?;
    field(out, "timestamp", &timefmt::utc(head.now))?;
    field(out, "config_problems", &head.config_problems)?;
    field(out, "publish_failures", &outside.publish_failures)?;
    field(out, "links", &true)?;
    field(out, "warning_msg", &outside.warning_msg)?;
    out.push(b'}');
    Ok(())
}

/// Serialising a value of any type through a `&dyn`.
mod erased {
    pub trait Value {
        fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;
    }

    impl<T: serde::Serialize> Value for T {
        fn write(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
            serde_json::to_writer(out, self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lc_api::{LorryInfo, QueueEntry};
    use lc_core::db::{JobUpdate, NewLorry, StateDb};

    const NOW: i64 = 1_700_000_000;

    /// A lorry as the run queue shows it, built the plain way.
    fn queue_entry(lorry: LorryInfo, now: i64) -> QueueEntry {
        let lorry = crate::api::shown(lorry);
        QueueEntry {
            interval_nice: timefmt::span(lorry.interval),
            due_nice: if lorry.running_job.is_some() {
                "running".to_owned()
            } else {
                timefmt::due(lorry.due, now)
            },
            last_run_nice: timefmt::utc(lorry.last_run),
            disk_usage_nice: timefmt::bytes(lorry.disk_usage),
            lorry,
        }
    }

    fn outside() -> Outside {
        Outside {
            disk_free: 5 << 30,
            publish_failures: true,
            warning_msg: "low <disk> \"space\"".into(),
        }
    }

    /// The status serde writes of `lc_api::Status` built the plain way,
    /// from one read of every lorry.
    fn plain_status(db: &StateDb, outside: &Outside) -> String {
        let plain = db
            .read(|tx| {
                let now = tx.now();
                let head = Head::read(tx, now)?;
                let status = lc_api::Status {
                    running_queue: head.running_queue,
                    run_queue: tx
                        .queue_lorries()?
                        .into_iter()
                        .map(|lorry| queue_entry(lorry, now))
                        .collect(),
                    hosts: head.hosts.clone(),
                    max_jobs: head.max_jobs,
                    disk_free: outside.disk_free,
                    disk_free_mib: outside.disk_free as f64 / (1024.0 * 1024.0),
                    disk_free_gib: outside.disk_free as f64 / (1024.0 * 1024.0 * 1024.0),
                    timestamp: timefmt::utc(now),
                    config_problems: head.config_problems.clone(),
                    publish_failures: outside.publish_failures,
                    links: true,
                    warning_msg: outside.warning_msg.clone(),
                };
                Ok(serde_json::to_vec(&status).expect("serde"))
            })
            .expect("read");
        String::from_utf8(plain).expect("utf-8")
    }

    fn text(json: &Bytes) -> String {
        String::from_utf8(json.to_vec()).expect("utf-8")
    }

    fn lorry(path: &str, url: &str, interval: i64) -> NewLorry {
        NewLorry {
            path: path.into(),
            text: serde_json::json!({ path: { "type": "git", "url": url } }).to_string(),
            from_host: String::new(),
            from_path: String::new(),
            interval,
            lorry_timeout: 600,
        }
    }

    /// Lorries due, fresh, failed (with a secret in its error), running,
    /// and one whose spec holds a token.
    fn seeded() -> (tempfile::TempDir, StateDb) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(&dir.path().join("state.db")).expect("open");
        db.set_pretend_time(NOW - 7200);
        db.write(|tx| {
            tx.upsert_lorry(&lorry("up/failed", "git://x/f", 3600))?;
            tx.upsert_lorry(&lorry("up/running", "git://x/r", 3600))?;
            tx.upsert_lorry(&lorry("up/fresh", "git://x/fr", 86_400))?;
            tx.upsert_lorry(&lorry("up/due", "https://u:s3cret@x.example/d", 60))?;
            tx.upsert_lorry(&lorry("up/<odd> \"name\"\u{e9}", "git://x/o", 60))?;
            for (path, exit) in [("up/failed", Some(1)), ("up/fresh", Some(0))] {
                let path = path.to_owned();
                tx.move_to_top(&path)?;
                let (id, _) = tx.start_next_job("m", 1)?.expect("a job");
                tx.update_job(
                    id,
                    &JobUpdate {
                        exit,
                        stderr: "fatal: https://u:s3cret@x.example/f: not found\n".into(),
                        disk_usage: Some(123_456),
                        ..JobUpdate::default()
                    },
                )?;
            }
            tx.move_to_top("up/running")?;
            tx.start_next_job("m", 2)?.expect("running job");
            Ok(())
        })
        .expect("seed");
        db.set_pretend_time(NOW);
        (dir, db)
    }

    /// The streamed body is byte for byte what serde writes of
    /// `lc_api::Status` built the plain way: same keys, same order, same
    /// escaping; so clients see no difference. So is one built again from
    /// it with nothing changed, at a later time.
    #[test]
    fn the_streamed_status_is_what_serde_writes_of_the_struct() {
        let (_dir, db) = seeded();
        db.write(|tx| tx.set_max_jobs(Some(3))).expect("max jobs");
        let outside = outside();
        let (now, streamed, index) = build_json(&db, None, &outside, 0).expect("build");
        assert_eq!(now, NOW);
        let streamed = text(&streamed);
        assert_eq!(streamed, plain_status(&db, &outside));
        let status: lc_api::Status = serde_json::from_str(&streamed).expect("parses");
        assert_eq!(status.run_queue.len(), 5);
        let running = status
            .run_queue
            .iter()
            .find(|e| e.lorry.path == "up/running");
        assert_eq!(running.map(|e| e.due_nice.as_str()), Some("running"));
        assert!(!streamed.contains("s3cret"), "{streamed}");
        assert!(streamed.contains("\"timestamp\":\"2023-11-14 22:13:20 UTC\""));

        db.set_pretend_time(NOW + 3_700);
        let (_, again, _) = build_json(&db, Some(index), &outside, 0).expect("again");
        assert_eq!(text(&again), plain_status(&db, &outside));
    }

    /// Random changes of every kind a lorry's row sees (added with odd
    /// paths and secrets, removed, moved, jobs started and ended with
    /// errors, specs changed, the clock moved past due times), each batch
    /// followed by a build from the last one: its body is byte for byte
    /// a full build's and what serde writes of the plain struct.
    #[test]
    fn incremental_builds_equal_full_builds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(&dir.path().join("state.db")).expect("open");
        let outside = outside();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut now = NOW;
        db.set_pretend_time(now);
        let mut index = None;
        let mut incremental_builds = 0;
        for round in 0..60 {
            db.write(|tx| {
                for _ in 0..next(12) {
                    let path = format!(
                        "up/{}{}",
                        next(40),
                        ["", "é", " \"q\"", "<x>", "\\"][next(5) as usize]
                    );
                    match next(10) {
                        0..=2 => {
                            let url = if next(3) == 0 {
                                "https://u:s3cret@x.example/r"
                            } else {
                                "git://x/r"
                            };
                            let interval = [60, 3_600, 86_400, 100_000][next(4) as usize];
                            tx.upsert_lorry(&lorry(&path, url, interval))?;
                        }
                        3 => {
                            tx.remove_lorry(&path)?;
                        }
                        4 => {
                            let _ = tx.move_to_top(&path);
                        }
                        5 => {
                            let _ = tx.move_to_bottom(&path);
                        }
                        6 | 7 => {
                            tx.start_next_job("m", 1)?;
                        }
                        _ => {
                            if let Some(&id) = tx.running_job_ids()?.first() {
                                tx.update_job(
                                    id,
                                    &JobUpdate {
                                        exit: Some(next(2) as i64),
                                        stderr: "fatal: https://u:s3cret@x.example/f\n".into(),
                                        disk_usage: Some(next(1 << 30) as i64),
                                        ..JobUpdate::default()
                                    },
                                )?;
                            }
                        }
                    }
                }
                if round % 9 == 0 {
                    tx.set_max_jobs(Some(round))?;
                }
                Ok(())
            })
            .expect("changes");
            now += [0, 1, 7, 59, 3_600][next(5) as usize] as i64;
            db.set_pretend_time(now);
            let (built_at, incremental, next_index) =
                build_json(&db, index.take(), &outside, 0).expect("incremental");
            assert_eq!(built_at, now);
            let (_, full, _) = build_json(&db, None, &outside, 0).expect("full");
            assert_eq!(text(&incremental), text(&full), "round {round}");
            assert_eq!(
                text(&incremental),
                plain_status(&db, &outside),
                "round {round}"
            );
            if round > 0 {
                incremental_builds += 1;
            }
            index = Some(next_index);
        }
        assert!(incremental_builds > 50);
        let lorries = db.read(|tx| tx.lorry_paths()).expect("paths").len();
        assert!(lorries > 20, "{lorries}");
    }

    /// A write by another process (another connection) is not seen by the
    /// update hook: the next build reads every row.
    #[test]
    fn another_process_writing_means_a_full_build() {
        let (dir, db) = seeded();
        let outside = outside();
        let (_, _, index) = build_json(&db, None, &outside, 0).expect("build");
        let other = StateDb::open(&dir.path().join("state.db")).expect("open again");
        other.set_pretend_time(NOW);
        other
            .write(|tx| tx.upsert_lorry(&lorry("up/other", "git://x/o2", 60)))
            .expect("other write");
        let (_, json, _) = build_json(&db, Some(index), &outside, 0).expect("again");
        assert!(text(&json).contains("\"up/other\""));
        assert_eq!(text(&json), plain_status(&db, &outside));
    }

    fn etag_headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::IF_NONE_MATCH,
                HeaderValue::from_bytes(value).expect("header value"),
            );
        }
        headers
    }

    #[test]
    fn if_none_match_is_compared_weakly_and_anything_else_sends_the_body() {
        let ours = HeaderValue::from_static("\"ab-7-1700000000\"");
        let matches = |values: &[&[u8]]| not_modified(&etag_headers(values), &ours);
        assert!(matches(&[b"\"ab-7-1700000000\""]));
        assert!(matches(&[b"W/\"ab-7-1700000000\""]));
        assert!(matches(&[b"\"x\", \"ab-7-1700000000\""]));
        assert!(matches(&[b"\"x\"", b" \"ab-7-1700000000\" "]));
        assert!(matches(&[b"*"]));
        for other in [
            &b"\"ab-7-1699999999\""[..],
            b"ab-7-1700000000",
            b"\"ab-7-1700000000",
            b"w/\"ab-7-1700000000\"",
            b"",
            b",,,",
            b"\"\xff\xfe\"",
            b"W/",
        ] {
            assert!(!matches(&[other]), "{:?}", String::from_utf8_lossy(other));
        }
        assert!(!not_modified(&HeaderMap::new(), &ours));
        assert!(
            !matches(&[b"\"ab-7-1700000000-gzip\""]),
            "another representation"
        );
        let huge = format!("{}\"nope\"", "\"x\",".repeat(100_000));
        assert!(!matches(&[huge.as_bytes()]));
    }

    #[test]
    fn gzip_is_sent_to_who_accepts_it() {
        let accepts = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_str(value).expect("value"),
                );
            }
            accepts_gzip(&headers)
        };
        for yes in [
            &["gzip"][..],
            &["gzip, deflate, br"],
            &["br;q=1.0, GZIP;q=0.5"],
            &["identity", "x-gzip"],
            &["*"],
            &["deflate", " gzip ; q=0.001"],
            &["*;q=0, gzip"],
        ] {
            assert!(accepts(yes), "{yes:?}");
        }
        for no in [
            &[][..],
            &["identity"],
            &["gzip;q=0"],
            &["gzip; q=0.000"],
            &["br, deflate"],
            &["gzipped"],
            &[""],
            // `*` does not speak for a coding named on its own.
            &["gzip;q=0, *"],
            &["*", "x-gzip;q=0"],
            &["*;q=0"],
        ] {
            assert!(!accepts(no), "{no:?}");
        }
    }
}
