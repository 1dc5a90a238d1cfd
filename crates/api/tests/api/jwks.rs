//! Tokens from an identity provider, end to end: a `notegraph serve`
//! process verifies RS256, ES256 and EdDSA tokens against a JWKS served
//! over HTTPS by the test (a throw-away CA, trusted by the server through
//! `SSL_CERT_FILE`), which rotates its keys and counts its fetches.
//! `src/auth/tests.rs` covers the same rules in finer detail.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{BufReader, Lines};
use tokio::process::{Child, ChildStderr};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::helpers::{database_url, serve_process, serving_address};
use crate::signing_keys::{SigningKey, at, hs256, jwks, unsigned};
use crate::tls::{Authority, serve_https};

const ISSUER: &str = "https://idp.test/realms/notegraph";
const AUDIENCE: &str = "notegraph-api";

/// The provider's JWKS endpoint: its document and status are the test's
/// to change, and it counts the fetches it answers.
struct Provider {
    document: Arc<Mutex<Value>>,
    status: Arc<AtomicU16>,
    fetches: Arc<AtomicUsize>,
    url: String,
    /// The CA that signed its certificate, PEM, in `_dir`.
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Provider {
    async fn serve(keys: &[&SigningKey]) -> Provider {
        let (document, status, fetches) =
            (Arc::new(Mutex::new(jwks(keys))), Arc::new(AtomicU16::new(200)), Arc::new(AtomicUsize::new(0)));
        let state = (document.clone(), status.clone(), fetches.clone());
        let router = axum::Router::new().route(
            "/protocol/openid-connect/certs",
            axum::routing::get(move || {
                let (document, status, fetches) = state.clone();
                async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let status = axum::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                    (status, axum::Json(document.lock().unwrap().clone()))
                }
            }),
        );
        let authority = Authority::new("JWKS test CA");
        let address = serve_https(router, &authority.server(&["localhost", "127.0.0.1"])).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = authority.write_cert(dir.path(), "ca.pem");
        let url = format!("https://127.0.0.1:{}/protocol/openid-connect/certs", address.port());
        Provider { document, status, fetches, url, ca_file, _dir: dir }
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.document.lock().unwrap() = jwks(keys);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A `notegraph serve` process that trusts `provider`'s CA (unless
/// `trusted` is false), with `env` on top.
struct Server {
    base: String,
    client: reqwest::Client,
    logs: Arc<Mutex<Vec<String>>>,
    _child: Child,
}

impl Server {
    async fn start(options: &PgConnectOptions, provider: &Provider, trusted: bool, env: &[(&str, &str)]) -> Server {
        let url = database_url(options);
        let ca_file = provider.ca_file.to_str().unwrap();
        let mut vars = vec![
            ("DATABASE_URL", url.as_str()),
            ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
            ("NOTEGRAPH_JWKS_URL", provider.url.as_str()),
            ("NOTEGRAPH_JWT_ISSUER", ISSUER),
            ("NOTEGRAPH_JWT_AUDIENCE", AUDIENCE),
        ];
        vars.push(("SSL_CERT_FILE", if trusted { ca_file } else { "/dev/null" }));
        vars.extend_from_slice(env);
        let (child, mut lines) = serve_process(&vars);
        let base = format!("http://{}", serving_address(&mut lines).await);
        let logs = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(drain(lines, logs.clone()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Server { base, client, logs, _child: child }
    }

    /// POSTs `{ me { id } }` as `token`: the status, the body and the
    /// `WWW-Authenticate` or `Retry-After` header.
    async fn me(&self, token: &str) -> (StatusCode, Value, Option<String>) {
        let response = self
            .client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&json!({ "query": "{ me { id } }" }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let header = ["www-authenticate", "retry-after"]
            .iter()
            .find_map(|name| response.headers().get(*name))
            .map(|value| value.to_str().unwrap().to_owned());
        (status, response.json().await.unwrap(), header)
    }

    /// The user id `token` signs in as, or the refusal's message.
    async fn user(&self, token: &str) -> Result<String, String> {
        match self.me(token).await {
            (StatusCode::OK, body, _) => Ok(body["data"]["me"]["id"].as_str().unwrap_or("null").to_owned()),
            (status, body, header) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
                assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
                assert_eq!(header.as_deref(), Some("Bearer"));
                assert!(body.get("data").is_none(), "{body}");
                let message = body["errors"][0]["message"].as_str().unwrap().to_owned();
                assert!(!message.contains(token) && !token.contains(&message), "the token was echoed");
                Err(message)
            }
        }
    }

    /// Opens a graphql-transport-ws socket and sends `connection_init` with
    /// `token`: `Ok` on `connection_ack`, else the close frame's code and
    /// reason.
    async fn websocket(&self, token: &str) -> Result<(), (u16, String)> {
        let url = format!("{}/graphql/ws", self.base.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
        socket.send(Message::Text(init.to_string().into())).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await.expect("an answer to connection_init")
        {
            Some(Ok(Message::Text(text))) if text.contains("connection_ack") => Ok(()),
            Some(Ok(Message::Close(Some(frame)))) => Err((u16::from(frame.code), frame.reason.to_string())),
            other => panic!("neither an acknowledgement nor a close frame: {other:?}"),
        }
    }

    fn logged(&self, text: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|line| line.contains(text))
    }
}

/// Keeps reading the server's stderr (a full pipe would stop it), keeping
/// the lines.
async fn drain(mut lines: Lines<BufReader<ChildStderr>>, logs: Arc<Mutex<Vec<String>>>) {
    while let Ok(Some(line)) = lines.next_line().await {
        logs.lock().unwrap().push(line);
    }
}

/// Claims a token of the provider carries, for user `sub`.
fn claims(sub: &str) -> Value {
    json!({ "iss": ISSUER, "aud": [AUDIENCE, "account"], "sub": sub, "exp": at(300), "iat": at(0) })
}

/// `claims` with `changes` applied (`null` removes a claim).
fn claims_with(sub: &str, changes: Value) -> Value {
    let mut claims = claims(sub);
    for (name, value) in changes.as_object().unwrap() {
        claims[name] = value.clone();
    }
    claims
}

/// Waits (up to 20 s) until `condition` holds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn provider_tokens_sign_in_and_every_failed_check_is_named(_: PgPoolOptions, options: PgConnectOptions) {
    let (rsa, ec, ed) = (SigningKey::rsa("rsa-2026"), SigningKey::ec("ec-2026"), SigningKey::ed("ed-2026"));
    let provider = Provider::serve(&[&rsa, &ec, &ed]).await;
    let server = Server::start(&options, &provider, true, &[]).await;

    // RS256, ES256 and EdDSA, each naming its key.
    assert_eq!(server.user(&rsa.sign(&claims("1"))).await, Ok("1".into()));
    assert_eq!(server.user(&ec.sign(&claims("2"))).await, Ok("2".into()));
    assert_eq!(server.user(&ed.sign(&claims("3"))).await, Ok("3".into()));

    let refusals = [
        ("alg none", unsigned("rsa-2026", &claims("1")), "the token's algorithm none is not allowed"),
        (
            "HS256 signed with the public key",
            hs256(&rsa.public_bytes(), Some("rsa-2026"), &claims("1")),
            "the token's algorithm HS256 is not allowed",
        ),
        (
            "HS256 with the development secret",
            hs256(api::config::DEFAULT_JWT_SECRET.as_bytes(), None, &claims("1")),
            "the token's algorithm HS256 is not allowed",
        ),
        (
            "an algorithm its key does not allow",
            ec.sign_as(Some("rsa-2026"), &claims("1")),
            "the token's algorithm ES256 does not match its signing key",
        ),
        ("a forged signature", SigningKey::ec("ec-2026").sign(&claims("1")), "the token's signature is invalid"),
        ("expired", ec.sign(&claims_with("1", json!({ "exp": at(-60) }))), "the token has expired"),
        (
            "another issuer",
            ec.sign(&claims_with("1", json!({ "iss": "https://idp.test/realms/other" }))),
            "the token's issuer (`iss`) is not the expected one",
        ),
        (
            "another audience",
            ed.sign(&claims_with("1", json!({ "aud": "another-api" }))),
            "the token's audience (`aud`) is not the expected one",
        ),
        (
            "a provider's own user id",
            rsa.sign(&claims("f81d4fae-7dec-11d0-a765-00a0c91e6bf6")),
            "claim `sub` is not a Notegraph user id",
        ),
        ("an unknown key", SigningKey::ed("ed-2027").sign(&claims("1")), "the token's signing key (`kid`) is unknown"),
    ];
    for (what, token, message) in &refusals {
        assert_eq!(server.user(token).await, Err(message.to_string()), "{what}");
    }

    // The SSE transport authenticates the same way.
    let stream = |token: &str, query: &str| {
        server
            .client
            .post(format!("{}/graphql/stream", server.base))
            .header("accept", "text/event-stream")
            .bearer_auth(token)
            .json(&json!({ "query": query }))
            .send()
    };
    let response = stream(&ed.sign(&claims("3")), "{ me { id } }").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"{"data":{"me":{"id":"3"}}}"#), "{text}");
    let subscription = "subscription { noteEvents(limit: 1) { noteId } }";
    let open = stream(&rsa.sign(&claims("1")), subscription).await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    assert_eq!(open.headers()["content-type"], "text/event-stream; charset=utf-8");
    drop(open);
    for (what, token, message) in &refusals {
        let response = stream(token, subscription).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["message"], *message, "{what}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{what}");
    }

    // And the WebSocket transport: refused with 4403 and the same message.
    assert_eq!(server.websocket(&ec.sign(&claims("2"))).await, Ok(()));
    for (what, token, message) in &refusals {
        assert_eq!(server.websocket(token).await, Err((4403, message.to_string())), "{what}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn rotated_keys_cost_one_fetch_and_made_up_kids_one_per_interval(_: PgPoolOptions, options: PgConnectOptions) {
    let (old, new) = (SigningKey::rsa("2026-01"), SigningKey::ec("2026-02"));
    let provider = Provider::serve(&[&old]).await;
    let env = [("NOTEGRAPH_JWKS_MIN_REFRESH_SECS", "1"), ("NOTEGRAPH_JWKS_REFRESH_SECS", "3600")];
    let server = Server::start(&options, &provider, true, &env).await;
    wait_until("the start-up fetch", || provider.fetches() == 1).await;
    let old_token = old.sign(&claims("1"));
    assert_eq!(server.user(&old_token).await, Ok("1".into()));

    // The provider rotates a new key in; tokens naming it arrive together.
    provider.publish(&[&old, &new]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new_token = new.sign(&claims("2"));
    let users = futures::future::join_all((0..20).map(|_| server.user(&new_token))).await;
    assert!(users.iter().all(|user| *user == Ok("2".into())), "{users:?}");
    assert_eq!(provider.fetches(), 2, "the new kid cost exactly one fetch, shared by 20 requests");
    assert_eq!(server.user(&old_token).await, Ok("1".into()), "the old key works while the set holds it");

    // 1,000 tokens naming made-up keys: one fetch per interval at most.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let refusals: Vec<Result<String, String>> = futures::stream::iter(0..1000)
        .map(|i| {
            let token = new.sign_as(Some(&format!("forged-{i}")), &claims("2"));
            let server = &server;
            async move { server.user(&token).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs() as usize;
    assert!(refusals.iter().all(|r| *r == Err("the token's signing key (`kid`) is unknown".into())));
    let flood_fetches = provider.fetches() - 2;
    assert!(flood_fetches >= 1, "the first made-up kid after the interval is looked up");
    assert!(flood_fetches <= 1 + seconds, "{flood_fetches} fetches in {seconds} s");

    // The provider retires the old key: it stops working at the next fetch.
    provider.publish(&[&new]);
    assert_eq!(server.user(&old_token).await, Ok("1".into()), "not fetched yet");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fetched = provider.fetches();
    let probe = new.sign_as(Some("2026-03"), &claims("2"));
    assert_eq!(server.user(&probe).await, Err("the token's signing key (`kid`) is unknown".into()));
    assert_eq!(provider.fetches(), fetched + 1);
    assert_eq!(server.user(&old_token).await, Err("the token's signing key (`kid`) is unknown".into()));
    assert_eq!(server.user(&new_token).await, Ok("2".into()));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn an_unreachable_jwks_is_service_unavailable_until_it_answers(_: PgPoolOptions, options: PgConnectOptions) {
    let key = SigningKey::ed("ed-1");
    let provider = Provider::serve(&[&key]).await;
    provider.status.store(503, Ordering::SeqCst);
    let env = [("NOTEGRAPH_JWKS_MIN_REFRESH_SECS", "2")];
    let server = Server::start(&options, &provider, true, &env).await;
    let token = key.sign(&claims("3"));

    let (status, body, retry_after) = server.me(&token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "SERVICE_UNAVAILABLE");
    assert!(body["errors"][0]["message"].as_str().unwrap().starts_with("signing keys unavailable"), "{body}");
    assert!(retry_after.is_some(), "no Retry-After");
    assert_eq!(server.user("test-token").await, Ok("1".into()), "static tokens need no keys");
    let anonymous = server.client.post(format!("{}/graphql", server.base)).json(&json!({ "query": "{ me { id } }" }));
    assert_eq!(anonymous.send().await.unwrap().status(), StatusCode::OK, "anonymous requests are served");
    assert_eq!(server.websocket(&token).await.unwrap_err().0, 1013, "WebSocket: try again later");
    wait_until("the failure logged", || server.logged("could not fetch the JWKS")).await;

    // The provider comes back: the background retries pick its keys up.
    provider.status.store(200, Ordering::SeqCst);
    let fetches = provider.fetches();
    wait_until("a retry", || provider.fetches() > fetches).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.me(&token).await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "the keys were not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.user(&token).await, Ok("3".into()));
    assert_eq!(server.websocket(&token).await, Ok(()));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_jwks_whose_certificate_is_not_trusted_is_never_used(_: PgPoolOptions, options: PgConnectOptions) {
    let key = SigningKey::ec("ec-1");
    let provider = Provider::serve(&[&key]).await;
    let server = Server::start(&options, &provider, false, &[]).await;

    let (status, body, _) = server.me(&key.sign(&claims("2"))).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(provider.fetches(), 0, "no request reached the JWKS's handler");
    wait_until("the failure logged", || server.logged("could not fetch the JWKS")).await;
}
