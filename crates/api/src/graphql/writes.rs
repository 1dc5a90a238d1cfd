//! The writes' share of the pool: at most `NOTEGRAPH_MAX_CONCURRENT_WRITES`
//! write statements hold a connection at once, fewer than the pool has, so
//! a burst of writes (an import, a syncing client) queues here instead of
//! taking every connection reads need. A write waits for its place at most
//! `NOTEGRAPH_WRITE_WAIT_MS`, and never past its request's deadline; one
//! that waits longer is answered SERVICE_UNAVAILABLE with
//! `Retry-After`, before anything was sent to the database, so the answer
//! is true: nothing was written. Waiting and in-flight writes are the
//! `notegraph_writes{state}` gauges.

use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;
use crate::metrics::process::{WriteState, write_refused, writes};

/// Seconds a write refused for want of a place suggests waiting: the
/// queue moves in milliseconds, so the next second will do.
pub(crate) const RETRY_AFTER_SECS: &str = "1";

/// The places for writes, shared by every request of a server.
#[derive(Debug, Clone)]
pub struct WriteShare {
    permits: std::sync::Arc<Semaphore>,
    wait: Duration,
}

impl WriteShare {
    /// `permits` writes at once; a write waits at most `wait` for a place.
    pub fn new(permits: u32, wait: Duration) -> Self {
        WriteShare { permits: std::sync::Arc::new(Semaphore::new(permits as usize)), wait }
    }

    /// A place for one write statement, waited for at most this share's
    /// wait and never past `budget`'s deadline: `ServiceUnavailable` when
    /// none came in time.
    pub(crate) async fn admit(&self, budget: Option<db::Budget>) -> Result<WritePlace<'_>, ApiError> {
        let left = budget.map_or(self.wait, |b| b.deadline.saturating_duration_since(Instant::now()));
        let waiting = Counted::new(WriteState::Waiting);
        let permit = tokio::time::timeout(self.wait.min(left), self.permits.acquire()).await;
        drop(waiting);
        match permit {
            Ok(Ok(permit)) => Ok(WritePlace { _permit: permit, _in_flight: Counted::new(WriteState::InFlight) }),
            // Timed out, or closed (never: nothing closes it).
            _ => {
                write_refused();
                tracing::warn!(exception.type = "SERVICE_UNAVAILABLE", "write waited too long for a place");
                Err(ApiError::ServiceUnavailable)
            }
        }
    }
}

/// One write's place, given back when dropped (after its statement, or
/// with its abandoned request).
pub(crate) struct WritePlace<'a> {
    _permit: SemaphorePermit<'a>,
    _in_flight: Counted,
}

/// One count in a [`WriteState`] gauge, taken back when dropped, so that a
/// request abandoned mid-wait leaves the gauge right.
struct Counted(WriteState);

impl Counted {
    fn new(state: WriteState) -> Self {
        writes(state).inc();
        Counted(state)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        writes(self.0).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_waits_for_a_place_and_is_refused_past_its_wait() {
        let share = WriteShare::new(1, Duration::from_millis(20));
        let first = share.admit(None).await.expect("a free place");
        assert!(matches!(share.admit(None).await, Err(ApiError::ServiceUnavailable)));
        drop(first);
        assert!(share.admit(None).await.is_ok(), "the place is free again");
    }

    #[tokio::test]
    async fn a_spent_budget_is_refused_at_once() {
        let share = WriteShare::new(1, Duration::from_secs(60));
        let _held = share.admit(None).await.unwrap();
        let spent = db::Budget { deadline: Instant::now(), statement_timeout: Duration::from_secs(20) };
        // Refused without the minute's wait: the request's deadline bounds it.
        assert!(share.admit(Some(spent)).await.is_err());
    }
}
