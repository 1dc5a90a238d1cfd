//! Traces: one query, sent with a W3C `traceparent`, produces the span tree
//! request → GraphQL execution → loader batch → SQL statement in the
//! caller's trace, exported through the server's own OpenTelemetry layer
//! (`telemetry::trace_layer`) to opentelemetry_sdk's in-memory exporter;
//! and the batch links to the request it served.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::helpers::{TestApp, database_url, serve_process, serving_address};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// The span named `name` (the first one).
fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name} in {names:?}"))
}

/// True when `ancestor` is `span`'s parent, or its parent's, and so on.
fn descends_from(spans: &[SpanData], span: &SpanData, ancestor: &SpanData) -> bool {
    let mut parent = span.parent_span_id;
    while parent != SpanId::INVALID {
        if parent == ancestor.span_context.span_id() {
            return true;
        }
        parent =
            spans.iter().find(|s| s.span_context.span_id() == parent).map_or(SpanId::INVALID, |s| s.parent_span_id);
    }
    false
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

/// The server's trace layer over an in-memory exporter, sampling `ratio`
/// of the traces it starts, as this thread's subscriber (the server runs
/// on the test's thread), next to `other`.
pub(crate) fn recorder_with<L>(
    ratio: f64,
    other: L,
) -> (InMemorySpanExporter, SdkTracerProvider, tracing::subscriber::DefaultGuard)
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(api::telemetry::sampler())
        .build();
    api::telemetry::install_propagator();
    let subscriber = tracing_subscriber::registry().with(other).with(api::telemetry::trace_layer(&provider, ratio));
    let guard = tracing::subscriber::set_default(subscriber);
    // Whether a span callsite is enabled is cached process-wide, decided
    // the first time any thread reaches it: a callsite reached before this
    // subscriber was in place caches "never", and its spans are then
    // missed. Each test runs in a process of its own (nextest), so only what
    // the test itself did first could do that (once, in a shared process,
    // other tests' servers did); asking every callsite again with this
    // subscriber in place rules it out, at the cost of one pass.
    tracing::callsite::rebuild_interest_cache();
    (exporter, provider, guard)
}

