//! Reads and writes of `notes`: by id, the filtered list, and the create,
//! update and delete writes. Pages of notes by author or tag are in
//! [`crate::pages`].
//!
//! Visibility — a note is seen by everyone when public and by its author
//! always — is part of every list and count statement here, so an invisible
//! note is never fetched, counted or paged over.

use chrono::{DateTime, Utc};
use pgvector::Vector;
use sqlx::{Connection as _, PgConnection, PgExecutor, QueryBuilder};
use tracing::instrument;

pub use crate::ids::Visibility;
use crate::notify::{NoteWritten, WriteKind, Writer, note_written};
use crate::tags::TagRow;
use crate::users::UserRow;
use crate::{Error, MAX_ID, NoteId, Page, UserId, Viewer, tags};

/// Expands to the column list of [`NoteRow`] for a `notes n` alias; a macro
/// so that it can be spliced into `concat!`-built statements.
macro_rules! note_columns {
    () => {
        "n.id, n.author_id, n.title, n.body, n.visibility, n.created_at, n.updated_at"
    };
}
pub(crate) use note_columns;

/// The columns [`NoteWithAuthor`] reads besides the note's, from `users u`
/// joined on the note's author.
macro_rules! author_columns {
    () => {
        ", u.name as author_name, u.email as author_email, u.created_at as author_created_at"
    };
}

/// One row of `notes`, without the embedding (it is only ever used inside
/// Postgres, and would add 1.5 KiB to every row fetched).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoteRow {
    /// Primary key.
    pub id: NoteId,
    /// The user who wrote it.
    pub author_id: UserId,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed; also the optimistic-concurrency token.
    pub updated_at: DateTime<Utc>,
}

impl NoteRow {
    /// The visibility rule, for rows fetched by id (lists apply it in SQL).
    pub fn is_visible_to(&self, viewer: Viewer) -> bool {
        self.visibility == Visibility::Public || viewer == Some(self.author_id)
    }
}

/// A note and its author, read in one statement when a query asks for
/// both: `note(id:) { author { … } }` then costs one round trip, not two.
#[derive(Debug, Clone)]
pub struct NoteWithAuthor {
    /// The note.
    pub note: NoteRow,
    /// Its author.
    pub author: UserRow,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for NoteWithAuthor {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        Ok(NoteWithAuthor { note: NoteRow::from_row(row)?, author: author_of(row)? })
    }
}

/// Optional filters of the root `notes` list.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoteFilter<'a> {
    /// Only notes by this author.
    pub author: Option<UserId>,
    /// Only notes carrying the tag with this name.
    pub tag: Option<&'a str>,
}

/// Notes with the given ids, visible or not (callers check visibility).
#[instrument(level = "debug", skip_all, fields(db.operation = "notes.fetch_by_ids", db.rows = tracing::field::Empty, batch = ids.len()))]
pub async fn fetch_by_ids<'c>(db: impl PgExecutor<'c>, ids: &[NoteId]) -> Result<Vec<NoteRow>, Error> {
    let rows = sqlx::query_as(concat!("select ", note_columns!(), " from notes n where n.id = any($1)"))
        .bind(ids)
        .fetch_all(db)
        .await?;
    Ok(crate::counted(rows))
}

/// Notes with the given ids and their authors, visible or not (callers
/// check visibility).
#[instrument(level = "debug", skip_all, fields(db.operation = "notes.fetch_with_authors_by_ids", db.rows = tracing::field::Empty, batch = ids.len()))]
pub async fn fetch_with_authors_by_ids<'c>(
    db: impl PgExecutor<'c>,
    ids: &[NoteId],
) -> Result<Vec<NoteWithAuthor>, Error> {
    let rows = sqlx::query_as(concat!(
        "select ",
        note_columns!(),
        author_columns!(),
        " from notes n join users u on u.id = n.author_id where n.id = any($1)"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(crate::counted(rows))
}

/// Which relations a list of notes brings in its own statement: the
/// resolver asks for those its selection reads (look-ahead), so that
/// `notes(first: 50) { … author { … } tags { … } }` is one round trip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Including {
    /// Each note's author, joined from `users`.
    pub author: bool,
    /// Each note's tags sorted by name, aggregated per note.
    pub tags: bool,
}

impl Including {
    /// The statement's `db.operation`: one of four, a bounded label.
    fn operation(self) -> &'static str {
        match (self.author, self.tags) {
            (false, false) => "notes.list",
            (true, false) => "notes.list_with_authors",
            (false, true) => "notes.list_with_tags",
            (true, true) => "notes.list_with_authors_and_tags",
        }
    }
}

/// A note of a list, with the relations [`Including`] asked for (`None`
/// for those it did not).
#[derive(Debug, Clone)]
pub struct ListedNote {
    /// The note.
    pub note: NoteRow,
    /// Its author, when asked for.
    pub author: Option<UserRow>,
    /// Its tags sorted by name (empty when it has none), when asked for.
    pub tags: Option<Vec<TagRow>>,
}

