//! Reads and writes of `notes`: by id, the filtered list, and the create,
//! update and delete writes. Pages of notes by author or tag are in
//! [`crate::pages`].
//!
//! Visibility — a note is seen by everyone when public and by its author
//! always — is part of every list and count statement here, so an invisible
//! note is never fetched, counted or paged over.

use chrono::{DateTime, Utc};
use pgvector::Vector;
use sqlx::postgres::PgRow;
use sqlx::{FromRow as _, PgConnection, PgExecutor, QueryBuilder, Row as _};
use tracing::instrument;

pub use crate::ids::Visibility;
use crate::notify::{NoteWritten, Writer};
use crate::tags::TagRow;
use crate::users::UserRow;
use crate::{Error, MAX_ID, NoteId, Page, TagId, UserId, Viewer, tags};

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
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = ids.len()))]
pub async fn fetch_by_ids<'c>(db: impl PgExecutor<'c>, ids: &[NoteId]) -> Result<Vec<NoteRow>, Error> {
    let _statement = crate::measure::Statement::start("notes.fetch_by_ids");
    let rows = sqlx::query_as(concat!("select ", note_columns!(), " from notes n where n.id = any($1)"))
        .bind(ids)
        .fetch_all(db)
        .await?;
    Ok(crate::counted(rows))
}

