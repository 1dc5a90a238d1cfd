//! `TestApp`: the real application on `127.0.0.1:0`, a client, and typed
//! helpers for GraphQL calls and statement counting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api::{Application, Cli};
use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr};
use tokio::sync::oneshot;

/// Static tokens the test server accepts: `user-N` is user N.
const STATIC_TOKENS: &str = "test-token=1,user-1=1,user-2=2,user-3=3";

/// How long a test server's pool waits for a connection (milliseconds), in
/// place of the production 2 s: a server opens its minimum of 8 connections
/// before it serves, and on cores saturated on purpose, or during another
/// test's checkpoint, that can take longer. Tests of the acquire timeout
/// itself set their own.
pub(crate) const ACQUIRE_TIMEOUT_MS: &str = "20000";

/// The command line every test server starts with, plus `extra` flags.
fn cli(extra: &[&str]) -> Cli {
    let mut args = vec!["notegraph", "--listen", "127.0.0.1:0", "--static-tokens", STATIC_TOKENS];
    if !extra.contains(&"--db-acquire-timeout-ms") {
        args.extend(["--db-acquire-timeout-ms", ACQUIRE_TIMEOUT_MS]);
    }
    Cli::parse_from(args.into_iter().chain(extra.iter().copied()))
}

/// Whether this is the stress step (`just stress`, which sets
/// `NOTEGRAPH_STRESS=1`): the long tests run at full strength there, and a
/// reduced but real version of themselves in the default suite.
pub(crate) fn stress() -> bool {
    std::env::var_os("NOTEGRAPH_STRESS").is_some_and(|value| value == "1")
}

