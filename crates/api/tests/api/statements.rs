//! No N+1: nested queries cost a fixed number of SQL statements whatever
//! the number of rows, counted by pg_stat_statements in the test's database.

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// Runs `query` once to warm the pool, then returns the statements a
/// second run executed, with their texts for the failure message.
async fn statements_for(app: &TestApp, query: &str) -> (i64, Vec<String>) {
    app.data_as(Some("test-token"), query, json!({})).await;
    let before = app.statement_calls().await;
    let data = app.data_as(Some("test-token"), query, json!({})).await;
    assert!(!data.as_object().unwrap().is_empty());
    let after = app.statement_calls().await;
    let ran: Vec<String> = after
        .into_iter()
        .filter_map(|(text, calls)| {
            let new = calls - before.get(&text).copied().unwrap_or(0);
            (new > 0).then(|| format!("{new} × {text}"))
        })
        .collect();
    let total = ran.iter().map(|line| line.split(' ').next().unwrap().parse::<i64>().unwrap()).sum();
    (total, ran)
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn fifty_notes_with_authors_and_tags_cost_three_statements(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let (count, ran) = statements_for(&app, "{ notes(first: 50) { id title author { name } tags { name } } }").await;
    assert_eq!(count, 3, "{ran:#?}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn users_with_notes_tags_and_authors_cost_four_statements(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let (count, ran) =
        statements_for(&app, "{ users(first: 20) { notes(first: 5) { tags { name } author { name } } } }").await;
    assert_eq!(count, 4, "{ran:#?}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn counts_and_tag_pages_are_batched_too(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let (count, ran) = statements_for(
        &app,
        "{ tags(first: 10) { noteCount notes(first: 3) { author { noteCount } similar(first: 2) { score } } } }",
    )
    .await;
    // tags, notes by tag, count by tag, authors, count by author, similar.
    assert_eq!(count, 6, "{ran:#?}");
}
