//! Per-client budgets on operation cost (docs/SECURITY.md, "Per-client
//! budgets"): a greedy client is refused 429 `RATE_LIMITED` while a polite
//! one is never refused, with consistent `Retry-After`, `RateLimit` and
//! `RateLimit-Policy` headers; a refused request runs no SQL; anonymous
//! clients behind a trusted proxy are told apart by `X-Forwarded-For`, and
//! the header is ignored from any other peer; the buckets stay under their
//! cap however many addresses come; a subscription over SSE is refused
//! when over budget; a viewer listed in `NOTEGRAPH_BUDGET_VIEWERS_FILE`
//! gets its own allowance.
//!
//! Every budget here refills at 1 cost unit a second, so that what is
//! refused depends on the costs sent, not on how fast this machine is: a
//! refused operation would need hundreds of seconds to fit.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// Costs 1,250 (50 notes × 25: the limits' own example), under the limit
/// set below.
const EXPENSIVE: &str = "{ notes(first: 50) { id title author { name } tags { name } } }";
const EXPENSIVE_COST: u64 = 1_250;
/// Costs 2 × n: n notes and their ids.
const SIZED: &str = "query($n: Int) { notes(first: $n) { id } }";
/// A cheap query: 5 notes and their ids.
const CHEAP: &str = "{ notes(first: 5) { id } }";
/// The largest cost admitted, and so every bucket's size.
const MAX_COMPLEXITY: &str = "2000";

/// The budget settings: both classes at 1 unit a second, the bucket the
/// largest admitted cost.
fn budget_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--max-complexity",
        MAX_COMPLEXITY,
        "--budget-anonymous-rate",
        "1",
        "--budget-authenticated-rate",
        "1",
        "--cache-enabled",
        "false",
    ];
    args.extend_from_slice(extra);
    args
}

/// One answer: its status, headers and body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A `key=value` parameter of the `RateLimit` header.
    fn ratelimit(&self, key: &str) -> u64 {
        let value = self.header("ratelimit").unwrap_or_else(|| panic!("no RateLimit header: {:?}", self.headers));
        let found = value.split(';').find_map(|item| item.strip_prefix(&format!("{key}=")));
        found.unwrap_or_else(|| panic!("no {key} in {value}")).parse().unwrap()
    }

    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default()
    }
}