/// Visible notes newest first, optionally by one author and/or with one
/// tag, with the relations `including` asks for, in one statement.
///
/// Each combination of filters and relations is its own statement text,
/// so Postgres plans each for what it is (driving from the tag's
/// `note_tags` range when a tag is given) instead of one generic plan full
/// of `$n is null or …`.
#[instrument(level = "debug", skip_all, fields(db.operation = including.operation(), db.rows = tracing::field::Empty, first = page.first))]
pub async fn list<'c>(
    db: impl PgExecutor<'c>,
    viewer: Viewer,
    filter: NoteFilter<'_>,
    page: Page<NoteId>,
    including: Including,
) -> Result<Vec<ListedNote>, Error> {
    let rows = list_query(including, viewer, filter, page).build().fetch_all(db).await?;
    let notes = rows.iter().map(|row| listed(row, including)).collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(crate::counted(notes))
}

/// One row of [`list`]'s statement as a [`ListedNote`].
fn listed(row: &sqlx::postgres::PgRow, including: Including) -> Result<ListedNote, sqlx::Error> {
    use sqlx::FromRow as _;
    Ok(ListedNote {
        note: NoteRow::from_row(row)?,
        author: including.author.then(|| author_of(row)).transpose()?,
        tags: including.tags.then(|| tags::tags_of(row)).transpose()?,
    })
}

/// The author columns ([`author_columns!`]) of a row.
fn author_of(row: &sqlx::postgres::PgRow) -> Result<UserRow, sqlx::Error> {
    use sqlx::Row as _;
    Ok(UserRow {
        id: row.try_get("author_id")?,
        name: row.try_get("author_name")?,
        email: row.try_get("author_email")?,
        created_at: row.try_get("author_created_at")?,
    })
}

/// The statement of [`list`]: the page (joined to `users` for the
/// authors), and when tags are asked for, the page as a CTE whose notes'
/// tags are aggregated once for the whole page, as the pages of
/// [`crate::pages`] do (`tag_ids`, `tag_names`; empty arrays for a note
/// without tags).
fn list_query<'a>(
    including: Including,
    viewer: Viewer,
    filter: NoteFilter<'a>,
    page: Page<NoteId>,
) -> QueryBuilder<'a, sqlx::Postgres> {
    let mut q = QueryBuilder::new(if including.tags { "with page as (" } else { "" });
    q.push(concat!("select ", note_columns!()));
    if including.author {
        q.push(author_columns!());
    }
    q.push(" from notes n");
    if including.author {
        q.push(" join users u on u.id = n.author_id");
    }
    let id_column = if let Some(tag) = filter.tag {
        // The tag's id from a subquery: the plan walks that tag's
        // `note_tags (tag_id, note_id)` range, also as a generic plan,
        // which does not know how common the tag is.
        q.push(" join note_tags nt on nt.note_id = n.id and nt.tag_id = (select id from tags where name = ");
        q.push_bind(tag);
        q.push(")");
        "nt.note_id"
    } else {
        "n.id"
    };
    q.push(" where (n.visibility = 'public' or n.author_id = ");
    q.push_bind(viewer);
    q.push(") and ").push(id_column).push(" < ");
    q.push_bind(page.after.map_or(MAX_ID, |id| id.0));
    if let Some(author) = filter.author {
        q.push(" and n.author_id = ").push_bind(author);
    }
    q.push(" order by ").push(id_column).push(" desc limit ");
    q.push_bind(page.first);
    if including.tags {
        q.push(
            ") select page.*, coalesce(g.ids, '{}') as tag_ids, coalesce(g.names, '{}') as tag_names \
             from page left join ( \
                 select nt.note_id, array_agg(t.id order by t.name) as ids, \
                     array_agg(t.name order by t.name) as names \
                 from note_tags nt join tags t on t.id = nt.tag_id \
                 where nt.note_id in (select id from page) \
                 group by nt.note_id) g on g.note_id = page.id \
             order by page.id desc",
        );
    }
    q
}

/// A validated new note, ready to store.
#[derive(Debug, Clone)]
pub struct NewNote {
    /// The viewer, who becomes the author.
    pub author: UserId,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// Tag names, deduplicated and sorted (see [`tags`] for why sorted).
    pub tags: Vec<String>,
    /// The embedding of title and body.
    pub embedding: Vector,
    /// The identity of the embedder that made it (`notes.embedded_with`).
    pub embedded_with: String,
}

