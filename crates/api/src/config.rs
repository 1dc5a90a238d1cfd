//! The one typed configuration, read from the command line and the
//! environment (`NOTEGRAPH_*`, `DATABASE_URL`, `RUST_LOG`) by clap, so that
//! `notegraph --help` lists every variable with its default. Nothing else in
//! the server reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The whole-request HTTP deadline, the outermost of the timeout hierarchy.
pub const DEFAULT_HTTP_TIMEOUT_SECS: u64 = 30;
/// Largest accepted request body; GraphQL documents are small.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// How long in-flight requests may run after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
/// The embedded Postgres and its installation live under this directory.
pub const DEFAULT_DATA_DIR: &str = ".notegraph";
/// See [`DbConfig::db_max_connections`].
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 16;
/// See [`DbConfig::db_acquire_timeout_ms`].
pub const DEFAULT_DB_ACQUIRE_TIMEOUT_MS: u64 = 2_000;
/// The database layer of the timeout hierarchy (HTTP 30 s > GraphQL > DB).
pub const DEFAULT_DB_STATEMENT_TIMEOUT_MS: u64 = 20_000;
/// See [`DbConfig::hnsw_ef_search`].
pub const DEFAULT_HNSW_EF_SEARCH: u32 = 100;
/// See [`GraphqlConfig::loader_delay_us`].
pub const DEFAULT_LOADER_DELAY_US: u64 = 0;
/// See [`CacheConfig::cache_max_bytes`]: 256 MiB holds about 100,000
/// typical responses (2 KiB each) and is small beside the 24 GiB the
/// project's machines have.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// See [`CacheConfig::cache_ttl_secs`]: writes invalidate entries as they
/// commit, so the TTL only bounds what an unseen change (a write made
/// outside the server) can leave stale.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 300;
/// The development signing key; the server warns when it is in use.
pub const DEFAULT_JWT_SECRET: &str = "notegraph-development-secret";
/// Development tokens: the published k6 mix sends `Bearer test-token`.
pub const DEFAULT_STATIC_TOKENS: &str = "test-token=1";
/// The static token the defaults, README and k6 mix publish: anyone may
/// sign in with it.
pub const DEVELOPMENT_TOKEN: &str = "test-token";

/// `notegraph`: a GraphQL API over notes, users and tags, with search by
/// meaning.
#[derive(Debug, Parser)]
#[command(name = "notegraph", version, about = "A GraphQL API over notes, users and tags, with search by meaning.", long_about = None)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every command.
    #[command(flatten)]
    pub config: Config,
}

/// The commands the binary runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default), applying pending migrations first.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Replace all data with a generated data set; data it did not create
    /// only with `--force`.
    Seed(SeedArgs),
    /// Print the GraphQL schema (SDL) to stdout; needs no database.
    PrintSchema,
    /// Print a signed development JWT for a user.
    Token(TokenArgs),
    /// Start the embedded Postgres, print `DATABASE_URL=…` and keep it
    /// running until interrupted (the test suite uses this).
    EmbeddedPostgres,
}

/// Size and randomness of `notegraph seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Number of users.
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// Number of notes.
    #[arg(long, default_value_t = 100_000)]
    pub notes: u32,
    /// Number of tags.
    #[arg(long, default_value_t = 200)]
    pub tags: u32,
    /// Random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Replace the data even if `notegraph seed` did not load it (there are
    /// users, notes or tags and no recorded seed run); without it the
    /// command refuses and changes nothing. Writes made after a seed are not
    /// tracked: they are replaced either way.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `notegraph token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id the token authenticates as (claim `sub`).
    pub user_id: i64,
    /// Lifetime in seconds (claim `exp`).
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

/// Every setting, nested by concern.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// HTTP server settings.
    #[command(flatten)]
    pub http: HttpConfig,
    /// Database settings.
    #[command(flatten)]
    pub db: DbConfig,
    /// Authentication settings.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// GraphQL execution settings.
    #[command(flatten)]
    pub graphql: GraphqlConfig,
    /// Response cache settings.
    #[command(flatten)]
    pub cache: CacheConfig,
    /// Logging settings.
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// Development machine: `serve` accepts the development JWT secret and
    /// the `test-token` static token on any address, not only on loopback.
    #[arg(long, env = "NOTEGRAPH_DEV", global = true)]
    pub dev: bool,
}

impl Config {
    /// Refuses to serve the development credentials on an address other
    /// machines can reach, where anyone who read the README could sign in.
    /// Loopback addresses (127.0.0.0/8, ::1) and `--dev` keep the defaults
    /// working for local use.
    pub fn check_safe_to_serve(&self) -> Result<(), UnsafeDefaults> {
        let listen = self.http.listen;
        let jwt_secret = self.auth.jwt_secret.expose() == DEFAULT_JWT_SECRET;
        let test_token = self
            .auth
            .static_tokens
            .expose()
            .split(',')
            .filter_map(|entry| entry.split_once('='))
            .any(|(token, _)| token.trim() == DEVELOPMENT_TOKEN);
        if self.dev || listen.ip().to_canonical().is_loopback() || !(jwt_secret || test_token) {
            return Ok(());
        }
        Err(UnsafeDefaults { listen, jwt_secret, test_token })
    }
}

