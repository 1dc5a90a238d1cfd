//! HTTP behaviour: the graphql-http audit, GET rules, media types, probes,
//! and a database that is down.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

fn repo_path(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn graphql_http_audit_passes(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let dir = repo_path("tests/http-audit");
    assert!(dir.join("node_modules").exists(), "run `npm ci` in tests/http-audit (scripts/test.sh does)");
    let output = tokio::process::Command::new("node")
        .arg(dir.join("audit.mjs"))
        .arg(app.url("/graphql"))
        .output()
        .await
        .expect("run node");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "audit failed:\n{report}\n{}", String::from_utf8_lossy(&output.stderr));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn get_runs_queries_and_refuses_mutations(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let ok =
        app.client.get(app.url("/graphql")).query(&[("query", "{ user(id: \"1\") { name } }")]).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.json::<Value>().await.unwrap(), json!({ "data": { "user": { "name": "Ada Lovelace" } } }));

    // Anonymous, and named without `operationName` (the engine runs the
    // only operation either way, so both must be refused).
    for mutation in ["mutation { deleteNote(id: \"1\") }", "mutation Delete { deleteNote(id: \"1\") }"] {
        let refused = app.client.get(app.url("/graphql")).query(&[("query", mutation)]).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED, "{mutation}");
        assert_eq!(refused.headers()["allow"], "POST");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn media_types_and_status_codes_follow_the_spec(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let post = |accept: &'static str, body: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .header(ACCEPT, accept)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
    };
    let new_type = "application/graphql-response+json";

    let ok = post(new_type, r#"{"query":"{ me { id } }"}"#).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert!(ok.headers()[CONTENT_TYPE].to_str().unwrap().starts_with(new_type));

    // A document that does not validate: 400 with the new type, no `data`.
    let invalid = post(new_type, r#"{"query":"{ nope }"}"#).await.unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    let body: Value = invalid.json().await.unwrap();
    assert!(body.get("data").is_none());
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    // The same with the legacy type: 200.
    let legacy = post("application/json", r#"{"query":"{ nope }"}"#).await.unwrap();
    assert_eq!(legacy.status(), StatusCode::OK);
    assert!(legacy.headers()[CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));

    assert_eq!(post(new_type, "{not json").await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(post(new_type, r#"{"variables":{}}"#).await.unwrap().status(), StatusCode::BAD_REQUEST);
    assert_eq!(post("text/html", r#"{"query":"{ me { id } }"}"#).await.unwrap().status(), StatusCode::NOT_ACCEPTABLE);

    let form = app.client.post(app.url("/graphql")).header(CONTENT_TYPE, "text/plain").body("{ me { id } }");
    assert_eq!(form.send().await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let huge = format!(r#"{{"query":"{{ me {{ id }} }}","variables":{{"pad":"{}"}}}}"#, "x".repeat(2 * 1024 * 1024));
    let too_big = app.client.post(app.url("/graphql")).header(CONTENT_TYPE, "application/json").body(huge);
    let too_big = too_big.send().await.unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = too_big.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn probes_graphiql_and_unknown_paths(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let graphiql = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(graphiql.status(), StatusCode::OK);
    assert!(graphiql.text().await.unwrap().contains("graphiql"));
    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_database_that_is_down_is_service_unavailable_quickly() {
    // Nothing listens on port 1; the pool gives up after its acquire timeout.
    let settings = db::Settings {
        url: "postgres://nobody:nothing@127.0.0.1:1/none".into(),
        max_connections: 2,
        min_connections: 0,
        max_lifetime: Duration::from_secs(1800),
        statement_cache: 100,
        acquire_timeout: Duration::from_millis(500),
        statement_timeout: Duration::from_secs(1),
        hnsw_ef_search: 40,
        hnsw_max_scan_tuples: 20_000,
        exact_tag_notes: 2_000,
        ivfflat_probes: 10,
    };
    let pool = settings.pool_options().connect_lazy_with(settings.connect_options().unwrap());
    let app = TestApp::spawn_with_pool(pool).await;

    let started = Instant::now();
    let (status, body) = app.post(None, "{ users { id } }", json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE", "{body}");
    let text = body.to_string();
    assert!(!text.contains("127.0.0.1") && !text.to_lowercase().contains("connection refused"), "leaks: {text}");

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn only_responses_of_a_packet_or_more_are_compressed(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    for i in 0..10 {
        app.create_note("user-1", &format!("Note {i}"), &"a long body ".repeat(40), "PUBLIC", &[]).await;
    }
    let ask = |query: &'static str| {
        app.client.post(app.url("/graphql")).header("accept-encoding", "gzip").json(&json!({ "query": query })).send()
    };

    let small = ask(r#"{ user(id: "1") { name } }"#).await.unwrap();
    let large = ask("{ notes(first: 10) { title body } }").await.unwrap();

    assert_eq!(small.headers().get("content-encoding"), None);
    assert_eq!(large.headers()["content-encoding"], "gzip");
}
