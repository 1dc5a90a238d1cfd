//! `notegraph reembed` as run from a shell, against a small OpenAI-style
//! provider the test starts: it re-embeds only the notes another model
//! made, an interrupted run (`--max-batches`) continues by itself without
//! redoing finished notes, a finished one has nothing to do, and a search
//! the server had cached is not served once vectors changed.

use std::process::Output;
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Command;

use crate::helpers::{ACQUIRE_TIMEOUT_MS, TestApp, database_url};

/// The test provider's model, as the CLI is told it.
const MODEL: &str = "one-hot-test";

/// The test provider's vector for `text`: a 384-dimension one-hot vector
/// picked by the text's length, nothing like the built-in embedder's.
fn one_hot(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0; 384];
    vector[text.len() % 384] = 1.0;
    vector
}

/// Starts an embeddings endpoint speaking the OpenAI wire format; returns its URL.
async fn provider() -> String {
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(|Json(request): Json<Value>| async move {
            let inputs = request["input"].as_array().cloned().unwrap_or_default();
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(index, text)| json!({ "index": index, "embedding": one_hot(text.as_str().unwrap_or_default()) }))
                .collect();
            Json(json!({ "object": "list", "data": data, "model": MODEL }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/v1/embeddings")
}

/// Runs `notegraph reembed` with the test provider and `extra` arguments;
/// returns stdout, failing the test on a non-zero exit.
async fn reembed(url: &str, provider: &str, extra: &[&str]) -> String {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .args(["reembed", "--batch", "2"])
        .args(extra)
        .env("DATABASE_URL", url)
        .env("NOTEGRAPH_DB_ACQUIRE_TIMEOUT_MS", ACQUIRE_TIMEOUT_MS)
        .env("NOTEGRAPH_EMBED_URL", provider)
        .env("NOTEGRAPH_EMBED_MODEL", MODEL)
        .output()
        .await
        .expect("run notegraph reembed");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every note's (id, embedded_with, row version): the version changes
/// whenever the row is rewritten.
async fn marks(pool: &PgPool) -> Vec<(i64, Option<String>, String)> {
    sqlx::query_as("select id, embedded_with, xmin::text from notes order by id").fetch_all(pool).await.unwrap()
}

/// Sends the search, returning `x-cache` and the hits.
async fn search(app: &TestApp) -> (String, Value) {
    let query = r#"{ searchNotes(text: "apples and pears", first: 5) { score note { id } } }"#;
    let (status, x_cache, body) = app.post_cached(None, query, json!({}), false).await;
    assert!(status.is_success() && body.get("errors").is_none(), "{body}");
    (x_cache, body["data"]["searchNotes"].clone())
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn reembed_resumes_by_itself_invalidates_searches_and_then_has_nothing_to_do(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = database_url(&options);
    let app = TestApp::spawn(options).await;
    let titles = ["apples", "pears and plums", "a long note about apples", "plums", "cherries and apples"];
    for title in titles {
        app.create_note("user-1", title, "fruit", "PUBLIC", &[]).await;
    }
    // Every write records the model that embedded it.
    let written = marks(&app.pool).await;
    assert!(written.iter().all(|(_, model, _)| model.as_deref() == Some("notegraph-hash-v1/384")), "{written:?}");

    let (_, before) = search(&app).await;
    assert_eq!(search(&app).await, ("hit".to_owned(), before.clone()), "the search is cached");

    // Interrupted after one batch of two notes.
    let provider = provider().await;
    let first = reembed(&url, &provider, &["--max-batches", "1"]).await;
    assert!(first.contains("5 notes to re-embed with one-hot-test/384"), "{first}");
    assert!(first.contains("re-embedded 2/5 notes") && first.contains("stopped after 1 batches"), "{first}");
    let halfway = marks(&app.pool).await;
    let done: Vec<i64> =
        halfway.iter().filter(|(_, m, _)| m.as_deref() == Some("one-hot-test/384")).map(|n| n.0).collect();
    assert_eq!(done, [written[0].0, written[1].0], "the first batch, in id order");

    // The cached search is dropped at once, and the new answer is the new vectors'.
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let (x_cache, hits) = search(&app).await;
        if x_cache == "miss" {
            break hits;
        }
        assert!(Instant::now() < deadline, "the cached search outlived the re-embedding");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(after, before, "the vectors changed, so do the hits");

    // The rerun continues: the three notes left, and not the first two again.
    let second = reembed(&url, &provider, &[]).await;
    assert!(second.contains("3 notes to re-embed") && second.contains("done: re-embedded 3 notes"), "{second}");
    let finished = marks(&app.pool).await;
    assert!(finished.iter().all(|(_, m, _)| m.as_deref() == Some("one-hot-test/384")), "{finished:?}");
    assert_eq!(finished[..2], halfway[..2], "the finished notes were not rewritten");
    let vectors: Vec<(String, pgvector::Vector)> =
        sqlx::query_as("select title, embedding from notes order by id").fetch_all(&app.pool).await.unwrap();
    for (title, vector) in vectors {
        assert_eq!(vector.to_vec(), one_hot(&embed::note_text(&title, "fruit")), "{title}");
    }

    let third = reembed(&url, &provider, &[]).await;
    assert!(third.starts_with("0 notes to re-embed"), "{third}");
    assert_eq!(marks(&app.pool).await, finished, "nothing rewritten");
}
