//! `Tag`: a row of `tags`, its visible notes and their count.

use async_graphql::{Context, ID, Object, Result};
use db::notes::{CountOf, NotesOf};
use db::tags::TagRow;

use super::Note;
use crate::error::ApiError;
use crate::graphql::{args, loaders, viewer};

/// A label on notes.
pub(crate) struct Tag(pub(crate) TagRow);

#[Object]
impl Tag {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Visible notes carrying this tag, newest first.
    async fn notes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(args::NOTES_PAGE)")] first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<Note>> {
        let key = NotesOf {
            parent: self.0.id,
            viewer: viewer(ctx)?,
            page: args::page(first, args::NOTES_PAGE, after.as_ref(), "note")?,
        };
        let rows = loaders(ctx)?.notes_by_tag.load_one(key).await.map_err(ApiError::from)?;
        Ok(rows.unwrap_or_default().into_iter().map(Note).collect())
    }

    async fn note_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let key = CountOf { parent: self.0.id, viewer: viewer(ctx)? };
        let count = loaders(ctx)?.note_count_by_tag.load_one(key).await.map_err(ApiError::from)?;
        Ok(i32::try_from(count.unwrap_or(0)).unwrap_or(i32::MAX))
    }
}
