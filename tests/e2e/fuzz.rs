//! Request fuzzing against the real webapp binary (issue 12 item 8):
//! random and mutated requests on every route, with odd methods, paths,
//! queries, bodies and content types, plus malformed HTTP on raw sockets.
//! No answer may be a 5xx, nothing may panic, and the webapp must still be
//! healthy afterwards.
//!
//! CI runs `LORRY_FUZZ_SECONDS` (default 20) seconds; a deep run:
//! `LORRY_FUZZ_SECONDS=1800 cargo test --release --test e2e fuzz::`.
//! `LORRY_FUZZ_SEED` replays the seed a run printed.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::common::{Webapp, lorry};

/// xorshift64*, reproducible from the seed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// Up to `max` random bytes.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        (0..len).map(|_| self.below(256) as u8).collect()
    }
}

const ROUTES: &[&str] = &[
    "/1.0/status",
    "/1.0/status-html",
    "/1.0/manifest.js.gz",
    "/1.0/lorry-html/{path}",
    "/1.0/job-html/{id}",
    "/1.0/list-jobs-html",
    "/1.0/job/{id}/output",
    "/lc-static/{path}",
    "/1.0/list-queue",
    "/1.0/start-queue",
    "/1.0/stop-queue",
    "/1.0/move-to-top",
    "/1.0/move-to-bottom",
    "/1.0/lorry/{path}",
    "/1.0/list-running-jobs",
    "/1.0/list-jobs",
    "/1.0/job/{id}",
    "/1.0/stop-job",
    "/1.0/remove-job",
    "/1.0/remove-ghost-jobs",
    "/1.0/remove-old-jobs",
    "/1.0/get-max-jobs",
    "/1.0/set-max-jobs",
    "/1.0/give-me-job",
    "/1.0/job-update",
    "/1.0/pretend-time",
    "/1.0/read-configuration",
    "/1.0/ls-troves",
    "/1.0/force-ls-troves",
    "/1.0/backup",
    "/1.0/events",
    "/1.0/health-check",
    "/1.0/metrics",
    "/1.0/lorry-history/{path}",
    "/1.0/lorry-refs/{path}",
    "/1.0/snapshots",
    "/1.0/snapshots/{path}",
    "/1.0/snapshots/{path}/delete",
    "/1.0/snapshots/{id}/diff/{path}",
    "/",
    "/1.0",
    "/1.0/",
];

const FIELDS: &[&str] = &[
    "host",
    "pid",
    "job_id",
    "exit",
    "stdout",
    "stderr",
    "disk_usage",
    "result",
    "path",
    "lorry",
    "now",
    "max_jobs",
    "redirect",
    "dry_run",
    "idle",
    "wait",
    "host_name",
    "csrf",
    "last",
    "since",
    "type",
    "prefix",
    "name",
    "note",
    "channel",
    "a",
    "b",
];

const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "no",
    "yes",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999",
    "1e9",
    " 7 ",
    "NaN",
    "fuzz/a",
    "fuzz/b",
    "fuzz%2Fa",
    "../../etc/passwd",
    "/1.0/status-html",
    "//evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "\u{0}",
    "é\u{202e}ü",
    "{\"version\":1}",
    "{\"version\":99,\"specs\":[{}]}",
    "[1,2,3]",
    "null",
    "%ff%fe",
    "<script>x</script>",
];

fn value(r: &mut Random) -> String {
    match r.below(10) {
        0 => "x".repeat(r.below(5000)),
        1 => String::from_utf8_lossy(&r.bytes(64)).into_owned(),
        2 => (r.below(1 << 20) as i64 - (1 << 19)).to_string(),
        _ => r.pick(VALUES).to_owned(),
    }
}

/// Percent-encodes what a URL or form cannot hold as it is.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-_.~%".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn path(r: &mut Random, job: i64) -> String {
    let route = r.pick(ROUTES);
    let id = match r.below(6) {
        0 => job.to_string(),
        1 => r.below(100).to_string(),
        2 => "-1".to_owned(),
        3 => "99999999999999999999".to_owned(),
        4 => "abc".to_owned(),
        _ => value(r),
    };
    let lorry_path = match r.below(5) {
        0 => "fuzz/a".to_owned(),
        1 => "fuzz/a/../../x".to_owned(),
        2 => "%2e%2e/%2e%2e/etc/passwd".to_owned(),
        3 => "style.css".to_owned(),
        _ => value(r),
    };
    let mut out = route
        .replace("{id}", &encode(&id))
        .replace("{path}", &encode(&lorry_path));
    if r.chance(10) {
        out.insert(r.below(out.len()), '/');
    }
    if r.chance(30) {
        out.push('?');
        for _ in 0..r.below(4) {
            let key = r.pick(FIELDS).to_owned();
            out.push_str(&format!("{key}={}&", encode(&value(r))));
        }
    }
    out
}

fn body(r: &mut Random) -> Vec<u8> {
    match r.below(8) {
        0 => r.bytes(400),
        1 => Vec::new(),
        _ => {
            let mut pairs = Vec::new();
            for _ in 0..r.below(7) {
                let key = if r.chance(90) {
                    r.pick(FIELDS).to_owned()
                } else {
                    value(r)
                };
                pairs.push(format!("{}={}", encode(&key), encode(&value(r))));
            }
            let mut text = pairs.join("&").into_bytes();
            if r.chance(10) && !text.is_empty() {
                // Mutate a byte of an otherwise valid body.
                let at = r.below(text.len());
                text[at] = r.below(256) as u8;
            }
            text
        }
    }
}

