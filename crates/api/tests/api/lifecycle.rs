//! The binary itself: it serves on the address it logs, SIGTERM makes it
//! drain and exit cleanly (also when its database connections went
//! silent), and it refuses development credentials on an address other
//! machines can reach.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

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

/// Which connections a [`black_hole_proxy`] stops forwarding, once set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hole {
    /// Every connection open at that moment (new ones still forward).
    Open,
    /// Only the connections that had sent `LISTEN` (the server's one).
    Listening,
}

/// A TCP proxy to `upstream` that forwards both ways until a hole is set
/// (the returned cell), then forwards nothing more on the connections it
/// names and closes nothing: a black-holed route, as a dead network path
/// looks to both ends. Connections made later forward normally.
async fn black_hole_proxy(upstream: String) -> (u16, Arc<std::sync::Mutex<Option<Hole>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hole = Arc::new(std::sync::Mutex::new(None::<Hole>));
    let setting = hole.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else { continue };
            // Made before the hole: subject to it. Listening: sent LISTEN.
            let (old, listening) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
            if setting.lock().unwrap().is_some() {
                old.store(false, Ordering::SeqCst);
            }
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            for (upward, mut from, mut to) in [(true, client_read, server_write), (false, server_read, client_write)] {
                let (setting, old, listening) = (setting.clone(), old.clone(), listening.clone());
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    while let Ok(read) = from.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        let hole = *setting.lock().unwrap();
                        // Listening before the hole: a connection that
                        // starts listening later is a new one.
                        if upward
                            && hole.is_none()
                            && buffer[..read].windows(6).any(|w| w.eq_ignore_ascii_case(b"listen"))
                        {
                            listening.store(true, Ordering::SeqCst);
                        }
                        let holed = old.load(Ordering::SeqCst)
                            && match hole {
                                Some(Hole::Open) => true,
                                Some(Hole::Listening) => listening.load(Ordering::SeqCst),
                                None => false,
                            };
                        if holed {
                            // Keep both sockets open, forward nothing.
                            std::future::pending::<()>().await;
                        }
                        if to.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    });
    (port, hole)
}

/// The test database's URL, through a proxy on `port`.
fn proxied_url(options: &PgConnectOptions, port: u16) -> String {
    let direct = database_url(options);
    let server = format!("{}:{}/", options.get_host(), options.get_port());
    assert!(direct.contains(&server), "{direct} names {server}");
    direct.replacen(&server, &format!("127.0.0.1:{port}/"), 1)
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn sigterm_exits_even_when_the_database_connections_went_silent(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: the server reaches its database through a proxy that will
    // black-hole every connection.
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let (port, hole) = black_hole_proxy(upstream).await;
    let url = proxied_url(&options, port);
    let deadlines = [
        ("NOTEGRAPH_HTTP_TIMEOUT_MS", "3000"),
        ("NOTEGRAPH_GRAPHQL_TIMEOUT_MS", "2000"),
        ("NOTEGRAPH_DB_TIMEOUT_MS", "1500"),
    ];
    let mut env = vec![("DATABASE_URL", url.as_str()), ("NOTEGRAPH_LISTEN", "127.0.0.1:0")];
    env.extend(deadlines);
    let (mut child, mut lines) = serve(&env);
    let address = serving_address(&mut lines).await;
    let health = reqwest::get(format!("http://{address}/readyz")).await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    // Act: the route goes silent while a query is on its way to the
    // database (it ends by its deadline, its connection stuck), then an
    // orchestrator stops the server.
    *hole.lock().unwrap() = Some(Hole::Open);
    let query = serde_json::json!({ "query": "{ notes(first: 1) { id } }" });
    let client = reqwest::Client::new();
    let stuck = client.post(format!("http://{address}/graphql")).header("cache-control", "no-cache").json(&query);
    let answer: serde_json::Value = stuck.send().await.unwrap().json().await.unwrap();
    let code = answer["errors"][0]["extensions"]["code"].as_str().unwrap_or_default().to_owned();
    assert!(["TIMEOUT", "SERVICE_UNAVAILABLE"].contains(&code.as_str()), "{answer}");
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());

    // Assert: it exits cleanly, without waiting on connections that will
    // never answer.
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits").unwrap();
    let mut rest = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await {
        rest.push(line);
    }
    assert!(status.success(), "exit status {status}: {rest:#?}");
    assert!(rest.iter().any(|line| line.contains("\"stopped\"")), "{rest:#?}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_listen_connection_that_goes_silent_is_replaced_and_subscribers_are_told(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: a server whose LISTEN connection goes through a proxy that
    // can black-hole it, and a subscriber.
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    let (port, hole) = black_hole_proxy(upstream).await;
    let url = proxied_url(&options, port);
    let (_child, mut lines) = serve(&[("DATABASE_URL", &url), ("NOTEGRAPH_LISTEN", "127.0.0.1:0")]);
    let address = serving_address(&mut lines).await;
    // Its log, kept (and its pipe drained, so that logging never blocks it).
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            keep.lock().unwrap().push(line);
        }
    });
    let client = reqwest::Client::new();
    let subscription = r#"subscription { noteEvents(tag: "after", limit: 1) { note { title } } }"#;
    let mut stream = client
        .post(format!("http://{address}/graphql/stream"))
        .header("accept", "text/event-stream")
        .json(&serde_json::json!({ "query": subscription }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    // Act: the LISTEN connection goes silent, without an error or a close.
    // Then notes are written until the subscriber hears of one.
    *hole.lock().unwrap() = Some(Hole::Listening);
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !text.contains("event: complete") && tokio::time::Instant::now() < deadline {
        let create = serde_json::json!({ "query": r#"mutation { createNote(input: { title: "After", body: "b", tags: ["after"] }) { id } }"# });
        let _ = client.post(format!("http://{address}/graphql")).bearer_auth("test-token").json(&create).send().await;
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_millis(500), stream.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    // Assert: the server found the silent connection, made a new one, told
    // the subscriber events may have been missed, then delivered again.
    let said = log.lock().unwrap().join("\n");
    let gap = text.find("events may have been missed").unwrap_or_else(|| panic!("{text}\n{said}"));
    let delivered = text.find("\"title\":\"After\"").unwrap_or_else(|| panic!("{text}\n{said}"));
    assert!(gap < delivered, "{text}");
    assert!(said.contains("lost the LISTEN connection"), "{said}");
}
