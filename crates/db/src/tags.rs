//! Reads of `tags` and the tag side of `note_tags`: tags of many notes at
//! once, a tag by name, and the tag list. The writes of tags and links are
//! part of the note write statements (`crate::notes`).
//!
//! A tag exists for a viewer only while a note that viewer may see carries
//! it: otherwise the name of a private note's tag would reveal that the
//! note exists. The tags of one note are not filtered (whoever sees the
//! note sees all its tags).

use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, Row as _};
use tracing::instrument;

use crate::{Error, NoteId, Page, TagId, Viewer};

/// Expands to the condition "a note the viewer may see carries tag `t`",
/// with the viewer bound at the given placeholder; a macro so that it can be
/// spliced into `concat!`-built statements. `note_tags (tag_id, note_id)`
/// drives it, and it stops at the first visible note.
macro_rules! carried_by_visible_note {
    ($viewer:literal) => {
        concat!(
            "exists (select 1 from note_tags nt join notes n on n.id = nt.note_id \
             where nt.tag_id = t.id and (n.visibility = 'public' or n.author_id = ",
            $viewer,
            "))"
        )
    };
}

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

/// The tags a row carries as `tag_ids` and `tag_names` (the pages of
/// [`crate::pages`] and the root list's statement), in their order.
pub(crate) fn tags_of(row: &PgRow) -> Result<Vec<TagRow>, sqlx::Error> {
    let ids: Vec<i64> = row.try_get("tag_ids")?;
    let names: Vec<String> = row.try_get("tag_names")?;
    Ok(ids.into_iter().zip(names).map(|(id, name)| TagRow { id: TagId(id), name }).collect())
}

/// The tags of every given note, sorted by note and then by tag name.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = note_ids.len()))]
pub async fn fetch_by_note_ids<'c>(db: impl PgExecutor<'c>, note_ids: &[NoteId]) -> Result<Vec<NoteTagRow>, Error> {
    let _statement = crate::measure::Statement::start("tags.fetch_by_note_ids");
    let rows = sqlx::query_as(
        "select nt.note_id, t.id, t.name \
         from note_tags nt join tags t on t.id = nt.tag_id \
         where nt.note_id = any($1) \
         order by nt.note_id, t.name",
    )
    .bind(note_ids)
    .fetch_all(db)
    .await?;
    Ok(crate::counted(rows))
}

/// The tag with this exact name, if a note the viewer may see carries it.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
pub async fn fetch_by_name<'c>(db: impl PgExecutor<'c>, viewer: Viewer, name: &str) -> Result<Option<TagRow>, Error> {
    let _statement = crate::measure::Statement::start("tags.fetch_by_name");
    const STATEMENT: &str =
        concat!("select t.id, t.name from tags t where t.name = $1 and ", carried_by_visible_note!("$2"));
    let row = sqlx::query_as(STATEMENT).bind(name).bind(viewer).fetch_optional(db).await?;
    Ok(row)
}

/// Tags that a note the viewer may see carries, oldest first (by id asc),
/// a keyset page at a time.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, first = page.first))]
pub async fn list<'c>(db: impl PgExecutor<'c>, viewer: Viewer, page: Page<TagId>) -> Result<Vec<TagRow>, Error> {
    let _statement = crate::measure::Statement::start("tags.list");
    const STATEMENT: &str = concat!(
        "select t.id, t.name from tags t where t.id > coalesce($1, 0) and ",
        carried_by_visible_note!("$3"),
        " order by t.id limit $2"
    );
    let rows = sqlx::query_as(STATEMENT).bind(page.after).bind(page.first).bind(viewer).fetch_all(db).await?;
    Ok(crate::counted(rows))
}
