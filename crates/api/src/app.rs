//! `Application`: builds the server from config and a pool, binds the
//! listener, and serves until told to stop. `main` and the tests start the
//! server through exactly this code.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::{HeaderName, HeaderValue, Method, header};
use loaders::Loaders;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Authenticator;
use crate::budgets::Budgets;
use crate::config::{Config, CorsConfig, CorsOrigin, EmbedderKind, EmbeddingConfig, GraphqlConfig};
use crate::graphql::{
    EventBus, HotFields, OperationLimits, SchemaDeps, SchemaSettings, Source, Stopping, SubscriptionCaps,
    SubscriptionLimits, TrustedDocuments, WriteShare, build_schema,
};
use crate::http::{
    AppState, ConnectionLimits, Limits, Reservations, ServerTls, Shared, Streams, TlsFiles, router, serve,
};
use crate::metrics::Metrics;
use crate::pipeline::document::Persisted;
use crate::pipeline::shedding::Limiter;
use crate::replica::ReadReplica;
use crate::response_cache::Invalidation;
use crate::{notifications, telemetry};

/// Bound on the persisted query texts held: thousands of documents.
const PERSISTED_QUERY_BYTES: u64 = 16 * 1024 * 1024;
/// A persisted query unused this long is forgotten (clients re-register).
const PERSISTED_QUERY_IDLE: Duration = Duration::from_secs(24 * 60 * 60);

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    connection_limits: ConnectionLimits,
    grace: Duration,
    /// How long `/readyz` fails before the drain starts.
    delay: Duration,
    /// Turned true when shutdown is requested: `/readyz` answers 503.
    leaving: watch::Sender<bool>,
    /// The `LISTEN` task that feeds the cache's invalidation and the
    /// subscriptions, the read replica's watcher, and the signal that
    /// stops them.
    notifications: (JoinHandle<()>, Option<JoinHandle<()>>, watch::Sender<bool>),
    /// Turned true when shutdown starts: open subscriptions complete.
    stopping: watch::Sender<bool>,
    /// `/metrics` on a listener of its own (`NOTEGRAPH_METRICS_LISTEN`).
    metrics_server: Option<(TcpListener, axum::Router)>,
    /// The server's own HTTPS, and what stops its certificate reloads
    /// (when dropped).
    tls: Option<(ServerTls, watch::Sender<bool>)>,
}

impl Application {
    /// Builds the schema, loaders and router over an open (migrated) pool
    /// and binds the listen address (port 0 picks a free port).
    pub async fn build(config: &Config, pool: db::PgPool) -> anyhow::Result<Self> {
        Self::build_on(listen(config.server.listen).await?, config, pool, None).await
    }

    /// Like [`Application::build`], with queries reading `read_pool`, a
    /// streaming replica of `pool`, when they may ([`crate::replica`]).
    pub async fn build_replicated(config: &Config, pool: db::PgPool, read_pool: db::PgPool) -> anyhow::Result<Self> {
        Self::build_on(listen(config.server.listen).await?, config, pool, Some(read_pool)).await
    }

