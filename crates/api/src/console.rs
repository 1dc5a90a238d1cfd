//! What a person reads when the server starts: the configuration as one
//! block of aligned `VARIABLE = value` lines, secrets masked, and one line
//! saying where to go once it listens. Both go to stderr beside the logs;
//! with JSON logs they are log events instead. Colour only on a terminal.
//!
//! It prints no logs (that is [`crate::telemetry`]) and no command output
//! (that goes to stdout).

use std::io::Write as _;
use std::net::SocketAddr;

use clap::ValueEnum as _;

use crate::config::{Config, DEVELOPMENT_TOKEN, EmbedderKind, LogFormat};
use crate::telemetry;

/// Prints the configuration, as a block on a terminal or in text logs, as
/// one `configuration` event in JSON logs.
pub fn print_configuration(config: &Config) {
    let settings = settings(config);
    match config.telemetry.log_format {
        LogFormat::Text => write_stderr(&block(&settings, telemetry::colour(&config.telemetry))),
        LogFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> =
                settings.into_iter().map(|(name, value)| (name.to_owned(), value.into())).collect();
            tracing::info!(settings = %serde_json::Value::Object(map), "configuration");
        }
    }
}

/// Says where the server listens and what is there, once it is bound.
pub fn print_listening(config: &Config, address: SocketAddr) {
    let version = env!("CARGO_PKG_VERSION");
    match config.telemetry.log_format {
        LogFormat::Text => {
            let url = format!("{}://{address}", config.server.scheme());
            let url = if telemetry::colour(&config.telemetry) { format!("\x1b[1;32m{url}\x1b[0m") } else { url };
            write_stderr(&format!("Notegraph {version} listening on {url} — GraphiQL at /, GraphQL at /graphql\n"));
        }
        LogFormat::Json => tracing::info!(%address, scheme = config.server.scheme(), version, "serving"),
    }
}

