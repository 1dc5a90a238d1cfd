//! Statements measured without a span. Each statement function opens a
//! [`Statement`] as its first line: it names the operation on the
//! statement's span (`db.operation`, for traces, when something traces
//! it) and reports the statement's start and end to the
//! [`StatementObserver`] the api sets, so that `db` knows nothing of
//! metrics. A statement then costs two clock reads and the observer's
//! counters; measured through its span, it cost the span's bookkeeping in
//! every layer at every poll (docs/PERFORMANCE.md, "Statements without
//! spans, and smaller futures").

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Told of every statement `db` runs, so that statements can be counted
/// and timed by operation without a span per statement.
pub trait StatementObserver: Send + Sync {
    /// A statement of `operation` began.
    fn started(&self, operation: &'static str);
    /// That statement ended after `elapsed`: answered, failed, or dropped
    /// with its request.
    fn ended(&self, operation: &'static str, elapsed: Duration);
}

/// The process's observer of statements, if any.
static OBSERVER: OnceLock<&'static dyn StatementObserver> = OnceLock::new();

/// Reports every later statement to `observer`. Once per process: the
/// first observer set stays.
pub fn observe_statements(observer: &'static dyn StatementObserver) {
    let _ = OBSERVER.set(observer);
}

/// One statement under way, reported as ended when dropped.
pub(crate) struct Statement {
    observer: Option<&'static dyn StatementObserver>,
    operation: &'static str,
    started: Instant,
}

impl Statement {
    /// Starts measuring a statement of `operation`, from inside the
    /// statement function's span (whose `db.operation` it fills).
    pub(crate) fn start(operation: &'static str) -> Self {
        record_on_own_span("db.operation", operation);
        let observer = OBSERVER.get().copied();
        if let Some(observer) = observer {
            observer.started(operation);
        }
        Statement { observer, operation, started: Instant::now() }
    }
}

/// Records `field` on the statement function's own span, when something
/// traces it. A span that nothing traces is not current, and the one that
/// is then (the request's, a batch's) lacks the field: it is checked by
/// its metadata first, because taking a handle to it (`Span::current`)
/// costs a reference count up and down in the subscriber's registry on
/// every statement, for nothing.
pub(crate) fn record_on_own_span(field: &str, value: impl tracing::Value) {
    let own = tracing::dispatcher::get_default(|dispatch| {
        dispatch.current_span().metadata().is_some_and(|span| span.fields().field(field).is_some())
    });
    if own {
        tracing::Span::current().record(field, value);
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        if let Some(observer) = self.observer {
            observer.ended(self.operation, self.started.elapsed());
        }
    }
}
