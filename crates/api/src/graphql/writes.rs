//! The writes' share of the pool: at most `NOTEGRAPH_MAX_CONCURRENT_WRITES`
//! write statements hold a connection at once, fewer than the pool has, so
//! a burst of writes (an import, a syncing client) queues here instead of
//! taking every connection reads need. A write waits for its place at most
//! `NOTEGRAPH_WRITE_WAIT_MS`, and never past its request's deadline; one
//! that waits longer is answered SERVICE_UNAVAILABLE with
//! `Retry-After`, before anything was sent to the database, so the answer
//! is true: nothing was written. Waiting and in-flight writes are the
//! `notegraph_writes{state}` gauges.
//!
//! Creates are committed in groups ([`db::batch`]): creates that arrive
//! while every place is taken queue, and the next free place takes up to
//! [`CREATE_BATCH`] of them as one statement, one commit and one `NOTIFY`
//! lock for all (each commit of a statement that notified holds that
//! global lock through its WAL flush, so notifying commits run one at a
//! time). A lone create goes at once. The wait for a place is the wait in
//! that queue, bounded as above; once its batch is sent, a create is
//! written, even if its request's deadline passes before the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use db::batch::{Batcher, Unanswered};
use db::notes::{ChangedNote, NewNote};
use db::notify::Writer;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;
use crate::metrics::process::{WriteState, write_refused, writes};

/// Seconds a write refused for want of a place suggests waiting: the
/// queue moves in milliseconds, so the next second will do.
pub(crate) const RETRY_AFTER_SECS: &str = "1";

/// Creates written by one statement at most: a batch of 32 notes with
/// ten tags each binds a few hundred array elements and 50 KiB of
/// embeddings, and one statement's time stays a few milliseconds.
pub(crate) const CREATE_BATCH: usize = 32;

/// The places for writes, shared by every request of a server.
#[derive(Debug, Clone)]
pub struct WriteShare {
    permits: Arc<Semaphore>,
    wait: Duration,
    creates: Arc<Batcher<Create, Result<ChangedNote, db::Error>>>,
}

/// One create waiting for, or in, its batch.
struct Create {
    note: NewNote,
    writer: Writer,
    budget: Option<db::Budget>,
    pool: db::PgPool,
    /// Counts the create as waiting until a batch takes (or drops) it.
    waiting: Counted,
}

impl WriteShare {
    /// `permits` writes at once; a write waits at most `wait` for a place.
    pub fn new(permits: u32, wait: Duration) -> Self {
        let permits = Arc::new(Semaphore::new(permits as usize));
        let creates = Batcher::new(Arc::clone(&permits), CREATE_BATCH, write_creates);
        WriteShare { permits, wait, creates: Arc::new(creates) }
    }

    /// Writes `note` in the next batch of creates (see the module docs),
    /// under `budget`; the outer error is the refusal of a create that
    /// waited too long in the queue (nothing was written), the inner one
    /// its own outcome.
    pub(crate) async fn create(
        &self,
        pool: &db::PgPool,
        budget: Option<db::Budget>,
        note: NewNote,
        writer: Writer,
    ) -> Result<Result<ChangedNote, db::Error>, ApiError> {
        let wait = self.wait.min(left(budget, self.wait));
        let create = Create { note, writer, budget, pool: pool.clone(), waiting: Counted::new(WriteState::Waiting) };
        match self.creates.submit(create, wait).await {
            Ok(outcome) => Ok(outcome),
            Err(Unanswered::NotSent) => Err(refused()),
            Err(Unanswered::Lost) => {
                tracing::error!(exception.type = "INTERNAL", "a batch of creates ended without answering");
                Err(ApiError::Internal)
            }
        }
    }

    /// A place for one write statement, waited for at most this share's
    /// wait and never past `budget`'s deadline: `ServiceUnavailable` when
    /// none came in time.
    pub(crate) async fn admit(&self, budget: Option<db::Budget>) -> Result<WritePlace<'_>, ApiError> {
        let left = left(budget, self.wait);
        let waiting = Counted::new(WriteState::Waiting);
        let permit = tokio::time::timeout(self.wait.min(left), self.permits.acquire()).await;
        drop(waiting);
        match permit {
            Ok(Ok(permit)) => Ok(WritePlace { _permit: permit, _in_flight: Counted::new(WriteState::InFlight) }),
            // Timed out, or closed (never: nothing closes it).
            _ => Err(refused()),
        }
    }
}

/// What is left of `budget`, or `otherwise` without one.
fn left(budget: Option<db::Budget>, otherwise: Duration) -> Duration {
    budget.map_or(otherwise, |b| b.deadline.saturating_duration_since(Instant::now()))
}

/// The answer to a write that waited too long for a place, counted.
fn refused() -> ApiError {
    write_refused();
    tracing::warn!(exception.type = "SERVICE_UNAVAILABLE", "write waited too long for a place");
    ApiError::ServiceUnavailable
}

/// Runs one batch of creates, holding one place (taken by the batcher),
/// until the latest of its requests' deadlines.
async fn write_creates(batch: Vec<Create>) -> Vec<Result<ChangedNote, db::Error>> {
    let Some(pool) = batch.first().map(|create| create.pool.clone()) else { return Vec::new() };
    let _in_flight = Counted::new(WriteState::InFlight);
    let budget = batch.iter().map(|create| create.budget).reduce(db::Budget::latest).flatten();
    let notes: Vec<_> = batch
        .into_iter()
        .map(|Create { note, writer, waiting, .. }| {
            drop(waiting);
            (note, writer)
        })
        .collect();
    let notes: Vec<_> = notes.iter().map(|(note, writer)| (note, *writer)).collect();
    db::notes::insert_batch(&pool, budget, &notes).await
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
