//! Sampling is decided once, at the request's root: a request that is not
//! sampled reaches neither the exporter nor, below the request, the trace
//! layer at all (no span of it passes the trace layer's filter, so no
//! OpenTelemetry data is built for it), and the caller's `traceparent`
//! decides over the configured ratio both ways. (A sampled caller at
//! ratio 0 is `traces::one_query_is_one_trace_from_the_request_down_to_its_statements`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry::trace::TraceId;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing::span::{Attributes, Id};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::helpers::TestApp;
use crate::traces::recorder_with;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const QUERY: &str = "query($first: Int!) { notes(first: $first) { id author { name notes(first: 2) { id } } } }";

/// Counts the spans the trace layer's filter lets through: under the same
/// filter, it sees exactly what the OpenTelemetry layer would build data for.
#[derive(Clone, Default)]
struct Admitted(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for Admitted {
    fn on_new_span(&self, _: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Admitted {
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// POSTs `QUERY` for `first` notes, with `traceparent` when given; it
/// must succeed, with a request id.
async fn query(app: &TestApp, first: u32, traceparent: Option<String>) {
    let mut request =
        app.client.post(app.url("/graphql")).json(&json!({ "query": QUERY, "variables": { "first": first } }));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["notes"].as_array().map(Vec::len), Some(first as usize), "{body}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn at_ratio_0_an_unsampled_query_builds_and_exports_no_span(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange
    let admitted = Admitted::default();
    let filter = api::telemetry::Sampling::new(0.0);
    let (exporter, provider, _guard) = recorder_with(0.0, admitted.clone().with_filter(filter));
    let app = TestApp::spawn(options).await;

    // Act: a query that runs statements in loader batches.
    query(&app, 3, None).await;
    provider.force_flush().unwrap();

    // Assert
    assert_eq!(admitted.count(), 0, "no span of an unsampled request passes the trace filter");
    assert_eq!(exporter.get_finished_spans().unwrap().len(), 0);

    // And the same query from a sampled caller is traced whole, so the
    // counts above could have been more than zero.
    query(&app, 4, Some(format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))).await;
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let statements = spans.iter().filter(|s| s.attributes.iter().any(|kv| kv.key.as_str() == "db.operation")).count();
    assert!(statements >= 2, "the root list and its loaders' statements: {spans:#?}");
    assert_eq!(admitted.count(), spans.len(), "every span the filter admitted was exported");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_caller_that_did_not_sample_is_not_traced_even_at_ratio_1(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: every trace that starts here is sampled.
    let (exporter, provider, _guard) = recorder_with(1.0, tracing_subscriber::layer::Identity::new());
    let app = TestApp::spawn(options).await;

    // Act: the caller's trace is not sampled (flags 00); then a request
    // of our own.
    query(&app, 3, Some(format!("00-{TRACE_ID}-00f067aa0ba902b7-00"))).await;
    provider.force_flush().unwrap();
    let after_unsampled = exporter.get_finished_spans().unwrap();
    query(&app, 4, None).await;
    provider.force_flush().unwrap();

    // Assert: nothing of the first request, not even its statements as
    // traces of their own; the second is traced whole.
    assert!(after_unsampled.is_empty(), "{after_unsampled:#?}");
    let spans = exporter.get_finished_spans().unwrap();
    let caller = TraceId::from_hex(TRACE_ID).unwrap();
    assert!(spans.iter().all(|s| s.span_context.trace_id() != caller), "{spans:#?}");
    let requests: Vec<_> = spans.iter().filter(|s| s.name == "request").collect();
    assert_eq!(requests.len(), 1, "{spans:#?}");
    let ours = requests[0].span_context.trace_id();
    assert!(spans.iter().all(|s| s.span_context.trace_id() == ours), "one trace: {spans:#?}");
    assert!(spans.iter().any(|s| s.name == "loader.batch"), "{spans:#?}");
}
