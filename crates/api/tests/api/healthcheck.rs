//! `notegraph healthcheck`, the container healthcheck of an image without
//! curl: the built binary exits 0 against a ready server and non-zero
//! against a port where nothing listens.

use std::net::SocketAddr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpSocket;
use tokio::process::Command;

use crate::helpers::{database_url, serve_process as serve, serving_address};

/// Runs the built binary's `healthcheck` with `args`; its exit status and output.
async fn healthcheck(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .arg("healthcheck")
        .args(args)
        .env_remove("NOTEGRAPH_LISTEN")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output).await.expect("ends within 20 s").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// A loopback address where nothing listens, for as long as the returned
/// socket lives: bound but never listening, so connections to it are
/// refused and no other process can take the port meanwhile.
pub(crate) fn closed_port() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = socket.local_addr().unwrap();
    (socket, address)
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn healthcheck_exits_zero_on_a_ready_server_and_non_zero_on_a_closed_port(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: a server on its own database.
    let url = database_url(&options);
    let (mut server, mut lines) = serve(&[("DATABASE_URL", &url), ("NOTEGRAPH_LISTEN", "127.0.0.1:0")]);
    let address = serving_address(&mut lines).await;
    let port = address.rsplit_once(':').unwrap().1;
    let (_closed, closed_address) = closed_port();

    // Act: the default URL (from --listen, as the image's NOTEGRAPH_LISTEN
    // sets it), an explicit one, and a port where nothing listens.
    let by_listen = healthcheck(&["--listen", &format!("0.0.0.0:{port}")]).await;
    let by_url = healthcheck(&["--url", &format!("http://{address}/readyz")]).await;
    let closed = healthcheck(&["--listen", &closed_address.to_string()]).await;
    let not_ready = healthcheck(&["--url", &format!("http://{address}/no-such-path")]).await;
    server.kill().await.unwrap();

    // Assert
    assert!(by_listen.0, "{}", by_listen.1);
    assert!(by_listen.1.contains(&format!("http://127.0.0.1:{port}/readyz")), "{}", by_listen.1);
    assert!(by_url.0, "{}", by_url.1);
    assert!(!closed.0, "{}", closed.1);
    assert!(!not_ready.0, "{}", not_ready.1);
    assert!(not_ready.1.contains("404"), "{}", not_ready.1);
}

#[tokio::test]
async fn healthcheck_gives_up_at_its_timeout_on_a_server_that_never_answers() {
    // Arrange: a listener that accepts and never responds.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });

    // Act
    let started = std::time::Instant::now();
    let (ok, text) = healthcheck(&["--url", &format!("http://{address}/readyz"), "--timeout-ms", "500"]).await;

    // Assert
    assert!(!ok, "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}
