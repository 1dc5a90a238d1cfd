//! Where a request reads: a pool and the loaders over it. A leaf, shared
//! by the schema (the primary's source is schema data) and the read
//! replica (whose source a query may carry as request data).

use loaders::Loaders;

/// Where a request reads: a pool and the loaders over it. The primary's
/// is schema data; a query that may read the read replica carries the
/// replica's as request data, which takes precedence ([`crate::replica`]).
pub struct Source {
    /// For root fields and writes (per-item reads use the loaders).
    pub pool: db::PgPool,
    /// Shared by every request reading this pool.
    pub loaders: Loaders,
}
