//! Nearest-neighbour search over note embeddings with the HNSW index: by a
//! query vector, and "similar notes" for many notes in one statement.
//!
//! Every statement orders by `embedding <=> $q` (cosine distance) with a
//! `limit`, the shape the HNSW index serves. Visibility and tag filters sit
//! in the same `where`; the pool's `hnsw.iterative_scan` keeps the index
//! scan going until enough rows pass them, so filtering never loses recall.

use pgvector::Vector;
use sqlx::{PgPool, QueryBuilder};
use tracing::instrument;

use crate::notes::{NoteRow, note_columns};
use crate::{Error, NoteId, Viewer};

/// A note and its cosine similarity to the query, in [-1, 1].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hit {
    /// The note found.
    #[sqlx(flatten)]
    pub note: NoteRow,
    /// 1 − cosine distance; higher is closer.
    pub score: f64,
}

/// A hit tagged with the 1-based position of the key it answers.
#[derive(Debug, sqlx::FromRow)]
struct KeyedHit {
    ord: i64,
    #[sqlx(flatten)]
    hit: Hit,
}

/// The notes most similar to one note, as seen by one viewer: the key of
/// [`similar_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimilarTo {
    /// The note to find neighbours of (itself excluded).
    pub note: NoteId,
    /// Who is looking.
    pub viewer: Viewer,
    /// How many neighbours.
    pub first: i64,
}

/// The `first` visible notes closest to `query`, best first, optionally only
/// those carrying the tag named `tag`.
#[instrument(level = "debug", skip_all, fields(db.operation = "search.by_embedding", first, tagged = tag.is_some()))]
pub async fn by_embedding(
    pool: &PgPool,
    query: &Vector,
    viewer: Viewer,
    first: i64,
    tag: Option<&str>,
) -> Result<Vec<Hit>, Error> {
    let mut q = QueryBuilder::new(concat!("select ", note_columns!(), ", 1 - (n.embedding <=> "));
    q.push_bind(query);
    q.push(")::float8 as score from notes n where (n.visibility = 'public' or n.author_id = ");
    q.push_bind(viewer);
    q.push(")");
    if let Some(tag) = tag {
        q.push(
            " and exists (select 1 from note_tags nt join tags t on t.id = nt.tag_id \
             where nt.note_id = n.id and t.name = ",
        );
        q.push_bind(tag);
        q.push(")");
    }
    // `order by` must repeat the distance expression (not the alias) for
    // the planner to recognise it as an HNSW index order.
    q.push(" order by n.embedding <=> ");
    q.push_bind(query);
    q.push(" limit ");
    q.push_bind(first);
    let hits = q.build_query_as().fetch_all(pool).await?;
    Ok(hits)
}

/// For every key, the visible notes nearest to that note, best first, in one
/// statement: a lateral HNSW scan per key. Returns `(index of the key, hit)`
/// pairs; a key whose note does not exist gets none.
#[instrument(level = "debug", skip_all, fields(db.operation = "search.similar_to", batch = keys.len()))]
pub async fn similar_to(pool: &PgPool, keys: &[SimilarTo]) -> Result<Vec<(usize, Hit)>, Error> {
    let notes: Vec<NoteId> = keys.iter().map(|k| k.note).collect();
    let viewers: Vec<Viewer> = keys.iter().map(|k| k.viewer).collect();
    let limits: Vec<i64> = keys.iter().map(|k| k.first).collect();
    let rows: Vec<KeyedHit> = sqlx::query_as(concat!(
        "select k.ord, h.* from unnest($1::bigint[], $2::bigint[], $3::bigint[]) \
             with ordinality as k(note_id, viewer_id, lim, ord) \
         join notes s on s.id = k.note_id \
         cross join lateral ( \
             select ",
        note_columns!(),
        ", (1 - (n.embedding <=> s.embedding))::float8 as score \
             from notes n \
             where n.id <> s.id and (n.visibility = 'public' or n.author_id = k.viewer_id) \
             order by n.embedding <=> s.embedding limit k.lim) h"
    ))
    .bind(notes)
    .bind(viewers)
    .bind(limits)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().filter_map(|r| Some((usize::try_from(r.ord - 1).ok()?, r.hit))).collect())
}
