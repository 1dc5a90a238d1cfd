//! Browsers on other origins (`NOTEGRAPH_CORS_ORIGINS`): a page served
//! from a second origin calls `/graphql` and `/graphql/stream` with an
//! `Authorization` header in headless Chromium and gets data when its
//! origin is listed, and is blocked by the browser when it is not. Plus
//! what plain HTTP can check: the preflight's answer, `Vary: Origin`, and
//! the settings a browser would refuse stopping start-up.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::chromium::Chromium;
use crate::helpers::{TestApp, serve_process};

/// Serves a blank page on a random loopback port, as a web app's own
/// origin would; returns its port.
async fn page_origin() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = axum::Router::new().route(
        "/",
        axum::routing::get(|| async { axum::response::Html("<!doctype html><title>web app</title><p>web app") }),
    );
    tokio::spawn(async move { axum::serve(listener, page).await.unwrap() });
    port
}

/// What the page's script gets from `fetch`: the answer's status, its
/// `x-cache` header (readable only if exposed) and body, or the browser's
/// error when CORS blocks it.
fn fetch_graphql(api: &str) -> String {
    format!(
        "fetch({url:?}, {{ method: 'POST', headers: {{ 'content-type': 'application/json', \
           authorization: 'Bearer test-token' }}, body: JSON.stringify({{ query: '{{ me {{ id }} notes(first: 1) {{ id }} }}' }}) }})
           .then(async (r) => ({{ status: r.status, xCache: r.headers.get('x-cache'), body: await r.json() }}))
           .catch((e) => ({{ blocked: String(e) }}))",
        url = format!("{api}/graphql")
    )
}

/// A subscription over graphql-sse from the page: the stream's status and
/// content type once it opens, or the browser's error.
fn open_stream(api: &str) -> String {
    format!(
        "(async () => {{ const stop = new AbortController(); try {{
           const r = await fetch({url:?}, {{ method: 'POST', signal: stop.signal, headers: {{
             'content-type': 'application/json', accept: 'text/event-stream', authorization: 'Bearer test-token' }},
             body: JSON.stringify({{ query: 'subscription {{ noteCreated {{ id }} }}' }}) }});
           return {{ status: r.status, type: r.headers.get('content-type') }};
         }} catch (e) {{ return {{ blocked: String(e) }}; }} finally {{ stop.abort(); }} }})()",
        url = format!("{api}/graphql/stream")
    )
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_page_on_a_listed_origin_reads_the_api_and_any_other_origin_is_blocked_in_a_real_browser(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(chromium) = Chromium::find("the CORS browser test") else { return };
    // Arrange: the web app's origin is http://127.0.0.1:<port>; the same
    // page reached as http://localhost:<port> is another origin.
    let port = page_origin().await;
    let listed = format!("http://127.0.0.1:{port}");
    let app = TestApp::spawn_with_args(options, &["--cors-origins", &listed]).await;
    let api = app.url("").trim_end_matches('/').to_owned();
    let mut page = chromium.launch(800, 600).await;

    for (origin, allowed) in [(listed.clone(), true), (format!("http://localhost:{port}"), false)] {
        // Act
        page.call("Page.navigate", json!({ "url": format!("{origin}/") })).await;
        let loaded = format!("location.origin === {origin:?} && document.readyState === 'complete'");
        page.wait_for("the web app's page", &loaded, Duration::from_secs(60)).await;
        let answer = page.evaluate(&fetch_graphql(&api)).await;
        let stream = page.evaluate(&open_stream(&api)).await;

        // Assert
        if allowed {
            assert_eq!(answer["status"], 200, "{origin}: {answer}");
            assert_eq!(answer["body"]["data"]["me"]["id"], "1", "{origin}: the token was sent: {answer}");
            assert_eq!(answer["body"]["data"]["notes"].as_array().map(Vec::len), Some(1), "{answer}");
            assert_eq!(answer["xCache"], "miss", "{origin}: x-cache is exposed: {answer}");
            assert_eq!(stream["status"], 200, "{origin}: {stream}");
            assert!(stream["type"].as_str().unwrap_or_default().starts_with("text/event-stream"), "{stream}");
        } else {
            assert!(answer["blocked"].as_str().is_some_and(|e| e.contains("Failed to fetch")), "{origin}: {answer}");
            assert!(stream["blocked"].is_string(), "{origin}: {stream}");
        }
    }
}

/// A preflight as a browser sends it before a POST with a JSON body and a
/// bearer token.
async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).map(|v| v.to_str().unwrap()).unwrap_or_default()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn preflights_answer_listed_origins_only_and_every_answer_varies_by_origin(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let origin = "https://app.example.com";
    let app =
        TestApp::spawn_with_args(options, &["--cors-origins", "https://app.example.com,http://localhost:3000"]).await;

    for path in ["/graphql", "/graphql/stream"] {
        let allowed = preflight(&app, path, origin).await;
        assert!(allowed.status().is_success(), "{path}: {}", allowed.status());
        assert_eq!(header(&allowed, "access-control-allow-origin"), origin, "{path}");
        let headers = header(&allowed, "access-control-allow-headers").to_ascii_lowercase();
        assert!(headers.contains("authorization") && headers.contains("content-type"), "{path}: {headers}");
        assert!(header(&allowed, "access-control-allow-methods").contains("POST"), "{path}");
        assert_eq!(header(&allowed, "access-control-max-age"), "600", "{path}");
        assert_eq!(header(&allowed, "access-control-allow-credentials"), "", "{path}: credentials are opt-in");

        let refused = preflight(&app, path, "https://evil.example").await;
        assert_eq!(header(&refused, "access-control-allow-origin"), "", "{path}: an unlisted origin is not allowed");
    }

    // A request from a listed origin: allowed, with the headers a client
    // reads exposed, and marked as varying by origin for any cache between.
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("origin", origin)
        .json(&json!({ "query": "{ notes(first: 1) { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "access-control-allow-origin"), origin);
    assert!(header(&response, "access-control-expose-headers").contains("x-cache"));
    let exposed = header(&response, "access-control-expose-headers").to_ascii_lowercase();
    assert!(exposed.contains("ratelimit-policy") && exposed.contains("ratelimit,"), "the budget's headers: {exposed}");
    assert!(header(&response, "vary").to_ascii_lowercase().contains("origin"));
    // Not a CORS route: no CORS headers.
    let health = app.client.get(app.url("/healthz")).header("origin", origin).send().await.unwrap();
    assert_eq!(header(&health, "access-control-allow-origin"), "");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn without_origins_no_cors_headers_are_sent(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let answer = preflight(&app, "/graphql", "https://app.example.com").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), "");
    let body: Value = answer.json().await.unwrap_or_default();
    assert!(body["errors"][0]["extensions"]["code"].is_string() || body.is_null(), "{body}");
}

#[tokio::test]
async fn settings_a_browser_would_refuse_stop_start_up_with_the_fix() {
    for (env, says) in [
        (vec![("NOTEGRAPH_CORS_ORIGINS", "*"), ("NOTEGRAPH_CORS_ALLOW_CREDENTIALS", "true")], "list the origins"),
        (vec![("NOTEGRAPH_CORS_ORIGINS", "https://app.example.com/")], "scheme://host[:port]"),
    ] {
        let (mut child, mut lines) = serve_process(&env);
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits").unwrap();
        assert!(!status.success(), "{env:?} started");
        let mut said = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            said.push_str(&line);
            said.push('\n');
        }
        assert!(said.contains(says) && said.contains("NOTEGRAPH_CORS"), "{env:?}: {said}");
    }
}