/// Every setting by the environment variable that sets it, in the order of
/// the README's table; secrets masked.
fn settings(config: &Config) -> Vec<(&'static str, String)> {
    let (http, db, auth, graphql) = (&config.server, &config.database, &config.auth, &config.graphql);
    let database_url = match &db.database_url {
        Some(url) => redact_url(url.expose()),
        None => format!("unset: the embedded Postgres in {}", db.data_dir.display()),
    };
    let database_read_url = match &db.database_read_url {
        Some(url) => redact_url(url.expose()),
        None => "unset: reads go to DATABASE_URL".to_owned(),
    };
    let jwt_secret = match (auth.accepts_hs256(), auth.jwt_secret.expose() == crate::config::DEFAULT_JWT_SECRET) {
        (false, _) => "the development default, not accepted: NOTEGRAPH_JWKS_URL is set",
        (true, true) => "the development default",
        (true, false) => "***",
    };
    let unset_or = |value: &Option<String>, unset: &str| value.clone().unwrap_or_else(|| unset.to_owned());
    let log_format = config.telemetry.log_format.to_possible_value().map(|v| v.get_name().to_owned());
    vec![
        ("NOTEGRAPH_LISTEN", http.listen.to_string()),
        ("DATABASE_URL", database_url),
        ("DATABASE_READ_URL", database_read_url),
        ("NOTEGRAPH_REPLICA_MAX_LAG_MS", db.replica_max_lag_ms.to_string()),
        ("NOTEGRAPH_READ_YOUR_WRITES_MS", db.read_your_writes_ms.to_string()),
        ("NOTEGRAPH_DATA_DIR", db.data_dir.display().to_string()),
        ("NOTEGRAPH_DEMO_DATA", db.demo_data.to_string()),
        ("NOTEGRAPH_DB_MAX_CONNECTIONS", db.db_max_connections.to_string()),
        ("NOTEGRAPH_DB_ACQUIRE_TIMEOUT_MS", db.db_acquire_timeout_ms.to_string()),
        ("NOTEGRAPH_DB_MIN_CONNECTIONS", db.db_min_connections.to_string()),
        ("NOTEGRAPH_DB_MAX_LIFETIME_SECS", db.db_max_lifetime_secs.to_string()),
        ("NOTEGRAPH_DB_STATEMENT_CACHE", db.db_statement_cache.to_string()),
        ("NOTEGRAPH_DB_TIMEOUT_MS", db.db_timeout_ms.to_string()),
        ("NOTEGRAPH_MAX_CONCURRENT_WRITES", db.max_concurrent_writes().to_string()),
        ("NOTEGRAPH_WRITE_WAIT_MS", db.write_wait_ms.to_string()),
        ("NOTEGRAPH_HNSW_EF_SEARCH", db.hnsw_ef_search.to_string()),
        (
            "NOTEGRAPH_HNSW_EF_SEARCH_TEXT",
            by_embedder(config, db.hnsw_ef_search_text, |kind| db.hnsw_ef_search_text(kind)),
        ),
        (
            "NOTEGRAPH_HNSW_EF_CONSTRUCTION",
            by_embedder(config, db.hnsw_ef_construction, |kind| db.hnsw_ef_construction(kind)),
        ),
        ("NOTEGRAPH_HNSW_MAX_SCAN_TUPLES", db.hnsw_max_scan_tuples.to_string()),
        ("NOTEGRAPH_EXACT_TAG_NOTES", db.exact_tag_notes.to_string()),
        ("NOTEGRAPH_IVFFLAT_PROBES", db.ivfflat_probes.to_string()),
        ("NOTEGRAPH_VECTOR_INDEX", db.vector_index.name().to_owned()),
        (
            "NOTEGRAPH_EMBEDDER",
            match (config.embedding.embedder, config.embedding.kind()) {
                (Some(named), _) => named.name().to_owned(),
                (None, Ok(kind)) => format!("unset: {}", kind.name()),
                (None, Err(_)) => "unset".to_owned(),
            },
        ),
        (
            "NOTEGRAPH_MODEL_DIR",
            config.embedding.model_dir.as_ref().map_or_else(
                || format!("unset: {}", db.data_dir.join("models").display()),
                |dir| dir.display().to_string(),
            ),
        ),
        (
            "NOTEGRAPH_EMBED_URL",
            config.embedding.embed_url.as_deref().map_or("unset: the built-in embedder".to_owned(), redact_url),
        ),
        ("NOTEGRAPH_EMBED_MODEL", config.embedding.embed_model.clone()),
        ("NOTEGRAPH_EMBED_API_KEY", if config.embedding.embed_api_key.is_some() { "***" } else { "unset" }.to_owned()),
        ("NOTEGRAPH_EMBED_DIMENSION", config.embedding.embed_dimension.to_string()),
        ("NOTEGRAPH_EMBED_TIMEOUT_MS", config.embedding.embed_timeout_ms.to_string()),
        ("NOTEGRAPH_EMBED_MAX_RETRIES", config.embedding.embed_max_retries.to_string()),
        ("NOTEGRAPH_EMBED_BATCH_SIZE", config.embedding.embed_batch_size.to_string()),
        ("NOTEGRAPH_EMBED_CACHE_ENTRIES", config.embedding.embed_cache_entries.to_string()),
        ("NOTEGRAPH_EMBED_CACHE_BYTES", config.embedding.embed_cache_bytes.to_string()),
        ("NOTEGRAPH_HTTP_TIMEOUT_MS", http.http_timeout_ms.to_string()),
        ("NOTEGRAPH_GRAPHQL_TIMEOUT_MS", graphql.graphql_timeout_ms.to_string()),
        (
            "NOTEGRAPH_MAX_CONCURRENT_REQUESTS",
            http.max_concurrent_requests.map_or("unset: the limit is adaptive".to_owned(), |n| format!("{n}: fixed")),
        ),
        ("NOTEGRAPH_CONCURRENCY_MIN", concurrency_bound(http, http.concurrency_min)),
        ("NOTEGRAPH_CONCURRENCY_MAX", concurrency_bound(http, http.concurrency_max)),
        ("NOTEGRAPH_MAX_CONNECTIONS", http.max_connections.to_string()),
        ("NOTEGRAPH_HEADER_READ_TIMEOUT_MS", http.header_read_timeout_ms.to_string()),
        ("NOTEGRAPH_MAX_HEADERS", http.max_headers.to_string()),
        ("NOTEGRAPH_MAX_HEADER_BYTES", http.max_header_bytes.to_string()),
        ("NOTEGRAPH_BODY_LIMIT_BYTES", http.body_limit_bytes.to_string()),
        ("NOTEGRAPH_BODY_READ_TIMEOUT_MS", http.body_read_timeout_ms().to_string()),
        ("NOTEGRAPH_SHUTDOWN_GRACE_SECS", http.shutdown_grace_secs.to_string()),
        ("NOTEGRAPH_SHUTDOWN_DELAY_MS", http.shutdown_delay_ms.to_string()),
        (
            "NOTEGRAPH_TLS_CERT_FILE",
            http.tls_cert_file.as_ref().map_or("unset: plain HTTP".to_owned(), |p| p.display().to_string()),
        ),
        ("NOTEGRAPH_TLS_KEY_FILE", http.tls_key_file.as_ref().map_or("unset".to_owned(), |p| p.display().to_string())),
        ("NOTEGRAPH_TLS_RELOAD_INTERVAL_SECS", http.tls_reload_interval_secs.to_string()),
        ("NOTEGRAPH_MAX_DEPTH", graphql.max_depth.to_string()),
        ("NOTEGRAPH_MAX_COMPLEXITY", graphql.max_complexity.to_string()),
        ("NOTEGRAPH_MAX_ALIASES", graphql.max_aliases.to_string()),
        ("NOTEGRAPH_MAX_ROOT_FIELDS", graphql.max_root_fields.to_string()),
        ("NOTEGRAPH_MAX_DOCUMENT_BYTES", graphql.max_document_bytes.to_string()),
        ("NOTEGRAPH_MAX_TOKENS", graphql.max_tokens.to_string()),
        ("NOTEGRAPH_MAX_DIRECTIVES_PER_FIELD", graphql.max_directives_per_field.to_string()),
        ("NOTEGRAPH_PARSED_DOCUMENTS_BYTES", graphql.parsed_documents_bytes.to_string()),
        ("NOTEGRAPH_GRAPHQL_FAST_PATH", graphql.graphql_fast_path.to_string()),
        (
            "NOTEGRAPH_TRUSTED_DOCUMENTS",
            graphql.trusted_documents.as_ref().map_or("unset: any document".to_owned(), |p| p.display().to_string()),
        ),
        ("NOTEGRAPH_INTROSPECTION", config.introspection_enabled().to_string()),
        ("NOTEGRAPH_FIELD_SUGGESTIONS", config.suggestions_enabled().to_string()),
        ("NOTEGRAPH_GRAPHIQL", config.graphiql_enabled().to_string()),
        ("NOTEGRAPH_JWT_SECRET", jwt_secret.to_owned()),
        ("NOTEGRAPH_STATIC_TOKENS", redact_tokens(auth.static_tokens.expose())),
        (
            "NOTEGRAPH_JWKS_URL",
            auth.jwks_url.as_ref().map_or("unset: no identity provider".to_owned(), |u| redact_url(u.as_str())),
        ),
        ("NOTEGRAPH_JWKS_MIN_REFRESH_SECS", auth.jwks_min_refresh_secs.to_string()),
        ("NOTEGRAPH_JWKS_REFRESH_SECS", auth.jwks_refresh_secs.to_string()),
        ("NOTEGRAPH_JWT_ISSUER", unset_or(&auth.jwt_issuer, "unset: not checked")),
        ("NOTEGRAPH_JWT_AUDIENCE", unset_or(&auth.jwt_audience, "unset: not checked")),
        ("NOTEGRAPH_JWT_USER_CLAIM", auth.jwt_user_claim.clone()),
        ("NOTEGRAPH_JWT_LEEWAY_SECS", auth.jwt_leeway_secs.to_string()),
        ("NOTEGRAPH_DEV", config.dev.to_string()),
        ("NOTEGRAPH_ENV", format!("{:?}", config.env).to_lowercase()),
        ("NOTEGRAPH_LOADER_DELAY_US", config.graphql.loader_delay_us.to_string()),
        ("NOTEGRAPH_CACHE_ENABLED", config.cache.cache_enabled.to_string()),
        ("NOTEGRAPH_CACHE_MAX_BYTES", config.cache.cache_max_bytes.to_string()),
        ("NOTEGRAPH_CACHE_TTL_SECS", config.cache.cache_ttl_secs.to_string()),
        ("NOTEGRAPH_CORS_ORIGINS", cors_origins(&config.cors.cors_origins)),
        ("NOTEGRAPH_CORS_ALLOW_CREDENTIALS", config.cors.cors_allow_credentials.to_string()),
        ("NOTEGRAPH_CORS_MAX_AGE_SECS", config.cors.cors_max_age_secs.to_string()),
        ("NOTEGRAPH_BUDGET_ANONYMOUS_RATE", budget_rate(config.budgets.budget_anonymous_rate)),
        ("NOTEGRAPH_BUDGET_ANONYMOUS_BURST", config.budgets.anonymous(graphql.max_complexity).burst.to_string()),
        ("NOTEGRAPH_BUDGET_AUTHENTICATED_RATE", budget_rate(config.budgets.budget_authenticated_rate)),
        (
            "NOTEGRAPH_BUDGET_AUTHENTICATED_BURST",
            config.budgets.authenticated(graphql.max_complexity).burst.to_string(),
        ),
        (
            "NOTEGRAPH_BUDGET_VIEWERS_FILE",
            config.budgets.budget_viewers_file.as_ref().map_or("unset".to_owned(), |p| p.display().to_string()),
        ),
        ("NOTEGRAPH_BUDGET_MAX_CLIENTS", config.budgets.budget_max_clients.to_string()),
        ("NOTEGRAPH_TRUSTED_PROXIES", trusted_proxies(&config.budgets.trusted_proxies)),
        ("NOTEGRAPH_SUBSCRIPTION_BUFFER", config.subscriptions.subscription_buffer.to_string()),
        ("NOTEGRAPH_MAX_SUBSCRIPTIONS", config.subscriptions.max_subscriptions.to_string()),
        ("NOTEGRAPH_MAX_SUBSCRIPTIONS_PER_VIEWER", config.subscriptions.max_subscriptions_per_viewer.to_string()),
        (
            "NOTEGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION",
            config.subscriptions.max_subscriptions_per_connection.to_string(),
        ),
        ("NOTEGRAPH_SSE_HEARTBEAT_MS", config.subscriptions.sse_heartbeat_ms.to_string()),
        ("RUST_LOG", config.telemetry.log_filter.clone()),
        ("NOTEGRAPH_LOG_FORMAT", log_format.unwrap_or_default()),
        ("NO_COLOR", config.telemetry.no_color.to_string()),
        ("NOTEGRAPH_METRICS_ENABLED", config.telemetry.metrics_enabled.to_string()),
        ("NOTEGRAPH_METRICS_LISTEN", listen_or(config.telemetry.metrics_listen, "unset: the main listener")),
        ("NOTEGRAPH_METRICS_MAX_OPERATION_NAMES", config.telemetry.metrics_max_operation_names.to_string()),
        ("NOTEGRAPH_METRICS_HOT_FIELDS", config.telemetry.metrics_hot_fields.join(",")),
        (
            "NOTEGRAPH_OTLP_ENDPOINT",
            config.telemetry.otlp_endpoint.as_deref().map_or("unset: no traces".to_owned(), redact_url),
        ),
        ("NOTEGRAPH_TRACE_SAMPLE_RATIO", config.telemetry.trace_sample_ratio.to_string()),
    ]
}

