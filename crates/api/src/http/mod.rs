//! The axum router: routes, the shared [`AppState`] and the tower layers
//! around them.

mod graphql;
mod health;
mod ws;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Authenticator;
use crate::graphql::AppSchema;

/// Everything a handler needs; cheap to clone (handles only).
#[derive(Clone)]
pub struct AppState {
    /// The executable schema, with pool, loaders and embedder inside.
    pub schema: AppSchema,
    /// Turns the `Authorization` header into a viewer.
    pub auth: Authenticator,
    /// For the readiness probe.
    pub pool: db::PgPool,
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
    // timeout bounds everything inside, including compression.
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let path = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("request", http.method = %request.method(), http.route = path, request.id = id)
        }))
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.timeout))
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
async fn not_found() -> impl IntoResponse {
    let body =
        serde_json::json!({ "errors": [{ "message": "no such endpoint", "extensions": { "code": "NOT_FOUND" } }] });
    (StatusCode::NOT_FOUND, axum::Json(body))
}
