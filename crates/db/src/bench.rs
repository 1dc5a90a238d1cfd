//! Statements only the vector-search benchmark (`just bench-vector`) runs:
//! sampling queries, the synthetic selectivity tags, index sizes and the
//! IVFFlat comparison. Never called by the server.

use std::time::{Duration, Instant};

use pgvector::Vector;
use sqlx::{Connection, PgConnection, PgPool};

use crate::{Error, NoteId};

/// A synthetic tag carried by every `modulus`-th note (ids congruent to
/// `remainder`): a filter uncorrelated with the embeddings, the hard case
/// for a filtered index scan.
#[derive(Debug, Clone, Copy)]
pub struct SyntheticTag {
    /// The tag's name.
    pub name: &'static str,
    /// One note in this many carries it.
    pub modulus: i64,
    /// Which residue of the id carries it.
    pub remainder: i64,
}

/// Creates `tag` and links its notes unless it exists, then refreshes the
/// planner statistics; returns how many notes carry it.
pub async fn ensure_tag(pool: &PgPool, tag: SyntheticTag) -> Result<i64, Error> {
    let mut tx = pool.begin().await?;
    let inserted: Option<i64> =
        sqlx::query_scalar("insert into tags (name) values ($1) on conflict (name) do nothing returning id")
            .bind(tag.name)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(id) = inserted {
        sqlx::query("insert into note_tags (note_id, tag_id) select id, $1 from notes where id % $2 = $3")
            .bind(id)
            .bind(tag.modulus)
            .bind(tag.remainder)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    sqlx::query("analyze note_tags").execute(pool).await?;
    let count =
        sqlx::query_scalar("select count(*) from note_tags nt join tags t on t.id = nt.tag_id where t.name = $1")
            .bind(tag.name)
            .fetch_one(pool)
            .await?;
    Ok(count)
}

/// The ids, embeddings and titles of up to `limit` public notes, every
/// `stride`-th by id: a deterministic sample spread over the table.
pub async fn sample_notes(pool: &PgPool, stride: i64, limit: i64) -> Result<Vec<(NoteId, Vector, String)>, Error> {
    let rows = sqlx::query_as(
        "select id, embedding, title from notes where visibility = 'public' and id % $1 = 0 order by id limit $2",
    )
    .bind(stride)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Size on disk of the index named `index`, in bytes.
pub async fn index_bytes(pool: &PgPool, index: &str) -> Result<i64, Error> {
    let bytes = sqlx::query_scalar("select pg_relation_size(to_regclass($1))").bind(index).fetch_one(pool).await?;
    Ok(bytes)
}

/// A connection on which, inside an open transaction, the HNSW index is
/// dropped and an IVFFlat index with `lists` lists built in its place, so
/// its searches use IVFFlat; dropping the value rolls everything back.
pub struct IvfflatSession {
    /// The connection holding the transaction; run searches on it.
    pub conn: PgConnection,
    /// How long the IVFFlat build took.
    pub build: Duration,
    /// Size of the IVFFlat index, in bytes.
    pub bytes: i64,
}

/// Opens an [`IvfflatSession`] on a new connection to `options`.
pub async fn ivfflat_session(options: &sqlx::postgres::PgConnectOptions, lists: u32) -> Result<IvfflatSession, Error> {
    let mut conn = PgConnection::connect_with(options).await?;
    sqlx::query("begin").execute(&mut conn).await?;
    sqlx::query("drop index notes_embedding_hnsw_idx").execute(&mut conn).await?;
    sqlx::query("set local maintenance_work_mem = '512MB'").execute(&mut conn).await?;
    let started = Instant::now();
    sqlx::query(&format!(
        "create index notes_embedding_ivfflat_idx on notes using ivfflat (embedding vector_cosine_ops) \
         with (lists = {lists})"
    ))
    .execute(&mut conn)
    .await?;
    let build = started.elapsed();
    let bytes =
        sqlx::query_scalar("select pg_relation_size('notes_embedding_ivfflat_idx')").fetch_one(&mut conn).await?;
    Ok(IvfflatSession { conn, build, bytes })
}

/// Sets `ivfflat.probes` for the rest of the session's transaction.
pub async fn set_probes(conn: &mut PgConnection, probes: u32) -> Result<(), Error> {
    sqlx::query(&format!("set local ivfflat.probes = {probes}")).execute(conn).await?;
    Ok(())
}
