//! The binary itself: it serves on the address it logs, and SIGTERM makes
//! it drain and exit cleanly.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn serve_answers_then_exits_cleanly_on_sigterm() {
    let database_url = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/test.sh sets it)");
    let mut child = Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("NOTEGRAPH_LISTEN", "127.0.0.1:0")
        .env("NOTEGRAPH_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start notegraph");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();

    // The address comes from the "serving" log line.
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["fields"]["message"] == "serving" {
                return event["fields"]["address"].as_str().unwrap().to_owned();
            }
        }
        panic!("notegraph exited before serving");
    })
    .await
    .expect("serving within 60 s");

    let health = reqwest::get(format!("http://{address}/readyz")).await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits within 15 s").unwrap();
    assert!(status.success(), "exit status {status}");
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l.contains("draining in-flight requests")), "{rest:#?}");
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:#?}");
}
