//! Subscriptions as their users run them: through the real `graphql-sse`
//! (both modes) and `graphql-ws` clients (tests/subscriptions), across two
//! server processes on one database, and at the edges: limits, caps,
//! heartbeats, a slow subscriber, a lost `LISTEN` connection, shutdown.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::helpers::{TestApp, data_dir, database_url, serve_process, serving_address, stress, wait_for_activity};

/// One operation run by a real client library in node; its results come
/// back one JSON line each: `{"next": …}`, then `{"complete": true}` or
/// `{"error": …}`.
pub(crate) struct NodeClient {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl NodeClient {
    /// Starts `client` (`sse`, `sse-single` or `ws`) on `base` (`http://host:port`).
    pub(crate) fn start(client: &str, base: &str, token: Option<&str>, query: &str) -> NodeClient {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/subscriptions");
        assert!(dir.join("node_modules").exists(), "run `npm ci` in tests/subscriptions (scripts/test.sh does)");
        let url = match client {
            "ws" => format!("{}/graphql/ws", base.replace("http://", "ws://")),
            _ => format!("{base}/graphql/stream"),
        };
        let spec = json!({ "client": client, "url": url, "token": token, "query": query });
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("subscribe.mjs"))
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        NodeClient { _child: child, lines }
    }

    /// The next line, if one comes within `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Value> {
        let line = tokio::time::timeout(wait, self.lines.next_line()).await.ok()?.unwrap()?;
        Some(serde_json::from_str(&line).unwrap())
    }
}

/// Runs `clients` while writing a note with `write` every 200 ms (a
/// subscription has no acknowledgement, so writes go on until every
/// client has finished), and returns each client's lines.
async fn run_while_writing<F, Fut>(clients: Vec<NodeClient>, write: F) -> Vec<Vec<Value>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let collect = futures::future::join_all(clients.into_iter().map(|mut client| async move {
        let mut lines = Vec::new();
        while let Some(line) = client.next(Duration::from_secs(30)).await {
            let last = line.get("complete").is_some() || line.get("error").is_some();
            lines.push(line);
            if last {
                break;
            }
        }
        lines
    }));
    tokio::pin!(collect);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::select! {
            lines = &mut collect => return lines,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                assert!(Instant::now() < deadline, "clients did not finish within 60 s");
                write().await;
            }
        }
    }
}