/// Stores a note and its tags in one transaction, which also notifies
/// [`NoteWritten`] (naming `writer`). An author that does not exist
/// is [`Error::NotFound`].
#[instrument(level = "debug", skip_all, fields(db.operation = "notes.insert", tags = note.tags.len()))]
pub async fn insert(db: &mut PgConnection, note: &NewNote, writer: Writer) -> Result<ChangedNote, Error> {
    let mut tx = db.begin().await?;
    let row: NoteRow = sqlx::query_as(concat!(
        "insert into notes as n (author_id, title, body, visibility, embedding, embedded_with) \
         values ($1, $2, $3, $4, $5, $6) returning ",
        note_columns!()
    ))
    .bind(note.author)
    .bind(&note.title)
    .bind(&note.body)
    .bind(note.visibility)
    .bind(&note.embedding)
    .bind(&note.embedded_with)
    .fetch_one(&mut *tx)
    .await?;
    tags::link(&mut tx, row.id, &note.tags).await?;
    let event = written(writer, WriteKind::Created, &row, note.tags.clone(), Vec::new());
    note_written(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(ChangedNote { row, tags: note.tags.clone(), written: event })
}

/// The fields an update changes; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct NotePatch {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// New tag set (deduplicated and sorted), replacing the old one.
    pub tags: Option<Vec<String>>,
    /// New embedding, given whenever title or body changes.
    pub embedding: Option<Vector>,
    /// The identity of the embedder that made `embedding`, given with it.
    pub embedded_with: Option<String>,
}

/// A note as a write left it (as it was, for a delete) with its sorted tag
/// names, both read inside the write's transaction while it holds the
/// note's row lock: what the write's event publishes, never staler than the
/// write itself.
#[derive(Debug, Clone)]
pub struct ChangedNote {
    /// The row.
    pub row: NoteRow,
    /// Its tag names.
    pub tags: Vec<String>,
    /// The event the write's transaction notified.
    pub written: NoteWritten,
}

/// Applies a patch if the note is still the one the caller read: same
/// author and same `updated_at`. `None` means it changed or went away in
/// between, and the caller should read again and retry.
///
/// Every writer of a note's tags holds the note's row lock (the `update`
/// here takes it first), so the tags read after it are this write's. The
/// transaction notifies [`NoteWritten`] with the tags after, and those the
/// update removed.
#[instrument(level = "debug", skip_all, fields(db.operation = "notes.update", note.id = %id))]
pub async fn update(
    db: &mut PgConnection,
    id: NoteId,
    author: UserId,
    read_at: DateTime<Utc>,
    patch: &NotePatch,
    writer: Writer,
) -> Result<Option<ChangedNote>, Error> {
    let mut tx = db.begin().await?;
    let row: Option<NoteRow> = sqlx::query_as(concat!(
        "update notes n set title = coalesce($4, title), body = coalesce($5, body), \
             visibility = coalesce($6, visibility), embedding = coalesce($7, embedding), \
             embedded_with = coalesce($8, embedded_with), \
             updated_at = greatest(now(), updated_at + interval '1 microsecond') \
         where n.id = $1 and n.author_id = $2 and n.updated_at = $3 \
         returning ",
        note_columns!()
    ))
    .bind(id)
    .bind(author)
    .bind(read_at)
    .bind(&patch.title)
    .bind(&patch.body)
    .bind(patch.visibility)
    .bind(&patch.embedding)
    .bind(&patch.embedded_with)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let before = tags::names_of(&mut tx, id).await?;
    let (tags, removed) = match &patch.tags {
        Some(names) => {
            sqlx::query("delete from note_tags where note_id = $1").bind(id).execute(&mut *tx).await?;
            tags::link(&mut tx, id, names).await?;
            let removed = before.into_iter().filter(|name| !names.contains(name)).collect();
            (names.clone(), removed)
        }
        None => (before, Vec::new()),
    };
    let event = written(writer, WriteKind::Updated, &row, tags.clone(), removed);
    note_written(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Some(ChangedNote { row, tags, written: event }))
}

/// Deletes a note if `author` wrote it and returns it as it was; `None`
/// when no such note of theirs exists. The transaction notifies
/// [`NoteWritten`].
///
/// The row is locked before its tags are read, so an update that commits
/// while the delete waits is in what the delete returns (a single
/// `delete … returning` would read the tags from the statement's older
/// snapshot).
#[instrument(level = "debug", skip_all, fields(db.operation = "notes.delete", note.id = %id))]
pub async fn delete(
    db: &mut PgConnection,
    id: NoteId,
    author: UserId,
    writer: Writer,
) -> Result<Option<ChangedNote>, Error> {
    let mut tx = db.begin().await?;
    let row: Option<NoteRow> = sqlx::query_as(concat!(
        "select ",
        note_columns!(),
        " from notes n where n.id = $1 and n.author_id = $2 for update"
    ))
    .bind(id)
    .bind(author)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let tags = tags::names_of(&mut tx, id).await?;
    sqlx::query("delete from notes where id = $1").bind(id).execute(&mut *tx).await?;
    let event = written(writer, WriteKind::Deleted, &row, tags.clone(), Vec::new());
    note_written(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Some(ChangedNote { row, tags, written: event }))
}

/// The event of a write of kind `kind` that left `row` with `tags` (and
/// took `removed` off it); a delete's happens now, the others when the row
/// says.
fn written(writer: Writer, kind: WriteKind, row: &NoteRow, tags: Vec<String>, removed: Vec<String>) -> NoteWritten {
    NoteWritten {
        origin: writer.origin,
        write: writer.write,
        kind,
        note: row.id,
        author: row.author_id,
        visibility: row.visibility,
        tags,
        removed_tags: removed,
        at: if kind == WriteKind::Deleted { Utc::now() } else { row.updated_at },
    }
}
