//! Reads of `tags` and the tag side of `note_tags`: tags of many notes at
//! once, a tag by name, the tag list, and the writer that links tags to a
//! note.

use sqlx::{PgPool, Postgres, Transaction};
use tracing::instrument;

use crate::{Error, NoteId, Page, TagId};

/// One row of `tags`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TagRow {
    /// Primary key.
    pub id: TagId,
    /// Unique, trimmed and lower-cased by the writer.
    pub name: String,
}

/// A tag together with the note it was fetched for.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoteTagRow {
    /// The note this tag belongs to.
    pub note_id: NoteId,
    /// The tag itself.
    #[sqlx(flatten)]
    pub tag: TagRow,
}

/// The tags of every given note, sorted by note and then by tag name.
#[instrument(level = "debug", skip_all, fields(db.operation = "tags.fetch_by_note_ids", batch = note_ids.len()))]
pub async fn fetch_by_note_ids(pool: &PgPool, note_ids: &[NoteId]) -> Result<Vec<NoteTagRow>, Error> {
    let rows = sqlx::query_as(
        "select nt.note_id, t.id, t.name \
         from note_tags nt join tags t on t.id = nt.tag_id \
         where nt.note_id = any($1) \
         order by nt.note_id, t.name",
    )
    .bind(note_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// The tag with this exact name, if any.
#[instrument(level = "debug", skip_all, fields(db.operation = "tags.fetch_by_name"))]
pub async fn fetch_by_name(pool: &PgPool, name: &str) -> Result<Option<TagRow>, Error> {
    let row = sqlx::query_as("select id, name from tags where name = $1").bind(name).fetch_optional(pool).await?;
    Ok(row)
}

/// Tags oldest first (by id asc), a keyset page at a time.
#[instrument(level = "debug", skip_all, fields(db.operation = "tags.list", first = page.first))]
pub async fn list(pool: &PgPool, page: Page<TagId>) -> Result<Vec<TagRow>, Error> {
    let rows = sqlx::query_as("select id, name from tags where id > coalesce($1, 0) order by id limit $2")
        .bind(page.after)
        .bind(page.first)
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

/// Links a note to tags by name, creating the tags that do not exist yet.
///
/// `names` must be deduplicated and sorted: concurrent writers then lock
/// tag rows in the same order and cannot deadlock. `do update` (rather than
/// `do nothing`) makes the upsert return the id of an existing tag too, even
/// one another transaction inserted a moment ago.
pub(crate) async fn link(tx: &mut Transaction<'_, Postgres>, note_id: NoteId, names: &[String]) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "with ids as ( \
             insert into tags (name) select unnest($2::text[]) \
             on conflict (name) do update set name = excluded.name \
             returning id) \
         insert into note_tags (note_id, tag_id) select $1, id from ids",
    )
    .bind(note_id)
    .bind(names)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
