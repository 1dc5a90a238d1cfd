//! Nearest-neighbour search over note embeddings with the HNSW index: by a
//! query vector, and "similar notes" for many notes in one statement.
//!
//! Every statement orders by `embedding <=> $q` (cosine distance) with a
//! `limit`, the shape the HNSW index serves. Visibility and tag filters sit
//! in the same `where`; the pool's `hnsw.iterative_scan` keeps the index
//! scan going until enough rows pass them (up to `hnsw.max_scan_tuples`).
//! A tag with few notes is searched exactly instead, which is both faster
//! and lossless at that size (docs/PERFORMANCE.md, "Vector search").

use pgvector::Vector;
use sqlx::{Connection as _, PgConnection, PgExecutor};
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
///
/// With a tag, one statement holds two plans and runs one of them: when the
/// tag has at most `notegraph.exact_tag_notes` notes (a count bounded at
/// that many index entries, so a large tag costs no more than a small one
/// to measure), the exact path walks the tag's B-tree entries and sorts
/// its notes by true distance; otherwise the HNSW index is scanned
/// iteratively with the tag as a filter. The unused branch sits behind a
/// one-time filter and is never executed.
///
/// A tagged search runs in a transaction that plans it for its values
/// (`plan_cache_mode = force_custom_plan`, the connections' default being
/// one generic plan per statement, [`crate::Settings`]): which branch's
/// index order pays depends on `first`, and a generic plan, which does not
/// know it, would always take the exact order, walking a large tag whole.
pub async fn by_embedding(
    conn: &mut PgConnection,
    query: &Vector,
    viewer: Viewer,
    first: i64,
    tag: Option<&str>,
) -> Result<Vec<Hit>, Error> {
    match tag {
        None => search(conn, query, viewer, first, None).await,
        Some(_) => in_transaction(conn, None, query, viewer, first, tag).await,
    }
}

/// [`by_embedding`] with `hnsw.ef_search` at `ef_search` for this one
/// search, whatever the connection's own setting: free text from the
/// default embedder lands farther from every note than a vector near one,
/// and needs a longer candidate list for the same recall
/// (docs/PERFORMANCE.md, "Vector search").
pub async fn by_embedding_with_ef(
    conn: &mut PgConnection,
    ef_search: u32,
    query: &Vector,
    viewer: Viewer,
    first: i64,
    tag: Option<&str>,
) -> Result<Vec<Hit>, Error> {
    in_transaction(conn, Some(ef_search), query, viewer, first, tag).await
}

/// A search in a transaction with its own settings: `ef_search` when given,
/// custom plans when tagged. `set_config(…, true)` lasts until the end of
/// the transaction, so the connection goes back to the pool as it came,
/// also when the search fails.
async fn in_transaction(
    conn: &mut PgConnection,
    ef_search: Option<u32>,
    query: &Vector,
    viewer: Viewer,
    first: i64,
    tag: Option<&str>,
) -> Result<Vec<Hit>, Error> {
    let mut tx = conn.begin().await?;
    if let Some(ef_search) = ef_search {
        sqlx::query("select set_config('hnsw.ef_search', $1, true) as hnsw_ef_search")
            .bind(ef_search.to_string())
            .execute(&mut *tx)
            .await?;
    }
    if tag.is_some() {
        sqlx::query("select set_config('plan_cache_mode', 'force_custom_plan', true) as custom_plans")
            .execute(&mut *tx)
            .await?;
    }
    let hits = search(&mut *tx, query, viewer, first, tag).await?;
    tx.commit().await?;
    Ok(hits)
}

/// The search statement itself.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, first, tagged = tag.is_some()))]
async fn search<'c>(
    db: impl PgExecutor<'c>,
    query: &Vector,
    viewer: Viewer,
    first: i64,
    tag: Option<&str>,
) -> Result<Vec<Hit>, Error> {
    let _statement = crate::measure::Statement::start("search.by_embedding");
    // `order by` repeats the distance expression (not the alias) for the
    // planner to recognise it as an HNSW index order.
    let statement = if tag.is_some() { TAGGED_SEARCH } else { UNTAGGED_SEARCH };
    let mut hits = sqlx::query_as(statement).bind(query).bind(viewer).bind(first);
    if let Some(tag) = tag {
        hits = hits.bind(tag);
    }
    let hits = hits.fetch_all(db).await?;
    Ok(hits)
}

/// Search without a tag: the HNSW index with visibility as its filter.
/// The outer sort costs microseconds on at most 100 rows and keeps hits
/// best first also under IVFFlat's relaxed-order iterative scan.
const UNTAGGED_SEARCH: &str = concat!(
    "select * from (select ",
    note_columns!(),
    ", 1 - (n.embedding <=> $1)::float8 as score from notes n \
     where (n.visibility = 'public' or n.author_id = $2) \
     order by n.embedding <=> $1 limit $3) hits order by score desc"
);

/// Tag-filtered search: the exact and the HNSW plan behind one-time
/// filters (see [`by_embedding`]). `+ 0` on the exact path's distance keeps
/// the planner from serving that order with the HNSW index.
const TAGGED_SEARCH: &str = concat!(
    "with t as (select id from tags where name = $4), \
     small as materialized (select count(*) <= current_setting('notegraph.exact_tag_notes')::bigint as yes \
         from (select 1 from note_tags where tag_id = (select id from t) \
               limit current_setting('notegraph.exact_tag_notes')::bigint + 1) c) \
     select * from ( \
         select * from (select ",
    note_columns!(),
    ", 1 - (n.embedding <=> $1)::float8 as score \
             from note_tags nt join notes n on n.id = nt.note_id \
             where nt.tag_id = (select id from t) and (n.visibility = 'public' or n.author_id = $2) \
             order by (n.embedding <=> $1) + 0 limit $3) exact \
         where (select yes from small) \
         union all \
         select * from (select ",
    note_columns!(),
    ", 1 - (n.embedding <=> $1)::float8 as score from notes n \
             where (n.visibility = 'public' or n.author_id = $2) \
               and exists (select 1 from note_tags nt where nt.note_id = n.id and nt.tag_id = (select id from t)) \
             order by n.embedding <=> $1 limit $3) approximate \
         where not (select yes from small)) hits \
     order by score desc"
);

/// For every key, the visible notes nearest to that note, best first, in one
/// statement: a lateral HNSW scan per key. Returns `(index of the key, hit)`
/// pairs; a key whose note does not exist gets none.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, batch = keys.len()))]
pub async fn similar_to<'c>(db: impl PgExecutor<'c>, keys: &[SimilarTo]) -> Result<Vec<(usize, Hit)>, Error> {
    let _statement = crate::measure::Statement::start("search.similar_to");
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
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().filter_map(|r| Some((usize::try_from(r.ord - 1).ok()?, r.hit))).collect())
}
