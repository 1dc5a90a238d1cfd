//! Which index serves vector search on `notes.embedding`: HNSW (the
//! default) or IVFFlat, chosen at start-up (`NOTEGRAPH_VECTOR_INDEX`). The
//! search statements are the same for both (`order by embedding <=> $1`);
//! the pool sets the settings of each.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use crate::Error;

/// The HNSW index's name.
pub const HNSW_INDEX: &str = "notes_embedding_hnsw_idx";
/// The IVFFlat index's name.
pub const IVFFLAT_INDEX: &str = "notes_embedding_ivfflat_idx";

/// The HNSW index's ef_construction unless the caller asks for another
/// (the server picks one per embedder). With m = 16, measured by
/// `bench/vector-index.py` on the default data set (docs/PERFORMANCE.md,
/// "The index for writes"): recall@10 0.993 on near queries at the default
/// `ef_search` (40) for 2.40 ms of Postgres CPU per inserted note, the
/// recall of the m = 24, ef_construction = 128 index that migration
/// `20261128000001_denser_hnsw.sql` builds (3.48 ms); pgvector's defaults
/// (16, 64) save 0.1–0.25 ms more but fall to 0.96. An index built with
/// other options is rebuilt with the asked ones at start-up ([`ensure`]).
pub const DEFAULT_EF_CONSTRUCTION: u32 = 100;

/// `create index` for the HNSW index, named `name`: m = 16 and
/// `ef_construction`.
fn hnsw_ddl(name: &str, ef_construction: u32, concurrently: bool) -> String {
    let how = if concurrently { "concurrently " } else { "" };
    format!(
        "create index {how}{name} on notes using hnsw (embedding vector_cosine_ops) \
         with (m = 16, ef_construction = {ef_construction})"
    )
}

/// [`hnsw_ddl`]'s options as `pg_class.reloptions` lists them.
fn hnsw_options(ef_construction: u32) -> [String; 2] {
    ["m=16".to_owned(), format!("ef_construction={ef_construction}")]
}

/// Where a rebuild with new options builds the new index, and where the
/// old one waits to be dropped, so that searches always have an index.
const HNSW_NEXT: &str = "notes_embedding_hnsw_next";
const HNSW_OLD: &str = "notes_embedding_hnsw_old";

/// Taken (session-level) while one process checks and builds the index, so
/// that replicas starting together build it once: the others wait, then
/// find it built.
const SWITCH_LOCK: i64 = 0x6e67_7665_6374_6f72; // "ngvector"

/// The kinds of vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndexKind {
    /// A graph: best latency at a given recall, no training.
    #[default]
    Hnsw,
    /// Inverted lists: builds fast and small, trained on the rows present.
    Ivfflat,
}

impl IndexKind {
    /// The index's name.
    pub fn index_name(self) -> &'static str {
        match self {
            IndexKind::Hnsw => HNSW_INDEX,
            IndexKind::Ivfflat => IVFFLAT_INDEX,
        }
    }

    /// The other kind.
    fn other(self) -> IndexKind {
        match self {
            IndexKind::Hnsw => IndexKind::Ivfflat,
            IndexKind::Ivfflat => IndexKind::Hnsw,
        }
    }
}

/// IVFFlat lists for `rows` notes: rows / 1000 up to a million rows, √rows
/// above (pgvector's advice), at least 1.
pub fn ivfflat_lists(rows: i64) -> i64 {
    let lists = if rows > 1_000_000 { (rows as f64).sqrt() as i64 } else { rows / 1000 };
    lists.max(1)
}

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The chosen index was there already (and no other).
    Present,
    /// The chosen index was built, the other kind dropped if it was there.
    Built {
        /// How long the build took.
        elapsed: Duration,
        /// IVFFlat lists, for an IVFFlat build.
        lists: Option<i64>,
        /// Whether the other kind's index was dropped.
        dropped_other: bool,
    },
    /// The chosen index was there, and a leftover of the other kind (an
    /// interrupted switch) was dropped.
    DroppedOther,
}

/// Makes the database hold the `kind` index on `notes.embedding` and not
/// the other: builds it if missing (or left invalid by an interrupted
/// concurrent build), then drops the other. Builds `concurrently`, so
/// writes go on meanwhile, on a connection of its own without a statement
/// timeout (a build outlasts any request timeout), under an advisory lock.
pub async fn ensure(pool: &PgPool, kind: IndexKind, ef_construction: u32) -> Result<Ensured, Error> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    let outcome = ensure_on(&mut conn, kind, ef_construction).await;
    let unlocked = sqlx::query("select pg_advisory_unlock($1)").bind(SWITCH_LOCK).execute(&mut conn).await;
    let _ = conn.close().await;
    let outcome = outcome?;
    unlocked?;
    Ok(outcome)
}

