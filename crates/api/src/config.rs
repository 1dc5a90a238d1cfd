//! The one typed configuration, read from the command line and the
//! environment (`NOTEGRAPH_*`, `DATABASE_URL`, `RUST_LOG`) by clap, so that
//! `notegraph --help` lists every variable with its default. Nothing else in
//! the server reads the environment. The commands and their own arguments
//! are the command line's (`cli.rs`); these settings are shared by all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The whole-request HTTP deadline, the outermost of the timeout hierarchy.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 30_000;
/// The GraphQL execution deadline: inside the HTTP one, so a slow
/// execution still answers with a GraphQL `TIMEOUT` error, not a 504.
pub const DEFAULT_GRAPHQL_TIMEOUT_MS: u64 = 25_000;
/// See [`HttpConfig::header_read_timeout_ms`].
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// See [`HttpConfig::max_headers`]: browsers send about 20.
pub const DEFAULT_MAX_HEADERS: usize = 64;
/// See [`HttpConfig::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// See [`HttpConfig::max_concurrent_requests`].
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// See [`HttpConfig::max_connections`]: the `connections` load scenario
/// holds 1,000; each idle connection costs a few KiB and a file descriptor.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Largest accepted request body; GraphQL documents are small.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;
/// How long in-flight requests may run after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
/// See [`HttpConfig::shutdown_delay_ms`]: none, for a developer's Ctrl-C;
/// behind a load balancer, a few of its health-check intervals.
pub const DEFAULT_SHUTDOWN_DELAY_MS: u64 = 0;
/// The embedded Postgres and its installation live under this directory.
pub const DEFAULT_DATA_DIR: &str = ".notegraph";
/// See [`DbConfig::db_max_connections`]. Fewer cost Postgres less CPU at
/// a steady rate (0.53 cores with 8 against 0.63 with 16, the mix at
/// 1500/s on 2 cores), but 16 leaves room for slow writes and cold caches:
/// a writes run with 8 timed out waiting for connections in its first
/// seconds (docs/PERFORMANCE.md, "Pool tuning").
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 16;
/// See [`DbConfig::db_acquire_timeout_ms`].
pub const DEFAULT_DB_ACQUIRE_TIMEOUT_MS: u64 = 2_000;
/// See [`DbConfig::db_min_connections`]: half the pool is open before the
/// first request, so that a server put under full load at once (a new
/// replica, a load test) does not open most of its connections (10–15 ms
/// each here) in its first second; with 2, that second held 120–180
/// requests over 10 ms at 1000/s, with 8 10–77 (docs/PERFORMANCE.md,
/// "Pool tuning"). Sizing Postgres goes by the maximum, not this.
pub const DEFAULT_DB_MIN_CONNECTIONS: u32 = 8;
/// See [`DbConfig::db_max_lifetime_secs`]: sqlx's default.
pub const DEFAULT_DB_MAX_LIFETIME_SECS: u64 = 30 * 60;
/// See [`DbConfig::db_statement_cache`]: sqlx's default, several times the
/// 20-odd statements the server has; with none, Postgres used 36% more
/// CPU (docs/PERFORMANCE.md, "Pool tuning").
pub const DEFAULT_DB_STATEMENT_CACHE: usize = 100;
/// The database layer of the timeout hierarchy (HTTP 30 s > GraphQL 25 s >
/// DB 20 s): a statement ends before the execution that waits for it.
pub const DEFAULT_DB_TIMEOUT_MS: u64 = 20_000;
/// See [`DbConfig::replica_max_lag_ms`].
pub const DEFAULT_REPLICA_MAX_LAG_MS: u64 = 1_000;
/// See [`DbConfig::read_your_writes_ms`]: well above the replica lag
/// bound, which it must exceed.
pub const DEFAULT_READ_YOUR_WRITES_MS: u64 = 5_000;
/// See [`DbConfig::hnsw_ef_search`]: recall@10 0.997 for vectors near
/// notes on the default data set with the m = 24 index, where 160 buys
/// 0.003 more for twice the cost (docs/PERFORMANCE.md, "Vector search").
pub const DEFAULT_HNSW_EF_SEARCH: u32 = 40;
/// See [`DbConfig::hnsw_ef_search_text`]: the default embedder's short
/// texts reach about 0.75 at 160 and 0.62 at 40; with 0.997 on vectors,
/// the 1,000 near and 200 free-text queries average 0.955.
pub const DEFAULT_HNSW_EF_SEARCH_TEXT: u32 = 160;
/// See [`DbConfig::hnsw_max_scan_tuples`]: pgvector's default.
pub const DEFAULT_HNSW_MAX_SCAN_TUPLES: u32 = 20_000;
/// See [`DbConfig::exact_tag_notes`]: where the measured exact path (15 ms
/// for 1,000 notes, 22 ms for 3,000) and the filtered HNSW scan (30 ms at
/// 1%, 10 ms at 3%, lower recall) cross (docs/PERFORMANCE.md).
pub const DEFAULT_EXACT_TAG_NOTES: u32 = 2_000;
/// See [`DbConfig::ivfflat_probes`].
pub const DEFAULT_IVFFLAT_PROBES: u32 = 10;
/// See [`DbConfig::vector_index`]: HNSW, the better latency at a given
/// recall at 100k notes (docs/PERFORMANCE.md, "Vector search").
pub const DEFAULT_VECTOR_INDEX: VectorIndex = VectorIndex::Hnsw;
/// See [`GraphqlConfig::loader_delay_us`].
pub const DEFAULT_LOADER_DELAY_US: u64 = 0;
/// Deepest field nesting an operation may have; the deepest query the
/// clients need (`notes { similar { note { author { notes { tags { name } } } } } }`) is 7.
pub const DEFAULT_MAX_DEPTH: usize = 12;
/// Highest operation cost (each field 1, a list's subtree times its
/// `first`): the heaviest measured query in the README costs 14,050.
pub const DEFAULT_MAX_COMPLEXITY: u64 = 25_000;
/// Aliases in one document: enough for a dashboard, too few to fan one
/// expensive root field out hundreds of times.
pub const DEFAULT_MAX_ALIASES: usize = 30;
/// Fields at the root of the executed operation.
pub const DEFAULT_MAX_ROOT_FIELDS: usize = 20;
/// Largest document, in bytes: long documents are a parser workload, and
/// long texts belong in variables.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 32 * 1024;
/// Most lexical tokens in a document (the standard introspection query has
/// about 300).
pub const DEFAULT_MAX_TOKENS: usize = 4_000;
/// Most directives on one field or fragment.
pub const DEFAULT_MAX_DIRECTIVES_PER_FIELD: usize = 4;
/// See [`GraphqlConfig::parsed_documents_bytes`]: about 10,000 of the
/// published mix's documents (each counted as 64 bytes per byte of text
/// plus 1 KiB).
pub const DEFAULT_PARSED_DOCUMENTS_BYTES: u64 = 32 * 1024 * 1024;
/// See [`CacheConfig::cache_max_bytes`]: 256 MiB holds about 100,000
/// typical responses (2 KiB each) and is small beside the 24 GiB the
/// project's machines have.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// See [`CacheConfig::cache_ttl_secs`]: writes invalidate entries as they
/// commit, so the TTL only bounds what an unseen change (a write made
/// outside the server) can leave stale.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 300;
/// See [`SubscriptionConfig::subscription_buffer`]: at a few hundred
/// bytes an event, 4,096 cost about a megabyte however many subscribers
/// there are.
pub const DEFAULT_SUBSCRIPTION_BUFFER: usize = 4_096;
/// See [`SubscriptionConfig::max_subscriptions`]: about 10 KiB each.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 10_000;
/// See [`SubscriptionConfig::max_subscriptions_per_viewer`].
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_VIEWER: usize = 100;
/// See [`SubscriptionConfig::max_subscriptions_per_connection`].
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 20;
/// See [`SubscriptionConfig::sse_heartbeat_ms`]: under the 15 to 60 s
/// that proxies commonly allow an idle response.
pub const DEFAULT_SSE_HEARTBEAT_MS: u64 = 12_000;
/// See [`EmbedConfig::embed_model`].
pub const DEFAULT_EMBED_MODEL: &str = "text-embedding-3-small";
/// See [`EmbedConfig::embed_dimension`]: the `notes.embedding` column's size.
pub const DEFAULT_EMBED_DIMENSION: usize = embed::DEFAULT_DIMENSION;
/// See [`EmbedConfig::embed_timeout_ms`]: well inside the GraphQL timeout
/// (and capped below it), so a slow provider is SERVICE_UNAVAILABLE, not TIMEOUT.
pub const DEFAULT_EMBED_TIMEOUT_MS: u64 = 5_000;
/// See [`EmbedConfig::embed_max_retries`].
pub const DEFAULT_EMBED_MAX_RETRIES: u32 = 2;
/// See [`EmbedConfig::embed_batch_size`].
pub const DEFAULT_EMBED_BATCH_SIZE: usize = 128;
/// See [`EmbedConfig::embed_cache_entries`].
pub const DEFAULT_EMBED_CACHE_ENTRIES: u64 = 10_000;
/// See [`EmbedConfig::embed_cache_bytes`]: 10,000 entries of 384 floats.
pub const DEFAULT_EMBED_CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// See [`TelemetryConfig::metrics_max_operation_names`]: enough for every
/// operation a set of real clients sends, few enough that a client sending
/// random names cannot grow the series without bound.
pub const DEFAULT_METRICS_MAX_OPERATION_NAMES: usize = 200;
/// See [`TelemetryConfig::trace_sample_ratio`]: every trace, as a reference
/// server's traces are for reading; lower it under heavy traffic.
pub const DEFAULT_TRACE_SAMPLE_RATIO: f64 = 1.0;
/// The development signing key; the server warns when it is in use.
pub const DEFAULT_JWT_SECRET: &str = "notegraph-development-secret";
/// Development tokens: the published k6 mix sends `Bearer test-token`.
pub const DEFAULT_STATIC_TOKENS: &str = "test-token=1";
/// The static token the defaults, README and k6 mix publish: anyone may
/// sign in with it.
pub const DEVELOPMENT_TOKEN: &str = "test-token";

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
    /// Subscription settings.
    #[command(flatten)]
    pub subscriptions: SubscriptionConfig,
    /// Embedding provider settings.
    #[command(flatten)]
    pub embed: EmbedConfig,
    /// Logging settings.
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// Development machine: `serve` accepts the development JWT secret and
    /// the `test-token` static token on any address, not only on loopback.
    #[arg(long, env = "NOTEGRAPH_DEV", global = true)]
    pub dev: bool,
    /// The deployment environment; `production` turns field suggestions
    /// and introspection off unless they are set explicitly.
    #[arg(long, env = "NOTEGRAPH_ENV", value_enum, default_value_t = Environment::Development, global = true)]
    pub env: Environment,
}

