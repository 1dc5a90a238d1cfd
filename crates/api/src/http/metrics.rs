//! `GET /metrics` in the Prometheus text format, and the middleware that
//! counts and times every HTTP answer by its matched route (never the raw
//! path, which a client could fill with anything).

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;

/// The media type of the text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub(super) async fn render(State(metrics): State<Metrics>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT))], metrics.render()).into_response()
}

/// A router serving only `/metrics`, for `NOTEGRAPH_METRICS_LISTEN`.
pub fn router(metrics: Metrics) -> Router {
    Router::new().route("/metrics", get(render)).with_state(metrics)
}

/// Counts and times one request, to its response head.
pub(super) async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.http_request(route, &method, response.status().as_str(), started.elapsed());
    response
}
