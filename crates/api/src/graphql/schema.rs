//! Builds the schema and holds what resolvers share: the pool, the loaders
//! and the embedder.

use std::sync::Arc;

use async_graphql::{Context, Schema};
use embed::Embedder;
use loaders::Loaders;

use super::events::EventBus;
use super::mutation::MutationRoot;
use super::query::QueryRoot;
use super::subscription::SubscriptionRoot;
use crate::error::ApiError;

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// What the schema's resolvers need, set once at start-up.
pub struct SchemaDeps {
    /// For root lists and writes.
    pub pool: db::PgPool,
    /// For every per-item read.
    pub loaders: Loaders,
    /// Turns note text and search text into vectors.
    pub embedder: Arc<dyn Embedder>,
    /// Where writes publish and subscriptions listen.
    pub events: EventBus,
}

/// The embedder as schema data (a newtype, since `Arc<dyn Embedder>` is
/// awkward as a context key).
pub(crate) struct SharedEmbedder(Arc<dyn Embedder>);

/// Builds the schema with its shared data.
pub fn build_schema(deps: SchemaDeps) -> AppSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .extension(loaders::Batching::default())
        .data(deps.pool)
        .data(deps.loaders)
        .data(SharedEmbedder(deps.embedder))
        .data(deps.events)
        .finish()
}

/// The schema's SDL, for `notegraph print-schema`; needs no database.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).finish().sdl()
}

/// The configured embedder.
pub(crate) fn embedder<'a>(ctx: &Context<'a>) -> Result<&'a Arc<dyn Embedder>, ApiError> {
    ctx.data::<SharedEmbedder>().map(|e| &e.0).map_err(|_| super::missing("embedder"))
}

/// Embeds one text with the configured embedder.
pub(crate) async fn embed_text(ctx: &Context<'_>, text: &str) -> Result<pgvector::Vector, ApiError> {
    let mut vectors = embedder(ctx)?.embed(&[text]).await.map_err(|err| {
        tracing::warn!(error.message = %err, "embedding failed");
        ApiError::ServiceUnavailable
    })?;
    vectors.pop().map(pgvector::Vector::from).ok_or(ApiError::Internal)
}