/// Where the server runs; decides defaults that trade convenience for
/// exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    /// A developer's machine or a test: introspection and suggestions on.
    Development,
    /// Facing untrusted clients: introspection and suggestions off.
    Production,
}

impl Config {
    /// Refuses a timeout hierarchy that is not strictly ordered
    /// (HTTP > GraphQL > DB): an inner deadline must fire first, so that
    /// its precise error reaches the client and its work stops. Also
    /// refuses a read-your-writes window no longer than the replica lag
    /// bound, which would let a viewer read a replica that lacks their write.
    pub fn check_timeouts(&self) -> Result<(), String> {
        let (http, graphql, db) = (self.http.http_timeout_ms, self.graphql.graphql_timeout_ms, self.db.db_timeout_ms);
        if db == 0 || !(http > graphql && graphql > db) {
            return Err(format!(
                "timeouts must be ordered NOTEGRAPH_HTTP_TIMEOUT_MS ({http}) > NOTEGRAPH_GRAPHQL_TIMEOUT_MS ({graphql}) \
                 > NOTEGRAPH_DB_TIMEOUT_MS ({db}) > 0"
            ));
        }
        let (lag, remembered) = (self.db.replica_max_lag_ms, self.db.read_your_writes_ms);
        if remembered <= lag {
            return Err(format!(
                "NOTEGRAPH_READ_YOUR_WRITES_MS ({remembered}) must exceed NOTEGRAPH_REPLICA_MAX_LAG_MS ({lag}): \
                 a write must be remembered for as long as the replica may lack it"
            ));
        }
        Ok(())
    }

