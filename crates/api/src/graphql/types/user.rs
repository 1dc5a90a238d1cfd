//! `User`: a row of `users`, its notes and their count.

use async_graphql::{Context, ID, Object, Result, Value};
use chrono::{DateTime, Utc};
use db::pages::UserWithNotes;
use db::users::UserRow;
use db::{NoteId, Page};

use super::{Note, note_count_of, notes_of, page_read};
use crate::graphql::incremental::memo;
use crate::graphql::{args, loaders, viewer, viewer_dependent};
use crate::response_cache::tags;

/// A person who writes notes.
#[derive(Clone)]
pub(crate) struct User {
    row: UserRow,
    /// One page of its notes, when it was read with the user (`user(id:)`
    /// asking for it), so that `notes` with the same arguments needs no
    /// statement of its own.
    notes: Option<(Page<NoteId>, Vec<Note>)>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User { row, notes: None }
    }
}

impl User {
    /// A user read with `page` of its notes.
    pub(crate) fn with_notes<R>(read: UserWithNotes<R>, page: Page<NoteId>) -> Self
    where
        Note: From<R>,
    {
        User { row: read.user, notes: Some((page, read.notes.into_iter().map(Note::from).collect())) }
    }
}

/// The page of notes a selection of a user asks for, when it asks for
/// exactly one (a single `notes` field whose arguments are valid), and
/// whether it asks for the notes' tags: what `user(id:)` can read in its
/// own statement. Anything else — no `notes`, several, or arguments that
/// `notes` will reject — is `None`, and `notes` loads as usual. A `notes`
/// deferred to a later part of an incremental query counts, when the part
/// running selects none ([`memo::deferred_only`]).
pub(crate) fn one_notes_page(ctx: &Context<'_>) -> Option<(Page<NoteId>, bool)> {
    let notes = ctx.look_ahead().field("notes");
    let (arguments, with_tags) = match notes.selection_fields().as_slice() {
        [field] => {
            let key = field.alias().unwrap_or(field.name());
            (field.arguments().ok()?, notes.field("tags").exists() || memo::deferred_below(ctx, key, "tags"))
        }
        [] => memo::deferred_only(ctx, "notes", "tags")?,
        _ => return None,
    };
    let (mut first, mut after) = (None, None);
    for (name, value) in arguments {
        match (name.as_str(), value) {
            (_, Value::Null) => {}
            ("first", Value::Number(n)) => first = Some(i32::try_from(n.as_i64()?).ok()?),
            ("after", Value::String(id)) => after = Some(ID(id)),
            ("after", Value::Number(id)) => after = Some(ID(id.to_string())),
            _ => return None,
        }
    }
    let page = args::page(first, args::NOTES_PAGE, after.as_ref(), "note").ok()?;
    Some((page, with_tags))
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.row.name
    }

    /// The user's email; null unless the viewer is this user.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        viewer_dependent(ctx);
        Ok((viewer(ctx)? == Some(self.row.id)).then_some(self.row.email.as_str()))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    /// This user's notes that the viewer may see, newest first.
    async fn notes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(args::NOTES_PAGE)")] first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<Note>> {
        let tag = || tags::user_notes(self.row.id);
        if let Some((page, notes)) = &self.notes
            && args::page(first, args::NOTES_PAGE, after.as_ref(), "note").ok() == Some(*page)
        {
            page_read(ctx, tag);
            return Ok(notes.clone());
        }
        let loaders = loaders(ctx)?;
        let (plain, with_tags) = (&loaders.notes_by_author, &loaders.notes_with_tags_by_author);
        Ok(notes_of(ctx, plain, with_tags, self.row.id, tag, first, after).await?)
    }

    /// How many of this user's notes the viewer may see.
    async fn note_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(note_count_of(ctx, &loaders(ctx)?.note_count_by_author, self.row.id, || tags::user_notes(self.row.id))
            .await?)
    }
}
