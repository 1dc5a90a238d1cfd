//! TLS to Postgres (issue 26), through the real binary: the primary pool,
//! the read replica's pool and the `LISTEN` connection over TLS with
//! libpq's URL parameters; each `sslmode` as it behaves through sqlx's
//! rustls backend; client certificates; and a start-up refused in one line
//! that names the variable, the server and the cause, never the password.
//!
//! The TLS server is PgBouncer in front of the embedded Postgres
//! ([`crate::pgbouncer`]), with certificates from a throw-away authority
//! ([`crate::tls`]). PgBouncer refuses plaintext, so anything that works
//! through it went over TLS; its log shows each login's TLS version too.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{BufReader, Lines};
use tokio::process::{Child, ChildStderr};

use crate::helpers::{database_url, serve_process, serving_address};
use crate::pgbouncer::{PgBouncer, ServerTls, Upstream, program, suite_postgres};
use crate::tls::Authority;

/// The names the good server certificate is for: what the tests connect to.
const LOOPBACK: [&str; 2] = ["127.0.0.1", "localhost"];
/// Another name, so that connecting to 127.0.0.1 does not match.
const ELSEWHERE: [&str; 1] = ["db.example.com"];

/// PgBouncer in front of the suite's Postgres, as database `alias` for
/// `database` there, presenting a certificate for `names` from `authority`
/// (written to `dir`).
fn tls_bouncer(program: &Path, authority: &Authority, names: &[&str], dir: &Path, database: &str) -> PgBouncer {
    let (cert, key) = authority.server(names).write(dir, "server");
    let upstream = Upstream { alias: "app".to_owned(), port: suite_postgres().3, database: database.to_owned() };
    PgBouncer::start(program, &[upstream], &ServerTls { cert, key, client_ca: None })
}

/// The suite's Postgres password: it must appear nowhere in what the
/// server prints.
fn password() -> String {
    suite_postgres().1
}

/// Everything a server printed, collected as it comes so that its pipe
/// never fills.
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<String>>>);

impl Printed {
    fn drain(mut lines: Lines<BufReader<ChildStderr>>) -> Printed {
        let printed = Printed::default();
        let sink = printed.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.0.lock().unwrap().push(line);
            }
        });
        printed
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// `notegraph serve` with `env`, once it serves: the process, its base URL
/// and what it prints.
async fn serving(env: &[(&str, &str)]) -> (Child, String, Printed) {
    let mut env = env.to_vec();
    env.push(("NOTEGRAPH_LISTEN", "127.0.0.1:0"));
    let (child, mut lines) = serve_process(&env);
    let address = serving_address(&mut lines).await;
    (child, format!("http://{address}"), Printed::drain(lines))
}

