//! How each minion isolates its jobs, as its job-updates say (the
//! optional `isolation` field), for the status page. Kept in memory: a
//! restarted webapp learns it again from the next update of each minion.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Most minions remembered; the one heard from longest ago goes first.
const MAX_MINIONS: usize = 256;

/// Longest `isolation` text accepted.
pub const MAX_ISOLATION: usize = 200;

/// What a minion last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub isolation: String,
    pub job_id: i64,
    /// When (seconds since the epoch, STATEDB's clock).
    pub at: i64,
}

#[derive(Debug, Default)]
pub struct MinionsSeen(Mutex<BTreeMap<String, Seen>>);

impl MinionsSeen {
    /// Records that `minion` (`host:pid`) reported `seen`.
    pub fn record(&self, minion: String, seen: Seen) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(minion, seen);
        while map.len() > MAX_MINIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, seen)| seen.at)
                .map(|(name, _)| name.clone());
            match oldest {
                Some(name) => map.remove(&name),
                None => break,
            };
        }
    }

    /// Every minion remembered, by name.
    pub fn list(&self) -> Vec<(String, Seen)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Checks a job-update's `isolation` field: short, printable text.
pub fn check(isolation: &str) -> Result<(), String> {
    if isolation.len() > MAX_ISOLATION {
        return Err(format!(
            "field isolation: longer than {MAX_ISOLATION} bytes"
        ));
    }
    if isolation.chars().any(char::is_control) {
        return Err("field isolation: control characters are not allowed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_minion_goes_first_and_bad_text_is_refused() {
        let seen = MinionsSeen::default();
        for n in 0..=MAX_MINIONS {
            let at = i64::try_from(n).expect("small");
            seen.record(
                format!("m{n:04}:1"),
                Seen {
                    isolation: "bwrap + cgroup v1".into(),
                    job_id: at,
                    at,
                },
            );
        }
        let list = seen.list();
        assert_eq!(list.len(), MAX_MINIONS);
        assert_eq!(list[0].0, "m0001:1");
        assert!(check("bwrap + cgroup v1").is_ok());
        assert!(check("a\nb").is_err());
        assert!(check(&"x".repeat(MAX_ISOLATION + 1)).is_err());
    }
}