    /// Whether introspection queries are answered: as set, else on outside
    /// production.
    pub fn introspection_enabled(&self) -> bool {
        self.graphql.introspection.unwrap_or(self.env != Environment::Production)
    }

    /// Whether errors suggest field names ("did you mean …"): as set, else
    /// on outside production.
    pub fn suggestions_enabled(&self) -> bool {
        self.graphql.field_suggestions.unwrap_or(self.env != Environment::Production)
    }

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
    /// Deadline for a whole HTTP request, in ms; past it the answer is 504.
    #[arg(long, env = "NOTEGRAPH_HTTP_TIMEOUT_MS", default_value_t = DEFAULT_HTTP_TIMEOUT_MS, global = true)]
    pub http_timeout_ms: u64,
    /// Requests executing at once on `/graphql`; beyond it the answer is an
    /// immediate 503 with `Retry-After`, instead of a queue that times out.
    #[arg(long, env = "NOTEGRAPH_MAX_CONCURRENT_REQUESTS", default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS, global = true)]
    pub max_concurrent_requests: usize,
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
    /// How long in-flight requests may finish after SIGTERM/SIGINT, in seconds.
    #[arg(long, env = "NOTEGRAPH_SHUTDOWN_GRACE_SECS", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS, global = true)]
    pub shutdown_grace_secs: u64,
    /// After SIGTERM/SIGINT, how long `/readyz` answers 503 while requests
    /// are still served, so that load balancers stop sending new ones
    /// before the drain starts, in ms.
    #[arg(long, env = "NOTEGRAPH_SHUTDOWN_DELAY_MS", default_value_t = DEFAULT_SHUTDOWN_DELAY_MS, global = true)]
    pub shutdown_delay_ms: u64,
}