/// Why `serve` will not start: development credentials on a reachable
/// address. The message says what to set.
#[derive(Debug)]
pub struct UnsafeDefaults {
    listen: SocketAddr,
    /// The JWT secret is [`DEFAULT_JWT_SECRET`].
    jwt_secret: bool,
    /// The static tokens include [`DEVELOPMENT_TOKEN`].
    test_token: bool,
}

impl std::fmt::Display for UnsafeDefaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut fixes = Vec::new();
        if self.jwt_secret {
            fixes.push("set NOTEGRAPH_JWT_SECRET to a secret of your own");
        }
        if self.test_token {
            fixes.push("set NOTEGRAPH_STATIC_TOKENS without `test-token` (empty disables static tokens)");
        }
        write!(
            f,
            "refusing to serve the development credentials on {}, which other machines can reach: {}; \
             or listen on a loopback address (NOTEGRAPH_LISTEN=127.0.0.1:8080); \
             or, on a development machine, set NOTEGRAPH_DEV=true (--dev)",
            self.listen,
            fixes.join(" and ")
        )
    }
}

impl std::error::Error for UnsafeDefaults {}

/// HTTP server settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "NOTEGRAPH_LISTEN", default_value = DEFAULT_LISTEN, global = true)]
    pub listen: SocketAddr,
    /// Deadline for a whole HTTP request, in seconds.
    #[arg(long, env = "NOTEGRAPH_HTTP_TIMEOUT_SECS", default_value_t = DEFAULT_HTTP_TIMEOUT_SECS, global = true)]
    pub http_timeout_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "NOTEGRAPH_BODY_LIMIT_BYTES", default_value_t = DEFAULT_BODY_LIMIT_BYTES, global = true)]
    pub body_limit_bytes: usize,
    /// How long in-flight requests may finish after SIGTERM/SIGINT, in seconds.
    #[arg(long, env = "NOTEGRAPH_SHUTDOWN_GRACE_SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS, global = true)]
    pub shutdown_grace_secs: u64,
}

/// Database settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DbConfig {
    /// Postgres URL (with pgvector). Unset: start the embedded Postgres.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<Secret>,
    /// Directory of the embedded Postgres (installation and data).
    #[arg(long, env = "NOTEGRAPH_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
    /// Seed a small demo data set when the embedded database is empty.
    #[arg(long, env = "NOTEGRAPH_DEMO_DATA", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub demo_data: bool,
    /// Pool size. Postgres does its best work with a few active connections
    /// per core; more only queue inside it.
    #[arg(long, env = "NOTEGRAPH_DB_MAX_CONNECTIONS", default_value_t = DEFAULT_DB_MAX_CONNECTIONS, global = true)]
    pub db_max_connections: u32,
    /// How long a request waits for a connection before SERVICE_UNAVAILABLE, in ms.
    #[arg(long, env = "NOTEGRAPH_DB_ACQUIRE_TIMEOUT_MS", default_value_t = DEFAULT_DB_ACQUIRE_TIMEOUT_MS, global = true)]
    pub db_acquire_timeout_ms: u64,
    /// Server-side limit on one SQL statement, in ms.
    #[arg(long, env = "NOTEGRAPH_DB_STATEMENT_TIMEOUT_MS", default_value_t = DEFAULT_DB_STATEMENT_TIMEOUT_MS, global = true)]
    pub db_statement_timeout_ms: u64,
    /// HNSW candidate list size for vector search (recall vs speed).
    #[arg(long, env = "NOTEGRAPH_HNSW_EF_SEARCH", default_value_t = DEFAULT_HNSW_EF_SEARCH, global = true)]
    pub hnsw_ef_search: u32,
}

impl DbConfig {
    /// Pool settings for a database at `url`.
    pub fn settings(&self, url: String) -> db::Settings {
        db::Settings {
            url,
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
            hnsw_ef_search: self.hnsw_ef_search,
        }
    }
}

/// Authentication settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Auth")]
pub struct AuthConfig {
    /// HS256 key that signs and verifies bearer JWTs.
    #[arg(long, env = "NOTEGRAPH_JWT_SECRET", default_value = DEFAULT_JWT_SECRET, global = true)]
    pub jwt_secret: Secret,
    /// Development tokens, `token=user-id,…`; empty disables them.
    #[arg(long, env = "NOTEGRAPH_STATIC_TOKENS", default_value = DEFAULT_STATIC_TOKENS, global = true)]
    pub static_tokens: Secret,
}

