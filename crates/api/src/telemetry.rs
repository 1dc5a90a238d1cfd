//! Logging setup: one `init` that composes the filter and the formatter.
//! (OpenTelemetry export is added by the observability work.)

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global subscriber; call once, before anything logs.
pub fn init(config: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter)?;
    let registry = tracing_subscriber::registry().with(filter);
    // Logs go to stderr: stdout carries command output (`print-schema`,
    // `token`, `embedded-postgres`).
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour(config));
    match config.log_format {
        LogFormat::Text => registry.with(layer).try_init()?,
        LogFormat::Json => registry.with(layer.json()).try_init()?,
    }
    Ok(())
}

/// Whether what goes to stderr may be coloured: text logs on a terminal,
/// unless NO_COLOR. Never in files, pipes or JSON.
pub fn colour(config: &TelemetryConfig) -> bool {
    config.log_format == LogFormat::Text && !config.no_color && std::io::stderr().is_terminal()
}
