//! Incremental delivery (`@defer`, `@stream`; docs/INCREMENTAL.md) over a
//! real server and Postgres: the `multipart/mixed` answer as Apollo Client
//! reads it, the fallback without that `Accept`, the graphql-sse transport,
//! errors confined to their part, statement counts equal to the same query
//! without the directives, and a client that leaves mid-answer stopping
//! the rest.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, statements_left_running, wait_for_a_lock_waiter};
use crate::metrics::value;
use crate::sse::NodeClient;
use crate::statements::{BACKGROUND, Background, BusyLoops, Calls, NO_CACHE, Tally, calls_since, count_one, runs};

/// What Apollo Client sends for an operation with `@defer`.
const APOLLO_ACCEPT: &str = "multipart/mixed;deferSpec=20220824,application/json";

const DEFERRED: &str = r#"{ note(id: "8") { title author { name } ... @defer(label: "similar") { similar(first: 10) { note { title } } } } }"#;
const PLAIN: &str = r#"{ note(id: "8") { title author { name } similar(first: 10) { note { title } } } }"#;
const STREAMED: &str = r#"{ searchNotes(text: "body of a note", first: 10) @stream(initialCount: 3, label: "hits") { score note { id title } } }"#;
const WHOLE: &str = r#"{ searchNotes(text: "body of a note", first: 10) { score note { id title } } }"#;

/// POSTs `query` accepting `accept`; the response, unread.
async fn send(app: &TestApp, query: &str, accept: &str) -> reqwest::Response {
    app.client
        .post(app.url("/graphql"))
        .header("accept", accept)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("request")
}

/// The JSON payloads of a `multipart/mixed` body with boundary `-`,
/// split as Apollo Client splits them (on `\r\n---`), each part's headers
/// checked; and whether the close delimiter ended it.
fn payloads(body: &str) -> (Vec<Value>, bool) {
    let mut parts = body.split("\r\n---");
    assert_eq!(parts.next(), Some(""), "the body opens with a delimiter: {body:?}");
    let mut payloads = Vec::new();
    let mut closed = false;
    for part in parts {
        if part.starts_with("--") {
            assert_eq!(part, "--\r\n", "the close delimiter ends the body");
            closed = true;
            continue;
        }
        assert!(!closed, "nothing after the close delimiter");
        let (head, json) = part.split_once("\r\n\r\n").expect("a part has headers and a body");
        assert_eq!(head, "\r\nContent-Type: application/json; charset=utf-8");
        payloads.push(serde_json::from_str(json).unwrap_or_else(|err| panic!("{err}: {json:?}")));
    }
    (payloads, closed)
}

/// Sends `query` as Apollo Client does and returns its payloads.
async fn incremental(app: &TestApp, query: &str) -> Vec<Value> {
    let response = send(app, query, APOLLO_ACCEPT).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "multipart/mixed; boundary=\"-\"; deferSpec=20220824");
    assert_eq!(response.headers()["x-cache"], "bypass");
    let (payloads, closed) = payloads(&response.text().await.unwrap());
    assert!(closed, "the answer ends with the close delimiter");
    let last = payloads.len() - 1;
    for (i, payload) in payloads.iter().enumerate() {
        assert_eq!(payload["hasNext"], i < last, "hasNext of payload {i}: {payloads:#?}");
    }
    payloads
}

/// The data the payloads add up to: each `data` merged at its path, each
/// `items` list appended at its path, as a client merges them.
fn merged(payloads: &[Value]) -> Value {
    let mut data = payloads[0]["data"].clone();
    for payload in &payloads[1..] {
        for entry in payload["incremental"].as_array().into_iter().flatten() {
            let path = entry["path"].as_array().unwrap();
            if let Some(items) = entry["items"].as_array() {
                let (index, parent) = path.split_last().unwrap();
                let list = at(&mut data, parent).as_array_mut().unwrap();
                assert_eq!(list.len() as u64, index.as_u64().unwrap(), "items continue the list");
                list.extend(items.iter().cloned());
            } else if let Some(fields) = entry["data"].as_object() {
                let object = at(&mut data, path).as_object_mut().unwrap();
                object.extend(fields.clone());
            }
        }
    }
    data
}

