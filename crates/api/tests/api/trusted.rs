//! Trusted documents: with `NOTEGRAPH_TRUSTED_DOCUMENTS`, listed documents
//! run whether sent whole or by hash, over POST, GET and SSE; anything else
//! is refused FORBIDDEN before it costs a statement; and a list whose hash
//! does not match its document stops the server from starting.

use api::Cli;
use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

const USERS: &str = "query Users { users(first: 2) { id name } }";
const EVENTS: &str = "subscription { noteEvents(limit: 1) { kind } }";

fn sha256(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A list file holding `USERS` and `EVENTS`, Apollo's manifest format.
fn list_file() -> tempfile::NamedTempFile {
    let manifest = json!({
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            { "id": sha256(USERS), "name": "Users", "type": "query", "body": USERS },
            { "id": sha256(EVENTS), "name": null, "type": "subscription", "body": EVENTS },
        ],
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifest.to_string()).unwrap();
    file
}

fn by_hash(query: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256(query) } })
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn only_listed_documents_run_whole_or_by_hash_on_every_transport(_: PgPoolOptions, options: PgConnectOptions) {
    let list = list_file();
    let app = TestApp::spawn_with_args(options, &["--trusted-documents", list.path().to_str().unwrap()]).await;

    // Listed: sent whole, by hash over POST, and by hash over GET.
    assert_eq!(app.data(USERS).await["users"][0]["name"], "Ada Lovelace");
    let post = app.client.post(app.url("/graphql")).json(&json!({ "extensions": by_hash(USERS) }));
    let body: Value = post.send().await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["users"][1]["name"], "Grace Hopper", "{body}");
    let extensions = by_hash(USERS).to_string();
    let get = app.client.get(app.url("/graphql")).query(&[("extensions", extensions.as_str())]);
    let body: Value = get.send().await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["users"][0]["id"], "1", "{body}");

    // Not listed: another query (even one differing only in formatting),
    // a mutation, an unknown hash; none reaches the database.
    let before = app.statement_calls().await;
    for query in ["{ users(first: 2) { id name } }", "query Users  { users(first: 2) { id name } }"] {
        assert_eq!(app.error_code(None, query, json!({})).await, "FORBIDDEN");
    }
    let mutation = r#"mutation { createNote(input: { title: "t", body: "b" }) { id } }"#;
    assert_eq!(app.error_code(Some("user-1"), mutation, json!({})).await, "FORBIDDEN");
    let unknown = app.client.post(app.url("/graphql")).json(&json!({ "extensions": by_hash("{ me { id } }") }));
    let body: Value = unknown.send().await.unwrap().json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    assert_eq!(app.statement_calls().await, before, "a refused document ran statements");

    // Over SSE: an unlisted subscription is refused, a listed one opens.
    for (query, listed) in [("subscription { noteEvents { kind } }", false), (EVENTS, true)] {
        let stream = app
            .client
            .post(app.url("/graphql/stream"))
            .header("accept", "text/event-stream")
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        if listed {
            // Open and waiting for an event: nothing has been written yet.
            let first = tokio::time::timeout(std::time::Duration::from_millis(500), stream.text()).await;
            assert!(first.is_err(), "a listed subscription should stay open, got {first:?}");
        } else {
            let text = stream.text().await.unwrap();
            assert!(text.contains("FORBIDDEN") && text.contains("event: complete"), "{text}");
        }
    }
}

#[tokio::test]
async fn a_list_whose_hash_does_not_match_its_document_stops_the_start() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), json!({ sha256("{ me { id } }"): USERS }).to_string()).unwrap();
    let cli =
        Cli::parse_from(["notegraph", "--listen", "127.0.0.1:0", "--trusted-documents", file.path().to_str().unwrap()]);
    let pool = PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    let err = api::Application::build(&cli.config, pool).await.err().expect("refused to start").to_string();
    assert!(err.contains("NOTEGRAPH_TRUSTED_DOCUMENTS"), "{err}");
}
