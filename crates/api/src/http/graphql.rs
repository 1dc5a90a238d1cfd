//! `GET` and `POST /graphql`: the route that runs the request pipeline
//! ([`crate::pipeline::graphql`]), built from the application's state.
//! Everything a request goes through, in order, is listed there.

use axum::routing::{MethodRouter, get_service};

use super::{AppState, Limits};
use crate::pipeline::{self, Parts};

/// The `/graphql` route: GET and POST share one pipeline (and so one
/// shedding limit); other methods get 405.
pub(super) fn route(state: &AppState, limits: &Limits) -> MethodRouter<AppState> {
    let pipeline = pipeline::graphql(Parts {
        schema: state.schema.clone(),
        auth: state.auth.clone(),
        writes: state.writes.clone(),
        cache: state.cache.clone(),
        persisted: state.persisted.clone(),
        limiter: limits.limiter.clone(),
        body_read_timeout: limits.body_read_timeout,
    });
    get_service(pipeline.clone()).post_service(pipeline)
}
