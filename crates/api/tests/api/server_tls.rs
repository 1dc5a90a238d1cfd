//! The server's own HTTPS as its clients and its operator meet it: curl
//! over HTTP/2 and HTTP/1.1, the graphql-http audit through Node, a
//! WebSocket session, the container healthcheck, an SSE
//! subscription over HTTP/2 that outlives a certificate renewal, a renewal
//! picked up from the files or on SIGHUP (and a broken one refused while
//! the old pair is kept), and a pair that does not belong together refused
//! at start-up in one line, a handshake that never finishes cut off, and
//! a graceful drain over HTTP/2.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout};

use crate::helpers::{database_url, serve_process, serving_address};
use crate::tls::{Authority, Issued};

/// A CA, the server's pair in `dir` (`server.crt`, `server.key`) and the
/// CA's certificate (`ca.crt`).
struct Pki {
    authority: Authority,
    dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new() -> (Pki, Issued) {
        let authority = Authority::new("Notegraph server test CA");
        let dir = tempfile::tempdir().unwrap();
        let ca = authority.write_cert(dir.path(), "ca.crt");
        let issued = authority.server(&["127.0.0.1", "localhost"]);
        let (cert, key) = issued.write(dir.path(), "server");
        (Pki { authority, dir, ca, cert, key }, issued)
    }

    /// Replaces the pair on disk, each file by a rename (as cert-manager
    /// and certbot's hooks do), the key first.
    fn install(&self, cert_pem: &str, key_pem: &str) {
        for (path, pem) in [(&self.key, key_pem), (&self.cert, cert_pem)] {
            let next = path.with_extension("next");
            std::fs::write(&next, pem).unwrap();
            std::fs::rename(&next, path).unwrap();
        }
    }
}