/// A setting whose default depends on the embedder: as set, or the value
/// the configured embedder gives it, naming that embedder.
fn by_embedder(config: &Config, set: Option<u32>, default: impl Fn(EmbedderKind) -> u32) -> String {
    match (set, config.embedding.kind()) {
        (Some(set), _) => set.to_string(),
        (None, Ok(kind)) => format!("unset: {} ({})", default(kind), kind.name()),
        (None, Err(_)) => "unset".to_owned(),
    }
}

/// A bound of the adaptive limit, marked unused when the limit is fixed.
fn concurrency_bound(http: &crate::config::ServerConfig, bound: usize) -> String {
    match http.max_concurrent_requests {
        Some(_) => format!("{bound} (unused: the limit is fixed)"),
        None => bound.to_string(),
    }
}

/// The CORS origins as listed, or what none means.
fn cors_origins(origins: &[crate::config::CorsOrigin]) -> String {
    if origins.is_empty() {
        return "unset: no cross-origin browser access".to_owned();
    }
    let origin = |origin: &crate::config::CorsOrigin| match origin {
        crate::config::CorsOrigin::Any => "*".to_owned(),
        crate::config::CorsOrigin::Exact(origin) => origin.clone(),
    };
    origins.iter().map(origin).collect::<Vec<_>>().join(",")
}

