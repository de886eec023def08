//! Being polite to hosts: a cap on API calls per second per host (a token
//! bucket), and backing off when a host answers 429 or 503.
//!
//! One [`Politeness`] is shared by every HTTP call the webapp makes to
//! Upstream and Downstream Hosts, so listing a host and preparing
//! repositories on it draw from the same budget.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};

/// How often and how long to wait when a host says it is busy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Retries after a 429 or 503 before its answer is taken as final.
    pub retries: u32,
    /// Wait used when the answer has no usable `Retry-After`; doubled on each retry.
    pub initial: Duration,
    /// No single wait is longer than this, whatever `Retry-After` asks.
    pub max_wait: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            retries: 3,
            initial: Duration::from_secs(2),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// Per-host rate limits and backoff.
#[derive(Debug)]
pub struct Politeness {
    /// Calls per second allowed to one host; `None`: no limit.
    rate: Option<f64>,
    backoff: Backoff,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    /// May go below zero: callers reserve their token and wait for it.
    tokens: f64,
    last: Instant,
}

impl Default for Politeness {
    fn default() -> Politeness {
        Politeness::new(None, Backoff::default())
    }
}

impl Politeness {
    /// `calls_per_second`: `None` or a non-positive value means no limit.
    pub fn new(calls_per_second: Option<f64>, backoff: Backoff) -> Politeness {
        Politeness {
            rate: calls_per_second.filter(|r| r.is_finite() && *r > 0.0),
            backoff,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// How long the caller must wait, counted from `now`, before its call
    /// to `host`, having reserved a token. Burst: up to one second's worth
    /// of calls.
    fn reserve(&self, host: &str, now: Instant) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let capacity = rate.max(1.0);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = buckets.entry(host.to_owned()).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / rate)
        }
    }

    /// Waits until a call to `host` is allowed.
    pub async fn acquire(&self, host: &str) {
        let wait = self.reserve(host, Instant::now());
        if !wait.is_zero() {
            tracing::debug!(
                host,
                wait_ms = wait.as_millis() as u64,
                "rate limit: waiting"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends the request `build` makes, after [`Politeness::acquire`]; on a
    /// 429 or 503 waits as the answer's `Retry-After` says (or backs off
    /// exponentially) and tries again, up to the configured retries.
    pub async fn send(
        &self,
        host: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, reqwest::Error> {
        let mut attempt = 0;
        loop {
            self.acquire(host).await;
            let response = build().send().await?;
            let status = response.status();
            if !is_busy(status, response.headers()) || attempt >= self.backoff.retries {
                return Ok(response);
            }
            let fallback = self.backoff.initial.saturating_mul(1 << attempt.min(16));
            let now = jiff::Timestamp::now();
            let wait = retry_after(response.headers(), now)
                .or_else(|| rate_limit_reset(response.headers(), now))
                .unwrap_or(fallback)
                .min(self.backoff.max_wait);
            tracing::warn!(
                host,
                status = status.as_u16(),
                wait_s = wait.as_secs_f64(),
                "host is busy: backing off"
            );
            drop(response);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Whether an answer says "not now": 429 or 503, or GitHub's 403 for an
/// exceeded primary (`X-RateLimit-Remaining: 0`) or secondary
/// (`Retry-After`) rate limit
/// (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit>).
fn is_busy(status: StatusCode, headers: &HeaderMap) -> bool {
    match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => true,
        StatusCode::FORBIDDEN => {
            headers.contains_key(RETRY_AFTER)
                || headers
                    .get("x-ratelimit-remaining")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.trim() == "0")
        }
        _ => false,
    }
}

/// The wait until `X-RateLimit-Reset` (UTC epoch seconds) when
/// `X-RateLimit-Remaining` is 0.
fn rate_limit_reset(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    if text("x-ratelimit-remaining")? != "0" {
        return None;
    }
    let reset: i64 = text("x-ratelimit-reset")?.parse().ok()?;
    let seconds = (reset - now.as_second()).max(0);
    Some(Duration::from_secs(seconds.unsigned_abs()))
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP-date.
fn retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let seconds = (when.as_second() - now.as_second()).max(0);
    Some(Duration::from_secs(seconds.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: jiff::Timestamp = "2015-10-21T07:27:30Z".parse().expect("time");
        assert_eq!(
            retry_after(&headers("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn github_rate_limits_are_busy_answers_with_their_waits() {
        let now: jiff::Timestamp = "2015-10-21T07:27:30Z".parse().expect("time");
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&(now.as_second() + 42).to_string()).expect("header"),
        );
        assert!(is_busy(StatusCode::FORBIDDEN, &h));
        assert_eq!(rate_limit_reset(&h, now), Some(Duration::from_secs(42)));
        assert!(is_busy(StatusCode::FORBIDDEN, &headers("60")));
        // A 403 for want of permission is final.
        assert!(!is_busy(StatusCode::FORBIDDEN, &HeaderMap::new()));
        let mut left = HeaderMap::new();
        left.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
        assert!(!is_busy(StatusCode::FORBIDDEN, &left));
        assert_eq!(rate_limit_reset(&left, now), None);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_spaces_calls() {
        let p = Politeness::new(Some(2.0), Backoff::default());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(p.reserve("a", t0), Duration::ZERO);
        assert_eq!(p.reserve("a", t0), Duration::ZERO);
        // The burst is spent: two calls a second, so the third waits 500 ms
        // and the fourth, reserved at the same moment, a second.
        assert_eq!(p.reserve("a", t0), ms(500));
        assert_eq!(p.reserve("a", t0), ms(1000));
        // Another host has its own bucket.
        assert_eq!(p.reserve("b", t0), Duration::ZERO);
        // Tokens come back with time: after the waits the bucket is empty,
        // and 500 ms later one call may go at once.
        assert_eq!(p.reserve("a", t0 + ms(1500)), Duration::ZERO);
        assert_eq!(p.reserve("a", t0 + ms(1500)), ms(500));
        // A long quiet time refills no more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(p.reserve("a", later), Duration::ZERO);
        assert_eq!(p.reserve("a", later), Duration::ZERO);
        assert_eq!(p.reserve("a", later), ms(500));
    }

    #[test]
    fn no_rate_means_no_wait() {
        let p = Politeness::new(None, Backoff::default());
        for _ in 0..1000 {
            assert_eq!(p.reserve("a", Instant::now()), Duration::ZERO);
        }
        let p = Politeness::new(Some(0.0), Backoff::default());
        assert_eq!(p.reserve("a", Instant::now()), Duration::ZERO);
    }
}
