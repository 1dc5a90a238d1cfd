//! The axum router: routes, the shared [`AppState`] and the tower layers
//! around them.

mod graphql;
mod health;
mod ws;

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tower::timeout::TimeoutLayer;
use tower::timeout::error::Elapsed;
use tower::{BoxError, ServiceBuilder};
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::graphql::BatchedSchema;

/// Everything a handler needs; cheap to clone (handles only).
#[derive(Clone)]
pub struct AppState {
    /// The executable schema, with pool, loaders and embedder inside.
    pub schema: BatchedSchema,
    /// Turns the `Authorization` header into a viewer.
    pub auth: Authenticator,
    /// For the readiness probe.
    pub pool: db::PgPool,
    /// The response cache, when enabled.
    pub cache: Option<cache::ResponseCache>,
    /// Automatic persisted queries: documents by their SHA-256.
    pub documents: cache::Documents,
}

/// HTTP limits applied by the layers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Whole-request deadline.
    pub timeout: Duration,
    /// Largest accepted body.
    pub body_limit_bytes: usize,
}

/// Builds the application's router.
pub fn router(state: AppState, limits: Limits) -> Router {
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
            tracing::info_span!("request", http.method = %request.method(), http.route = path, request.id = id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(HandleErrorLayer::new(timed_out))
        .layer(TimeoutLayer::new(limits.timeout))
        .layer(CompressionLayer::new());
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(ws::subscribe))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(not_found)
        // Read by the `Bytes` extractor, whose rejection the handler turns
        // into a GraphQL error (tower-http's limit layer answers in plain text).
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(layers)
        .with_state(state)
}

/// `GET /`: GraphiQL, pointed at this server.
async fn graphiql() -> Html<String> {
    Html(
        async_graphql::http::GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Notegraph")
            .finish(),
    )
}

/// Unknown paths get the same JSON error shape as everything else.
async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, &ApiError::NotFound("no such endpoint".into()))
}

/// Answers a request the timeout layer gave up on. 504 Gateway Timeout:
/// the server stopped waiting for the work behind the request (mostly the
/// database), which is what clients and proxies read as a timeout. 408
/// would blame the client for sending slowly, and 503 is our
/// SERVICE_UNAVAILABLE (no capacity now, retry later).
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

/// The JSON error shape of every answer that is not an executed GraphQL
/// response: `{"errors":[{"message":…,"extensions":{"code":…}}]}`.
fn error_body(message: &str, code: &str) -> Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

/// An `application/json` response carrying one error.
fn error_response(status: StatusCode, error: &ApiError) -> Response {
    (status, axum::Json(error_body(error.message(), error.code()))).into_response()
}
