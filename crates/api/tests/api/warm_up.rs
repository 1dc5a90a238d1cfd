//! A new connection plans every statement requests run before it serves
//! one (`db::pool`), so that no request pays for a new backend's cold
//! catalog caches. Checked in pg_stat_statements of the test's own
//! database: every read statement that a broad set of queries ran has its
//! `explain (generic_plan)` twin, which the warm-up runs when a connection
//! opens. A statement missing from the warm-up, or a warm-up that fails
//! partway (its statements go in one message, so an error skips the rest),
//! shows up as a missing twin.

use std::collections::BTreeSet;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// Between them, these run every read statement the server has: each
/// loader, the user joined with a page of notes (with and without tags),
/// each shape of the root `notes` list, tags, counts and searches.
const READS: &[&str] = &[
    r#"{ users(first: 5) { id name noteCount } }"#,
    r#"{ user(id: "4") { name } }"#,
    r#"{ user(id: "2") { notes { id title tags { name } } } }"#,
    r#"{ user(id: "2") { notes(first: 2) { id } } }"#,
    r#"{ user(id: "3") { a: notes(first: 2) { id tags { name } } b: notes(first: 1) { id } } }"#,
    r#"{ note(id: "8") { id title author { name } tags { name } similar(first: 2) { score } } }"#,
    r#"{ note(id: "9") { id title } }"#,
    r#"{ notes(first: 3) { id } }"#,
    r#"{ notes(first: 3) { id author { name } } }"#,
    r#"{ notes(first: 3, authorId: "2") { id } }"#,
    r#"{ notes(first: 3, authorId: "2") { id author { name } } }"#,
    r#"{ notes(first: 3, tag: "tag2") { id } }"#,
    r#"{ notes(first: 3, tag: "tag2") { id author { name } } }"#,
    r#"{ notes(first: 3, tag: "tag2", authorId: "2") { id } }"#,
    r#"{ notes(first: 3, tag: "tag2", authorId: "2") { id author { name } } }"#,
    r#"{ tags(first: 5) { name noteCount notes(first: 2) { id } } }"#,
    r#"{ tags(first: 5) { notes(first: 2) { id tags { name } } } }"#,
    r#"{ tag(name: "tag3") { name } }"#,
    r#"{ searchNotes(text: "a body", first: 3) { score } }"#,
    r#"{ searchNotes(text: "a body", first: 3, tag: "tag2") { score } }"#,
];

/// The warm-up's prefix to each statement it plans.
const PLAN: &str = "explain (generic_plan) ";

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn every_statement_a_read_runs_was_planned_when_its_connection_opened(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with_args(options, &["--cache-enabled", "false"]).await;
    for query in READS {
        app.data_as(Some("test-token"), query, json!({})).await;
        app.data_as(None, query, json!({})).await;
    }

    sqlx::query("create extension if not exists pg_stat_statements").execute(&app.pool).await.expect("extension");
    let texts: Vec<String> = sqlx::query_scalar(
        "select query from pg_stat_statements \
         where dbid = (select oid from pg_database where datname = current_database()) \
           and query not ilike '%pg_stat_statements%' and query not ilike '%pg_catalog.%'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("statements");
    let planned: BTreeSet<&str> = texts.iter().filter_map(|text| text.strip_prefix(PLAN)).collect();
    // Reads, less the searches' `set_config` calls, which read no table.
    let ran: BTreeSet<&str> = texts
        .iter()
        .map(String::as_str)
        .filter(|text| text.starts_with("select ") || text.starts_with("with "))
        .filter(|text| !text.starts_with("select set_config("))
        .collect();

    assert!(ran.len() >= 20, "the queries ran too few statements to check: {ran:#?}");
    let cold: Vec<&&str> = ran.difference(&planned).collect();
    assert!(cold.is_empty(), "statements no new connection planned: {cold:#?}");
}