/// GraphQL execution settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "GraphQL")]
pub struct GraphqlConfig {
    /// Extra wait (µs) before a loader batch is dispatched, after every
    /// request feeding it is idle: larger batches across concurrent
    /// requests, paid once per level of every query (docs/batching.md).
    #[arg(long, env = "NOTEGRAPH_LOADER_DELAY_US", default_value_t = DEFAULT_LOADER_DELAY_US, global = true)]
    pub loader_delay_us: u64,
}

/// Response cache settings (docs/CACHE.md).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Response cache")]
pub struct CacheConfig {
    /// Cache query responses, invalidated by writes.
    #[arg(long, env = "NOTEGRAPH_CACHE_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub cache_enabled: bool,
    /// Upper bound on the bytes the cache holds (bodies, tags, bookkeeping).
    #[arg(long, env = "NOTEGRAPH_CACHE_MAX_BYTES", default_value_t = DEFAULT_CACHE_MAX_BYTES, global = true)]
    pub cache_max_bytes: u64,
    /// Longest life of a cached response, in seconds.
    #[arg(long, env = "NOTEGRAPH_CACHE_TTL_SECS", default_value_t = DEFAULT_CACHE_TTL_SECS, global = true)]
    pub cache_ttl_secs: u64,
}

/// Logging settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Telemetry")]
pub struct TelemetryConfig {
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn", global = true)]
    pub log_filter: String,
    /// Log format.
    #[arg(long, env = "NOTEGRAPH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// A secret setting: usable by the code, printed as `***`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let cli = Cli::parse_from(["notegraph", "--jwt-secret", "hunter2", "--database-url", "postgres://u:pw@h/db"]);
        let printed = format!("{:?}", cli.config);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("pw@"), "{printed}");
    }

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::parse_from(["notegraph"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.config.http.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(cli.config.http.http_timeout_secs, DEFAULT_HTTP_TIMEOUT_SECS);
    }

    /// The command line `notegraph <args>`.
    fn config(args: &[&str]) -> Config {
        Cli::parse_from(std::iter::once("notegraph").chain(args.iter().copied())).config
    }

    #[test]
    fn development_credentials_are_refused_on_a_reachable_address() {
        let both = config(&["--listen", "0.0.0.0:8080"]).check_safe_to_serve().unwrap_err().to_string();
        for variable in ["NOTEGRAPH_JWT_SECRET", "NOTEGRAPH_STATIC_TOKENS", "NOTEGRAPH_DEV", "NOTEGRAPH_LISTEN"] {
            assert!(both.contains(variable), "{variable} missing from: {both}");
        }
        let secret = config(&["--listen", "10.0.0.5:8080", "--static-tokens", "mine=1"]).check_safe_to_serve();
        let secret = secret.unwrap_err().to_string();
        assert!(secret.contains("NOTEGRAPH_JWT_SECRET") && !secret.contains("NOTEGRAPH_STATIC_TOKENS"), "{secret}");
        let token =
            config(&["--listen", "[::]:8080", "--jwt-secret", "s3cret", "--static-tokens", "a=2, test-token=1"])
                .check_safe_to_serve()
                .unwrap_err()
                .to_string();
        assert!(token.contains("NOTEGRAPH_STATIC_TOKENS") && !token.contains("NOTEGRAPH_JWT_SECRET"), "{token}");
    }

    #[test]
    fn loopback_keeps_the_development_defaults() {
        for listen in ["127.0.0.1:8080", "127.1.2.3:0", "[::1]:8080", "[::ffff:127.0.0.1]:8080"] {
            assert!(config(&["--listen", listen]).check_safe_to_serve().is_ok(), "{listen}");
        }
    }

    #[test]
    fn dev_or_own_credentials_serve_anywhere() {
        assert!(config(&["--listen", "0.0.0.0:8080", "--dev"]).check_safe_to_serve().is_ok());
        let own = ["--listen", "0.0.0.0:8080", "--jwt-secret", "s3cret", "--static-tokens", "mine=1"];
        assert!(config(&own).check_safe_to_serve().is_ok());
        let none = ["--listen", "0.0.0.0:8080", "--jwt-secret", "s3cret", "--static-tokens", ""];
        assert!(config(&none).check_safe_to_serve().is_ok());
    }

    #[test]
    fn seed_takes_sizes() {
        let cli = Cli::parse_from(["notegraph", "seed", "--users", "5", "--notes", "50", "--seed", "7"]);
        match cli.command {
            Some(Command::Seed(args)) => {
                assert_eq!((args.users, args.notes, args.tags, args.seed, args.force), (5, 50, 200, 7, false));
            }
            other => panic!("expected seed, got {other:?}"),
        }
    }

    #[test]
    fn seed_is_forced_only_when_asked() {
        let cli = Cli::parse_from(["notegraph", "seed", "--force"]);
        match cli.command {
            Some(Command::Seed(args)) => assert!(args.force),
            other => panic!("expected seed, got {other:?}"),
        }
    }
}
