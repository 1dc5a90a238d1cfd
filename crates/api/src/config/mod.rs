//! The one typed configuration, read from the command line and the
//! environment (`NOTEGRAPH_*`, `DATABASE_URL`, `RUST_LOG`) by clap, so that
//! `notegraph --help` lists every variable with its default. Nothing else in
//! the server reads the environment. The commands and their own arguments
//! are the command line's (`cli.rs`); these settings are shared by all.
//!
//! One file per section, each owning its variables, their defaults and its
//! own checks: `server.rs`, `database.rs`, `auth.rs`, `graphql.rs` (GraphQL
//! execution and operation limits), `cache.rs`, `cors.rs`, `budgets.rs` (per-client
//! budgets on cost, trusted proxies), `subscriptions.rs`,
//! `embedding.rs`, `telemetry.rs`. Here: [`Config`], which gathers them,
//! the deployment settings and the checks that span sections. Beside them,
//! [`Secret`] (`secret.rs`), the value type of secret settings in several
//! sections; [`reference`](mod@reference), which writes
//! docs/CONFIGURATION.md from all of it; and [`environment`], which refuses
//! retired variables and reports `NOTEGRAPH_*` variables nothing reads. The settings build nothing: the
//! server's parts are made from them in `app.rs`.

mod auth;
mod budgets;
mod cache;
mod cors;
mod database;
mod embedding;
pub mod environment;
mod graphql;
pub mod reference;
mod secret;
mod server;
mod subscriptions;
mod telemetry;
#[cfg(test)]
mod testing;

use std::net::SocketAddr;

use clap::Args;

pub use auth::*;
pub use budgets::*;
pub use cache::*;
pub use cors::*;
pub use database::*;
pub use embedding::*;
pub use graphql::*;
pub use secret::Secret;
pub use server::*;
pub use subscriptions::*;
pub use telemetry::*;

