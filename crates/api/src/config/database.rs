//! The database section: where Postgres is (a URL, a streaming read
//! replica, or the embedded server under the data directory), the pool and
//! its statement timeout, and the tuning of vector search. The pool
//! settings are the `db` crate's own ([`DatabaseConfig::settings`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::embedding::EmbedderKind;
use super::secret::Secret;

/// The embedded Postgres and its installation live under this directory.
pub const DEFAULT_DATA_DIR: &str = ".notegraph";
/// See [`DatabaseConfig::db_max_connections`]. Fewer cost Postgres less CPU at
/// a steady rate (0.53 cores with 8 against 0.63 with 16, the mix at
/// 1500/s on 2 cores), but 16 leaves room for slow writes and cold caches:
/// a writes run with 8 timed out waiting for connections in its first
/// seconds (docs/PERFORMANCE.md, "Pool tuning").
pub const DEFAULT_DB_MAX_CONNECTIONS: u32 = 16;
/// See [`DatabaseConfig::db_acquire_timeout_ms`].
pub const DEFAULT_DB_ACQUIRE_TIMEOUT_MS: u64 = 2_000;
/// See [`DatabaseConfig::db_min_connections`]: half the pool is open before the
/// first request, so that a server put under full load at once (a new
/// replica, a load test) does not open most of its connections (10–15 ms
/// each here) in its first second; with 2, that second held 120–180
/// requests over 10 ms at 1000/s, with 8 10–77 (docs/PERFORMANCE.md,
/// "Pool tuning"). Sizing Postgres goes by the maximum, not this.
pub const DEFAULT_DB_MIN_CONNECTIONS: u32 = 8;
/// See [`DatabaseConfig::write_wait_ms`]: as long as a statement waits for
/// a connection (`DEFAULT_DB_ACQUIRE_TIMEOUT_MS`), so a queued write is
/// refused no sooner than one waiting for a connection would be.
pub const DEFAULT_WRITE_WAIT_MS: u64 = DEFAULT_DB_ACQUIRE_TIMEOUT_MS;
/// See [`DatabaseConfig::db_max_lifetime_secs`]: sqlx's default.
pub const DEFAULT_DB_MAX_LIFETIME_SECS: u64 = 30 * 60;
/// See [`DatabaseConfig::db_statement_cache`]: sqlx's default, several times the
/// 20-odd statements the server has; with none, Postgres used 36% more
/// CPU (docs/PERFORMANCE.md, "Pool tuning").
pub const DEFAULT_DB_STATEMENT_CACHE: usize = 100;
/// The database layer of the timeout hierarchy (HTTP 30 s > GraphQL 25 s >
/// DB 20 s): a statement ends before the execution that waits for it.
pub const DEFAULT_DB_TIMEOUT_MS: u64 = 20_000;
/// See [`DatabaseConfig::replica_max_lag_ms`].
pub const DEFAULT_REPLICA_MAX_LAG_MS: u64 = 1_000;
/// See [`DatabaseConfig::read_your_writes_ms`]: well above the replica lag
/// bound, which it must exceed.
pub const DEFAULT_READ_YOUR_WRITES_MS: u64 = 5_000;
/// See [`DatabaseConfig::hnsw_ef_search`]: recall@10 0.993 for vectors near
/// notes on the default data set with the default index (m = 16,
/// ef_construction = 100), as with the m = 24 one it replaced, which cost
/// 45% more CPU per inserted note (docs/PERFORMANCE.md, "The index for
/// writes").
pub const DEFAULT_HNSW_EF_SEARCH: u32 = 40;
/// See [`DatabaseConfig::hnsw_ef_search_text`], with the built-in hashing
/// embedder: its short texts reach about 0.75 at 160 and 0.62 at 40; with
/// 0.997 on vectors, 1,000 near and 200 free-text queries average 0.955.
pub const DEFAULT_HNSW_EF_SEARCH_TEXT: u32 = 160;
/// See [`DatabaseConfig::hnsw_ef_search_text`], with a model (`minilm`, and
/// `http`, which is one too): on the default data set embedded by the local
/// model and its index ([`DEFAULT_HNSW_EF_CONSTRUCTION_MODEL`]), two words
/// of a title reach 0.92 at 320 and 0.98 at 640, sentences 0.98 already at
/// 160; the query's embedding (14 ms) costs far more than the wider walk
/// (docs/PERFORMANCE.md, "With the model").
pub const DEFAULT_HNSW_EF_SEARCH_TEXT_MODEL: u32 = 640;
/// See [`DatabaseConfig::hnsw_ef_construction`], with the hashing embedder:
/// the cheapest insert for recall 0.99 on vectors near notes
/// (docs/PERFORMANCE.md, "The index for writes").
pub const DEFAULT_HNSW_EF_CONSTRUCTION: u32 = db::vector_index::DEFAULT_EF_CONSTRUCTION;
/// See [`DatabaseConfig::hnsw_ef_construction`], with a model: its short
/// queries need the denser graph (two words of a title 0.85 at 640 on an
/// index built with 100, 0.98 with 256), and the note's embedding costs a
/// write far more than the 1.5 ms of Postgres CPU the denser insert adds
/// (docs/PERFORMANCE.md, "With the model").
pub const DEFAULT_HNSW_EF_CONSTRUCTION_MODEL: u32 = 256;
/// See [`DatabaseConfig::hnsw_max_scan_tuples`]: pgvector's default.
pub const DEFAULT_HNSW_MAX_SCAN_TUPLES: u32 = 20_000;
/// See [`DatabaseConfig::exact_tag_notes`]: where the measured exact path (15 ms
/// for 1,000 notes, 22 ms for 3,000) and the filtered HNSW scan (30 ms at
/// 1%, 10 ms at 3%, lower recall) cross (docs/PERFORMANCE.md).
pub const DEFAULT_EXACT_TAG_NOTES: u32 = 2_000;
/// See [`DatabaseConfig::ivfflat_probes`].
pub const DEFAULT_IVFFLAT_PROBES: u32 = 10;
/// See [`DatabaseConfig::vector_index`]: HNSW, the better latency at a given
/// recall at 100k notes (docs/PERFORMANCE.md, "Vector search").
pub const DEFAULT_VECTOR_INDEX: VectorIndex = VectorIndex::Hnsw;

