//! `/graphql/stream`: GraphQL over Server-Sent Events, the graphql-sse
//! protocol (docs/SUBSCRIPTIONS.md), in both of its modes:
//!
//! - **Distinct connections**: a `GET` or `POST` with
//!   `Accept: text/event-stream` carries one operation and gets its results
//!   as `next` events, then `complete`. GraphQL errors (validation, limits)
//!   arrive as a `next` event, as the protocol asks; a request that is not
//!   a GraphQL request at all (bad JSON, no `query`) or bad credentials get
//!   an HTTP error with our JSON error body.
//! - **Single connection** ([`reservations`]): `PUT` reserves a stream and
//!   returns its token; `GET` with the token opens it; `POST` with the
//!   token runs an operation on it (202); `DELETE ?operationId=` stops one.
//!
//! Streams open with a heartbeat comment (`:`), so that the response head
//! leaves at once, and carry one every `NOTEGRAPH_SSE_HEARTBEAT_MS`
//! so that proxies keep quiet streams open, and complete at shutdown.
//! Auth comes from the `Authorization` header, as on `/graphql`.

mod reservations;

pub use reservations::Reservations;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use async_graphql::{Executor as _, Request};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures::{Stream, StreamExt as _, stream};

use super::AppState;
use crate::auth::Credentials;
use crate::error::error_body;
use crate::graphql::TokenExpiry;
use crate::pipeline::Rejection;
use crate::pipeline::call::list_items;
use crate::pipeline::decode::{carries_body, check_content_type, closing, read_body};
use crate::pipeline::document::{Params, body_params, get_params, into_request};
use crate::pipeline::encode::{encode, encode_payload};

/// The header (or `token` query parameter) that names a reservation.
const TOKEN_HEADER: &str = "x-graphql-event-stream-token";

