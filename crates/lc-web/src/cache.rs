//! Answers built from STATEDB, kept while what they were built from holds.
//!
//! The key of a kept answer is STATEDB's generation
//! ([`lc_core::db::StateDb::generation`]: it moves with every committed
//! change, by this process or another), and the time too when the answer
//! moves with the clock. A request whose key equals the kept one gets the
//! kept answer; otherwise one build runs at a time (behind a gate, which
//! also holds what builds share), the others wait for it and take its
//! answer if their key is the same. The JSON status (status_json.rs) works
//! the same way, with an ETag and rules for slow clients besides.

use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// The last answer built, and its key.
pub struct Kept<K, V> {
    current: Mutex<Option<(K, Arc<V>)>>,
}

impl<K, V> Default for Kept<K, V> {
    fn default() -> Kept<K, V> {
        Kept {
            current: Mutex::new(None),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<K: PartialEq, V> Kept<K, V> {
    /// The kept answer if it was built for `key`.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        match &*lock(&self.current) {
            Some((kept, value)) if kept == key => Some(Arc::clone(value)),
            _ => None,
        }
    }

    fn keep(&self, key: K, value: V) -> Arc<V> {
        let value = Arc::new(value);
        *lock(&self.current) = Some((key, Arc::clone(&value)));
        value
    }

    /// The answer for `key`: the kept one, or one built by `build` (on a
    /// blocking thread, holding `gate`, the one build at a time) and kept.
    pub async fn get_or_build<B: Send + 'static>(
        &self,
        key: K,
        gate: &Arc<tokio::sync::Mutex<B>>,
        build: impl FnOnce(&mut B) -> Result<V, ApiError> + Send + 'static,
    ) -> Result<Arc<V>, ApiError>
    where
        V: Send + 'static,
    {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let mut guard = Arc::clone(gate).lock_owned().await;
        // Built by the request that held the gate before us?
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let (value, guard) = tokio::task::spawn_blocking(move || (build(&mut guard), guard))
            .await
            .map_err(ApiError::internal)?;
        let value = self.keep(key, value?);
        drop(guard);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_once_per_key() {
        let kept = Kept::<(u64, i64), String>::default();
        let gate = Arc::new(tokio::sync::Mutex::new(0));
        let build = |n: &mut i32| {
            *n += 1;
            Ok(format!("build {n}"))
        };
        let a = kept.get_or_build((1, 10), &gate, build).await.expect("a");
        let b = kept.get_or_build((1, 10), &gate, build).await.expect("b");
        assert_eq!((a.as_str(), b.as_str()), ("build 1", "build 1"));
        // Another generation, then another second: built again each time.
        let c = kept.get_or_build((2, 10), &gate, build).await.expect("c");
        let d = kept.get_or_build((2, 11), &gate, build).await.expect("d");
        assert_eq!((c.as_str(), d.as_str()), ("build 2", "build 3"));
        // A failed build keeps nothing.
        let failed = kept
            .get_or_build((3, 11), &gate, |_| Err(ApiError::internal("no")))
            .await;
        assert!(failed.is_err());
        assert!(kept.get(&(3, 11)).is_none());
        assert_eq!(
            kept.get(&(2, 11)).as_deref().map(String::as_str),
            Some("build 3")
        );
    }
}
