//! Prometheus metrics: the families, the registry `/metrics` renders, and
//! the small API the rest of the server records through. The catalogue of
//! every series is docs/OBSERVABILITY.md.
//!
//! Two kinds of family:
//! - per [`Metrics`] (one per `Application`): HTTP requests, GraphQL
//!   operations, persisted-query lookups, and the response cache and pool
//!   read at scrape time;
//! - process-wide ([`process`]): what code below the api crate reports
//!   to observers (SQL statements, loader batches, waits for a
//!   connection, see [`statements`]), subscriptions and embedding calls;
//!   every registry includes them.
//!
//! Nothing here runs per GraphQL field: histograms are per request, per
//! batch and per statement.

mod collectors;
mod operations;
pub mod process;
pub mod statements;

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

pub use operations::OperationNames;
pub(crate) use process::field_histogram;
pub use process::{
    embedding_call, subscription_closed, subscription_event_sent, subscription_events_dropped, subscription_opened,
};

/// Latency buckets, in seconds, from 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric family of one server; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    operations: IntCounterVec,
    operation_duration: HistogramVec,
    operation_names: OperationNames,
    persisted_queries: IntCounterVec,
}

/// What one executed GraphQL operation reports.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    /// The operation's name as sent (bounded by [`OperationNames`]).
    pub name: Option<&'a str>,
    /// `query`, `mutation`, `subscription`, or `unknown` when the document
    /// did not parse.
    pub kind: &'static str,
    /// The first error's `extensions.code`, or `OK`.
    pub code: &'static str,
    /// The document parsed and validated (it ran): only then may a new
    /// name take one of the bounded name slots.
    pub validated: bool,
    /// The first error's `extensions.service` (`embedding`: the embedding
    /// provider is unavailable), else empty.
    pub service: &'static str,
}

impl Metrics {
    /// A registry with every family, the process-wide ones included, that
    /// gives at most `max_operation_names` operation names their own series.
    pub fn new(max_operation_names: usize) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("notegraph_http_requests_total", "HTTP requests answered, by route, method and status."),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "notegraph_http_request_duration_seconds",
                "Time to answer an HTTP request (to the response head).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        let operations = IntCounterVec::new(
            Opts::new(
                "notegraph_graphql_operations_total",
                "GraphQL operations executed, by name, type, error code and unavailable service.",
            ),
            &["operation", "type", "code", "service"],
        )?;
        let operation_duration = HistogramVec::new(
            HistogramOpts::new("notegraph_graphql_operation_duration_seconds", "Time to execute a GraphQL operation.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation", "type"],
        )?;
        let persisted_queries = IntCounterVec::new(
            Opts::new(
                "notegraph_persisted_query_lookups_total",
                "Automatic persisted query lookups by hash, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(operations.clone()))?;
        registry.register(Box::new(operation_duration.clone()))?;
        registry.register(Box::new(persisted_queries.clone()))?;
        process::register(&registry)?;
        let operation_names = OperationNames::new(max_operation_names);
        Ok(Metrics {
            inner: Arc::new(Inner {
                registry,
                http_requests,
                http_duration,
                operations,
                operation_duration,
                operation_names,
                persisted_queries,
            }),
        })
    }

    /// Adds a collector of its own (the budgets': [`crate::budgets`]).
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> Result<(), prometheus::Error> {
        self.inner.registry.register(collector)
    }

    /// Adds the response cache's counters, read at each scrape.
    pub fn watch_cache(&self, cache: cache::ResponseCache) -> Result<(), prometheus::Error> {
        self.inner.registry.register(Box::new(collectors::CacheCollector::new(cache)?))
    }

    /// Adds the size of the parsed-document map, read at each scrape.
    pub(crate) fn watch_parsed_documents(
        &self,
        parsed: crate::parsed::ParsedDocuments,
    ) -> Result<(), prometheus::Error> {
        self.inner.registry.register(Box::new(collectors::ParsedDocumentsCollector::new(parsed)?))
    }

    /// Adds the read replica's routing counts and state, and its pool's
    /// connections (`pool="replica"`), read at each scrape.
    pub fn watch_replica(&self, replica: crate::replica::ReadReplica) -> Result<(), prometheus::Error> {
        let pool = collectors::PoolCollector::new(replica.pool().clone(), collectors::PoolRole::Replica)?;
        self.inner.registry.register(Box::new(pool))?;
        self.inner.registry.register(Box::new(collectors::ReplicaCollector::new(replica)?))
    }

    /// Adds the primary pool's size and idle connections (`pool="primary"`),
    /// read at each scrape, and
    /// has `db` report its waits for a connection and its statements, and
    /// `loaders` its batches (process-wide, like the families they feed).
    pub fn watch_pool(&self, pool: db::PgPool) -> Result<(), prometheus::Error> {
        db::budget::observe_acquires(&statements::AcquireMetrics);
        db::observe_statements(&statements::StatementMetrics);
        loaders::observe_batches(&statements::StatementMetrics);
        self.inner.registry.register(Box::new(collectors::PoolCollector::new(pool, collectors::PoolRole::Primary)?))
    }

    /// Counts one HTTP answer; `route` is the matched route, never the raw
    /// path, and a method outside HTTP's own is counted as `other`, so
    /// invented methods cannot make new series.
    pub fn http_request(&self, route: &str, method: &Method, status: &str, elapsed: Duration) {
        let inner = &self.inner;
        let method = method_label(method);
        inner.http_requests.with_label_values(&[route, method, status]).inc();
        inner.http_duration.with_label_values(&[route, method]).observe(elapsed.as_secs_f64());
    }

    /// Counts one GraphQL operation, executed or refused.
    pub fn operation(&self, operation: Operation<'_>, elapsed: Duration) {
        let inner = &self.inner;
        let name = inner.operation_names.label(operation.name, operation.validated);
        inner.operations.with_label_values(&[name, operation.kind, operation.code, operation.service]).inc();
        inner.operation_duration.with_label_values(&[name, operation.kind]).observe(elapsed.as_secs_f64());
    }

    /// Counts an automatic persisted query lookup by hash: found or not.
    pub fn persisted_query(&self, found: bool) {
        self.inner.persisted_queries.with_label_values(&[if found { "hit" } else { "miss" }]).inc();
    }

    /// Every series in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.inner.registry.gather();
        prometheus::TextEncoder::new().encode_to_string(&families).unwrap_or_else(|err| {
            tracing::error!(exception.type = "INTERNAL", error.message = %err, "metrics did not encode");
            String::new()
        })
    }
}

/// The `method` label: one of HTTP's own methods, else `other`.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN.iter().find(|known| *known == method).map_or("other", Method::as_str)
}
