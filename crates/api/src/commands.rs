//! What each command of the binary does, given the parsed command line.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use db::vector_index::Ensured;
use seed::{IndexKind, SeedError, SeedOptions};

use crate::app::{self, Application};
use crate::auth::Authenticator;
use crate::cli::{Cli, Command, HealthcheckArgs, ReembedArgs, SeedArgs, TokenArgs};
use crate::config::{self, Config, EmbedderKind, VectorIndex};
use crate::database::{Database, start_embedded};
use crate::{console, graphql, shutdown, telemetry};

/// The demo data set `serve` loads into an empty embedded database, so a
/// newcomer sees data at once (and the published k6 mix finds user 1 and
/// note 1). Not forced: should the database hold anything the seeder did
/// not create after all, failing to start beats deleting it.
const DEMO: SeedOptions = SeedOptions {
    users: 200,
    notes: 2_000,
    tags: 40,
    seed: 42,
    force: false,
    vector_index: IndexKind::Hnsw,
    hnsw_ef_construction: db::vector_index::DEFAULT_EF_CONSTRUCTION,
};

/// Runs the command the user asked for.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::PrintSchema => print(&graphql::sdl()),
        Command::PrintConfiguration => print(config::reference::markdown().trim_end_matches('\n')),
        Command::Token(args) => token(&config, &args),
        Command::Healthcheck(args) => healthcheck(&config, &args).await,
        command => {
            let telemetry = telemetry::init(&config.telemetry)?;
            check_environment()?;
            console::print_configuration(&config);
            if config.auth.signs_with_development_secret() {
                tracing::warn!("NOTEGRAPH_JWT_SECRET is the development default; set it in production");
            }
            let outcome = match command {
                Command::Serve => serve(&config).await,
                Command::Migrate => Database::open(&config.database).await?.close().await,
                Command::Seed(args) => reseed(&config, &args).await,
                Command::Reembed(args) => reembed(&config, &args).await,
                Command::EmbeddedPostgres => embedded_postgres(&config).await,
                Command::PrintSchema | Command::PrintConfiguration | Command::Token(_) | Command::Healthcheck(_) => {
                    Ok(())
                }
            };
            // On its own thread: the exporter's blocking client may not
            // block the runtime.
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            outcome
        }
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    // Before the database: a refused start, or a port already taken, should
    // not start (or install) Postgres first.
    config.check_safe_to_serve()?;
    config.check_timeouts().map_err(anyhow::Error::msg)?;
    config.embedding.check().map_err(anyhow::Error::msg)?;
    // The TLS pair is checked here too (and loaded again by the build),
    // so that a wrong one fails before Postgres starts.
    app::server_tls(config)?;
    let listener = app::listen(config.server.listen).await?;
    let database = Database::open(&config.database).await?;
    check_embedding_dimension(&database.pool, config.embedding.embed_dimension).await?;
    if database.is_embedded() && config.database.demo_data && db::users::is_empty(&database.pool).await? {
        tracing::info!(users = DEMO.users, notes = DEMO.notes, "empty embedded database, loading demo data");
        let demo = SeedOptions {
            vector_index: config.database.vector_index.kind(),
            hnsw_ef_construction: hnsw_ef_construction(config)?,
            ..DEMO
        };
        seed::run(&database.pool, &demo, &embed::HashEmbedder::default()).await.context("loading demo data")?;
        embed_demo_data(config, &database.pool).await?;
    }
    ensure_vector_index(&database.pool, config.database.vector_index, hnsw_ef_construction(config)?).await?;
    let app = Application::build_on(listener, config, database.pool.clone(), database.read_pool.clone()).await?;
    // Before anyone is told where we listen, who may then stop us at once.
    let stop = shutdown::signal();
    console::print_listening(config, app.local_addr()?);
    let served = app.run_until_stopped(stop).await;
    database.close().await?;
    served
}

/// The demo data is generated with the built-in embedder's vectors; with
/// the local model configured, its notes are re-embedded by the model
/// before the server opens, so that the first searches are by meaning
/// (about 2,000 notes: docs/PERFORMANCE.md, "Vector search"). An HTTP
/// provider is left alone: it would be billed for the demo; `notegraph
/// reembed` does it on request.
async fn embed_demo_data(config: &Config, pool: &db::PgPool) -> anyhow::Result<()> {
    if config.embedding.kind().map_err(anyhow::Error::msg)? != EmbedderKind::Minilm {
        return Ok(());
    }
    let embedder = app::embedder(&config.embedding, &config.database.data_dir, None).await?;
    let started = std::time::Instant::now();
    let options = crate::reembed::Options { batch: 256, max_batches: None };
    let report = crate::reembed::run(pool, embedder.as_ref(), options, &mut std::io::sink())
        .await
        .context("embedding the demo data with the model")?;
    tracing::info!(notes = report.done, elapsed_ms = started.elapsed().as_millis(), "demo data embedded by the model");
    Ok(())
}

async fn reseed(config: &Config, args: &SeedArgs) -> anyhow::Result<()> {
    let database = Database::open(&config.database).await?;
    if args.if_empty && !db::users::is_empty(&database.pool).await? {
        database.close().await?;
        return print("the database already has users; nothing seeded (--if-empty)");
    }
    let options = SeedOptions {
        users: args.users,
        notes: args.notes,
        tags: args.tags,
        seed: args.seed,
        force: args.force,
        vector_index: config.database.vector_index.kind(),
        hnsw_ef_construction: hnsw_ef_construction(config)?,
    };
    let report = seed::run(&database.pool, &options, &embed::HashEmbedder::default()).await;
    database.close().await?;
    let report = match report {
        Err(SeedError::UnseededData) => anyhow::bail!(
            "refusing to replace users, notes or tags that `notegraph seed` did not create (nothing was \
             changed); run `notegraph seed --force` to replace them anyway"
        ),
        report => report.context("seeding")?,
    };
    print(&format!(
        "seeded {} users, {} notes, {} tags, {} note tags in {:.1} s",
        report.users,
        report.notes,
        report.tags,
        report.note_tags,
        report.elapsed.as_secs_f64()
    ))
}