/// `notegraph serve` with `env`, which must refuse to start: the one line
/// it ends with, after `Error: `. The password is nowhere in its output.
async fn refused(env: &[(&str, &str)]) -> String {
    let mut env = env.to_vec();
    // No backtrace after the error, whatever the caller's environment says.
    env.extend([("NOTEGRAPH_LISTEN", "127.0.0.1:0"), ("RUST_BACKTRACE", "0"), ("RUST_LIB_BACKTRACE", "0")]);
    let (mut child, mut lines) = serve_process(&env);
    let mut printed = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("exits within 60 s");
    let status = child.wait().await.unwrap();
    let text = printed.join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(!text.contains(&password()), "the password was printed:\n{text}");
    let errors: Vec<&String> = printed.iter().filter(|line| line.starts_with("Error: ")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert_eq!(printed.last(), Some(errors[0]), "the error is the last line:\n{text}");
    errors[0].trim_start_matches("Error: ").to_owned()
}

/// POSTs `query` (as `token`, fresh: no cached answer) and returns `data`.
async fn graphql(base: &str, token: Option<&str>, query: &str) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header("cache-control", "no-cache")
        .json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// A query that reads the database answers.
async fn reads_the_database(base: &str) {
    let data = graphql(base, None, "{ notes(first: 1) { id } }").await;
    assert!(data["notes"].is_array(), "{data}");
}

/// The value of `family` on the server's `/metrics` (0 when absent).
async fn metric(base: &str, family: &str) -> f64 {
    let body = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    crate::metrics::value(&body, family, &[]).unwrap_or(0.0)
}

async fn wait_for_metric(base: &str, family: &str, done: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = metric(base, family).await;
        if done(seen) {
            return;
        }
        assert!(Instant::now() < deadline, "{family} stayed at {seen} for 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn verify_full_carries_the_primary_the_read_replica_and_listen_over_tls(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(program) = program("verify_full_carries_the_primary_the_read_replica_and_listen_over_tls") else {
        return;
    };
    // Arrange: one PgBouncer, TLS only, in front of the test's database
    // (`primary`) and of a streaming standby of it (`replica`).
    let (standby, _control) = crate::replica::standby(&options).await;
    let database = options.get_database().unwrap().to_owned();
    let standby_port = reqwest::Url::parse(standby.url()).unwrap().port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::new("Notegraph test authority");
    let (cert, key) = authority.server(&LOOPBACK).write(dir.path(), "server");
    let upstreams = [
        Upstream { alias: "primary".to_owned(), port: suite_postgres().3, database: database.clone() },
        Upstream { alias: "replica".to_owned(), port: standby_port, database },
    ];
    let bouncer = PgBouncer::start(&program, &upstreams, &ServerTls { cert, key, client_ca: None });
    let root = authority.write_cert(dir.path(), "root.crt").display().to_string();
    let primary = bouncer.url("127.0.0.1", "primary", &format!("sslmode=verify-full&sslrootcert={root}"));
    // The replica's URL says nothing of TLS: the libpq variables do, as
    // for a URL taken whole from a Secret (docs/DEPLOY.md).
    let replica = bouncer.url("localhost", "replica", "");

    // Act
    let env = [
        ("DATABASE_URL", primary.as_str()),
        ("DATABASE_READ_URL", replica.as_str()),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", root.as_str()),
        ("NOTEGRAPH_STATIC_TOKENS", "user-1=1"),
    ];
    let (_server, base, printed) = serving(&env).await;

    // Assert: queries read the replica, through its TLS pool.
    wait_for_metric(&base, "notegraph_read_replica_ready", |ready| ready == 1.0).await;
    let before = metric(&base, "notegraph_read_replica_queries_total").await;
    reads_the_database(&base).await;
    assert_eq!(metric(&base, "notegraph_read_replica_queries_total").await, before + 1.0);
    // A subscriber hears of a write: the write went over the primary's
    // TLS pool, and its event came back over the TLS `LISTEN` connection.
    let stream = reqwest::Client::new()
        .post(format!("{base}/graphql/stream"))
        .header("accept", "text/event-stream")
        .json(&json!({ "query": "subscription { noteEvents(limit: 1) { note { title } } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let heard = tokio::spawn(async move {
        let mut stream = stream;
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: complete") {
                break;
            }
        }
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !heard.is_finished() {
        assert!(Instant::now() < deadline, "no event within 60 s");
        let create = r#"mutation { createNote(input: { title: "Over TLS", body: "b", visibility: PUBLIC }) { id } }"#;
        graphql(&base, Some("user-1"), create).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let text = heard.await.unwrap();
    assert!(text.contains(r#""title":"Over TLS""#), "{text}");
    // Every connection PgBouncer let in was TLS (it refuses plaintext),
    // to both databases.
    let logins = bouncer.logins();
    assert!(logins.iter().all(|login| login.contains(" tls=TLSv1.")), "{logins:#?}");
    for database in ["db=primary", "db=replica"] {
        assert!(logins.iter().any(|login| login.contains(database)), "no login to {database}: {logins:#?}");
    }
    assert!(!printed.text().contains(&password()));
}

#[tokio::test]
async fn a_certificate_from_an_unknown_authority_refuses_the_start() {
    let Some(program) = program("a_certificate_from_an_unknown_authority_refuses_the_start") else { return };
    let dir = tempfile::tempdir().unwrap();
    let bouncer = tls_bouncer(&program, &Authority::new("The server's authority"), &LOOPBACK, dir.path(), "notegraph");
    let other = Authority::new("Another authority").write_cert(dir.path(), "other.crt");

    let url = bouncer.url("127.0.0.1", "app", &format!("sslmode=verify-full&sslrootcert={}", other.display()));
    let error = refused(&[("DATABASE_URL", &url)]).await;

    assert_eq!(
        error,
        format!(
            "DATABASE_URL: cannot connect to Postgres at 127.0.0.1:{} (sslmode=verify-full): the server's \
             certificate is not signed by a trusted authority (certificate unknown); sslrootcert must name the \
             authority that signs it",
            bouncer.port
        )
    );
}

#[tokio::test]
async fn a_certificate_for_another_host_name_refuses_the_start() {
    let Some(program) = program("a_certificate_for_another_host_name_refuses_the_start") else { return };
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::new("Notegraph test authority");
    let bouncer = tls_bouncer(&program, &authority, &ELSEWHERE, dir.path(), "notegraph");
    let root = authority.write_cert(dir.path(), "root.crt");

    let url = bouncer.url("127.0.0.1", "app", &format!("sslmode=verify-full&sslrootcert={}", root.display()));
    let error = refused(&[("DATABASE_URL", &url)]).await;

    assert_eq!(
        error,
        format!(
            "DATABASE_URL: cannot connect to Postgres at 127.0.0.1:{} (sslmode=verify-full): the host name does not \
             match the server's certificate: connected to 127.0.0.1, the certificate is for db.example.com",
            bouncer.port
        )
    );
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn require_against_a_server_without_tls_refuses_the_start_and_prefer_falls_back_to_plaintext(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // The embedded Postgres has no TLS at all.
    let url = database_url(&options);
    let port = suite_postgres().3;

    let error = refused(&[("DATABASE_URL", &format!("{url}?sslmode=require"))]).await;
    assert_eq!(
        error,
        format!(
            "DATABASE_URL: cannot connect to Postgres at 127.0.0.1:{port} (sslmode=require): the server does not do \
             TLS (it declined the TLS request), and the sslmode demands it; sslmode=prefer falls back to plaintext"
        )
    );

    // As libpq's: asked, the server declines, and the session goes on in plaintext.
    let (_server, base, _) = serving(&[("DATABASE_URL", &format!("{url}?sslmode=prefer"))]).await;
    reads_the_database(&base).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn the_read_replica_url_is_held_to_its_own_tls_and_named_when_refused(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(program) = program("the_read_replica_url_is_held_to_its_own_tls_and_named_when_refused") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = options.get_database().unwrap();
    let bouncer = tls_bouncer(&program, &Authority::new("The server's authority"), &LOOPBACK, dir.path(), database);
    let other = Authority::new("Another authority").write_cert(dir.path(), "other.crt");

    // The primary is fine (its URL's own sslmode outranks PGSSLMODE); the
    // replica's URL says nothing of TLS, so the libpq variables hold it to
    // verify-full against an authority that did not sign its certificate.
    let primary = format!("{}?sslmode=disable", database_url(&options));
    let replica = bouncer.url("127.0.0.1", "app", "");
    let other = other.display().to_string();
    let env = [
        ("DATABASE_URL", primary.as_str()),
        ("DATABASE_READ_URL", replica.as_str()),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", other.as_str()),
    ];
    let error = refused(&env).await;

    assert!(
        error.starts_with(&format!(
            "DATABASE_READ_URL: cannot connect to Postgres at 127.0.0.1:{} (sslmode=verify-full): the server's \
             certificate is not signed by a trusted authority (certificate unknown)",
            bouncer.port
        )),
        "{error}"
    );
}

/// `require` encrypts and verifies nothing, as libpq's; `verify-ca` checks
/// the chain and not the host name, as libpq's (with the patched sqlx-core
/// of vendor/README.md: sqlx 0.8.6 alone checked the name too).
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn require_verifies_nothing_and_verify_ca_checks_the_chain_but_not_the_host_name(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(program) = program("require_verifies_nothing_and_verify_ca_checks_the_chain_but_not_the_host_name") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::new("Notegraph test authority");
    let bouncer = tls_bouncer(&program, &authority, &ELSEWHERE, dir.path(), options.get_database().unwrap());
    let root = authority.write_cert(dir.path(), "root.crt");
    let other = Authority::new("Another authority").write_cert(dir.path(), "other.crt");

    // require, and prefer where the server offers TLS: a certificate from
    // nobody's authority, for another name, serves (over TLS: PgBouncer
    // takes nothing else).
    for mode in ["require", "prefer"] {
        let url = bouncer.url("127.0.0.1", "app", &format!("sslmode={mode}"));
        let (_server, base, _) = serving(&[("DATABASE_URL", &url)]).await;
        reads_the_database(&base).await;
    }
    let logins = bouncer.logins();
    assert!(!logins.is_empty() && logins.iter().all(|login| login.contains(" tls=TLSv1.")), "{}", bouncer.log());

    // verify-ca: the wrong authority is refused...
    let verify_ca =
        |root: &Path| bouncer.url("127.0.0.1", "app", &format!("sslmode=verify-ca&sslrootcert={}", root.display()));
    let error = refused(&[("DATABASE_URL", &verify_ca(&other))]).await;
    assert!(
        error.contains("(sslmode=verify-ca): the server's certificate is not signed by a trusted authority"),
        "{error}"
    );
    // ... and the right authority's certificate for another name serves,
    // while verify-full refuses it.
    let (_server, base, _) = serving(&[("DATABASE_URL", &verify_ca(&root))]).await;
    reads_the_database(&base).await;
    let verify_full = bouncer.url("127.0.0.1", "app", &format!("sslmode=verify-full&sslrootcert={}", root.display()));
    let error = refused(&[("DATABASE_URL", &verify_full)]).await;
    let mismatch = "(sslmode=verify-full): the host name does not match the server's certificate: connected to \
                    127.0.0.1, the certificate is for db.example.com";
    assert!(error.ends_with(mismatch), "{error}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_client_certificate_logs_in_where_one_is_required_and_without_one_the_start_is_refused(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(program) =
        program("a_client_certificate_logs_in_where_one_is_required_and_without_one_the_start_is_refused")
    else {
        return;
    };
    // Arrange: PgBouncer demands a certificate from `clients` and takes the
    // user from it (`auth_type=cert`): the URLs carry no password.
    let dir = tempfile::tempdir().unwrap();
    let (servers, clients) = (Authority::new("Server authority"), Authority::new("Client authority"));
    let (cert, key) = servers.server(&LOOPBACK).write(dir.path(), "server");
    let client_ca = Some(clients.write_cert(dir.path(), "clients.crt"));
    let upstream = Upstream {
        alias: "app".to_owned(),
        port: suite_postgres().3,
        database: options.get_database().unwrap().to_owned(),
    };
    let bouncer = PgBouncer::start(&program, &[upstream], &ServerTls { cert, key, client_ca });
    let user = suite_postgres().0;
    let (client_cert, client_key) = clients.client(&user).write(dir.path(), "client");
    let (stranger_cert, stranger_key) =
        Authority::new("Nobody's authority").client(&user).write(dir.path(), "stranger");
    let root = servers.write_cert(dir.path(), "root.crt").display().to_string();
    let url = |extra: &str| {
        format!("postgres://{user}@127.0.0.1:{}/app?sslmode=verify-full&sslrootcert={root}{extra}", bouncer.port)
    };

    // Act and assert: with the certificate, it serves.
    let with = url(&format!("&sslcert={}&sslkey={}", client_cert.display(), client_key.display()));
    let (_server, base, _) = serving(&[("DATABASE_URL", &with)]).await;
    reads_the_database(&base).await;

    // Without one, or with one from an authority PgBouncer does not trust,
    // the start is refused, saying so.
    let prefix =
        format!("DATABASE_URL: cannot connect to Postgres at 127.0.0.1:{} (sslmode=verify-full): ", bouncer.port);
    let error = refused(&[("DATABASE_URL", &url(""))]).await;
    assert_eq!(error, format!("{prefix}the server requires a client certificate: set sslcert and sslkey"));
    let stranger = url(&format!("&sslcert={}&sslkey={}", stranger_cert.display(), stranger_key.display()));
    let error = refused(&[("DATABASE_URL", &stranger)]).await;
    assert!(error.starts_with(&format!("{prefix}the server refused the client certificate (sslcert)")), "{error}");
    // A key file that is not there is named before any connection.
    let missing = url(&format!("&sslcert={}&sslkey=/nonexistent/client.key", client_cert.display()));
    let error = refused(&[("DATABASE_URL", &missing)]).await;
    assert_eq!(
        error,
        format!(
            "{prefix}the client key file /nonexistent/client.key (sslkey) cannot be read: No such file or directory \
             (os error 2)"
        )
    );
}

/// `sslrootcert=system` (libpq 16) trusts the platform's authorities, where
/// `SSL_CERT_FILE` is honoured, and implies verify-full. A named
/// `sslrootcert` adds to those authorities rather than replacing them, as
/// libpq's would: sqlx 0.8 loads both (docs/DEPLOY.md says so; when this
/// test fails on that, the gap has closed).
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn sslrootcert_system_trusts_the_platform_authorities_and_checks_the_host_name(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(program) = program("sslrootcert_system_trusts_the_platform_authorities_and_checks_the_host_name") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let platform = Authority::new("An authority of the platform's");
    let platform_file = platform.write_cert(dir.path(), "platform.crt").display().to_string();
    let database = options.get_database().unwrap();
    let bouncer = tls_bouncer(&program, &platform, &LOOPBACK, dir.path(), database);
    let platform_roots = ("SSL_CERT_FILE", platform_file.as_str());

    let system = bouncer.url("127.0.0.1", "app", "sslrootcert=system");
    let (_server, base, _) = serving(&[("DATABASE_URL", &system), platform_roots]).await;
    reads_the_database(&base).await;
    // A named authority that did not sign the certificate does not stop
    // the platform's from vouching for it.
    let other = Authority::new("Another authority").write_cert(dir.path(), "other.crt");
    let named = bouncer.url("127.0.0.1", "app", &format!("sslmode=verify-full&sslrootcert={}", other.display()));
    let (_server, base, _) = serving(&[("DATABASE_URL", &named), platform_roots]).await;
    reads_the_database(&base).await;

    // verify-full is implied: the right authority, for another name, is refused.
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = tls_bouncer(&program, &platform, &ELSEWHERE, elsewhere.path(), database);
    let error =
        refused(&[("DATABASE_URL", &foreign.url("127.0.0.1", "app", "sslrootcert=system")), platform_roots]).await;
    assert!(error.contains("(sslmode=verify-full): the host name does not match the server's certificate"), "{error}");
}
