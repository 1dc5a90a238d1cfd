//! GraphiQL at `/`, in a real browser: it loads from the server alone,
//! runs a query and a subscription when a person clicks ▶, and breaks none
//! of its own Content-Security-Policy. Plus what plain HTTP can check: the
//! headers of the page and of its assets.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::chromium::{Chromium, Page};
use crate::helpers::TestApp;

/// Collects the page's CSP violations, installed before any page script.
const RECORD_VIOLATIONS: &str = "window.__violations = []; \
    document.addEventListener('securitypolicyviolation', \
      (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));";

/// The query editor's CodeMirror, present once GraphiQL has rendered.
const QUERY_EDITOR: &str = ".graphiql-query-editor .CodeMirror";
/// The text of the result pane as the page shows it.
const RESULT_TEXT: &str = "document.querySelector('.graphiql-response').innerText";

/// Waits until GraphiQL has parsed what the editor holds: it reads the
/// operation's kind (query or subscription, hence HTTP or WebSocket) from
/// its last parse, which trails edits by 100 ms.
async fn wait_until_parsed(page: &mut Page) {
    let parsed = format!(
        "(() => {{ const cm = document.querySelector({QUERY_EDITOR:?}).CodeMirror; \
         return cm.documentAST?.loc.source.body === cm.getValue(); }})()"
    );
    page.wait_for("GraphiQL to parse the query", &parsed, Duration::from_secs(30)).await;
}

/// Replaces the query in the editor, as typing would.
async fn set_query(page: &mut Page, query: &str) {
    page.evaluate(&format!("document.querySelector({QUERY_EDITOR:?}).CodeMirror.setValue({query:?})")).await;
    wait_until_parsed(page).await;
}

/// True while GraphiQL runs an operation: its ▶ button is then ■ (and a
/// click would stop it).
const RUNNING: &str = "document.querySelector('.graphiql-execute-button').ariaLabel.startsWith('Stop')";