    /// Like [`Application::build_replicated`] (the replica optional), on a
    /// listener bound beforehand (by [`listen`]), so that a taken port
    /// fails before the database starts.
    pub async fn build_on(
        listener: TcpListener,
        config: &Config,
        pool: db::PgPool,
        read_pool: Option<db::PgPool>,
    ) -> anyhow::Result<Self> {
        config.check_timeouts().map_err(anyhow::Error::msg)?;
        let tls = server_tls(config)?.map(|tls| {
            // Spawned now: SIGHUP is handled from here on.
            let (stop, stopped) = watch::channel(false);
            let interval = Duration::from_secs(config.server.tls_reload_interval_secs);
            tokio::spawn(tls.watch(interval, stopped));
            (tls, stop)
        });
        let auth = Authenticator::start(&config.auth).context("reading the auth settings")?;
        // Before the database is needed: a bad budget setting stops the start at once.
        let budgets = Budgets::new(&config.budgets, config.graphql.max_complexity).map_err(anyhow::Error::msg)?;
        let trusted = match &config.graphql.trusted_documents {
            Some(path) => {
                let trusted = TrustedDocuments::load(path).with_context(|| {
                    format!("reading the trusted documents in {} (NOTEGRAPH_TRUSTED_DOCUMENTS)", path.display())
                })?;
                tracing::info!(documents = trusted.len(), "only trusted documents execute");
                Some(Arc::new(trusted))
            }
            None => None,
        };
        let delay = Duration::from_micros(config.graphql.loader_delay_us);
        let loaders = Loaders::new(&pool, delay);
        let replica = read_pool.map(|read_pool| {
            let source = Source { loaders: Loaders::new(&read_pool, delay), pool: read_pool };
            let (max_lag, remember) = (config.database.replica_max_lag_ms, config.database.read_your_writes_ms);
            ReadReplica::new(source, Duration::from_millis(max_lag), Duration::from_millis(remember))
        });
        let ceiling = Some(Duration::from_millis(config.graphql.graphql_timeout_ms));
        let embedder =
            embedder(&config.embedding, &config.database.data_dir, ceiling).await.context("building the embedder")?;
        let cache = config.cache.cache_enabled.then(|| {
            cache::ResponseCache::new(cache::Config {
                max_bytes: config.cache.cache_max_bytes,
                ttl: Duration::from_secs(config.cache.cache_ttl_secs),
            })
        });
        let invalidation = Invalidation::new(
            cache.clone(),
            replica.clone(),
            Duration::from_millis(config.database.read_your_writes_ms),
        );
        let invalidation_writes = invalidation.writes.clone();
        let events = EventBus::new(config.subscriptions.subscription_buffer);
        // Listening starts before the first request is served, so no write
        // committed after that can go unseen by the cache or by a
        // subscriber (without it, the cache is off and subscribers are told
        // of the gap once the task connects).
        let notifications = {
            let listener = notifications::connect(&pool).await;
            let (stop, stopped) = watch::channel(false);
            let targets = notifications::Targets { invalidation: invalidation.clone(), events: events.clone() };
            let watcher = replica
                .clone()
                .map(|replica| tokio::spawn(replica.watch(pool.clone(), cache.clone(), stopped.clone())));
            (tokio::spawn(notifications::run(pool.clone(), listener, targets, stopped)), watcher, stop)
        };
        let (stopping, _) = watch::channel(false);
        let (leaving, _) = watch::channel(false);
        let subscriptions = &config.subscriptions;
        let subscription_caps = SubscriptionCaps::new(SubscriptionLimits {
            total: subscriptions.max_subscriptions,
            per_viewer: subscriptions.max_subscriptions_per_viewer,
            per_connection: subscriptions.max_subscriptions_per_connection,
        });
        let metrics = match config.telemetry.metrics_enabled {
            true => Some(observe(config, &pool, cache.as_ref(), replica.as_ref()).context("registering the metrics")?),
            false => None,
        };
        let schema = build_schema(
            SchemaDeps {
                pool: pool.clone(),
                loaders,
                embedder,
                events,
                subscription_caps,
                stopping: Stopping(stopping.subscribe()),
                invalidation,
                writes: WriteShare::new(
                    config.database.max_concurrent_writes(),
                    Duration::from_millis(config.database.write_wait_ms),
                ),
                replica: replica.clone(),
                trusted: trusted.clone(),
                hot_fields: match config.telemetry.metrics_enabled {
                    true => HotFields::new(&config.telemetry.metrics_hot_fields).map_err(anyhow::Error::msg)?,
                    false => None,
                },
            },
            SchemaSettings {
                limits: operation_limits(&config.graphql),
                parsed_documents_bytes: config.graphql.parsed_documents_bytes,
                timeout: Duration::from_millis(config.graphql.graphql_timeout_ms),
                db_timeout: Duration::from_millis(config.database.db_timeout_ms),
                text_ef_search: config.database.text_ef_search(config.embedding.kind().map_err(anyhow::Error::msg)?),
                introspection: config.introspection_enabled(),
                suggestions: config.suggestions_enabled(),
                fast_path: config.graphql.graphql_fast_path,
            },
        )
        .with_metrics(metrics.clone())
        .context("registering the metrics")?
        .with_budgets(budgets.clone());
        if let (Some(budgets), Some(metrics)) = (&budgets, &metrics) {
            metrics.register(budgets.collector()).context("registering the budget metrics")?;
        }
        let limiter = Limiter::new(config.server.concurrency().map_err(anyhow::Error::msg)?);
        if let Some(metrics) = &metrics {
            metrics.register(limiter.collector()?).context("registering the concurrency metrics")?;
        }
        let limits = Limits {
            timeout: Duration::from_millis(config.server.http_timeout_ms),
            body_limit_bytes: config.server.body_limit_bytes,
            body_read_timeout: Duration::from_millis(config.server.body_read_timeout_ms()),
            limiter,
            metrics_route: config.telemetry.metrics_listen.is_none(),
            graphiql: config.graphiql_enabled(),
        };
        let documents = cache::Documents::new(PERSISTED_QUERY_BYTES, PERSISTED_QUERY_IDLE);
        let streams = Streams {
            body_limit_bytes: config.server.body_limit_bytes,
            body_read_timeout: Duration::from_millis(config.server.body_read_timeout_ms()),
            heartbeat: Duration::from_millis(config.subscriptions.sse_heartbeat_ms),
            stopping: Stopping(stopping.subscribe()),
            reservations: Reservations::default(),
        };
        let state = AppState::new(Shared {
            schema,
            auth,
            pool,
            cache,
            persisted: Persisted::new(documents, trusted, metrics.clone()),
            metrics: metrics.clone(),
            streams,
            leaving: leaving.subscribe(),
            writes: invalidation_writes,
        });
        let router = router(state, limits, cors(&config.cors)?);
        let metrics_server = match (&metrics, config.telemetry.metrics_listen) {
            (Some(metrics), Some(address)) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("listening on {address} (set by NOTEGRAPH_METRICS_LISTEN)"))?;
                Some((listener, crate::http::metrics_router(metrics.clone())))
            }
            _ => None,
        };
        let connection_limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(config.server.header_read_timeout_ms),
            max_headers: config.server.max_headers,
            max_header_bytes: config.server.max_header_bytes,
            max_connections: config.server.max_connections,
            peer_addresses: budgets.is_some(),
        };
        Ok(Self {
            listener,
            router,
            connection_limits,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            delay: Duration::from_millis(config.server.shutdown_delay_ms),
            leaving,
            notifications,
            stopping,
            metrics_server,
            tls,
        })
    }

    /// The address `/metrics` is served on when it has a listener of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_server.as_ref().and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes; then fails `/readyz` for the
    /// shutdown delay while still serving, so load balancers route
    /// elsewhere first; then stops accepting and gives in-flight requests
    /// the grace period to finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // At debug: `serve` tells the person, or the JSON log, itself.
        tracing::debug!(address = %self.local_addr()?, "serving");
        let notifications = self.notifications;
        let stopping = self.stopping;
        // The metrics listener lives as long as the server; a scrape is
        // short, so it needs no drain of its own.
        let metrics_server = self.metrics_server.map(|(listener, router)| {
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, router).await {
                    tracing::error!(exception.type = "INTERNAL", error.message = %err, "metrics listener failed");
                }
            })
        });
        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let (leaving, delay) = (self.leaving, self.delay);
        let (tls, tls_reloads) = self.tls.unzip();
        let serve = serve(self.listener, self.router, self.connection_limits, tls, async move {
            shutdown.await;
            let _ = leaving.send(true);
            if !delay.is_zero() {
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "not ready; serving on until load balancers notice"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!("draining in-flight requests and completing subscriptions");
            // Every open subscription completes (SSE streams end with
            // `complete`, WebSockets send `complete` then close), so the
            // drain below can finish within the grace.
            let _ = stopping.send(true);
            let _ = draining_tx.send(());
        });
        let grace = self.grace;
        let deadline = async move {
            match draining_rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                // The server ended on its own: nothing to bound.
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            () = serve => {}
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "grace period over, dropping in-flight requests"),
        }
        let (task, watcher, stop) = notifications;
        let _ = stop.send(true);
        let _ = task.await;
        if let Some(watcher) = watcher {
            let _ = watcher.await;
        }
        if let Some(task) = metrics_server {
            task.abort();
        }
        drop(tls_reloads);
        tracing::info!("stopped");
        Ok(())
    }
}

