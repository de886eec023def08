//! Repeated failures logged once per minute, not once per request: a full
//! disk or a STATEDB that cannot be written fails every request alike, and
//! a log line per request would fill the disk further.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one kind of failure is logged.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// When each kind of failure was last logged.
#[derive(Debug, Default)]
pub struct LogThrottle(Mutex<HashMap<&'static str, Instant>>);

impl LogThrottle {
    /// Whether a failure of this `kind` is to be logged now: the first
    /// time, and then once per [`LOG_EVERY`].
    pub fn due(&self, kind: &'static str) -> bool {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match last.get(kind) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            _ => {
                last.insert(kind, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_logged_once_per_minute() {
        let throttle = LogThrottle::default();
        assert!(throttle.due("disk"));
        assert!(!throttle.due("disk"));
        assert!(throttle.due("write"));
        assert!(!throttle.due("write"));
    }
}
