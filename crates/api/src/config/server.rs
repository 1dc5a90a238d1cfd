//! The HTTP server section: where the server listens, the whole-request
//! deadline (the outermost of the timeout hierarchy), how many requests and
//! connections it takes at once, how large a request's head and body may
//! be, how it drains on shutdown, and its own HTTPS (optional).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The whole-request HTTP deadline, the outermost of the timeout hierarchy.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 30_000;
/// See [`ServerConfig::header_read_timeout_ms`].
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// See [`ServerConfig::max_headers`]: browsers send about 20.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// See [`ServerConfig::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// See [`ServerConfig::concurrency_min`]: the pool's default size
/// (`NOTEGRAPH_DB_MAX_CONNECTIONS`), so that past the knee the limit never
/// refuses requests while connections sit idle. In one pair of runs
/// offered 1.6 times the knee, with 4 it fell to 6 and 0.80 times the knee
/// was answered; with 16, 0.98 times, at a server-side p99 under 50 ms
/// (docs/PERFORMANCE.md, "Past the knee with the defaults").
pub const DEFAULT_CONCURRENCY_MIN: usize = super::DEFAULT_DB_MAX_CONNECTIONS as usize;
/// See [`ServerConfig::concurrency_max`]: the fixed default before the
/// limit became adaptive.
pub const DEFAULT_CONCURRENCY_MAX: usize = 256;
/// See [`ServerConfig::max_connections`]: the `connections` load scenario
/// holds 1,000; each idle connection costs a few KiB and a file descriptor.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Largest accepted request body; GraphQL documents are small.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// How long in-flight requests may run after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
/// See [`ServerConfig::shutdown_delay_ms`]: none, for a developer's Ctrl-C;
/// behind a load balancer, a few of its health-check intervals.
pub const DEFAULT_SHUTDOWN_DELAY_MS: u64 = 0;

/// See [`ServerConfig::tls_reload_interval_secs`].
pub const DEFAULT_TLS_RELOAD_INTERVAL_SECS: u64 = 5;

/// How the limit of requests executing at once on `/graphql` is set
/// (the shedding stage, `pipeline::shedding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// `NOTEGRAPH_MAX_CONCURRENT_REQUESTS` set: this many, always.
    Fixed(usize),
    /// Found from latency between `min` and `max`.
    Adaptive {
        /// Lowest limit (`NOTEGRAPH_CONCURRENCY_MIN`).
        min: usize,
        /// Highest limit (`NOTEGRAPH_CONCURRENCY_MAX`).
        max: usize,
    },
}

/// HTTP server settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "NOTEGRAPH_LISTEN", default_value = DEFAULT_LISTEN, global = true)]
    pub listen: SocketAddr,
    /// Deadline for a whole HTTP request, in ms; past it the answer is 504.
    #[arg(long, env = "NOTEGRAPH_HTTP_TIMEOUT_MS", default_value_t = DEFAULT_HTTP_TIMEOUT_MS, global = true)]
    pub http_timeout_ms: u64,
    /// A fixed limit of requests executing at once on `/graphql`; beyond
    /// it the answer is an immediate 503 with `Retry-After`, instead of a
    /// queue that times out. Unset: the limit is adaptive, found from the
    /// requests' latency between NOTEGRAPH_CONCURRENCY_MIN and
    /// NOTEGRAPH_CONCURRENCY_MAX (docs/PERFORMANCE.md, "The knee").
    #[arg(long, env = "NOTEGRAPH_MAX_CONCURRENT_REQUESTS", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub max_concurrent_requests: Option<u32>,
    /// Lowest the adaptive limit of requests executing at once goes,
    /// however slow requests get (at least 1).
    #[arg(long, env = "NOTEGRAPH_CONCURRENCY_MIN", default_value_t = DEFAULT_CONCURRENCY_MIN, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), global = true)]
    pub concurrency_min: usize,
    /// Highest the adaptive limit of requests executing at once goes (at
    /// least NOTEGRAPH_CONCURRENCY_MIN).
    #[arg(long, env = "NOTEGRAPH_CONCURRENCY_MAX", default_value_t = DEFAULT_CONCURRENCY_MAX, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), global = true)]
    pub concurrency_max: usize,
    /// How long a connection may take to send a request's headers, in ms;
    /// also how long an idle keep-alive connection stays open. Cuts off
    /// clients that trickle headers (slowloris).
    #[arg(long, env = "NOTEGRAPH_HEADER_READ_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS, global = true)]
    pub header_read_timeout_ms: u64,
    /// Open client connections (keep-alive and streams included); at the
    /// cap the server stops accepting until one closes, so new clients
    /// wait in the kernel's backlog instead of exhausting file descriptors.
    #[arg(long, env = "NOTEGRAPH_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, global = true)]
    pub max_connections: usize,
    /// Most headers in one request; more is answered 431.
    #[arg(long, env = "NOTEGRAPH_MAX_HEADERS", default_value_t = DEFAULT_MAX_HEADERS, global = true)]
    pub max_headers: usize,
    /// Largest request head (request line and headers), in bytes (at
    /// least 8192); more is answered 431.
    #[arg(long, env = "NOTEGRAPH_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES, global = true)]
    pub max_header_bytes: usize,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "NOTEGRAPH_BODY_LIMIT_BYTES", default_value_t = DEFAULT_BODY_LIMIT_BYTES, global = true)]
    pub body_limit_bytes: usize,
    /// How long a client may take to send a request's body, in ms; past it
    /// the answer is 408 (the client's slowness, not a server timeout).
    /// Unset: a third of NOTEGRAPH_HTTP_TIMEOUT_MS (10 s by default).
    #[arg(long, env = "NOTEGRAPH_BODY_READ_TIMEOUT_MS", global = true)]
    pub body_read_timeout_ms: Option<u64>,
    /// How long in-flight requests may finish after SIGTERM/SIGINT, in seconds.
    #[arg(long, env = "NOTEGRAPH_SHUTDOWN_GRACE_SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS, global = true)]
    pub shutdown_grace_secs: u64,
    /// After SIGTERM/SIGINT, how long `/readyz` answers 503 while requests
    /// are still served, so that load balancers stop sending new ones
    /// before the drain starts, in ms.
    #[arg(long, env = "NOTEGRAPH_SHUTDOWN_DELAY_MS", default_value_t = DEFAULT_SHUTDOWN_DELAY_MS, global = true)]
    pub shutdown_delay_ms: u64,
    /// PEM certificate chain (the server's own first): with
    /// NOTEGRAPH_TLS_KEY_FILE, the server speaks HTTPS (HTTP/2 and HTTP/1.1
    /// by ALPN) instead of plain HTTP; the metrics listener stays plain.
    #[arg(long, env = "NOTEGRAPH_TLS_CERT_FILE", global = true)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of NOTEGRAPH_TLS_CERT_FILE's certificate.
    #[arg(long, env = "NOTEGRAPH_TLS_KEY_FILE", global = true)]
    pub tls_key_file: Option<PathBuf>,
    /// How often the two TLS files are checked for a renewed pair, in
    /// seconds (0: only on SIGHUP); a renewed pair is served to new
    /// connections without a restart.
    #[arg(long, env = "NOTEGRAPH_TLS_RELOAD_INTERVAL_SECS", default_value_t = DEFAULT_TLS_RELOAD_INTERVAL_SECS, global = true)]
    pub tls_reload_interval_secs: u64,
}

