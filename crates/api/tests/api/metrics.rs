//! `/metrics`: the Prometheus text format that promtool accepts, series a
//! user would look for after real traffic (HTTP, GraphQL operations, SQL
//! statements, loader batches, cache, pool, process), a bounded number of
//! operation names, and a real Prometheus scraping the server.
//!
//! promtool and Prometheus come from Debian's `prometheus` package. Without
//! them the tests that need them skip, unless `NOTEGRAPH_REQUIRE_PROMETHEUS`
//! is set (as `.ci/run` does).

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use crate::helpers::TestApp;

/// Set by `.ci/run`: there, a missing promtool or Prometheus fails.
const REQUIRED: &str = "NOTEGRAPH_REQUIRE_PROMETHEUS";

/// `name` on `PATH`, or `None` after saying why `test` is skipped.
fn tool(name: &str, test: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|dir| dir.join(name)).find(|file| file.is_file());
    if found.is_none() {
        assert!(std::env::var_os(REQUIRED).is_none(), "{REQUIRED} is set but {name} is not on PATH");
        eprintln!("skipping {test}: {name} is not on PATH (Debian: apt-get install prometheus)");
    }
    found
}

impl TestApp {
    /// `GET /metrics`: the status, the content type and the body.
    pub(crate) async fn metrics(&self) -> (reqwest::StatusCode, String, String) {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        let status = response.status();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        (status, content_type, response.text().await.unwrap())
    }

    /// The first series of `family` on `/metrics` (0 when absent).
    pub(crate) async fn metric(&self, family: &str) -> f64 {
        let (_, _, body) = self.metrics().await;
        value(&body, family, &[]).unwrap_or(0.0)
    }