/// Notes with the given ids and their authors, visible or not (callers
/// check visibility).
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = ids.len()))]
pub async fn fetch_with_authors_by_ids<'c>(
    db: impl PgExecutor<'c>,
    ids: &[NoteId],
) -> Result<Vec<NoteWithAuthor>, Error> {
    let _statement = crate::measure::Statement::start("notes.fetch_with_authors_by_ids");
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
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, first = page.first))]
pub async fn list<'c>(
    db: impl PgExecutor<'c>,
    viewer: Viewer,
    filter: NoteFilter<'_>,
    page: Page<NoteId>,
    including: Including,
) -> Result<Vec<ListedNote>, Error> {
    let _statement = crate::measure::Statement::start(including.operation());
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
///
/// The page's ids reach `note_tags` as an array (`= any(array(...))`),
/// not as `in (select ...)`: the connections plan generically, and a
/// generic plan does not know the page holds at most `first` notes, so it
/// hashed the page and scanned all of `note_tags` (28 ms for a page of 50
/// on the default data set, against 0.6 ms through the index with the
/// array).
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
                 where nt.note_id = any(array(select id from page)) \
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

/// The columns every write statement returns besides the note's: the
/// author's (create and update), the note's tags after the write (before
/// it, for a delete) as parallel arrays sorted by name, and the event the
/// statement notified, as sent.
macro_rules! written_columns {
    () => {
        "array(select id from after order by name) as tag_ids, \
         array(select name from after order by name) as tag_names, w.event"
    };
}

/// Builds the event of a write and sends it from inside the statement:
/// `pg_notify` is transactional, so it is delivered when the statement's
/// implicit transaction commits and dropped when any part of it fails
/// (a foreign key checked at the statement's end included). `$kind` is the
/// [`crate::notify::WriteKind`] as serialised; `$row` the alias of the written row, whose
/// `id` is null when nothing was written (then nothing is sent); `$tags`
/// and `$removed` SQL arrays of names; `$at` the write's time. The payload
/// is [`NoteWritten`]'s JSON, read back with serde on the way out.
macro_rules! notify_written {
    ($origin:literal, $write:literal, $kind:literal, $row:literal, $tags:literal, $removed:literal, $at:literal) => {
        concat!(
            " left join lateral (select json_build_object('origin', ",
            $origin,
            "::numeric, 'write', ",
            $write,
            "::numeric, 'kind', '",
            $kind,
            "', 'note', ",
            $row,
            ".id, 'author', ",
            $row,
            ".author_id, 'visibility', ",
            $row,
            ".visibility, 'tags', ",
            $tags,
            ", 'removed_tags', ",
            $removed,
            ", 'at', ",
            $at,
            ")::text as event where ",
            $row,
            ".id is not null) w on true \
             left join lateral (select pg_notify('",
            crate::notify::writes_channel!(),
            "', w.event) where w.event is not null) sent on true"
        )
    };
}

/// The CTEs that give the tags named by `$names` (a subquery of one
/// column, the names) their ids as `tag_ids (id, name)`. Tags the snapshot
/// has are read, not written: tags are never deleted, so the row a link
/// points to stays, and concurrent writers naming the same tag do not wait
/// for each other's commit on its row lock (an upsert of an existing row
/// updates it, and holds the row's lock until commit). Only names the
/// snapshot lacks are upserted, once, sorted by name, so concurrent
/// writers lock new tag rows in the same order and cannot deadlock; `do
/// update` (rather than `do nothing`) makes the upsert return the id of a
/// tag another transaction inserted after the snapshot was taken.
macro_rules! tag_ids {
    ($names:literal) => {
        concat!(
            "existing_tags as materialized ( \
                 select t.id, t.name from tags t where t.name in (",
            $names,
            ") \
             ), added_tags as ( \
                 insert into tags (name) select distinct wanted.name from (",
            $names,
            ") as wanted(name) \
                 where wanted.name not in (select name from existing_tags) order by wanted.name \
                 on conflict (name) do update set name = excluded.name returning id, name \
             ), tag_ids as ( \
                 select id, name from existing_tags union all select id, name from added_tags \
             )"
        )
    };
}

/// `createNote` for a batch of notes in one statement (group commit, see
/// [`insert_batch`]): the notes, their tags (created when new), the links
/// and one event per note, in the statement's implicit transaction, so one
/// commit serves the batch. A lone create is a batch of one.
///
/// The notes come as parallel arrays, one element per note (`$1`–`$8`,
/// `ord` their position), their embeddings as one array sliced per note
/// (`$9`, `lo`–`hi`), their tags as pairs of note position and name
/// (`$10`, `$11`, each note's names in its own sorted order). Ids are
/// drawn first so that each written row is matched to its note.
///
/// A note whose author does not exist is left out (its caller is told so:
/// no row for its position) rather than failing the batch; should the
/// author go between the check and the commit, the foreign key fails the
/// whole statement, which [`insert_batch`] then retries note by note.
/// Tags are given ids by `tag_ids!`: the snapshot's read, the others
/// upserted.
const INSERT_MANY: &str = concat!(
    "with input as materialized ( \
         select nextval('notes_id_seq') as id, i.* \
         from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::text[], $8::text[]) \
             with ordinality as i(author_id, title, body, visibility, lo, hi, embedded_with, writer, ord) \
         where exists (select from users u where u.id = i.author_id) \
     ), ins as ( \
         insert into notes as n (id, author_id, title, body, visibility, embedding, embedded_with) \
         select id, author_id, title, body, visibility::note_visibility, ($9::real[])[lo:hi]::vector, embedded_with \
         from input order by id returning ",
    note_columns!(),
    "), tagged as materialized ( \
         select i.id as note_id, t.name, t.pos \
         from unnest($10::int[], $11::text[]) with ordinality as t(ord, name, pos) join input i on i.ord = t.ord \
     ), ",
    tag_ids!("select name from tagged"),
    ", links as ( \
         insert into note_tags (note_id, tag_id) select tagged.note_id, tag_ids.id from tagged join tag_ids using (name) \
     ) \
     select i.ord, ",
    note_columns!(),
    author_columns!(),
    ", array(select a.id from tagged t join tag_ids a using (name) where t.note_id = n.id order by a.name) as tag_ids, \
     array(select a.name from tagged t join tag_ids a using (name) where t.note_id = n.id order by a.name) as tag_names, \
     w.event \
     from ins n join input i on i.id = n.id",
    // A left join: the row (and the event) must not hang on the snapshot
    // seeing the author; the foreign key, checked against the latest
    // state, is what refuses a missing one.
    " left join users u on u.id = n.author_id",
    notify_written!(
        "split_part(i.writer, '.', 1)",
        "split_part(i.writer, '.', 2)",
        "created",
        "n",
        "array(select t.name from tagged t where t.note_id = n.id order by t.pos)",
        "array[]::text[]",
        "n.updated_at"
    ),
    " order by i.ord"
);

/// `updateNote` in one statement. `cur` and `before` are the note and its
/// tags in the statement's snapshot; the update applies only while the row
/// it locks is still `cur`'s version (`xmin`, the transaction that wrote
/// it: Postgres re-checks the condition on the newest version after
/// waiting for a concurrent writer), so a write that committed after the
/// snapshot refuses this one instead of leaving `before` stale. Every
/// writer of a note's tags writes its row too (this statement), so none
/// can change the tags behind the guard. `$3`, when given, is the
/// `updated_at` the caller read the note at (to embed its unchanged half):
/// a note changed since is refused too.
///
/// Tag links: `tag_ids` names the new set; links outside it are deleted
/// and links in it inserted unless present, so the two never touch the
/// same row (a delete and an insert of one key in one statement would
/// collide on the primary key).
const UPDATE: &str = concat!(
    "with cur as materialized ( \
         select n.author_id, n.visibility, n.xmin from notes n where n.id = $1 \
     ), before as materialized ( \
         select t.id, t.name from note_tags nt join tags t on t.id = nt.tag_id where nt.note_id = $1 \
     ), upd as ( \
         update notes n set title = coalesce($4, n.title), body = coalesce($5, n.body), \
             visibility = coalesce($6::text::note_visibility, n.visibility), \
             embedding = coalesce($7::real[]::vector, n.embedding), \
             embedded_with = coalesce($8, n.embedded_with), \
             updated_at = greatest(now(), n.updated_at + interval '1 microsecond') \
         where n.id = $1 and n.author_id = $2 \
           and n.xmin = (select xmin from cur) and n.updated_at = coalesce($3, n.updated_at) \
         returning ",
    note_columns!(),
    "), ",
    tag_ids!("select unnest($9::text[]) from upd"),
    ", unlinked as ( \
         delete from note_tags nt using upd \
         where nt.note_id = upd.id and $9::text[] is not null and nt.tag_id not in (select id from tag_ids) \
     ), linked as ( \
         insert into note_tags (note_id, tag_id) select upd.id, tag_ids.id from upd, tag_ids \
         on conflict do nothing \
     ), after as ( \
         select id, name from tag_ids where $9::text[] is not null \
         union all select id, name from before where $9::text[] is null \
     ) \
     select cur.author_id as current_author, cur.visibility as current_visibility, ",
    note_columns!(),
    author_columns!(),
    ", ",
    written_columns!(),
    " from cur left join upd n on true left join users u on u.id = n.author_id",
    notify_written!(
        "$10",
        "$11",
        "updated",
        "n",
        "coalesce($9::text[], array(select name from before order by name))",
        "array(select name from before where name <> all($9::text[]) order by name)",
        "n.updated_at"
    )
);

/// `deleteNote` in one statement: the note and its tags as the snapshot
/// has them, deleted only while the row is still that version (see
/// [`UPDATE`]): a write that commits while the delete waits for the row
/// refuses the delete, which is retried, so the event never carries a
/// visibility or tags older than the note it deletes. The links go with
/// the note (`on delete cascade`).
const DELETE: &str = concat!(
    "with cur as materialized ( \
         select ",
    note_columns!(),
    ", n.xmin from notes n where n.id = $1 \
     ), after as materialized ( \
         select t.id, t.name from note_tags nt join tags t on t.id = nt.tag_id where nt.note_id = $1 \
     ), del as ( \
         delete from notes n where n.id = $1 and n.author_id = $2 and n.xmin = (select xmin from cur) \
         returning n.id, n.author_id, n.visibility \
     ) \
     select n.author_id as current_author, n.visibility as current_visibility, ",
    note_columns!(),
    ", del.id as deleted, ",
    written_columns!(),
    " from cur n left join del on true",
    notify_written!(
        "$3",
        "$4",
        "deleted",
        "del",
        "array(select name from after order by name)",
        "array[]::text[]",
        "clock_timestamp()"
    )
);

/// Stores notes and their tags in one statement, which also notifies a
/// [`NoteWritten`] for each (naming its writer). The outcome of each note,
/// in the order given: a note whose author does not exist is
/// [`Error::NotFound`] (the others are written all the same). The error
/// of the statement as a whole means nothing was written.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, batch = notes.len()))]
pub async fn insert_many(
    db: &mut PgConnection,
    notes: &[(&NewNote, Writer)],
) -> Result<Vec<Result<ChangedNote, Error>>, Error> {
    let _statement = crate::measure::Statement::start("notes.insert");
    let mut embeddings = Vec::new();
    let (mut lo, mut hi) = (Vec::with_capacity(notes.len()), Vec::with_capacity(notes.len()));
    let (mut tag_notes, mut tag_names) = (Vec::new(), Vec::new());
    for (position, (note, _)) in (1..).zip(notes) {
        lo.push(array_index(embeddings.len() + 1)?);
        embeddings.extend_from_slice(note.embedding.as_slice());
        hi.push(array_index(embeddings.len())?);
        for tag in &note.tags {
            tag_notes.push(position);
            tag_names.push(tag.as_str());
        }
    }
    let rows = sqlx::query(INSERT_MANY)
        .bind(notes.iter().map(|(note, _)| note.author).collect::<Vec<_>>())
        .bind(notes.iter().map(|(note, _)| note.title.as_str()).collect::<Vec<_>>())
        .bind(notes.iter().map(|(note, _)| note.body.as_str()).collect::<Vec<_>>())
        .bind(notes.iter().map(|(note, _)| visibility_name(note.visibility)).collect::<Vec<_>>())
        .bind(lo)
        .bind(hi)
        .bind(notes.iter().map(|(note, _)| note.embedded_with.as_str()).collect::<Vec<_>>())
        .bind(notes.iter().map(|(_, w)| format!("{}.{}", w.origin, w.write)).collect::<Vec<_>>())
        .bind(embeddings)
        .bind(tag_notes)
        .bind(tag_names)
        .fetch_all(db)
        .await?;
    let mut outcomes: Vec<Result<ChangedNote, Error>> = notes.iter().map(|_| Err(Error::NotFound)).collect();
    for row in &rows {
        let position: i64 = row.try_get("ord")?;
        let slot = usize::try_from(position - 1).ok().and_then(|i| outcomes.get_mut(i));
        *slot.ok_or(Error::Unexpected(sqlx::Error::RowNotFound))? = changed(row, true);
    }
    Ok(outcomes)
}

/// A position in a Postgres array (1-based, `int`).
fn array_index(position: usize) -> Result<i32, Error> {
    i32::try_from(position).map_err(|err| Error::Unexpected(sqlx::Error::Encode(err.into())))
}

/// Runs one batch of creates ([`insert_many`]) on a connection of `pool`
/// under `budget` ([`crate::within`]) and answers each note.
///
/// When the statement fails as a whole, nothing was written: a timeout or
/// an unavailable database is every note's answer; any other failure (one
/// note's fault, such as its author deleted mid-statement) is retried one
/// note at a time, so that each is written once or told its own error,
/// and none fails another.
pub async fn insert_batch(
    pool: &sqlx::PgPool,
    budget: Option<crate::Budget>,
    notes: &[(&NewNote, Writer)],
) -> Vec<Result<ChangedNote, Error>> {
    match crate::within(pool, budget, async |db| insert_many(db, notes).await).await {
        Ok(outcomes) => outcomes,
        Err(err @ (Error::Timeout | Error::Unavailable(_))) => notes.iter().map(|_| Err(err.again())).collect(),
        Err(err) if notes.len() == 1 => vec![Err(err)],
        Err(err) => {
            tracing::warn!(error = %err, batch = notes.len(), "a batch of creates failed; retrying each alone");
            let mut outcomes = Vec::with_capacity(notes.len());
            for note in notes {
                let alone = crate::within(pool, budget, async |db| insert_many(db, std::slice::from_ref(note)).await);
                outcomes.push(alone.await.and_then(|mut one| one.pop().unwrap_or(Err(Error::NotFound))));
            }
            outcomes
        }
    }
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

/// A note as a write left it (as it was, for a delete), with its tags and
/// its author, all from the write's own statement: what the response and
/// the write's event are made of, never staler than the write itself.
#[derive(Debug, Clone)]
pub struct ChangedNote {
    /// The row.
    pub row: NoteRow,
    /// Its author (`None` for a delete, which answers with the id alone).
    pub author: Option<UserRow>,
    /// Its tags, sorted by name.
    pub tags: Vec<TagRow>,
    /// The event the write's statement notified, as sent.
    pub written: NoteWritten,
}

/// Applies a patch to a note of `author`'s, in one statement that also
/// notifies [`NoteWritten`] with the tags after the write and those it
/// removed. `read_at`, when given, is the `updated_at` the caller read the
/// note at: a note changed since is not updated.
///
/// `Ok(None)` means the note changed or went away between the statement's
/// snapshot (or `read_at`) and its write: read again and retry. A note
/// that does not exist, or that is someone else's and private, is
/// [`Error::NotFound`]; someone else's public note is [`Error::NotOwner`].
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, note.id = %id))]
pub async fn update(
    db: &mut PgConnection,
    id: NoteId,
    author: UserId,
    read_at: Option<DateTime<Utc>>,
    patch: &NotePatch,
    writer: Writer,
) -> Result<Option<ChangedNote>, Error> {
    let _statement = crate::measure::Statement::start("notes.update");
    let row = sqlx::query(UPDATE)
        .bind(id)
        .bind(author)
        .bind(read_at)
        .bind(&patch.title)
        .bind(&patch.body)
        .bind(patch.visibility.map(visibility_name))
        .bind(patch.embedding.as_ref().map(Vector::as_slice))
        .bind(&patch.embedded_with)
        .bind(&patch.tags)
        .bind(writer.origin.to_string())
        .bind(writer.write.to_string())
        .fetch_optional(db)
        .await?;
    written_or_refused(row, author, "id", true)
}

