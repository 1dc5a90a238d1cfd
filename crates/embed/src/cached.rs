//! [`CachedEmbedder`]: recent embeddings kept in memory, and identical texts
//! asked for at the same time embedded once.
//!
//! A remote provider costs tens of milliseconds and money per call, and
//! search traffic repeats itself (the same query typed by many users, a
//! client retrying). The cache is bounded both by entries and by bytes; a
//! single text in flight is shared by every caller asking for it
//! (moka's `try_get_with` runs one initialiser per key and hands its result
//! to all waiters).

use std::sync::Arc;

use async_trait::async_trait;
use moka::future::Cache;

use crate::{EmbedError, Embedder};

/// An embedder with a bounded cache in front.
pub struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    cache: Cache<String, Arc<[f32]>>,
}

/// Bytes an entry is charged: its text and its vector.
fn entry_bytes(text: &str, vector: &[f32]) -> usize {
    text.len() + std::mem::size_of_val(vector)
}

impl CachedEmbedder {
    /// Caches up to `max_entries` texts and `max_bytes` of texts and vectors
    /// in front of `inner`.
    ///
    /// moka bounds one weight, so each entry weighs at least
    /// `max_bytes / max_entries`: the byte bound then also caps the entries.
    #[must_use]
    pub fn new(inner: Arc<dyn Embedder>, max_entries: u64, max_bytes: u64) -> Self {
        let floor = u32::try_from(max_bytes / max_entries.max(1)).unwrap_or(u32::MAX);
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(move |text: &String, vector: &Arc<[f32]>| {
                u32::try_from(entry_bytes(text, vector)).unwrap_or(u32::MAX).max(floor)
            })
            .build();
        Self { inner, cache }
    }

    /// How many texts are cached (after pending maintenance).
    pub async fn len(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    /// True when nothing is cached.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    async fn embed_one(&self, text: &str) -> Result<Arc<[f32]>, EmbedError> {
        let inner = &self.inner;
        self.cache
            .try_get_with_by_ref(text, async move {
                let mut vectors = inner.embed(&[text]).await?;
                let vector = vectors.pop().ok_or(EmbedError::Dimension { expected: inner.dimension(), actual: 0 })?;
                Ok::<_, EmbedError>(Arc::from(vector))
            })
            .await
            // The one failure is shared by every waiter; each gets its own
            // error value describing it.
            .map_err(|shared: Arc<EmbedError>| EmbedError::Provider(Box::new(SharedError(shared.to_string()))))
    }
}

/// A provider failure shared by coalesced callers.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SharedError(String);

#[async_trait]
impl Embedder for CachedEmbedder {
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if let [text] = texts {
            return Ok(vec![self.embed_one(text).await?.to_vec()]);
        }
        // Many texts (re-embedding): one batch call for the misses.
        let mut vectors: Vec<Option<Vec<f32>>> = Vec::with_capacity(texts.len());
        let mut misses = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let hit = self.cache.get(*text).await;
            if hit.is_none() {
                misses.push(i);
            }
            vectors.push(hit.map(|v| v.to_vec()));
        }
        if !misses.is_empty() {
            let missing: Vec<&str> = misses.iter().map(|&i| texts[i]).collect();
            let fresh = self.inner.embed(&missing).await?;
            for (&i, vector) in misses.iter().zip(fresh) {
                self.cache.insert(texts[i].to_owned(), Arc::from(vector.as_slice())).await;
                vectors[i] = Some(vector);
            }
        }
        Ok(vectors.into_iter().flatten().collect())
    }
}