/// At most 300 bytes of `text`, for messages.
fn short(text: &str) -> &str {
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Paths whose answer may be a stream that stays open (server-sent
/// events): a client timeout there is not a hang.
fn may_stream(path: &str) -> bool {
    path.contains("/output") || path.starts_with("/1.0/events")
}

#[test]
fn thousands_of_random_requests_get_no_5xx_and_no_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `wait` is parsed and checked, but no request is held (longpoll.rs
    // tests the holding).
    let webapp = Webapp::init(dir.path())
        .with_args(&["--give-me-job-max-wait=0"])
        .start();
    webapp.seed(&[lorry("fuzz/a"), lorry("fuzz/b")]);
    let (job, _) = webapp.give_me_job().expect("a job to aim at");
    let seed = std::env::var("LORRY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let budget = Duration::from_secs(
        std::env::var("LORRY_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    eprintln!("fuzz: LORRY_FUZZ_SEED={seed} for {budget:?}");
    let mut r = Random(seed);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let methods = [
        "GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "FUZZ",
    ];
    let types = [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=latin1",
        "application/json",
        "multipart/form-data; boundary=x",
        "text/plain",
        "",
        "application/x-www-form-urlencoded; charset=\u{e9}",
    ];
    let started = Instant::now();
    let mut sent = 0usize;
    let mut raw = 0usize;
    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while started.elapsed() < budget || sent < 500 {
        if r.chance(5) {
            raw += 1;
            if let Some(problem) = raw_request(&mut r, webapp.port) {
                failures.push(problem);
            }
            continue;
        }
        let method = match r.below(10) {
            0..=3 => "GET",
            4..=8 => "POST",
            _ => r.pick(&methods),
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let target = path(&mut r, job);
        let payload = body(&mut r);
        let mut request = client.request(method.clone(), webapp.url(&target));
        let content_type = if r.chance(75) {
            types[0]
        } else {
            r.pick(&types)
        };
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        if r.chance(5) {
            request = request.header("accept", "text/event-stream");
        }
        if r.chance(5) {
            request = request.header("origin", "https://evil.example");
        }
        sent += 1;
        match request.body(payload.clone()).send() {
            Ok(answer) => {
                let status = answer.status();
                *statuses.entry(status.as_u16()).or_default() += 1;
                if status.is_server_error() {
                    let text = answer.text().unwrap_or_default();
                    failures.push(format!(
                        "{method} {} body {:?}: {status} {text}",
                        short(&target),
                        String::from_utf8_lossy(&payload[..payload.len().min(200)])
                    ));
                }
            }
            Err(e) if e.is_timeout() && may_stream(&target) => {}
            // What our own client refuses to send never reached the webapp.
            Err(e) if e.is_builder() => sent -= 1,
            Err(e) => failures.push(format!("{method} {}: {e:?}", short(&target))),
        }
        if failures.len() > 20 {
            break;
        }
    }
    eprintln!(
        "fuzz: {sent} requests and {raw} raw ones in {:?}; answers by status: {statuses:?}",
        started.elapsed()
    );
    if !failures.is_empty() {
        let log = webapp.log();
        let tail = &log[log.len().saturating_sub(3000)..];
        panic!(
            "seed {seed}:\n{}\n--- the webapp's log ends:\n{tail}",
            failures.join("\n")
        );
    }
    assert_eq!(webapp.get("/1.0/health-check").status, 200);
    let log = webapp.log();
    assert!(!log.contains("panicked"), "a panic in the log:\n{log}");
}

/// One malformed HTTP request on a raw socket: the webapp may answer any
/// non-5xx status or close the connection.
fn raw_request(r: &mut Random, port: u16) -> Option<String> {
    let request: Vec<u8> = match r.below(6) {
        0 => r.bytes(300),
        1 => format!("GET /1.0/status HTTP/1.1\r\nHost: x\r\n{}\r\n\r\n", "X: y\r\n".repeat(r.below(200))).into_bytes(),
        2 => b"POST /1.0/job-update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999999\r\n\r\njob_id=1".to_vec(),
        3 => b"POST /1.0/job-update HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n".to_vec(),
        4 => format!("GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a".repeat(r.below(70_000))).into_bytes(),
        _ => {
            let mut line = b"GET /1.0/list-queue HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec();
            let at = r.below(line.len());
            line[at] = r.below(256) as u8;
            line
        }
    };
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let _ = stream.write_all(&request);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status >= 500).then(|| {
        format!(
            "raw {:?}: {head}",
            String::from_utf8_lossy(&request[..request.len().min(200)])
        )
    })
}

/// Found by the fuzzer: a pretended time of `i64::MIN` made the job list
/// page subtract with overflow (a panic, the connection dropped). Times
/// outside years 1970..=9999 are now refused, naming the field.
#[test]
fn a_pretended_time_out_of_range_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let webapp = Webapp::init(dir.path()).start();
    webapp.seed(&[lorry("fuzz/a")]);
    webapp.give_me_job().expect("a job");
    for now in ["-9223372036854775808", "-1", "253402300800"] {
        let answer = webapp.post("/1.0/pretend-time", &[("now", now)]);
        assert_eq!(answer.status, 400, "{answer:?}");
        let error = answer.body["error"].as_str().expect("JSON error");
        assert!(error.contains("field now"), "{error}");
    }
    webapp.pretend_time(0);
    assert_eq!(webapp.get("/1.0/list-jobs-html").status, 200);
    webapp.pretend_time(253_402_300_799);
    assert_eq!(webapp.get("/1.0/list-jobs-html").status, 200);
    assert_eq!(webapp.get("/1.0/status-html").status, 200);
    assert!(!webapp.log().contains("panicked"));
}