/// Clicks ▶ and waits until the result pane shows `expected`; returns the
/// pane's text. When 5 s after a click nothing runs and the pane does not
/// show it (on a busy machine the first click once started nothing within
/// a minute, in CI and here), ▶ is clicked again, for a minute, and what
/// the pane showed is said on stderr.
async fn run_until_shown(page: &mut Page, expected: &str) -> String {
    let shown = format!("(() => {{ const t = {RESULT_TEXT}; return t.includes({expected:?}) ? t : null; }})()");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for attempt in 1.. {
        if page.evaluate(RUNNING).await != true {
            if attempt > 1 {
                let pane = page.evaluate(RESULT_TEXT).await;
                eprintln!("no {expected:?} after click {}, the pane shows {pane}: clicking ▶ again", attempt - 1);
            }
            page.click(".graphiql-execute-button").await;
        }
        let limit = Duration::from_secs(5).min(deadline - tokio::time::Instant::now());
        if let Some(text) = page.poll_for(&shown, limit).await {
            return text.to_string();
        }
        assert!(tokio::time::Instant::now() < deadline, "no {expected:?} in the result pane within 60 s");
    }
    unreachable!()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn graphiql_runs_queries_and_subscriptions_in_a_real_browser_from_the_server_alone(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(chromium) = Chromium::find("the GraphiQL browser test") else { return };
    let app = TestApp::spawn(options).await;
    let expected = app.data("{ notes(first: 1) { title } }").await;
    let title = expected["notes"][0]["title"].as_str().unwrap().to_owned();
    let mut page = chromium.launch(1280, 800).await;
    page.call("Page.enable", json!({})).await;
    page.call("Page.addScriptToEvaluateOnNewDocument", json!({ "source": RECORD_VIOLATIONS })).await;
    page.call("Network.enable", json!({})).await;
    page.call("Page.navigate", json!({ "url": app.url("/") })).await;
    page.wait_for(
        "query editor",
        &format!("document.querySelector({QUERY_EDITOR:?}) !== null"),
        Duration::from_secs(90),
    )
    .await;

    // The query the page opens with runs as it is.
    let welcome = page.evaluate(&format!("document.querySelector({QUERY_EDITOR:?}).CodeMirror.getValue()")).await;
    assert!(welcome.as_str().unwrap().contains("notes(first: 3)"), "{welcome}");
    wait_until_parsed(&mut page).await;
    let shown = run_until_shown(&mut page, "\"notes\"").await;
    assert!(!shown.contains("errors"), "{shown}");
    let shot = page.screenshot().await;

    // A query, run with the ▶ button: the page shows what the API answers.
    set_query(&mut page, "{ notes(first: 1) { title } }").await;
    let shown = run_until_shown(&mut page, &title).await;
    let response =
        page.evaluate("document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()").await;
    let response: Value = serde_json::from_str(response.as_str().unwrap()).unwrap();
    assert_eq!(response, json!({ "data": expected }), "the page shows {shown}");

    // A subscription over the WebSocket endpoint: the page shows a note
    // created through the API once the subscription is live.
    let subscription = "subscription { noteEvents(limit: 1) { kind note { title } } }";
    set_query(&mut page, subscription).await;
    let arrived = "document.querySelector('.graphiql-response').innerText.includes('Written in the API')";
    // Notes keep coming until one is shown, for up to a minute: the page
    // subscribes some time after the click, and CI machines are busy.
    let mut delivered = false;
    let mut clicked: Option<tokio::time::Instant> = None;
    for _ in 0..120 {
        // Not subscribed 5 s after a click (one that started nothing, as
        // above), or never clicked: ▶ subscribes.
        let idle = clicked.is_none_or(|at| at.elapsed() > Duration::from_secs(5));
        if idle && page.evaluate(RUNNING).await != true && page.evaluate(arrived).await != true {
            if clicked.is_some() {
                eprintln!("GraphiQL did not subscribe on click: clicking ▶ again");
            }
            page.click(".graphiql-execute-button").await;
            clicked = Some(tokio::time::Instant::now());
        }
        app.create_note("user-1", "Written in the API", "shown in GraphiQL", "PUBLIC", &[]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if page.evaluate(arrived).await == true {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "no event in the page: {}", page.evaluate(RESULT_TEXT).await);
    assert!(page.evaluate(RESULT_TEXT).await.as_str().unwrap().contains("CREATED"));

    // Everything came from the server itself, and nothing broke its CSP.
    let origin = app.url("/");
    let requested: Vec<String> = page
        .events
        .iter()
        .filter_map(|event| match event["method"].as_str() {
            Some("Network.requestWillBeSent") => event["params"]["request"]["url"].as_str(),
            Some("Network.webSocketCreated") => event["params"]["url"].as_str(),
            _ => None,
        })
        .map(str::to_owned)
        .collect();
    let ws_origin = origin.replacen("http://", "ws://", 1);
    let foreign: Vec<&String> = requested
        .iter()
        .filter(|url| !url.starts_with(&origin) && !url.starts_with(&ws_origin) && !url.starts_with("data:"))
        .collect();
    assert!(foreign.is_empty(), "requests to other origins: {foreign:#?}");
    assert!(requested.iter().any(|url| url.starts_with(&format!("{ws_origin}graphql/ws"))), "{requested:#?}");
    assert_eq!(page.evaluate("window.__violations").await, json!([]), "CSP violations");

    // The policy is in force: an inline script is refused.
    let inject = "(() => { const s = document.createElement('script'); \
                  s.textContent = 'window.__ran = true'; document.body.append(s); })()";
    page.evaluate(inject).await;
    let refused = page.wait_for("the inline script's refusal", "window.__violations[0]", Duration::from_secs(30)).await;
    assert_eq!(refused, "script-src-elem inline");
    assert_eq!(page.evaluate("window.__ran === true").await, false);

    // docs/graphiql.png is a copy: refresh it when the page changes.
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("graphiql.png");
    std::fs::write(&path, shot).unwrap();
    eprintln!("GraphiQL screenshot: {}", path.display());
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn graphiql_page_forbids_other_origins_and_its_assets_are_cached_for_good(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;

    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{csp}");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"data-endpoint="/graphql""#) && html.contains(r#"data-subscription-endpoint="/graphql/ws""#)
    );

    let assets: Vec<&str> = html.split('"').filter(|part| part.starts_with("/assets/")).collect();
    assert!(assets.iter().any(|a| a.starts_with("/assets/graphiql.min.") && a.ends_with(".js")), "{assets:?}");
    for asset in &assets {
        let response = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable", "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }

    // Another version's name is not ours to serve.
    let stale = app.client.get(app.url("/assets/graphiql.min.0000000000000000.js")).send().await.unwrap();
    assert_eq!(stale.status(), 404);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn graphiql_follows_introspection_unless_set(_: PgPoolOptions, options: PgConnectOptions) {
    let cases: [(&[&str], u16); 4] = [
        (&[], 200),
        (&["--env", "production"], 404),
        (&["--env", "production", "--graphiql", "true"], 200),
        (&["--graphiql", "false"], 404),
    ];
    for (args, status) in cases {
        let app = TestApp::spawn_with_args(options.clone(), args).await;

        let page = app.client.get(app.url("/")).send().await.unwrap();
        let asset = app.client.get(app.url("/assets/graphiql.css")).send().await.unwrap();

        assert_eq!(page.status(), status, "{args:?}");
        if status == 404 {
            assert_eq!(asset.status(), 404, "{args:?}: no assets without the page");
            let body: serde_json::Value = page.json().await.unwrap();
            assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "{args:?}");
        }
        // The API itself answers either way.
        assert_eq!(app.data("{ __typename }").await["__typename"], "Query", "{args:?}");
    }
}
