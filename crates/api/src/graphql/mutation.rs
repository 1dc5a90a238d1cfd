//! `MutationRoot`: create, update and delete notes. Only a signed-in viewer
//! writes, and only the author changes a note; a note the viewer cannot see
//! is NOT_FOUND, exactly as if it did not exist. A write is acknowledged
//! only after its transaction commits. Each write is one statement
//! (`db::notes`), and its answer is made from what that statement returned;
//! concurrent creates share one statement and one commit (`super::writes`).

use async_graphql::{Context, ID, InputObject, Object, Result};
use db::NoteId;
use db::notes::{NewNote, NotePatch, NoteRow};

use super::embedding::{embed_text, embedder};
use super::types::{Note, Visibility};
use super::writes::{RETRY_AFTER_SECS, WriteShare};
use super::{args, loaders, pool, signed_in};
use crate::error::ApiError;
use crate::response_cache::Invalidation;

/// How often an update or delete retries when the note changed between its
/// read (the statement's snapshot, or the read of an update that embeds)
/// and its write (optimistic concurrency on `updated_at`).
const UPDATE_ATTEMPTS: usize = 5;

/// Root of all writes.
pub struct MutationRoot;

/// A new note.
#[derive(InputObject)]
pub(crate) struct CreateNoteInput {
    title: String,
    body: String,
    #[graphql(default_with = "Some(Visibility::Public)")]
    visibility: Option<Visibility>,
    /// Tag names; unknown tags are created.
    #[graphql(default_with = "Some(Vec::new())")]
    tags: Option<Vec<String>>,
}

/// Changes to a note; omitted fields keep their value.
#[derive(InputObject)]
pub(crate) struct UpdateNoteInput {
    title: Option<String>,
    body: Option<String>,
    visibility: Option<Visibility>,
    /// When given, replaces the note's tags.
    tags: Option<Vec<String>>,
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Requires an authenticated viewer; the viewer becomes the author.
    async fn create_note(&self, ctx: &Context<'_>, input: CreateNoteInput) -> Result<Note> {
        let author = signed_in(ctx)?;
        let title = args::title(&input.title)?;
        let body = args::body(&input.body)?;
        let tags = args::tags(input.tags.as_deref().unwrap_or_default())?;
        let embedding = embed_text(ctx, &embed::note_text(&title, &body)).await?;
        let new = NewNote {
            author,
            title,
            body,
            visibility: input.visibility.unwrap_or(Visibility::Public).into(),
            tags,
            embedding,
            embedded_with: embedder(ctx)?.identity(),
        };
        let invalidation = invalidation(ctx)?;
        let writer = invalidation.writes.next_write();
        // Committed with the creates of other requests, in one statement
        // under the latest of their budgets (db::within).
        let share = ctx.data::<WriteShare>().map_err(|_| super::missing("the writes' share"))?;
        let queued = share.create(pool(ctx)?, loaders::budget(), new, writer).await;
        if let Err(ApiError::ServiceUnavailable) = queued {
            retry_after(ctx);
        }
        let created = queued?.map_err(|err| match err {
            db::Error::NotFound => ApiError::Unauthenticated("the token's user does not exist".into()),
            other => ApiError::from(other),
        })?;
        written(ctx, invalidation, &created.written);
        Ok(Note::from(created))
    }

    /// Only the author may update.
    async fn update_note(&self, ctx: &Context<'_>, id: ID, input: UpdateNoteInput) -> Result<Note> {
        let author = signed_in(ctx)?;
        let id: NoteId = args::parse_id(&id, "note")?;
        let mut patch = NotePatch {
            title: input.title.as_deref().map(args::title).transpose()?,
            body: input.body.as_deref().map(args::body).transpose()?,
            visibility: input.visibility.map(Into::into),
            tags: input.tags.as_deref().map(args::tags).transpose()?,
            embedding: None,
            embedded_with: None,
        };
        // Title and body feed the embedding. Given both, it is made from
        // them alone and the update is one statement; given one, the other
        // must be read first (the embedder is outside the database), and
        // the update applies only if the note is still as read.
        if let (Some(title), Some(body)) = (&patch.title, &patch.body) {
            patch.embedding = Some(embed_text(ctx, &embed::note_text(title, body)).await?);
            patch.embedded_with = Some(embedder(ctx)?.identity());
        }
        let needs_read = patch.title.is_some() != patch.body.is_some();
        for _ in 0..UPDATE_ATTEMPTS {
            let mut read_at = None;
            if needs_read {
                let current = authored_note(ctx, id, author).await?;
                let title = patch.title.as_deref().unwrap_or(&current.title);
                let body = patch.body.as_deref().unwrap_or(&current.body);
                patch.embedding = Some(embed_text(ctx, &embed::note_text(title, body)).await?);
                patch.embedded_with = Some(embedder(ctx)?.identity());
                read_at = Some(current.updated_at);
            }
            let invalidation = invalidation(ctx)?;
            let writer = invalidation.writes.next_write();
            let update =
                async |db: &mut db::PgConnection| db::notes::update(db, id, author, read_at, &patch, writer).await;
            let updated = write(ctx, update).await?.map_err(not_theirs)?;
            if let Some(changed) = updated {
                written(ctx, invalidation, &changed.written);
                return Ok(Note::from(changed));
            }
        }
        tracing::warn!(note.id = %id, "note kept changing during update");
        Err(ApiError::ServiceUnavailable.into())
    }

