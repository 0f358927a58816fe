//! API keys as the metadata store last confirmed them, kept briefly so that
//! ingest does not ask the database on every request, and kept longer as a
//! fallback so that ingest goes on authenticating while the database is down.
//!
//! A key is looked up in the database whenever its entry is older than
//! `fresh_for`; only when that lookup fails is an entry up to
//! `outage_grace` old used. So a revocation made through another process
//! takes effect within `fresh_for` while the database is up, and a key revoked
//! just before an outage keeps working for at most `outage_grace`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use meta::{ApiKey, MetaError};

/// Confirmed keys by lookup (token hash or key id).
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<String, Confirmed>>,
    fresh_for: Duration,
    outage_grace: Duration,
    capacity: usize,
}

struct Confirmed {
    key: ApiKey,
    at: Instant,
}

impl KeyCache {
    pub(crate) fn new(fresh_for: Duration, outage_grace: Duration, capacity: usize) -> KeyCache {
        KeyCache {
            entries: Mutex::new(HashMap::new()),
            fresh_for,
            outage_grace: outage_grace.max(fresh_for),
            capacity: capacity.max(1),
        }
    }

    /// The key `lookup` names: from the cache while fresh, else from `load`
    /// (the database), else — if the database fails — from an entry within
    /// the outage grace. Unknown keys are never cached.
    pub(crate) async fn get<Load>(
        &self,
        lookup: String,
        load: Load,
    ) -> Result<Option<ApiKey>, MetaError>
    where
        Load: Future<Output = Result<Option<ApiKey>, MetaError>>,
    {
        if let Some(key) = self.cached(&lookup, self.fresh_for) {
            return Ok(Some(key));
        }
        match load.await {
            Ok(Some(key)) => {
                self.remember(lookup, key.clone());
                Ok(Some(key))
            }
            Ok(None) => {
                self.lock().remove(&lookup);
                Ok(None)
            }
            Err(error) => match self.cached(&lookup, self.outage_grace) {
                Some(key) => {
                    tracing::warn!(
                        %error,
                        key = key.id,
                        "the metadata store is unavailable; using the key as last confirmed"
                    );
                    Ok(Some(key))
                }
                None => Err(error),
            },
        }
    }

    /// Forgets everything, so a change made here (a revocation) applies to
    /// the next request at once.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn cached(&self, lookup: &str, within: Duration) -> Option<ApiKey> {
        self.lock()
            .get(lookup)
            .filter(|entry| entry.at.elapsed() <= within)
            .map(|entry| entry.key.clone())
    }

    fn remember(&self, lookup: String, key: ApiKey) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&lookup) {
            let grace = self.outage_grace;
            entries.retain(|_, entry| entry.at.elapsed() <= grace);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            lookup,
            Confirmed {
                key,
                at: Instant::now(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Confirmed>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(id: &str) -> ApiKey {
        ApiKey {
            id: id.to_owned(),
            tenant: "default".to_owned(),
            name: "test".to_owned(),
            scopes: vec!["logs:write".to_owned()],
            signed: false,
            created_by: None,
            created_at: 0,
            last_used_at: None,
            revoked_at: None,
        }
    }

    fn down() -> Result<Option<ApiKey>, MetaError> {
        Err(MetaError::NotFound("database down".into()))
    }

    #[tokio::test]
    async fn fresh_entries_spare_the_database_and_stale_ones_cover_an_outage() {
        let cache = KeyCache::new(Duration::from_millis(50), Duration::from_millis(400), 10);
        let found = cache.get("h".into(), async { Ok(Some(key("a"))) }).await;
        assert_eq!(found.unwrap().unwrap().id, "a");
        // Fresh: the database is not asked (this load would fail).
        assert_eq!(
            cache
                .get("h".into(), async { down() })
                .await
                .unwrap()
                .unwrap()
                .id,
            "a"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Stale but within the grace: used only because the database fails.
        assert_eq!(
            cache
                .get("h".into(), async { down() })
                .await
                .unwrap()
                .unwrap()
                .id,
            "a"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(cache.get("h".into(), async { down() }).await.is_err());
    }

    #[tokio::test]
    async fn an_answer_from_the_database_always_wins_over_the_cache() {
        let cache = KeyCache::new(Duration::ZERO, Duration::from_secs(60), 10);
        cache
            .get("h".into(), async { Ok(Some(key("a"))) })
            .await
            .unwrap();
        let mut revoked = key("a");
        revoked.revoked_at = Some(1);
        let answer = cache.get("h".into(), async { Ok(Some(revoked)) }).await;
        assert!(answer.unwrap().unwrap().revoked_at.is_some());
        assert!(
            cache
                .get("h".into(), async { Ok(None) })
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            cache.get("h".into(), async { down() }).await.is_err(),
            "forgotten"
        );
    }

    #[tokio::test]
    async fn the_cache_never_grows_past_its_capacity() {
        let cache = KeyCache::new(Duration::from_secs(60), Duration::from_secs(60), 3);
        for i in 0..10 {
            let id = format!("k{i}");
            cache
                .get(id.clone(), async { Ok(Some(key(&id))) })
                .await
                .unwrap();
            assert!(cache.lock().len() <= 3);
        }
    }
}
