//! The shutdown trigger of `main`: Ctrl-C or SIGTERM, whichever comes first.

use std::future::Future;

use tokio::signal::unix::{Signal, SignalKind, signal as install};

/// Completes on SIGINT or SIGTERM. Both handlers are installed when this is
/// called, not when the future is first polled: until a handler is in
/// place a signal takes its default action and ends the process at once,
/// with nothing drained or flushed, and the server may be answering (and
/// be sent a SIGTERM) before whatever awaits this polls it. If a handler
/// cannot be installed, that signal is simply not awaited (the other one
/// still works). Must be called inside the runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let interrupt = install(SignalKind::interrupt()).ok();
    let terminate = install(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = received(interrupt) => tracing::info!(signal = "SIGINT", "shutdown requested"),
            () = received(terminate) => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        }
    }
}

/// Waits for the signal `handler` listens for; forever without a handler.
async fn received(handler: Option<Signal>) {
    match handler {
        Some(mut handler) => {
            handler.recv().await;
        }
        None => std::future::pending().await,
    }
}