/// [`recorder_with`] alone.
fn recorder(ratio: f64) -> (InMemorySpanExporter, SdkTracerProvider, tracing::subscriber::DefaultGuard) {
    recorder_with(ratio, tracing_subscriber::layer::Identity::new())
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn one_query_is_one_trace_from_the_request_down_to_its_statements(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: the server's trace layer over an in-memory exporter, as this
    // thread's subscriber (the server runs on the test's thread); only the
    // caller's sampled trace is recorded (parent-based sampling at 0).
    let (exporter, provider, _guard) = recorder(0.0);
    let app = TestApp::spawn(options).await;

    // Act
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        // Three notes by id (a page of notes would bring its tags in its
        // own statement): their tags are one batch of the tags' loader.
        .json(&json!({ "query": "query Tags { a: note(id: \"1\") { id tags { name } } \
                                  b: note(id: \"2\") { id tags { name } } c: note(id: \"3\") { id tags { name } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let answered_tags: usize =
        ["a", "b", "c"].iter().map(|note| body["data"][note]["tags"].as_array().unwrap().len()).sum();
    app.data("{ __typename }").await; // not sampled: no traceparent
    provider.force_flush().unwrap();

    // Assert: every recorded span is in the caller's trace, in one tree.
    let spans = exporter.get_finished_spans().unwrap();
    let trace = TraceId::from_hex(TRACE_ID).unwrap();
    assert!(spans.iter().all(|s| s.span_context.trace_id() == trace), "only the sampled trace is recorded");
    let request = named(&spans, "request");
    assert_eq!(request.parent_span_id, SpanId::from_hex(CALLER_SPAN_ID).unwrap(), "continues the caller's span");
    assert_eq!(attribute(request, "http.route").as_deref(), Some("/graphql"));
    let execute = named(&spans, "graphql.execute");
    assert!(descends_from(&spans, execute, request));
    assert_eq!(attribute(execute, "graphql.operation.name").as_deref(), Some("Tags"));
    let parse = named(&spans, "graphql.parse");
    assert!(descends_from(&spans, parse, request));
    let batch = spans
        .iter()
        .find(|s| s.name == "loader.batch" && attribute(s, "loader").as_deref() == Some("tags_by_note"))
        .expect("the tags' batch");
    assert_eq!(batch.parent_span_id, execute.span_context.span_id(), "the batch runs in the execution");
    let links: Vec<SpanId> = batch.links.iter().map(|link| link.span_context.span_id()).collect();
    assert!(links.contains(&execute.span_context.span_id()), "the batch links to the request it serves: {links:?}");
    let statement = spans
        .iter()
        .find(|s| attribute(s, "db.operation").as_deref() == Some("tags.fetch_by_note_ids"))
        .expect("the tags' statement");
    assert_eq!(statement.parent_span_id, batch.span_context.span_id(), "the statement runs in the batch");
    let rows: usize = attribute(statement, "db.rows").expect("the row count").parse().unwrap();
    assert_eq!(rows, answered_tags, "the statement's row count is the tags the answer holds");
    assert_eq!(attribute(batch, "batch.size").as_deref(), Some("3"), "one key per note");
    let notes = spans.iter().find(|s| attribute(s, "db.operation").as_deref() == Some("notes.fetch_by_ids"));
    assert!(notes.is_some_and(|s| descends_from(&spans, s, execute)), "the notes' statement");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_binary_exports_its_traces_over_otlp_http_by_shutdown(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: a collector that records what is posted to it, and the
    // binary, on the test's database, pointed at it.
    let received = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<(String, usize)>::new()));
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", collector.local_addr().unwrap());
    let record = std::sync::Arc::clone(&received);
    let routes = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            record.lock().await.push((content_type.to_owned(), body.len()));
            axum::http::StatusCode::OK
        }),
    );
    tokio::spawn(async move { axum::serve(collector, routes).await });
    let url = database_url(&options);
    let (mut child, mut lines) = serve_process(&[
        ("DATABASE_URL", &url),
        ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
        ("NOTEGRAPH_OTLP_ENDPOINT", &endpoint),
    ]);
    let address = serving_address(&mut lines).await;
    let response = reqwest::Client::new()
        .post(format!("http://{address}/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Act: stop it; shutting down flushes the spans still buffered (well
    // within 60 s: its grace for open requests is 10 s).
    let pid = child.id().unwrap().to_string();
    tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait()).await.unwrap().unwrap();

    // Assert
    assert!(status.success());
    let received = received.lock().await;
    assert!(!received.is_empty(), "no export reached the collector");
    assert!(
        received.iter().all(|(content_type, bytes)| content_type == "application/x-protobuf" && *bytes > 0),
        "{received:?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_batch_serving_two_requests_links_to_both(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: every trace recorded; batches wait 2 s after their last
    // holder releases them, so two requests sent together share them (the
    // second need only reach the loader within 2 s of the first, however
    // busy the machine).
    let (exporter, provider, _guard) = recorder(1.0);
    let app = TestApp::spawn_with_args(options, &["--loader-delay-us", "2000000"]).await;
    let query = "query($id: ID!) { note(id: $id) { id title } }";

    // Act
    let (first, second) =
        tokio::join!(app.post(None, query, json!({ "id": "1" })), app.post(None, query, json!({ "id": "2" })));
    assert!(first.1.get("errors").is_none() && second.1.get("errors").is_none(), "{first:?} {second:?}");
    provider.force_flush().unwrap();

    // Assert: the notes' batch links to both executions, one in each trace.
    let spans = exporter.get_finished_spans().unwrap();
    let executions: Vec<&SpanData> = spans.iter().filter(|s| s.name == "graphql.execute").collect();
    assert_eq!(executions.len(), 2);
    assert_ne!(executions[0].span_context.trace_id(), executions[1].span_context.trace_id());
    let batch = spans
        .iter()
        .find(|s| s.name == "loader.batch" && attribute(s, "loader").as_deref() == Some("note_by_id"))
        .expect("the notes' batch");
    assert_eq!(attribute(batch, "batch.size").as_deref(), Some("2"), "one batch for both requests");
    let mut linked: Vec<SpanId> = batch.links.iter().map(|link| link.span_context.span_id()).collect();
    let mut expected: Vec<SpanId> = executions.iter().map(|s| s.span_context.span_id()).collect();
    linked.sort_by_key(|id| id.to_string());
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(linked, expected);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn an_incremental_query_is_one_execution_with_a_span_per_part(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange
    let (exporter, provider, _guard) = recorder(0.0);
    let app = TestApp::spawn(options).await;
    let query = r#"query Deferred { note(id: "8") { title ... @defer { similar(first: 3) { score } } } }"#;

    // Act: the query in two parts, over multipart/mixed, in the caller's trace.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .header("accept", "multipart/mixed;deferSpec=20220824, application/json")
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("\"hasNext\":true") && body.contains("\"hasNext\":false"), "two parts: {body}");
    provider.force_flush().unwrap();

    // Assert: one execution, named, counting its parts; one child span per
    // part; the deferred part's search runs after the first part was
    // answered, in the request's trace, its loader batch linked to the
    // operation (as every batch links to the executions it serves).
    let spans = exporter.get_finished_spans().unwrap();
    let executions: Vec<&SpanData> = spans.iter().filter(|s| s.name == "graphql.execute").collect();
    assert_eq!(executions.len(), 1, "one operation");
    let execute = executions[0];
    assert_eq!(attribute(execute, "graphql.operation.name").as_deref(), Some("Deferred"));
    assert_eq!(attribute(execute, "graphql.parts").as_deref(), Some("2"));
    let parts: Vec<&SpanData> = spans.iter().filter(|s| s.name == "graphql.part").collect();
    let mut numbers: Vec<String> = parts.iter().filter_map(|s| attribute(s, "graphql.part")).collect();
    numbers.sort();
    assert_eq!(numbers, ["0", "1"]);
    assert!(parts.iter().all(|part| part.parent_span_id == execute.span_context.span_id()));
    let first = parts.iter().find(|s| attribute(s, "graphql.part").as_deref() == Some("0")).unwrap();
    let searches: Vec<&SpanData> =
        spans.iter().filter(|s| attribute(s, "db.operation").is_some_and(|op| op.contains("similar"))).collect();
    assert!(!searches.is_empty(), "the similar notes' statement is traced");
    let request = named(&spans, "request");
    for search in searches {
        assert!(descends_from(&spans, search, request), "the search is in the request's trace");
        assert!(search.start_time >= first.end_time, "it runs after the first part was answered");
        let batch = spans.iter().find(|s| s.span_context.span_id() == search.parent_span_id).expect("its batch");
        let links: Vec<SpanId> = batch.links.iter().map(|link| link.span_context.span_id()).collect();
        assert!(links.contains(&execute.span_context.span_id()), "its batch links to the operation: {links:?}");
    }
}
