//! The HTTP provider against a real HTTP server started by each test, which
//! speaks the OpenAI embeddings wire format and misbehaves on request.

// Tests fail by panicking: unwrap on what must be there is the clearest
// assertion.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use embed::{CachedEmbedder, EmbedError, Embedder, HttpEmbedder, HttpSettings};
use serde_json::{Value, json};

/// What the server does with the next request.
#[derive(Clone)]
enum Next {
    Status(u16, Option<&'static str>),
    Sleep(Duration),
    Dimension(usize),
}

#[derive(Default)]
struct Server {
    script: Mutex<VecDeque<Next>>,
    requests: AtomicUsize,
    inputs: Mutex<Vec<Vec<String>>>,
    auth: Mutex<Option<String>>,
    traceparent: Mutex<Option<String>>,
}

const DIMENSION: usize = 4;

/// A vector that encodes the text: its length and its first byte.
fn vector_of(text: &str, dimension: usize) -> Vec<f32> {
    let mut v = vec![0.5; dimension];
    v[0] = text.len() as f32;
    v[1] = f32::from(text.bytes().next().unwrap_or(0));
    v
}

async fn embeddings(State(server): State<Arc<Server>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    server.requests.fetch_add(1, Ordering::SeqCst);
    *server.auth.lock().unwrap() = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned());
    *server.traceparent.lock().unwrap() = headers.get("traceparent").map(|v| v.to_str().unwrap().to_owned());
    let inputs: Vec<String> =
        body["input"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["dimensions"], DIMENSION);
    server.inputs.lock().unwrap().push(inputs.clone());
    let next = server.script.lock().unwrap().pop_front();
    let mut dimension = DIMENSION;
    match next {
        Some(Next::Status(code, retry_after)) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), "busy").into_response();
            if let Some(after) = retry_after {
                response.headers_mut().insert("retry-after", after.parse().unwrap());
            }
            return response;
        }
        Some(Next::Sleep(duration)) => tokio::time::sleep(duration).await,
        Some(Next::Dimension(d)) => dimension = d,
        None => {}
    }
    // Answered in reverse order: clients must use `index`.
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(index, text)| json!({ "object": "embedding", "index": index, "embedding": vector_of(text, dimension) }))
        .collect();
    Json(json!({ "object": "list", "data": data, "model": "test-model" })).into_response()
}

/// Starts the server with a script of misbehaviours; returns it and its URL.
async fn serve(script: Vec<Next>) -> (Arc<Server>, String) {
    let server = Arc::new(Server { script: Mutex::new(script.into()), ..Server::default() });
    let app = axum::Router::new().route("/v1/embeddings", axum::routing::post(embeddings)).with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/embeddings", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (server, url)
}

fn embedder(url: String, timeout: Duration) -> HttpEmbedder {
    HttpEmbedder::new(HttpSettings {
        url,
        model: "test-model".into(),
        api_key: Some("sk-test".into()),
        dimension: DIMENSION,
        timeout,
        max_retries: 3,
        batch_size: 2,
        propagate: Some(trace_context),
    })
    .unwrap()
}

