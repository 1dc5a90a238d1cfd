//! Turns the spans of the layers below the api crate into series, so that
//! `db` and `loaders` report through `tracing` alone and know nothing of
//! Prometheus: a `db` span with a `db.operation` field is one SQL
//! statement, a `loader.batch` span one loader batch. (Waits for a pool
//! connection are reported without a span: [`AcquireMetrics`].)
//!
//! The layer runs under its own per-layer filter ([`filter`]): it sees
//! only those spans, whatever `RUST_LOG` says, and its cost is one timing
//! per statement and per batch — never per field.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prometheus::{Histogram, IntCounter};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::process::PROCESS;

/// The name of the span a loader batch runs in (set by `loaders`).
pub const LOADER_BATCH: &str = "loader.batch";

/// Records SQL statements and loader batches from their spans.
pub struct SpanMetrics;

/// Only the spans this layer turns into series: everything else never
/// reaches it.
pub fn filter() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    FilterFn::new(is_measured)
}

/// A `db` statement's span or a loader batch's.
fn is_measured(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    let in_db = target == "db" || target.starts_with("db::");
    metadata.is_span()
        && (in_db && metadata.fields().field("db.operation").is_some() || metadata.name() == LOADER_BATCH)
}

/// Turns `db`'s reports of connection waits into `db_pool_waiting` and
/// `db_pool_acquire_duration_seconds` ([`db::budget::observe_acquires`]):
/// two atomic updates and one clock read per wait, where a span cost a
/// span's bookkeeping in every layer.
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

/// What a span measures, kept in its extensions until it closes.
struct Timing {
    started: Instant,
    duration: Histogram,
    count: Counted,
}

enum Counted {
    Statement(IntCounter),
    Batch(IntCounter, Histogram, u64),
}

/// Reads the label and size fields.
#[derive(Default)]
struct Fields {
    operation: Option<String>,
    loader: Option<String>,
    size: u64,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "db.operation" => self.operation = Some(value.to_owned()),
            "loader" => self.loader = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "batch.size" {
            self.size = value;
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or_default());
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

impl<S> Layer<S> for SpanMetrics
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let timing = if let Some(operation) = fields.operation {
            PROCESS.statements_in_flight.inc();
            Timing {
                started: Instant::now(),
                duration: PROCESS.statement_duration.with_label_values(&[&operation]),
                count: Counted::Statement(PROCESS.statements.with_label_values(&[&operation])),
            }
        } else if let Some(loader) = fields.loader {
            Timing {
                started: Instant::now(),
                duration: PROCESS.batch_duration.with_label_values(&[&loader]),
                count: Counted::Batch(
                    PROCESS.loads.with_label_values(&[&loader]),
                    PROCESS.batch_size.with_label_values(&[&loader]),
                    fields.size,
                ),
            }
        } else {
            return;
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(timing);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(timing) = span.extensions_mut().remove::<Timing>() else { return };
        timing.duration.observe(timing.started.elapsed().as_secs_f64());
        match timing.count {
            Counted::Statement(statements) => {
                statements.inc();
                PROCESS.statements_in_flight.dec();
            }
            Counted::Batch(loads, size, keys) => {
                loads.inc_by(keys);
                size.observe(keys as f64);
            }
        }
    }
}
