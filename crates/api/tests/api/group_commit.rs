//! Group commit of creates: creates that arrive while every place for
//! writes is taken queue, and go together as one statement (one commit,
//! one `NOTIFY` lock) when a place frees. Each is acknowledged, readable
//! and announced by exactly one event carrying its own tags, and a create
//! that cannot be written (its author is gone) fails alone.
//!
//! The queue is made real, not timed: the server has one place for
//! writes, and a first create holds it while another connection holds
//! `lock table notes in exclusive mode`; the burst is sent once that
//! create waits on the lock, and the lock goes once the server counts the
//! whole burst as waiting (`notegraph_writes{state="waiting"}`).

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, wait_for_a_lock_waiter};
use crate::metrics::value;
use crate::subscriptions::{next_real_event, subscribe, wait_until_live_on};

const CREATE: &str =
    "mutation($input: CreateNoteInput!) { createNote(input: $input) { id title author { id } tags { name } } }";

/// One place for writes, and waits long enough for a stalled burst.
const ONE_PLACE: &[&str] = &["--max-concurrent-writes", "1", "--write-wait-ms", "60000"];

/// A create the test sends: the token, the title and the tags.
struct Sent {
    token: &'static str,
    title: String,
    tags: Vec<String>,
}

/// Sends one create; the answer's status and body.
async fn create(app: &TestApp, sent: &Sent) -> (StatusCode, Value) {
    let input = json!({ "title": sent.title, "body": "Written in a batch", "visibility": "PUBLIC", "tags": sent.tags });
    app.post(Some(sent.token), CREATE, json!({ "input": input })).await
}

/// Calls of the create statement so far.
async fn creates_run(app: &TestApp) -> i64 {
    app.statement_calls().await.into_iter().filter(|(text, _)| text.contains("insert into notes")).map(|(_, n)| n).sum()
}

/// Sends `burst` while a first create holds the one place, stalled on a
/// lock; releases the lock once the whole burst waits. The first create's
/// answer, the burst's answers in order, and how many create statements
/// all of it ran.
async fn stalled_burst(app: &TestApp, burst: &[Sent]) -> ((StatusCode, Value), Vec<(StatusCode, Value)>, i64) {
    let before = creates_run(app).await;
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("lock table notes in exclusive mode").execute(&mut *lock).await.unwrap();
    let stuck = Sent { token: "user-1", title: "stuck".into(), tags: vec!["stuck".into()] };
    let first = create(app, &stuck);
    let rest = async {
        wait_for_a_lock_waiter(&app.pool).await;
        let sent = futures::future::join_all(burst.iter().map(|sent| create(app, sent)));
        let release = async {
            wait_for_waiting_writes(app, burst.len()).await;
            lock.rollback().await.unwrap();
        };
        tokio::join!(sent, release).0
    };
    let (first, rest) = tokio::join!(first, rest);
    (first, rest, creates_run(app).await - before)
}