/// Deletes a note of `author`'s and returns it as it was, in one statement
/// that also notifies [`NoteWritten`]. `Ok(None)` means it changed while
/// the delete waited for it: retry. Missing or not theirs: as [`update`].
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, note.id = %id))]
pub async fn delete(
    db: &mut PgConnection,
    id: NoteId,
    author: UserId,
    writer: Writer,
) -> Result<Option<ChangedNote>, Error> {
    let _statement = crate::measure::Statement::start("notes.delete");
    let row = sqlx::query(DELETE)
        .bind(id)
        .bind(author)
        .bind(writer.origin.to_string())
        .bind(writer.write.to_string())
        .fetch_optional(db)
        .await?;
    written_or_refused(row, author, "deleted", false)
}

/// A visibility as the `note_visibility` enum spells it. The write
/// statements take the enum and the vector as text and `real[]` and cast
/// them: bound as their own types, sqlx would look up the types' ids by
/// name on each new connection, one more round trip on the first write of
/// every connection.
fn visibility_name(visibility: Visibility) -> &'static str {
    match visibility {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

/// The outcome of an update or delete statement: no row when the note does
/// not exist; its current author and visibility when `done` (a column null
/// unless the write happened) is null.
fn written_or_refused(
    row: Option<PgRow>,
    author: UserId,
    done: &str,
    with_author: bool,
) -> Result<Option<ChangedNote>, Error> {
    let row = row.ok_or(Error::NotFound)?;
    if row.try_get::<Option<NoteId>, _>(done)?.is_some() {
        return changed(&row, with_author).map(Some);
    }
    let current: UserId = row.try_get("current_author")?;
    let visibility: Visibility = row.try_get("current_visibility")?;
    match (current == author, visibility) {
        // Theirs, but changed since the snapshot or `read_at`.
        (true, _) => Ok(None),
        (false, Visibility::Public) => Err(Error::NotOwner),
        (false, Visibility::Private) => Err(Error::NotFound),
    }
}

/// A written row of one of the write statements, as a [`ChangedNote`].
fn changed(row: &PgRow, with_author: bool) -> Result<ChangedNote, Error> {
    let note = NoteRow::from_row(row)?;
    // Null when the statement's snapshot did not see the author (a user
    // made after it began): the answer then loads the author, if asked.
    let name: Option<String> = if with_author { row.try_get("author_name")? } else { None };
    let author = match name {
        Some(name) => Some(UserRow {
            id: note.author_id,
            name,
            email: row.try_get("author_email")?,
            created_at: row.try_get("author_created_at")?,
        }),
        None => None,
    };
    let ids: Vec<TagId> = row.try_get("tag_ids")?;
    let names: Vec<String> = row.try_get("tag_names")?;
    let tags = ids.into_iter().zip(names).map(|(id, name)| TagRow { id, name }).collect();
    let event: String = row.try_get("event")?;
    let written = serde_json::from_str(&event).map_err(|err| Error::Unexpected(sqlx::Error::Decode(err.into())))?;
    Ok(ChangedNote { row: note, author, tags, written })
}
