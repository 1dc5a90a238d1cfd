//! The GraphQL schema: root types, object types and the rules for
//! arguments. Resolvers read through the shared loaders (never a query
//! per item) and check visibility against the request's [`Viewer`].
//!
//! Schema data (set once): the pool, the loaders, the embedder. Request
//! data (set by the HTTP handler): the [`Viewer`]. Writes publish
//! committed changes on the [`EventBus`] that subscriptions read.

mod args;
mod embedding;
mod events;
mod limits;
mod mutation;
mod query;
mod schema;
mod subscription;
mod types;

pub use events::EventBus;
pub use limits::OperationLimits;
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use schema::{AppSchema, BatchedSchema, SchemaDeps, SchemaSettings, build_schema, sdl};
pub use subscription::SubscriptionRoot;

use async_graphql::Context;
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

/// The shared loaders.
fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders, ApiError> {
    ctx.data::<Loaders>().map_err(|_| missing("loaders"))
}

/// The pool, for root fields and writes (per-item reads use loaders).
fn pool<'a>(ctx: &Context<'a>) -> Result<&'a db::PgPool, ApiError> {
    ctx.data::<db::PgPool>().map_err(|_| missing("pool"))
}

/// Context data that the server always sets is missing: a wiring bug.
fn missing(what: &'static str) -> ApiError {
    tracing::error!(exception.type = "INTERNAL", data = what, "graphql context data missing");
    ApiError::Internal
}