/// What the server passes as `propagate`: here, a fixed trace context.
fn trace_context(headers: &mut reqwest::header::HeaderMap) {
    headers.insert("traceparent", TRACEPARENT.parse().unwrap());
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn batches_up_to_the_limit_and_keeps_input_order() {
    let (server, url) = serve(vec![]).await;
    let texts = ["a", "bb", "ccc", "dddd", "eeeee"];
    let vectors = embedder(url, Duration::from_secs(5)).embed(&texts).await.unwrap();
    assert_eq!(vectors, texts.iter().map(|t| vector_of(t, DIMENSION)).collect::<Vec<_>>());
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    assert_eq!(*server.inputs.lock().unwrap(), vec![vec!["a", "bb"], vec!["ccc", "dddd"], vec!["eeeee"]]);
    assert_eq!(server.auth.lock().unwrap().as_deref(), Some("Bearer sk-test"));
    assert_eq!(server.traceparent.lock().unwrap().as_deref(), Some(TRACEPARENT));
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_it_names() {
    let (server, url) = serve(vec![Next::Status(429, Some("1"))]).await;
    let started = Instant::now();
    let vectors = embedder(url, Duration::from_secs(5)).embed(&["rust"]).await.unwrap();
    assert_eq!(vectors, vec![vector_of("rust", DIMENSION)]);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "retried after {:?}", started.elapsed());
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_fails_at_once() {
    // A budget of 10 s: failing at once (well within 3 s, even on a busy
    // machine) is told apart from waiting it out.
    let (server, url) = serve(vec![Next::Status(429, Some("30"))]).await;
    let started = Instant::now();
    let error = embedder(url, Duration::from_secs(10)).embed(&["rust"]).await.unwrap_err();
    assert!(matches!(error, EmbedError::Provider(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "waited {:?}", started.elapsed());
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_500_then_success_succeeds() {
    let (server, url) = serve(vec![Next::Status(500, None)]).await;
    let vectors = embedder(url, Duration::from_secs(5)).embed(&["postgres"]).await.unwrap();
    assert_eq!(vectors, vec![vector_of("postgres", DIMENSION)]);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retries_are_bounded() {
    let script = vec![Next::Status(503, None); 10];
    let (server, url) = serve(script).await;
    let error = embedder(url, Duration::from_secs(10)).embed(&["x"]).await.unwrap_err();
    assert!(matches!(error, EmbedError::Provider(_)), "{error:?}");
    // The first attempt and `max_retries` (3) more.
    assert_eq!(server.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let (server, url) = serve(vec![Next::Status(400, None)]).await;
    assert!(embedder(url, Duration::from_secs(5)).embed(&["x"]).await.is_err());
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_provider_times_out_within_the_budget() {
    // A budget of 2 s over attempts that hang for 30 s: the call fails at
    // 2 s, where a budget per attempt would take the four attempts at least
    // 8 s; the bound of 5 s tells them apart with room for a busy machine.
    let (_server, url) = serve(vec![Next::Sleep(Duration::from_secs(30)); 5]).await;
    let started = Instant::now();
    let error = embedder(url, Duration::from_secs(2)).embed(&["slow"]).await.unwrap_err();
    assert!(matches!(error, EmbedError::Provider(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_wrong_dimension_is_an_error_that_names_both() {
    let (_server, url) = serve(vec![Next::Dimension(3)]).await;
    let error = embedder(url, Duration::from_secs(5)).embed(&["x"]).await.unwrap_err();
    assert!(matches!(error, EmbedError::Dimension { expected: 4, actual: 3 }), "{error:?}");
}

#[tokio::test]
async fn identical_concurrent_texts_are_embedded_once_and_then_cached() {
    let (server, url) = serve(vec![Next::Sleep(Duration::from_millis(200))]).await;
    let cached = Arc::new(CachedEmbedder::new(Arc::new(embedder(url, Duration::from_secs(5))), 100, 1 << 20));
    // All ten spawned before the first is awaited (collected: a lazy map
    // would spawn each only as the loop reached it, one after another).
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let cached = cached.clone();
            tokio::spawn(async move { cached.embed(&["same query"]).await.unwrap() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), vec![vector_of("same query", DIMENSION)]);
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    cached.embed(&["same query"]).await.unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    // A batch embeds only what the cache lacks, in one request.
    let vectors = cached.embed(&["same query", "other", "third"]).await.unwrap();
    assert_eq!(vectors[2], vector_of("third", DIMENSION));
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(server.inputs.lock().unwrap().last().unwrap(), &vec!["other", "third"]);
}

#[tokio::test]
async fn the_cache_is_bounded_by_entries() {
    let (_server, url) = serve(vec![]).await;
    let cached = CachedEmbedder::new(Arc::new(embedder(url, Duration::from_secs(5))), 3, 1 << 20);
    for text in ["a", "b", "c", "d", "e", "f"] {
        cached.embed(&[text]).await.unwrap();
    }
    assert!(cached.len().await <= 3, "{} entries", cached.len().await);
}
