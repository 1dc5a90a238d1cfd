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

mod admission;
mod args;
mod caps;
mod embedding;
mod events;
mod fast_path;
mod hot_fields;
pub mod incremental;
mod limits;
mod mutation;
mod observe;
mod order;
mod query;
mod schema;
mod subscription;
mod trusted;
mod types;
mod writes;

pub use crate::source::Source;
pub use admission::Admission;
pub use caps::{ConnectionSubscriptions, SubscriptionCaps, SubscriptionLimits};
pub use events::EventBus;
pub use fast_path::Fast;
pub use hot_fields::HotFields;
pub use limits::OperationLimits;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
#[cfg(test)]
pub(crate) use schema::offline;
pub use schema::{AppSchema, BatchedSchema, SchemaDeps, SchemaSettings, build_schema, sdl};
pub use subscription::{Stopping, SubscriptionRoot, TokenExpiry};
pub use trusted::TrustedDocuments;
pub(crate) use trusted::sha256_hex;
pub use writes::WriteShare;

use std::sync::Arc;

use async_graphql::Context;
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
