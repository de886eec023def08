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
//! A body is built only when a client asks, never two at once. While one
//! is being built, a request of the same generation gets the body held
//! (if its time is at most [`STALE_MAX`] seconds past) rather than
//! waiting; after a change, requests wait for the new body. The ETag is
//! the key (generation, time the body was built, low disk) and this
//! process's start, so a restarted webapp never repeats one;
//! `If-None-Match` naming it gets a 304.
//!
//! # Memory
//! The body is written straight from the rows into one buffer, sized
//! from the previous body: no vector of lorries, no second copy. Responses
//! share it (`Bytes`). At most two bodies live at once: the one served and
//! the one being built (the old one is dropped before a build after a
//! change, as nothing may serve it then).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use lc_api::{ConfigProblem, HostInfo, LorryInfo, QueueEntry};
use lc_base::timefmt;

use crate::AppState;
use crate::error::ApiError;

/// Seconds a body is served for while STATEDB does not change.
pub const TIME_STEP: i64 = 5;

/// Oldest body (in seconds of its time) served while the next one is
/// being built, when STATEDB has not changed since it was.
pub const STALE_MAX: i64 = TIME_STEP + 2;

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
    building: tokio::sync::Mutex<()>,
    /// Bodies built, for tests and the bench.
    pub builds: std::sync::atomic::AtomicU64,
}

impl Default for StatusCache {
    fn default() -> StatusCache {
        StatusCache {
            boot: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            current: Mutex::new(None),
            building: tokio::sync::Mutex::new(()),
            builds: Default::default(),
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
            && body.key.serves(key)
        {
            return Ok(Arc::clone(body));
        }
        let guard = match self.building.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // A build is running: a body of the same state, only a
                // little older, is served rather than waited for.
                if let Some(body) = &held
                    && (body.key.generation, body.key.low_disk) == (key.generation, key.low_disk)
                    && key.now - body.key.now <= STALE_MAX
                {
                    return Ok(Arc::clone(body));
                }
                self.building.lock().await
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
        // On a task of its own, so a client hanging up does not waste the
        // build: the next request finds it.
        let state2 = state.clone();
        let body = tokio::spawn(async move {
            let body = Arc::new(build(&state2, key, size_hint).await?);
            let cache = &state2.status_cache;
            cache
                .builds
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *lock(&cache.current) = Some(Arc::clone(&body));
            Ok::<_, ApiError>(body)
        })
        .await
        .map_err(ApiError::internal)??;
        drop(guard);
        Ok(body)
    }
}

impl Key {
    /// Whether a body built at this key may answer a request at `now`.
    fn serves(self, now: Key) -> bool {
        (self.generation, self.low_disk) == (now.generation, now.low_disk)
            && (0..TIME_STEP).contains(&(now.now - self.now))
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

async fn build(state: &AppState, key: Key, size_hint: usize) -> Result<StatusBody, ApiError> {
    let outside = Outside {
        disk_free: state.disk_free(),
        publish_failures: state.config.publish_failures,
        warning_msg: state.disk_warning().unwrap_or_default(),
    };
    let boot = state.status_cache.boot;
    state
        .read(move |tx| {
            let now = tx.now();
            let head = Head {
                running_queue: tx.running_queue()?,
                hosts: tx.hosts()?,
                max_jobs: tx.max_jobs()?,
                config_problems: tx.config_problems()?,
                now,
            };
            // Room for the previous body and a little growth: one
            // allocation, whose untouched pages cost nothing.
            let mut out = Vec::with_capacity(size_hint + size_hint / 8 + 4096);
            write_status(&mut out, &head, &outside, |each| {
                tx.for_each_queue_lorry(|lorry| each(queue_entry(lorry, now)))
            })?;
            let key = Key { now, ..key };
            let etag = HeaderValue::from_str(&format!(
                "\"{boot:x}-{}-{now}{}\"",
                key.generation,
                if key.low_disk { "-low" } else { "" }
            ))
            .map_err(|e| lc_core::Error::Corrupt(e.to_string()))?;
            Ok(StatusBody {
                key,
                etag,
                json: Bytes::from(out),
                gzip: tokio::sync::OnceCell::new(),
            })
        })
        .await
}

/// What the status shows of STATEDB, but the run queue.
struct Head {
    running_queue: bool,
    hosts: Vec<HostInfo>,
    max_jobs: Option<i64>,
    config_problems: Vec<ConfigProblem>,
    now: i64,
}

/// Writes the status object as serde writes [`lc_api::Status`] (the same
/// keys in the same order, tested), taking the run queue from `queue`,
/// which hands each entry to the function it is given.
fn write_status<F>(
    out: &mut Vec<u8>,
    head: &Head,
    outside: &Outside,
    queue: F,
) -> lc_core::Result<()>
where
    F: FnOnce(
        &mut dyn FnMut(QueueEntry) -> Result<(), serde_json::Error>,
    ) -> lc_core::Result<Result<(), serde_json::Error>>,
{
    let json = |e: serde_json::Error| lc_core::Error::Corrupt(format!("JSON status: {e}"));
    let field = |out: &mut Vec<u8>, name: &str, value: &dyn erased::Value| {
        out.push(if out.is_empty() { b'{' } else { b',' });
        serde_json::to_writer(&mut *out, name).map_err(json)?;
        out.push(b':');
        value.write(out).map_err(json)
    };
    field(out, "running_queue", &head.running_queue)?;
    out.extend_from_slice(b",\"run_queue\":[");
    let mut first = true;
    queue(&mut |entry| {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, &entry)
    })?
    .map_err(json)?;
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

/// A lorry as the run queue shows it: credentials hidden, times readable.
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

#[cfg(test)]
mod tests {
    use super::*;
    use lc_core::db::{JobUpdate, NewLorry, StateDb};

    const NOW: i64 = 1_700_000_000;

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
    /// escaping; so clients see no difference.
    #[test]
    fn the_streamed_status_is_what_serde_writes_of_the_struct() {
        let (_dir, db) = seeded();
        let outside = Outside {
            disk_free: 5 << 30,
            publish_failures: true,
            warning_msg: "low <disk> \"space\"".into(),
        };
        let (streamed, plain) = db
            .read(|tx| {
                let now = tx.now();
                let head = Head {
                    running_queue: tx.running_queue()?,
                    hosts: tx.hosts()?,
                    max_jobs: Some(3),
                    config_problems: vec![ConfigProblem {
                        file: "a.lorry".into(),
                        item: None,
                        problem: "not \"JSON\"".into(),
                    }],
                    now,
                };
                let mut streamed = Vec::new();
                write_status(&mut streamed, &head, &outside, |each| {
                    tx.for_each_queue_lorry(|lorry| each(queue_entry(lorry, now)))
                })?;
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
                Ok((streamed, serde_json::to_vec(&status).expect("serde")))
            })
            .expect("read");
        let streamed = String::from_utf8(streamed).expect("utf-8");
        assert_eq!(streamed, String::from_utf8(plain).expect("utf-8"));
        let status: lc_api::Status = serde_json::from_str(&streamed).expect("parses");
        assert_eq!(status.run_queue.len(), 5);
        let running = status
            .run_queue
            .iter()
            .find(|e| e.lorry.path == "up/running");
        assert_eq!(running.map(|e| e.due_nice.as_str()), Some("running"));
        assert!(!streamed.contains("s3cret"), "{streamed}");
        assert!(streamed.contains("\"timestamp\":\"2023-11-14 22:13:20 UTC\""));
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
