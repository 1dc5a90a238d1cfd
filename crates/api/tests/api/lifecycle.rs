//! The binary itself: it serves on the address it logs, SIGTERM makes it
//! drain and exit cleanly, and it refuses development credentials on an
//! address other machines can reach.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Command;

use crate::helpers::{database_url, serve_process as serve, serving_address};

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_answers_then_exits_cleanly_on_sigterm(_: PgPoolOptions, options: PgConnectOptions) {
    let url = database_url(&options);
    let (mut child, mut lines) = serve(&[("DATABASE_URL", &url), ("NOTEGRAPH_LISTEN", "127.0.0.1:0")]);
    let address = serving_address(&mut lines).await;

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

/// With a shutdown delay, SIGTERM first makes `/readyz` fail while
/// GraphQL requests are still answered (a load balancer's health check
/// takes the server out first), and only then does the server drain.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn sigterm_fails_readiness_first_and_keeps_serving_for_the_shutdown_delay(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // A 6 s delay: readiness has the first half of it to fail, and the
    // GraphQL request the second half to be answered, with seconds to
    // spare on a saturated machine.
    let url = database_url(&options);
    let env =
        [("DATABASE_URL", url.as_str()), ("NOTEGRAPH_LISTEN", "127.0.0.1:0"), ("NOTEGRAPH_SHUTDOWN_DELAY_MS", "6000")];
    let (mut child, mut lines) = serve(&env);
    let address = serving_address(&mut lines).await;
    let client = reqwest::Client::new();
    let ready = client.get(format!("http://{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::OK);

    let pid = child.id().unwrap().to_string();
    let signalled = std::time::Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());
    // The signal is handled asynchronously: readiness fails within moments.
    let mut failing = None;
    while signalled.elapsed() < Duration::from_millis(3000) {
        let ready = client.get(format!("http://{address}/readyz")).send().await.unwrap();
        if ready.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            failing = Some(ready.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(failing.expect("readyz fails soon after SIGTERM")["status"], "shutting down");
    let answered = client
        .post(format!("http://{address}/graphql"))
        .json(&serde_json::json!({ "query": "{ users(first: 1) { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), reqwest::StatusCode::OK, "still serving during the delay");
    assert!(signalled.elapsed() < Duration::from_millis(6000), "checked within the delay");

    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits").unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(signalled.elapsed() >= Duration::from_millis(6000), "stopped only after the delay");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_refuses_development_credentials_on_a_reachable_address_unless_told_it_is_development(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Act: the defaults on every interface, without and with NOTEGRAPH_DEV.
    let url = database_url(&options);
    let (refused, mut refused_lines) = serve(&[("DATABASE_URL", &url), ("NOTEGRAPH_LISTEN", "0.0.0.0:0")]);
    let dev_env = [("DATABASE_URL", url.as_str()), ("NOTEGRAPH_LISTEN", "0.0.0.0:0"), ("NOTEGRAPH_DEV", "true")];
    let (mut dev, mut dev_lines) = serve(&dev_env);
    let status = tokio::time::timeout(Duration::from_secs(30), async {
        let mut refused = refused;
        refused.wait().await.unwrap()
    })
    .await
    .expect("exits within 30 s");

    // Assert: the refusal names what to set; development mode serves.
    assert!(!status.success());
    let mut stderr = Vec::new();
    while let Some(line) = refused_lines.next_line().await.unwrap() {
        stderr.push(line);
    }
    let stderr = stderr.join("\n");
    for variable in ["NOTEGRAPH_JWT_SECRET", "NOTEGRAPH_STATIC_TOKENS", "NOTEGRAPH_DEV"] {
        assert!(stderr.contains(variable), "{variable} is not named in:\n{stderr}");
    }
    assert!(serving_address(&mut dev_lines).await.starts_with("0.0.0.0:"));
    dev.kill().await.unwrap();
}
