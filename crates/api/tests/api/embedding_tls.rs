//! The embedding provider over HTTPS, as an operator deploys it: a real
//! OpenAI-compatible endpoint behind a private certificate authority, the
//! server (the real binary) trusting that CA through `SSL_CERT_FILE` on top
//! of the system's roots; and the same endpoint without that trust, where
//! the log says "certificate" once, with the host, and the client gets
//! SERVICE_UNAVAILABLE marked as the embedding provider's, nothing more.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{BufReader, Lines};
use tokio::process::{Child, ChildStderr};

use crate::helpers::{database_url, serve_process, serving_address};
use crate::tls::{Authority, serve_https};

const KEY: &str = "sk-test-secret-key";
const CREATE: &str = "mutation { createNote(input: { title: \"Over TLS\", body: \"embedded by a provider\", visibility: PUBLIC }) { id } }";
const SEARCH: &str = r#"{ searchNotes(text: "embedded by a provider") { score note { title } } }"#;

/// What the provider saw: requests, and whether each carried the key.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    with_key: AtomicUsize,
}

/// An OpenAI-compatible `/v1/embeddings`: the built-in embedder's vectors
/// for the inputs, in the shape the HTTP provider reads.
async fn embeddings(State(seen): State<Arc<Seen>>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    if headers.get("authorization").is_some_and(|value| value == format!("Bearer {KEY}").as_str()) {
        seen.with_key.fetch_add(1, Ordering::SeqCst);
    }
    let dimension = body["dimensions"].as_u64().unwrap() as usize;
    let embedder = embed::HashEmbedder::new(dimension);
    let data: Vec<Value> = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(index, text)| json!({ "index": index, "embedding": embedder.embed_one(text.as_str().unwrap()) }))
        .collect();
    Json(json!({ "data": data }))
}

/// A provider over HTTPS with a certificate for `localhost` from a fresh
/// CA; returns the CA, what the provider saw and the embeddings URL.
async fn provider() -> (Authority, Arc<Seen>, String) {
    let authority = Authority::new("Embedding provider test CA");
    let seen = Arc::new(Seen::default());
    let router = axum::Router::new().route("/v1/embeddings", post(embeddings)).with_state(seen.clone());
    let address = serve_https(router, &authority.server(&["localhost"])).await;
    (authority, seen, format!("https://localhost:{}/v1/embeddings", address.port()))
}

/// `notegraph serve` on the test's database with the provider at `url`,
/// `SSL_CERT_FILE` set to `ssl_cert_file` (empty: unset).
async fn serve(
    options: &PgConnectOptions,
    url: &str,
    ssl_cert_file: &str,
) -> (Child, Lines<BufReader<ChildStderr>>, String) {
    let database = database_url(options);
    let (child, mut lines) = serve_process(&[
        ("DATABASE_URL", &database),
        ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
        ("NOTEGRAPH_STATIC_TOKENS", "user-1=1"),
        ("NOTEGRAPH_EMBED_URL", url),
        ("NOTEGRAPH_EMBED_API_KEY", KEY),
        ("NOTEGRAPH_EMBED_TIMEOUT_MS", "4000"),
        ("SSL_CERT_FILE", ssl_cert_file),
    ]);
    let address = serving_address(&mut lines).await;
    (child, lines, format!("http://{address}"))
}

async fn graphql(base: &str, token: Option<&str>, query: &str) -> Value {
    let mut request = reqwest::Client::new().post(format!("{base}/graphql")).json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_provider_behind_a_private_ca_in_ssl_cert_file_embeds_writes_and_searches(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange
    let (authority, seen, url) = provider().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = authority.write_cert(dir.path(), "ca.crt");
    let (_server, _logs, base) = serve(&options, &url, ca.to_str().unwrap()).await;

    // Act
    let created = graphql(&base, Some("user-1"), CREATE).await;
    let found = graphql(&base, None, SEARCH).await;

    // Assert: both embedded through the provider, with the key.
    assert!(created["data"]["createNote"]["id"].is_string(), "{created}");
    assert_eq!(found["data"]["searchNotes"][0]["note"]["title"], "Over TLS", "{found}");
    let requests = seen.requests.load(Ordering::SeqCst);
    assert!(requests >= 2, "the provider saw {requests} requests");
    assert_eq!(seen.with_key.load(Ordering::SeqCst), requests, "every request carries the key");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_provider_certificate_that_does_not_verify_is_named_once_and_kept_from_the_client(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: the provider's CA is not trusted (no SSL_CERT_FILE; the
    // system's roots do not know it).
    let (_authority, seen, url) = provider().await;
    let (mut server, mut logs, base) = serve(&options, &url, "").await;

    // Act: two writes and a search, all needing the provider.
    let answers = [
        graphql(&base, Some("user-1"), CREATE).await,
        graphql(&base, Some("user-1"), CREATE).await,
        graphql(&base, None, SEARCH).await,
    ];
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    stop(&mut server).await;
    let mut logged = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(30), logs.next_line()).await.unwrap() {
        logged.push(line);
    }

    // Assert: the client sees the closed code, marked as the embedding
    // provider's, and nothing of the provider's address or key.
    for answer in &answers {
        let error = &answer["errors"][0];
        assert_eq!(error["extensions"], json!({ "code": "SERVICE_UNAVAILABLE", "service": "embedding" }), "{answer}");
        let text = answer.to_string();
        for secret in ["localhost", "/v1/embeddings", KEY, "certificate"] {
            assert!(!text.contains(secret), "{secret:?} leaks to the client: {text}");
        }
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0, "no request got past the handshake");
    // The operator's log says why, with the host, once for the one cause.
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let named: Vec<Value> = logged
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["fields"]["message"] == "embedding provider unavailable")
        .collect();
    assert_eq!(named.len(), 1, "one line per cause:\n{}", logged.join("\n"));
    assert_eq!(named[0]["level"], "ERROR");
    assert_eq!(named[0]["fields"]["host"], format!("localhost:{port}"));
    let cause = named[0]["fields"]["error.message"].as_str().unwrap();
    assert_eq!(cause, "the embedding provider's certificate did not verify: signed by an unknown authority");
    assert!(!logged.iter().any(|line| line.contains(KEY)), "the key is logged");
    // The operations count as the embedding provider's, not the database's.
    let embedding = metrics
        .lines()
        .filter(|line| line.starts_with("notegraph_graphql_operations_total{"))
        .filter(|line| line.contains("code=\"SERVICE_UNAVAILABLE\"") && line.contains("service=\"embedding\""))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum::<f64>();
    assert_eq!(embedding, 3.0, "{metrics}");
}

/// SIGTERM, as an orchestrator stops the server, and waits for it to exit.
async fn stop(server: &mut Child) {
    let pid = server.id().unwrap().to_string();
    let status = tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), server.wait()).await.expect("exits within 30 s").unwrap();
}
