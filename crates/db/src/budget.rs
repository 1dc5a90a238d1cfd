//! Statements under what is left of a request's time budget: every
//! connection's `statement_timeout` is the database timeout (set once, at
//! connect), and a statement that starts when less than that is left of
//! its request's budget gets a timeout of what is left instead. Dropping a
//! sqlx future does not stop a query inside Postgres, so the server-side
//! timeout is what ends the work.
//!
//! The common case costs nothing extra: while more than the database
//! timeout is left (a request's first 5 s with the defaults), the statement
//! runs as it would anyway. Only a statement of a request that has already
//! used some of its budget pays one more round trip (`set_config`), and its
//! connection is closed after use, so the shorter timeout never reaches
//! another statement.
//!
//! A statement whose request is abandoned mid-flight (the client went away,
//! or the request's deadline dropped it) closes its connection, and
//! Postgres cancels the statement at its next check of the client.
//!
//! The wait for a connection is reported to an [`AcquireObserver`] when
//! one is set ([`observe_acquires`]): the api turns the waits into the
//! pool's wait metrics, and `db` knows nothing of metrics.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use crate::Error;

/// Told of every wait for a pool connection, so that the waits can be
/// measured without a span per statement.
pub trait AcquireObserver: Send + Sync {
    /// A wait for a connection began.
    fn started(&self);
    /// That wait ended after `waited`: with a connection, with an error,
    /// or abandoned with its request.
    fn ended(&self, waited: Duration);
}

/// The process's observer of connection waits, if any.
static OBSERVER: OnceLock<&'static dyn AcquireObserver> = OnceLock::new();

/// Reports every later wait for a connection to `observer`. Once per
/// process: the first observer set stays.
pub fn observe_acquires(observer: &'static dyn AcquireObserver) {
    let _ = OBSERVER.set(observer);
}

/// One wait for a connection, reported as ended when dropped.
struct Wait {
    observer: &'static dyn AcquireObserver,
    started: Instant,
}

impl Wait {
    fn start(observer: &'static dyn AcquireObserver) -> Self {
        observer.started();
        Wait { observer, started: Instant::now() }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.observer.ended(self.started.elapsed());
    }
}

/// A connection of `pool`, the wait reported to the observer when set.
async fn acquire(pool: &PgPool) -> Result<PoolConnection<Postgres>, sqlx::Error> {
    let _wait = OBSERVER.get().map(|observer| Wait::start(*observer));
    pool.acquire().await
}

/// Kept between a statement's timeout and its request's deadline, so that
/// the statement ends with its own precise error before the request's
/// deadline drops it.
const MARGIN: Duration = Duration::from_millis(50);

/// A request's deadline and the database timeout every connection already
/// has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// When the request's execution is abandoned.
    pub deadline: Instant,
    /// The connections' own `statement_timeout`.
    pub statement_timeout: Duration,
}

impl Budget {
    /// The timeout a statement starting now needs when it is shorter than
    /// the connections' own; `None` when theirs fits.
    fn tighter(&self, now: Instant) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(now).saturating_sub(MARGIN);
        (left < self.statement_timeout).then_some(left)
    }

    /// The later of two budgets: a batch that serves several requests runs
    /// until the last of them gives up; `None` (no deadline) is latest.
    pub fn latest(a: Option<Budget>, b: Option<Budget>) -> Option<Budget> {
        Some(if a?.deadline >= b?.deadline { a? } else { b? })
    }
}

/// Runs `statement` on a connection of `pool`, under `budget` when given
/// (see the module docs). A budget already spent fails with
/// [`Error::Timeout`] without sending anything.
pub async fn within<T>(
    pool: &PgPool,
    budget: Option<Budget>,
    statement: impl AsyncFnOnce(&mut PgConnection) -> Result<T, Error>,
) -> Result<T, Error> {
    let tighter = budget.and_then(|budget| budget.tighter(Instant::now()));
    let mut checkout = Checkout { conn: acquire(pool).await?, finished: false };
    if let Some(left) = tighter {
        if left < Duration::from_millis(1) {
            checkout.finished = true;
            return Err(Error::Timeout);
        }
        // The connection keeps this timeout: it must not serve anyone else.
        checkout.conn.close_on_drop();
        sqlx::query("select set_config('statement_timeout', $1, false)")
            .bind(format!("{}ms", left.as_millis()))
            .execute(&mut *checkout.conn)
            .await?;
    }
    let result = statement(&mut checkout.conn).await;
    checkout.finished = true;
    result
}

/// A connection taken for one statement. Dropped before the statement
/// finished (the request was abandoned: its client went away, or its
/// deadline passed), the connection is closed rather than returned, and
/// Postgres, checking the client every `client_connection_check_interval`
/// ([`crate::Settings`]), cancels the statement instead of running it to
/// its timeout.
struct Checkout {
    conn: PoolConnection<Postgres>,
    finished: bool,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_budget_shorter_than_the_database_timeout_tightens_it() {
        let now = Instant::now();
        let budget = |left_ms| Budget {
            deadline: now + Duration::from_millis(left_ms),
            statement_timeout: Duration::from_secs(20),
        };
        assert_eq!(budget(25_000).tighter(now), None);
        assert_eq!(budget(1_050).tighter(now), Some(Duration::from_millis(1_000)));
        assert_eq!(budget(10).tighter(now), Some(Duration::ZERO));
    }

    #[test]
    fn a_shared_batch_runs_under_the_latest_deadline() {
        let now = Instant::now();
        let at =
            |ms| Some(Budget { deadline: now + Duration::from_millis(ms), statement_timeout: Duration::from_secs(20) });
        assert_eq!(Budget::latest(at(100), at(300)), at(300));
        assert_eq!(Budget::latest(at(300), at(100)), at(300));
        assert_eq!(Budget::latest(at(100), None), None);
        assert_eq!(Budget::latest(None, at(100)), None);
    }
}
