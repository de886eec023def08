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
//! (never one of a later time: the pretended clock may go back) rather
//! than a third built: at 100,000 lorries a body is 47 MB and 64
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
//! # Built from the rows that changed, in shared parts
//! A body is a list of parts ([`Parts`]), each a slice of a buffer
//! (`Bytes`); a build writes only what is new into a buffer of its own and
//! takes everything else as slices of the buffers the last body used. The
//! builder keeps, beside them, a [`Slot`] per lorry in queue order: what
//! places it in the queue, and where its entry lies (buffer, range, its
//! `due_nice` value's range; every entry is followed by a comma there,
//! which the last one's part leaves out). A build asks STATEDB which
//! `lorries` rows changed since the last one
//! ([`lc_core::db::StateDb::read_tracked`]) and reads those rows alone;
//! the slots whose place ([`lc_core::db::queue_place`], the order the
//! query sorts by) is the same as at the last build's time stay in order,
//! the others and the changed rows are sorted (a few) and merged in, so
//! 100,000 lorries are not sorted again. Then, in queue order: a changed
//! row's entry is serialised afresh into the new buffer; an unchanged
//! one whose `due_nice` reads the same now as then (worked out from the
//! two times, without reading the body) is a slice of its buffer, joined
//! to the part before it when it lies right after it; one whose
//! `due_nice` reads differently is copied into the new buffer with it
//! written anew. The head and tail of the object are new each time. So
//! after a change of a few lorries a build writes a few kilobytes, and
//! two bodies alive at once (one still being sent) share their entries.
//!
//! Parts keep whole buffers alive. Each build drops the buffers no slot
//! lies in; when those its body would lie in hold more than a quarter
//! (and [`COMPACT_SLACK`]) more than the body, it copies, before
//! publishing, the entries still in older buffers to the end of its own,
//! so no published body pins much more than its size (many lorries due
//! within the hour are rewritten every second while the others keep the
//! old buffer alive). When a body is in more than [`MAX_PARTS`] parts,
//! the next build copies every entry into one new buffer (compacting).
//!
//! A write by another process (the admin CLI on STATEDB) is not seen by
//! the tracker ([`LorryChanges::All`]): then every row's fingerprint
//! ([`lc_core::db::QueueRow::fingerprint`], a keyed hash of the columns
//! read) is read in one walk of the table in rowid order, without building
//! a lorry of any, and compared with the slots' ([`compared`]); the rows
//! added, gone or different are those changed, and the build goes on as
//! above. The whole queue is read (in the query's order, streamed, into
//! one buffer) only for the first body, after a failed build, or when
//! more than a quarter of the rows changed.
//! `incremental_builds_equal_full_builds` checks the two give the same
//! bytes after random changes (and compactions);
//! `unchanged_entries_are_shared_not_copied` that they are shared.
//!
//! A response sends the parts as they are (sliced to [`SEND_CHUNK`]),
//! runs of parts under [`SEND_SMALL`] copied together one chunk at a time;
//! gzip compresses the parts in order.
//!
//! # Memory
//! Nothing but the new bytes is written for a build: no vector of
//! lorries, no copy of the last body. Responses share a body's parts. A
//! slot is about 90 bytes and the path per lorry; the slots' vector is
//! filtered and merged in place, never allocated again while the number
//! of lorries holds.

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
    pub json: Parts,
    /// The body gzipped, made for the first client that accepts it.
    gzip: tokio::sync::OnceCell<(HeaderValue, Parts)>,
}

impl StatusBody {
    /// The body gzipped (fastest level: JSON this repetitive shrinks
    /// about tenfold even so), and its ETag: compressed once, on a
    /// blocking thread, by the first request that asks; the others wait
    /// for that one.
    pub async fn gzipped(&self) -> Result<&(HeaderValue, Parts), ApiError> {
        self.gzip
            .get_or_try_init(|| async {
                let json = self.json.clone();
                let gzip = tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    let mut encoder = flate2::write::GzEncoder::new(
                        Vec::with_capacity(json.len() / 8 + 64),
                        flate2::Compression::fast(),
                    );
                    for part in json.iter() {
                        encoder.write_all(part)?;
                    }
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
                Ok::<_, ApiError>((etag, Parts::new(vec![Bytes::from(gzip)])))
            })
            .await
    }
}

/// The bytes of a body in parts, in order: each a slice of a buffer that
/// other bodies built from the same entries share (see "Built from the
/// rows that changed" above).
#[derive(Clone, Default)]
pub struct Parts {
    parts: Arc<[Bytes]>,
    len: usize,
}

impl Parts {
    fn new(parts: Vec<Bytes>) -> Parts {
        let len = parts.iter().map(Bytes::len).sum();
        Parts {
            parts: parts.into(),
            len,
        }
    }

    /// Bytes in all.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many parts.
    pub fn count(&self) -> usize {
        self.parts.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter()
    }