/// Every setting, nested by concern.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// HTTP server settings.
    #[command(flatten)]
    pub server: ServerConfig,
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Authentication settings.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// GraphQL execution settings.
    #[command(flatten)]
    pub graphql: GraphqlConfig,
    /// Response cache settings.
    #[command(flatten)]
    pub cache: CacheConfig,
    /// Which browser origins may call the API.
    #[command(flatten)]
    pub cors: CorsConfig,
    /// Per-client budgets on operation cost, and the trusted proxies.
    #[command(flatten)]
    pub budgets: BudgetsConfig,
    /// Subscription settings.
    #[command(flatten)]
    pub subscriptions: SubscriptionsConfig,
    /// Embedding provider settings.
    #[command(flatten)]
    pub embedding: EmbeddingConfig,
    /// Logging settings.
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// Development machine: `serve` accepts the development JWT secret and
    /// the `test-token` static token on any address, not only on loopback.
    #[arg(long, env = "NOTEGRAPH_DEV", global = true, help_heading = "Deployment")]
    pub dev: bool,
    /// The deployment environment; `production` turns field suggestions
    /// and introspection off unless they are set explicitly.
    #[arg(long, env = "NOTEGRAPH_ENV", value_enum, default_value_t = Environment::Development, global = true,
          help_heading = "Deployment")]
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
    /// (HTTP > GraphQL > DB, and HTTP > body read): an inner deadline must
    /// fire first, so that its precise error reaches the client and its
    /// work stops. Also
    /// refuses what the database section itself refuses
    /// ([`DatabaseConfig::check_read_your_writes`],
    /// [`DatabaseConfig::check_write_share`]).
    pub fn check_timeouts(&self) -> Result<(), String> {
        let (http, graphql, db) =
            (self.server.http_timeout_ms, self.graphql.graphql_timeout_ms, self.database.db_timeout_ms);
        if db == 0 || !(http > graphql && graphql > db) {
            return Err(format!(
                "timeouts must be ordered NOTEGRAPH_HTTP_TIMEOUT_MS ({http}) > NOTEGRAPH_GRAPHQL_TIMEOUT_MS ({graphql}) \
                 > NOTEGRAPH_DB_TIMEOUT_MS ({db}) > 0"
            ));
        }
        let body = self.server.body_read_timeout_ms();
        if body == 0 || body >= http {
            return Err(format!(
                "NOTEGRAPH_BODY_READ_TIMEOUT_MS ({body}) must be above 0 and under NOTEGRAPH_HTTP_TIMEOUT_MS ({http}), \
                 so that a slow body is answered 408 before the whole request times out"
            ));
        }
        self.database.check_read_your_writes()?;
        self.database.check_write_share()
    }

    /// Whether introspection queries are answered: as set, else on outside
    /// production.
    pub fn introspection_enabled(&self) -> bool {
        self.graphql.introspection.unwrap_or(self.env != Environment::Production)
    }

    /// Whether `/` serves GraphiQL: as set, else wherever introspection is
    /// answered (without it the IDE has no schema to offer).
    pub fn graphiql_enabled(&self) -> bool {
        self.graphql.graphiql.unwrap_or_else(|| self.introspection_enabled())
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
        let listen = self.server.listen;
        let (jwt_secret, test_token) =
            (self.auth.signs_with_development_secret(), self.auth.accepts_development_token());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings of the command line `notegraph <args>`.
    fn from_args(args: &[&str]) -> Config {
        testing::parse(args)
    }

    #[test]
    fn secrets_never_print() {
        let printed =
            format!("{:?}", from_args(&["--jwt-secret", "hunter2", "--database-url", "postgres://u:pw@h/db"]));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("pw@"), "{printed}");
    }

    #[test]
    fn development_credentials_are_refused_on_a_reachable_address() {
        let both = from_args(&["--listen", "0.0.0.0:8080"]).check_safe_to_serve().unwrap_err().to_string();
        for variable in ["NOTEGRAPH_JWT_SECRET", "NOTEGRAPH_STATIC_TOKENS", "NOTEGRAPH_DEV", "NOTEGRAPH_LISTEN"] {
            assert!(both.contains(variable), "{variable} missing from: {both}");
        }
        let secret = from_args(&["--listen", "10.0.0.5:8080", "--static-tokens", "mine=1"]).check_safe_to_serve();
        let secret = secret.unwrap_err().to_string();
        assert!(secret.contains("NOTEGRAPH_JWT_SECRET") && !secret.contains("NOTEGRAPH_STATIC_TOKENS"), "{secret}");
        let token =
            from_args(&["--listen", "[::]:8080", "--jwt-secret", "s3cret", "--static-tokens", "a=2, test-token=1"])
                .check_safe_to_serve()
                .unwrap_err()
                .to_string();
        assert!(token.contains("NOTEGRAPH_STATIC_TOKENS") && !token.contains("NOTEGRAPH_JWT_SECRET"), "{token}");
    }

    #[test]
    fn loopback_keeps_the_development_defaults() {
        for listen in ["127.0.0.1:8080", "127.1.2.3:0", "[::1]:8080", "[::ffff:127.0.0.1]:8080"] {
            assert!(from_args(&["--listen", listen]).check_safe_to_serve().is_ok(), "{listen}");
        }
    }

    #[test]
    fn dev_or_own_credentials_serve_anywhere() {
        assert!(from_args(&["--listen", "0.0.0.0:8080", "--dev"]).check_safe_to_serve().is_ok());
        let own = ["--listen", "0.0.0.0:8080", "--jwt-secret", "s3cret", "--static-tokens", "mine=1"];
        assert!(from_args(&own).check_safe_to_serve().is_ok());
        let none = ["--listen", "0.0.0.0:8080", "--jwt-secret", "s3cret", "--static-tokens", ""];
        assert!(from_args(&none).check_safe_to_serve().is_ok());
        // With a JWKS, the development secret is not accepted, so not a risk.
        let jwks = ["--listen", "0.0.0.0:8080", "--jwks-url", "https://idp.example/jwks", "--static-tokens", ""];
        assert!(from_args(&jwks).check_safe_to_serve().is_ok());
    }

    #[test]
    fn timeouts_must_be_strictly_ordered() {
        let equal = from_args(&["--graphql-timeout-ms", "20000"]).check_timeouts().unwrap_err();
        assert!(equal.contains("NOTEGRAPH_GRAPHQL_TIMEOUT_MS (20000)"), "{equal}");
        assert!(from_args(&["--http-timeout-ms", "1000"]).check_timeouts().is_err());
        assert!(
            from_args(&["--db-timeout-ms", "0", "--graphql-timeout-ms", "5", "--http-timeout-ms", "9"])
                .check_timeouts()
                .is_err()
        );
        let replica = ["--replica-max-lag-ms", "800", "--read-your-writes-ms", "500"];
        assert!(from_args(&replica).check_timeouts().is_err(), "the database section's own check is made too");
        let body = from_args(&["--body-read-timeout-ms", "30000"]).check_timeouts().unwrap_err();
        assert!(body.contains("NOTEGRAPH_BODY_READ_TIMEOUT_MS (30000)"), "{body}");
        let custom = [
            "--http-timeout-ms",
            "3000",
            "--graphql-timeout-ms",
            "2000",
            "--db-timeout-ms",
            "1500",
            "--body-read-timeout-ms",
            "1000",
        ];
        assert!(from_args(&custom).check_timeouts().is_ok());
        // Unset, the body deadline follows the whole-request one.
        let short = ["--http-timeout-ms", "900", "--graphql-timeout-ms", "600", "--db-timeout-ms", "300"];
        assert_eq!(from_args(&short).server.body_read_timeout_ms(), 300);
        assert!(from_args(&short).check_timeouts().is_ok());
    }

    #[test]
    fn production_hides_the_schema_unless_asked() {
        let dev = from_args(&[]);
        assert!(dev.introspection_enabled() && dev.suggestions_enabled());
        let prod = from_args(&["--env", "production"]);
        assert!(!prod.introspection_enabled() && !prod.suggestions_enabled());
        let asked = from_args(&["--env", "production", "--introspection", "true"]);
        assert!(asked.introspection_enabled() && !asked.suggestions_enabled());
    }

    #[test]
    fn graphiql_follows_introspection_unless_set() {
        assert!(from_args(&[]).graphiql_enabled());
        assert!(!from_args(&["--env", "production"]).graphiql_enabled());
        assert!(from_args(&["--env", "production", "--introspection", "true"]).graphiql_enabled());
        assert!(from_args(&["--env", "production", "--graphiql", "true"]).graphiql_enabled());
        assert!(!from_args(&["--graphiql", "false"]).graphiql_enabled());
    }
}