/// A running server; stopped when dropped.
pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    /// Where `/metrics` is served when it has a listener of its own.
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) client: reqwest::Client,
    pub(crate) pool: PgPool,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// Starts the server on a database reached with `options` (given by
    /// `sqlx::test`), with the production pool settings.
    pub(crate) async fn spawn(options: PgConnectOptions) -> TestApp {
        Self::spawn_with_args(options, &[]).await
    }

    /// Like [`TestApp::spawn`], with extra command-line flags.
    pub(crate) async fn spawn_with_args(options: PgConnectOptions, args: &[&str]) -> TestApp {
        let cli = cli(args);
        let settings = cli.config.database.settings(String::new());
        let pool = settings.pool_options().connect_with(settings.apply(options)).await.expect("connect");
        Self::start(&cli, pool).await
    }

    /// Starts the server over any pool (for example one whose database is down).
    pub(crate) async fn spawn_with_pool(pool: PgPool) -> TestApp {
        Self::start(&cli(&[]), pool).await
    }

    async fn start(cli: &Cli, pool: PgPool) -> TestApp {
        let app = Application::build(&cli.config, pool.clone()).await.expect("build app");
        Self::run(app, pool)
    }

    /// Serves `app` on the test's runtime until the `TestApp` is dropped.
    fn run(app: Application, pool: PgPool) -> TestApp {
        let addr = app.local_addr().expect("local addr");
        let metrics_addr = app.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let client = client();
        TestApp { addr, metrics_addr, client, pool, stop: Some(stop) }
    }

    /// Starts the server on its own multi-threaded runtime (two workers, as
    /// in production on these machines), so that batches, requests and
    /// their wakes cross threads; the test's own pool reads the database.
    /// `args` are extra command-line flags.
    pub(crate) async fn spawn_multi_threaded(options: PgConnectOptions, args: &[&'static str]) -> TestApp {
        let settings = cli(args).config.database.settings(String::new());
        let args = args.to_vec();
        let server_options = settings.apply(options.clone());
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
            runtime.expect("server runtime").block_on(async move {
                let pool = settings.pool_options().connect_with(server_options).await.expect("connect");
                let app = Application::build(&cli(&args).config, pool).await.expect("build app");
                ready_tx.send(app.local_addr().expect("local addr")).expect("test gone");
                let _ = app
                    .run_until_stopped(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let addr = ready_rx.await.expect("server started");
        let pool = PgPoolOptions::new().max_connections(2).connect_with(options).await.expect("connect");
        let client = client();
        TestApp { addr, metrics_addr: None, client, pool, stop: Some(stop) }
    }

    /// Like [`TestApp::spawn_with_args`], with queries reading the
    /// streaming replica at `read_url` when they may.
    pub(crate) async fn spawn_replicated(options: PgConnectOptions, read_url: &str, args: &[&str]) -> TestApp {
        let cli = cli(args);
        let settings = cli.config.database.settings(String::new());
        let pool = settings.pool_options().connect_with(settings.apply(options)).await.expect("connect");
        let read_options = settings.apply(read_url.parse().expect("replica url"));
        let read_pool = settings.pool_options().connect_lazy_with(read_options);
        let app = Application::build_replicated(&cli.config, pool.clone(), read_pool).await.expect("build app");
        Self::run(app, pool)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL request as `token` (anonymous when `None`) and
    /// returns the status and the JSON body.
    pub(crate) async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> (StatusCode, Value) {
        let mut request =
            self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.expect("json body"))
    }

    /// POSTs like [`TestApp::post`], optionally with `Cache-Control:
    /// no-cache`, and also returns the `x-cache` header.
    pub(crate) async fn post_cached(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        no_cache: bool,
    ) -> (StatusCode, String, Value) {
        let mut request =
            self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if no_cache {
            request = request.header("cache-control", "no-cache");
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let x_cache = response.headers().get("x-cache").map(|v| v.to_str().unwrap_or_default().to_owned());
        (status, x_cache.unwrap_or_default(), response.json().await.expect("json body"))
    }

    /// An anonymous query that must succeed; returns `data`.
    pub(crate) async fn data(&self, query: &str) -> Value {
        self.data_as(None, query, json!({})).await
    }

    /// A query as `token` that must succeed without errors; returns `data`.
    pub(crate) async fn data_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(token, query, variables).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// A request that must fail; returns the first error's `extensions.code`.
    pub(crate) async fn error_code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let (_, body) = self.post(token, query, variables).await;
        body["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}")).to_owned()
    }

    /// Creates a note as `token` and returns its id.
    pub(crate) async fn create_note(
        &self,
        token: &str,
        title: &str,
        body: &str,
        visibility: &str,
        tags: &[&str],
    ) -> String {
        let data = self
            .data_as(
                Some(token),
                "mutation($input: CreateNoteInput!) { createNote(input: $input) { id } }",
                json!({ "input": { "title": title, "body": body, "visibility": visibility, "tags": tags } }),
            )
            .await;
        data["createNote"]["id"].as_str().expect("id").to_owned()
    }

    /// How many times pg_stat_statements has evicted entries to make room
    /// (cluster-wide): counts taken while it evicts are not sound.
    pub(crate) async fn statement_evictions(&self) -> i64 {
        sqlx::query("create extension if not exists pg_stat_statements").execute(&self.pool).await.expect("extension");
        sqlx::query_scalar("select dealloc from pg_stat_statements_info").fetch_one(&self.pool).await.expect("dealloc")
    }

    /// Calls per statement in this test's database so far, as counted by
    /// pg_stat_statements. Left out: the counting query itself, sqlx's
    /// `pg_catalog` lookups of custom types, which it makes once per new
    /// connection (not per request) and caches, and the server's
    /// `LISTEN`/`UNLISTEN` on its notification connection, which (re)connects
    /// on its own schedule.
    pub(crate) async fn statement_calls(&self) -> BTreeMap<String, i64> {
        sqlx::query("create extension if not exists pg_stat_statements").execute(&self.pool).await.expect("extension");
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select query, calls from pg_stat_statements \
             where dbid = (select oid from pg_database where datname = current_database()) \
               and query not ilike '%pg_stat_statements%' and query not ilike '%pg_catalog.%' \
               and query not ilike 'listen %' and query not ilike 'unlisten %'",
        )
        .fetch_all(&self.pool)
        .await
        .expect("count statements");
        let mut calls = BTreeMap::new();
        for (query, n) in rows {
            *calls.entry(query).or_insert(0) += n;
        }
        calls
    }
}

impl TestApp {
    /// Sends the shutdown signal, as SIGTERM does to the binary.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The database URL of the `sqlx::test` database behind `options`: the
/// server and credentials of `DATABASE_URL`, the database the test got.
pub(crate) fn database_url(options: &PgConnectOptions) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/test.sh sets it)");
    let (server, query) = match base.split_once('?') {
        Some((server, query)) => (server.to_owned(), format!("?{query}")),
        None => (base.clone(), String::new()),
    };
    let server = server.rsplit_once('/').map(|(server, _)| server.to_owned()).unwrap_or(server);
    format!("{server}/{}{query}", options.get_database().expect("a database name"))
}