/// `notegraph serve` over HTTPS with `pki`'s pair, on the test's database;
/// returns it, its log and its `host:port`.
async fn serve_https(
    options: &PgConnectOptions,
    pki: &Pki,
    extra: &[(&str, &str)],
) -> (Child, Lines<BufReader<ChildStderr>>, String) {
    let database = database_url(options);
    let mut env = vec![
        ("DATABASE_URL", database.as_str()),
        ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
        ("NOTEGRAPH_STATIC_TOKENS", "user-1=1"),
        ("NOTEGRAPH_TLS_CERT_FILE", pki.cert.to_str().unwrap()),
        ("NOTEGRAPH_TLS_KEY_FILE", pki.key.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    let (child, mut lines) = serve_process(&env);
    let address = serving_address(&mut lines).await;
    (child, lines, address)
}

/// A client that trusts the test CA (and nothing else).
fn client(pki: &Pki) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A TLS connection to the server that trusts the test CA, offering
/// `alpn` (none: no ALPN).
async fn tls_connect(
    pki: &Pki,
    address: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(&pki.ca).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

/// The certificate the server presents to a new connection, as DER.
async fn served_certificate(pki: &Pki, address: &str) -> Vec<u8> {
    let tls = tls_connect(pki, address, &[]).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A graphql-transport-ws session over `wss://` (HTTP/1.1 by ALPN, as
/// WebSocket clients ask): the server's answer to `connection_init`.
async fn websocket_ack(pki: &Pki, address: &str) -> Value {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let tls = tls_connect(pki, address, &[b"http/1.1"]).await;
    let mut request = format!("wss://{address}/graphql/ws").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    let init = json!({ "type": "connection_init", "payload": { "Authorization": "Bearer user-1" } });
    ws.send(Message::Text(init.to_string().into())).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.unwrap().unwrap().unwrap();
    serde_json::from_str(answer.to_text().unwrap()).unwrap()
}

fn der(issued: &Issued) -> Vec<u8> {
    CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap().to_vec()
}

/// Waits (up to 60 s) until new connections get `expected`.
async fn wait_until_served(pki: &Pki, address: &str, expected: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while served_certificate(pki, address).await != expected {
        assert!(Instant::now() < deadline, "the renewed certificate was not served within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// curl against the server with the CA trusted: returns its output, then
/// the HTTP version it spoke (`-w %{http_version}`).
async fn curl(pki: &Pki, version: &str, url: &str, body: &str) -> (String, String) {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", version, "--cacert", pki.ca.to_str().unwrap(), "-w", "\n%{http_version}"])
        .args(["-H", "content-type: application/json", "-d", body, url])
        .output()
        .await
        .expect("run curl");
    assert!(output.status.success(), "curl: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, version) = text.rsplit_once('\n').unwrap();
    (body.to_owned(), version.to_owned())
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn https_answers_http2_and_http11_and_passes_the_graphql_http_audit(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: metrics on a port of their own, which stays plain HTTP.
    let (pki, _) = Pki::new();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let (_server, _logs, address) = serve_https(&options, &pki, &[("NOTEGRAPH_METRICS_LISTEN", &metrics_listen)]).await;
    let url = format!("https://{address}/graphql");
    let query = r#"{"query":"{ user(id: \"1\") { name } }"}"#;

    // Act
    let (h2, h2_version) = curl(&pki, "--http2", &url, query).await;
    let (h1, h1_version) = curl(&pki, "--http1.1", &url, query).await;
    let audit = tokio::process::Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/http-audit/audit.mjs"))
        .arg(&url)
        .env("NODE_EXTRA_CA_CERTS", &pki.ca)
        .output()
        .await
        .expect("run node");
    let metrics = reqwest::get(format!("http://{metrics_listen}/metrics")).await.unwrap();
    let websocket = websocket_ack(&pki, &address).await;
    // The container healthcheck, configured like the server it checks.
    let healthcheck = tokio::process::Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .args(["healthcheck", "--listen", &address])
        .env("NOTEGRAPH_TLS_CERT_FILE", &pki.cert)
        .env("NOTEGRAPH_TLS_KEY_FILE", &pki.key)
        .output()
        .await
        .unwrap();

    // Assert
    let expected = json!({ "data": { "user": { "name": "Ada Lovelace" } } });
    assert_eq!((serde_json::from_str::<Value>(&h2).unwrap(), h2_version.as_str()), (expected.clone(), "2"));
    assert_eq!((serde_json::from_str::<Value>(&h1).unwrap(), h1_version.as_str()), (expected, "1.1"));
    assert!(
        audit.status.success(),
        "audit over HTTPS failed:\n{}\n{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
    assert_eq!(metrics.status(), 200, "the metrics listener speaks plain HTTP");
    assert_eq!(websocket["type"], "connection_ack", "{websocket}");
    let checked = String::from_utf8_lossy(&healthcheck.stdout);
    assert!(healthcheck.status.success(), "{checked}{}", String::from_utf8_lossy(&healthcheck.stderr));
    assert!(checked.contains(&format!("GET https://{address}/readyz: 200")), "{checked}");
}

/// An SSE subscription through `curl --http2 -N`: its output, line by line.
struct Stream {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Stream {
    fn open(pki: &Pki, address: &str) -> Stream {
        let body = r#"{"query":"subscription { noteEvents { kind noteId } }"}"#;
        let mut child = tokio::process::Command::new("curl")
            .args(["-sS", "-N", "-i", "--http2", "--cacert", pki.ca.to_str().unwrap()])
            .args(["-H", "accept: text/event-stream", "-H", "content-type: application/json"])
            .args(["-H", "authorization: Bearer user-1", "-d", body])
            .arg(format!("https://{address}/graphql/stream"))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run curl");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Stream { child, lines }
    }

    /// The response head's lines, up to the blank line.
    async fn head(&mut self) -> Vec<String> {
        let mut head = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line()).await.unwrap().unwrap();
            let line = line.expect("the stream ended in its head").trim_end().to_owned();
            if line.is_empty() {
                return head;
            }
            head.push(line);
        }
    }

    /// Writes a note every 300 ms (an event may go by before the
    /// subscription is registered) until an event arrives; returns its data.
    async fn next_event(&mut self, client: &reqwest::Client, address: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "no event within 60 s");
            let create = r#"mutation { createNote(input: { title: "t", body: "b", visibility: PUBLIC }) { id } }"#;
            let created: Value = client
                .post(format!("https://{address}/graphql"))
                .bearer_auth("user-1")
                .json(&json!({ "query": create }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(created["data"]["createNote"]["id"].is_string(), "{created}");
            let until = tokio::time::Instant::now() + Duration::from_millis(300);
            while let Ok(line) = tokio::time::timeout_at(until, self.lines.next_line()).await {
                let line = line.unwrap().expect("the stream ended");
                if let Some(data) = line.strip_prefix("data: ")
                    && data.starts_with('{')
                {
                    return serde_json::from_str(data).unwrap();
                }
            }
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_renewed_certificate_is_served_to_new_connections_while_an_http2_stream_stays_up(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: the files checked every second; an SSE subscription over
    // HTTP/2 that has had its first event.
    let (pki, first) = Pki::new();
    // (A stream's head goes out with its first bytes: a short heartbeat
    // sends them at once.)
    let extra = [("NOTEGRAPH_TLS_RELOAD_INTERVAL_SECS", "1"), ("NOTEGRAPH_SSE_HEARTBEAT_MS", "500")];
    let (_server, _logs, address) = serve_https(&options, &pki, &extra).await;
    let client = client(&pki);
    assert_eq!(served_certificate(&pki, &address).await, der(&first));
    let mut stream = Stream::open(&pki, &address);
    let head = stream.head().await;
    assert_eq!(head[0], "HTTP/2 200", "{head:?}");
    let event = stream.next_event(&client, &address).await;
    assert_eq!(event["data"]["noteEvents"]["kind"], "CREATED", "{event}");

    // Act: a new pair from the same CA (another key, serial and names).
    let renewed = pki.authority.server(&["127.0.0.1", "renewed.localhost"]);
    assert_ne!(der(&renewed), der(&first));
    pki.install(&renewed.cert_pem, &renewed.key_pem);

    // Assert: the next connection gets it, without a restart; the open
    // stream is still up and still receives events.
    wait_until_served(&pki, &address, &der(&renewed)).await;
    let event = stream.next_event(&client, &address).await;
    assert_eq!(event["data"]["noteEvents"]["kind"], "CREATED", "{event}");
    assert!(stream.child.try_wait().unwrap().is_none(), "curl's stream ended");
    drop(pki.dir);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn sighup_reloads_the_pair_and_a_broken_pair_keeps_the_old_one(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: no polling, so only SIGHUP can reload.
    let (pki, first) = Pki::new();
    let (server, mut logs, address) = serve_https(&options, &pki, &[("NOTEGRAPH_TLS_RELOAD_INTERVAL_SECS", "0")]).await;
    let hangup = || async {
        let pid = server.id().unwrap().to_string();
        assert!(tokio::process::Command::new("kill").args(["-HUP", &pid]).status().await.unwrap().success());
    };
    let renewed = pki.authority.server(&["127.0.0.1"]);
    pki.install(&renewed.cert_pem, &renewed.key_pem);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(served_certificate(&pki, &address).await, der(&first), "reloaded without being asked");

    // Act 1: SIGHUP.
    hangup().await;

    // Assert 1
    wait_until_served(&pki, &address, &der(&renewed)).await;

    // Act 2: a certificate whose key is another's, then SIGHUP.
    let other = pki.authority.server(&["127.0.0.1"]);
    pki.install(&other.cert_pem, &renewed.key_pem);
    hangup().await;

    // Assert 2: logged, and the working pair still served.
    let refused = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = logs.next_line().await.unwrap() {
            if line.contains("did not load") {
                return line;
            }
        }
        panic!("notegraph exited");
    })
    .await
    .expect("the refusal is logged within 60 s");
    assert!(refused.contains("does not match the private key"), "{refused}");
    assert_eq!(served_certificate(&pki, &address).await, der(&renewed));
    assert!(server.id().is_some());
}

/// Runs `notegraph serve` with `env` until it exits; returns its stderr.
async fn refused_start(env: &[(&str, &str)]) -> Vec<String> {
    let (mut child, mut lines) = serve_process(env);
    let mut logged = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            logged.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("exits within 60 s");
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "started: {logged:?}");
    logged
}

#[tokio::test]
async fn a_pair_that_does_not_belong_together_is_a_one_line_start_up_error() {
    let (pki, _) = Pki::new();
    let stranger = pki.authority.server(&["127.0.0.1"]);
    let (_, stranger_key) = stranger.write(pki.dir.path(), "stranger");
    let cert = pki.cert.to_str().unwrap();

    let mismatch = refused_start(&[
        ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
        ("NOTEGRAPH_TLS_CERT_FILE", cert),
        ("NOTEGRAPH_TLS_KEY_FILE", stranger_key.to_str().unwrap()),
    ])
    .await;
    let half = refused_start(&[("NOTEGRAPH_LISTEN", "127.0.0.1:0"), ("NOTEGRAPH_TLS_CERT_FILE", cert)]).await;

    for (logged, needles) in [
        (mismatch, &["does not match the private key", "NOTEGRAPH_TLS_CERT_FILE", "NOTEGRAPH_TLS_KEY_FILE"][..]),
        (half, &["go together", "NOTEGRAPH_TLS_CERT_FILE", "NOTEGRAPH_TLS_KEY_FILE"][..]),
    ] {
        let errors: Vec<&String> = logged.iter().filter(|line| line.starts_with("Error: ")).collect();
        assert_eq!(errors.len(), 1, "{logged:?}");
        assert!(!logged.iter().any(|line| line.contains("Caused by")), "{logged:?}");
        for needle in needles {
            assert!(errors[0].contains(needle), "{needle:?} missing from {}", errors[0]);
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_connection_that_never_finishes_its_handshake_is_closed(_: PgPoolOptions, options: PgConnectOptions) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    // Arrange: a short header read timeout, which bounds the handshake.
    let (pki, _) = Pki::new();
    let (_server, _logs, address) = serve_https(&options, &pki, &[("NOTEGRAPH_HEADER_READ_TIMEOUT_MS", "500")]).await;
    let started = Instant::now();

    // Act: connect, send the first byte of a TLS record, then nothing.
    let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    tcp.write_all(&[0x16]).await.unwrap();
    let mut buffer = [0_u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buffer)).await;

    // Assert: the server hung up (end of stream or a reset), not before
    // the timeout.
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "not closed within 30 s: {read:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn sigterm_completes_an_http2_stream_and_the_server_drains(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: a live SSE subscription over HTTP/2.
    let (pki, _) = Pki::new();
    let (mut server, _logs, address) = serve_https(&options, &pki, &[("NOTEGRAPH_SSE_HEARTBEAT_MS", "500")]).await;
    let client = client(&pki);
    let mut stream = Stream::open(&pki, &address);
    assert_eq!(stream.head().await[0], "HTTP/2 200");
    stream.next_event(&client, &address).await;

    // Act
    let pid = server.id().unwrap().to_string();
    assert!(tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await.unwrap().success());

    // Assert: the stream ends with `complete` and a clean end (curl exits
    // 0, no reset), and the server exits 0 once drained.
    let completed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stream.lines.next_line().await.unwrap() {
            if line.trim_end() == "event: complete" {
                return true;
            }
        }
        false
    })
    .await
    .expect("the stream ends within 30 s");
    assert!(completed, "the stream ended without `complete`");
    let curl = tokio::time::timeout(Duration::from_secs(30), stream.child.wait()).await.unwrap().unwrap();
    assert!(curl.success(), "curl: {curl}");
    let exited = tokio::time::timeout(Duration::from_secs(30), server.wait()).await.expect("drained within 30 s");
    assert!(exited.unwrap().success());
}