/// The server's metrics: its own families, and the cache, pool and read
/// replica read at each scrape.
fn observe(
    config: &Config,
    pool: &db::PgPool,
    cache: Option<&cache::ResponseCache>,
    replica: Option<&ReadReplica>,
) -> prometheus::Result<Metrics> {
    let metrics = Metrics::new(config.telemetry.metrics_max_operation_names)?;
    metrics.watch_pool(pool.clone())?;
    if let Some(replica) = replica {
        metrics.watch_replica(replica.clone())?;
    }
    if let Some(cache) = cache {
        metrics.watch_cache(cache.clone())?;
    }
    Ok(metrics)
}

/// The CORS layer for `NOTEGRAPH_CORS_ORIGINS`, or none when no origin is
/// listed; a setting browsers would refuse stops start-up.
fn cors(config: &CorsConfig) -> anyhow::Result<Option<CorsLayer>> {
    config.check().map_err(anyhow::Error::msg)?;
    if config.cors_origins.is_empty() {
        return Ok(None);
    }
    let origins = if config.cors_origins.contains(&CorsOrigin::Any) {
        AllowOrigin::any()
    } else {
        let exact = config.cors_origins.iter().filter_map(|origin| match origin {
            CorsOrigin::Exact(origin) => HeaderValue::from_str(origin).ok(),
            CorsOrigin::Any => None,
        });
        AllowOrigin::list(exact)
    };
    let name = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(origins)
            // PUT and DELETE make and end graphql-sse reservations.
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::ACCEPT,
                header::AUTHORIZATION,
                header::CACHE_CONTROL,
                header::CONTENT_TYPE,
                name("x-graphql-event-stream-token"),
                name("x-request-id"),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                name("x-cache"),
                name("x-request-id"),
                crate::budgets::RATELIMIT,
                crate::budgets::RATELIMIT_POLICY,
            ])
            .allow_credentials(config.cors_allow_credentials)
            .max_age(Duration::from_secs(config.cors_max_age_secs)),
    ))
}

