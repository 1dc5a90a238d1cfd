//! The axum router: routes, the shared [`AppState`] and the tower layers
//! around them.

mod graphiql;
mod graphql;
mod health;
mod metrics;
mod serve;
mod sse;
mod tls;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tower::timeout::TimeoutLayer;
use tower::timeout::error::Elapsed;
use tower::util::option_layer;
use tower::{BoxError, ServiceBuilder};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use metrics::router as metrics_router;
pub use serve::{ConnectionLimits, serve};
pub use sse::Reservations;
pub use tls::{ServerTls, TlsFiles};

use crate::auth::Authenticator;
use crate::error::{ApiError, error_response};
use crate::graphql::{BatchedSchema, Stopping};
use crate::pipeline::document::Persisted;

/// Everything a handler needs, behind one `Arc`: axum clones the state for
/// every request (the handler service, then the `State` extractor), and a
/// field-by-field clone allocated (the JWT keys and static tokens are owned
/// maps and vectors), which cost about 5% of the server's CPU under the
/// published mix.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `shared` between every request.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// The executable schema, with pool, loaders and embedder inside.
    pub schema: BatchedSchema,
    /// Turns the `Authorization` header into a viewer.
    pub auth: Authenticator,
    /// For the readiness probe.
    pub pool: db::PgPool,
    /// The response cache, when enabled.
    pub cache: Option<cache::ResponseCache>,
    /// Persisted and trusted documents by their SHA-256.
    pub persisted: Persisted,
    /// Prometheus metrics, when enabled.
    pub metrics: Option<crate::metrics::Metrics>,
    /// What the streaming transports (SSE, WebSocket) share.
    pub streams: Streams,
    /// Turns true when shutdown is requested: `/readyz` fails from then on.
    pub leaving: tokio::sync::watch::Receiver<bool>,
    /// Which other servers' writes this one has heard of, for requests
    /// whose read-your-writes cookie names one.
    pub writes: crate::read_your_writes::ReadYourWrites,
}

/// Settings and state of the streaming transports.
#[derive(Clone)]
pub struct Streams {
    /// Largest WebSocket message (the HTTP body limit).
    pub body_limit_bytes: usize,
    /// How long a client may take to send a POST body (408 past it).
    pub body_read_timeout: Duration,
    /// Interval of SSE heartbeat comments.
    pub heartbeat: Duration,
    /// Turns true at shutdown: streams complete and sockets close.
    pub stopping: Stopping,
    /// Single-connection SSE reservations.
    pub reservations: sse::Reservations,
}

/// HTTP limits applied by the layers.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Whole-request deadline.
    pub timeout: Duration,
    /// Largest accepted body.
    pub body_limit_bytes: usize,
    /// How long a client may take to send a body (408 past it).
    pub body_read_timeout: Duration,
    /// Requests executing at once on `/graphql` before the rest are shed.
    pub limiter: crate::pipeline::shedding::Limiter,
    /// Serve `/metrics` on this router (not on a listener of its own).
    pub metrics_route: bool,
    /// Serve GraphiQL at `/` (else `/` is 404 like any unknown path).
    pub graphiql: bool,
}

/// Builds the application's router; `cors`, when set, answers preflights
/// and adds the CORS headers on `/graphql` and `/graphql/stream` (the
/// routes browsers' scripts call; WebSockets are not subject to CORS).
pub fn router(state: AppState, limits: Limits, cors: Option<CorsLayer>) -> Router {
    let metrics = state.metrics.clone();
    let request_id = HeaderName::from_static("x-request-id");
    // Outermost first: the request id exists before the span that records
    // it; the span covers the timeout so timed-out requests are logged; the
    // timeout bounds everything inside, including compression. tower's
    // timeout (not tower-http's, whose answer has an empty body) fails with
    // an error that `timed_out` turns into our JSON error.
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let path = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            crate::telemetry::request_span(request.method(), path, id, request.headers())
        }))
        // Counted inside the span and outside the timeout, so that a
        // timed-out or shed request counts with the status the client saw.
        .layer(option_layer(metrics.clone().map(metrics::TrackLayer)))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(HandleErrorLayer::new(timed_out))
        .layer(TimeoutLayer::new(limits.timeout))
        .layer(CompressionLayer::new().compress_when(compressible()));
    // Outside the pipeline, so that a preflight (OPTIONS, which /graphql
    // does not otherwise answer) is never shed, decoded or counted as an
    // operation.
    let cors = option_layer(cors);
    let mut router = Router::new()
        .route("/graphql", graphql::route(&state, &limits).layer(cors.clone()))
        .route("/graphql/ws", get(ws::subscribe))
        // Not under load shedding: streams are long-lived, and bounded by
        // the subscription caps instead.
        .route("/graphql/stream", get(sse::get).post(sse::post).put(sse::put).delete(sse::delete).layer(cors))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if limits.graphiql {
        router = router.route("/", get(graphiql::page)).route("/assets/{name}", get(graphiql::asset));
    }
    if let Some(metrics) = &metrics
        && limits.metrics_route
    {
        router = router.route("/metrics", get(metrics::render).with_state(metrics.clone()));
    }
    let router = router
        .fallback(not_found)
        // Read by the `Bytes` extractor, whose rejection the handler turns
        // into a GraphQL error (tower-http's limit layer answers in plain
        // text); that catches chunked bodies while they stream. A declared
        // length over the limit is refused before any of the body is read.
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(limits.body_limit_bytes, refuse_oversized));
    router.layer(layers).with_state(state)
}

/// Which responses are worth compressing: bodies of a full packet or more
/// (an MTU is about 1,500 bytes; below that compression saves no packet
/// and costs CPU on every request), never event streams or answers in
/// parts (each event or part must go out as it happens), images or gRPC.
fn compressible() -> impl Predicate {
    SizeAbove::new(COMPRESS_ABOVE_BYTES)
        .and(NotForContentType::SSE)
        .and(NotForContentType::const_new("multipart/mixed"))
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::GRPC)
}

/// See [`compressible`].
const COMPRESS_ABOVE_BYTES: u16 = 1400;

/// Answers 413 at once when `Content-Length` declares more than the limit,
/// instead of reading a body that will be refused.
async fn refuse_oversized(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared =
        request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let error = ApiError::bad_input(format!("the request body is over the limit of {limit} bytes"));
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, &error);
    }
    next.run(request).await
}

/// Unknown paths get the same JSON error shape as everything else.
async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, &ApiError::NotFound("no such endpoint".into()))
}

/// Answers a request the router's deadline gave up on: 504 Gateway
/// Timeout, since the server stopped waiting for the work behind the
/// request (mostly the database), which is what clients and proxies read
/// as a timeout. 408 would blame the client for sending slowly.
async fn timed_out(err: BoxError) -> Response {
    if err.is::<Elapsed>() {
        tracing::warn!(exception.type = "TIMEOUT", "request timed out");
        return error_response(StatusCode::GATEWAY_TIMEOUT, &ApiError::Timeout);
    }
    // The router cannot fail (its error type is `Infallible`), so the
    // timeout is the only source of errors; stay safe all the same.
    tracing::error!(exception.type = "INTERNAL", error.message = %err, "middleware error");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_past_the_router_deadline_gets_a_json_timeout_error() {
        let response = timed_out(Box::new(Elapsed::new())).await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    }
}