/// Waits until the server counts `n` writes as waiting for a place.
async fn wait_for_waiting_writes(app: &TestApp, n: usize) {
    loop {
        let (_, _, body) = app.metrics().await;
        if value(&body, "notegraph_writes", &["state=\"waiting\""]) == Some(n as f64) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The created note's id, after checking the answer is a success.
fn created_id((status, body): &(StatusCode, Value)) -> String {
    assert_eq!(*status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["createNote"]["id"].as_str().expect("id").to_owned()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn concurrent_creates_share_statements_and_each_is_written_and_announced_once(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: user-2 follows the tag every created note carries, and the
    // tag only the eighth carries.
    const N: usize = 32;
    let app = TestApp::spawn_with_args(options, ONE_PLACE).await;
    let query = |tag: &str| format!("subscription {{ noteEvents(tag: \"{tag}\") {{ kind noteId note {{ title }} }} }}");
    let mut all = subscribe(&app, "user-2", &query("batched")).await;
    wait_until_live_on(&app, &mut all, "batched").await;
    let mut eighth = subscribe(&app, "user-2", &query("n7")).await;
    wait_until_live_on(&app, &mut eighth, "n7").await;
    let burst: Vec<Sent> = (0..N)
        .map(|i| Sent {
            token: if i % 2 == 0 { "user-1" } else { "user-3" },
            title: format!("batched {i}"),
            tags: vec!["batched".into(), format!("n{i}")],
        })
        .collect();

    // Act
    let (first, answers, statements) = stalled_burst(&app, &burst).await;

    // Assert: every create acknowledged, with its own fields.
    created_id(&first);
    let ids: Vec<String> = answers.iter().map(created_id).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), N, "distinct ids: {ids:?}");
    for ((_, body), sent) in answers.iter().zip(&burst) {
        let note = &body["data"]["createNote"];
        assert_eq!(note["title"], sent.title.as_str(), "{body}");
        assert_eq!(note["author"]["id"], &sent.token[5..], "{body}");
        let mut tags = sent.tags.clone();
        tags.sort();
        assert_eq!(note["tags"], json!(tags.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>()));
    }
    // Fewer statements than creates: the stalled one, then the burst as one.
    assert_eq!(statements, 2, "{} creates ran {statements} create statements", N + 1);
    // Each readable, as stored.
    for (id, sent) in ids.iter().zip(&burst) {
        let data = app
            .data_as(Some("user-2"), "query($id: ID!) { note(id: $id) { title tags { name } } }", json!({ "id": id }))
            .await;
        assert_eq!(data["note"]["title"], sent.title.as_str(), "{data}");
        assert_eq!(data["note"]["tags"].as_array().unwrap().len(), 2, "{data}");
    }
    // One event per note, carrying its tags: the `batched` stream has each
    // exactly once before a marker written after them; the `n7` stream has
    // the eighth note alone.
    let mut heard = Vec::new();
    for _ in 0..N {
        let event = next_real_event(&mut all).await;
        assert_eq!(event["payload"]["data"]["noteEvents"]["kind"], "CREATED", "{event}");
        heard.push(event["payload"]["data"]["noteEvents"]["noteId"].as_str().unwrap().to_owned());
    }
    let marker = app.create_note("user-1", "After", "marks the end", "PUBLIC", &["batched", "n7"]).await;
    heard.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(heard, expected);
    assert_eq!(next_real_event(&mut all).await["payload"]["data"]["noteEvents"]["noteId"], marker.as_str());
    assert_eq!(next_real_event(&mut eighth).await["payload"]["data"]["noteEvents"]["noteId"], ids[7].as_str());
    assert_eq!(next_real_event(&mut eighth).await["payload"]["data"]["noteEvents"]["noteId"], marker.as_str());
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_create_by_a_missing_author_fails_alone_in_its_batch(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: user 3 is gone, though its token is still accepted.
    let app = TestApp::spawn_with_args(options, ONE_PLACE).await;
    sqlx::query("delete from users where id = 3").execute(&app.pool).await.unwrap();
    let burst: Vec<Sent> = ["user-1", "user-3", "user-2"]
        .into_iter()
        .map(|token| Sent { token, title: format!("by {token}"), tags: vec!["shared".into()] })
        .collect();

    // Act
    let (first, answers, statements) = stalled_burst(&app, &burst).await;

    // Assert: the missing author's create is UNAUTHENTICATED, the others
    // of its batch are written.
    created_id(&first);
    let (status, body) = &answers[1];
    assert_eq!(*status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
    assert!(body["data"].is_null(), "{body}");
    let one = created_id(&answers[0]);
    let two = created_id(&answers[2]);
    assert_eq!(statements, 2, "the burst went as one statement");
    let stored: Vec<(i64, i64, String)> =
        sqlx::query_as("select id, author_id, title from notes where title like 'by %' order by id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let expected =
        vec![(one.parse().unwrap(), 1, "by user-1".to_owned()), (two.parse().unwrap(), 2, "by user-2".to_owned())];
    assert_eq!(stored, expected);
}