impl ServerConfig {
    /// The certificate and key files when the server speaks HTTPS; one
    /// without the other is refused, naming both variables.
    pub fn tls_files(&self) -> Result<Option<(&Path, &Path)>, String> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (Some(_), None) | (None, Some(_)) => {
                Err("NOTEGRAPH_TLS_CERT_FILE and NOTEGRAPH_TLS_KEY_FILE go together: \
                 set both for HTTPS, or neither for plain HTTP"
                    .to_owned())
            }
        }
    }

    /// The body-read deadline: as set, else a third of the whole-request
    /// deadline (a 1 MiB body, the default limit, at about 100 KiB/s with
    /// the defaults), so that it always fires first.
    pub fn body_read_timeout_ms(&self) -> u64 {
        self.body_read_timeout_ms.unwrap_or(self.http_timeout_ms / 3)
    }

    /// How the limit of requests executing at once is set: fixed when
    /// NOTEGRAPH_MAX_CONCURRENT_REQUESTS is, else adaptive within its
    /// bounds, which must be in order.
    pub fn concurrency(&self) -> Result<Concurrency, String> {
        if let Some(fixed) = self.max_concurrent_requests {
            return Ok(Concurrency::Fixed(fixed as usize));
        }
        let (min, max) = (self.concurrency_min, self.concurrency_max);
        if max < min {
            return Err(format!(
                "NOTEGRAPH_CONCURRENCY_MAX ({max}) is below NOTEGRAPH_CONCURRENCY_MIN ({min}): \
                 set the maximum to at least the minimum"
            ));
        }
        Ok(Concurrency::Adaptive { min, max })
    }

    /// `https` or `http`, as a URL of this server starts.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert_file.is_some() { "https" } else { "http" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::parse;

    #[test]
    fn the_concurrency_limit_is_adaptive_unless_fixed() {
        let adaptive = Concurrency::Adaptive { min: DEFAULT_CONCURRENCY_MIN, max: DEFAULT_CONCURRENCY_MAX };
        assert_eq!(parse::<ServerConfig>(&[]).concurrency(), Ok(adaptive));
        let fixed = parse::<ServerConfig>(&["--max-concurrent-requests", "8", "--concurrency-min", "16"]);
        assert_eq!(fixed.concurrency(), Ok(Concurrency::Fixed(8)));
        let bounds = parse::<ServerConfig>(&["--concurrency-min", "2", "--concurrency-max", "64"]);
        assert_eq!(bounds.concurrency(), Ok(Concurrency::Adaptive { min: 2, max: 64 }));
        let inverted = parse::<ServerConfig>(&["--concurrency-min", "64", "--concurrency-max", "8"]);
        let refused = inverted.concurrency().unwrap_err();
        assert!(
            refused.contains("NOTEGRAPH_CONCURRENCY_MAX") && refused.contains("NOTEGRAPH_CONCURRENCY_MIN"),
            "{refused}"
        );
    }

    #[test]
    fn a_certificate_needs_its_key_and_the_key_its_certificate() {
        assert_eq!(parse::<ServerConfig>(&[]).tls_files(), Ok(None));
        let both = parse::<ServerConfig>(&["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"]);
        assert_eq!(both.tls_files(), Ok(Some((Path::new("c.pem"), Path::new("k.pem")))));
        for half in [["--tls-cert-file", "c.pem"], ["--tls-key-file", "k.pem"]] {
            let refused = parse::<ServerConfig>(&half).tls_files().unwrap_err();
            assert!(
                refused.contains("NOTEGRAPH_TLS_CERT_FILE") && refused.contains("NOTEGRAPH_TLS_KEY_FILE"),
                "{refused}"
            );
        }
    }
}