/// The configured embedder ([`EmbeddingConfig::kind`]): the built-in one
/// (which needs no cache: it costs microseconds), or the local model or
/// the HTTP provider, each behind the query cache. The model's files come
/// from `NOTEGRAPH_MODEL_DIR`, or are installed once under `data_dir`; both
/// that and loading run on a blocking thread. A `ceiling` (the GraphQL
/// execution timeout) caps the HTTP provider's time budget
/// ([`EmbeddingConfig::timeout`]).
pub async fn embedder(
    config: &EmbeddingConfig,
    data_dir: &std::path::Path,
    ceiling: Option<Duration>,
) -> anyhow::Result<Arc<dyn embed::Embedder>> {
    config.check().map_err(anyhow::Error::msg)?;
    let inner: Arc<dyn embed::Embedder> = match config.kind().map_err(anyhow::Error::msg)? {
        EmbedderKind::Hash => return Ok(Arc::new(embed::HashEmbedder::new(config.embed_dimension))),
        EmbedderKind::Minilm => minilm(config.model_dir.clone(), data_dir.to_owned()).await?,
        EmbedderKind::Http => {
            let url = config.embed_url.clone().unwrap_or_default();
            Arc::new(embed::HttpEmbedder::new(embed::HttpSettings {
                url,
                model: config.embed_model.clone(),
                api_key: config.embed_api_key.as_ref().map(|key| key.expose().to_owned()),
                dimension: config.embed_dimension,
                timeout: config.timeout(ceiling),
                max_retries: config.embed_max_retries,
                batch_size: config.embed_batch_size,
                propagate: Some(telemetry::inject_trace_context),
            })?)
        }
    };
    Ok(Arc::new(embed::CachedEmbedder::new(inner, config.embed_cache_entries, config.embed_cache_bytes)))
}

