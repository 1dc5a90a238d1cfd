//! The series of the layers below the api crate, which report to
//! observers the api sets and know nothing of Prometheus: `db` tells of
//! its waits for a connection ([`AcquireMetrics`]) and of each statement
//! by operation, `loaders` of each batch by loader ([`StatementMetrics`]).
//! None of them goes through a span: a span per statement and per batch,
//! turned into series by a `tracing` layer, cost its bookkeeping in every
//! layer at every poll, on every request; an observer costs two clock
//! reads and the series' updates (docs/PERFORMANCE.md, "Statements
//! without spans, and smaller futures").

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::process::PROCESS;

/// Turns `db`'s reports of connection waits into `notegraph_db_pool_waiting`
/// and `notegraph_db_pool_acquire_duration_seconds` ([`db::budget::observe_acquires`]).
pub(crate) struct AcquireMetrics;

impl db::budget::AcquireObserver for AcquireMetrics {
    fn started(&self) {
        PROCESS.acquires_waiting.fetch_add(1, Ordering::Relaxed);
    }

    fn ended(&self, waited: Duration) {
        PROCESS.acquires_waiting.fetch_sub(1, Ordering::Relaxed);
        PROCESS.acquire_duration.observe(waited.as_secs_f64());
    }
}

/// Turns `db`'s statements into the `notegraph_sql_statement*` series
/// ([`db::observe_statements`]), and `loaders`' batches into the
/// `notegraph_loader_*` series ([`loaders::observe_batches`]).
pub(crate) struct StatementMetrics;

impl db::StatementObserver for StatementMetrics {
    fn started(&self, _: &'static str) {
        PROCESS.statements_in_flight.inc();
    }

    fn ended(&self, operation: &'static str, elapsed: Duration) {
        PROCESS.statements_in_flight.dec();
        PROCESS.statements.with_label_values(&[operation]).inc();
        PROCESS.statement_duration.with_label_values(&[operation]).observe(elapsed.as_secs_f64());
    }
}

impl loaders::BatchObserver for StatementMetrics {
    fn ran(&self, loader: &'static str, keys: usize, elapsed: Duration) {
        PROCESS.loads.with_label_values(&[loader]).inc_by(keys as u64);
        PROCESS.batch_size.with_label_values(&[loader]).observe(keys as f64);
        PROCESS.batch_duration.with_label_values(&[loader]).observe(elapsed.as_secs_f64());
    }
}