/// Database settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DbConfig {
    /// Postgres URL (with pgvector). Unset: start the embedded Postgres.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<Secret>,
    /// Postgres URL of a streaming read replica; unset: every read goes to
    /// `DATABASE_URL`. Queries read there unless the viewer's own write
    /// has not reached it yet (docs/DEPLOY.md, "Read replicas").
    #[arg(long, env = "DATABASE_READ_URL", global = true)]
    pub database_read_url: Option<Secret>,
    /// Longest the read replica may stay behind the writes this server has
    /// seen before every read goes to the primary, in ms.
    #[arg(long, env = "NOTEGRAPH_REPLICA_MAX_LAG_MS", default_value_t = DEFAULT_REPLICA_MAX_LAG_MS, global = true)]
    pub replica_max_lag_ms: u64,
    /// How long a viewer's write is remembered so that their reads go to
    /// the primary until the replica has replayed it, in ms; must exceed
    /// `NOTEGRAPH_REPLICA_MAX_LAG_MS`.
    #[arg(long, env = "NOTEGRAPH_READ_YOUR_WRITES_MS", default_value_t = DEFAULT_READ_YOUR_WRITES_MS, global = true)]
    pub read_your_writes_ms: u64,
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
    /// Connections kept open while the server is idle.
    #[arg(long, env = "NOTEGRAPH_DB_MIN_CONNECTIONS", default_value_t = DEFAULT_DB_MIN_CONNECTIONS, global = true)]
    pub db_min_connections: u32,
    /// How long a connection lives before it is replaced, in seconds.
    #[arg(long, env = "NOTEGRAPH_DB_MAX_LIFETIME_SECS", default_value_t = DEFAULT_DB_MAX_LIFETIME_SECS, global = true)]
    pub db_max_lifetime_secs: u64,
    /// Prepared statements kept per connection (0: none).
    #[arg(long, env = "NOTEGRAPH_DB_STATEMENT_CACHE", default_value_t = DEFAULT_DB_STATEMENT_CACHE, global = true)]
    pub db_statement_cache: usize,
    /// How long a request waits for a connection before SERVICE_UNAVAILABLE, in ms.
    #[arg(long, env = "NOTEGRAPH_DB_ACQUIRE_TIMEOUT_MS", default_value_t = DEFAULT_DB_ACQUIRE_TIMEOUT_MS, global = true)]
    pub db_acquire_timeout_ms: u64,
    /// Server-side limit on one SQL statement (`statement_timeout`), in ms.
    #[arg(long, env = "NOTEGRAPH_DB_TIMEOUT_MS", default_value_t = DEFAULT_DB_TIMEOUT_MS, global = true)]
    pub db_timeout_ms: u64,
    /// HNSW candidate list size for searches by vector and `similar`
    /// (recall vs speed; pgvector allows 1 to 1000).
    #[arg(long, env = "NOTEGRAPH_HNSW_EF_SEARCH", default_value_t = DEFAULT_HNSW_EF_SEARCH, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub hnsw_ef_search: u32,
    /// HNSW candidate list size for `searchNotes(text:)`: embedded text
    /// usually sits farther from every note than a client's vector does,
    /// and needs more for the same recall (1 to 1000).
    #[arg(long, env = "NOTEGRAPH_HNSW_EF_SEARCH_TEXT", default_value_t = DEFAULT_HNSW_EF_SEARCH_TEXT, global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub hnsw_ef_search_text: u32,
    /// Most HNSW index tuples one filtered search visits before it gives up
    /// (`hnsw.max_scan_tuples`): the cost ceiling of a filter few notes pass.
    #[arg(long, env = "NOTEGRAPH_HNSW_MAX_SCAN_TUPLES", default_value_t = DEFAULT_HNSW_MAX_SCAN_TUPLES, global = true)]
    pub hnsw_max_scan_tuples: u32,
    /// Tag-filtered searches over a tag with at most this many notes use
    /// exact distances over the tag's notes instead of the HNSW index.
    #[arg(long, env = "NOTEGRAPH_EXACT_TAG_NOTES", default_value_t = DEFAULT_EXACT_TAG_NOTES, global = true)]
    pub exact_tag_notes: u32,
    /// IVFFlat lists probed per search, when the optional IVFFlat index is
    /// in use instead of HNSW (docs/PERFORMANCE.md).
    #[arg(long, env = "NOTEGRAPH_IVFFLAT_PROBES", default_value_t = DEFAULT_IVFFLAT_PROBES, global = true)]
    pub ivfflat_probes: u32,
    /// The vector index `serve` and `seed` make the database hold on
    /// `notes.embedding`: building it if missing, dropping the other kind.
    #[arg(long, env = "NOTEGRAPH_VECTOR_INDEX", value_enum, default_value_t = DEFAULT_VECTOR_INDEX, global = true)]
    pub vector_index: VectorIndex,
}

