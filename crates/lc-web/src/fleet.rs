//! The whole fleet for `/1.0/metrics` and `/1.0/list-queue`, cheap at
//! 100,000 lorries.
//!
//! Both answers are built from one [`Fleet`] (lc-core: a few columns of
//! every lorry, in memory), brought up to date from the `lorries` rows
//! that changed since it was last read ([`LorryTracker`]; every row after
//! another process's write), never sorted by SQLite. Each answer is kept
//! (cache.rs) while STATEDB's generation stays the same, and the queue
//! also while the second does (its order moves with the clock):
//! - metrics: the per-lorry series (the bulk: three lines per lorry) are
//!   rendered once per generation; the counts that move with the clock
//!   (due, overdue, oldest waiting) are counted at each scrape from the
//!   sorted due times ([`FleetHealth::at`]);
//! - list-queue: the JSON body, per generation and second.
//!
//! Memory: the fleet (about 150 bytes per lorry), the per-lorry metrics
//! text (about 85) and the queue's JSON (about 35), kept from the first
//! request on.

use std::sync::Arc;

use axum::body::Bytes;
use lc_core::db::{Fleet, FleetHealth, LorryChanges, LorryTracker, StateDb};

use crate::AppState;
use crate::cache::Kept;
use crate::error::ApiError;

/// What builds share: the fleet and the generation it stands for.
#[derive(Default)]
struct Builder {
    /// Made at the first build (its first read is of every row).
    tracker: Option<LorryTracker>,
    fleet: Fleet,
    /// `None` before the first read and after a failed one: read every row.
    generation: Option<u64>,
}

impl Builder {
    /// The fleet as of at least `generation`.
    fn fleet(&mut self, db: &StateDb, generation: u64) -> lc_core::Result<&Fleet> {
        if self.generation != Some(generation) {
            let tracker = self.tracker.get_or_insert_with(|| db.lorry_tracker());
            let whole = self.generation.take().is_none();
            let fleet = &mut self.fleet;
            db.read_tracked(tracker, |tx, changes| {
                let changes = if whole { LorryChanges::All } else { changes };
                fleet.update(tx, &changes)
            })?;
            self.generation = Some(generation);
        }
        Ok(&self.fleet)
    }
}

/// The fleet's part of `/1.0/metrics` for one generation.
pub struct FleetMetrics {
    pub health: FleetHealth,
    /// The per-lorry series, exposition text (see metrics.rs).
    pub per_lorry: Bytes,
}

#[derive(Default)]
pub struct FleetCache {
    gate: Arc<tokio::sync::Mutex<Builder>>,
    metrics: Kept<u64, FleetMetrics>,
    queue: Kept<(u64, i64), Bytes>,
}

impl FleetCache {
    /// The fleet's part of the metrics, as of now.
    pub async fn metrics(&self, state: &AppState) -> Result<Arc<FleetMetrics>, ApiError> {
        let generation = state.db.generation()?;
        let db = Arc::clone(&state.db);
        self.metrics
            .get_or_build(generation, &self.gate, move |builder| {
                let fleet = builder.fleet(&db, generation)?;
                let per_lorry =
                    crate::metrics::per_lorry_text(fleet.rows()).map_err(ApiError::internal)?;
                Ok(FleetMetrics {
                    health: fleet.health(),
                    per_lorry: Bytes::from(per_lorry),
                })
            })
            .await
    }

    /// The body of `/1.0/list-queue` now: `{"queue": [paths]}`.
    pub async fn queue_json(&self, state: &AppState) -> Result<Bytes, ApiError> {
        let generation = state.db.generation()?;
        let now = state.db.now();
        let db = Arc::clone(&state.db);
        let body = self
            .queue
            .get_or_build((generation, now), &self.gate, move |builder| {
                let fleet = builder.fleet(&db, generation)?;
                queue_json(&fleet.queue(now)).map_err(ApiError::internal)
            })
            .await?;
        Ok(Bytes::clone(&body))
    }
}

/// `{"queue":[...]}` as `Json(Queue { queue })` writes it, without a
/// vector of owned paths.
fn queue_json(paths: &[&str]) -> serde_json::Result<Bytes> {
    let len: usize = paths.iter().map(|p| p.len() + 3).sum();
    let mut json = Vec::with_capacity(len + 16);
    json.extend_from_slice(b"{\"queue\":[");
    for (i, path) in paths.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        serde_json::to_writer(&mut json, path)?;
    }
    json.extend_from_slice(b"]}");
    Ok(Bytes::from(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_json_is_what_serde_writes() {
        for paths in [
            vec![],
            vec!["a"],
            vec!["a/b", "q\"uote\\d", "new\nline", "ünï\u{1}"],
        ] {
            let queue = lc_api::Queue {
                queue: paths.iter().map(|p| (*p).to_owned()).collect(),
            };
            let expected = serde_json::to_vec(&queue).expect("json");
            assert_eq!(queue_json(&paths).expect("json"), expected);
        }
    }
}
