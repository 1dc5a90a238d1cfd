//! `MutationRoot`: create, update and delete notes. Only a signed-in viewer
//! writes, and only the author changes a note; a note the viewer cannot see
//! is NOT_FOUND, exactly as if it did not exist. A write is acknowledged
//! only after its transaction commits.

use async_graphql::{Context, ID, InputObject, Object, Result};
use db::NoteId;
use db::notes::{NewNote, NotePatch, NoteRow};

use super::embedding::{embed_text, embedder};
use super::types::{Note, Visibility};
use super::{args, loaders, pool, signed_in};
use crate::error::ApiError;
use crate::response_cache::Invalidation;

/// How often an update re-reads and retries when the note changed between
/// its read and its write (optimistic concurrency on `updated_at`).
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
        // Under the request's budget, like every read (db::within).
        let created = db::within(pool(ctx)?, loaders::budget(), async |db| db::notes::insert(db, &new, writer).await);
        let created = created.await.map_err(|err| match err {
            db::Error::NotFound => ApiError::Unauthenticated("the token's user does not exist".into()),
            other => ApiError::from(other),
        })?;
        written(ctx, invalidation, &created.written);
        Ok(Note::from(created.row))
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
        for _ in 0..UPDATE_ATTEMPTS {
            let current = authored_note(ctx, id, author).await?;
            // Title and body feed the embedding, so a change to either
            // re-embeds the note as it will read after the update (the
            // current row can differ between attempts).
            if patch.title.is_some() || patch.body.is_some() {
                let title = patch.title.as_deref().unwrap_or(&current.title);
                let body = patch.body.as_deref().unwrap_or(&current.body);
                patch.embedding = Some(embed_text(ctx, &embed::note_text(title, body)).await?);
                patch.embedded_with = Some(embedder(ctx)?.identity());
            }
            let invalidation = invalidation(ctx)?;
            let writer = invalidation.writes.next_write();
            let read_at = current.updated_at;
            let update =
                async |db: &mut db::PgConnection| db::notes::update(db, id, author, read_at, &patch, writer).await;
            let updated = db::within(pool(ctx)?, loaders::budget(), update).await.map_err(ApiError::from)?;
            if let Some(changed) = updated {
                written(ctx, invalidation, &changed.written);
                return Ok(Note::from(changed.row));
            }
        }
        tracing::warn!(note.id = %id, "note kept changing during update");
        Err(ApiError::ServiceUnavailable.into())
    }

    /// Only the author may delete. Returns the deleted note's id.
    async fn delete_note(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let author = signed_in(ctx)?;
        let id: NoteId = args::parse_id(&id, "note")?;
        // Only tells NOT_FOUND from FORBIDDEN: the event is built from what
        // the delete's own transaction read.
        authored_note(ctx, id, author).await?;
        let invalidation = invalidation(ctx)?;
        let writer = invalidation.writes.next_write();
        let delete = async |db: &mut db::PgConnection| db::notes::delete(db, id, author, writer).await;
        let deleted = db::within(pool(ctx)?, loaders::budget(), delete).await.map_err(ApiError::from)?;
        let deleted = deleted.ok_or_else(|| ApiError::NotFound("note not found".into()))?;
        written(ctx, invalidation, &deleted.written);
        Ok(ID(deleted.row.id.to_string()))
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
