//! The haproxy configuration in `deploy/haproxy/haproxy.cfg`, run unchanged
//! by a real haproxy in front of a real server and of a replica that dies
//! with every request it is sent (it answers its health checks, reads the
//! request, and closes the connection without a response, as a replica
//! SIGKILLed mid-request does). What a user of the file relies on:
//!
//! - every read (a query by POST or by GET) is answered, by the live
//!   server, however often haproxy first picks the dying one;
//! - a write that reached the dying replica is answered 502 and never
//!   sent again: the live server never runs it, so nothing is written
//!   twice; a mutation disguised with a JSON `\u` escape is treated alike.
//!
//! `haproxy` comes from Debian's package of that name. Without it the test
//! skips, unless `NOTEGRAPH_REQUIRE_HAPROXY` is set (as `.ci/run` does).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{TestApp, packaged_program};

/// Set by `.ci/run`: there, a missing haproxy fails.
const REQUIRED: &str = "NOTEGRAPH_REQUIRE_HAPROXY";

/// Requests of each kind sent through haproxy: with round robin over the
/// three servers (the dying one once), about a third first reach it.
const ROUNDS: usize = 12;

const CREATE: &str = "mutation($input: CreateNoteInput!) { createNote(input: $input) { id title } }";

/// What the dying replica was sent: the health checks it answered, and the
/// first line and body of every other request (each of which it dropped).
#[derive(Default)]
struct Dying {
    checks: AtomicUsize,
    dropped: Mutex<Vec<(String, String)>>,
}

impl Dying {
    fn dropped(&self) -> Vec<(String, String)> {
        self.dropped.lock().unwrap().clone()
    }
}

/// Serves the dying replica on `listener` until the test ends.
async fn serve_dying(listener: TcpListener, seen: Arc<Dying>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let Ok(read) = socket.read(&mut chunk).await else { return };
                if read == 0 {
                    return;
                }
                buffer.extend_from_slice(&chunk[..read]);
                let text = String::from_utf8_lossy(&buffer).into_owned();
                let Some(head_end) = text.find("\r\n\r\n") else { continue };
                let head = &text[..head_end];
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if buffer.len() < head_end + 4 + length {
                    continue;
                }
                let first_line = head.lines().next().unwrap_or_default().to_owned();
                if first_line.starts_with("GET /readyz") {
                    seen.checks.fetch_add(1, Ordering::SeqCst);
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
                        .await;
                } else {
                    let body = text[head_end + 4..].to_owned();
                    seen.dropped.lock().unwrap().push((first_line, body));
                }
                // Closing without a response: what haproxy sees of a
                // replica killed while it ran the request.
                return;
            }
        });
    }
}

/// A haproxy running `deploy/haproxy/haproxy.cfg`; killed when dropped.
struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_haproxy(program: &PathBuf, servers: [&str; 3]) -> Haproxy {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy/haproxy.cfg");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(program)
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .env("HAPROXY_BIND", format!("127.0.0.1:{port}"))
        .env("HAPROXY_STATS_SOCKET", dir.path().join("stats.sock"))
        .env("NOTEGRAPH_1", servers[0])
        .env("NOTEGRAPH_2", servers[1])
        .env("NOTEGRAPH_3", servers[2])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy starts");
    Haproxy { child, _dir: dir, port }
}

/// One request through haproxy on a connection of its own: (status, body as JSON or Null).
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("haproxy answers");
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn haproxy_retries_reads_on_another_server_and_never_repeats_a_write(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let test = "haproxy_retries_reads_on_another_server_and_never_repeats_a_write";
    let Some(program) = packaged_program("haproxy", REQUIRED, test) else { return };
    let app = TestApp::spawn(options).await;
    let live = app.addr.to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dying_addr = listener.local_addr().unwrap().to_string();
    let dying = Arc::new(Dying::default());
    tokio::spawn(serve_dying(listener, dying.clone()));
    let haproxy = start_haproxy(&program, [&dying_addr, &live, &live]);
    let base = format!("http://127.0.0.1:{}/graphql", haproxy.port);
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();

    // Up once haproxy has checked the dying replica twice (`rise 2`) and
    // answers through it.
    let started = Instant::now();
    loop {
        let ready = dying.checks.load(Ordering::SeqCst) >= 2
            && client.get(format!("http://127.0.0.1:{}/readyz", haproxy.port)).send().await.is_ok();
        if ready {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "haproxy did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Reads by POST and by GET: every one answered with data.
    let query = "{ notes(first: 2) { id title } }";
    for round in 0..ROUNDS {
        let post = client.post(&base).json(&json!({ "query": query }));
        let (status, body) = send(post).await;
        assert_eq!(status, 200, "POST read {round}: {body}");
        assert!(body["data"]["notes"].is_array() && body.get("errors").is_none(), "POST read {round}: {body}");
    }
    // Apart from the POSTs: interleaved, each GET would follow a POST's retry
    // in the rotation and never be the one to reach the dying replica.
    for round in 0..ROUNDS {
        let get = client.get(&base).query(&[("query", query)]).header("accept", "application/graphql-response+json");
        let (status, body) = send(get).await;
        assert_eq!(status, 200, "GET read {round}: {body}");
        assert!(body["data"]["notes"].is_array(), "GET read {round}: {body}");
    }
    let dropped = dying.dropped();
    let dropped_posts = dropped.iter().filter(|(line, _)| line.starts_with("POST")).count();
    let dropped_gets = dropped.iter().filter(|(line, _)| line.starts_with("GET")).count();
    assert!(
        dropped_posts > 0 && dropped_gets > 0,
        "haproxy never sent a read to the dying replica (POST {dropped_posts}, GET {dropped_gets}): nothing was retried"
    );

    // Writes: plain, and with `mutation` hidden behind a JSON escape.
    let mut answered = Vec::new();
    let mut refused = Vec::new();
    for round in 0..ROUNDS {
        let title = format!("through haproxy {round}");
        let body = json!({ "query": CREATE, "variables": { "input": { "title": title, "body": "b" } } }).to_string();
        let body = if round % 2 == 0 { body } else { body.replacen("mutation", "\\u006dutation", 1) };
        let request = client
            .post(&base)
            .header("authorization", "Bearer user-2")
            .header("content-type", "application/json")
            .body(body);
        let (status, body) = send(request).await;
        match status {
            200 => {
                assert_eq!(body["data"]["createNote"]["title"], title.as_str(), "write {round}: {body}");
                answered.push(title);
            }
            502 => refused.push(title),
            other => panic!("write {round} answered {other}: {body}"),
        }
    }
    let dropped_writes: Vec<String> =
        dying.dropped().into_iter().map(|(_, body)| body).filter(|body| body.contains("utation")).collect();
    assert!(!dropped_writes.is_empty(), "no write reached the dying replica: the test proved nothing about writes");
    assert_eq!(
        dropped_writes.len(),
        refused.len(),
        "each write the dying replica dropped must be answered 502 and not sent again"
    );
    for title in &refused {
        let sent_there = dropped_writes.iter().filter(|body| body.contains(&format!("\"{title}\""))).count();
        assert_eq!(sent_there, 1, "the refused write {title:?} reached the dying replica {sent_there} times");
    }
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "select title, count(*) from notes where title like 'through haproxy %' group by title order by title",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut expected: Vec<(String, i64)> = answered.iter().map(|title| (title.clone(), 1)).collect();
    expected.sort();
    assert_eq!(stored, expected, "exactly the acknowledged writes are stored, once each (refused: {refused:?})");
    drop(haproxy);
}
