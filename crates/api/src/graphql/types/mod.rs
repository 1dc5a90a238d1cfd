//! GraphQL object types: thin wrappers around `db` rows whose resolvers add
//! the relations, each loaded through a shared, exactly batched loader.

mod note;
mod tag;
mod user;

use std::hash::Hash;

use async_graphql::{Context, ID};
use db::notes::NoteRow;
use db::pages::{CountOf, NoteWithTags, NotesOf};
use loaders::{Batched, Loader};

use crate::error::ApiError;
use crate::graphql::incremental::memo::selects;
use crate::graphql::{args, touch, viewer, viewer_dependent};

pub(crate) use note::{Note, SearchHit, Visibility};
pub(crate) use tag::Tag;
pub(crate) use user::{User, one_notes_page};

/// A page of a parent's notes (`User.notes`, `Tag.notes`) through its
/// loaders: `with_tags` when the query asks for the notes' tags too, so
/// that they come in the page's own statement, else `plain`; `tag` as in
/// [`page_read`].
async fn notes_of<P, L, T>(
    ctx: &Context<'_>,
    plain: &Batched<NotesOf<P>, L>,
    with_tags: &Batched<NotesOf<P>, T>,
    parent: P,
    tag: impl FnOnce() -> String,
    first: Option<i32>,
    after: Option<ID>,
) -> Result<Vec<Note>, ApiError>
where
    P: Copy + Eq + Hash + Send + Sync + 'static,
    L: Loader<NotesOf<P>, Value = Vec<NoteRow>>,
    T: Loader<NotesOf<P>, Value = Vec<NoteWithTags>>,
{
    page_read(ctx, tag);
    let page = args::page(first, args::NOTES_PAGE, after.as_ref(), "note")?;
    let key = NotesOf { parent, viewer: viewer(ctx)?, page };
    Ok(if selects(ctx, "tags") { notes(with_tags.load_one(key).await?) } else { notes(plain.load_one(key).await?) })
}

/// Records that the response read a page of a parent's notes: `tag` names
/// them for the response cache, and the page depends on the viewer (it
/// may hold the viewer's own private notes).
fn page_read(ctx: &Context<'_>, tag: impl FnOnce() -> String) {
    touch(ctx, tag);
    viewer_dependent(ctx);
}

/// A loaded page as notes; an absent page is empty.
fn notes<R>(rows: Option<Vec<R>>) -> Vec<Note>
where
    Note: From<R>,
{
    rows.unwrap_or_default().into_iter().map(Note::from).collect()
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
