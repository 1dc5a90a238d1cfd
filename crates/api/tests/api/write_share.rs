//! The writes' share of the pool (`NOTEGRAPH_MAX_CONCURRENT_WRITES`): a
//! burst of writes stuck behind a stalled one queues in the server and
//! leaves the reads their connections. The stall is real: another
//! connection holds `lock table notes in exclusive mode`, which blocks
//! every write to `notes` and lets reads through, as a long write would.

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, wait_for_a_lock_waiter};

/// Writes sent while the first one is stuck.
const BURST: usize = 12;
/// Reads sent meanwhile.
const READS: usize = 40;

const CREATE: &str = "mutation($input: CreateNoteInput!) { createNote(input: $input) { id title } }";

/// Sends one create titled `title`; returns the answer's status, whether
/// it carried `Retry-After`, and its body.
async fn create(app: &TestApp, title: String) -> (StatusCode, bool, Value) {
    let input = json!({ "title": title, "body": "Sent in a burst", "tags": ["burst"] });
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth("test-token")
        .json(&json!({ "query": CREATE, "variables": { "input": input } }))
        .send()
        .await
        .expect("request");
    let (status, retry_after) = (response.status(), response.headers().contains_key(RETRY_AFTER));
    (status, retry_after, response.json().await.expect("json body"))
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_burst_of_writes_queues_and_every_read_still_succeeds(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: a pool of 4 with 1 place for writes; a write waits 300 ms
    // for its place; nothing cached, so every read runs a statement.
    let args = [
        "--db-max-connections",
        "4",
        "--max-concurrent-writes",
        "1",
        "--write-wait-ms",
        "300",
        "--cache-enabled",
        "false",
    ];
    let app = TestApp::spawn_with_args(options, &args).await;
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("lock table notes in exclusive mode").execute(&mut *lock).await.unwrap();

    // Act: the first write takes the one place and waits on the lock;
    // then a burst of writes and, alongside, reads; then the lock goes.
    let first = create(&app, "stuck".into());
    let burst = async {
        wait_for_a_lock_waiter(&app.pool).await;
        let writes = (0..BURST).map(|i| create(&app, format!("burst {i}")));
        let reads = (0..READS).map(|i| {
            let query = if i % 2 == 0 { r#"{ user(id: "1") { name } }"# } else { "{ notes(first: 5) { id } }" };
            app.post(Some("test-token"), query, json!({}))
        });
        let answers = tokio::join!(futures::future::join_all(writes), futures::future::join_all(reads));
        lock.rollback().await.unwrap();
        answers
    };
    let ((status, _, body), (writes, reads)) = tokio::join!(first, burst);

    // Assert: every read succeeded while the writes were stuck.
    for (status, body) in &reads {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "a read failed during the write burst: {body}");
    }
    // Every write of the burst waited past its 300 ms for the one place,
    // and was told SERVICE_UNAVAILABLE with a hint when to retry.
    for (status, retry_after, body) in &writes {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE", "{body}");
        assert!(retry_after, "no Retry-After on a refused write: {body}");
        assert!(body["data"].is_null(), "{body}");
    }
    // The first write, which held the place, completed once the lock went.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "the write that held the place failed: {body}");
    let acknowledged = body["data"]["createNote"]["id"].as_str().expect("id").parse::<i64>().unwrap();

    // Every acknowledged write is stored; no refused one is.
    let stored: Vec<(i64, String)> =
        sqlx::query_as("select id, title from notes order by id").fetch_all(&app.pool).await.unwrap();
    assert_eq!(stored, vec![(acknowledged, "stuck".to_owned())]);
    // And the share is free again: the next write goes through.
    let (status, _, body) = create(&app, "after".into()).await;
    assert!(body.get("errors").is_none(), "{status}: {body}");
}
