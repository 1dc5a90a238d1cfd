//! Builds the schema and gives it, as schema data, what resolvers share: the
//! pool, the loaders, the embedder and the event bus; and [`BatchedSchema`],
//! the executor every transport runs requests through.

use std::future::Future;
use std::sync::Arc;

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::{Data, Executor, Request, Response, Schema};
use embed::Embedder;
use loaders::{Loaders, Tracked};

use super::embedding::SharedEmbedder;
use super::events::EventBus;
use super::mutation::MutationRoot;
use super::query::QueryRoot;
use super::subscription::SubscriptionRoot;
use crate::response_cache::Invalidation;

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
    /// What writes invalidate in the response cache.
    pub invalidation: Invalidation,
}

/// The schema, run so that every execution and subscription is
/// [`Tracked`]: its loads then batch exactly (docs/batching.md).
///
/// A wrapper rather than a schema extension: with any extension registered,
/// async-graphql runs every field through the extension chain, which costs
/// an allocation per field.
#[derive(Clone)]
pub struct BatchedSchema(AppSchema);

impl Executor for BatchedSchema {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        Tracked::new(Box::pin(self.0.execute(request)))
    }

    fn execute_stream(&self, request: Request, session_data: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        Box::pin(Tracked::new(self.0.execute_stream_with_session_data(request, session_data.unwrap_or_default())))
    }
}

/// Builds the schema with its shared data.
pub fn build_schema(deps: SchemaDeps) -> BatchedSchema {
    let schema = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(deps.pool)
        .data(deps.loaders)
        .data(SharedEmbedder(deps.embedder))
        .data(deps.events)
        .data(deps.invalidation)
        .finish();
    BatchedSchema(schema)
}

/// The schema's SDL, for `notegraph print-schema`; needs no database.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot).finish().sdl()
}
