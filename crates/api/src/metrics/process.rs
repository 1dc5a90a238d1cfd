//! The process-wide families: what the layers below the api crate report
//! to observers (turned into series by [`super::statements`]),
//! subscriptions, embedding calls, and the process itself (CPU, memory,
//! file descriptors). One set per process, added to every registry.
//!
//! Subscriptions and embedding calls are recorded through the functions
//! here, so their transports only call a function and know nothing of
//! Prometheus.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::LATENCY_BUCKETS;

/// Batch sizes: one key up to the largest batches a page of 100 makes.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// The process-wide families.
pub(crate) struct Process {
    /// `sql_statements_total{statement}`, counted when a statement ends.
    pub(crate) statements: IntCounterVec,
    /// `sql_statement_duration_seconds{statement}`.
    pub(crate) statement_duration: HistogramVec,
    /// Statements started and not finished.
    pub(crate) statements_in_flight: IntGauge,
    /// Reads waiting for a pool connection now (reported by the pool's
    /// collector as `db_pool_waiting`).
    pub(crate) acquires_waiting: std::sync::atomic::AtomicI64,
    /// `db_pool_acquire_duration_seconds`: how long reads waited for a connection.
    pub(crate) acquire_duration: Histogram,
    /// `loader_batch_size{loader}`: keys per batch.
    pub(crate) batch_size: HistogramVec,
    /// `loader_batch_duration_seconds{loader}`.
    pub(crate) batch_duration: HistogramVec,
    /// `loader_loads_total{loader}`: keys loaded, the sum of batch sizes.
    pub(crate) loads: IntCounterVec,
    /// `notegraph_writes{state}`: writes waiting for a place among the
    /// writes in flight, and holding one (`crate::graphql::WriteShare`).
    writes: IntGaugeVec,
    /// `notegraph_writes_refused_total`: writes answered SERVICE_UNAVAILABLE
    /// after waiting too long for a place.
    writes_refused: IntCounter,
    subscriptions_open: IntGauge,
    subscription_events: IntCounterVec,
    embedding_calls: IntCounterVec,
    embedding_duration: Histogram,
    field_duration: HistogramVec,
}

/// The one set of the process.
pub(crate) static PROCESS: LazyLock<Process> = LazyLock::new(|| {
    // The names and labels are constants that `prometheus` accepts; a
    // failure here is a typo caught by the first test that starts a server.
    Process::new().expect("valid metric definitions")
});

impl Process {
    fn new() -> Result<Self, prometheus::Error> {
        let latency = |name: &str, help: &str| HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
        Ok(Process {
            statements: IntCounterVec::new(
                Opts::new("notegraph_sql_statements_total", "SQL statements run, by statement name."),
                &["statement"],
            )?,
            statement_duration: HistogramVec::new(
                latency(
                    "notegraph_sql_statement_duration_seconds",
                    "Time of a SQL statement once it has a connection (writes: their transaction's wait included).",
                ),
                &["statement"],
            )?,
            statements_in_flight: IntGauge::new(
                "notegraph_sql_statements_in_flight",
                "SQL statements started and not finished.",
            )?,
            acquires_waiting: std::sync::atomic::AtomicI64::new(0),
            acquire_duration: Histogram::with_opts(latency(
                "notegraph_db_pool_acquire_duration_seconds",
                "How long a read waited for a pool connection.",
            ))?,
            batch_size: HistogramVec::new(
                HistogramOpts::new("notegraph_loader_batch_size", "Keys in one loader batch.")
                    .buckets(BATCH_BUCKETS.to_vec()),
                &["loader"],
            )?,
            batch_duration: HistogramVec::new(
                latency("notegraph_loader_batch_duration_seconds", "Time of one loader batch, its statement included."),
                &["loader"],
            )?,
            loads: IntCounterVec::new(
                Opts::new("notegraph_loader_loads_total", "Keys loaded by loader batches."),
                &["loader"],
            )?,
            writes: IntGaugeVec::new(
                Opts::new(
                    "notegraph_writes",
                    "Write statements by state: waiting for a place in the writes' share of the pool, or in flight.",
                ),
                &["state"],
            )?,
            writes_refused: IntCounter::new(
                "notegraph_writes_refused_total",
                "Writes answered SERVICE_UNAVAILABLE after waiting too long for a place (nothing was written).",
            )?,
            subscriptions_open: IntGauge::new("notegraph_subscriptions_open", "Subscriptions open now.")?,
            subscription_events: IntCounterVec::new(
                Opts::new("notegraph_subscription_events_total", "Subscription events, by outcome: sent or dropped."),
                &["outcome"],
            )?,
            embedding_calls: IntCounterVec::new(
                Opts::new("notegraph_embedding_calls_total", "Calls to the embedder, by result: ok or error."),
                &["result"],
            )?,
            embedding_duration: Histogram::with_opts(latency(
                "notegraph_embedding_call_duration_seconds",
                "Time of one call to the embedder.",
            ))?,
            field_duration: HistogramVec::new(
                latency("notegraph_graphql_field_duration_seconds", "Time to resolve a configured hot field."),
                &["field"],
            )?,
        })
    }
}

