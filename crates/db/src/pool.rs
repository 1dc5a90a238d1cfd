//! Connection settings and the pool: every connection gets the statement
//! timeout and the vector-search settings at start-up, so no query has to
//! set them.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::{Error, MIGRATOR};

/// How often a running statement's backend checks that the server is still
/// connected: the most an abandoned statement runs on.
const CLIENT_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Typed pool settings; the api crate fills them from its config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A `postgres://` URL.
    pub url: String,
    /// Upper bound of open connections. Postgres does its best work with
    /// about 2–4 active connections per core; more only queue inside it.
    pub max_connections: u32,
    /// Connections kept open while idle, so the first requests after a
    /// quiet spell do not each pay for a new connection.
    pub min_connections: u32,
    /// How long a connection lives before it is replaced: bounds what a
    /// backend's caches grow to, at the price of one reconnect per period.
    pub max_lifetime: Duration,
    /// Prepared statements each connection keeps (0: none, every statement
    /// parsed and planned again).
    pub statement_cache: usize,
    /// How long a request waits for a free connection before it is told the
    /// database is unavailable, instead of hanging.
    pub acquire_timeout: Duration,
    /// Server-side limit on one statement.
    pub statement_timeout: Duration,
    /// HNSW candidate list size for searches (`hnsw.ef_search`): higher is
    /// better recall and slower.
    pub hnsw_ef_search: u32,
    /// Most index tuples one filtered HNSW scan visits
    /// (`hnsw.max_scan_tuples`): bounds the cost of a filter that almost
    /// nothing passes.
    pub hnsw_max_scan_tuples: u32,
    /// Tags with at most this many notes are searched exactly (B-tree on
    /// the tag, true distances), larger ones through the HNSW index.
    pub exact_tag_notes: u32,
    /// IVFFlat lists probed per search (`ivfflat.probes`), used only when
    /// the optional IVFFlat index replaces HNSW (docs/PERFORMANCE.md).
    pub ivfflat_probes: u32,
}

impl Settings {
    /// Connect options for `url`, its TLS parameters read as libpq reads
    /// them (`crate::tls`), with the per-session settings every statement
    /// relies on.
    pub fn connect_options(&self) -> Result<PgConnectOptions, Error> {
        Ok(self.apply(crate::tls::connect_options(&self.url).map_err(Error::Unavailable)?))
    }

    /// Adds the per-session settings to connect options built elsewhere
    /// (the tests get theirs from `sqlx::test`).
    pub fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        options
            .application_name("notegraph")
            .options([
                ("statement_timeout", format!("{}ms", self.statement_timeout.as_millis())),
                // While a statement runs, Postgres checks this often that
                // its client is still there, and cancels the statement when
                // it is not: an abandoned request's connection is closed
                // (`crate::budget`), so its work stops within this.
                ("client_connection_check_interval", format!("{}ms", CLIENT_CHECK_INTERVAL.as_millis())),
                // One plan per prepared statement, made once per
                // connection. Left to choose (`auto`), Postgres planned the
                // loaders' `= any($1)` and `unnest($1…)` statements afresh
                // at every execution: a generic plan's estimate (ten keys)
                // never beats a custom plan's (one key). Without that
                // re-planning Postgres used 29% less CPU under the published
                // mix with the response cache off (docs/PERFORMANCE.md,
                // "Pool tuning"). Statements
                // whose best plan depends on their values plan for them:
                // tagged searches (`crate::search`).
                ("plan_cache_mode", "force_generic_plan".to_owned()),
                ("hnsw.ef_search", self.hnsw_ef_search.to_string()),
                // Keep scanning the HNSW graph until `limit` rows pass the
                // visibility and tag filters, so filters never cost recall;
                // strict order keeps results sorted by distance.
                ("hnsw.iterative_scan", "strict_order".to_owned()),
                ("hnsw.max_scan_tuples", self.hnsw_max_scan_tuples.to_string()),
                ("ivfflat.probes", self.ivfflat_probes.to_string()),
                // IVFFlat has only the relaxed iterative scan; the search
                // statements re-sort their few rows, so hits stay best first.
                ("ivfflat.iterative_scan", "relaxed_order".to_owned()),
                // Read by the tag-filtered search statement (`db::search`).
                ("notegraph.exact_tag_notes", self.exact_tag_notes.to_string()),
            ])
            .statement_cache_capacity(self.statement_cache)
            // Statements are logged by our own spans, with their batch sizes.
            .disable_statement_logging()
    }

    /// Pool options: size, idle connections kept, lifetime and acquire
    /// timeout (docs/PERFORMANCE.md, "Pool tuning").
    ///
    /// No ping before each acquire (sqlx's default): it costs a round trip
    /// per statement, and a connection that died is found by the statement
    /// itself, whose error (`Unavailable`) closes it and reaches the client
    /// as SERVICE_UNAVAILABLE.
    pub fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections.min(self.max_connections))
            .max_lifetime(self.max_lifetime)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
    }
}

/// Opens the pool and checks that the database answers, failing fast with
/// the cause when it does not.
pub async fn connect(settings: &Settings) -> Result<PgPool, Error> {
    let pool = settings.pool_options().connect_with(settings.connect_options()?).await?;
    Ok(pool)
}

/// True when the database answers and every embedded migration is applied;
/// backs `/readyz`.
pub async fn is_ready(pool: &PgPool) -> Result<bool, Error> {
    let applied: Vec<i64> = sqlx::query_scalar("select version from _sqlx_migrations where success order by version")
        .fetch_all(pool)
        .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .all(|m| applied.binary_search(&m.version).is_ok()))
}
