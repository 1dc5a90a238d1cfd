//! The response cache section (docs/CACHE.md): whether query responses are
//! cached, how many bytes the cache holds, and how long an entry may live.

use clap::Args;

/// See [`CacheConfig::cache_max_bytes`]: 256 MiB holds about 100,000
/// typical responses (2 KiB each) and is small beside the 24 GiB the
/// project's machines have.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// See [`CacheConfig::cache_ttl_secs`]: writes invalidate entries as they
/// commit, so the TTL only bounds what an unseen change (a write made
/// outside the server) can leave stale.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 300;

/// Response cache settings (docs/CACHE.md).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Response cache")]
pub struct CacheConfig {
    /// Cache query responses, invalidated by writes.
    #[arg(long, env = "NOTEGRAPH_CACHE_ENABLED", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub cache_enabled: bool,
    /// Upper bound on the bytes the cache holds (bodies, tags, bookkeeping).
    #[arg(long, env = "NOTEGRAPH_CACHE_MAX_BYTES", default_value_t = DEFAULT_CACHE_MAX_BYTES, global = true)]
    pub cache_max_bytes: u64,
    /// Longest life of a cached response, in seconds.
    #[arg(long, env = "NOTEGRAPH_CACHE_TTL_SECS", default_value_t = DEFAULT_CACHE_TTL_SECS, global = true)]
    pub cache_ttl_secs: u64,
}
