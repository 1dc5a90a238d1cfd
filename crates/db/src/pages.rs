//! Pages of notes by parent, and their counts, for a whole batch of keys in
//! one statement: `unnest` the keys, then one index range scan per key.
//! `User.notes`, `Tag.notes` and their `noteCount`s load through these.
//! A page can bring each note's tags in the same statement, and a user can
//! come with a page of their notes, for queries that ask for both.
//!
//! Visibility is part of every statement, so an invisible note is never
//! paged over or counted. Keys carry the viewer, so one batch can serve
//! many viewers.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, Row as _};
use tracing::instrument;

use crate::notes::{NoteRow, note_columns};
use crate::tags::TagRow;
use crate::users::UserRow;
use crate::{Error, MAX_ID, NoteId, Page, TagId, UserId, Viewer};

/// A page of one parent's notes as seen by one viewer: the key of the
/// batched per-parent loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotesOf<P> {
    /// The author or tag whose notes are listed.
    pub parent: P,
    /// Who is looking.
    pub viewer: Viewer,
    /// Which page.
    pub page: Page<NoteId>,
}

/// How many of one parent's notes one viewer may see: the key of the batched
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountOf<P> {
    /// The author or tag whose notes are counted.
    pub parent: P,
    /// Who is looking.
    pub viewer: Viewer,
}

/// A note with its tags sorted by name, read in its page's statement when
/// a query asks for both: `user { notes { tags { … } } }` then costs one
/// round trip for the notes, not two.
#[derive(Debug, Clone)]
pub struct NoteWithTags {
    /// The note.
    pub note: NoteRow,
    /// Its tags, sorted by name.
    pub tags: Vec<TagRow>,
}

impl<'r> FromRow<'r, PgRow> for NoteWithTags {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(NoteWithTags { note: NoteRow::from_row(row)?, tags: crate::tags::tags_of(row)? })
    }
}

/// A user and one page of their notes as one viewer sees them.
#[derive(Debug, Clone)]
pub struct UserWithNotes<R> {
    /// The user.
    pub user: UserRow,
    /// The page, newest first; empty when no visible note is on it.
    pub notes: Vec<R>,
}

/// A row of [`fetch_users_with_notes`]: the user, and one note of the
/// page or none.
struct UserAndNote<R> {
    user: UserRow,
    note: Option<R>,
}

impl<'r, R: FromRow<'r, PgRow>> FromRow<'r, PgRow> for UserAndNote<R> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        let user = UserRow {
            id: row.try_get("user_id")?,
            name: row.try_get("user_name")?,
            email: row.try_get("user_email")?,
            created_at: row.try_get("user_created_at")?,
        };
        let note = match row.try_get::<Option<NoteId>, _>("id")? {
            Some(_) => Some(R::from_row(row)?),
            None => None,
        };
        Ok(UserAndNote { user, note })
    }
}

/// A row tagged with the 1-based position of the key it answers (`ord`).
struct Keyed<R> {
    ord: i64,
    row: R,
}

impl<'r, R: FromRow<'r, PgRow>> FromRow<'r, PgRow> for Keyed<R> {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Keyed { ord: row.try_get("ord")?, row: R::from_row(row)? })
    }
}

/// A count (`count`), the row of the count statements.
#[derive(sqlx::FromRow)]
struct Count {
    count: i64,
}

/// Expands to the keys of a batch, `unnest`ed as `k(<parent>, viewer_id,
/// after_id, lim, ord)`: `$1` parents, `$2` viewers, `$3` exclusive upper
/// ids, `$4` limits.
macro_rules! page_keys {
    ($parent:literal) => {
        concat!(
            "unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) with ordinality as k(",
            $parent,
            ", viewer_id, after_id, lim, ord)"
        )
    };
}

/// Expands to one author's page for key `k`: an index range scan of
/// `notes (author_id, id desc)`, newest first.
macro_rules! author_page {
    () => {
        concat!(
            "select ",
            note_columns!(),
            " from notes n \
                 where n.author_id = k.author_id \
                   and (n.visibility = 'public' or n.author_id = k.viewer_id) \
                   and n.id < k.after_id \
                 order by n.id desc limit k.lim"
        )
    };
}

/// Expands to the page statement by author: each row is `ord` and the
/// note's columns, newest first within a key.
macro_rules! pages_by_authors {
    () => {
        concat!("select k.ord, n.* from ", page_keys!("author_id"), " cross join lateral (", author_page!(), ") n")
    };
}

/// Expands to the statement of users with a page of their notes: each row
/// is `ord`, the user's columns (`user_…`) and a note's columns, null for
/// a user with no note on the page (the `left join` keeps that user).
macro_rules! users_with_pages {
    () => {
        concat!(
            "select k.ord, u.id as user_id, u.name as user_name, u.email as user_email, \
                 u.created_at as user_created_at, n.* \
             from ",
            page_keys!("author_id"),
            " join users u on u.id = k.author_id left join lateral (",
            author_page!(),
            ") n on true"
        )
    };
}

