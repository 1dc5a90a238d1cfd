//! `User`: a row of `users`, its notes and their count.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};
use db::users::UserRow;

use super::{Note, note_count_of, notes_of};
use crate::graphql::{args, loaders, viewer, viewer_dependent};
use crate::response_cache::tags;

/// A person who writes notes.
pub(crate) struct User(pub(crate) UserRow);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The user's email; null unless the viewer is this user.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        viewer_dependent(ctx);
        Ok((viewer(ctx)? == Some(self.0.id)).then_some(self.0.email.as_str()))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// This user's notes that the viewer may see, newest first.
    async fn notes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(args::NOTES_PAGE)")] first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<Note>> {
        let loaders = loaders(ctx)?;
        let (plain, with_tags) = (&loaders.notes_by_author, &loaders.notes_with_tags_by_author);
        Ok(notes_of(ctx, plain, with_tags, self.0.id, || tags::user_notes(self.0.id), first, after).await?)
    }

    /// How many of this user's notes the viewer may see.
    async fn note_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(note_count_of(ctx, &loaders(ctx)?.note_count_by_author, self.0.id, || tags::user_notes(self.0.id)).await?)
    }
}