    /// Waits (up to 60 s) until `family` on `/metrics` satisfies `done`.
    pub(crate) async fn wait_for_metric(&self, family: &str, done: impl Fn(f64) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self.metric(family).await;
            if done(seen) {
                return;
            }
            assert!(Instant::now() < deadline, "{family} stayed at {seen} for 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The value of the first series of `family` whose labels include every
/// one of `labels` (`name="value"` each).
pub(crate) fn value(body: &str, family: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")) || line.starts_with(&format!("{family} ")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn metrics_count_what_a_query_did_and_pass_promtool(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn(options).await;
    let query = "query NotesWithAuthors { notes(first: 5) { id author { name noteCount } tags { name } } }";

    // Act: the same query twice (a miss, then a cache hit), then a scrape.
    let mut x_cache = Vec::new();
    for _ in 0..2 {
        let request = json!({ "query": query, "operationName": "NotesWithAuthors" });
        let response =
            app.client.post(app.url("/graphql")).bearer_auth("test-token").json(&request).send().await.unwrap();
        x_cache.push(response.headers()["x-cache"].to_str().unwrap().to_owned());
    }
    assert_eq!(x_cache, ["miss", "hit"]);
    let (status, content_type, body) = app.metrics().await;

    // Assert: the series a user would look for, with the counts the two
    // requests made.
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let graphql = ["route=\"/graphql\"", "method=\"POST\"", "status=\"200\""];
    assert_eq!(value(&body, "notegraph_http_requests_total", &graphql), Some(2.0), "{body}");
    let bucket = ["route=\"/graphql\"", "le=\"10\""];
    assert_eq!(value(&body, "notegraph_http_request_duration_seconds_bucket", &bucket), Some(2.0));
    let operation = ["operation=\"NotesWithAuthors\"", "type=\"query\"", "code=\"OK\""];
    assert_eq!(value(&body, "notegraph_graphql_operations_total", &operation), Some(1.0), "{body}");
    assert_eq!(value(&body, "notegraph_response_cache_hits_total", &[]), Some(1.0));
    assert_eq!(value(&body, "notegraph_response_cache_misses_total", &[]), Some(1.0));
    // The miss read the notes with their authors and tags in one
    // statement, then the authors' counts through a loader batch. (The
    // counters are process-wide: lower bounds, but this test alone makes
    // them non-zero.)
    let batch = ["loader=\"note_count_by_author\""];
    assert!(value(&body, "notegraph_loader_batch_size_count", &batch).unwrap_or_default() >= 1.0, "{body}");
    assert!(value(&body, "notegraph_loader_loads_total", &batch).unwrap_or_default() >= 1.0);
    for statement in ["statement=\"notes.list_with_authors_and_tags\"", "statement=\"notes.count_by_authors\""] {
        assert!(value(&body, "notegraph_sql_statements_total", &[statement]).unwrap_or_default() >= 1.0, "{body}");
    }
    // The document was parsed once and kept, counted as at least 1 KiB.
    assert_eq!(value(&body, "notegraph_parsed_documents_entries", &[]), Some(1.0), "{body}");
    assert!(value(&body, "notegraph_parsed_documents_bytes", &[]).unwrap_or_default() >= 1024.0, "{body}");
    let primary = ["pool=\"primary\""];
    assert!(value(&body, "notegraph_db_pool_connections", &primary).unwrap_or_default() >= 1.0, "{body}");
    assert!(value(&body, "notegraph_db_pool_max_connections", &primary).unwrap_or_default() >= 1.0, "{body}");
    // No replica configured: no replica pool reported.
    assert!(!body.contains("pool=\"replica\""), "{body}");
    // Each of the miss's statements waited for its connection once.
    let acquired = value(&body, "notegraph_db_pool_acquire_duration_seconds_count", &[]).unwrap_or_default();
    assert!(acquired >= 2.0, "{body}");
    assert!(body.contains("notegraph_db_pool_waiting "), "{body}");
    assert!(value(&body, "process_resident_memory_bytes", &[]).unwrap_or_default() > 0.0, "{body}");
    assert!(body.contains("notegraph_subscriptions_open "), "{body}");
    assert!(body.contains("notegraph_embedding_calls_total") || body.contains("notegraph_embedding_call_duration"));

    let Some(promtool) = tool("promtool", "metrics_count_what_a_query_did_and_pass_promtool") else { return };
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(body.as_bytes()).await.unwrap();
    let output = check.wait_with_output().await.unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && report.trim().is_empty(), "promtool check metrics: {report}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn three_hundred_operation_names_leave_a_bounded_number_of_series(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn_with_args(options, &["--metrics-max-operation-names", "50"]).await;

    // Act: 300 operations, each with a name of its own: six times the cap.
    let requests = futures::stream::iter(0..300).map(|i| {
        let app = &app;
        async move { app.data(&format!("query Operation{i} {{ __typename }}")).await }
    });
    requests.buffer_unordered(16).collect::<Vec<_>>().await;
    let (_, _, body) = app.metrics().await;

    // Assert: 50 names of their own, the rest as `other`; every operation counted.
    let counted: Vec<(String, f64)> = body
        .lines()
        .filter(|line| line.starts_with("notegraph_graphql_operations_total{"))
        .map(|line| {
            let name = line.split("operation=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
            (name, line.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .collect();
    let names: BTreeSet<&str> = counted.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.len(), 51, "{names:?}");
    assert!(names.contains("other"));
    assert_eq!(counted.iter().map(|(_, n)| n).sum::<f64>(), 300.0);
    let duration_series =
        body.lines().filter(|l| l.starts_with("notegraph_graphql_operation_duration_seconds_count")).count();
    assert_eq!(duration_series, 51);
}

/// The values a label takes in the series of `family`.
fn label_values(body: &str, family: &str, label: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")))
        .filter_map(|line| Some(line.split(&format!("{label}=\"")).nth(1)?.split('"').next()?.to_owned()))
        .collect()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn hostile_methods_and_junk_operation_names_cannot_grow_the_series(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: room for three operation names.
    let app = TestApp::spawn_with_args(options, &["--metrics-max-operation-names", "3"]).await;

    // Act: 100 invented methods; then 50 named operations that do not
    // validate (an unknown field) or do not parse, sent before any real one;
    // then three real named operations.
    for i in 0..100 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        app.client.request(method, app.url("/graphql")).send().await.unwrap();
    }
    for i in 0..50 {
        let query =
            if i % 2 == 0 { format!("query Junk{i} {{ noSuchField }}") } else { format!("query Junk{i} {{ notes(") };
        let response = app.client.post(app.url("/graphql")).json(&json!({ "query": query })).send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"][0]["extensions"]["code"].is_string(), "{body}");
    }
    for name in ["Real1", "Real2", "Real3"] {
        app.data(&format!("query {name} {{ __typename }}")).await;
    }
    let (_, _, body) = app.metrics().await;

    // Assert: one `other` method besides the real one; the real names got
    // the three slots, every junk name is `other`, and everything was counted.
    let methods = label_values(&body, "notegraph_http_requests_total", "method");
    assert_eq!(methods, BTreeSet::from(["POST".to_owned(), "other".to_owned()]), "{body}");
    let names = label_values(&body, "notegraph_graphql_operations_total", "operation");
    // (A document that does not parse names no operation: `anonymous`.)
    let expected = ["Real1", "Real2", "Real3", "anonymous", "other"].map(str::to_owned);
    assert_eq!(names, BTreeSet::from(expected), "{body}");
    let other = ["route=\"/graphql\"", "method=\"other\""];
    assert_eq!(value(&body, "notegraph_http_requests_total", &other), Some(100.0), "{body}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_real_prometheus_scrapes_the_server_and_answers_a_query(_: PgPoolOptions, options: PgConnectOptions) {
    let Some(prometheus) = tool("prometheus", "a_real_prometheus_scrapes_the_server_and_answers_a_query") else {
        return;
    };
    // Arrange: the server with `/metrics` on a listener of its own, and a
    // Prometheus scraping it every second.
    let app = TestApp::spawn_with_args(options, &["--metrics-listen", "127.0.0.1:0"]).await;
    let metrics_addr = app.metrics_addr.expect("metrics listener");
    let (status, _, _) = app.metrics().await;
    assert_eq!(status, 404, "/metrics left the main listener");
    app.data("query Tags { tags(first: 3) { name } }").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let scrape = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: notegraph\n    static_configs:\n      - targets: ['{metrics_addr}']\n"
    );
    std::fs::write(&config, scrape).unwrap();
    // Its web listener on a free port of its choosing, which it logs.
    let mut prometheus = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let web = prometheus_address(prometheus.stderr.take().unwrap()).await;

    // Act: ask Prometheus until its first scrapes are in (bounded).
    let query = "sum by (operation) (notegraph_graphql_operations_total)";
    let url = format!("http://{web}/api/v1/query");
    let mut answer = Value::Null;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(response) = app.client.get(&url).query(&[("query", query)]).send().await else { continue };
        answer = response.json().await.unwrap_or_default();
        if answer["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
    }

    // Assert
    assert_eq!(answer["status"], "success", "{answer}");
    let result = &answer["data"]["result"][0];
    assert_eq!(result["metric"]["operation"], "Tags", "{answer}");
    assert_eq!(result["value"][1], "1", "{answer}");
}

/// The address in Prometheus's `msg="Listening on" address=...` log line;
/// the rest of its log is read (and dropped) in the background, so that it
/// never blocks on a full pipe.
async fn prometheus_address(stderr: tokio::process::ChildStderr) -> String {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut printed = Vec::new();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(r#"msg="Listening on""#)
                && let Some(address) = line.split(' ').find_map(|field| field.strip_prefix("address="))
            {
                return address.to_owned();
            }
            printed.push(line);
        }
        panic!("prometheus exited before listening:\n{}", printed.join("\n"));
    })
    .await
    .expect("prometheus listening within 60 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    address
}

/// `deploy/` beside the workspace.
fn deploy(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(path)
}

#[tokio::test]
async fn the_alert_rules_load_and_fire_on_the_series_they_watch() {
    let Some(promtool) = tool("promtool", "the_alert_rules_load_and_fire_on_the_series_they_watch") else { return };
    for args in [["check", "rules", "prometheus/alerts.yml"], ["test", "rules", "prometheus/alerts_test.yml"]] {
        let output = Command::new(&promtool).args(args).current_dir(deploy("")).output().await.unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "promtool {}: {report}", args.join(" "));
    }
}

#[tokio::test]
async fn every_dashboard_query_is_valid_promql_over_our_series() {
    let Some(promtool) = tool("promtool", "every_dashboard_query_is_valid_promql_over_our_series") else { return };
    // Arrange: each panel query as a recording rule, which promtool parses.
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/dashboards/notegraph.json")).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().iter())
        .map(|target| target["expr"].as_str().unwrap().replace("$__rate_interval", "5m"))
        .collect();
    assert!(exprs.len() >= 15, "the dashboard has its panels");
    let rules: Vec<Value> =
        exprs.iter().enumerate().map(|(i, expr)| json!({ "record": format!("panel:{i}"), "expr": expr })).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("panels.yml");
    std::fs::write(&file, json!({ "groups": [{ "name": "panels", "rules": rules }] }).to_string()).unwrap();

    // Act
    let output = Command::new(promtool).arg("check").arg("rules").arg(&file).output().await.unwrap();

    // Assert: valid, and reading our series.
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    for expr in &exprs {
        assert!(expr.contains("notegraph_") || expr.contains("process_"), "{expr}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn only_the_configured_hot_fields_are_timed(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange
    let app = TestApp::spawn_with_args(options, &["--metrics-hot-fields", "Note.author,Query.notes"]).await;

    // Act
    app.data("{ notes(first: 4) { id title author { name } } }").await;
    let (_, _, body) = app.metrics().await;

    // Assert: one sample per resolved hot field, nothing for the others.
    let family = "notegraph_graphql_field_duration_seconds_count";
    assert_eq!(value(&body, family, &["field=\"Note.author\""]), Some(4.0), "{body}");
    assert_eq!(value(&body, family, &["field=\"Query.notes\""]), Some(1.0));
    assert_eq!(body.lines().filter(|l| l.starts_with(family)).count(), 2, "{body}");
}
