//! The process's one `LISTEN` connection: every committed note write, from
//! any replica, arrives here as a [`NoteWritten`] and goes to the response
//! cache (to drop what it changed) and to the subscription hub (to reach
//! subscribers); each batch `notegraph reembed` stores drops the cached
//! search results. One connection per process, whatever the number of
//! subscribers.
//!
//! While the connection is down, nothing is served from or stored in the
//! cache, the read replica is not read, and subscribers are told on
//! reconnecting that events may have been missed in between (the cache is
//! flushed for the same reason). A connection that goes silent without
//! closing (a black-holed route: no error ever comes) is found by an empty
//! query on it after every quiet [`QUIET_CHECK`], and counts as lost when
//! that does not answer within [`CHECK_TIMEOUT`].

use std::time::Duration;

use chrono::Utc;
use db::notify::{EMBEDDINGS_CHANNEL, NoteWritten, WRITES_CHANNEL};
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::graphql::EventBus;
use crate::response_cache::Invalidation;

/// Note writes, and `notegraph reembed`'s batches.
const CHANNELS: &[&str] = &[WRITES_CHANNEL, EMBEDDINGS_CHANNEL];

/// First wait before reconnecting; doubled on each failure.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// After this long without a notification, the connection is checked.
const QUIET_CHECK: Duration = Duration::from_secs(10);
/// A check not answered within this means the connection is lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The `LISTEN` connection, if it can be made within a second: the server
/// starts without it when the database is down, and [`run`] keeps trying.
pub async fn connect(pool: &db::PgPool) -> Option<PgListener> {
    let listen = db::notify::listen(pool, CHANNELS);
    match tokio::time::timeout(Duration::from_secs(1), listen).await {
        Ok(Ok(listener)) => Some(listener),
        Ok(Err(err)) => {
            tracing::warn!(error.message = %err.refusal(), "cannot LISTEN yet; cache off and events paused until it can");
            None
        }
        Err(_) => {
            tracing::warn!("cannot LISTEN yet; cache off and events paused until it can");
            None
        }
    }
}

/// Where notifications go.
#[derive(Clone)]
pub struct Targets {
    /// The cache to invalidate, and this process's write identity.
    pub invalidation: Invalidation,
    /// The subscription hub.
    pub events: EventBus,
}

/// Receives write events until `stop` turns true, reconnecting with
/// exponential backoff whenever the connection is lost.
pub async fn run(pool: db::PgPool, listener: Option<PgListener>, targets: Targets, mut stop: watch::Receiver<bool>) {
    let cache = targets.invalidation.cache.clone();
    let invalidation = &targets.invalidation;
    let mut listener = match listener {
        Some(listener) => listener,
        None => {
            let since = Utc::now();
            invalidation.set_listening(false);
            let Some(listener) = reconnect(&pool, &mut stop).await else { return };
            invalidation.set_listening(true);
            targets.events.publish_gap(since, Utc::now());
            listener
        }
    };
    loop {
        let next = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            next = tokio::time::timeout(QUIET_CHECK, listener.try_recv()) => next,
        };
        let received = match next {
            Ok(received) => received,
            // Quiet: a notification that arrives during the check is kept
            // by the listener for the next `try_recv`.
            // An empty query: one round trip that runs no statement, so that
            // it never shows among the statements pg_stat_statements counts.
            Err(_) => match tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("").execute(&mut listener)).await {
                Ok(Ok(_)) => continue,
                Ok(Err(err)) => Err(err),
                Err(_) => Ok(None),
            },
        };
        match received {
            Ok(Some(notification)) if notification.channel() == EMBEDDINGS_CHANNEL => {
                tracing::debug!(model = notification.payload(), "embeddings changed; dropping cached searches");
                invalidation.embeddings_changed();
            }
            Ok(Some(notification)) => match serde_json::from_str::<NoteWritten>(notification.payload()) {
                Ok(event) => {
                    // This process invalidated its own writes before
                    // answering them.
                    if event.origin != targets.invalidation.writes.origin() {
                        targets.invalidation.heard(&event);
                    }
                    targets.events.publish(event);
                }
                Err(err) => {
                    // Written by another version of the server, or by hand:
                    // what it changed is unknown.
                    tracing::warn!(error.message = %err, "unreadable write event; flushing the response cache");
                    if let Some(cache) = &cache {
                        cache.flush();
                    }
                    let now = Utc::now();
                    targets.events.publish_gap(now, now);
                }
            },
            Ok(None) | Err(_) => {
                let since = Utc::now();
                tracing::warn!("lost the LISTEN connection; cache off and events paused until it is back");
                invalidation.set_listening(false);
                let Some(reconnected) = reconnect(&pool, &mut stop).await else { return };
                listener = reconnected;
                invalidation.set_listening(true);
                targets.events.publish_gap(since, Utc::now());
                tracing::info!("LISTEN connection back; the response cache was flushed");
            }
        }
    }
}

/// A new `LISTEN` connection, retried with exponential backoff and jitter
/// (so that replicas do not reconnect in step); `None` when told to stop.
async fn reconnect(pool: &db::PgPool, stop: &mut watch::Receiver<bool>) -> Option<PgListener> {
    let mut backoff = BACKOFF_START;
    for attempt in 0_u64.. {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return None,
            () = tokio::time::sleep(jittered(backoff, attempt)) => {}
        }
        match db::notify::listen(pool, CHANNELS).await {
            Ok(listener) => return Some(listener),
            Err(err) => tracing::warn!(error.message = %err.refusal(), attempt, "LISTEN reconnect failed"),
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    None
}

/// `base` shortened by up to a quarter, varying by process and attempt.
fn jittered(base: Duration, attempt: u64) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let seed = u64::from(nanos) ^ u64::from(std::process::id()) ^ attempt.rotate_left(17);
    let quarter = base / 4;
    let cut = xxhash_rust::xxh3::xxh3_64(&seed.to_le_bytes()) % (quarter.as_nanos() as u64 + 1);
    base - Duration::from_nanos(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter_below_the_base() {
        for attempt in 0..200 {
            let waited = jittered(Duration::from_millis(400), attempt);
            assert!(waited <= Duration::from_millis(400) && waited >= Duration::from_millis(300), "{waited:?}");
        }
    }
}
