//! The embedding section: the built-in hashing embedder, or an
//! OpenAI-compatible HTTP endpoint (`NOTEGRAPH_EMBED_URL`) with its model,
//! key, vector size, time budget, retries, batch size and cache.

use std::time::Duration;

use clap::Args;

use super::secret::Secret;

/// See [`EmbeddingConfig::embed_model`].
pub const DEFAULT_EMBED_MODEL: &str = "text-embedding-3-small";
/// See [`EmbeddingConfig::embed_dimension`]: the `notes.embedding` column's size.
pub const DEFAULT_EMBED_DIMENSION: usize = embed::DEFAULT_DIMENSION;
/// See [`EmbeddingConfig::embed_timeout_ms`]: well inside the GraphQL timeout
/// (and capped below it), so a slow provider is SERVICE_UNAVAILABLE, not TIMEOUT.
pub const DEFAULT_EMBED_TIMEOUT_MS: u64 = 5_000;
/// See [`EmbeddingConfig::embed_max_retries`].
pub const DEFAULT_EMBED_MAX_RETRIES: u32 = 2;
/// See [`EmbeddingConfig::embed_batch_size`].
pub const DEFAULT_EMBED_BATCH_SIZE: usize = 128;
/// See [`EmbeddingConfig::embed_cache_entries`].
pub const DEFAULT_EMBED_CACHE_ENTRIES: u64 = 10_000;
/// See [`EmbeddingConfig::embed_cache_bytes`]: 10,000 entries of 384 floats.
pub const DEFAULT_EMBED_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Embedding provider settings: the built-in hashing embedder, or an
/// OpenAI-compatible HTTP endpoint when `NOTEGRAPH_EMBED_URL` is set.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Embedding")]
pub struct EmbeddingConfig {
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

impl EmbeddingConfig {
    /// Refuses a vector size of zero, which no column can hold.
    pub fn check(&self) -> Result<(), String> {
        match self.embed_dimension {
            0 => Err("NOTEGRAPH_EMBED_DIMENSION must be positive".to_owned()),
            _ => Ok(()),
        }
    }

    /// The provider's time budget: the configured one, capped at nine
    /// tenths of a `ceiling` (the GraphQL execution timeout) when there is
    /// one, so that a slow provider is SERVICE_UNAVAILABLE with time left
    /// to answer, not TIMEOUT.
    pub fn timeout(&self, ceiling: Option<Duration>) -> Duration {
        let configured = Duration::from_millis(self.embed_timeout_ms);
        ceiling.map_or(configured, |ceiling| configured.min(ceiling.mul_f64(0.9)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::parse;

    #[test]
    fn the_time_budget_stays_inside_the_execution_deadline() {
        let embed = parse::<EmbeddingConfig>(&["--embed-timeout-ms", "5000"]);
        assert_eq!(embed.timeout(None), Duration::from_secs(5));
        assert_eq!(embed.timeout(Some(Duration::from_secs(25))), Duration::from_secs(5));
        assert_eq!(embed.timeout(Some(Duration::from_secs(2))), Duration::from_millis(1800));
    }

    #[test]
    fn a_vector_needs_a_dimension() {
        assert!(parse::<EmbeddingConfig>(&[]).check().is_ok());
        let refused = parse::<EmbeddingConfig>(&["--embed-dimension", "0"]).check().unwrap_err();
        assert!(refused.contains("NOTEGRAPH_EMBED_DIMENSION"), "{refused}");
    }
}