/// A budget's rate, or what 0 means.
fn budget_rate(rate: u64) -> String {
    if rate == 0 { "0: no budget".to_owned() } else { rate.to_string() }
}

/// The trusted proxies as listed, or what none means.
fn trusted_proxies(proxies: &[ipnet::IpNet]) -> String {
    if proxies.is_empty() {
        return "unset: forwarded headers ignored".to_owned();
    }
    proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// An optional address, or what its absence means.
fn listen_or(address: Option<std::net::SocketAddr>, unset: &str) -> String {
    address.map_or_else(|| unset.to_owned(), |address| address.to_string())
}

/// The block: a heading, then one `NAME = value` line per setting, the
/// `=` signs in one column.
fn block(settings: &[(&str, String)], colour: bool) -> String {
    let width = settings.iter().map(|(name, _)| name.len()).max().unwrap_or_default();
    let (dim, bold, reset) = if colour { ("\x1b[2m", "\x1b[1m", "\x1b[0m") } else { ("", "", "") };
    let mut text = format!(
        "{bold}Notegraph {} (commit {}){reset}, with these settings (`notegraph --help` explains each):\n",
        env!("CARGO_PKG_VERSION"),
        env!("NOTEGRAPH_GIT_COMMIT")
    );
    for (name, value) in settings {
        text.push_str(&format!("  {dim}{name:<width$} ={reset} {value}\n"));
    }
    text
}

/// `postgres://user:secret@host:5432/db?…` becomes
/// `postgres://user:***@host:5432/db?***`: which server and database,
/// without the password or the query, which may hold one.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "***".to_owned() };
    // The last `@` ends the credentials even when the password holds one.
    let (user, location) = match rest.rsplit_once('@') {
        Some((credentials, location)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            (if credentials.contains(':') { format!("{user}:***@") } else { format!("{user}@") }, location)
        }
        None => (String::new(), rest),
    };
    let location = match location.split_once('?') {
        Some((path, _query)) => format!("{path}?***"),
        None => location.to_owned(),
    };
    format!("{scheme}://{user}{location}")
}