async fn ensure_on(conn: &mut PgConnection, kind: IndexKind, ef_construction: u32) -> Result<Ensured, Error> {
    sqlx::query("set statement_timeout = 0").execute(&mut *conn).await?;
    sqlx::query("select pg_advisory_lock($1)").bind(SWITCH_LOCK).execute(&mut *conn).await?;
    let chosen = state(conn, kind.index_name()).await?;
    let other = state(conn, kind.other().index_name()).await?;
    if kind == IndexKind::Hnsw && chosen == Some(true) && !hnsw_is_current(conn, ef_construction).await? {
        let started = Instant::now();
        rebuild_hnsw(conn, ef_construction).await?;
        let elapsed = started.elapsed();
        if other.is_some() {
            drop_index(conn, kind.other()).await?;
        }
        return Ok(Ensured::Built { elapsed, lists: None, dropped_other: other.is_some() });
    }
    if chosen == Some(true) {
        if other.is_none() {
            return Ok(Ensured::Present);
        }
        drop_index(conn, kind.other()).await?;
        return Ok(Ensured::DroppedOther);
    }
    if chosen == Some(false) {
        drop_index(conn, kind).await?;
    }
    sqlx::query("set maintenance_work_mem = '1GB'").execute(&mut *conn).await?;
    sqlx::query("set max_parallel_maintenance_workers = 2").execute(&mut *conn).await?;
    let started = Instant::now();
    let lists = match kind {
        IndexKind::Hnsw => {
            sqlx::raw_sql(&hnsw_ddl(HNSW_INDEX, ef_construction, true)).execute(&mut *conn).await?;
            None
        }
        IndexKind::Ivfflat => {
            let rows: i64 = sqlx::query_scalar("select count(*) from notes").fetch_one(&mut *conn).await?;
            let lists = ivfflat_lists(rows);
            sqlx::raw_sql(&ivfflat_ddl(lists, true)).execute(&mut *conn).await?;
            Some(lists)
        }
    };
    let elapsed = started.elapsed();
    if other.is_some() {
        drop_index(conn, kind.other()).await?;
    }
    Ok(Ensured::Built { elapsed, lists, dropped_other: other.is_some() })
}

/// Whether the HNSW index's options include [`hnsw_options`]`(ef_construction)`.
async fn hnsw_is_current(conn: &mut PgConnection, ef_construction: u32) -> Result<bool, Error> {
    let current =
        sqlx::query_scalar("select coalesce(reloptions @> $1, false) from pg_class where oid = to_regclass($2)")
            .bind(hnsw_options(ef_construction))
            .bind(HNSW_INDEX)
            .fetch_optional(conn)
            .await?;
    Ok(current.unwrap_or(false))
}

/// Replaces an HNSW index built with other options by one built with
/// `ef_construction`, without blocking writes: the new index is built
/// `concurrently` beside the old, takes its name in one transaction, and
/// the old is dropped `concurrently`. Leftovers of an interrupted rebuild
/// (a half-built new index, an old one not yet dropped) go first.
async fn rebuild_hnsw(conn: &mut PgConnection, ef_construction: u32) -> Result<(), Error> {
    for leftover in [HNSW_NEXT, HNSW_OLD] {
        sqlx::raw_sql(&format!("drop index concurrently if exists {leftover}")).execute(&mut *conn).await?;
    }
    sqlx::query("set maintenance_work_mem = '1GB'").execute(&mut *conn).await?;
    sqlx::query("set max_parallel_maintenance_workers = 2").execute(&mut *conn).await?;
    sqlx::raw_sql(&hnsw_ddl(HNSW_NEXT, ef_construction, true)).execute(&mut *conn).await?;
    // One implicit transaction: searches find one index or the other.
    sqlx::raw_sql(&format!(
        "alter index {HNSW_INDEX} rename to {HNSW_OLD}; alter index {HNSW_NEXT} rename to {HNSW_INDEX}"
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::raw_sql(&format!("drop index concurrently {HNSW_OLD}")).execute(&mut *conn).await?;
    Ok(())
}

/// `None` when the index does not exist, else whether it is valid.
async fn state(conn: &mut PgConnection, index: &str) -> Result<Option<bool>, Error> {
    let valid = sqlx::query_scalar(
        "select i.indisvalid from pg_index i where i.indexrelid = to_regclass($1) and i.indrelid = 'notes'::regclass",
    )
    .bind(index)
    .fetch_optional(conn)
    .await?;
    Ok(valid)
}

async fn drop_index(conn: &mut PgConnection, kind: IndexKind) -> Result<(), Error> {
    // `concurrently` cannot run in a transaction, nor so in a prepared
    // statement's implicit one: the simple protocol.
    sqlx::raw_sql(&format!("drop index concurrently if exists {}", kind.index_name())).execute(conn).await?;
    Ok(())
}

/// `create index` for IVFFlat with `lists` lists.
fn ivfflat_ddl(lists: i64, concurrently: bool) -> String {
    let how = if concurrently { "concurrently " } else { "" };
    format!(
        "create index {how}{IVFFLAT_INDEX} on notes using ivfflat (embedding vector_cosine_ops) with (lists = {lists})"
    )
}

/// Builds the `kind` index inside the seeder's transaction (after the load,
/// on a table it has truncated: nothing to run concurrently with).
pub(crate) async fn build_in(conn: &mut PgConnection, kind: IndexKind, ef_construction: u32) -> Result<(), Error> {
    match kind {
        IndexKind::Hnsw => sqlx::query(&hnsw_ddl(HNSW_INDEX, ef_construction, false)).execute(conn).await?,
        IndexKind::Ivfflat => {
            let rows: i64 = sqlx::query_scalar("select count(*) from notes").fetch_one(&mut *conn).await?;
            sqlx::query(&ivfflat_ddl(ivfflat_lists(rows), false)).execute(conn).await?
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_checked_are_the_options_built() {
        for ef_construction in [DEFAULT_EF_CONSTRUCTION, 256] {
            let ddl = hnsw_ddl(HNSW_INDEX, ef_construction, false);
            for option in hnsw_options(ef_construction) {
                let (name, value) = option.split_once('=').unwrap();
                assert!(ddl.contains(&format!("{name} = {value}")), "{option} not in {ddl}");
            }
        }
    }

    #[test]
    fn lists_follow_rows_over_a_thousand_then_the_square_root() {
        assert_eq!(ivfflat_lists(0), 1);
        assert_eq!(ivfflat_lists(999), 1);
        assert_eq!(ivfflat_lists(100_000), 100);
        assert_eq!(ivfflat_lists(1_000_000), 1000);
        assert_eq!(ivfflat_lists(4_000_000), 2000);
    }
}
