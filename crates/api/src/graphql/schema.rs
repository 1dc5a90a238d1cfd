//! Builds the schema and gives it, as schema data, what resolvers share: the
//! pool, the loaders, the embedder and the event bus.

use std::sync::Arc;

use async_graphql::Schema;
use embed::Embedder;
use loaders::Loaders;

use super::embedding::SharedEmbedder;
use super::events::EventBus;
use super::mutation::MutationRoot;
use super::query::QueryRoot;
use super::subscription::SubscriptionRoot;

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
