//! GraphQL object types: thin wrappers around `db` rows whose resolvers add
//! the relations, each loaded through a shared, exactly batched loader.

mod note;
mod tag;
mod user;

use std::hash::Hash;

use async_graphql::{Context, ID};
use db::notes::{CountOf, NoteRow, NotesOf};
use loaders::{Batched, Loader};

use crate::error::ApiError;
use crate::graphql::{args, touch, viewer, viewer_dependent};

pub(crate) use note::{Note, SearchHit, Visibility};
pub(crate) use tag::Tag;
pub(crate) use user::User;

/// A page of a parent's notes (`User.notes`, `Tag.notes`) through its loader.
/// `tag` names the parent's notes for the response cache; the page may
/// hold the viewer's own private notes, so it depends on the viewer.
async fn notes_of<P, L>(
    ctx: &Context<'_>,
    loader: &Batched<NotesOf<P>, L>,
    parent: P,
    tag: impl FnOnce() -> String,
    first: Option<i32>,
    after: Option<ID>,
) -> Result<Vec<Note>, ApiError>
where
    P: Copy + Eq + Hash + Send + Sync + 'static,
    L: Loader<NotesOf<P>, Value = Vec<NoteRow>>,
{
    touch(ctx, tag);
    viewer_dependent(ctx);
    let page = args::page(first, args::NOTES_PAGE, after.as_ref(), "note")?;
    let rows = loader.load_one(NotesOf { parent, viewer: viewer(ctx)?, page }).await?;
    Ok(rows.unwrap_or_default().into_iter().map(Note::from).collect())
}

/// How many of a parent's notes the viewer may see (`User.noteCount`,
/// `Tag.noteCount`), through its loader; `tag` as in [`notes_of`].
async fn note_count_of<P, L>(
    ctx: &Context<'_>,
    loader: &Batched<CountOf<P>, L>,
    parent: P,
    tag: impl FnOnce() -> String,
) -> Result<i32, ApiError>
where
    P: Copy + Eq + Hash + Send + Sync + 'static,
    L: Loader<CountOf<P>, Value = i64>,
{
    touch(ctx, tag);
    viewer_dependent(ctx);
    let count = loader.load_one(CountOf { parent, viewer: viewer(ctx)? }).await?;
    Ok(i32::try_from(count.unwrap_or(0)).unwrap_or(i32::MAX))
}
