//! `noteEvents` over WebSocket (graphql-transport-ws): a subscriber gets
//! committed changes to the notes it may see, and nothing else.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{TestApp, wait_for_a_lock_waiter};
use crate::sse::wait_for_open_subscriptions;

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next protocol message, or `None` if none comes within `wait`.
pub(crate) async fn next_message(ws: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await.ok()?? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Opens a session as `token` and subscribes to `query`.
pub(crate) async fn subscribe(app: &TestApp, token: &str, query: &str) -> Socket {
    let mut ws = connect(app, token).await;
    send_subscribe(&mut ws, "1", query).await;
    ws
}

/// Opens a session as `token`, acknowledged.
async fn connect(app: &TestApp, token: &str) -> Socket {
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    let ack = next_message(&mut ws, Duration::from_secs(15)).await.unwrap();
    assert_eq!(ack["type"], "connection_ack");
    ws
}

/// Starts operation `id` on an open session.
async fn send_subscribe(ws: &mut Socket, id: &str, query: &str) {
    let subscribe = json!({ "id": id, "type": "subscribe", "payload": { "query": query } });
    ws.send(Message::Text(subscribe.to_string().into())).await.unwrap();
}

/// The subscription protocol has no acknowledgement for `subscribe`: writes
/// probe notes (public, tag `news`, title "Probe") until the first event
/// shows the subscription is live (for up to 40 s), and returns that event.
async fn wait_until_live(app: &TestApp, ws: &mut Socket) -> Value {
    wait_until_live_on(app, ws, "news").await
}

/// [`wait_until_live`] for a subscription to `tag`: the probes carry it.
pub(crate) async fn wait_until_live_on(app: &TestApp, ws: &mut Socket, tag: &str) -> Value {
    for _ in 0..40 {
        app.create_note("user-1", "Probe", "probe", "PUBLIC", &[tag]).await;
        if let Some(message) = next_message(ws, Duration::from_secs(1)).await {
            return message;
        }
    }
    panic!("the subscription never went live");
}

/// The next event that is not a probe.
pub(crate) async fn next_real_event(ws: &mut Socket) -> Value {
    loop {
        let message = next_message(ws, Duration::from_secs(15)).await.expect("an event");
        if message["payload"]["data"]["noteEvents"]["note"]["title"] != "Probe" {
            return message;
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn subscribers_get_only_the_events_they_may_see(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let query = "subscription { noteEvents(tag: \"news\") { kind noteId note { title } } }";
    let mut ws = subscribe(&app, "user-2", query).await;
    wait_until_live(&app, &mut ws).await;

    // Not for this subscriber: someone else's private note, and another tag.
    app.create_note("user-1", "Secret", "hidden", "PRIVATE", &["news"]).await;
    app.create_note("user-1", "Other", "elsewhere", "PUBLIC", &["sports"]).await;
    // For it: a public note with the tag, then its deletion. An event
    // carries the note as it is when the event is resolved (the schema's
    // "as it is now"), so the note is deleted only once its creation has
    // been delivered: deleted before, it would rightly be null.
    let public = app.create_note("user-3", "Headline", "visible", "PUBLIC", &["news"]).await;
    let created = next_real_event(&mut ws).await;
    assert_eq!(
        created["payload"]["data"]["noteEvents"],
        json!({ "kind": "CREATED", "noteId": public, "note": { "title": "Headline" } }),
        "{created}"
    );
    app.data_as(Some("user-3"), "mutation($id: ID!) { deleteNote(id: $id) }", json!({ "id": public })).await;
    let deleted = next_real_event(&mut ws).await;
    assert_eq!(deleted["payload"]["data"]["noteEvents"], json!({ "kind": "DELETED", "noteId": public, "note": null }));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_subscription_with_a_limit_completes_after_that_many_events(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let mut ws = subscribe(&app, "user-2", "subscription { noteEvents(limit: 1) { kind } }").await;
    let first = wait_until_live(&app, &mut ws).await;
    assert_eq!(first["payload"]["data"]["noteEvents"]["kind"], "CREATED");
    let complete = next_message(&mut ws, Duration::from_secs(15)).await.expect("complete");
    assert_eq!(complete, json!({ "id": "1", "type": "complete" }));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_bad_token_cannot_open_a_subscription(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": "Bearer forged" } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.unwrap();
    // No acknowledgement: the server closes the socket with the
    // protocol's 4403 (Forbidden) and says why.
    match reply {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4403);
            assert_eq!(frame.reason.as_str(), "the token is malformed");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_delete_publishes_the_visibility_and_tags_the_note_had_when_it_went(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: user-1 (the author) and user-2 follow `news`; the note is
    // made private and loses the tag in a transaction that commits while
    // the delete waits for its row lock.
    let app = TestApp::spawn(options).await;
    let query = "subscription { noteEvents(tag: \"news\") { kind noteId note { title } } }";
    let mut author = subscribe(&app, "user-1", query).await;
    wait_until_live(&app, &mut author).await;
    let mut other = subscribe(&app, "user-2", query).await;
    wait_until_live(&app, &mut other).await;
    let id = app.create_note("user-1", "Going dark", "soon private", "PUBLIC", &["news"]).await;
    for ws in [&mut author, &mut other] {
        assert_eq!(next_real_event(ws).await["payload"]["data"]["noteEvents"]["noteId"], id);
    }
    let note_id: i64 = id.parse().unwrap();
    let mut concurrent = app.pool.begin().await.unwrap();
    sqlx::query("update notes set visibility = 'private' where id = $1")
        .bind(note_id)
        .execute(&mut *concurrent)
        .await
        .unwrap();
    sqlx::query("delete from note_tags where note_id = $1").bind(note_id).execute(&mut *concurrent).await.unwrap();

    // Act
    let delete = app.data_as(Some("user-1"), "mutation($id: ID!) { deleteNote(id: $id) }", json!({ "id": id }));
    let commit = async {
        wait_for_a_lock_waiter(&app.pool).await;
        concurrent.commit().await.unwrap();
    };
    let (deleted, ()) = tokio::join!(delete, commit);
    let after = app.create_note("user-3", "After", "marks the end", "PUBLIC", &["news"]).await;

    // Assert: the note was private and untagged when it went, so the event
    // matches neither subscription; the next event each gets is the marker.
    assert_eq!(deleted["deleteNote"], id);
    for ws in [&mut author, &mut other] {
        let next = next_real_event(ws).await;
        assert_eq!(next["payload"]["data"]["noteEvents"]["noteId"], after, "{next}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn an_update_publishes_the_tags_and_visibility_it_left(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: user-1 (the author) and user-2 follow `news`; the note is
    // not tagged `news` yet.
    let app = TestApp::spawn(options).await;
    let update = "mutation($id: ID!, $input: UpdateNoteInput!) { updateNote(id: $id, input: $input) { id } }";
    let id = app.create_note("user-1", "Mover", "changes tags", "PUBLIC", &["old"]).await;
    let query = "subscription { noteEvents(tag: \"news\") { kind noteId note { title } } }";
    let mut author = subscribe(&app, "user-1", query).await;
    wait_until_live(&app, &mut author).await;
    let mut other = subscribe(&app, "user-2", query).await;
    wait_until_live(&app, &mut other).await;

    // Act: tag the note `news` and hide it in one update, then make it
    // public again without touching its tags.
    let hide = json!({ "id": id, "input": { "visibility": "PRIVATE", "tags": ["news"] } });
    app.data_as(Some("user-1"), update, hide).await;
    let show = json!({ "id": id, "input": { "visibility": "PUBLIC" } });
    app.data_as(Some("user-1"), update, show).await;
    let after = app.create_note("user-3", "After", "marks the end", "PUBLIC", &["news"]).await;

    // Assert: the author hears both updates, user-2 only the public one.
    let updated = json!({ "kind": "UPDATED", "noteId": id, "note": { "title": "Mover" } });
    for (ws, updates) in [(&mut author, 2), (&mut other, 1)] {
        for _ in 0..updates {
            assert_eq!(next_real_event(ws).await["payload"]["data"]["noteEvents"], updated);
        }
        let next = next_real_event(ws).await;
        assert_eq!(next["payload"]["data"]["noteEvents"]["noteId"], after, "{next}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_subscription_ends_unauthenticated_when_its_token_expires(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: a real JWT for user 2 that expires in two seconds (issued
    // once the server is up, so that its start-up does not eat them).
    let app = TestApp::spawn(options).await;
    let cli = <api::Cli as clap::Parser>::parse_from(["notegraph"]);
    let auth = api::auth::Authenticator::new(&cli.config.auth).unwrap();
    let token = auth.issue(db::UserId(2), Duration::from_secs(2)).unwrap();

    // Act
    let mut ws = subscribe(&app, &token, "subscription { noteEvents { noteId } }").await;
    let ended = next_message(&mut ws, Duration::from_secs(15)).await.expect("an error when the token expires");

    // Assert
    assert_eq!(ended["type"], "next", "{ended}");
    assert_eq!(ended["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{ended}");
    let complete = next_message(&mut ws, Duration::from_secs(10)).await.expect("complete");
    assert_eq!(complete, json!({ "id": "1", "type": "complete" }));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn subscriptions_per_socket_are_capped(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--max-subscriptions-per-connection", "1"]).await;
    let mut ws = connect(&app, "user-1").await;
    send_subscribe(&mut ws, "1", "subscription { noteEvents { noteId } }").await;
    wait_for_open_subscriptions(&app, 1).await;

    send_subscribe(&mut ws, "2", "subscription { noteEvents { noteId } }").await;
    let refused = next_message(&mut ws, Duration::from_secs(15)).await.expect("a refusal");

    assert_eq!(refused["id"], "2", "{refused}");
    assert_eq!(refused["payload"]["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{refused}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn socket_messages_obey_the_body_limit_and_queries_the_deadlines(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange
    let args = [
        "--body-limit-bytes",
        "4096",
        "--db-timeout-ms",
        "800",
        "--graphql-timeout-ms",
        "900",
        "--http-timeout-ms",
        "1000",
    ];
    let app = TestApp::spawn_with_args(options, &args).await;
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("lock table notes in access exclusive mode").execute(&mut *lock).await.unwrap();

    // Act: a query that waits on the lock, then a message over the limit.
    let mut ws = connect(&app, "user-1").await;
    send_subscribe(&mut ws, "1", "{ notes { id } }").await;
    let timed_out = next_message(&mut ws, Duration::from_secs(15)).await.expect("an answer within the deadlines");
    let complete = next_message(&mut ws, Duration::from_secs(15)).await.expect("complete");
    assert_eq!(complete, json!({ "id": "1", "type": "complete" }));
    send_subscribe(&mut ws, "2", &format!("{{ me {{ id }} }} # {}", "x".repeat(8192))).await;
    let after_oversized = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.unwrap();

    // Assert
    assert_eq!(timed_out["payload"]["errors"][0]["extensions"]["code"], "TIMEOUT", "{timed_out}");
    match after_oversized {
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {}
        other => panic!("an oversized message must close the socket, got {other:?}"),
    }
    lock.rollback().await.unwrap();
}