/// Expands to the page statement by tag, parameters and rows as in
/// `pages_by_authors!`: a backward range scan of `note_tags (tag_id,
/// note_id)` per key.
macro_rules! pages_by_tags {
    () => {
        concat!(
            "select k.ord, n.* from ",
            page_keys!("tag_id"),
            " cross join lateral (select ",
            note_columns!(),
            " from note_tags nt join notes n on n.id = nt.note_id \
                 where nt.tag_id = k.tag_id \
                   and (n.visibility = 'public' or n.author_id = k.viewer_id) \
                   and nt.note_id < k.after_id \
                 order by nt.note_id desc limit k.lim) n"
        )
    };
}

/// Expands to a page statement (`pages_by_authors!()`, `pages_by_tags!()`
/// or `users_with_pages!()`) whose notes carry their tags sorted by name
/// (`tag_ids`, `tag_names`; empty for a note without tags). The tags of the
/// whole batch are joined once: a lateral join per note made Postgres hash
/// the `tags` table again for every note. The batch's note ids reach
/// `note_tags` as an array, so that a generic plan walks its index rather
/// than scanning it whole (see `notes::list_query`).
macro_rules! with_tags {
    ($page:ident) => {
        concat!(
            "with page as (",
            $page!(),
            ") select page.*, coalesce(g.ids, '{}') as tag_ids, coalesce(g.names, '{}') as tag_names \
             from page left join ( \
                 select nt.note_id, array_agg(t.id order by t.name) as ids, array_agg(t.name order by t.name) as names \
                 from note_tags nt join tags t on t.id = nt.tag_id \
                 where nt.note_id = any(array(select id from page)) \
                 group by nt.note_id) g on g.note_id = page.id \
             order by page.ord, page.id desc"
        )
    };
}

/// What each note of a page brings: the note alone ([`NoteRow`]) or with
/// its tags ([`NoteWithTags`]); each has its statement.
pub trait PageRow: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static {
    /// The statement of [`fetch_users_with_notes`] for this row.
    const USERS_WITH_NOTES: &'static str;
    /// Its `db.operation`, for traces and metrics.
    const USERS_WITH_NOTES_OPERATION: &'static str;
}

impl PageRow for NoteRow {
    const USERS_WITH_NOTES: &'static str = users_with_pages!();
    const USERS_WITH_NOTES_OPERATION: &'static str = "users.fetch_with_notes";
}

impl PageRow for NoteWithTags {
    const USERS_WITH_NOTES: &'static str = with_tags!(users_with_pages);
    const USERS_WITH_NOTES_OPERATION: &'static str = "users.fetch_with_tagged_notes";
}

/// For every key, that author's visible notes newest first, in one statement.
/// Returns `(index of the key, row)` pairs.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = keys.len()))]
pub async fn fetch_by_authors<'c>(
    db: impl PgExecutor<'c>,
    keys: &[NotesOf<UserId>],
) -> Result<Vec<(usize, NoteRow)>, Error> {
    let _statement = crate::measure::Statement::start("notes.fetch_by_authors");
    fetch_pages(db, pages_by_authors!(), keys).await.map(crate::counted)
}

/// [`fetch_by_authors`] with each note's tags, in the same statement.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = keys.len()))]
pub async fn fetch_with_tags_by_authors<'c>(
    db: impl PgExecutor<'c>,
    keys: &[NotesOf<UserId>],
) -> Result<Vec<(usize, NoteWithTags)>, Error> {
    let _statement = crate::measure::Statement::start("notes.fetch_with_tags_by_authors");
    fetch_pages(db, with_tags!(pages_by_authors), keys).await.map(crate::counted)
}

/// For every key, that tag's visible notes newest first, in one statement.
/// Returns `(index of the key, row)` pairs.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = keys.len()))]
pub async fn fetch_by_tags<'c>(
    db: impl PgExecutor<'c>,
    keys: &[NotesOf<TagId>],
) -> Result<Vec<(usize, NoteRow)>, Error> {
    let _statement = crate::measure::Statement::start("notes.fetch_by_tags");
    fetch_pages(db, pages_by_tags!(), keys).await.map(crate::counted)
}

/// [`fetch_by_tags`] with each note's tags, in the same statement.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = keys.len()))]
pub async fn fetch_with_tags_by_tags<'c>(
    db: impl PgExecutor<'c>,
    keys: &[NotesOf<TagId>],
) -> Result<Vec<(usize, NoteWithTags)>, Error> {
    let _statement = crate::measure::Statement::start("notes.fetch_with_tags_by_tags");
    fetch_pages(db, with_tags!(pages_by_tags), keys).await.map(crate::counted)
}

