//! Hostile HTTP, spoken as raw bytes over a TCP socket: oversized bodies
//! and heads, clients that trickle or go idle, bodies that lie or are not
//! a request object. Each gets a clean 4xx (in the JSON error shape once
//! the router sees the request) or a closed connection, and the server
//! answers a normal request at once afterwards.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

/// Longest any refusal here may take: a few milliseconds on an idle
/// machine, seconds on a saturated one, well short of the HTTP deadline
/// (30 s) a server that waited for more bytes would answer at.
const PROMPT: Duration = Duration::from_secs(10);

/// Sends `bytes` (then, with `close`, ends the sending half) and reads
/// until the server closes; returns the status and the JSON body, if any.
async fn exchange(addr: SocketAddr, bytes: &[u8], close: bool) -> (u16, Option<Value>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if close {
        stream.shutdown().await.unwrap();
    }
    let mut response = Vec::new();
    tokio::time::timeout(PROMPT, stream.read_to_end(&mut response)).await.expect("answered promptly").unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").and_then(|(_, body)| serde_json::from_str(body).ok());
    (status, body)
}

/// A POST /graphql head with `content-length` and `connection: close`.
fn post_head(content_length: usize) -> String {
    format!(
        "POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         connection: close\r\ncontent-length: {content_length}\r\n\r\n"
    )
}

/// The server still answers a normal request at once (milliseconds; the
/// bound leaves room for a saturated machine).
async fn still_serves(app: &TestApp) {
    let started = Instant::now();
    let (status, body) = app.post(None, "{ users { id } }", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

fn code(body: &Option<Value>) -> &str {
    body.as_ref().and_then(|b| b["errors"][0]["extensions"]["code"].as_str()).unwrap_or("no JSON error")
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_body_over_the_limit_is_refused_before_it_is_read(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--body-limit-bytes", "1000"]).await;

    // Only the head is sent: a server that buffered first would wait.
    let (status, body) = exchange(app.addr, post_head(10_000_000).as_bytes(), false).await;

    assert_eq!((status, code(&body)), (413, "BAD_USER_INPUT"), "{body:?}");
    still_serves(&app).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn bodies_that_are_not_a_request_object_get_json_400s(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let bodies: [&[u8]; 5] = [b"{\"query\": \"\xff\xfe\"}", b"42", b"\"{ users { id } }\"", b"null", b"{\"query\": "];

    for body in bodies {
        let mut request = post_head(body.len()).into_bytes();
        request.extend_from_slice(body);
        let (status, error) = exchange(app.addr, &request, false).await;
        assert_eq!((status, code(&error)), (400, "BAD_USER_INPUT"), "{:?}: {error:?}", String::from_utf8_lossy(body));
    }
    still_serves(&app).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_content_length_that_lies_gets_a_json_400(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    // Declares 100 bytes, sends 30 and ends the stream.
    let mut request = post_head(100).into_bytes();
    request.extend_from_slice(br#"{"query": "{ users { id } }"}"#);

    let (status, body) = exchange(app.addr, &request, true).await;

    assert_eq!((status, code(&body)), (400, "BAD_USER_INPUT"), "{body:?}");
    still_serves(&app).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn too_many_or_too_large_headers_are_refused(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--max-headers", "20", "--max-header-bytes", "8192"]).await;
    let many: String = (0..30).map(|i| format!("x-h{i}: v\r\n")).collect();
    let large = format!("x-big: {}\r\n", "a".repeat(10_000));

    for extra in [many, large] {
        let request = format!("GET /healthz HTTP/1.1\r\nhost: test\r\n{extra}connection: close\r\n\r\n");
        let (status, _) = exchange(app.addr, request.as_bytes(), false).await;
        assert_eq!(status, 431);
    }
    let (status, _) =
        exchange(app.addr, b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n", false).await;
    assert_eq!(status, 200);
    still_serves(&app).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn clients_that_trickle_headers_or_idle_are_cut_off(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--header-read-timeout-ms", "500"]).await;

    // Half a head, then nothing.
    let started = Instant::now();
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /graphql HTTP/1.1\r\nhost: test\r\n").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PROMPT, slow.read_to_end(&mut rest)).await.expect("cut off").ok();
    let trickled = started.elapsed();

    // A kept-alive connection that goes idle after one request.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n").await.unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let idle_since = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(PROMPT, idle.read_to_end(&mut rest)).await.expect("idle connection closed").ok();

    // Cut off by the 500 ms timeout, not at once, and long before the
    // default (10 s) or the HTTP deadline (30 s) would.
    assert!(trickled >= Duration::from_millis(400) && trickled < Duration::from_secs(5), "took {trickled:?}");
    assert!(idle_since.elapsed() < Duration::from_secs(5), "idle for {:?}", idle_since.elapsed());
    still_serves(&app).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_body_that_trickles_is_the_clients_408_not_a_server_timeout(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: a short body deadline, the whole-request deadline far past it.
    let args = ["--body-read-timeout-ms", "500", "--http-timeout-ms", "60000"];
    let app = TestApp::spawn_with_args(options, &args).await;

    for (path, accept) in [("/graphql", "application/json"), ("/graphql/stream", "text/event-stream")] {
        // Act: the head and one byte of a 100-byte body, then nothing.
        let started = Instant::now();
        let mut slow = TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\naccept: {accept}\r\n\
             content-length: 100\r\n\r\n{{"
        );
        slow.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let read = tokio::time::timeout(PROMPT, slow.read(&mut answer)).await.expect("answered").unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]).into_owned();

        // Assert: 408 with a TIMEOUT error that says why, after the body
        // deadline and long before the whole-request one (60 s).
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains(r#""code":"TIMEOUT""#), "{path}: {answer}");
        assert!(answer.contains("the request body did not arrive within 500 ms"), "{path}: {answer}");
        assert!(started.elapsed() < Duration::from_secs(15), "{path}: took {:?}", started.elapsed());
    }
    still_serves(&app).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn connections_past_the_cap_wait_until_one_closes(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: two idle connections fill a cap of two. The header read
    // timeout, which also ends connections that send nothing, is raised
    // far past the test so that neither goes on its own. The server accepts
    // connections in the order they were made, so it takes these two
    // before the third whenever it gets to them.
    let args = ["--max-connections", "2", "--header-read-timeout-ms", "60000"];
    let app = TestApp::spawn_with_args(options, &args).await;
    let first = TcpStream::connect(app.addr).await.unwrap();
    let _second = TcpStream::connect(app.addr).await.unwrap();

    // Act: a third client asks; then the first goes away.
    let third =
        tokio::spawn(exchange(app.addr, b"GET /healthz HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n", false));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let waited = !third.is_finished();
    drop(first);

    // Assert: it waited at the cap, and was served once a place freed.
    assert!(waited, "a third connection was served past a cap of two");
    let (status, _) = third.await.unwrap();
    assert_eq!(status, 200);
}
