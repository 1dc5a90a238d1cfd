//! The telemetry section (docs/OBSERVABILITY.md): the log filter and
//! format, colour, the Prometheus metrics and where they are served, and
//! trace export over OTLP with its sampling ratio.

use std::net::SocketAddr;

use clap::Args;

/// See [`TelemetryConfig::metrics_max_operation_names`]: enough for every
/// operation a set of real clients sends, few enough that a client sending
/// random names cannot grow the series without bound.
pub const DEFAULT_METRICS_MAX_OPERATION_NAMES: usize = 200;
/// See [`TelemetryConfig::trace_sample_ratio`]: every trace, as a reference
/// server's traces are for reading; lower it under heavy traffic.
pub const DEFAULT_TRACE_SAMPLE_RATIO: f64 = 1.0;

/// Logging, metrics and tracing settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Telemetry")]
pub struct TelemetryConfig {
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn", global = true)]
    pub log_filter: String,
    /// Log format.
    #[arg(long, env = "NOTEGRAPH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Never colour the output. Colour is only ever used in text logs
    /// written to a terminal; the variable is the https://no-color.org one.
    #[arg(long, env = "NO_COLOR", value_parser = non_empty, default_value = "", global = true)]
    pub no_color: bool,
    /// Serve Prometheus metrics at `/metrics` (docs/OBSERVABILITY.md).
    #[arg(long, env = "NOTEGRAPH_METRICS_ENABLED", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub metrics_enabled: bool,
    /// Serve `/metrics` on this address instead of the main listener, so
    /// that it can stay private.
    #[arg(long, env = "NOTEGRAPH_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// Distinct operation names that get their own metric series; names
    /// seen after that many are counted as `other`.
    #[arg(long, env = "NOTEGRAPH_METRICS_MAX_OPERATION_NAMES", default_value_t = DEFAULT_METRICS_MAX_OPERATION_NAMES, global = true)]
    pub metrics_max_operation_names: usize,
    /// Fields to time, as `Type.field` separated by commas (for example
    /// `Query.searchNotes,Note.similar`). Empty by default: timing any
    /// field costs an allocation per field of every operation, and turns
    /// the fast path of NOTEGRAPH_GRAPHQL_FAST_PATH off.
    #[arg(long, env = "NOTEGRAPH_METRICS_HOT_FIELDS", value_delimiter = ',', global = true)]
    pub metrics_hot_fields: Vec<String>,
    /// Send traces over OTLP (HTTP/protobuf) to this endpoint, for example
    /// `http://127.0.0.1:4318/v1/traces`; unset, no traces are exported.
    #[arg(long, env = "NOTEGRAPH_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// Share of traces started here that are recorded (0 to 1); a request
    /// with a W3C `traceparent` follows its caller's decision.
    #[arg(long, env = "NOTEGRAPH_TRACE_SAMPLE_RATIO", default_value_t = DEFAULT_TRACE_SAMPLE_RATIO, value_parser = ratio, global = true)]
    pub trace_sample_ratio: f64,
}

/// A number from 0 to 1.
fn ratio(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("`{value}` is not a number from 0 to 1")),
    }
}

/// NO_COLOR's rule: any value but the empty string turns colour off, "0"
/// and "false" included. (Absent, the default is the empty string; the
/// bare flag gives "true".)
fn non_empty(value: &str) -> Result<bool, std::convert::Infallible> {
    Ok(!value.is_empty())
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{parse, try_parse};

    #[test]
    fn no_color_follows_no_color_org() {
        assert_eq!(non_empty(""), Ok(false));
        assert_eq!(non_empty("0"), Ok(true));
        assert!(parse::<TelemetryConfig>(&["--no-color"]).no_color);
    }

    #[test]
    fn the_sample_ratio_is_a_share() {
        assert_eq!(parse::<TelemetryConfig>(&["--trace-sample-ratio", "0.25"]).trace_sample_ratio, 0.25);
        for refused in ["1.5", "-0.1", "all"] {
            let error =
                try_parse::<TelemetryConfig>(&[&format!("--trace-sample-ratio={refused}")]).unwrap_err().to_string();
            assert!(error.contains("is not a number from 0 to 1"), "{refused}: {error}");
        }
    }
}