/// The `noteEvents` payloads of a client's `next` lines.
fn events(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter_map(|line| line.get("next")).map(|next| &next["data"]["noteEvents"]).collect()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn graphql_sse_in_both_modes_and_graphql_ws_receive_events_until_their_limit(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange
    let app = TestApp::spawn(options).await;
    let base = format!("http://{}", app.addr);
    let query = r#"subscription { noteEvents(tag: "live", limit: 3) { kind noteId note { title tags { name } } } }"#;
    let clients = ["sse", "sse-single", "ws"].map(|client| NodeClient::start(client, &base, Some("user-2"), query));

    // Act
    let results = run_while_writing(clients.into(), || async {
        app.create_note("user-1", "Live", "an event", "PUBLIC", &["live"]).await;
        app.create_note("user-1", "Elsewhere", "another tag", "PUBLIC", &["other"]).await;
    })
    .await;

    // Assert
    for (client, lines) in ["sse", "sse-single", "ws"].iter().zip(&results) {
        assert_eq!(lines.last(), Some(&json!({ "complete": true })), "{client}: {lines:#?}");
        let events = events(lines);
        assert_eq!(events.len(), 3, "{client}: {lines:#?}");
        for event in events {
            assert_eq!(event["kind"], "CREATED", "{client}");
            assert_eq!(event["note"]["title"], "Live", "{client}: the tag filter let another note through");
            assert_eq!(event["note"]["tags"], json!([{ "name": "live" }]), "{client}");
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn events_cross_server_processes_and_private_ones_reach_only_their_author(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: writes go to this process; subscribers listen on another
    // `notegraph serve` process on the same database.
    let writer = TestApp::spawn(options.clone()).await;
    let url = database_url(&options);
    let (_other, mut logs) = serve_process(&[
        ("DATABASE_URL", url.as_str()),
        ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
        ("NOTEGRAPH_STATIC_TOKENS", "user-1=1,user-2=2"),
    ]);
    let base = format!("http://{}", serving_address(&mut logs).await);
    let query = r#"subscription { noteEvents(tag: "crossing", limit: 2) { noteId note { title visibility } } }"#;
    let author = NodeClient::start("sse", &base, Some("user-1"), query);
    let other = NodeClient::start("sse", &base, Some("user-2"), query);
    let anonymous = NodeClient::start("sse-single", &base, None, query);

    // Act: each round writes a private note, then a public one.
    let results = run_while_writing(vec![author, other, anonymous], || async {
        writer.create_note("user-1", "Private", "mine", "PRIVATE", &["crossing"]).await;
        writer.create_note("user-1", "Public", "everyone's", "PUBLIC", &["crossing"]).await;
    })
    .await;

    // Assert
    let titles = |lines: &Vec<Value>| -> Vec<String> {
        events(lines).iter().map(|e| e["note"]["title"].as_str().unwrap_or("null").to_owned()).collect()
    };
    let author_titles = titles(&results[0]);
    assert!(author_titles.contains(&"Private".to_owned()), "the author saw no private event: {author_titles:?}");
    for lines in &results[1..] {
        assert_eq!(titles(lines), ["Public", "Public"], "a private event leaked: {lines:#?}");
        assert_eq!(lines.last(), Some(&json!({ "complete": true })));
    }
}

/// Waits until `count` subscriptions are open: the server's
/// `notegraph_subscriptions_open` gauge. A subscription is counted as its
/// resolver subscribes it to the event hub, with no await in between, so
/// from then on it receives every event; a response's head arrives before
/// that. The gauge is the process's: under nextest each test has a process
/// of its own.
pub(crate) async fn wait_for_open_subscriptions(app: &TestApp, count: u32) {
    app.wait_for_metric("notegraph_subscriptions_open", |open| open == f64::from(count)).await;
}

/// Waits until the server's `LISTEN` connection to the database behind
/// `pool` is listening: notifications sent before then reach nobody. It is
/// made at start-up, but the server starts without it when it takes more
/// than a second, and retries in the background.
async fn wait_until_listening(pool: &sqlx::PgPool) {
    wait_for_activity(pool, "state = 'idle' and query ilike 'listen%'", 1, "the server's LISTEN connection").await;
}

/// Reads a raw SSE response body until `until` holds for what has come, or
/// `wait` passes; returns the text.
async fn read_sse(mut response: reqwest::Response, wait: Duration, until: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, response.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if until(&text) {
            break;
        }
    }
    text
}

/// Opens a distinct-connection SSE stream for `query` as `token`.
async fn open_stream(app: &TestApp, token: Option<&str>, query: &str) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/graphql/stream"))
        .header("accept", "text/event-stream")
        .json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream; charset=utf-8");
    response
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn queries_mutations_and_errors_over_the_stream_are_one_next_then_complete(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let complete = |text: &str| text.contains("event: complete\n");

    let query =
        read_sse(open_stream(&app, None, r#"{ user(id: "2") { name } }"#).await, Duration::from_secs(10), complete);
    assert_eq!(
        query.await,
        // The stream opens with a comment, so that its head leaves at once.
        ":\n\nevent: next\ndata: {\"data\":{\"user\":{\"name\":\"Grace Hopper\"}}}\n\nevent: complete\ndata: \n\n"
    );

    let mutation = r#"mutation { createNote(input: { title: "Over SSE", body: "b" }) { title } }"#;
    let created = read_sse(open_stream(&app, Some("user-1"), mutation).await, Duration::from_secs(10), complete).await;
    assert!(
        created.starts_with(":\n\nevent: next\ndata: {\"data\":{\"createNote\":{\"title\":\"Over SSE\"}}}\n\n"),
        "{created}"
    );

    let invalid = read_sse(open_stream(&app, None, "{ nope }").await, Duration::from_secs(10), complete).await;
    let data = invalid.lines().find_map(|line| line.strip_prefix("data: {")).map(|rest| format!("{{{rest}"));
    let body: Value = serde_json::from_str(&data.unwrap()).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{invalid}");

    let negative = "subscription { noteEvents(limit: 0) { noteId } }";
    let refused = read_sse(open_stream(&app, None, negative).await, Duration::from_secs(10), complete).await;
    assert!(refused.contains("`limit` must be positive"), "{refused}");

    let no_accept = app.client.post(app.url("/graphql/stream")).json(&json!({ "query": "{ me { id } }" })).send();
    assert_eq!(no_accept.await.unwrap().status(), 406);
    let bad_token = app
        .client
        .post(app.url("/graphql/stream"))
        .header("accept", "text/event-stream")
        .bearer_auth("forged")
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_token.status(), 401);
    assert_eq!(bad_token.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_subscription_stream_opens_at_once_not_at_its_first_heartbeat(_: PgPoolOptions, options: PgConnectOptions) {
    // The default heartbeat (12 s): a head that waited for the first bytes
    // of the body would arrive only then.
    let app = TestApp::spawn(options).await;
    let opened =
        tokio::time::timeout(Duration::from_secs(6), open_stream(&app, None, "subscription { noteEvents { noteId } }"))
            .await;
    let stream = opened.expect("the stream's head within 6 s, half the heartbeat interval");
    let text = read_sse(stream, Duration::from_secs(6), |text| text.starts_with(":\n\n")).await;
    assert_eq!(text, ":\n\n", "the stream opens with a comment and nothing else yet");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_quiet_stream_carries_heartbeat_comments(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--sse-heartbeat-ms", "200"]).await;
    let started = Instant::now();
    let stream = open_stream(&app, None, "subscription { noteEvents { noteId } }").await;

    // The opening comment, then three heartbeats within 10 s: at the
    // default 12 s interval, not one would come.
    let text = read_sse(stream, Duration::from_secs(10), |text| text.matches(":\n\n").count() >= 4).await;
    let took = started.elapsed();

    assert!(text.matches(":\n\n").count() >= 4, "expected a heartbeat every 200 ms, got {text:?} in 10 s");
    assert!(took >= Duration::from_millis(600), "three heartbeats in {took:?}: less than 200 ms apart");
    assert!(!text.contains("event:"), "{text:?}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn subscriptions_past_a_cap_are_rate_limited(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange
    let args = ["--max-subscriptions-per-viewer", "1", "--max-subscriptions", "2"];
    let app = TestApp::spawn_with_args(options, &args).await;
    let query = "subscription { noteEvents { noteId } }";
    let complete = |text: &str| text.contains("event: complete\n");
    let _first = open_stream(&app, Some("user-1"), query).await;
    // The first subscription is open once its stream has been polled.
    wait_for_open_subscriptions(&app, 1).await;

    // Act
    let second = read_sse(open_stream(&app, Some("user-1"), query).await, Duration::from_secs(10), complete).await;
    let _other_user = open_stream(&app, Some("user-2"), query).await;
    // The refused one has given its place back, as its stream completed.
    wait_for_open_subscriptions(&app, 2).await;
    let third = read_sse(open_stream(&app, None, query).await, Duration::from_secs(10), complete).await;

    // Assert
    assert!(second.contains("\"code\":\"RATE_LIMITED\""), "{second}");
    assert!(second.contains("one user has 1 open subscriptions"), "{second}");
    assert!(third.contains("the server has 2 open subscriptions"), "{third}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_lost_listen_connection_is_reported_to_subscribers_and_delivery_resumes(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange
    let app = TestApp::spawn(options).await;
    let stream = open_stream(&app, None, r#"subscription { noteEvents(tag: "after", limit: 1) { note { title } } }"#);
    let stream = stream.await;
    wait_for_open_subscriptions(&app, 1).await;
    wait_until_listening(&app.pool).await;

    // Act: the server's LISTEN connection dies (as in a database restart).
    let killed: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where datname = current_database() and query ilike 'listen%'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(killed, [true], "one LISTEN connection per process");
    let reader = tokio::spawn(read_sse(stream, Duration::from_secs(30), |text| text.contains("event: complete\n")));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        app.create_note("user-1", "After", "written once listening again", "PUBLIC", &["after"]).await;
    }
    let text = reader.await.unwrap();

    // Assert
    let gap = text.find("events may have been missed").expect(&text);
    let delivered = text.find("\"title\":\"After\"").expect(&text);
    assert!(gap < delivered, "{text}");
    assert!(text.contains("\"missedFrom\""), "{text}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_subscriber_that_reads_nothing_skips_ahead_and_others_stay_on_time(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: a subscriber with fat events and a tiny receive buffer that
    // reads nothing, and one that reads everything. Never beside the tests
    // that saturate both cores on purpose (.config/nextest.toml). The
    // stress step floods 10,000 events through the default hub of 4,096;
    // the default suite 3,000 through a hub of 2,048, which still leaves
    // the subscriber that reads nothing far behind. Its events carry the
    // note's 20 KB body once, or four times over: buffering all of them
    // would take over 200 MB either way.
    let (events, hub, copies) = if stress() { (10_000, 4_096, 1) } else { (3_000, 2_048, 4) };
    let app = TestApp::spawn_with_args(options, &["--subscription-buffer", &hub.to_string()]).await;
    let note = app.create_note("user-1", "Fat", &"x".repeat(20_000), "PUBLIC", &[]).await;
    let bodies: Vec<String> = (0..copies).map(|copy| format!("b{copy}: body")).collect();
    let slow = slow_reader(&app, &format!("subscription {{ noteEvents {{ note {{ {} }} }} }}", bodies.join(" "))).await;
    let fast = open_stream(&app, None, &format!("subscription {{ noteEvents(limit: {events}) {{ noteId }} }}")).await;
    wait_for_open_subscriptions(&app, 2).await;
    wait_until_listening(&app.pool).await;
    let rss_before = rss_kib();

    // Act: committed events in transactions of 100 about 50 ms apart:
    // about 2,000 a second, several times the write rate the server
    // sustains (distinct payloads: Postgres folds identical notifications
    // in a transaction). The reader checks only the end of what it has
    // read: the whole would cost it time quadratic in the events.
    let started = Instant::now();
    let complete = |text: &str| text.ends_with("event: complete\ndata: \n\n");
    let fast_reader = tokio::spawn(read_sse(fast, Duration::from_secs(120), complete));
    for batch in 0..events / 100 {
        sqlx::query(
            "select pg_notify('notegraph_writes', json_build_object('origin', $2 * 100 + g, 'kind', 'updated', \
             'note', $1::bigint, 'author', 1, 'visibility', 'public', 'tags', '[]'::json, 'at', now())::text) \
             from generate_series(1, 100) g",
        )
        .bind(note.parse::<i64>().unwrap())
        .bind(i64::try_from(batch).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fast_text = fast_reader.await.unwrap();
    let fast_took = started.elapsed();
    let rss_after = rss_kib();
    let slow_text = slow.finish().await;

    // Assert
    assert_eq!(fast_text.matches("event: next").count(), events, "the reading subscriber missed events");
    assert!(fast_text.ends_with("event: complete\ndata: \n\n"));
    assert!(
        slow_text.contains("events were skipped"),
        "the slow subscriber was never told: {}",
        &slow_text[..500.min(slow_text.len())]
    );
    let grown_mib = rss_after.saturating_sub(rss_before) / 1024;
    println!("{events} events: reader done in {fast_took:?}, RSS grew {grown_mib} MiB");
    assert!(grown_mib < 100, "memory grew {grown_mib} MiB while a subscriber read nothing");
}

/// A subscriber on a socket with a 4 KiB receive buffer that reads only
/// the response head until told to [`SlowReader::finish`].
struct SlowReader {
    socket: tokio::net::TcpStream,
}

async fn slow_reader(app: &TestApp, query: &str) -> SlowReader {
    use tokio::io::AsyncWriteExt as _;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut socket = socket.connect(app.addr).await.unwrap();
    let body = json!({ "query": query }).to_string();
    let head = format!(
        "POST /graphql/stream HTTP/1.1\r\nhost: {}\r\naccept: text/event-stream\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        app.addr,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    SlowReader { socket }
}

impl SlowReader {
    /// Reads what the server sends until it says events were skipped, or
    /// for 30 s.
    async fn finish(mut self) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut text = Vec::new();
        let mut buffer = vec![0_u8; 1 << 16];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.socket.read(&mut buffer)).await {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buffer[..n]);
            if String::from_utf8_lossy(&text).contains("events were skipped") {
                break;
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// This process's resident memory.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn shutdown_completes_open_streams_and_sockets(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: an SSE stream, a single-connection SSE client and a WebSocket
    // client, all idle. The grace is long, so that streams ended by the
    // drain and not at the grace's end are told apart however slow the
    // machine.
    let mut app = TestApp::spawn_with_args(options, &["--shutdown-grace-secs", "60"]).await;
    let base = format!("http://{}", app.addr);
    let query = "subscription { noteEvents { noteId } }";
    let stream = open_stream(&app, None, query).await;
    let mut single = NodeClient::start("sse-single", &base, None, query);
    let mut ws = NodeClient::start("ws", &base, None, query);
    wait_for_open_subscriptions(&app, 3).await;

    // Act
    let stopped_at = Instant::now();
    app.stop();

    // Assert: each completes, well within the shutdown grace.
    let text = read_sse(stream, Duration::from_secs(30), |text| text.contains("event: complete\n")).await;
    assert_eq!(text, ":\n\nevent: complete\ndata: \n\n");
    assert_eq!(single.next(Duration::from_secs(30)).await, Some(json!({ "complete": true })));
    assert_eq!(ws.next(Duration::from_secs(30)).await, Some(json!({ "complete": true })));
    assert!(stopped_at.elapsed() < Duration::from_secs(30), "took {:?}", stopped_at.elapsed());
}

/// A Postgres of this test's own (the suite's shared one must not
/// restart), from the embedded launcher, in a directory under the data
/// directory; it reuses the installed wheel when there is one.
fn own_postgres_dir() -> std::path::PathBuf {
    let data_dir = data_dir();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = data_dir.join(format!("restart-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(dir.join("postgres")).unwrap();
    let installed = data_dir.join("postgres/install");
    if installed.exists() {
        std::os::unix::fs::symlink(installed.canonicalize().unwrap(), dir.join("postgres/install")).unwrap();
    }
    dir
}

#[tokio::test]
async fn subscribers_hear_of_a_database_restart_and_delivery_resumes() {
    // Arrange: a server on a Postgres of its own, and a subscriber.
    let dir = own_postgres_dir();
    let start = {
        let dir = dir.clone();
        move || pgembed::EmbeddedPostgres::start(&dir, "notegraph").unwrap()
    };
    let postgres = tokio::task::spawn_blocking(start.clone()).await.unwrap();
    let options: PgConnectOptions = postgres.url().parse().unwrap();
    let setup = sqlx::PgPool::connect_with(options.clone()).await.unwrap();
    db::MIGRATOR.run(&setup).await.unwrap();
    sqlx::raw_sql(include_str!("fixtures/users.sql")).execute(&setup).await.unwrap();
    setup.close().await;
    let app = TestApp::spawn(options).await;
    let stream = open_stream(&app, None, r#"subscription { noteEvents(limit: 1) { note { title } } }"#).await;
    wait_for_open_subscriptions(&app, 1).await;
    wait_until_listening(&app.pool).await;

    // Act: Postgres stops and starts again (same port), then writes resume.
    tokio::task::spawn_blocking(move || postgres.stop().unwrap()).await.unwrap();
    let postgres = tokio::task::spawn_blocking(start).await.unwrap();
    let reader = tokio::spawn(read_sse(stream, Duration::from_secs(40), |text| text.contains("event: complete\n")));
    let deadline = Instant::now() + Duration::from_secs(30);
    let create = r#"mutation { createNote(input: { title: "After the restart", body: "b" }) { id } }"#;
    while !reader.is_finished() && Instant::now() < deadline {
        // Pooled connections to the old server fail once each: retry.
        let _ = app.post(Some("user-1"), create, json!({})).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let text = reader.await.unwrap();
    drop(app);
    tokio::task::spawn_blocking(move || postgres.stop().unwrap()).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // Assert: told of the gap, then the next event.
    let gap = text.find("events may have been missed").unwrap_or_else(|| panic!("no gap error in {text:?}"));
    let delivered = text.find("\"title\":\"After the restart\"").unwrap_or_else(|| panic!("no event in {text:?}"));
    assert!(gap < delivered, "{text}");
}