/// Database settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// Postgres URL (with pgvector). Unset: start the embedded Postgres.
    /// TLS as libpq's URLs ask for it: `sslmode`, `sslrootcert`, `sslcert`
    /// and `sslkey` (docs/DEPLOY.md, "TLS to Postgres").
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
    #[arg(long, env = "NOTEGRAPH_DEMO_DATA", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
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
    /// Write statements (createNote, updateNote, deleteNote) holding a
    /// connection at once; more wait in the server, and one that waits
    /// longer than `NOTEGRAPH_WRITE_WAIT_MS` is answered
    /// SERVICE_UNAVAILABLE (nothing written). Must be below
    /// `NOTEGRAPH_DB_MAX_CONNECTIONS`, so that reads always keep
    /// connections. Unset: a quarter of the pool (at least 1).
    #[arg(long, env = "NOTEGRAPH_MAX_CONCURRENT_WRITES", global = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_writes: Option<u32>,
    /// How long a write waits for a place among those in flight before
    /// SERVICE_UNAVAILABLE with `Retry-After`, in ms (never past its
    /// request's deadline).
    #[arg(long, env = "NOTEGRAPH_WRITE_WAIT_MS", default_value_t = DEFAULT_WRITE_WAIT_MS, global = true)]
    pub write_wait_ms: u64,
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
    /// and needs more for the same recall (1 to 1000); unset: 160 with the
    /// hash embedder, 640 with a model (minilm or http).
    #[arg(long, env = "NOTEGRAPH_HNSW_EF_SEARCH_TEXT", global = true,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub hnsw_ef_search_text: Option<u32>,
    /// ef_construction of the HNSW index (32 to 1000): a denser graph finds
    /// more of the true neighbours and costs each insert more; an index
    /// built with another is rebuilt concurrently at start-up. Unset: 100
    /// with the hash embedder, 256 with a model (minilm or http).
    #[arg(long, env = "NOTEGRAPH_HNSW_EF_CONSTRUCTION", global = true,
          value_parser = clap::value_parser!(u32).range(32..=1000))]
    pub hnsw_ef_construction: Option<u32>,
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
    /// `notes.embedding`: building it if missing, dropping the other kind,
    /// and rebuilding (concurrently) an HNSW index built with other options.
    #[arg(long, env = "NOTEGRAPH_VECTOR_INDEX", value_enum, default_value_t = DEFAULT_VECTOR_INDEX, global = true)]
    pub vector_index: VectorIndex,
}

