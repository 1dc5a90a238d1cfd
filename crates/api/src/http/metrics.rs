//! `GET /metrics` in the Prometheus text format, and the layer that
//! counts and times every HTTP answer by its matched route (never the raw
//! path, which a client could fill with anything).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::{Layer, Service};

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

/// Counts and times every request, to its response head. A layer of its
/// own rather than axum's `from_fn`, which boxes the rest of the stack and
/// its future for every request; no crate counts into our families.
#[derive(Clone)]
pub(super) struct TrackLayer(pub(super) Metrics);

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner, metrics: self.0.clone() }
    }
}

/// The service of [`TrackLayer`].
#[derive(Clone)]
pub(super) struct Track<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        Tracked { inner: self.inner.call(request), metrics: self.metrics.clone(), method, route, started }
    }
}

pin_project_lite::pin_project! {
    /// One request's answer, counted when its head is ready.
    pub(super) struct Tracked<F> {
        #[pin]
        inner: F,
        metrics: Metrics,
        method: Method,
        route: Option<MatchedPath>,
        started: Instant,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        if let Ok(response) = &answer {
            let route = this.route.as_ref().map_or("unmatched", MatchedPath::as_str);
            this.metrics.http_request(route, this.method, response.status().as_str(), this.started.elapsed());
        }
        Poll::Ready(answer)
    }
}