impl DbConfig {
    /// Pool settings for a database at `url`.
    pub fn settings(&self, url: String) -> db::Settings {
        db::Settings {
            url,
            max_connections: self.db_max_connections,
            min_connections: self.db_min_connections,
            max_lifetime: Duration::from_secs(self.db_max_lifetime_secs),
            statement_cache: self.db_statement_cache,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_timeout_ms),
            hnsw_ef_search: self.hnsw_ef_search,
            hnsw_max_scan_tuples: self.hnsw_max_scan_tuples,
            exact_tag_notes: self.exact_tag_notes,
            ivfflat_probes: self.ivfflat_probes,
        }
    }

    /// `hnsw.ef_search` for text searches, when they need their own: on
    /// HNSW, and different from the connections' setting (otherwise a text
    /// search is one statement, like a vector search).
    pub fn text_ef_search(&self) -> Option<u32> {
        let own = self.hnsw_ef_search_text != self.hnsw_ef_search;
        (self.vector_index == VectorIndex::Hnsw && own).then_some(self.hnsw_ef_search_text)
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
    /// Deadline for executing one operation, in ms; past it the answer is
    /// a GraphQL error with code TIMEOUT.
    #[arg(long, env = "NOTEGRAPH_GRAPHQL_TIMEOUT_MS", default_value_t = DEFAULT_GRAPHQL_TIMEOUT_MS, global = true)]
    pub graphql_timeout_ms: u64,
    /// Answer introspection queries; default: on unless NOTEGRAPH_ENV=production.
    #[arg(long, env = "NOTEGRAPH_INTROSPECTION", action = clap::ArgAction::Set, global = true)]
    pub introspection: Option<bool>,
    /// Suggest field names in validation errors; default: on unless
    /// NOTEGRAPH_ENV=production.
    #[arg(long, env = "NOTEGRAPH_FIELD_SUGGESTIONS", action = clap::ArgAction::Set, global = true)]
    pub field_suggestions: Option<bool>,
    /// Deepest field nesting of an operation.
    #[arg(long, env = "NOTEGRAPH_MAX_DEPTH", default_value_t = DEFAULT_MAX_DEPTH, global = true)]
    pub max_depth: usize,
    /// Highest operation cost: each field costs 1, and a list field's
    /// subtree is multiplied by its `first` (or its default).
    #[arg(long, env = "NOTEGRAPH_MAX_COMPLEXITY", default_value_t = DEFAULT_MAX_COMPLEXITY, global = true)]
    pub max_complexity: u64,
    /// Most aliases in one document.
    #[arg(long, env = "NOTEGRAPH_MAX_ALIASES", default_value_t = DEFAULT_MAX_ALIASES, global = true)]
    pub max_aliases: usize,
    /// Most fields at the root of the executed operation.
    #[arg(long, env = "NOTEGRAPH_MAX_ROOT_FIELDS", default_value_t = DEFAULT_MAX_ROOT_FIELDS, global = true)]
    pub max_root_fields: usize,
    /// Largest document, in bytes.
    #[arg(long, env = "NOTEGRAPH_MAX_DOCUMENT_BYTES", default_value_t = DEFAULT_MAX_DOCUMENT_BYTES, global = true)]
    pub max_document_bytes: usize,
    /// Most lexical tokens in a document.
    #[arg(long, env = "NOTEGRAPH_MAX_TOKENS", default_value_t = DEFAULT_MAX_TOKENS, global = true)]
    pub max_tokens: usize,
    /// Most directives on one field or fragment.
    #[arg(long, env = "NOTEGRAPH_MAX_DIRECTIVES_PER_FIELD", default_value_t = DEFAULT_MAX_DIRECTIVES_PER_FIELD, global = true)]
    pub max_directives_per_field: usize,
    /// Memory for parsed documents kept by their text, so that a document
    /// sent again is not parsed again; 0 keeps none.
    #[arg(long, env = "NOTEGRAPH_PARSED_DOCUMENTS_BYTES", default_value_t = DEFAULT_PARSED_DOCUMENTS_BYTES, global = true)]
    pub parsed_documents_bytes: u64,
    /// A JSON file of trusted documents (hash → document, or Apollo's
    /// persisted query manifest): when set, only these execute.
    #[arg(long, env = "NOTEGRAPH_TRUSTED_DOCUMENTS", global = true)]
    pub trusted_documents: Option<PathBuf>,
}