/// POSTs `query` as `token` (anonymous when `None`), with an
/// `X-Forwarded-For` when given.
async fn send(app: &TestApp, token: Option<&str>, forwarded: Option<&str>, query: &str, variables: Value) -> Answer {
    let mut request = app.client.post(app.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    Answer { status, headers, body: response.json().await.unwrap() }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_greedy_client_is_refused_while_a_polite_one_is_not_and_refusals_run_no_sql(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange
    let app = TestApp::spawn_with_args(options, &budget_args(&[])).await;

    // Act: the greedy client (user 1) sends 20 expensive queries back to
    // back, 25,000 units against a bucket of 2,000 refilled at 1 a second;
    // the polite one (user 2) 20 cheap ones (200 units) at the same time.
    let greedy = async {
        let mut answers = Vec::new();
        for _ in 0..20 {
            answers.push(send(&app, Some("user-1"), None, EXPENSIVE, json!({})).await);
        }
        answers
    };
    let polite = async {
        let mut answers = Vec::new();
        for _ in 0..20 {
            answers.push(send(&app, Some("user-2"), None, CHEAP, json!({})).await);
            tokio::task::yield_now().await;
        }
        answers
    };
    let (greedy, polite) = tokio::join!(greedy, polite);

    // Assert: the polite client always got through, every answer saying
    // what is left, less each time.
    for answer in &polite {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.header("ratelimit-policy"), Some("\"authenticated\";q=2000;w=2000"));
    }
    let left: Vec<u64> = polite.iter().map(|answer| answer.ratelimit("r")).collect();
    assert!(left.windows(2).all(|pair| pair[1] < pair[0]), "r must fall with each charge: {left:?}");
    // The greedy one: its first fitted, the rest did not.
    assert_eq!(greedy[0].status, StatusCode::OK, "{}", greedy[0].body);
    assert!(greedy[0].body["data"]["notes"].is_array());
    let refused: Vec<&Answer> = greedy.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(refused.len(), 19, "one expensive query fits a bucket of 2,000, then 750 units are left");
    for answer in refused {
        assert_eq!(answer.code(), "RATE_LIMITED", "{}", answer.body);
        assert!(answer.body.get("data").is_none());
        let retry: u64 = answer.header("retry-after").expect("Retry-After").parse().unwrap();
        let (remaining, full_in) = (answer.ratelimit("r"), answer.ratelimit("t"));
        assert!(remaining < EXPENSIVE_COST && full_in > 0, "r={remaining} t={full_in}");
        assert!(remaining + retry >= EXPENSIVE_COST, "at 1 a second the cost fits after Retry-After: {retry}");
        assert_eq!(answer.header("ratelimit-policy"), Some("\"authenticated\";q=2000;w=2000"));
    }

    // Act again: refused requests run no SQL.
    let before = app.statement_calls().await;
    for _ in 0..5 {
        assert_eq!(send(&app, Some("user-1"), None, EXPENSIVE, json!({})).await.status, StatusCode::TOO_MANY_REQUESTS);
    }
    let after = app.statement_calls().await;
    assert_eq!(before, after, "a refused request ran SQL");
    // The control: an admitted one does.
    assert_eq!(send(&app, Some("user-3"), None, EXPENSIVE, json!({})).await.status, StatusCode::OK);
    assert_ne!(app.statement_calls().await, after);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn forwarded_addresses_count_apart_only_behind_a_trusted_proxy(_: PgPoolOptions, options: PgConnectOptions) {
    // Behind a trusted proxy (the test's own address, 127.0.0.1), each
    // forwarded address has its own bucket: each fits one expensive query.
    let proxied = TestApp::spawn_with_args(options.clone(), &budget_args(&["--trusted-proxies", "127.0.0.1"])).await;
    let a = send(&proxied, None, Some("198.51.100.1"), EXPENSIVE, json!({})).await;
    let b = send(&proxied, None, Some("203.0.113.9, 198.51.100.2"), EXPENSIVE, json!({})).await;
    let a_again = send(&proxied, None, Some("198.51.100.1"), EXPENSIVE, json!({})).await;
    // Garbage from a trusted proxy: the peer's own budget.
    let garbage = send(&proxied, None, Some("not an address"), EXPENSIVE, json!({})).await;
    assert_eq!((a.status, b.status, garbage.status), (StatusCode::OK, StatusCode::OK, StatusCode::OK));
    assert_eq!(a.header("ratelimit-policy"), Some("\"anonymous\";q=2000;w=2000"));
    assert_eq!(a_again.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a_again.code(), "RATE_LIMITED");
    drop(proxied);

    // From a peer that is not a trusted proxy, the header is ignored: both
    // "addresses" share the peer's bucket.
    let direct = TestApp::spawn_with_args(options, &budget_args(&["--trusted-proxies", "10.0.0.0/8"])).await;
    let a = send(&direct, None, Some("198.51.100.1"), EXPENSIVE, json!({})).await;
    let b = send(&direct, None, Some("198.51.100.2"), EXPENSIVE, json!({})).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(b.status, StatusCode::TOO_MANY_REQUESTS, "{}", b.body);
}

/// The number of budget buckets `/metrics` reports.
async fn buckets(app: &TestApp) -> u64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|line| line.starts_with("notegraph_budget_clients ")).expect("the gauge");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Sends a cheap query from each address of `range` (10.0.0.0 + n)
/// through the trusted proxy header, 16 at a time.
async fn spoof(app: &TestApp, range: std::ops::Range<u32>) {
    use futures::StreamExt as _;
    let requests = futures::stream::iter(range).map(|n| async move {
        let address = std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string();
        let answer = send(app, None, Some(&address), "{ __typename }", json!({})).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    });
    requests.buffer_unordered(16).collect::<()>().await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn many_addresses_leave_at_most_the_cap_of_buckets(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange
    let args = budget_args(&["--trusted-proxies", "127.0.0.1", "--budget-max-clients", "1000"]);
    let app = TestApp::spawn_with_args(options, &args).await;
    // Act and assert: under the cap, one bucket per address…
    spoof(&app, 0..500).await;
    assert_eq!(buckets(&app).await, 500);
    // …and 20,000 addresses later, no more than the cap.
    spoof(&app, 500..20_000).await;
    let after = buckets(&app).await;
    assert!(after <= 1_000, "{after} buckets over a cap of 1,000");
    assert!(after > 0);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_subscription_over_budget_is_refused_over_sse(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: user 1 spends its whole bucket over /graphql.
    let app = TestApp::spawn_with_args(options, &budget_args(&[])).await;
    let spent = send(&app, Some("user-1"), None, SIZED, json!({ "n": 1000 })).await;
    assert_eq!(spent.status, StatusCode::OK, "{}", spent.body);
    assert_eq!(spent.ratelimit("r"), 0);
    // Costs over 300: 300 seconds to refill.
    let subscription = "subscription { noteEvents { noteId note { author { notes(first: 100) { id title } } } } }";

    // Act
    let refused = sse(&app, "user-1", subscription).await;
    let other = sse(&app, "user-2", "{ notes(first: 1) { id } }").await;

    // Assert
    assert!(refused.contains("\"code\":\"RATE_LIMITED\""), "{refused}");
    assert!(refused.contains("over this client's budget"), "{refused}");
    assert!(!other.contains("RATE_LIMITED"), "another viewer has its own budget: {other}");
}

/// The events of a distinct-connection SSE operation as `token`, until
/// `complete` (or 10 s).
async fn sse(app: &TestApp, token: &str, query: &str) -> String {
    let mut response = app
        .client
        .post(app.url("/graphql/stream"))
        .header("accept", "text/event-stream")
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, response.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains("event: complete\n") || text.contains("event: next\n") {
            break;
        }
    }
    text
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn response_cache_hits_are_charged(_: PgPoolOptions, options: PgConnectOptions) {
    let args = ["--max-complexity", MAX_COMPLEXITY, "--budget-anonymous-rate", "1", "--cache-enabled", "true"];
    let app = TestApp::spawn_with_args(options, &args).await;

    let first = send(&app, None, None, EXPENSIVE, json!({})).await;
    let again = send(&app, None, None, EXPENSIVE, json!({})).await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.ratelimit("r"), 2_000 - EXPENSIVE_COST);
    // Sent again byte for byte: a hit would cost nothing to serve, but
    // the cost is the request's, so it does not fit.
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS, "{}", again.body);
    let cheap_first = send(&app, None, None, CHEAP, json!({})).await;
    let cheap_hit = send(&app, None, None, CHEAP, json!({})).await;
    assert_eq!(cheap_hit.header("x-cache"), Some("hit"));
    assert!(cheap_hit.ratelimit("r") < cheap_first.ratelimit("r"), "the hit was charged");
}

#[tokio::test]
async fn a_burst_below_the_largest_admitted_cost_stops_the_start() {
    let args = ["notegraph", "--listen", "127.0.0.1:0", "--budget-anonymous-rate", "10"];
    let cli = <api::Cli as clap::Parser>::parse_from(args.into_iter().chain(["--budget-anonymous-burst", "100"]));
    let pool = PgPoolOptions::new().connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    let err = api::Application::build(&cli.config, pool).await.err().expect("refused to start").to_string();
    assert!(err.contains("NOTEGRAPH_BUDGET_ANONYMOUS_BURST (100)"), "{err}");
    assert!(err.contains("NOTEGRAPH_MAX_COMPLEXITY (25000)"), "{err}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_subscription_over_budget_is_refused_over_websocket(_: PgPoolOptions, options: PgConnectOptions) {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    // Arrange: user 1 spends its whole bucket over /graphql.
    let app = TestApp::spawn_with_args(options, &budget_args(&[])).await;
    assert_eq!(send(&app, Some("user-1"), None, SIZED, json!({ "n": 1000 })).await.ratelimit("r"), 0);
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": "Bearer user-1" } });
    socket.send(Message::Text(init.to_string().into())).await.unwrap();
    let subscription = "subscription { noteEvents { noteId note { author { notes(first: 100) { id title } } } } }";
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": subscription } });

    // Act
    socket.send(Message::Text(subscribe.to_string().into())).await.unwrap();
    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout_at(deadline, socket.next()).await {
        let done = text.contains("\"complete\"") || text.contains("\"error\"");
        messages.push(text.to_string());
        if done {
            break;
        }
    }

    // Assert
    let text = messages.join("\n");
    assert!(text.contains("connection_ack"), "{text}");
    assert!(text.contains("RATE_LIMITED") && text.contains("over this client's budget"), "{text}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_viewer_listed_in_the_viewers_file_gets_its_own_allowance(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: user 2 is listed with a bucket of 5,000 (four expensive
    // queries); user 3 has the authenticated class's 2,000 (one).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("viewers");
    std::fs::write(&file, "# user_id rate burst\n2 1 5000\n").unwrap();
    let file = file.to_str().unwrap().to_owned();
    let app = TestApp::spawn_with_args(options, &budget_args(&["--budget-viewers-file", &file])).await;

    // Act: each sends six expensive queries back to back.
    let mut listed = Vec::new();
    let mut unlisted = Vec::new();
    for _ in 0..6 {
        listed.push(send(&app, Some("user-2"), None, EXPENSIVE, json!({})).await.status);
        unlisted.push(send(&app, Some("user-3"), None, EXPENSIVE, json!({})).await.status);
    }

    // Assert
    let admitted = |statuses: &[StatusCode]| statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(admitted(&listed), 4, "{listed:?}");
    assert_eq!(admitted(&unlisted), 1, "{unlisted:?}");
    let policy = send(&app, Some("user-2"), None, CHEAP, json!({})).await;
    assert_eq!(policy.header("ratelimit-policy"), Some("\"authenticated\";q=5000;w=5000"));
}