/// `test-token=1,mine=2` becomes `test-token=1, ***=2`: the published
/// development token may show, other tokens not; user ids are not secret.
fn redact_tokens(tokens: &str) -> String {
    let entries: Vec<String> = tokens
        .split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((token, user)) if token.trim() == DEVELOPMENT_TOKEN => format!("{DEVELOPMENT_TOKEN}={}", user.trim()),
            Some((_, user)) => format!("***={}", user.trim()),
            None => "***".to_owned(),
        })
        .collect();
    if entries.is_empty() { "none".to_owned() } else { entries.join(", ") }
}

/// Best effort: a closed stderr must not stop the server.
fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;
    use crate::Cli;
    use crate::config::DEFAULT_JWT_SECRET;

    fn config(args: &[&str]) -> Config {
        Cli::parse_from(std::iter::once("notegraph").chain(args.iter().copied())).config
    }

    #[test]
    fn every_environment_variable_is_shown_once() {
        let command = Cli::command();
        let mut variables: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect();
        let mut shown: Vec<String> = settings(&config(&[])).into_iter().map(|(name, _)| name.to_owned()).collect();
        variables.sort();
        shown.sort();
        assert_eq!(shown, variables);
    }

    /// What the settings block shows for `variable` given `args`, with the
    /// embedder's settings the environment running the tests may set left
    /// out unless `args` has them.
    fn shown(variable: &str, args: &[&str]) -> String {
        let mut given = config(args);
        given.embedding.embed_url = None;
        if !args.contains(&"--hnsw-ef-search-text") {
            given.database.hnsw_ef_search_text = None;
        }
        if !args.contains(&"--hnsw-ef-construction") {
            given.database.hnsw_ef_construction = None;
        }
        settings(&given).into_iter().find(|(name, _)| *name == variable).unwrap().1
    }

    #[test]
    fn the_settings_that_follow_the_embedder_show_what_it_makes_them() {
        let text = |args: &[&str]| shown("NOTEGRAPH_HNSW_EF_SEARCH_TEXT", args);
        assert_eq!(text(&["--embedder", "hash"]), "unset: 160 (hash)");
        assert_eq!(
            text(&["--embedder", "minilm"]),
            format!("unset: {} (minilm)", crate::config::DEFAULT_HNSW_EF_SEARCH_TEXT_MODEL)
        );
        assert_eq!(text(&["--embedder", "minilm", "--hnsw-ef-search-text", "500"]), "500");
        let index = |args: &[&str]| shown("NOTEGRAPH_HNSW_EF_CONSTRUCTION", args);
        assert_eq!(index(&["--embedder", "hash"]), "unset: 100 (hash)");
        assert_eq!(index(&["--embedder", "minilm"]), "unset: 256 (minilm)");
        assert_eq!(index(&["--embedder", "minilm", "--hnsw-ef-construction", "64"]), "64");
    }

    #[test]
    fn secrets_are_masked_and_the_rest_is_shown() {
        let args = [
            "--jwt-secret",
            "hunter2",
            "--database-url",
            "postgres://app:p@ss?w0rd@db.internal:5432/notes?password=again",
            "--static-tokens",
            "test-token=1, s3cr3t=7",
        ];
        let mut given = config(&args);
        given.embedding.embed_url = Some("https://user:pa55@embed.example/v1?key=k3y".to_owned());
        let text = block(&settings(&given), false);
        for secret in ["hunter2", "p@ss", "w0rd", "again", "s3cr3t", "pa55", "k3y"] {
            assert!(!text.contains(secret), "{secret} shown in:\n{text}");
        }
        assert!(text.contains("postgres://app:***@db.internal:5432/notes?***"), "{text}");
        assert!(text.contains("test-token=1, ***=7"), "{text}");
        // Whatever the environment running the tests says.
        let mut defaults = config(&["--jwt-secret", DEFAULT_JWT_SECRET]);
        defaults.database.database_url = None;
        defaults.database.data_dir = ".notegraph".into();
        let defaults = block(&settings(&defaults), false);
        assert!(defaults.contains("unset: the embedded Postgres in .notegraph"), "{defaults}");
        assert!(defaults.contains("the development default"), "{defaults}");
    }

    #[test]
    fn the_block_is_aligned_and_plain_without_colour() {
        let text = block(&settings(&config(&["--listen", "127.0.0.1:8080"])), false);
        let columns: Vec<usize> = text.lines().skip(1).map(|line| line.find(" = ").expect("name = value")).collect();
        assert!(columns.windows(2).all(|pair| pair[0] == pair[1]), "{text}");
        assert!(text.contains("NOTEGRAPH_LISTEN") && text.contains("= 127.0.0.1:8080"), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        assert!(block(&settings(&config(&[])), true).contains('\x1b'));
    }

    #[test]
    fn urls_keep_where_and_lose_what_is_secret() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h:5432/db"), "postgres://u@h:5432/db");
        assert_eq!(redact_url("postgres:///db?host=/run&password=x"), "postgres:///db?***");
        assert_eq!(redact_url("not a url"), "***");
    }
}