fn at<'a>(mut value: &'a mut Value, path: &[Value]) -> &'a mut Value {
    for segment in path {
        value = match segment {
            Value::String(key) => &mut value[key.as_str()],
            Value::Number(index) => &mut value[index.as_u64().unwrap() as usize],
            other => panic!("path segment {other}"),
        };
    }
    value
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn the_note_comes_first_and_its_similar_notes_follow(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;

    let payloads = incremental(&app, DEFERRED).await;

    assert_eq!(payloads.len(), 2, "{payloads:#?}");
    let first = &payloads[0];
    assert!(first.get("errors").is_none(), "{first}");
    assert_eq!(first["data"]["note"]["title"], "Note 8");
    assert_eq!(first["data"]["note"]["author"]["name"], "User 9");
    assert!(first["data"]["note"].get("similar").is_none(), "similar is deferred: {first}");
    let entries = payloads[1]["incremental"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["path"], json!(["note"]));
    assert_eq!(entries[0]["label"], "similar");
    assert!(entries[0].get("errors").is_none(), "{entries:#?}");
    assert_eq!(entries[0]["data"]["similar"].as_array().unwrap().len(), 10);
    // The same query without the directive: the same data in the end.
    assert_eq!(merged(&payloads), app.data(PLAIN).await);
    // Keys in selection order, as in a whole answer.
    let body = send(&app, DEFERRED, APOLLO_ACCEPT).await.text().await.unwrap();
    let first = r#"{"data":{"note":{"title":"Note 8","author":{"name":"User 9"}}},"hasNext":true}"#;
    assert!(body.contains(first), "{body}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn without_a_multipart_accept_the_directives_change_nothing(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;

    for accept in ["application/json", "application/graphql-response+json"] {
        let deferred = send(&app, DEFERRED, accept).await;
        assert_eq!(deferred.status(), StatusCode::OK);
        assert!(deferred.headers()["content-type"].to_str().unwrap().starts_with(accept));
        let plain = send(&app, PLAIN, accept).await.bytes().await.unwrap();
        // The same bytes as the query without the directive.
        assert_eq!(deferred.bytes().await.unwrap(), plain, "{accept}");
    }
    // And cached as any query is.
    let (_, first, _) = app.post_cached(None, STREAMED, json!({}), false).await;
    let (_, again, body) = app.post_cached(None, STREAMED, json!({}), false).await;
    assert_eq!((first.as_str(), again.as_str()), ("miss", "hit"), "{body}");
    assert_eq!(body["data"], app.data(WHOLE).await);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_streamed_search_sends_three_hits_then_the_rest(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;

    let payloads = incremental(&app, STREAMED).await;

    assert_eq!(payloads.len(), 2, "{payloads:#?}");
    assert_eq!(payloads[0]["data"]["searchNotes"].as_array().unwrap().len(), 3);
    let entry = &payloads[1]["incremental"][0];
    assert_eq!(entry["path"], json!(["searchNotes", 3]));
    assert_eq!(entry["label"], "hits");
    assert_eq!(entry["items"].as_array().unwrap().len(), 7);
    assert_eq!(merged(&payloads), app.data(WHOLE).await);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn an_error_in_a_deferred_part_reaches_that_part_only(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let query = r#"{ notes(first: 2) { id ... @defer(label: "bad") { similar(first: -1) { note { title } } } } }"#;

    let payloads = incremental(&app, query).await;

    assert!(payloads[0].get("errors").is_none(), "{payloads:#?}");
    assert_eq!(payloads[0]["data"]["notes"].as_array().unwrap().len(), 2);
    let entries = payloads[1]["incremental"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "one entry per note: {entries:#?}");
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(entry["path"], json!(["notes", index]));
        assert_eq!(entry["label"], "bad");
        let error = &entry["errors"][0];
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{entry}");
        assert_eq!(error["path"], json!(["notes", index, "similar"]));
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn each_viewer_sees_only_what_it_may_in_every_part(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    // Note 91 is private, written by user 2.
    let query = r#"{ me { id } ... @defer { note(id: "91") { title } } }"#;

    for (token, visible) in [("user-1", false), ("user-2", true)] {
        let response = app
            .client
            .post(app.url("/graphql"))
            .header("accept", APOLLO_ACCEPT)
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
        let (payloads, _) = payloads(&response.text().await.unwrap());
        let note = &payloads[1]["incremental"][0]["data"]["note"];
        assert_eq!(!note.is_null(), visible, "{token}: {payloads:#?}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn the_sse_transport_sends_each_part_as_a_next_event(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;

    let response = app
        .client
        .post(app.url("/graphql/stream"))
        .header("accept", "text/event-stream")
        .json(&json!({ "query": DEFERRED }))
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();

    let events: Vec<(&str, &str)> = body
        .split("\n\n")
        .filter(|message| message.starts_with("event: "))
        .map(|message| {
            let (event, data) = message.split_once('\n').unwrap();
            (event.trim_start_matches("event: "), data.trim_start_matches("data: "))
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["next", "next", "complete"], "{body}");
    let parts: Vec<Value> = events[..2].iter().map(|(_, data)| serde_json::from_str(data).unwrap()).collect();
    // The same payloads as over multipart.
    assert_eq!(parts, incremental(&app, DEFERRED).await);
}

/// Every line a node client printed, up to its `complete` or `error`.
async fn lines_of(mut client: NodeClient) -> Vec<Value> {
    let mut lines = Vec::new();
    while let Some(line) = client.next(Duration::from_secs(60)).await {
        let last = line.get("complete").is_some() || line.get("error").is_some();
        lines.push(line);
        if last {
            break;
        }
    }
    lines
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn apollo_client_sees_the_note_first_then_its_similar_notes(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/subscriptions");
    assert!(dir.join("node_modules").exists(), "run `npm ci` in tests/subscriptions (scripts/test.sh does)");
    let spec = json!({ "url": app.url("/graphql"), "query": DEFERRED });
    let mut child = tokio::process::Command::new("node")
        .arg(dir.join("apollo-defer.mjs"))
        .arg(spec.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let stdout = child.stdout.take().unwrap();
    let mut reader = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut lines = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(60), reader.next_line()).await {
        let line: Value = serde_json::from_str(&line).unwrap();
        let last = line.get("complete").is_some() || line.get("error").is_some();
        lines.push(line);
        if last {
            break;
        }
    }

    assert_eq!(lines.last(), Some(&json!({ "complete": true })), "{lines:#?}");
    let results: Vec<&Value> = lines.iter().filter_map(|line| line.get("next")).collect();
    assert_eq!(results.len(), 2, "the note, then the note with its similar notes: {lines:#?}");
    let (first, last) = (&results[0], &results[1]);
    assert_eq!(first["dataState"], "streaming");
    assert_eq!(first["data"]["note"]["title"], "Note 8");
    assert_eq!(first["data"]["note"]["author"]["name"], "User 9");
    assert!(first["data"]["note"].get("similar").is_none(), "{first}");
    assert_eq!(last["dataState"], "complete");
    // Apollo Client adds `__typename` to every selection; the merged
    // result is the plain query's data with them.
    let plain = app.data(r#"{ note(id: "8") { __typename title author { __typename name } similar(first: 10) { __typename note { __typename title } } } }"#).await;
    assert_eq!(last["data"], plain);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn the_graphql_sse_client_gets_the_parts_as_next_events(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let base = format!("http://{}", app.addr);

    let lines = lines_of(NodeClient::start("sse", &base, None, DEFERRED)).await;

    assert_eq!(lines.last(), Some(&json!({ "complete": true })), "{lines:#?}");
    let parts: Vec<Value> = lines.iter().filter_map(|line| line.get("next")).cloned().collect();
    assert_eq!(parts, incremental(&app, DEFERRED).await);
}

/// The statements one incremental request ran, leaving out texts in
/// `ignore` (as `count_one` for a whole one).
async fn count_incremental(app: &TestApp, query: &str, ignore: &BTreeSet<String>) -> (i64, Calls) {
    let before = app.statement_calls().await;
    let payloads = incremental(app, query).await;
    assert!(payloads.len() > 1 && payloads.iter().all(|p| p.get("errors").is_none()), "{payloads:#?}");
    calls_since(app, &before, ignore).await
}

/// `deferred` costs what `plain` (the same query without the directives)
/// costs, warm and beside 32 concurrent requests, with the cores idle and
/// saturated, `runs()` times each.
async fn assert_same_cost(options: PgConnectOptions, deferred: &str, plain: &str) {
    let app = TestApp::spawn_multi_threaded(options, NO_CACHE).await;
    let nothing = BTreeSet::new();
    let mut ignore = BTreeSet::new();
    for background in BACKGROUND {
        ignore.extend(count_one(&app, background, &nothing).await.1.into_keys());
    }
    let (expected, own) = count_one(&app, plain, &nothing).await;
    assert!(own.keys().all(|text| !ignore.contains(text)), "background and counted statements overlap: {own:#?}");
    let (count, ran) = count_incremental(&app, deferred, &nothing).await;
    assert_eq!(count, expected, "the first deferred run: {ran:#?} against {own:#?}");
    for busy in [false, true] {
        let _loops = busy.then(BusyLoops::start);
        let label = |condition: &str| format!("{condition}{}", if busy { ", cores saturated" } else { "" });
        let mut warm = Tally::default();
        for _ in 0..runs() {
            warm.record(expected, count_incremental(&app, deferred, &ignore).await);
        }
        warm.check(&label("warm"), deferred, expected);
        let background = Background::start(&app, BACKGROUND);
        let mut loaded = Tally::default();
        for _ in 0..runs() {
            loaded.record(expected, count_incremental(&app, deferred, &ignore).await);
        }
        background.finish().await;
        loaded.check(&label("32 concurrent requests"), deferred, expected);
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_deferred_fragment_costs_the_statements_of_the_whole_query(_: PgPoolOptions, options: PgConnectOptions) {
    // The note with its author (one statement), then its similar notes
    // (one): its ancestor `note` is not read again for the second part.
    assert_same_cost(options, DEFERRED, PLAIN).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_deferred_fragment_in_a_list_costs_the_statements_of_the_whole_query(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // The page (one statement), then every note's similar notes in one
    // batch: the page is not read again for the second part.
    assert_same_cost(
        options,
        r#"{ notes(first: 20, tag: "tag4") { id title ... @defer { similar(first: 3) { score } } } }"#,
        r#"{ notes(first: 20, tag: "tag4") { id title similar(first: 3) { score } } }"#,
    )
    .await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_deferred_author_and_tags_come_with_the_page_as_without_defer(_: PgPoolOptions, options: PgConnectOptions) {
    // The page reads its authors and tags in its own statement when asked
    // for them; asked for them in a deferred fragment, it still does (the
    // plan tells it what the fragment selects), and the deferred part
    // answers from those rows: one statement, as without `@defer`.
    assert_same_cost(
        options,
        r#"{ notes(first: 20, tag: "tag4") { id title ... @defer { author { name } tags { name } } } }"#,
        r#"{ notes(first: 20, tag: "tag4") { id title author { name } tags { name } } }"#,
    )
    .await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_deferred_author_of_a_note_comes_with_the_note_as_without_defer(_: PgPoolOptions, options: PgConnectOptions) {
    assert_same_cost(
        options,
        r#"{ note(id: "8") { id title ... @defer { author { name } } } }"#,
        r#"{ note(id: "8") { id title author { name } } }"#,
    )
    .await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_deferred_page_of_a_users_notes_comes_with_the_user_as_without_defer(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // `user(id:)` reads the user with the one page of notes it is asked
    // for, tags included, in one statement, deferred or not.
    assert_same_cost(
        options,
        r#"{ user(id: "2") { name ... @defer { notes(first: 5) { title tags { name } } } } }"#,
        r#"{ user(id: "2") { name notes(first: 5) { title tags { name } } } }"#,
    )
    .await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_streamed_list_is_read_once(_: PgPoolOptions, options: PgConnectOptions) {
    let streamed = r#"{ notes(first: 30, tag: "tag4") @stream(initialCount: 3) { id title author { name } } }"#;
    let whole = r#"{ notes(first: 30, tag: "tag4") { id title author { name } } }"#;
    assert_same_cost(options, streamed, whole).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_client_that_leaves_after_the_first_part_stops_the_rest(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: the deferred part's statement (a tag by name) waits on a
    // lock that this test holds to the end, so only a cancellation can end
    // it; the DB timeout is its 20 s default.
    let app = TestApp::spawn(options).await;
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("lock table tags in access exclusive mode").execute(&mut *lock).await.unwrap();
    let query = r#"{ note(id: "8") { title } ... @defer { tag(name: "tag1") { name } } }"#;
    let mut response = send(&app, query, APOLLO_ACCEPT).await;
    let mut received = String::new();
    while !received.contains("\"hasNext\":true") {
        let chunk = response.chunk().await.unwrap().expect("the first part before the end");
        received.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(received.contains("Note 8"), "{received}");
    wait_for_a_lock_waiter(&app.pool).await;

    // Act: the client leaves.
    drop(response);
    let left = Instant::now();

    // Assert: Postgres stops running the deferred statement while the lock
    // is still held (within about a second on an idle machine: Postgres
    // checks the client every 500 ms; the bound is for a saturated one).
    let running = statements_left_running(&app.pool, left + Duration::from_secs(10)).await;
    assert_eq!(running, Vec::<String>::new(), "still running {:?} after the client left", left.elapsed());
    println!("deferred statement cancelled {:?} after the client left", left.elapsed());
    lock.rollback().await.unwrap();
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn the_metrics_count_one_operation_and_one_request(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;

    let payloads = incremental(&app, &format!("query NoteFirst {DEFERRED}")).await;

    assert_eq!(payloads.len(), 2, "{payloads:#?}");
    let (_, _, body) = app.metrics().await;
    let operation = ["operation=\"NoteFirst\"", "type=\"query\"", "code=\"OK\""];
    assert_eq!(value(&body, "notegraph_graphql_operations_total", &operation), Some(1.0), "{body}");
    let graphql = ["route=\"/graphql\"", "method=\"POST\"", "status=\"200\""];
    assert_eq!(value(&body, "notegraph_http_requests_total", &graphql), Some(1.0), "{body}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_deferred_fragment_is_validated_before_anything_is_sent(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;

    let response = send(&app, r#"{ note(id: "8") { title ... @defer { nope } } }"#, APOLLO_ACCEPT).await;

    // One JSON response, no parts: the whole document is validated first.
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json; charset=utf-8");
    let body: Value = response.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("nope"), "{body}");
}