    /// The bytes in one piece (a copy).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.len);
        for part in self.iter() {
            all.extend_from_slice(part);
        }
        all
    }

    /// The body as sent: parts of at least [`SEND_SMALL`] bytes in slices
    /// of at most [`SEND_CHUNK`] (no copy), runs of smaller ones copied
    /// together into chunks of about [`SEND_GATHER`], one at a time.
    fn chunks(&self) -> Chunks {
        Chunks {
            parts: self.clone(),
            part: 0,
            at: 0,
        }
    }
}

/// A part at least this large is sent as it is (sliced).
const SEND_SMALL: usize = 16 << 10;

/// Smaller parts are copied together into chunks of up to this size.
const SEND_GATHER: usize = 64 << 10;

/// [`Parts::chunks`].
struct Chunks {
    parts: Parts,
    part: usize,
    at: usize,
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut gathered: Vec<u8> = Vec::new();
        while let Some(part) = self.parts.parts.get(self.part) {
            let rest = part.len() - self.at;
            if rest == 0 {
                (self.part, self.at) = (self.part + 1, 0);
                continue;
            }
            if gathered.is_empty() && rest >= SEND_SMALL {
                let n = rest.min(SEND_CHUNK);
                let chunk = part.slice(self.at..self.at + n);
                self.at += n;
                return Some(chunk);
            }
            if !gathered.is_empty() && (rest >= SEND_SMALL || gathered.len() + rest > SEND_GATHER) {
                break;
            }
            if gathered.capacity() == 0 {
                gathered.reserve_exact(SEND_GATHER);
            }
            gathered.extend_from_slice(&part[self.at..]);
            (self.part, self.at) = (self.part + 1, 0);
        }
        (!gathered.is_empty()).then(|| Bytes::from(gathered))
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
                    && (0..=SENDING_MAX).contains(&(key.now - body.key.now))
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
                    && (0..=STALE_MAX).contains(&(key.now - body.key.now))
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
    /// chunks sharing its memory ([`Parts::chunks`]), that keeps `body`
    /// counted as being sent until the last chunk is taken.
    pub fn sending(&self, body: Arc<StatusBody>, bytes: Parts) -> axum::body::Body {
        {
            let mut sending = lock(&self.sending);
            if !sending
                .iter()
                .any(|b| std::ptr::eq(b.as_ptr(), Arc::as_ptr(&body)))
            {
                sending.push(Arc::downgrade(&body));
            }
        }
        let mut held = Some(body);
        let chunks = futures_util::stream::iter(bytes.chunks()).map(move |chunk| {
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
) -> lc_core::Result<(i64, Parts, QueueIndex)> {
    let (tracker, last) = match index {
        Some(QueueIndex {
            tracker,
            store,
            slots,
            built_at,
            compact,
        }) => (tracker, Some((store, slots, built_at, compact))),
        None => (db.lorry_tracker(), None),
    };
    let (now, parts, store, slots, compact) = db.read_tracked(&tracker, |tx, changes| {
        let now = tx.now();
        let head = Head::read(tx, now)?;
        let changes = match (changes, &last) {
            (LorryChanges::All, Some((_, slots, _, _))) if !slots.is_empty() => {
                compared(tx, slots)?
            }
            (changes, _) => changes,
        };
        match (changes, last) {
            (LorryChanges::Rows(rows), Some((store, slots, built_at, compact))) => {
                // Compacting copies every entry: room for all of them.
                let capacity = if compact {
                    size_hint + size_hint / 8
                } else {
                    0
                };
                let mut out = Vec::with_capacity(capacity + 4096);
                let mut writer = Writer::new(store, now, compact);
                let mut queue = Incremental::new(tx, &rows, slots, built_at, now)?;
                let mut entries = 0;
                write_status(&mut out, &head, outside, |out| {
                    writer.head(out);
                    entries = queue.write(out, &mut writer)?;
                    writer.end_queue(out, entries);
                    Ok(())
                })?;
                let mut slots = queue.into_slots(now);
                let (parts, store, compact) = writer.finish(out, &mut slots);
                Ok((now, parts, store, slots, compact))
            }
            (_, last) => {
                // Nothing to copy from: the last body's buffers go first.
                // Its slots' vector is kept, emptied: freeing a block of
                // megabytes makes glibc's malloc keep that much more in
                // its arenas from then on (its mmap threshold follows the
                // largest block freed), which the webapp's resident
                // memory showed.
                let mut slots = last.map_or_else(Vec::new, |(store, mut slots, _, _)| {
                    drop(store);
                    slots.clear();
                    slots
                });
                let mut out = Vec::with_capacity(size_hint + size_hint / 8 + 4096);
                let mut writer = Writer::new(Store::default(), now, false);
                write_status(&mut out, &head, outside, |out| {
                    writer.head(out);
                    let mut entries = 0;
                    tx.for_each_queue_row(|row| {
                        entries += 1;
                        slots.push(writer.fresh(out, row)?);
                        Ok::<_, lc_core::Error>(())
                    })??;
                    writer.end_queue(out, entries);
                    Ok(())
                })?;
                let (parts, store, compact) = writer.finish(out, &mut slots);
                Ok((now, parts, store, slots, compact))
            }
        }
    })?;
    let index = QueueIndex {
        tracker,
        store,
        slots,
        built_at: now,
        compact,
    };
    Ok((now, parts, index))
}

/// The rows added, gone, or whose fingerprint is not their slot's:
/// what changed, whoever wrote it (another process: the tracker cannot
/// say). [`LorryChanges::All`] when that is more than a quarter of them:
/// reading those rows one by one would cost more than reading them all.
fn compared(tx: &ReadTx<'_>, slots: &[Slot]) -> lc_core::Result<LorryChanges> {
    let mut known: Vec<(i64, u64)> = slots.iter().map(|s| (s.rowid, s.fingerprint)).collect();
    known.sort_unstable();
    let mut known = known.into_iter().peekable();
    let mut changed = Vec::new();
    // Both in ascending rowid order: one walk.
    tx.for_each_row_fingerprint(|rowid, print| {
        while let Some((gone, _)) = known.next_if(|&(r, _)| r < rowid) {
            changed.push(gone);
        }
        match known.next_if(|&(r, _)| r == rowid) {
            Some((_, was)) if was == print => {}
            _ => changed.push(rowid),
        }
    })?;
    changed.extend(known.map(|(gone, _)| gone));
    Ok(if changed.len() > slots.len() / 4 {
        LorryChanges::All
    } else {
        LorryChanges::Rows(changed)
    })
}

/// Parts in a body beyond which the next build copies every entry into
/// one buffer again (see [`Writer::finish`]).
const MAX_PARTS: usize = 4096;

/// Bytes beyond a quarter of a body that the buffers it lies in may hold
/// before [`Writer::finish`] copies its entries into its own buffer.
const COMPACT_SLACK: usize = 1 << 20;

/// What the last build wrote the run queue from: the tracker of the
/// `lorries` rows changed since, the buffers its entries lie in, each
/// lorry's slot in queue order, and when it was built.
pub struct QueueIndex {
    tracker: LorryTracker,
    store: Store,
    slots: Vec<Slot>,
    built_at: i64,
    /// Whether the next build copies every entry into one new buffer
    /// (the buffers hold too much that no entry uses, or the body is in
    /// too many parts).
    compact: bool,
}

/// The buffers that entries of the last body lie in, by number (`None`:
/// a free number).
#[derive(Default)]
struct Store {
    buffers: Vec<Option<Bytes>>,
}

impl Store {
    fn bytes(&self, buffer: u32) -> &[u8] {
        self.buffers
            .get(buffer as usize)
            .and_then(Option::as_ref)
            .map_or(&[], |b| &b[..])
    }
}

/// One lorry's entry in the last body: what places it in the queue, and
/// where it lies (`start..end` of buffer `buffer`, followed there by a
/// comma; its `due_nice` value `due_start..due_end`).
#[derive(Default)]
struct Slot {
    rowid: i64,
    /// Its row's [`QueueRow::fingerprint`].
    fingerprint: u64,
    path: Box<str>,
    move_seq: i64,
    due: i64,
    start: usize,
    due_start: usize,
    due_end: usize,
    end: usize,
    buffer: u32,
    move_kind: i64,
    running: bool,
}

impl Slot {
    fn place(&self, now: i64) -> (i64, i64) {
        lc_core::db::queue_place(self.running, self.move_kind, self.move_seq, self.due, now)
    }

    /// Its key in queue order at `now`: place, then path (paths are
    /// unique, so the order is total).
    fn key(&self, now: i64) -> ((i64, i64), &[u8]) {
        (self.place(now), self.path.as_bytes())
    }

    /// Whether its `due_nice` reads the same at `now` as at `then`,
    /// worked out without looking at the body.
    fn due_reads_the_same(&self, then: i64, now: i64, scratch: &mut [Vec<u8>; 2]) -> bool {
        if self.running || then == now || (self.due <= then && self.due <= now) {
            return true;
        }
        if self.due <= then || self.due <= now {
            return false;
        }
        let [a, b] = scratch;
        a.clear();
        b.clear();
        write_due_nice(a, false, self.due, then);
        write_due_nice(b, false, self.due, now);
        a == b
    }
}

/// A lorry to place among the others: one whose place moved, or a row
/// that changed.
enum Mover {
    Old(Slot),
    New((i64, i64), Box<QueueRow>),
}

impl Mover {
    fn key(&self, now: i64) -> ((i64, i64), &[u8]) {
        match self {
            Mover::Old(slot) => slot.key(now),
            Mover::New(place, row) => (*place, row.lorry.path.as_bytes()),
        }
    }
}

/// A run queue written from the last body and the rows changed since.
struct Incremental {
    /// The lorries whose place did not move, in queue order.
    stable: Vec<Slot>,
    /// The others and the rows changed, in queue order.
    movers: Vec<Mover>,
    /// The movers' slots once written.
    moved: Vec<Slot>,
    /// When the last body was built.
    then: i64,
}

impl Incremental {
    /// Splits the last body's `slots` into those whose place in the
    /// queue is the same at `now` and the others, reads the rows
    /// `changed` (forgetting their slots), and sorts what moved.
    fn new(
        tx: &ReadTx<'_>,
        changed: &[i64],
        mut slots: Vec<Slot>,
        then: i64,
        now: i64,
    ) -> lc_core::Result<Incremental> {
        let changed_set: std::collections::HashSet<i64> = changed.iter().copied().collect();
        let mut movers = Vec::new();
        // In place: the vector of 100,000 slots is not allocated again.
        slots.retain_mut(|slot| {
            if changed_set.contains(&slot.rowid) {
                return false;
            }
            if slot.place(then) == slot.place(now) {
                return true;
            }
            movers.push(Mover::Old(std::mem::take(slot)));
            false
        });
        for &rowid in changed {
            if let Some(row) = tx.queue_row_by_rowid(rowid)? {
                movers.push(Mover::New(row.place(now), Box::new(row)));
            }
        }
        movers.sort_unstable_by(|a, b| a.key(now).cmp(&b.key(now)));
        Ok(Incremental {
            stable: slots,
            movers,
            moved: Vec::new(),
            then,
        })
    }

    /// Writes the entries in queue order and answers how many there are.
    fn write(&mut self, out: &mut Vec<u8>, writer: &mut Writer) -> lc_core::Result<usize> {
        let now = writer.now;
        let mut movers = std::mem::take(&mut self.movers).into_iter().peekable();
        self.moved.reserve(movers.len());
        for slot in &mut self.stable {
            while let Some(mover) = movers.next_if(|m| m.key(now) < slot.key(now)) {
                self.moved.push(writer.mover(out, mover, self.then)?);
            }
            writer.old(out, slot, self.then);
        }
        for mover in movers {
            self.moved.push(writer.mover(out, mover, self.then)?);
        }
        Ok(self.stable.len() + self.moved.len())
    }

    /// All slots in queue order at `now`: the movers merged into the
    /// stable ones, from the back, in the stable ones' vector.
    fn into_slots(self, now: i64) -> Vec<Slot> {
        let Incremental {
            stable: mut slots,
            mut moved,
            ..
        } = self;
        let (mut i, mut j) = (slots.len(), moved.len());
        slots.resize_with(i + j, Slot::default);
        let mut k = slots.len();
        while j > 0 {
            if i > 0 && slots[i - 1].key(now) > moved[j - 1].key(now) {
                slots.swap(i - 1, k - 1);
                i -= 1;
            } else {
                std::mem::swap(&mut slots[k - 1], &mut moved[j - 1]);
                j -= 1;
            }
            k -= 1;
        }
        slots
    }
}

/// One part of a body being built: `start..end` of buffer `buffer`.
#[derive(Clone, Copy)]
struct Span {
    buffer: u32,
    start: usize,
    end: usize,
}

/// Writes a body as parts: new bytes (the head, changed entries, the
/// tail) into a new buffer, numbered `buffer` in the store; entries that
/// read the same as in the last body as parts of the buffers they lie in.
struct Writer {
    store: Store,
    buffer: u32,
    parts: Vec<Span>,
    now: i64,
    /// Whether every entry is copied into the new buffer.
    copy: bool,
    head_end: usize,
    tail_start: usize,
    scratch: [Vec<u8>; 2],
}

impl Writer {
    fn new(store: Store, now: i64, copy: bool) -> Writer {
        let buffer = store
            .buffers
            .iter()
            .position(Option::is_none)
            .unwrap_or(store.buffers.len()) as u32;
        Writer {
            store,
            buffer,
            parts: Vec::new(),
            now,
            copy,
            head_end: 0,
            tail_start: 0,
            scratch: Default::default(),
        }
    }

    /// Adds `start..end` of `buffer` to the body, to the last part if it
    /// ends where this starts.
    fn push(parts: &mut Vec<Span>, buffer: u32, start: usize, end: usize) {
        match parts.last_mut() {
            Some(last) if last.buffer == buffer && last.end == start => last.end = end,
            _ => parts.push(Span { buffer, start, end }),
        }
    }

    /// The body so far (up to the run queue's `[`) is a part.
    fn head(&mut self, out: &[u8]) {
        self.head_end = out.len();
        Writer::push(&mut self.parts, self.buffer, 0, out.len());
    }

    /// After the last entry: its comma is not part of the body, and the
    /// tail comes next in `out`.
    fn end_queue(&mut self, out: &[u8], entries: usize) {
        self.tail_start = out.len();
        if entries > 0
            && let Some(last) = self.parts.last_mut()
        {
            last.end -= 1;
        }
    }

    /// Writes a changed row's entry afresh.
    fn fresh(&mut self, out: &mut Vec<u8>, row: QueueRow) -> lc_core::Result<Slot> {
        let slot = write_fresh(out, row, self.now, self.buffer)?;
        out.push(b',');
        Writer::push(&mut self.parts, self.buffer, slot.start, slot.end + 1);
        Ok(slot)
    }

    fn mover(&mut self, out: &mut Vec<u8>, mover: Mover, then: i64) -> lc_core::Result<Slot> {
        match mover {
            Mover::Old(mut slot) => {
                self.old(out, &mut slot, then);
                Ok(slot)
            }
            Mover::New(_, row) => self.fresh(out, *row),
        }
    }

    /// Adds the entry of `slot` (written at `then`) as it lies in its
    /// buffer if its `due_nice` reads the same now and not every entry is
    /// copied; else copies it with its `due_nice` written anew.
    fn old(&mut self, out: &mut Vec<u8>, slot: &mut Slot, then: i64) {
        if !self.copy && slot.due_reads_the_same(then, self.now, &mut self.scratch) {
            Writer::push(&mut self.parts, slot.buffer, slot.start, slot.end + 1);
            return;
        }
        let old = self.store.bytes(slot.buffer);
        let start = out.len();
        out.extend_from_slice(&old[slot.start..slot.due_start]);
        let due_start = out.len();
        write_due_nice(out, slot.running, slot.due, self.now);
        let due_end = out.len();
        out.extend_from_slice(&old[slot.due_end..slot.end]);
        let end = out.len();
        out.push(b',');
        (
            slot.buffer,
            slot.start,
            slot.due_start,
            slot.due_end,
            slot.end,
        ) = (self.buffer, start, due_start, due_end, end);
        Writer::push(&mut self.parts, self.buffer, start, end + 1);
    }

    /// The body: `out` (the whole body written, the tail last) becomes
    /// the new buffer; the store keeps the buffers `slots` lie in. When
    /// those would hold more than a quarter (and a MiB) more than the
    /// body, the entries lying in older buffers are first copied to the
    /// end of `out`, so the body lies in `out` alone: a body never pins
    /// much more than its size. Says whether the next build should copy
    /// every entry into one buffer again: when the body is in more than
    /// [`MAX_PARTS`] parts.
    fn finish(self, mut out: Vec<u8>, slots: &mut [Slot]) -> (Parts, Store, bool) {
        let Writer {
            mut store,
            buffer,
            mut parts,
            head_end,
            tail_start,
            ..
        } = self;
        let at = buffer as usize;
        if store.buffers.len() <= at {
            store.buffers.resize_with(at + 1, || None);
        }
        let tail_end = out.len();
        let mut live = vec![0usize; store.buffers.len()];
        for slot in slots.iter() {
            live[slot.buffer as usize] += slot.end + 1 - slot.start;
        }
        let old: usize = store
            .buffers
            .iter()
            .zip(&live)
            .enumerate()
            .filter(|&(i, (_, &live))| i != at && live > 0)
            .map(|(_, (b, _))| b.as_ref().map_or(0, Bytes::len))
            .sum();
        let body_len = parts.iter().map(|p| p.end - p.start).sum::<usize>() + tail_end - tail_start;
        if old + out.len() > body_len + body_len / 4 + COMPACT_SLACK {
            out.reserve_exact(
                live.iter()
                    .enumerate()
                    .filter(|&(i, _)| i != at)
                    .map(|(_, l)| l)
                    .sum(),
            );
            parts.clear();
            Writer::push(&mut parts, buffer, 0, head_end);
            for slot in slots.iter_mut() {
                if slot.buffer != buffer {
                    let from = store.bytes(slot.buffer);
                    let start = out.len();
                    out.extend_from_slice(&from[slot.start..=slot.end]);
                    let shift = |i: usize| i - slot.start + start;
                    (slot.due_start, slot.due_end, slot.end) =
                        (shift(slot.due_start), shift(slot.due_end), shift(slot.end));
                    (slot.buffer, slot.start) = (buffer, start);
                }
                Writer::push(&mut parts, buffer, slot.start, slot.end + 1);
            }
            if !slots.is_empty()
                && let Some(last) = parts.last_mut()
            {
                last.end -= 1;
            }
            live.iter_mut().for_each(|l| *l = 0);
            live[at] = 1;
        }
        // The tail: what was written after the run queue.
        Writer::push(&mut parts, buffer, tail_start, tail_end);
        if out.capacity() > out.len() + (1 << 16) {
            out.shrink_to_fit();
        }
        store.buffers[at] = Some(Bytes::from(out));
        let body = Parts::new(
            parts
                .drain(..)
                .map(|p| {
                    store.buffers[p.buffer as usize]
                        .as_ref()
                        .map_or_else(Bytes::new, |b| b.slice(p.start..p.end))
                })
                .collect(),
        );
        for (buffer, live) in store.buffers.iter_mut().zip(&live) {
            if *live == 0 {
                *buffer = None;
            }
        }
        let compact = body.count() > MAX_PARTS;
        (body, store, compact)
    }
}

fn json_err(e: serde_json::Error) -> lc_core::Error {
    lc_core::Error::Corrupt(format!("JSON status: {e}"))
}

/// Text written into a byte buffer (`due_nice`'s span).
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A run queue entry's `due_nice`, as a JSON string (what serde writes of
/// `timefmt::due`, or `running`; tested), allocating nothing.
fn write_due_nice(out: &mut Vec<u8>, running: bool, due: i64, now: i64) {
    if running {
        out.extend_from_slice(b"\"running\"");
    } else if due <= now {
        out.extend_from_slice(b"\"now\"");
    } else {
        // A span is ASCII letters, digits and spaces: nothing to escape.
        out.extend_from_slice(b"\"in ");
        let _ = timefmt::write_span(&mut Text(out), due.saturating_sub(now));
        out.push(b'"');
    }
}

/// Writes `row` as serde writes its [`lc_api::QueueEntry`] (credentials
/// hidden, times readable; tested) into buffer `buffer` (`out`), and
/// answers its slot.
fn write_fresh(out: &mut Vec<u8>, row: QueueRow, now: i64, buffer: u32) -> lc_core::Result<Slot> {
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
    write_due_nice(out, running, lorry.due, now);
    let due_end = out.len();
    out.extend_from_slice(b",\"last_run_nice\":");
    serde_json::to_writer(&mut *out, &timefmt::utc(lorry.last_run)).map_err(json_err)?;
    out.extend_from_slice(b",\"disk_usage_nice\":");
    serde_json::to_writer(&mut *out, &timefmt::bytes(lorry.disk_usage)).map_err(json_err)?;
    out.push(b'}');
    Ok(Slot {
        rowid: row.rowid,
        fingerprint: row.fingerprint,
        path: lorry.path.into_boxed_str(),
        move_seq: row.move_seq,
        due: lorry.due,
        start,
        due_start,
        due_end,
        end: out.len(),
        buffer,
        move_kind: row.move_kind,
        running,
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

    fn text(json: &Parts) -> String {
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
        // Another process: its writes are found by fingerprints.
        let other = StateDb::open(&dir.path().join("state.db")).expect("open again");
        let mut now = NOW;
        db.set_pretend_time(now);
        other.set_pretend_time(now);
        let mut index: Option<QueueIndex> = None;
        let mut incremental_builds = 0;
        let mut by_other = 0;
        for round in 0..60 {
            let writer = if next(4) == 0 {
                by_other += 1;
                &other
            } else {
                &db
            };
            writer
                .write(|tx| {
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
            now += [0, 1, 7, 59, 3_600, -7][next(6) as usize];
            db.set_pretend_time(now);
            other.set_pretend_time(now);
            // Every seventh build copies every entry into one buffer.
            let compacting = round % 7 == 3;
            if let Some(index) = &mut index {
                index.compact |= compacting;
            }
            let (built_at, incremental, next_index) =
                build_json(&db, index.take(), &outside, 0).expect("incremental");
            assert_eq!(built_at, now);
            let held = next_index.store.buffers.iter().flatten().count();
            if compacting {
                assert_eq!(held, 1, "round {round}");
                assert!(incremental.count() <= 2, "round {round}");
            }
            assert!(held <= 1 + round as usize, "round {round}");
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
        assert!(by_other > 5, "{by_other}");
        let lorries = db.read(|tx| tx.lorry_paths()).expect("paths").len();
        assert!(lorries > 20, "{lorries}");
    }

    /// A write by another process (another connection) is not seen by the
    /// update hook: the next build compares every row's fingerprint with
    /// the last build's and writes the rows that differ.
    #[test]
    fn another_process_writing_is_found_by_fingerprints() {
        let (dir, db) = seeded();
        let outside = outside();
        let (_, _, index) = build_json(&db, None, &outside, 0).expect("build");
        let other = StateDb::open(&dir.path().join("state.db")).expect("open again");
        other.set_pretend_time(NOW);
        other
            .write(|tx| tx.upsert_lorry(&lorry("up/other", "git://x/o2", 60)))
            .expect("other write");
        let (_, json, index) = build_json(&db, Some(index), &outside, 0).expect("again");
        assert!(text(&json).contains("\"up/other\""));
        assert_eq!(text(&json), plain_status(&db, &outside));
        // Not a full build: the last body's buffer is still used.
        assert_eq!(index.store.buffers.iter().flatten().count(), 2);
        assert!(json.count() >= 3, "{}", json.count());
    }

    /// A build after one lorry moved writes that lorry's entry, the head
    /// and the tail, and shares every other entry with the last body; a
    /// second later only the entries whose `due_nice` reads differently
    /// are written again.
    /// `n` jobs of the queue's next lorries, each started and ended with
    /// success.
    fn run_successfully(tx: &lc_core::db::WriteTx<'_>, n: usize) -> lc_core::Result<()> {
        for _ in 0..n {
            let (id, _) = tx.start_next_job("m", 1)?.expect("a job");
            tx.update_job(
                id,
                &JobUpdate {
                    exit: Some(0),
                    ..JobUpdate::default()
                },
            )?;
        }
        Ok(())
    }

    #[test]
    fn unchanged_entries_are_shared_not_copied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(&dir.path().join("state.db")).expect("open");
        let outside = outside();
        db.set_pretend_time(NOW - 1_000);
        db.write(|tx| {
            for i in 0..200 {
                let interval = [60, 3_600, 86_400, 200_000][i % 4];
                tx.upsert_lorry(&lorry(&format!("up/{i:03}"), "git://x/r", interval))?;
            }
            // Half of them ran: due later, at different times.
            run_successfully(tx, 100)
        })
        .expect("seed");
        db.set_pretend_time(NOW);
        let (_, first, index) = build_json(&db, None, &outside, 0).expect("first");
        assert!(first.count() <= 2);
        let first_buffer = first.iter().next().expect("a part").as_ptr() as usize;

        db.write(|tx| tx.move_to_top("up/150")).expect("move");
        let (_, moved, index) = build_json(&db, Some(index), &outside, 0).expect("moved");
        assert_eq!(text(&moved), plain_status(&db, &outside));
        let written = index.store.buffers.iter().flatten().map(Bytes::len).min();
        assert!(written < Some(2_000), "{written:?}");
        assert!(moved.count() <= 6, "{}", moved.count());
        let shared: usize = moved
            .iter()
            .filter(|p| {
                let at = p.as_ptr() as usize;
                (first_buffer..first_buffer + first.len()).contains(&at)
            })
            .map(Bytes::len)
            .sum();
        assert!(shared > first.len() * 9 / 10, "{shared} of {}", first.len());

        // A second later: the entries due within the hour read
        // differently ("in 59 min 59 s"), the others do not.
        let reads_differently = db
            .read(|tx| tx.queue_lorries())
            .expect("lorries")
            .iter()
            .filter(|l| {
                l.running_job.is_none() && timefmt::due(l.due, NOW) != timefmt::due(l.due, NOW + 1)
            })
            .count();
        assert!(reads_differently > 0);
        db.set_pretend_time(NOW + 1);
        let (_, later, index) = build_json(&db, Some(index), &outside, 0).expect("later");
        assert_eq!(text(&later), plain_status(&db, &outside));
        let newest = index.store.buffers.iter().flatten().map(Bytes::len).min();
        let entry = first.len() / 200;
        assert!(
            newest < Some((reads_differently + 2) * entry),
            "{newest:?}: {reads_differently} entries of ~{entry} bytes"
        );
    }

    /// `due_nice` written without allocating is what serde writes of
    /// `timefmt::due`; `due_reads_the_same` says whether two times give
    /// the same text.
    #[test]
    fn due_nice_is_written_as_serde_writes_it() {
        let mut scratch = Default::default();
        let mut out = Vec::new();
        let spans = (0..200)
            .chain([3_599, 3_600, 3_601, 86_399, 86_400, 86_401, 86_460, 90_061])
            .chain((0..40).map(|i| 7_i64.pow(i % 12) + i64::from(i)));
        for span in spans {
            for then in [NOW - 1, NOW, NOW + 1, NOW + 59, NOW + 3_600] {
                let due = NOW + span;
                out.clear();
                write_due_nice(&mut out, false, due, then);
                let serde = serde_json::to_vec(&timefmt::due(due, then)).expect("json");
                assert_eq!(out, serde, "{due} at {then}");
                for running in [false, true] {
                    let slot = Slot {
                        due,
                        running,
                        ..Slot::default()
                    };
                    let text = |at| {
                        let mut text = Vec::new();
                        write_due_nice(&mut text, running, due, at);
                        text
                    };
                    assert_eq!(
                        slot.due_reads_the_same(then, NOW, &mut scratch),
                        text(then) == text(NOW),
                        "{due} at {then}"
                    );
                }
            }
        }
        out.clear();
        write_due_nice(&mut out, true, NOW + 5, NOW);
        assert_eq!(out, b"\"running\"");
    }

    /// A body is sent whole in chunks: large parts sliced, runs of small
    /// ones copied together, none larger than a slice.
    #[test]
    fn parts_are_sent_whole_in_bounded_chunks() {
        let mut seed = 7_u64;
        let mut next = move |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        for round in 0..50 {
            let parts: Vec<Bytes> = (0..next(30))
                .map(|i| {
                    let len = match next(8) {
                        0 => 0,
                        1..=3 => next(100),
                        4..=6 => next(40 << 10),
                        _ => next(5 * SEND_CHUNK as u64 / 2),
                    } as usize;
                    Bytes::from(vec![(i % 251) as u8; len])
                })
                .collect();
            let parts = Parts::new(parts);
            let chunks: Vec<Bytes> = parts.chunks().collect();
            let mut sent = Vec::new();
            for chunk in &chunks {
                sent.extend_from_slice(chunk);
            }
            assert_eq!(sent, parts.to_vec(), "round {round}");
            assert!(
                chunks
                    .iter()
                    .all(|c| !c.is_empty() && c.len() <= SEND_CHUNK)
            );
            // Small parts are gathered: never two small chunks in a row
            // that would have fitted in one.
            for pair in chunks.windows(2) {
                assert!(
                    pair[0].len() >= SEND_SMALL
                        || pair[1].len() >= SEND_SMALL
                        || pair[0].len() + pair[1].len() > SEND_GATHER,
                    "round {round}: {} then {}",
                    pair[0].len(),
                    pair[1].len()
                );
            }
        }
        assert_eq!(Parts::default().chunks().count(), 0);
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

    /// Lorries due within the hour read differently every second, so each
    /// build rewrites them into a new buffer while the few that read the
    /// same keep the old buffer alive (found by a hostile review: every
    /// other body pinned ~1.9 times its size). The body published by
    /// every build lies in buffers holding at most a quarter (and a MiB)
    /// more than it, and reads as a full build.
    #[test]
    fn a_body_never_pins_much_more_than_its_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(&dir.path().join("state.db")).expect("open");
        let outside = outside();
        db.set_pretend_time(NOW - 3000);
        db.write(|tx| {
            let url = format!("git://x/{}", "r".repeat(4000));
            for i in 0..2000 {
                tx.upsert_lorry(&lorry(&format!("up/{i:04}"), &url, 3600))?;
            }
            // 90% ran in the last hour: due within the hour.
            run_successfully(tx, 1800)
        })
        .expect("seed");
        db.set_pretend_time(NOW);
        let (_, mut body, mut index) = build_json(&db, None, &outside, 0).expect("first");
        for step in 1..=6 {
            db.set_pretend_time(NOW + 5 * step);
            let (_, next_body, next_index) =
                build_json(&db, Some(index), &outside, body.len()).expect("next");
            // Every buffer the builder keeps, and every buffer one of
            // the body's parts lies in.
            let kept: Vec<&Bytes> = next_index.store.buffers.iter().flatten().collect();
            let held: usize = kept.iter().map(|b| b.len()).sum();
            let mut seen = std::collections::HashSet::new();
            let pinned: usize = kept
                .iter()
                .filter(|b| {
                    let range = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
                    next_body
                        .iter()
                        .any(|p| range.contains(&(p.as_ptr() as usize)))
                        && seen.insert(b.as_ptr())
                })
                .map(|b| b.len())
                .sum();
            let most = next_body.len() + next_body.len() / 4 + COMPACT_SLACK + 4096;
            assert!(
                pinned <= most && held <= most,
                "step {step}: a body of {} B pins {pinned} B, {held} B kept",
                next_body.len()
            );
            let (_, full, _) = build_json(&db, None, &outside, 0).expect("full");
            assert_eq!(text(&next_body), text(&full), "step {step}");
            (body, index) = (next_body, next_index);
        }
        drop(body);
    }

    /// The pretended clock moved back while an older body is still being
    /// sent: the body built at the later time is not served; one of the
    /// earlier time is built.
    #[tokio::test]
    async fn a_body_from_the_future_is_not_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(&dir.path().join("state.db")).expect("open");
        db.set_pretend_time(NOW);
        db.write(|tx| tx.upsert_lorry(&lorry("up/a", "git://x/a", 60)).map(|_| ()))
            .expect("seed");
        let state = AppState::new(
            db,
            crate::WebConfig::new(
                dir.path().join("confgit"),
                lc_hosts::Downstream::Local(lc_hosts::downstream::Local::new(
                    dir.path().join("downstream"),
                )),
            ),
        );
        let cache = &state.status_cache;
        let first = cache.current(&state).await.expect("first");
        // A slow client still receiving the first body.
        let _slow = cache.sending(Arc::clone(&first), first.json.clone());
        state.db.set_pretend_time(NOW + 10);
        let later = cache.current(&state).await.expect("later");
        assert_eq!(later.key.now, NOW + 10);
        state.db.set_pretend_time(NOW);
        let back = cache.current(&state).await.expect("back");
        assert_eq!(back.key.now, NOW);
        let status: lc_api::Status = serde_json::from_slice(&back.json.to_vec()).expect("JSON");
        assert_eq!(status.timestamp, timefmt::utc(NOW));
    }
}