/// The suite's data directory (`NOTEGRAPH_DATA_DIR`, as scripts/test.sh
/// sets it, else the default `.notegraph` at the workspace root): where the
/// embedded Postgres is installed.
pub(crate) fn data_dir() -> std::path::PathBuf {
    std::env::var_os("NOTEGRAPH_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.notegraph"))
}

/// The ids in a list of objects, in order.
pub(crate) fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a list").iter().map(|item| item["id"].as_str().expect("id").to_owned()).collect()
}

/// `notegraph serve` on the test database with JSON logs, the development
/// credentials (whatever the caller's environment says) and `env` on top;
/// its stderr comes back as lines.
pub(crate) fn serve_process(env: &[(&str, &str)]) -> (Child, Lines<BufReader<ChildStderr>>) {
    let database_url = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/test.sh sets it)");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("NOTEGRAPH_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("NOTEGRAPH_DB_ACQUIRE_TIMEOUT_MS", ACQUIRE_TIMEOUT_MS)
        .env_remove("NOTEGRAPH_JWT_SECRET")
        .env_remove("NOTEGRAPH_STATIC_TOKENS")
        .env_remove("NOTEGRAPH_DEV")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start notegraph");
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines)
}

/// The address from the "serving" log line.
pub(crate) async fn serving_address(lines: &mut Lines<BufReader<ChildStderr>>) -> String {
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["fields"]["message"] == "serving" {
                return event["fields"]["address"].as_str().unwrap().to_owned();
            }
        }
        panic!("notegraph exited before serving");
    })
    .await
    .expect("serving within 60 s")
}

/// Waits (up to 60 s) until `at_least` backends in this test's database
/// match `condition` (SQL over `pg_stat_activity`); `what` names them in
/// the failure.
pub(crate) async fn wait_for_activity(pool: &PgPool, condition: &str, at_least: i64, what: &str) {
    let query = format!("select count(*) from pg_stat_activity where datname = current_database() and {condition}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let matching: i64 = sqlx::query_scalar(&query).fetch_one(pool).await.unwrap();
        if matching >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "not within 60 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Statements of the server's still running in this test's database:
/// neither the asking one nor a lock holder idle in its transaction, and
/// client backends only (an autovacuum worker analysing the fixtures'
/// rows shows as `active` too, and is not a statement the server left).
pub(crate) async fn running_statements(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "select query from pg_stat_activity \
         where datname = current_database() and state = 'active' and pid <> pg_backend_pid() \
           and backend_type = 'client backend'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Waits until no statement of the server's runs in this test's database,
/// or `until` passes, and returns what still runs then: an abandoned
/// request's statement ends when Postgres next checks its closed client
/// (every 500 ms), not at the instant its request ended.
pub(crate) async fn statements_left_running(pool: &PgPool, until: Instant) -> Vec<String> {
    loop {
        let running = running_statements(pool).await;
        if running.is_empty() || Instant::now() >= until {
            return running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a statement in this test's database waits for a lock: the
/// request that runs it is then in execution, stuck behind the lock.
pub(crate) async fn wait_for_a_lock_waiter(pool: &PgPool) {
    wait_for_activity(pool, "wait_event_type = 'Lock'", 1, "a statement waiting for a lock").await;
}

/// A program from a Debian package that some tests drive (`pgbouncer`,
/// `haproxy`), looked up on PATH and in /usr/sbin (where Debian installs
/// them, and which a user's PATH may lack). `None`, after saying why `test`
/// is skipped, when it is missing, unless the environment variable
/// `required` is set (as `.ci/run` does): then a missing program fails.
pub(crate) fn packaged_program(name: &str, required: &str, test: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|file| file.is_file());
    if found.is_none() {
        assert!(std::env::var_os(required).is_none(), "{required} is set but {name} is not installed");
        eprintln!("skipping {test}: {name} is not installed (Debian: apt-get install {name})");
    }
    found
}

/// The tests' HTTP client. It drops a kept-alive connection after 5 s idle:
/// the server closes one idle for `NOTEGRAPH_HEADER_READ_TIMEOUT_MS` (10 s),
/// and a request sent on it at that moment fails with an incomplete message
/// (the keep-alive race of every HTTP client). Tests that pause between
/// bursts on one client (the statement counts' phases) met it on saturated
/// cores.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}
