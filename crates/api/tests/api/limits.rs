//! Operation limits: for each, an operation just under it runs, and one
//! just over it is refused with `QUERY_TOO_COMPLEX` (document size:
//! `BAD_USER_INPUT`), a message naming the limit and the measured value,
//! and not one SQL statement, counted by pg_stat_statements.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// Statements the test database has run so far.
async fn statements(app: &TestApp) -> i64 {
    app.statement_calls().await.values().sum()
}

/// Posts `query`, asserts it ran no statement and was refused with `code`
/// for `limit` measured at `measured`; returns the error.
async fn refused(app: &TestApp, query: &str, code: &str, limit: &str, measured: u64) -> Value {
    let before = statements(app).await;
    let (status, body) = app.post(None, query, json!({})).await;
    let after = statements(app).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("data").is_none(), "a refused request has no data: {body}");
    let error = body["errors"][0].clone();
    assert_eq!(error["extensions"]["code"], code, "{body}");
    assert_eq!(error["extensions"]["limit"], limit, "{body}");
    assert_eq!(error["extensions"]["measured"], measured, "{body}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(limit) && message.contains(&measured.to_string()), "{message}");
    assert_eq!(after, before, "a refused operation ran statements");
    error
}

/// Posts `query` and asserts it ran without errors.
async fn passes(app: &TestApp, query: &str) {
    let (status, body) = app.post(None, query, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn depth_over_the_limit_is_refused(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--max-depth", "3"]).await;

    passes(&app, "{ users { notes { id } } }").await;
    let error = refused(&app, "{ users { notes { author { id } } } }", "QUERY_TOO_COMPLEX", "depth", 4).await;

    assert!(error["extensions"]["cost"].as_u64().is_some(), "{error}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn cost_multiplies_by_first_and_is_reported(_: PgPoolOptions, options: PgConnectOptions) {
    // `notes(first: n) { id }` costs n × (1 + 1).
    let app = TestApp::spawn_with_args(options, &["--max-complexity", "20"]).await;

    passes(&app, "{ notes(first: 10) { id } }").await;
    let error = refused(&app, "{ notes(first: 11) { id } }", "QUERY_TOO_COMPLEX", "complexity", 22).await;
    assert_eq!(error["extensions"]["cost"], 22);
    assert_eq!(error["extensions"]["max"], 20);

    // Nested lists multiply: default pages are 20 (users) and 20 (notes).
    refused(&app, "{ users { notes { id } } }", "QUERY_TOO_COMPLEX", "complexity", 20 * (1 + 20 * 2)).await;
    // A variable counts as its value.
    let before = statements(&app).await;
    let (_, body) = app.post(None, "query($n: Int) { notes(first: $n) { id } }", json!({ "n": 50 })).await;
    assert_eq!(body["errors"][0]["extensions"]["cost"], 100, "{body}");
    assert_eq!(statements(&app).await, before);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn the_million_row_query_is_refused_by_default(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let hostile = "{ notes(first: 100) { similar(first: 100) { note { similar(first: 100) { note { body } } } } } }";
    let before = statements(&app).await;

    let (_, body) = app.post(None, hostile, json!({})).await;

    assert_eq!(body["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX", "{body}");
    assert!(body["errors"][0]["extensions"]["cost"].as_u64().unwrap() > 1_000_000, "{body}");
    assert_eq!(statements(&app).await, before);
    // The README's heaviest measured query stays under the default.
    passes(&app, "{ tags(first: 50) { notes(first: 10) { author { notes(first: 3) { id } } tags { name } } } }").await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn aliases_and_root_fields_are_capped(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--max-aliases", "2", "--max-root-fields", "3"]).await;

    passes(&app, r#"{ a: user(id: "1") { id } b: user(id: "2") { id } me { id } }"#).await;
    let three = r#"{ a: user(id: "1") { id } b: user(id: "2") { id } c: user(id: "3") { id } }"#;
    refused(&app, three, "QUERY_TOO_COMPLEX", "aliases", 3).await;
    let four = r#"{ a: user(id: "1") { id } b: user(id: "2") { id } me { id } users { id } }"#;
    refused(&app, four, "QUERY_TOO_COMPLEX", "root fields", 4).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn directives_per_field_are_capped(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--max-directives-per-field", "1"]).await;

    passes(&app, "{ users @include(if: true) { id } }").await;
    let two = "{ users @include(if: true) @skip(if: false) { id } }";
    refused(&app, two, "QUERY_TOO_COMPLEX", "directives per field", 2).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn document_size_is_capped_in_bytes_and_tokens(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--max-document-bytes", "40", "--max-tokens", "8"]).await;

    // `{ users { id name } }` is 6 tokens; padding adds bytes, not tokens.
    let base = "{ users { id name } }";
    let at_limit = format!("{base}{}", " ".repeat(40 - base.len()));
    assert_eq!(at_limit.len(), 40);
    passes(&app, &at_limit).await;
    refused(&app, &format!("{at_limit} "), "BAD_USER_INPUT", "document size in bytes", 41).await;
    passes(&app, "{ users { id name createdAt } }").await;
    refused(&app, "{ users { id name createdAt email } }", "BAD_USER_INPUT", "document size in tokens", 9).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn ten_thousand_nested_brackets_are_refused_without_a_crash(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--max-document-bytes", "100000", "--max-tokens", "100000"]).await;
    let deep = format!("{{ users {} }}", "{".repeat(10_000) + &"}".repeat(10_000));

    refused(&app, &deep, "QUERY_TOO_COMPLEX", "bracket nesting", 10_001).await;

    passes(&app, "{ users { id } }").await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn batched_requests_are_refused(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let before = statements(&app).await;

    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!([{ "query": "{ users { id } }" }, { "query": "{ users { id } }" }]))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("batched"), "{body}");
    assert_eq!(statements(&app).await, before);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn production_hides_introspection_and_suggestions(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--env", "production"]).await;

    let (_, schema) = app.post(None, "{ __schema { types { name } } }", json!({})).await;
    let (_, typo) = app.post(None, "{ userz { id } }", json!({})).await;

    assert!(schema["data"]["__schema"].is_null(), "introspection answered in production: {schema}");
    let message = typo["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn development_keeps_introspection_and_suggestions(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;

    let (_, schema) = app.post(None, "{ __schema { queryType { name } } }", json!({})).await;
    let (_, typo) = app.post(None, "{ userz { id } }", json!({})).await;

    assert_eq!(schema["data"]["__schema"]["queryType"]["name"], "Query", "{schema}");
    let message = typo["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Did you mean"), "{message}");
}
