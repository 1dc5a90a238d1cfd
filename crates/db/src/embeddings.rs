//! The `notes.embedding` column outside the note writes: its declared size
//! (checked against the embedder at start-up) and the batches
//! `notegraph reembed` reads and rewrites.

use pgvector::Vector;
use sqlx::PgPool;

use crate::{Error, NoteId};

/// A note's id and the two fields its embedding is made from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoteText {
    /// The note.
    pub id: NoteId,
    /// Its title.
    pub title: String,
    /// Its body.
    pub body: String,
}

/// The dimension `notes.embedding` was declared with (`vector(N)`), or
/// `None` when the column has no fixed size.
pub async fn column_dimension(pool: &PgPool) -> Result<Option<usize>, Error> {
    let typmod: i32 = sqlx::query_scalar(
        "select atttypmod from pg_attribute where attrelid = 'notes'::regclass and attname = 'embedding'",
    )
    .fetch_one(pool)
    .await?;
    Ok(usize::try_from(typmod).ok().filter(|d| *d > 0))
}

/// How many notes have an id above `after`.
pub async fn count_after(pool: &PgPool, after: NoteId) -> Result<i64, Error> {
    let count = sqlx::query_scalar("select count(*) from notes where id > $1").bind(after).fetch_one(pool).await?;
    Ok(count)
}

/// The next `limit` notes by id after `after`: a keyset page, so a run
/// interrupted after any batch resumes from the last id it reported.
pub async fn texts_after(pool: &PgPool, after: NoteId, limit: i64) -> Result<Vec<NoteText>, Error> {
    let rows = sqlx::query_as("select id, title, body from notes where id > $1 order by id limit $2")
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

/// Stores new embeddings for notes by id in one statement; `updated_at` is
/// left alone (the content did not change). Returns the rows updated.
pub async fn store(pool: &PgPool, ids: &[NoteId], vectors: &[Vector]) -> Result<u64, Error> {
    let done = sqlx::query(
        "update notes n set embedding = v.embedding \
         from unnest($1::bigint[], $2::vector[]) as v(id, embedding) where n.id = v.id",
    )
    .bind(ids)
    .bind(vectors)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