    /// Only the author may delete. Returns the deleted note's id.
    async fn delete_note(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let author = signed_in(ctx)?;
        let id: NoteId = args::parse_id(&id, "note")?;
        for _ in 0..UPDATE_ATTEMPTS {
            let invalidation = invalidation(ctx)?;
            let writer = invalidation.writes.next_write();
            let delete = async |db: &mut db::PgConnection| db::notes::delete(db, id, author, writer).await;
            let deleted = write(ctx, delete).await?.map_err(not_theirs)?;
            if let Some(deleted) = deleted {
                written(ctx, invalidation, &deleted.written);
                return Ok(ID(deleted.row.id.to_string()));
            }
        }
        tracing::warn!(note.id = %id, "note kept changing during delete");
        Err(ApiError::ServiceUnavailable.into())
    }
}

/// Runs one write statement in the writes' share of the pool
/// ([`WriteShare`]) and under the request's budget, like every read
/// (`db::within`). The outer error is the share's refusal (nothing was
/// sent), answered with `Retry-After`; the inner one the statement's.
async fn write<T>(
    ctx: &Context<'_>,
    statement: impl AsyncFnOnce(&mut db::PgConnection) -> Result<T, db::Error>,
) -> Result<Result<T, db::Error>, ApiError> {
    let share = ctx.data::<WriteShare>().map_err(|_| super::missing("the writes' share"))?;
    let budget = loaders::budget();
    let place = share.admit(budget).await.inspect_err(|_| retry_after(ctx))?;
    let result = db::within(pool(ctx)?, budget, statement).await;
    drop(place);
    Ok(result)
}

/// Tells a write refused for want of a place when to retry.
fn retry_after(ctx: &Context<'_>) {
    ctx.append_http_header(axum::http::header::RETRY_AFTER, RETRY_AFTER_SECS);
}

/// The errors of a write to an existing note, in the words of
/// [`authored_note`]: NOT_FOUND when it does not exist or the viewer cannot
/// see it, FORBIDDEN when it is someone else's public note.
fn not_theirs(err: db::Error) -> ApiError {
    match err {
        db::Error::NotFound => ApiError::NotFound("note not found".into()),
        db::Error::NotOwner => ApiError::Forbidden("only the author may change this note".into()),
        other => ApiError::from(other),
    }
}

/// After a committed write: drops what it changed here and counts it for
/// the read replica, then names it in the answer's read-your-writes cookie
/// so that any other server the viewer reads through waits for it
/// ([`crate::read_your_writes`]).
fn written(ctx: &Context<'_>, invalidation: &Invalidation, event: &db::notify::NoteWritten) {
    invalidation.written(event);
    ctx.append_http_header(axum::http::header::SET_COOKIE, invalidation.writes.cookie(event.writer()));
}

/// The note, if the viewer wrote it: NOT_FOUND when it does not exist or is
/// invisible to them, FORBIDDEN when it is someone else's public note.
async fn authored_note(ctx: &Context<'_>, id: NoteId, author: db::UserId) -> Result<NoteRow, ApiError> {
    let row = loaders(ctx)?.note_by_id.load_one(id).await?;
    match row {
        Some(note) if note.author_id == author => Ok(note),
        Some(note) if note.is_visible_to(Some(author)) => {
            Err(ApiError::Forbidden("only the author may change this note".into()))
        }
        _ => Err(ApiError::NotFound("note not found".into())),
    }
}

/// This process's write identity and cache, for invalidating before a
/// mutation answers.
fn invalidation<'a>(ctx: &Context<'a>) -> Result<&'a Invalidation, ApiError> {
    ctx.data::<Invalidation>().map_err(|_| super::missing("cache invalidation"))
}