/// Adds the process-wide families and the process collector to `registry`.
pub(crate) fn register(registry: &Registry) -> Result<(), prometheus::Error> {
    let p = &*PROCESS;
    registry.register(Box::new(p.statements.clone()))?;
    registry.register(Box::new(p.statement_duration.clone()))?;
    registry.register(Box::new(p.statements_in_flight.clone()))?;
    registry.register(Box::new(p.acquire_duration.clone()))?;
    registry.register(Box::new(p.batch_size.clone()))?;
    registry.register(Box::new(p.batch_duration.clone()))?;
    registry.register(Box::new(p.loads.clone()))?;
    registry.register(Box::new(p.writes.clone()))?;
    registry.register(Box::new(p.writes_refused.clone()))?;
    registry.register(Box::new(p.subscriptions_open.clone()))?;
    registry.register(Box::new(p.subscription_events.clone()))?;
    registry.register(Box::new(p.embedding_calls.clone()))?;
    registry.register(Box::new(p.embedding_duration.clone()))?;
    registry.register(Box::new(p.field_duration.clone()))?;
    // `process_cpu_seconds_total`, `process_resident_memory_bytes`,
    // `process_open_fds`, … (Linux; nothing elsewhere).
    registry.register(Box::new(ProcessCollector::for_self()))
}

/// A subscription started (call [`subscription_closed`] when it ends).
pub fn subscription_opened() {
    PROCESS.subscriptions_open.inc();
}

/// A subscription ended, however it ended.
pub fn subscription_closed() {
    PROCESS.subscriptions_open.dec();
}

/// An event reached a subscriber.
pub fn subscription_event_sent() {
    PROCESS.subscription_events.with_label_values(&["sent"]).inc();
}

/// `count` events were skipped for a subscriber (it fell behind).
pub fn subscription_events_dropped(count: u64) {
    PROCESS.subscription_events.with_label_values(&["dropped"]).inc_by(count);
}

/// One call to the embedder ended, successfully or not, after `elapsed`.
pub fn embedding_call(ok: bool, elapsed: Duration) {
    PROCESS.embedding_calls.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
    PROCESS.embedding_duration.observe(elapsed.as_secs_f64());
}

/// The timing series of one hot field (`Type.field`).
pub(crate) fn field_histogram(field: &str) -> Histogram {
    PROCESS.field_duration.with_label_values(&[field])
}

/// The states of a write in the writes' share of the pool: the label
/// values of `notegraph_writes`, a closed set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteState {
    /// Waiting for a place.
    Waiting,
    /// Holding one: its statement waits for a connection or runs.
    InFlight,
}

/// The gauge of writes in `state`.
pub(crate) fn writes(state: WriteState) -> IntGauge {
    PROCESS.writes.with_label_values(&[match state {
        WriteState::Waiting => "waiting",
        WriteState::InFlight => "in_flight",
    }])
}

/// A write was refused for want of a place.
pub(crate) fn write_refused() {
    PROCESS.writes_refused.inc();
}
