//! Logs as an operator reads them: in both formats, every line logged for
//! a request carries its request id (the one the client sent, or the one
//! the server made and returned in `x-request-id`), whether or not the
//! caller's `traceparent` sampled the request, and no line carries the
//! bearer token.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Runs `notegraph serve` with `format` logs and the request spans' debug
/// lines on, sends three requests (two with an id of their own and a
/// `traceparent`, one sampled and one not), stops the server and returns
/// its stderr lines and the id the server made.
async fn logged_requests(format: &str) -> (Vec<String>, String) {
    let database_url = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/test.sh sets it)");
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("NOTEGRAPH_LISTEN", address.to_string())
        .env("NOTEGRAPH_LOG_FORMAT", format)
        .env("RUST_LOG", "warn,tower_http=debug")
        .env("NOTEGRAPH_STATIC_TOKENS", "secret-token-123=1")
        .env_remove("NOTEGRAPH_JWT_SECRET")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start notegraph");
    let client = reqwest::Client::new();
    let url = format!("http://{address}/graphql");
    let mut ready = false;
    for _ in 0..300 {
        if client.get(format!("http://{address}/healthz")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not start");
    let mine = client
        .post(&url)
        .header("x-request-id", "client-chosen-id-42")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .bearer_auth("secret-token-123")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.headers()["x-request-id"], "client-chosen-id-42");
    let untraced = client
        .post(&url)
        .header("x-request-id", "client-untraced-id-7")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(untraced.headers()["x-request-id"], "client-untraced-id-7");
    let made = client.post(&url).json(&json!({ "query": "{ __typename }" })).send().await.unwrap();
    let made = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let pid = child.id().unwrap().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut logged = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await {
        logged.push(line);
    }
    (logged, made)
}

async fn every_request_line_carries_its_id(format: &str) {
    // Act
    let (lines, made) = logged_requests(format).await;

    // Assert: each request's two lines (started, finished) name its id.
    let request_lines: Vec<&String> =
        lines.iter().filter(|l| l.contains("processing request") && l.contains("/graphql")).collect();
    assert_eq!(request_lines.len(), 6, "{lines:#?}");
    for id in ["client-chosen-id-42", "client-untraced-id-7", made.as_str()] {
        let with_id = request_lines.iter().filter(|l| l.contains(id)).count();
        assert_eq!(with_id, 2, "{id} in {request_lines:#?}");
    }
    assert!(lines.iter().all(|l| !l.contains("secret-token-123")), "a token was logged: {lines:#?}");
    if format == "json" {
        for line in &request_lines {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(event["span"]["request.id"].is_string(), "{event}");
        }
    }
}

#[tokio::test]
async fn text_logs_carry_the_request_id_and_never_the_token() {
    every_request_line_carries_its_id("text").await;
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_never_the_token() {
    every_request_line_carries_its_id("json").await;
}
