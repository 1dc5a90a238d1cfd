//! Read-your-writes across servers: a write's answer names the write in a
//! cookie, and another server that gets the cookie before the write's
//! event waits for the event (or, past the wait, reads past its cache),
//! so the viewer never reads their own write's old value there.

use std::time::{Duration, Instant};

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

const NOTE: &str = "query($id: ID!) { note(id: $id) { title } }";
const RENAME: &str = "mutation($id: ID!, $t: String!) { updateNote(id: $id, input: { title: $t }) { id } }";

/// POSTs as user 1 with `cookie`; the body, the `x-cache` header and the
/// `Set-Cookie` header.
async fn post(app: &TestApp, query: &str, variables: Value, cookie: Option<&str>) -> (Value, String, Option<String>) {
    let mut request = app.client.post(app.url("/graphql")).bearer_auth("user-1");
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.json(&json!({ "query": query, "variables": variables })).send().await.unwrap();
    let header =
        |name| response.headers().get(name).map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned());
    let (x_cache, set_cookie) = (header("x-cache").unwrap_or_default(), header(SET_COOKIE.as_str()));
    (response.json().await.unwrap(), x_cache, set_cookie)
}

/// Reads the note from `app` until the answer comes from its cache.
async fn until_cached(app: &TestApp, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while post(app, NOTE, json!({ "id": id }), None).await.1 != "hit" {
        assert!(Instant::now() < deadline, "the note was not cached within 30 s");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_viewer_reads_their_write_on_another_server_at_once(_: PgPoolOptions, options: PgConnectOptions) {
    let writer = TestApp::spawn(options.clone()).await;
    let reader = TestApp::spawn(options).await;
    let id = writer.create_note("user-1", "v0", "body", "PUBLIC", &[]).await;

    for round in 1..=10 {
        // The reader has the note cached under the viewer's key.
        until_cached(&reader, &id).await;
        // The write's answer names it in a cookie…
        let title = format!("v{round}");
        let (_, _, set_cookie) = post(&writer, RENAME, json!({ "id": id, "t": title }), None).await;
        let set_cookie = set_cookie.expect("a write sets the read-your-writes cookie");
        assert!(set_cookie.contains("Max-Age=5;") && set_cookie.contains("HttpOnly"), "{set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap();
        // …and the other server, asked at once with it, shows the write.
        let (body, _, _) = post(&reader, NOTE, json!({ "id": id }), Some(cookie)).await;
        assert_eq!(body["data"]["note"]["title"], title.as_str(), "round {round}: {body}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_write_never_heard_of_is_waited_for_then_read_from_the_database(_: PgPoolOptions, options: PgConnectOptions) {
    // Writes remembered for 30 s: a wait that lasted as long as the cookie
    // lives would stand out from the bounded one (500 ms).
    let app = TestApp::spawn_with_args(options, &["--read-your-writes-ms", "30000"]).await;
    let id = app.create_note("user-1", "cached", "body", "PUBLIC", &[]).await;
    until_cached(&app, &id).await;

    // A cookie naming a write of a server this one never hears from.
    let started = Instant::now();
    let (body, x_cache, _) = post(&app, NOTE, json!({ "id": id }), Some("notegraph-write=abc.1")).await;
    let waited = started.elapsed();

    assert_eq!(body["data"]["note"]["title"], "cached", "{body}");
    assert_eq!(x_cache, "bypass", "past the wait, the answer skips the cache");
    assert!(waited >= Duration::from_millis(500) && waited < Duration::from_secs(10), "waited {waited:?}");
    // Its own writes' cookies cost no wait. A server never hears its own
    // writes' events, so a request that waited for one would run out the
    // wait and skip the cache, as above: going through the cache (a miss,
    // the write having dropped the entry) shows it did not wait. The time
    // taken cannot show it: a saturated machine may take longer than the
    // wait to answer any request.
    let own = post(&app, RENAME, json!({ "id": id, "t": "renamed" }), None).await.2.unwrap();
    let (body, x_cache, _) = post(&app, NOTE, json!({ "id": id }), Some(own.split(';').next().unwrap())).await;
    assert_eq!(body["data"]["note"]["title"], "renamed");
    assert_eq!(x_cache, "miss", "a request with its own write's cookie goes through the cache");
}
