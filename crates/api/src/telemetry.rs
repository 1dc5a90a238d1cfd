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
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{FilterExt as _, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
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
    // The request span is always on for the logs, whatever `RUST_LOG`
    // says: it is what puts the request id on every line of a request.
    let filter = EnvFilter::try_new(&config.log_filter)?.or(FilterFn::new(sampling::is_request_span));
    // Logs go to stderr: stdout carries command output (`print-schema`,
    // `token`, `embedded-postgres`).
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour(config));
    let fmt = match config.log_format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
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
            Some(provider)
        }
        None => None,
    };
    let traces = provider.as_ref().map(|provider| trace_layer(provider, config.trace_sample_ratio));
    if provider.is_some() {
        install_propagator();
    }
    tracing_subscriber::registry().with(fmt).with(traces).try_init()?;
    Ok(Telemetry { provider })
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