/// `GET /graphql/stream`: a distinct-connection operation from the query
/// string, or a reserved stream opening.
pub(super) async fn get(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> HttpResponse {
    if !accepts_event_stream(&headers) {
        return not_acceptable();
    }
    if let Some(token) = token(&headers, raw.as_deref()) {
        return state.streams.reservations.open(&state, &token);
    }
    let params = match get_params(raw.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(rejection) => return reject(rejection),
    };
    distinct(&state, &headers, params, peer.map(|Extension(ConnectInfo(peer))| peer)).await
}

/// `POST /graphql/stream`: a distinct-connection operation, or (with a
/// reservation token) an operation for a reserved stream.
pub(super) async fn post(State(state): State<AppState>, request: HttpRequest) -> HttpResponse {
    let headers = request.headers().clone();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let reserved = token(&headers, request.uri().query());
    let unread = carries_body(&request);
    if reserved.is_none() && !accepts_event_stream(&headers) {
        return closing(unread, not_acceptable());
    }
    let params = match post_params(&headers, request, state.streams.body_read_timeout).await {
        Ok(params) => params,
        // Refused before its body was read whole (415, 413, 408) or after
        // (400), when closing costs nothing.
        Err(rejection) => return closing(unread, reject(rejection)),
    };
    match reserved {
        Some(token) => state.streams.reservations.run(&state, &headers, peer, &token, params).await,
        None => distinct(&state, &headers, params, peer).await,
    }
}

/// `PUT /graphql/stream`: reserves a single-connection stream.
pub(super) async fn put(State(state): State<AppState>, headers: HeaderMap) -> HttpResponse {
    state.streams.reservations.reserve(&state, &headers).await
}

/// `DELETE /graphql/stream?operationId=…`: stops an operation of a
/// reserved stream.
pub(super) async fn delete(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResponse {
    let Some(token) = token(&headers, raw.as_deref()) else {
        return reject(Rejection::new(StatusCode::NOT_FOUND, "no such stream", "NOT_FOUND"));
    };
    let operation = query_param(raw.as_deref(), "operationId");
    state.streams.reservations.stop(&token, operation.as_deref())
}

/// Runs one operation on its own connection: `next` events, then
/// `complete`.
async fn distinct(state: &AppState, headers: &HeaderMap, mut params: Params, peer: Option<SocketAddr>) -> HttpResponse {
    if let Err(rejection) = state.persisted.resolve(&mut params).await {
        return reject(rejection);
    }
    let request = match into_request(params) {
        Ok(request) => request,
        Err(rejection) => return reject(rejection),
    };
    let request = match authenticate(state, headers, peer, request).await {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let mut request = request;
    let complete = stream::once(async { event("complete", b"") });
    // A query with `@defer`/`@stream`: each part is one `next` event.
    if crate::graphql::incremental::wanted(&mut request) {
        let parts = state.schema.stream_incremental(request).map(|payload| next_event(&encode_payload(payload)));
        return event_stream(parts.chain(complete), state.streams.heartbeat);
    }
    let results = state.schema.execute_stream(request, None).map(|response| next_event(&encode(response).body));
    event_stream(results.chain(complete), state.streams.heartbeat)
}

/// The request with its viewer (and token expiry, and the client its
/// budget charges) as data, or the 401 to answer.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    request: Request,
) -> Result<Request, Box<HttpResponse>> {
    let (viewer, expires) = credentials(state, headers).await?;
    let request = match budget_client(state, &viewer, peer, headers) {
        Some(client) => request.data(client),
        None => request,
    };
    let request = request.data(viewer);
    Ok(match expires {
        Some(expires) => request.data(TokenExpiry(expires)),
        None => request,
    })
}

/// Who the per-client budgets charge for an operation of `viewer` sent
/// from `peer` (`None` when budgets are off): the schema charges it.
fn budget_client(
    state: &AppState,
    viewer: &crate::auth::Viewer,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Option<crate::budgets::Client> {
    state.schema.budgets()?.client(viewer, peer, headers)
}

/// The viewer named by `Authorization`, or the 401 (503 when the signing
/// keys are unavailable) to answer.
async fn credentials(state: &AppState, headers: &HeaderMap) -> Result<Credentials, Box<HttpResponse>> {
    state.auth.credentials(headers.get(header::AUTHORIZATION)).await.map_err(|err| {
        let rejection = Rejection::credentials(&err);
        let header = rejection.header.clone();
        let mut response = reject(rejection);
        if let Some((name, value)) = header {
            response.headers_mut().insert(name, value);
        }
        Box::new(response)
    })
}

/// One SSE message: `event: <name>`, then `data: <data>` (present even
/// when empty, so that `EventSource` dispatches a `complete` event).
///
/// Written by hand rather than with axum's `Sse`, which leaves out an
/// empty `data` field. `data` is compact JSON, which has no raw newlines.
fn event(name: &str, data: &[u8]) -> Bytes {
    let mut message = Vec::with_capacity(name.len() + data.len() + 16);
    message.extend_from_slice(b"event: ");
    message.extend_from_slice(name.as_bytes());
    message.extend_from_slice(b"\ndata: ");
    message.extend_from_slice(data);
    message.extend_from_slice(b"\n\n");
    message.into()
}

/// A `next` event carrying an encoded execution result.
fn next_event(body: &[u8]) -> Bytes {
    event("next", body)
}

/// The heartbeat: an SSE comment, which clients ignore.
const HEARTBEAT: &[u8] = b":\n\n";

/// The response for a stream of events, with a heartbeat after every
/// `heartbeat` without an event. It opens with one: the response's head
/// leaves with its first bytes, so without them a client would not know
/// the stream is open until the first event or heartbeat (12 s by default).
fn event_stream(events: impl Stream<Item = Bytes> + Send + 'static, heartbeat: Duration) -> HttpResponse {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = stream::unfold((Box::pin(events), tick), |(mut events, mut tick)| async move {
        let message = tokio::select! {
            biased;
            message = events.next() => {
                tick.reset();
                message?
            }
            _ = tick.tick() => Bytes::from_static(HEARTBEAT),
        };
        Some((Ok::<_, Infallible>(message), (events, tick)))
    });
    let body = stream::once(std::future::ready(Ok(Bytes::from_static(HEARTBEAT)))).chain(body);
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        // Tells nginx-style proxies not to buffer the stream.
        (header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no")),
    ];
    (headers, axum::body::Body::from_stream(body)).into_response()
}

/// True when `Accept` names `text/event-stream`.
fn accepts_event_stream(headers: &HeaderMap) -> bool {
    list_items(headers, header::ACCEPT)
        .any(|range| range.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream")))
}

/// The reservation token, from the header or the `token` query parameter.
fn token(headers: &HeaderMap, raw_query: Option<&str>) -> Option<String> {
    headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_param(raw_query, "token"))
        .filter(|token| !token.is_empty())
}

/// One parameter of a query string.
fn query_param(raw_query: Option<&str>, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw_query.unwrap_or_default()).ok()?;
    pairs.into_iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

/// The parameters of a POST: `application/json` in UTF-8, read whole.
/// The parameters of a POST: JSON, read within the body-read deadline.
async fn post_params(headers: &HeaderMap, request: HttpRequest, deadline: Duration) -> Result<Params, Rejection> {
    check_content_type(headers)?;
    body_params(&read_body(request, deadline).await?)
}

/// A request that cannot be run, as our JSON error.
fn reject(rejection: Rejection) -> HttpResponse {
    let body = error_body(&rejection.message, rejection.code);
    (rejection.status, axum::Json(body)).into_response()
}

fn not_acceptable() -> HttpResponse {
    reject(Rejection::new(
        StatusCode::NOT_ACCEPTABLE,
        "send `Accept: text/event-stream`, or a reservation token",
        "BAD_USER_INPUT",
    ))
}
