//! The accept loop: hyper's HTTP/1 server with the connection limits that
//! `axum::serve` does not expose — a header read timeout (slowloris, and
//! idle keep-alive connections), a cap on the number and the size of
//! headers — and a graceful drain. Request-level limits (body size,
//! timeouts, load shedding) are tower layers in [`super::router`].

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Limits on each connection, enforced by hyper before the router runs.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time to send a request's headers, and to start the next request on
    /// a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Largest request head, in bytes (hyper needs at least 8192).
    pub max_header_bytes: usize,
    /// Open connections; at the cap, accepting waits until one closes.
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting, asks every connection to finish its current request, and
/// returns when all have closed (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let (stop, stopped) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // At the cap, no accept: clients queue in the kernel's backlog
            // (and see a slow connect, not a reset) until a connection ends.
            accepted = listener.accept(), if connections.len() < limits.max_connections => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors, mostly: wait a little
                        // rather than spin.
                        tracing::warn!(error.message = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
                let mut stopped = stopped.clone();
                connections.spawn(async move {
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(err) = result {
                                // Timeouts, oversized heads, resets: the client's doing.
                                tracing::debug!(error.message = %err, "connection ended with an error");
                            }
                            return;
                        }
                        _ = stopped.changed() => {}
                    }
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(());
    while connections.join_next().await.is_some() {}
}
