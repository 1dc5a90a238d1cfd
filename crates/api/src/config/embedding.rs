//! The embedding section: the built-in hashing embedder, or an
//! OpenAI-compatible HTTP endpoint (`NOTEGRAPH_EMBED_URL`) with its model,
//! key, vector size, time budget, retries, batch size and cache.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::Secret;

/// See [`EmbedConfig::embed_model`].
pub const DEFAULT_EMBED_MODEL: &str = "text-embedding-3-small";
/// See [`EmbedConfig::embed_dimension`]: the `notes.embedding` column's size.
pub const DEFAULT_EMBED_DIMENSION: usize = embed::DEFAULT_DIMENSION;
/// See [`EmbedConfig::embed_timeout_ms`]: well inside the GraphQL timeout
/// (and capped below it), so a slow provider is SERVICE_UNAVAILABLE, not TIMEOUT.
pub const DEFAULT_EMBED_TIMEOUT_MS: u64 = 5_000;
/// See [`EmbedConfig::embed_max_retries`].
pub const DEFAULT_EMBED_MAX_RETRIES: u32 = 2;
/// See [`EmbedConfig::embed_batch_size`].
pub const DEFAULT_EMBED_BATCH_SIZE: usize = 128;
/// See [`EmbedConfig::embed_cache_entries`].
pub const DEFAULT_EMBED_CACHE_ENTRIES: u64 = 10_000;
/// See [`EmbedConfig::embed_cache_bytes`]: 10,000 entries of 384 floats.
pub const DEFAULT_EMBED_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Embedding provider settings: the built-in hashing embedder, or an
/// OpenAI-compatible HTTP endpoint when `NOTEGRAPH_EMBED_URL` is set.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Embedding")]
pub struct EmbedConfig {
    /// OpenAI-compatible embeddings endpoint (e.g. https://api.openai.com/v1/embeddings);
    /// unset: the built-in deterministic embedder.
    #[arg(long, env = "NOTEGRAPH_EMBED_URL", global = true)]
    pub embed_url: Option<String>,
    /// Model name sent to the endpoint.
    #[arg(long, env = "NOTEGRAPH_EMBED_MODEL", default_value = DEFAULT_EMBED_MODEL, global = true)]
    pub embed_model: String,
    /// Bearer token for the endpoint.
    #[arg(long, env = "NOTEGRAPH_EMBED_API_KEY", global = true)]
    pub embed_api_key: Option<Secret>,
    /// Vector size; must equal the `notes.embedding` column's (checked at start-up).
    #[arg(long, env = "NOTEGRAPH_EMBED_DIMENSION", default_value_t = DEFAULT_EMBED_DIMENSION, global = true)]
    pub embed_dimension: usize,
    /// Time budget of one embedding call, retries included, in ms.
    #[arg(long, env = "NOTEGRAPH_EMBED_TIMEOUT_MS", default_value_t = DEFAULT_EMBED_TIMEOUT_MS, global = true)]
    pub embed_timeout_ms: u64,
    /// Retries on 429, 5xx or a transport error.
    #[arg(long, env = "NOTEGRAPH_EMBED_MAX_RETRIES", default_value_t = DEFAULT_EMBED_MAX_RETRIES, global = true)]
    pub embed_max_retries: u32,
    /// Most texts per request to the endpoint.
    #[arg(long, env = "NOTEGRAPH_EMBED_BATCH_SIZE", default_value_t = DEFAULT_EMBED_BATCH_SIZE, global = true)]
    pub embed_batch_size: usize,
    /// Most texts whose embedding is cached (HTTP provider only).
    #[arg(long, env = "NOTEGRAPH_EMBED_CACHE_ENTRIES", default_value_t = DEFAULT_EMBED_CACHE_ENTRIES, global = true)]
    pub embed_cache_entries: u64,
    /// Most bytes of cached texts and vectors (HTTP provider only).
    #[arg(long, env = "NOTEGRAPH_EMBED_CACHE_BYTES", default_value_t = DEFAULT_EMBED_CACHE_BYTES, global = true)]
    pub embed_cache_bytes: u64,
}

impl EmbedConfig {
    /// The configured embedder: the HTTP provider behind its cache, or the
    /// built-in one (which needs no cache: it costs microseconds). A
    /// `ceiling` (the GraphQL execution timeout) caps the provider's time
    /// budget at nine tenths of it, so that a slow provider is
    /// SERVICE_UNAVAILABLE with time left to answer, not TIMEOUT.
    pub fn embedder(&self, ceiling: Option<Duration>) -> anyhow::Result<Arc<dyn embed::Embedder>> {
        if self.embed_dimension == 0 {
            anyhow::bail!("NOTEGRAPH_EMBED_DIMENSION must be positive");
        }
        let Some(url) = &self.embed_url else {
            return Ok(Arc::new(embed::HashEmbedder::new(self.embed_dimension)));
        };
        let http = embed::HttpEmbedder::new(embed::HttpSettings {
            url: url.clone(),
            model: self.embed_model.clone(),
            api_key: self.embed_api_key.as_ref().map(|key| key.expose().to_owned()),
            dimension: self.embed_dimension,
            timeout: ceiling.map_or(Duration::from_millis(self.embed_timeout_ms), |c| {
                Duration::from_millis(self.embed_timeout_ms).min(c.mul_f64(0.9))
            }),
            max_retries: self.embed_max_retries,
            batch_size: self.embed_batch_size,
            propagate: Some(crate::telemetry::inject_trace_context),
        })?;
        Ok(Arc::new(embed::CachedEmbedder::new(Arc::new(http), self.embed_cache_entries, self.embed_cache_bytes)))
    }
}
