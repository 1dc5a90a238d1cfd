//! The accept loop: hyper's HTTP/1 and HTTP/2 servers with the connection
//! limits that `axum::serve` does not expose — a header read timeout
//! (slowloris, and idle keep-alive connections), a cap on the number and
//! the size of headers — and a graceful drain. Request-level limits (body
//! size, timeouts, load shedding) are tower layers in [`super::router`].
//!
//! Plain TCP is HTTP/1.1 only, exactly as before TLS existed (no prior-
//! knowledge HTTP/2: nothing to detect on the hot path). Over TLS
//! ([`super::tls`]) the handshake is bounded by the header read timeout,
//! and ALPN decides: `h2` gets the HTTP/2 server, anything else HTTP/1.1
//! with upgrades (WebSockets). hyper-util's `auto` server is not used:
//! its protocol detection reads the first bytes with no time limit, which
//! would let a silent connection outlive the header read timeout, and ALPN
//! has already said which protocol it is.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use super::tls::ServerTls;

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
    /// Whether each request carries its peer's address (axum's
    /// `ConnectInfo`): only the per-client budgets read it, and without
    /// them the insert would cost every request an allocation for nothing.
    pub peer_addresses: bool,
}

/// Drives one hyper connection until it ends, or until `stopped` says
/// shut down: then asks it to finish its in-flight requests (HTTP/2: a
/// GOAWAY) and drives it to the end. A macro rather than a function: the
/// HTTP/1 and HTTP/2 connections share no trait for `graceful_shutdown`.
macro_rules! drive {
    ($connection:expr, $stopped:expr) => {{
        let connection = $connection;
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    // Timeouts, oversized heads, resets: the client's doing.
                    tracing::debug!(error.message = %err, "connection ended with an error");
                }
                return;
            }
            _ = $stopped.changed() => {}
        }
        connection.as_mut().graceful_shutdown();
        let _ = connection.await;
    }};
}

/// The HTTP/1.1 server's settings: every limit of [`ConnectionLimits`].
fn http1_builder(limits: &ConnectionLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
}

/// The HTTP/2 server's settings. HTTP/2 has no header count, only the
/// decoded size of a request's header list: that is `max_header_bytes`.
/// It has no header read timeout either: a connection that stops
/// answering pings within the header read timeout is closed (an idle one
/// that answers stays, within the connection cap, as browsers expect).
fn http2_builder(limits: &ConnectionLimits) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    builder
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` completes, then stops accepting, asks every connection to
/// finish its current request, and returns when all have closed (the
/// caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let builder = http1_builder(&limits);
    // Shared by the TLS connections' tasks, each of which picks one.
    let builders = tls.is_some().then(|| Arc::new((http1_builder(&limits), http2_builder(&limits))));
    let (stop, stopped) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // At the cap, no accept: clients queue in the kernel's backlog
            // (and see a slow connect, not a reset) until a connection ends.
            accepted = listener.accept(), if connections.len() < limits.max_connections => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors, mostly: wait a little
                        // rather than spin.
                        tracing::warn!(error.message = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // The peer's address in each request's extensions, as
                // axum's `ConnectInfo` (the budgets' client address).
                let peer = limits.peer_addresses.then_some(ConnectInfo(peer));
                let service = TowerToHyperService::new(router.clone().map_request(
                    move |mut request: axum::http::Request<hyper::body::Incoming>| {
                        if let Some(peer) = peer {
                            request.extensions_mut().insert(peer);
                        }
                        request
                    },
                ));
                let mut stopped = stopped.clone();
                let (Some(tls), Some(builders)) = (&tls, &builders) else {
                    let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
                    connections.spawn(async move { drive!(connection, stopped) });
                    continue;
                };
                let (acceptor, builders) = (tls.acceptor().clone(), builders.clone());
                let timeout = limits.header_read_timeout;
                connections.spawn(async move {
                    // In the connection's task, so a slow handshake holds up
                    // no other; bounded like a request's head, and dropped
                    // at shutdown (there is no request to finish yet).
                    let stream = tokio::select! {
                        handshake = tokio::time::timeout(timeout, acceptor.accept(stream)) => match handshake {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                tracing::debug!(error.message = %err, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                return;
                            }
                        },
                        _ = stopped.changed() => return,
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = TokioIo::new(stream);
                    if h2 {
                        drive!(builders.1.serve_connection(io, service), stopped)
                    } else {
                        drive!(builders.0.serve_connection(io, service).with_upgrades(), stopped)
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(());
    while connections.join_next().await.is_some() {}
}
