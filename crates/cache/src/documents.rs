//! [`Documents`]: query texts by hash, for automatic persisted queries.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

/// Documents clients registered by hash, bounded by bytes: a client whose
/// hash was evicted registers it again, as the protocol expects.
#[derive(Clone)]
pub struct Documents(Cache<String, Arc<str>>);

impl Documents {
    /// A store holding at most `max_bytes` of documents, each kept for
    /// `ttl` after its last use.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|hash: &String, text: &Arc<str>| u32::try_from(hash.len() + text.len()).unwrap_or(u32::MAX))
            .time_to_idle(ttl)
            .build();
        Documents(cache)
    }

    /// The document registered under `hash`.
    pub async fn get(&self, hash: &str) -> Option<Arc<str>> {
        self.0.get(hash).await
    }

    /// Registers `text` under `hash` (the caller checked that it matches).
    pub async fn insert(&self, hash: String, text: Arc<str>) {
        self.0.insert(hash, text).await;
    }
}