/// For every key, that user with that page of their visible notes, in one
/// statement: `user(id:) { notes { … } }` then costs one round trip, not
/// two. `R` is what each note brings (its tags or not). Returns `(index of
/// the key, user and page)` pairs; a user that does not exist is absent.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = keys.len()))]
pub async fn fetch_users_with_notes<'c, R: PageRow>(
    db: impl PgExecutor<'c>,
    keys: &[NotesOf<UserId>],
) -> Result<Vec<(usize, UserWithNotes<R>)>, Error> {
    let _statement = crate::measure::Statement::start(R::USERS_WITH_NOTES_OPERATION);
    let rows: Vec<(usize, UserAndNote<R>)> = crate::counted(fetch_pages(db, R::USERS_WITH_NOTES, keys).await?);
    let mut users: HashMap<usize, UserWithNotes<R>> = HashMap::with_capacity(keys.len());
    for (index, row) in rows {
        let entry = users.entry(index).or_insert_with(|| UserWithNotes { user: row.user, notes: Vec::new() });
        entry.notes.extend(row.note);
    }
    Ok(users.into_iter().collect())
}

/// For every key, how many of that author's notes the viewer may see.
/// Returns `(index of the key, count)` pairs.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = keys.len()))]
pub async fn count_by_authors<'c>(
    db: impl PgExecutor<'c>,
    keys: &[CountOf<UserId>],
) -> Result<Vec<(usize, i64)>, Error> {
    let _statement = crate::measure::Statement::start("notes.count_by_authors");
    const STATEMENT: &str = "select k.ord, c.count from unnest($1::bigint[], $2::bigint[]) \
             with ordinality as k(author_id, viewer_id, ord) \
         cross join lateral ( \
             select count(*) as count from notes n \
             where n.author_id = k.author_id \
               and (n.visibility = 'public' or n.author_id = k.viewer_id)) c";
    fetch_counts(db, STATEMENT, keys).await.map(crate::counted)
}

/// For every key, how many of that tag's notes the viewer may see.
/// Returns `(index of the key, count)` pairs.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = keys.len()))]
pub async fn count_by_tags<'c>(db: impl PgExecutor<'c>, keys: &[CountOf<TagId>]) -> Result<Vec<(usize, i64)>, Error> {
    let _statement = crate::measure::Statement::start("notes.count_by_tags");
    const STATEMENT: &str = "select k.ord, c.count from unnest($1::bigint[], $2::bigint[]) \
             with ordinality as k(tag_id, viewer_id, ord) \
         cross join lateral ( \
             select count(*) as count from note_tags nt join notes n on n.id = nt.note_id \
             where nt.tag_id = k.tag_id \
               and (n.visibility = 'public' or n.author_id = k.viewer_id)) c";
    fetch_counts(db, STATEMENT, keys).await.map(crate::counted)
}

/// Runs a page statement over `unnest`ed keys: `$1` parents, `$2` viewers,
/// `$3` exclusive upper ids, `$4` limits; rows carry `ord`.
async fn fetch_pages<'c, P, R>(
    db: impl PgExecutor<'c>,
    statement: &'static str,
    keys: &[NotesOf<P>],
) -> Result<Vec<(usize, R)>, Error>
where
    P: Copy + Into<i64>,
    R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let parents: Vec<i64> = keys.iter().map(|k| k.parent.into()).collect();
    let viewers: Vec<Viewer> = keys.iter().map(|k| k.viewer).collect();
    let afters: Vec<i64> = keys.iter().map(|k| k.page.after.map_or(MAX_ID, |id| id.0)).collect();
    let limits: Vec<i64> = keys.iter().map(|k| k.page.first).collect();
    let rows: Vec<Keyed<R>> =
        sqlx::query_as(statement).bind(parents).bind(viewers).bind(afters).bind(limits).fetch_all(db).await?;
    Ok(by_key(rows))
}

/// Runs a lateral count statement over `unnest`ed keys: `$1` parents, `$2`
/// viewers; rows carry `ord` and `count`.
async fn fetch_counts<'c, P: Copy + Into<i64>>(
    db: impl PgExecutor<'c>,
    statement: &'static str,
    keys: &[CountOf<P>],
) -> Result<Vec<(usize, i64)>, Error> {
    let parents: Vec<i64> = keys.iter().map(|k| k.parent.into()).collect();
    let viewers: Vec<Viewer> = keys.iter().map(|k| k.viewer).collect();
    let rows: Vec<Keyed<Count>> = sqlx::query_as(statement).bind(parents).bind(viewers).fetch_all(db).await?;
    Ok(by_key(rows).into_iter().map(|(index, count)| (index, count.count)).collect())
}

/// Pairs each keyed row with the index of its key in the caller's slice.
fn by_key<R>(rows: Vec<Keyed<R>>) -> Vec<(usize, R)> {
    rows.into_iter().filter_map(|keyed| Some((usize::try_from(keyed.ord - 1).ok()?, keyed.row))).collect()
}