/// all-MiniLM-L6-v2 from `model_dir`, or installed under `data_dir`.
#[cfg(feature = "minilm")]
async fn minilm(
    model_dir: Option<std::path::PathBuf>,
    data_dir: std::path::PathBuf,
) -> anyhow::Result<Arc<dyn embed::Embedder>> {
    let started = std::time::Instant::now();
    let model = tokio::task::spawn_blocking(move || -> anyhow::Result<embed::MiniLmEmbedder> {
        let dir = match model_dir {
            Some(dir) => dir,
            None => embed::install(&data_dir)?,
        };
        Ok(embed::MiniLmEmbedder::load(&dir)?)
    })
    .await??;
    tracing::info!(
        model = embed::MINILM_MODEL,
        elapsed_ms = started.elapsed().as_millis(),
        "loaded the embedding model"
    );
    Ok(Arc::new(model))
}

/// Never called: [`EmbeddingConfig::kind`] refuses minilm in a build without it.
#[cfg(not(feature = "minilm"))]
async fn minilm(
    _model_dir: Option<std::path::PathBuf>,
    _data_dir: std::path::PathBuf,
) -> anyhow::Result<Arc<dyn embed::Embedder>> {
    anyhow::bail!("this binary was built without the minilm embedder (cargo feature `minilm`)")
}

/// The server's own HTTPS when NOTEGRAPH_TLS_CERT_FILE and
/// NOTEGRAPH_TLS_KEY_FILE say so, its pair loaded and checked: every
/// refusal is one line naming the files' variables.
pub fn server_tls(config: &Config) -> anyhow::Result<Option<ServerTls>> {
    let Some((cert, key)) = config.server.tls_files().map_err(anyhow::Error::msg)? else { return Ok(None) };
    let files = TlsFiles { cert: cert.to_owned(), key: key.to_owned() };
    ServerTls::new(files).map(Some).map_err(anyhow::Error::msg)
}

/// The limits every operation must stay within, as the GraphQL settings
/// give them.
fn operation_limits(config: &GraphqlConfig) -> OperationLimits {
    OperationLimits {
        max_depth: config.max_depth,
        max_complexity: config.max_complexity,
        max_aliases: config.max_aliases,
        max_root_fields: config.max_root_fields,
        max_document_bytes: config.max_document_bytes,
        max_tokens: config.max_tokens,
        max_directives_per_field: config.max_directives_per_field,
    }
}

/// Binds the listen address; a port already in use is named, with the
/// variable that changes it, rather than as a bare OS error.
pub async fn listen(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|err| match err.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "port {port} on {ip} is already in use, perhaps by another notegraph: stop that, or listen \
             elsewhere with NOTEGRAPH_LISTEN (for example NOTEGRAPH_LISTEN={next}; port 0 picks a free one)",
            port = address.port(),
            ip = address.ip(),
            next = SocketAddr::new(address.ip(), address.port().wrapping_add(1)),
        ),
        _ => anyhow::Error::new(err).context(format!("listening on {address} (set by NOTEGRAPH_LISTEN)")),
    })
}