/// Refuses to start when the embedder's vectors would not fit the
/// `notes.embedding` column, saying what to change either way.
pub async fn check_embedding_dimension(pool: &db::PgPool, dimension: usize) -> anyhow::Result<()> {
    match db::embeddings::column_dimension(pool).await? {
        Some(column) if column != dimension => anyhow::bail!(
            "the embedder makes {dimension}-dimension vectors but notes.embedding is vector({column}): set \
             NOTEGRAPH_EMBED_DIMENSION={column} and a model that supports it, or migrate the column \
             (drop the vector index, `alter table notes alter column embedding type vector({dimension})` with a \
             `using` expression or an emptied column, recreate the index) and run `notegraph reembed`"
        ),
        _ => Ok(()),
    }
}

/// The HNSW index's ef_construction for the configured embedder
/// ([`crate::config::DatabaseConfig::hnsw_ef_construction`]).
fn hnsw_ef_construction(config: &Config) -> anyhow::Result<u32> {
    Ok(config.database.hnsw_ef_construction(config.embedding.kind().map_err(anyhow::Error::msg)?))
}

/// Makes the database hold the `index` kind of vector index and not the
/// other ([`db::vector_index::ensure`]), an HNSW one built with
/// `ef_construction`, logging what it built and how long that took.
/// Replicas starting together build it once.
pub async fn ensure_vector_index(pool: &db::PgPool, index: VectorIndex, ef_construction: u32) -> anyhow::Result<()> {
    let ensured = db::vector_index::ensure(pool, index.kind(), ef_construction)
        .await
        .with_context(|| format!("making notes.embedding's index {} (NOTEGRAPH_VECTOR_INDEX)", index.name()))?;
    match ensured {
        Ensured::Present => tracing::debug!(index = index.name(), "vector index present"),
        Ensured::DroppedOther => tracing::info!(index = index.name(), "dropped the other kind of vector index"),
        Ensured::Built { elapsed, lists, dropped_other } => tracing::info!(
            index = index.name(),
            elapsed_ms = elapsed.as_millis() as u64,
            lists,
            ef_construction = (index == VectorIndex::Hnsw).then_some(ef_construction),
            dropped_other,
            "built the vector index NOTEGRAPH_VECTOR_INDEX names"
        ),
    }
    Ok(())
}

/// Re-embeds the notes the configured embedder did not make
/// ([`crate::reembed`]), printing progress after each batch.
async fn reembed(config: &Config, args: &ReembedArgs) -> anyhow::Result<()> {
    config.embedding.check().map_err(anyhow::Error::msg)?;
    let database = Database::open(&config.database).await?;
    let embedder = app::embedder(&config.embedding, &config.database.data_dir, None).await?;
    check_embedding_dimension(&database.pool, embedder.dimension()).await?;
    let options = crate::reembed::Options { batch: args.batch, max_batches: args.max_batches };
    let outcome = crate::reembed::run(&database.pool, embedder.as_ref(), options, &mut std::io::stdout()).await;
    database.close().await?;
    outcome.map(drop)
}

/// GETs the local server's `/readyz` (or `--url`): success on 200, an
/// error (exit code 1) on any other status, a refused connection or the
/// timeout. Logs nothing: a container runtime runs it every few seconds.
async fn healthcheck(config: &Config, args: &HealthcheckArgs) -> anyhow::Result<()> {
    let url = args.url.clone().unwrap_or_else(|| {
        let listen = config.server.listen;
        let ip = if listen.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { listen.ip() };
        format!("{}://{}/readyz", config.server.scheme(), std::net::SocketAddr::new(ip, listen.port()))
    });
    // The default URL is this machine's own server over loopback, whose
    // certificate names the public host, not 127.0.0.1: asking whether it
    // is up needs no proof of who it is. A URL given is verified as usual.
    let own_server = args.url.is_none() && config.server.tls_files().is_ok_and(|files| files.is_some());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .danger_accept_invalid_certs(own_server)
        .build()?;
    let response = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    anyhow::ensure!(status == reqwest::StatusCode::OK, "GET {url}: {status}");
    print(&format!("GET {url}: {status}"))
}

fn token(config: &Config, args: &TokenArgs) -> anyhow::Result<()> {
    let auth = Authenticator::new(&config.auth)?;
    print(&auth.issue(db::UserId(args.user_id), Duration::from_secs(args.ttl))?)
}

async fn embedded_postgres(config: &Config) -> anyhow::Result<()> {
    let pg = start_embedded(&config.database).await?;
    // Before the URL is out: whoever reads it may stop us right away.
    let stop = shutdown::signal();
    print(&format!("DATABASE_URL={}", pg.url()))?;
    stop.await;
    tokio::task::spawn_blocking(move || pg.stop()).await?.context("stopping the embedded Postgres")?;
    Ok(())
}

/// Command output goes to stdout, logs to stderr.
fn print(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Refuses to start with a retired variable set, naming its replacement,
/// and warns of every other `NOTEGRAPH_*` variable that nothing reads.
fn check_environment() -> anyhow::Result<()> {
    let names: Vec<String> = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
    let unknown = config::environment::check(&config::reference::variables(), names.iter().map(String::as_str))
        .map_err(anyhow::Error::msg)?;
    for name in unknown {
        tracing::warn!(variable = %name, "{name} is set but is not a setting (a typo?); it is ignored (docs/CONFIGURATION.md)");
    }
    Ok(())
}
