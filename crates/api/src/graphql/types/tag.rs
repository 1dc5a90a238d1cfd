//! `Tag`: a row of `tags`, its visible notes and their count.

use async_graphql::{Context, ID, Object, Result};
use db::tags::TagRow;

use super::{Note, note_count_of, notes_of};
use crate::graphql::{args, loaders};
use crate::response_cache::tags;

/// A label on notes. It exists for a viewer while a note the viewer may see
/// carries it.
#[derive(Clone)]
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
        let loaders = loaders(ctx)?;
        let (plain, with_tags) = (&loaders.notes_by_tag, &loaders.notes_with_tags_by_tag);
        Ok(notes_of(ctx, plain, with_tags, self.0.id, || tags::tag_notes(&self.0.name), first, after).await?)
    }

    async fn note_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(note_count_of(ctx, &loaders(ctx)?.note_count_by_tag, self.0.id, || tags::tag_notes(&self.0.name)).await?)
    }
}
