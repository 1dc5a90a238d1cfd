//! Which requests are traced, decided once at the root, so that an
//! unsampled request builds no OpenTelemetry data at all.
//!
//! The HTTP layer opens each request's span ([`request_span`]) from one of
//! three callsites, by what the caller's W3C `traceparent` says: sampled
//! (`…-01`), not sampled (`…-00`), or nothing (no header, or one that does
//! not parse). The trace layer's per-layer filter ([`Sampling`]) then
//! enables:
//! - a request span when its caller sampled it, never when its caller did
//!   not, and otherwise at the configured ratio (one random draw);
//! - any other span or event of ours when the current span stack holds a
//!   span this filter enabled (under a per-layer filter,
//!   `Context::lookup_current` sees only those), so a sampled request's
//!   whole tree is traced and an unsampled one's not at all;
//! - a span with no current span at all (a loader batch dispatched on a
//!   task of its own, a background statement) as the root of a trace of
//!   its own, at the configured ratio, as the SDK's ratio sampler did.
//!
//! Spans are judged by the current span, never by an explicit `parent:`
//! (a filter is asked before the span exists, with the context only); our
//! crates create every span in the context it belongs to.
//!
//! The SDK's sampler then records whatever reaches it ([`super::sampler`]).

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use super::Headers;

/// The name of the span the HTTP layer opens for each request.
const REQUEST: &str = "request";
/// The request span's target when the caller made no sampling decision.
const NEW_TRACE: &str = "api::http";
/// The request span's target when the caller's trace is sampled.
const CALLER_SAMPLED: &str = "api::http::traced";
/// The request span's target when the caller's trace is not sampled.
const CALLER_UNSAMPLED: &str = "api::http::untraced";

/// A request span, from any of its three callsites.
pub(super) fn is_request_span(metadata: &Metadata<'_>) -> bool {
    metadata.is_span()
        && metadata.name() == REQUEST
        && matches!(metadata.target(), NEW_TRACE | CALLER_SAMPLED | CALLER_UNSAMPLED)
}

/// Opens the span of one request, from the callsite that says whether its
/// caller sampled it, continuing the caller's trace when it did.
pub fn request_span(
    method: &axum::http::Method,
    route: &str,
    id: &str,
    headers: &axum::http::HeaderMap,
) -> tracing::Span {
    macro_rules! span {
        ($target:expr) => {
            tracing::info_span!(target: $target, REQUEST, http.method = %method, http.route = route, request.id = id)
        };
    }
    if !headers.contains_key("traceparent") {
        return span!(NEW_TRACE);
    }
    // The propagator the server installs, used directly: the decision does
    // not depend on whether traces are exported.
    let caller = TraceContextPropagator::new().extract(&Headers(headers));
    let remote = caller.span().span_context().clone();
    if !remote.is_valid() {
        span!(NEW_TRACE)
    } else if remote.is_sampled() {
        let span = span!(CALLER_SAMPLED);
        // Without the trace layer (traces off) there is nothing to set.
        let _ = span.set_parent(caller);
        span
    } else {
        span!(CALLER_UNSAMPLED)
    }
}

/// The trace layer's filter (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    ratio: f64,
}

impl Sampling {
    /// Samples `ratio` (0 to 1) of the traces that start here.
    pub fn new(ratio: f64) -> Self {
        Self { ratio }
    }

    /// One draw: true for `ratio` of the calls.
    fn draw(&self) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && rand::random::<f64>() < self.ratio)
    }
}

/// Spans of our crates down to debug (request, GraphQL phases, cache
/// lookups, loader batches, statements, embedding calls), and warnings and
/// errors as span events; never the per-request debug events.
fn may_trace(metadata: &Metadata<'_>) -> bool {
    if !metadata.is_span() {
        return *metadata.level() <= Level::WARN;
    }
    let crate_name = metadata.target().split("::").next().unwrap_or_default();
    *metadata.level() <= Level::DEBUG && matches!(crate_name, "api" | "db" | "loaders" | "cache")
}

impl<S> Filter<S> for Sampling
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if is_request_span(metadata) {
            return match metadata.target() {
                CALLER_SAMPLED => true,
                CALLER_UNSAMPLED => false,
                _ => self.draw(),
            };
        }
        if !may_trace(metadata) {
            return false;
        }
        if cx.current_span().id().is_none() {
            return metadata.is_span() && self.draw();
        }
        cx.lookup_current().is_some()
    }

    /// `sometimes` for what may be traced, so that `enabled` decides each
    /// time; `never` for the rest, which then costs nothing here.
    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_request_span(metadata) || may_trace(metadata) { Interest::sometimes() } else { Interest::never() }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}