impl GraphqlConfig {
    /// The operation limits these settings describe.
    pub fn limits(&self) -> crate::graphql::OperationLimits {
        crate::graphql::OperationLimits {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_aliases: self.max_aliases,
            max_root_fields: self.max_root_fields,
            max_document_bytes: self.max_document_bytes,
            max_tokens: self.max_tokens,
            max_directives_per_field: self.max_directives_per_field,
        }
    }
}

/// Embedding provider settings: the built-in hashing embedder, or an
/// OpenAI-compatible HTTP endpoint when `NOTEGRAPH_EMBED_URL` is set.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Embedding")]
pub struct EmbedConfig {
    /// OpenAI-compatible embeddings endpoint (e.g. https://api.openai.com/v1/embeddings);
    /// unset: the built-in deterministic embedder.
    #[arg(long, env = "NOTEGRAPH_EMBED_URL", global = true)]
    pub embed_url: Option<String>,
    /// Model name sent to the endpoint.
    #[arg(long, env = "NOTEGRAPH_EMBED_MODEL", default_value = DEFAULT_EMBED_MODEL, global = true)]
    pub embed_model: String,
    /// Bearer token for the endpoint.
    #[arg(long, env = "NOTEGRAPH_EMBED_API_KEY", global = true)]
    pub embed_api_key: Option<Secret>,
    /// Vector size; must equal the `notes.embedding` column's (checked at start-up).
    #[arg(long, env = "NOTEGRAPH_EMBED_DIMENSION", default_value_t = DEFAULT_EMBED_DIMENSION, global = true)]
    pub embed_dimension: usize,
    /// Time budget of one embedding call, retries included, in ms.
    #[arg(long, env = "NOTEGRAPH_EMBED_TIMEOUT_MS", default_value_t = DEFAULT_EMBED_TIMEOUT_MS, global = true)]
    pub embed_timeout_ms: u64,
    /// Retries on 429, 5xx or a transport error.
    #[arg(long, env = "NOTEGRAPH_EMBED_MAX_RETRIES", default_value_t = DEFAULT_EMBED_MAX_RETRIES, global = true)]
    pub embed_max_retries: u32,
    /// Most texts per request to the endpoint.
    #[arg(long, env = "NOTEGRAPH_EMBED_BATCH_SIZE", default_value_t = DEFAULT_EMBED_BATCH_SIZE, global = true)]
    pub embed_batch_size: usize,
    /// Most texts whose embedding is cached (HTTP provider only).
    #[arg(long, env = "NOTEGRAPH_EMBED_CACHE_ENTRIES", default_value_t = DEFAULT_EMBED_CACHE_ENTRIES, global = true)]
    pub embed_cache_entries: u64,
    /// Most bytes of cached texts and vectors (HTTP provider only).
    #[arg(long, env = "NOTEGRAPH_EMBED_CACHE_BYTES", default_value_t = DEFAULT_EMBED_CACHE_BYTES, global = true)]
    pub embed_cache_bytes: u64,
}

