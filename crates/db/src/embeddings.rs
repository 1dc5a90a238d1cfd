//! The `notes.embedding` column outside the note writes: its declared size
//! (checked against the embedder at start-up) and the batches
//! `notegraph reembed` reads and rewrites, with the model that made them.

use chrono::{DateTime, Utc};
use pgvector::Vector;
use sqlx::PgPool;

use crate::notify::{EMBEDDINGS_CHANNEL, notify};
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
    /// When it was last written: the store skips it if that changed.
    pub updated_at: DateTime<Utc>,
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

/// How many notes were not embedded by `model` (an unknown model, NULL,
/// counts as another one).
pub async fn count_stale(pool: &PgPool, model: &str) -> Result<i64, Error> {
    let count = sqlx::query_scalar("select count(*) from notes where embedded_with is distinct from $1")
        .bind(model)
        .fetch_one(pool)
        .await?;
    Ok(count)
}

/// The next `limit` notes by id after `after` that `model` did not embed: a
/// keyset page, so that one run reads each note once, and a rerun finds
/// only the notes still to do.
pub async fn stale_after(pool: &PgPool, model: &str, after: NoteId, limit: i64) -> Result<Vec<NoteText>, Error> {
    let rows = sqlx::query_as(
        "select id, title, body, updated_at from notes \
         where id > $1 and embedded_with is distinct from $2 order by id limit $3",
    )
    .bind(after)
    .bind(model)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Stores new embeddings made by `model` for `notes`, in one statement,
/// for each note still as it was read (same `updated_at`): a note written
/// in between was embedded by its writer and is left alone (a rerun finds
/// it if its writer used another model). `updated_at` is kept (the content
/// did not change). The same transaction notifies [`EMBEDDINGS_CHANNEL`],
/// so every server drops its cached searches as the vectors commit.
/// Returns the rows updated.
pub async fn store(pool: &PgPool, notes: &[NoteText], vectors: &[Vector], model: &str) -> Result<u64, Error> {
    let ids: Vec<NoteId> = notes.iter().map(|n| n.id).collect();
    let read_at: Vec<DateTime<Utc>> = notes.iter().map(|n| n.updated_at).collect();
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "update notes n set embedding = v.embedding, embedded_with = $4 \
         from unnest($1::bigint[], $2::timestamptz[], $3::vector[]) as v(id, updated_at, embedding) \
         where n.id = v.id and n.updated_at = v.updated_at",
    )
    .bind(&ids)
    .bind(&read_at)
    .bind(vectors)
    .bind(model)
    .execute(&mut *tx)
    .await?;
    notify(&mut tx, EMBEDDINGS_CHANNEL, model).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}