impl DatabaseConfig {
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

    /// Refuses a read-your-writes window no longer than the replica lag
    /// bound, which would let a viewer read a replica that lacks their write.
    pub fn check_read_your_writes(&self) -> Result<(), String> {
        let (lag, remembered) = (self.replica_max_lag_ms, self.read_your_writes_ms);
        if remembered <= lag {
            return Err(format!(
                "NOTEGRAPH_READ_YOUR_WRITES_MS ({remembered}) must exceed NOTEGRAPH_REPLICA_MAX_LAG_MS ({lag}): \
                 a write must be remembered for as long as the replica may lack it"
            ));
        }
        Ok(())
    }

    /// Write statements that may hold a connection at once
    /// ([`DatabaseConfig::max_concurrent_writes`]): as set, else a quarter
    /// of the pool, at least 1.
    pub fn max_concurrent_writes(&self) -> u32 {
        self.max_concurrent_writes.unwrap_or((self.db_max_connections / 4).max(1))
    }

    /// Refuses a writes' share that leaves reads no connection: it must be
    /// below the pool size (a pool of one connection, where no share can be,
    /// is refused only when the share is set).
    pub fn check_write_share(&self) -> Result<(), String> {
        let (writes, pool) = (self.max_concurrent_writes(), self.db_max_connections);
        if writes >= pool && (pool > 1 || self.max_concurrent_writes.is_some()) {
            return Err(format!(
                "NOTEGRAPH_MAX_CONCURRENT_WRITES ({writes}) must be below NOTEGRAPH_DB_MAX_CONNECTIONS ({pool}): \
                 writes may only take a share of the pool, so that reads always keep connections"
            ));
        }
        Ok(())
    }

    /// `hnsw.ef_search` for text embedded by `embedder`: the setting, or
    /// unset, what that embedder's queries need (a model's sentences need
    /// a wider search than the hashing embedder's words for recall 0.95).
    pub fn hnsw_ef_search_text(&self, embedder: EmbedderKind) -> u32 {
        self.hnsw_ef_search_text.unwrap_or(match embedder {
            EmbedderKind::Hash => DEFAULT_HNSW_EF_SEARCH_TEXT,
            EmbedderKind::Minilm | EmbedderKind::Http => DEFAULT_HNSW_EF_SEARCH_TEXT_MODEL,
        })
    }

    /// The HNSW index's ef_construction for vectors made by `embedder`: the
    /// setting, or unset, what that embedder's queries need.
    pub fn hnsw_ef_construction(&self, embedder: EmbedderKind) -> u32 {
        self.hnsw_ef_construction.unwrap_or(match embedder {
            EmbedderKind::Hash => DEFAULT_HNSW_EF_CONSTRUCTION,
            EmbedderKind::Minilm | EmbedderKind::Http => DEFAULT_HNSW_EF_CONSTRUCTION_MODEL,
        })
    }

    /// `hnsw.ef_search` for text searches, when they need their own: on
    /// HNSW, and different from the connections' setting (otherwise a text
    /// search is one statement, like a vector search).
    pub fn text_ef_search(&self, embedder: EmbedderKind) -> Option<u32> {
        let text = self.hnsw_ef_search_text(embedder);
        (self.vector_index == VectorIndex::Hnsw && text != self.hnsw_ef_search).then_some(text)
    }
}