impl EmbedConfig {
    /// The configured embedder: the HTTP provider behind its cache, or the
    /// built-in one (which needs no cache: it costs microseconds). A
    /// `ceiling` (the GraphQL execution timeout) caps the provider's time
    /// budget at nine tenths of it, so that a slow provider is
    /// SERVICE_UNAVAILABLE with time left to answer, not TIMEOUT.
    pub fn embedder(&self, ceiling: Option<Duration>) -> anyhow::Result<Arc<dyn embed::Embedder>> {
        if self.embed_dimension == 0 {
            anyhow::bail!("NOTEGRAPH_EMBED_DIMENSION must be positive");
        }
        let Some(url) = &self.embed_url else {
            return Ok(Arc::new(embed::HashEmbedder::new(self.embed_dimension)));
        };
        let http = embed::HttpEmbedder::new(embed::HttpSettings {
            url: url.clone(),
            model: self.embed_model.clone(),
            api_key: self.embed_api_key.as_ref().map(|key| key.expose().to_owned()),
            dimension: self.embed_dimension,
            timeout: ceiling.map_or(Duration::from_millis(self.embed_timeout_ms), |c| {
                Duration::from_millis(self.embed_timeout_ms).min(c.mul_f64(0.9))
            }),
            max_retries: self.embed_max_retries,
            batch_size: self.embed_batch_size,
            propagate: Some(crate::telemetry::inject_trace_context),
        })?;
        Ok(Arc::new(embed::CachedEmbedder::new(Arc::new(http), self.embed_cache_entries, self.embed_cache_bytes)))
    }
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

/// Subscription settings (docs/SUBSCRIPTIONS.md).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Subscriptions")]
pub struct SubscriptionConfig {
    /// Events the hub keeps for slow subscribers; one that falls further
    /// behind skips ahead and gets an error saying how many it missed.
    #[arg(long, env = "NOTEGRAPH_SUBSCRIPTION_BUFFER", default_value_t = DEFAULT_SUBSCRIPTION_BUFFER, global = true)]
    pub subscription_buffer: usize,
    /// Open subscriptions in this process, over every transport; more are
    /// refused with RATE_LIMITED.
    #[arg(long, env = "NOTEGRAPH_MAX_SUBSCRIPTIONS", default_value_t = DEFAULT_MAX_SUBSCRIPTIONS, global = true)]
    pub max_subscriptions: usize,
    /// Open subscriptions of one signed-in user (anonymous subscribers are
    /// bounded per connection and in total).
    #[arg(long, env = "NOTEGRAPH_MAX_SUBSCRIPTIONS_PER_VIEWER", default_value_t = DEFAULT_MAX_SUBSCRIPTIONS_PER_VIEWER, global = true)]
    pub max_subscriptions_per_viewer: usize,
    /// Open subscriptions on one WebSocket or one single-connection SSE
    /// stream.
    #[arg(long, env = "NOTEGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION, global = true)]
    pub max_subscriptions_per_connection: usize,
    /// Interval of the SSE heartbeat comments that keep proxies from
    /// closing a quiet stream, in milliseconds.
    #[arg(long, env = "NOTEGRAPH_SSE_HEARTBEAT_MS", default_value_t = DEFAULT_SSE_HEARTBEAT_MS, global = true)]
    pub sse_heartbeat_ms: u64,
}

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
    #[arg(long, env = "NOTEGRAPH_METRICS_ENABLED", default_value_t = true, action = clap::ArgAction::Set, global = true)]
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
    /// field costs an allocation per field of every operation.
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

/// The kinds of vector index on `notes.embedding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VectorIndex {
    /// HNSW (m = 24, ef_construction = 128): the default.
    Hnsw,
    /// IVFFlat, lists = rows / 1000 (√rows above a million rows).
    Ivfflat,
}

