//! Logs and traces: one `init` composes the subscriber, each layer under
//! its own filter, so that `RUST_LOG` decides what is logged without
//! turning traces off (metrics take no span: [`crate::metrics::statements`]):
//! - the fmt layer (text or JSON) under the `RUST_LOG` filter;
//! - the OpenTelemetry layer, exporting over OTLP (HTTP/protobuf) when
//!   `NOTEGRAPH_OTLP_ENDPOINT` is set, under a filter that decides once per
//!   request whether it is traced ([`sampling`]).
//!
//! W3C `traceparent` headers are read when the HTTP layer opens a
//! request's span ([`request_span`]) and written into outgoing calls by
//! [`inject_trace_context`].

mod sampling;

use std::io::IsTerminal as _;

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{FilterExt as _, FilterFn};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};
pub use sampling::{Sampling, request_span};

/// The service name traces carry.
const SERVICE_NAME: &str = "notegraph";

/// What must outlive the server: the trace exporter, flushed on shutdown.
#[must_use = "dropping it stops trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the traces still buffered; call once the server has stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(error.message = %err, "trace export did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber; call once, before anything logs.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    let provider = match &config.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint)
                .build()
                .context("building the OTLP exporter (NOTEGRAPH_OTLP_ENDPOINT)")?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(sampler())
                .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
                .build();
            install_propagator();
            Some(provider)
        }
        None => None,
    };
    dispatch(config, provider.as_ref())?.try_init()?;
    Ok(Telemetry { provider })
}

/// The subscriber: logs under `RUST_LOG`, and traces when `provider`
/// exports them, each under a filter of its own. Without traces the log
/// filter is the subscriber's global one ([`Global`]) rather than a
/// per-layer filter beside an absent (`None`) trace layer: such a `None`
/// enables every span in the registry, so each request made, entered and
/// closed all its debug spans (statements, batches, phases) for no one.
fn dispatch(config: &TelemetryConfig, provider: Option<&SdkTracerProvider>) -> anyhow::Result<tracing::Dispatch> {
    // Logs go to stderr: stdout carries command output (`print-schema`,
    // `token`, `embedded-postgres`).
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour(config));
    let fmt = match config.log_format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let logs = tracing_subscriber::registry();
    Ok(match provider {
        Some(provider) => {
            let fmt = fmt.with_filter(log_filter(&config.log_filter)?);
            logs.with(fmt).with(trace_layer(provider, config.trace_sample_ratio)).into()
        }
        None => logs.with(fmt).with(Global(log_filter(&config.log_filter)?)).into(),
    })
}

/// What is logged: what `directives` (`RUST_LOG`) enable, and the request
/// span always, whatever they say: it is what puts the request id on every
/// line of a request.
fn log_filter<S>(directives: &str) -> anyhow::Result<impl Filter<S> + use<S>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    Ok(EnvFilter::try_new(directives)?.or(FilterFn::new(sampling::is_request_span)))
}

/// A per-layer filter as the subscriber's global filter, for a subscriber
/// with one layer. Written here because tracing-subscriber's combinators
/// (`or`) make per-layer filters only, and as a per-layer filter beside no
/// other layer it drops events: an event whose callsite is always enabled
/// is dropped when the filter last judged something else disabled on that
/// thread (the JSON `serving` line went missing under `warn,api=info`).
struct Global<F>(F);

impl<S, F> Layer<S> for Global<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: Filter<S> + 'static,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.0.callsite_enabled(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        self.0.enabled(metadata, &cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }

    // The filter's own view of spans (`RUST_LOG` directives on span
    // fields need them).
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, cx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        self.0.on_record(id, values, cx);
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        self.0.on_enter(id, cx);
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        self.0.on_exit(id, cx);
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        self.0.on_close(id, cx);
    }
}

/// Records every span that reaches the SDK: the trace layer's filter
/// ([`Sampling`]) has already decided, at the root, which traces do. A
/// remote parent that is not sampled is still honoured, should one come
/// through.
pub fn sampler() -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
}

/// Makes `traceparent` the propagation format (W3C Trace Context).
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// The OpenTelemetry layer over `provider`, under the filter that traces
/// `ratio` of the requests that start a trace here ([`Sampling`]).
pub fn trace_layer<S>(provider: &SdkTracerProvider, ratio: f64) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let tracer = provider.tracer(SERVICE_NAME);
    // Busy/idle tracking reads the clock at every poll of every span, and
    // location, thread and target attributes are allocated per span: all
    // off, since the span names and fields say where a span comes from.
    // Context activation attaches the span's OpenTelemetry context at every
    // poll of every span, for code that reads `Context::current()`; ours
    // reads a span's context through the span itself
    // ([`inject_trace_context`]), so it is off too.
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_filter(Sampling::new(ratio))
}

/// Writes the current span's trace context (`traceparent`) into the
/// headers of an outgoing request, for example to the embedding provider.
pub fn inject_trace_context(headers: &mut axum::http::HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeadersMut(headers));
    });
}

/// Reads propagation headers.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// Writes propagation headers.
struct HeadersMut<'a>(&'a mut axum::http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (axum::http::HeaderName::try_from(key), axum::http::HeaderValue::try_from(value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Whether what goes to stderr may be coloured: text logs on a terminal,
/// unless NO_COLOR. Never in files, pipes or JSON.
pub fn colour(config: &TelemetryConfig) -> bool {
    config.log_format == LogFormat::Text && !config.no_color && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, Method};

    use super::*;

    /// Logs at warnings only, as under load; traces of `ratio` of requests
    /// when a trace layer is there.
    fn config(ratio: f64) -> TelemetryConfig {
        TelemetryConfig {
            log_filter: "warn".to_owned(),
            log_format: LogFormat::Text,
            no_color: true,
            metrics_enabled: false,
            metrics_listen: None,
            metrics_max_operation_names: 0,
            metrics_hot_fields: Vec::new(),
            otlp_endpoint: None,
            trace_sample_ratio: ratio,
        }
    }

    /// Under `dispatch`: whether a request's span is made, and whether a
    /// debug span inside it (a statement's, a batch's) is.
    fn made(dispatch: &tracing::Dispatch) -> (bool, bool) {
        tracing::dispatcher::with_default(dispatch, || {
            let request = request_span(&Method::POST, "/graphql", "a-request", &HeaderMap::new());
            let _inside = request.enter();
            let statement = tracing::debug_span!("statement");
            (!request.is_disabled(), !statement.is_disabled())
        })
    }

    #[test]
    fn without_traces_only_the_request_span_is_made() {
        // Logs alone: the request's span, for its log lines, and nothing
        // below it at debug.
        assert_eq!(made(&dispatch(&config(1.0), None).unwrap()), (true, false));
        // Traces of every request: the whole tree.
        let provider = SdkTracerProvider::builder().build();
        assert_eq!(made(&dispatch(&config(1.0), Some(&provider)).unwrap()), (true, true));
    }
}
