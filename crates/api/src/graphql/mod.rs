//! The GraphQL schema: root types, object types and the rules for
//! arguments. Resolvers read through the shared loaders (never a query
//! per item) and check visibility against the request's [`Viewer`].
//!
//! Schema data (set once): the primary's [`Source`] (pool and loaders), the
//! embedder, the cache invalidation. Request data (set by the HTTP
//! handler): the [`Viewer`]; when the response may be cached, the
//! [`Touched`] collector that resolvers record their dependencies in; and
//! the read replica's [`Source`] when the query may read there. Committed writes reach
//! subscriptions through the [`EventBus`], fed by `LISTEN`
//! ([`crate::notifications`]).

mod args;
mod caps;
mod embedding;
mod events;
mod hot_fields;
mod limits;
mod mutation;
mod observe;
mod order;
pub(crate) mod parsed;
mod query;
mod schema;
mod subscription;
mod trusted;
mod types;

pub use caps::{ConnectionSubscriptions, SubscriptionCaps, SubscriptionLimits};
pub use events::EventBus;
pub use hot_fields::HotFields;
pub use limits::OperationLimits;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use schema::{AppSchema, BatchedSchema, SchemaDeps, SchemaSettings, build_schema, sdl};
pub use subscription::{Stopping, SubscriptionRoot, TokenExpiry};
pub use trusted::TrustedDocuments;
pub(crate) use trusted::sha256_hex;

use std::sync::Arc;

use async_graphql::Context;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use cache::Touched;
use loaders::Loaders;

use crate::auth::Viewer;
use crate::error::ApiError;

/// The request's viewer id (`None` when anonymous).
fn viewer(ctx: &Context<'_>) -> Result<Option<db::UserId>, ApiError> {
    ctx.data::<Viewer>().map(|v| v.user).map_err(|_| missing("viewer"))
}

/// The viewer id, or UNAUTHENTICATED for anonymous requests.
fn signed_in(ctx: &Context<'_>) -> Result<db::UserId, ApiError> {
    viewer(ctx)?.ok_or_else(|| ApiError::Unauthenticated("sign in to do this".into()))
}

/// Where a request reads: a pool and the loaders over it. The primary's
/// is schema data; a query that may read the read replica carries the
/// replica's as request data, which takes precedence ([`crate::replica`]).
pub struct Source {
    /// For root fields and writes (per-item reads use the loaders).
    pub pool: db::PgPool,
    /// Shared by every request reading this pool.
    pub loaders: Loaders,
}

/// The request's loaders.
fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders, ApiError> {
    ctx.data::<Arc<Source>>().map(|s| &s.loaders).map_err(|_| missing("loaders"))
}

/// The request's pool, for root fields and writes (per-item reads use
/// loaders).
fn pool<'a>(ctx: &Context<'a>) -> Result<&'a db::PgPool, ApiError> {
    ctx.data::<Arc<Source>>().map(|s| &s.pool).map_err(|_| missing("pool"))
}

/// Records, for the response cache, that this execution read what the
/// tag `name` names (docs/CACHE.md); a no-op when nothing is cached.
fn touch(ctx: &Context<'_>, name: impl FnOnce() -> String) {
    if let Ok(touched) = ctx.data::<Arc<Touched>>() {
        touched.read(&name());
    }
}

/// Records that this execution's result would differ for another viewer,
/// so the response cache keeps it private to this one.
fn viewer_dependent(ctx: &Context<'_>) {
    if let Ok(touched) = ctx.data::<Arc<Touched>>() {
        touched.viewer_dependent();
    }
}

/// Context data that the server always sets is missing: a wiring bug.
fn missing(what: &'static str) -> ApiError {
    tracing::error!(exception.type = "INTERNAL", data = what, "graphql context data missing");
    ApiError::Internal
}

/// The operation a request runs, picked exactly as async-graphql picks it:
/// with a name, the operation of that name (an anonymous one has none);
/// without, the only operation, named or not. The parser keeps a single
/// *named* operation in `Multiple`, so "the only one" must look there too,
/// or a named query sent without `operationName` would escape the GET
/// refusal of mutations and the response cache.
pub(crate) fn select_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), None) => Some(&op.node),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| &op.node),
        (DocumentOperations::Multiple(_), None) => None,
    }
}
