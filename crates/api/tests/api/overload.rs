//! Timeouts and load shedding against a real stall: another connection
//! holds `lock table notes in access exclusive mode`, so every statement
//! that reads notes waits on the lock, as it would behind a long write.
//! Also the pool's own settings that bound how it behaves under load, and
//! the adaptive concurrency limit falling while Postgres is slow.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::io::AsyncWriteExt;

use crate::helpers::{TestApp, running_statements, statements_left_running, wait_for_a_lock_waiter};
use crate::metrics::value;

/// Locks `notes` until the returned transaction ends.
async fn lock_notes(pool: &PgPool) -> Transaction<'static, Postgres> {
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("lock table notes in access exclusive mode").execute(&mut *lock).await.unwrap();
    lock
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_statement_stuck_on_a_lock_times_out_and_leaves_nothing_running(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: DB 1.5 s < GraphQL 10 s < HTTP 15 s, far enough apart that
    // the time taken tells which of them ended the request.
    let args = ["--db-timeout-ms", "1500", "--graphql-timeout-ms", "10000", "--http-timeout-ms", "15000"];
    let app = TestApp::spawn_with_args(options, &args).await;
    let lock = lock_notes(&app.pool).await;

    // Act
    let started = Instant::now();
    let (status, body) = app.post(None, "{ notes { id } }", json!({})).await;
    let elapsed = started.elapsed();

    // Assert: the database's timeout ended the statement, before the
    // GraphQL deadline could.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    assert_eq!(body["errors"][0]["message"], "the operation timed out", "{body}");
    assert!(elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(running_statements(&app.pool).await, Vec::<String>::new());
    lock.rollback().await.unwrap();
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn beyond_the_concurrency_cap_requests_are_shed_at_once(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: one request in execution, stuck on the lock. With the
    // default timeouts (DB 20 s) it holds the only slot for the whole
    // test, so a request that queued for the slot would take 20 s.
    let app = TestApp::spawn_with_args(options, &["--max-concurrent-requests", "1"]).await;
    let lock = lock_notes(&app.pool).await;
    let stuck = {
        let request = app.client.post(app.url("/graphql")).json(&json!({ "query": "{ notes { id } }" }));
        tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
    };
    wait_for_a_lock_waiter(&app.pool).await;

    // Act: a burst beside it.
    let started = Instant::now();
    let burst =
        (0..20).map(|_| app.client.post(app.url("/graphql")).json(&json!({ "query": "{ users { id } }" })).send());
    let shed = futures::future::join_all(burst).await;
    let burst_time = started.elapsed();

    // Assert: every one answered 503 at once (none waited for the slot),
    // with Retry-After.
    assert!(burst_time < Duration::from_secs(10), "the burst took {burst_time:?}");
    for response in shed {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE", "{body}");
    }
    // Probes are not shed.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);

    // Once the stall ends, the stuck request completes and new ones run.
    lock.rollback().await.unwrap();
    let stuck = stuck.await.unwrap();
    assert!(stuck.get("errors").is_none(), "{stuck}");
    let (status, body) = app.post(None, "{ users { id } }", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_statement_started_late_gets_only_what_is_left_of_the_budget(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: `notes` is locked for 6 s and `tags` for longer. The
    // query's second statement (the authors' pages with their tags: the
    // root list reads its own tags in its one statement) starts at ~6 s,
    // when 4 s are left of the GraphQL budget (10 s), less than the DB
    // timeout (9 s).
    let args = ["--db-timeout-ms", "9000", "--graphql-timeout-ms", "10000", "--http-timeout-ms", "15000"];
    let app = TestApp::spawn_with_args(options, &args).await;
    app.create_note("user-1", "Locked", "body", "PUBLIC", &[]).await;
    let notes = lock_notes(&app.pool).await;
    let mut tags = app.pool.begin().await.unwrap();
    sqlx::query("lock table tags in access exclusive mode").execute(&mut *tags).await.unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        notes.rollback().await.unwrap();
    });

    // Act
    let started = Instant::now();
    let (status, body) = app.post(None, "{ notes { id author { notes { tags { name } } } } }", json!({})).await;
    let elapsed = started.elapsed();

    // Assert: the request's statement ends at ~10 s, not at 15 s (6 s +
    // the DB timeout's 9 s) as it would with the DB timeout alone. Cut to
    // the budget, its own timeout ends it just before the GraphQL deadline
    // and its field's TIMEOUT answers; on a busy machine the deadline may
    // answer first, which is why the path is not asserted, and then the
    // statement ends when Postgres next checks the closed connection
    // (every 500 ms) or at its own timeout, whichever is first.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    assert!(elapsed >= Duration::from_millis(9850) && elapsed < Duration::from_secs(13), "took {elapsed:?}");
    let running = statements_left_running(&app.pool, started + Duration::from_secs(14)).await;
    assert_eq!(running, Vec::<String>::new(), "still running {:?} after the request began", started.elapsed());
    tags.rollback().await.unwrap();
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn an_execution_past_the_graphql_deadline_answers_timeout(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: every connection the server's pool may open is held
    // elsewhere (as by stuck statements; the `LISTEN` connection takes
    // one too) for longer than the GraphQL deadline, and the pool
    // would wait for it longer still: the stall is before any statement,
    // where no `statement_timeout` helps, and the deadline ends it.
    // GraphQL 1 s is far below the HTTP deadline (15 s) and the pool's
    // own wait (20 s), so the time taken tells which of them answered.
    let args = [
        "--db-timeout-ms",
        "900",
        "--graphql-timeout-ms",
        "1000",
        "--http-timeout-ms",
        "15000",
        "--db-max-connections",
        "2",
        "--db-acquire-timeout-ms",
        "20000",
    ];
    let app = TestApp::spawn_with_args(options, &args).await;
    // Taken until the pool is at its bound with nothing idle. The `LISTEN`
    // connection may (re)connect meanwhile and take a place, so each wait
    // is bounded and the state checked again.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.pool.size() < 2 || app.pool.num_idle() > 0 {
        assert!(Instant::now() < deadline, "the pool was not exhausted within 30 s");
        if let Ok(connection) = tokio::time::timeout(Duration::from_secs(5), app.pool.acquire()).await {
            held.push(connection.unwrap());
        }
    }
    assert!(!held.is_empty());

    // Act: this one waits for the connection past its deadline.
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ users { id } }" }))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let status = response.status();
    let body: Value = response.json().await.unwrap();

    // Assert: no data, so with the newer media type the status is 504.
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT", "{body}");
    assert!(elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(10), "took {elapsed:?}");
    drop(held);
    // The server answers again once the connection is back.
    let (status, body) = app.post(None, "{ users { id } }", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_client_that_goes_away_cancels_its_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: the default DB timeout (20 s), so only the cancellation can
    // end the stuck statement within this test.
    let app = TestApp::spawn(options).await;
    let lock = lock_notes(&app.pool).await;
    let body = json!({ "query": "{ notes { id } }" }).to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut impatient = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    impatient.write_all(request.as_bytes()).await.unwrap();
    wait_for_a_lock_waiter(&app.pool).await;

    // Act: the client gives up and closes its connection.
    drop(impatient);
    let gave_up = Instant::now();

    // Assert: Postgres stops running the statement (within about a second
    // on an idle machine; the bound is for a saturated one).
    let left = statements_left_running(&app.pool, gave_up + Duration::from_secs(10)).await;
    assert_eq!(left, Vec::<String>::new(), "still running {:?} after the client left", gave_up.elapsed());
    println!("statement cancelled {:?} after the client left", gave_up.elapsed());
    // And the server answers others at once.
    lock.rollback().await.unwrap();
    let (status, body) = app.post(None, "{ notes { id } }", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn the_pool_keeps_its_minimum_of_idle_connections(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange + Act: a server told to keep 3 connections, asked nothing.
    let app = TestApp::spawn_with_args(options, &["--db-min-connections", "3"]).await;

    // Assert: the pool opens them by itself, and they stay open idle.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.pool.size() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(app.pool.size() >= 3, "the pool holds {} connections", app.pool.size());
    let open: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity where datname = current_database() and application_name = 'notegraph'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(open >= 3, "Postgres sees {open} of the server's connections");
}

/// A refused answer: its status, `Retry-After` and body.
type Refusal = (StatusCode, Option<String>, Value);

/// Clients sending `{ notes(first: 5) { id } }` back to back until
/// stopped, counting answers and keeping the first refusal.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    shed: Arc<Mutex<Option<Refusal>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let shed = Arc::new(Mutex::new(None));
        let tasks = (0..clients)
            .map(|_| {
                let (client, url) = (app.client.clone(), app.url("/graphql"));
                let (stop, answered, shed) = (Arc::clone(&stop), Arc::clone(&answered), Arc::clone(&shed));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let request = client.post(&url).json(&json!({ "query": "{ notes(first: 5) { id } }" }));
                        let response = request.send().await.unwrap();
                        let status = response.status();
                        let retry_after = response.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
                        let body: Value = response.json().await.unwrap();
                        answered.fetch_add(1, Ordering::Relaxed);
                        if status == StatusCode::SERVICE_UNAVAILABLE {
                            shed.lock().unwrap().get_or_insert((status, retry_after, body));
                            // A client told to come back later does not
                            // spin (pacing, not a wait for a condition).
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                })
            })
            .collect();
        Load { stop, answered, shed, tasks }
    }

    /// Waits (up to 60 s) until `n` more answers came.
    async fn wait_for_answers(&self, n: usize) {
        let target = self.answered.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.answered.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "fewer than {n} answers in 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> Option<Refusal> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.shed.lock().unwrap().take()
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn the_adaptive_limit_falls_while_postgres_is_slow_and_recovers_after(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: the adaptive limit (no NOTEGRAPH_MAX_CONCURRENT_REQUESTS),
    // at most 24, so that 16 clients use more than half of it (it falls
    // only while in use), and at least 4 (below the default minimum, the
    // pool's 16, so that its fall shows). Every request executes (cache off), and a
    // statement waiting on a lock ends at 300 ms: while `notes` is locked,
    // each request takes 300 ms and answers TIMEOUT, a slowness that
    // admitting more requests cannot help. 4 clients set the baseline (few
    // enough not to saturate even a busy machine's CPU), then 16 press.
    let args =
        ["--cache-enabled", "false", "--db-timeout-ms", "300", "--concurrency-min", "4", "--concurrency-max", "24"];
    let app = TestApp::spawn_with_args(options, &args).await;
    app.create_note("user-1", "A note", "body", "PUBLIC", &[]).await;
    let gentle = Load::start(&app, 4);
    gentle.wait_for_answers(400).await;
    gentle.finish().await;
    let (_, _, body) = app.metrics().await;
    let before = value(&body, "notegraph_concurrency_limit", &[]).unwrap();
    assert!(before >= 16.0, "the limit serves 16 clients at full speed: {before}");
    let load = Load::start(&app, 16);

    // Act: Postgres turns slow.
    let lock = lock_notes(&app.pool).await;

    // Assert: the limit falls, and what is over it is refused at once with
    // 503, Retry-After and SERVICE_UNAVAILABLE.
    app.wait_for_metric("notegraph_concurrency_limit", |limit| limit <= 8.0).await;
    app.wait_for_metric("notegraph_concurrency_shed_total", |shed| shed > 0.0).await;
    let (status, retry_after, body) = load.finish().await.expect("a request was shed");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE", "{body}");

    // Act: the slowness ends; the 4 clients come back.
    lock.rollback().await.unwrap();
    let gentle = Load::start(&app, 4);

    // Assert: the limit grows back, then 16 requests at once all execute.
    app.wait_for_metric("notegraph_concurrency_limit", |limit| limit >= 16.0).await;
    gentle.finish().await;
    let burst = (0..16).map(|_| app.post(None, "{ notes(first: 5) { id } }", json!({})));
    for (status, body) in futures::future::join_all(burst).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
    let (_, _, body) = app.metrics().await;
    for direction in ["direction=\"down\"", "direction=\"up\""] {
        let changes = value(&body, "notegraph_concurrency_limit_changes_total", &[direction]).unwrap_or_default();
        assert!(changes >= 1.0, "{direction}: {body}");
    }
}
