//! The path of a `GET` or `POST /graphql`, as an ordered list of stages
//! ([`graphql`]). Each stage is one file: it gets the request as the stage
//! before left it, and either answers or hands it on to the rest of the
//! path (`next`). A request enters each stage once on its way in, and the
//! answer comes back out through the same stages.
//!
//! The request changes shape as it goes: HTTP in [`decode`], a [`Call`]
//! (the request's bytes, who asks) until [`document`] turns it into an
//! [`Operation`] (a GraphQL request), which [`execute`] runs; every stage
//! below [`decode`] answers with an [`Answer`], which [`decode`] writes
//! out as HTTP.
//!
//! The types that move through it are in [`call`]; how stages join
//! (tower's `ServiceBuilder` and `Layer`, and [`Next`]) is in [`chain`].

pub mod budget;
pub mod cache;
pub mod call;
pub mod chain;
pub mod decode;
pub mod document;
pub mod encode;
pub mod execute;
pub mod fast;
pub mod identity;
pub mod policy;
pub mod replay;
pub mod shedding;

pub use call::{Answer, Call, Method, Operation, Rejection, Reply, XCache};
pub use chain::{Next, Stage};

use std::convert::Infallible;

use ::cache::ResponseCache;
use axum::extract::Request as HttpRequest;
use axum::response::Response as HttpResponse;
use chain::{Head, stage};
use tower::{Service, ServiceBuilder};

use crate::auth::Authenticator;
use crate::graphql::BatchedSchema;
use crate::read_your_writes::ReadYourWrites;

/// What the `/graphql` pipeline is built from.
pub struct Parts {
    /// The executable schema: limits, execution, deadline.
    pub schema: BatchedSchema,
    /// Turns `Authorization` into a viewer.
    pub auth: Authenticator,
    /// Which writes other servers made that this one has heard of.
    pub writes: ReadYourWrites,
    /// The response cache, when enabled.
    pub cache: Option<ResponseCache>,
    /// Persisted and trusted documents by hash.
    pub persisted: document::Persisted,
    /// Requests executing at once before the rest are shed: fixed, or
    /// found from latency.
    pub limiter: shedding::Limiter,
    /// How long a client may take to send a body.
    pub body_read_timeout: std::time::Duration,
}

/// The request path of `GET` and `POST /graphql`, outermost stage first.
/// Adding a stage is one line here plus its file.
pub fn graphql(
    parts: Parts,
) -> impl Service<HttpRequest, Response = HttpResponse, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
    let Parts { schema, auth, writes, cache, persisted, limiter, body_read_timeout } = parts;
    let budgets = schema.budgets().cloned();
    // With budgets on every request is costed, so none is answered before
    // its cost is known: the replay shortcut is off (the parsed-document
    // map still spares a resent document its parse).
    let replayed = if budgets.is_some() { None } else { cache.clone() };
    ServiceBuilder::new()
        // Shedding: past the limit of requests executing at once (fixed,
        // or found from latency), 503 at once instead of a queue. Probes
        // and streams are not shed.
        .layer(shedding::ShedLayer(limiter))
        .layer(tower::layer::layer_fn(Head::new))
        // HTTP in and out: `Accept`, `Content-Type`, the body.
        .layer(stage(decode::Decode::new(body_read_timeout)))
        // Who asks, and whether they must read past the cache.
        .layer(stage(identity::Identity::new(auth, writes)))
        // A request sent again byte for byte: its cached response.
        .layer(stage(replay::Replay::new(replayed)))
        // Parameters, persisted and trusted documents: the GraphQL request.
        .layer(stage(document::Document::new(persisted)))
        // Limits (and the parse, behind them), GET runs queries only.
        .layer(stage(policy::Policy::new(schema.admission())))
        // The cost taken from the client's budget: 429 when over it.
        .layer(stage(budget::Budget::new(budgets)))
        // Shared, then private entries; one execution per key at a time.
        .layer(stage(cache::Cache::new(cache)))
        // A list over plain row data: its bytes from its statement's rows
        // (a query with `@defer`/`@stream` is never one).
        .layer(stage(fast::FastPath::new(schema.clone())))
        // The response as bytes, encoded once for every waiter; or, for
        // a query with `@defer`/`@stream` that accepts it, in parts.
        .layer(stage(encode::Encode::new(Some(schema.clone()))))
        .service(execute::Execute::new(schema))
}
