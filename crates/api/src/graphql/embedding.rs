//! The embedder as schema data, and the two ways resolvers reach it: the
//! embedder itself (for its dimension) and embedding one text. Kept apart
//! from `schema` so that the root resolvers depend on this small module
//! rather than on the module that builds the schema out of them.

use std::sync::Arc;

use async_graphql::Context;
use embed::Embedder;
use tracing::Instrument as _;

use crate::error::ApiError;

/// The embedder as schema data (a struct, since `Arc<dyn Embedder>` is
/// awkward as a context key), with how hard to search for what it embeds.
pub(crate) struct SharedEmbedder {
    /// The configured embedder.
    pub(crate) embedder: Arc<dyn Embedder>,
    /// `hnsw.ef_search` for searches by embedded text, when it differs from
    /// the connections' own (`NOTEGRAPH_HNSW_EF_SEARCH_TEXT`).
    pub(crate) text_ef_search: Option<u32>,
}

/// The configured embedder.
pub(crate) fn embedder<'a>(ctx: &Context<'a>) -> Result<&'a Arc<dyn Embedder>, ApiError> {
    shared(ctx).map(|e| &e.embedder)
}

/// `hnsw.ef_search` for a search by embedded text, when not the connections' own.
pub(crate) fn text_ef_search(ctx: &Context<'_>) -> Result<Option<u32>, ApiError> {
    shared(ctx).map(|e| e.text_ef_search)
}

fn shared<'a>(ctx: &Context<'a>) -> Result<&'a SharedEmbedder, ApiError> {
    ctx.data::<SharedEmbedder>().map_err(|_| super::missing("embedder"))
}

/// Embeds one text with the configured embedder.
///
/// Every call is one `embedding` span and one sample of the embedding
/// metrics (the embed crate knows nothing of either).
pub(crate) async fn embed_text(ctx: &Context<'_>, text: &str) -> Result<pgvector::Vector, ApiError> {
    let embedder = embedder(ctx)?;
    let started = std::time::Instant::now();
    let span = tracing::debug_span!("embedding", texts = 1_u64);
    let embedded = embedder.embed(&[text]).instrument(span).await;
    crate::metrics::embedding_call(embedded.is_ok(), started.elapsed());
    // The provider logged the cause once (and again when it changes);
    // each failed request only counts, as the `service` label of its
    // operation.
    let mut vectors = embedded.map_err(|err| {
        tracing::debug!(exception.type = "SERVICE_UNAVAILABLE", error.message = %err.cause(), "embedding failed");
        ApiError::EmbeddingUnavailable
    })?;
    vectors.pop().map(pgvector::Vector::from).ok_or(ApiError::Internal)
}