impl VectorIndex {
    /// The database crate's name for it.
    pub fn kind(self) -> db::vector_index::IndexKind {
        match self {
            VectorIndex::Hnsw => db::vector_index::IndexKind::Hnsw,
            VectorIndex::Ivfflat => db::vector_index::IndexKind::Ivfflat,
        }
    }

    /// As `NOTEGRAPH_VECTOR_INDEX` spells it.
    pub fn name(self) -> &'static str {
        match self {
            VectorIndex::Hnsw => "hnsw",
            VectorIndex::Ivfflat => "ivfflat",
        }
    }
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
        let printed = format!("{:?}", config(&["--jwt-secret", "hunter2", "--database-url", "postgres://u:pw@h/db"]));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("pw@"), "{printed}");
    }

    /// The settings of the command line `notegraph <args>`.
    fn config(args: &[&str]) -> Config {
        parse(args).unwrap_or_else(|err| panic!("{args:?}: {err}"))
    }

    /// The settings of `notegraph <args>`, or why clap refuses them.
    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        /// The settings alone, as every command reads them.
        #[derive(clap::Parser)]
        struct Settings {
            #[command(flatten)]
            config: Config,
        }
        let args = std::iter::once("notegraph").chain(args.iter().copied());
        <Settings as clap::Parser>::try_parse_from(args).map(|settings| settings.config)
    }

    #[test]
    fn text_searches_get_their_own_ef_search_only_on_hnsw_and_when_it_differs() {
        assert_eq!(config(&[]).db.text_ef_search(), Some(DEFAULT_HNSW_EF_SEARCH_TEXT));
        assert_eq!(config(&["--hnsw-ef-search", "160"]).db.text_ef_search(), None);
        assert_eq!(config(&["--vector-index", "ivfflat"]).db.text_ef_search(), None);
        let refused = parse(&["--hnsw-ef-search-text", "0"]).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("1..=1000")), "ef_search 0 must be refused");
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
    fn no_color_follows_no_color_org() {
        assert_eq!(non_empty(""), Ok(false));
        assert_eq!(non_empty("0"), Ok(true));
        assert!(config(&["--no-color"]).telemetry.no_color);
    }

    #[test]
    fn timeouts_must_be_strictly_ordered() {
        let equal = config(&["--graphql-timeout-ms", "20000"]).check_timeouts().unwrap_err();
        assert!(equal.contains("NOTEGRAPH_GRAPHQL_TIMEOUT_MS (20000)"), "{equal}");
        assert!(config(&["--http-timeout-ms", "1000"]).check_timeouts().is_err());
        assert!(
            config(&["--db-timeout-ms", "0", "--graphql-timeout-ms", "5", "--http-timeout-ms", "9"])
                .check_timeouts()
                .is_err()
        );
        let custom = ["--http-timeout-ms", "3000", "--graphql-timeout-ms", "2000", "--db-timeout-ms", "1500"];
        assert!(config(&custom).check_timeouts().is_ok());
    }

    #[test]
    fn production_hides_the_schema_unless_asked() {
        let dev = config(&[]);
        assert!(dev.introspection_enabled() && dev.suggestions_enabled());
        let prod = config(&["--env", "production"]);
        assert!(!prod.introspection_enabled() && !prod.suggestions_enabled());
        let asked = config(&["--env", "production", "--introspection", "true"]);
        assert!(asked.introspection_enabled() && !asked.suggestions_enabled());
    }
}
