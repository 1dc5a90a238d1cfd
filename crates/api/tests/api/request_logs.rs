//! Logs as an operator reads them: in both formats, every line logged for
//! a request carries its request id (the one the client sent, or the one
//! the server made and returned in `x-request-id`), whether or not the
//! caller's `traceparent` sampled the request, and no line carries the
//! bearer token.

use std::time::Duration;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{BufReader, Lines};
use tokio::process::{ChildStderr, Command};

use crate::helpers::{database_url, serve_process};

/// Reads `lines` up to the one that says where the server listens (a text
/// line, or the JSON `serving` event), keeping every line read in
/// `logged`; returns the address.
async fn listening_address(lines: &mut Lines<BufReader<ChildStderr>>, logged: &mut Vec<String>) -> String {
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            logged.push(line.clone());
            if let Some((_, rest)) = line.split_once(" listening on http://") {
                return rest.split_once(' ').unwrap().0.to_owned();
            }
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["fields"]["message"] == "serving" {
                return event["fields"]["address"].as_str().unwrap().to_owned();
            }
        }
        panic!("notegraph exited before listening:\n{}", logged.join("\n"));
    })
    .await
    .expect("listening within 60 s")
}

/// Runs `notegraph serve` on the test's database with `format` logs and
/// the request spans' debug lines on, sends three requests (two with an id
/// of their own and a `traceparent`, one sampled and one not), stops the
/// server and returns its stderr lines and the id the server made.
async fn logged_requests(options: &PgConnectOptions, format: &str) -> (Vec<String>, String) {
    let url = database_url(options);
    let (child, mut lines) = serve_process(&[
        ("DATABASE_URL", &url),
        ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
        ("NOTEGRAPH_LOG_FORMAT", format),
        // `api::console=info` for the JSON `serving` event (text logs say
        // where the server listens whatever `RUST_LOG` says).
        ("RUST_LOG", "warn,tower_http=debug,api::console=info"),
        ("NOTEGRAPH_STATIC_TOKENS", "secret-token-123=1"),
    ]);
    let mut logged = Vec::new();
    let address = listening_address(&mut lines, &mut logged).await;
    let client = reqwest::Client::new();
    let url = format!("http://{address}/graphql");
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
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await {
        logged.push(line);
    }
    (logged, made)
}

async fn every_request_line_carries_its_id(options: &PgConnectOptions, format: &str) {
    // Act
    let (lines, made) = logged_requests(options, format).await;

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

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn text_logs_carry_the_request_id_and_never_the_token(_: PgPoolOptions, options: PgConnectOptions) {
    every_request_line_carries_its_id(&options, "text").await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn json_logs_carry_the_request_id_and_never_the_token(_: PgPoolOptions, options: PgConnectOptions) {
    every_request_line_carries_its_id(&options, "json").await;
}