/// The kinds of vector index on `notes.embedding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VectorIndex {
    /// HNSW (m = 16; ef_construction by embedder): the default.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{parse, try_parse};

    #[test]
    fn text_searches_get_their_own_ef_search_only_on_hnsw_and_when_it_differs() {
        let hash = EmbedderKind::Hash;
        assert_eq!(parse::<DatabaseConfig>(&[]).text_ef_search(hash), Some(160));
        assert_eq!(parse::<DatabaseConfig>(&["--hnsw-ef-search", "160"]).text_ef_search(hash), None);
        assert_eq!(parse::<DatabaseConfig>(&["--vector-index", "ivfflat"]).text_ef_search(hash), None);
        let refused = try_parse::<DatabaseConfig>(&["--hnsw-ef-search-text", "0"]).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("1..=1000")), "ef_search 0 must be refused");
    }

    #[test]
    fn the_text_ef_search_follows_the_embedder_unless_set() {
        let unset = parse::<DatabaseConfig>(&[]);
        assert_eq!(unset.text_ef_search(EmbedderKind::Hash), Some(160));
        assert_eq!(unset.text_ef_search(EmbedderKind::Minilm), Some(640));
        assert_eq!(unset.text_ef_search(EmbedderKind::Http), Some(640));
        let set = parse::<DatabaseConfig>(&["--hnsw-ef-search-text", "200"]);
        for embedder in [EmbedderKind::Hash, EmbedderKind::Minilm, EmbedderKind::Http] {
            assert_eq!(set.text_ef_search(embedder), Some(200), "{embedder:?}");
        }
        let same = parse::<DatabaseConfig>(&["--hnsw-ef-search", "640"]);
        assert_eq!(same.text_ef_search(EmbedderKind::Minilm), None, "one statement when the two agree");
        assert_eq!(same.text_ef_search(EmbedderKind::Hash), Some(160));
    }

    #[test]
    fn the_index_follows_the_embedder_unless_set() {
        let unset = parse::<DatabaseConfig>(&[]);
        assert_eq!(unset.hnsw_ef_construction(EmbedderKind::Hash), 100);
        assert_eq!(unset.hnsw_ef_construction(EmbedderKind::Minilm), 256);
        assert_eq!(unset.hnsw_ef_construction(EmbedderKind::Http), 256);
        let set = parse::<DatabaseConfig>(&["--hnsw-ef-construction", "64"]);
        assert_eq!(set.hnsw_ef_construction(EmbedderKind::Minilm), 64);
        let refused = try_parse::<DatabaseConfig>(&["--hnsw-ef-construction", "16"]).err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("32..=1000")), "below 2 m must be refused");
    }

    #[test]
    fn read_your_writes_must_outlast_the_replica_lag() {
        assert!(parse::<DatabaseConfig>(&[]).check_read_your_writes().is_ok());
        let equal = parse::<DatabaseConfig>(&["--replica-max-lag-ms", "5000"]).check_read_your_writes().unwrap_err();
        assert!(equal.contains("NOTEGRAPH_READ_YOUR_WRITES_MS (5000)"), "{equal}");
        let shorter = ["--replica-max-lag-ms", "800", "--read-your-writes-ms", "500"];
        assert!(parse::<DatabaseConfig>(&shorter).check_read_your_writes().is_err());
    }

    #[test]
    fn the_writes_share_is_below_the_pool_size() {
        let default = parse::<DatabaseConfig>(&[]);
        assert_eq!(default.max_concurrent_writes(), DEFAULT_DB_MAX_CONNECTIONS / 4);
        assert!(default.check_write_share().is_ok());
        let whole = parse::<DatabaseConfig>(&["--max-concurrent-writes", "16"]).check_write_share().unwrap_err();
        assert!(whole.contains("NOTEGRAPH_MAX_CONCURRENT_WRITES (16)"), "{whole}");
        assert!(whole.contains("NOTEGRAPH_DB_MAX_CONNECTIONS (16)"), "{whole}");
        let small_pool = parse::<DatabaseConfig>(&["--db-max-connections", "2"]);
        assert_eq!(small_pool.max_concurrent_writes(), 1);
        assert!(small_pool.check_write_share().is_ok());
        assert!(parse::<DatabaseConfig>(&["--db-max-connections", "1"]).check_write_share().is_ok());
        let one = ["--db-max-connections", "1", "--max-concurrent-writes", "1"];
        assert!(parse::<DatabaseConfig>(&one).check_write_share().is_err());
        assert!(try_parse::<DatabaseConfig>(&["--max-concurrent-writes", "0"]).is_err(), "no writes at all");
    }
}
