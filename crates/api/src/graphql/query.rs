//! `QueryRoot`: the entry points of reads. Root lists call `db` directly
//! (one statement each); everything below them goes through loaders.

use async_graphql::{Context, ID, Object, Result};
use db::UserId;
use db::notes::{Including, NoteFilter};
use db::pages::NotesOf;

use super::embedding::{embed_text, embedder, text_ef_search};
use super::incremental::memo::{self, selects};
use super::types::{Note, SearchHit, Tag, User, one_notes_page};
use super::{args, loaders, pool, touch, viewer, viewer_dependent};
use crate::error::ApiError;
use crate::response_cache::tags;

/// Root of all reads.
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The authenticated viewer, or null when anonymous.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        memo::root(ctx, async move {
            viewer_dependent(ctx);
            let Some(id) = viewer(ctx)? else { return Ok(None) };
            Ok(user_by_id(ctx, id).await?)
        })
        .await
    }

    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        memo::root(ctx, async move { Ok(user_by_id(ctx, args::parse_id(&id, "user")?).await?) }).await
    }

    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(args::USERS_PAGE)")] first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<User>> {
        memo::root_list(ctx, async move {
            let page = args::page(first, args::USERS_PAGE, after.as_ref(), "user")?;
            touch(ctx, || tags::USER_LIST.into());
            let rows = db::within(pool(ctx)?, loaders::budget(), async |db| db::users::list(db, page).await)
                .await
                .map_err(ApiError::from)?;
            Ok(rows.into_iter().map(User::from).collect())
        })
        .await
    }

    async fn note(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Note>> {
        memo::root(ctx, async move {
            let id = args::parse_id(&id, "note")?;
            let viewer = viewer(ctx)?;
            touch(ctx, || tags::note(id));
            let loaders = loaders(ctx)?;
            // Asked for its author too: both in one statement.
            let note = if selects(ctx, "author") {
                loaders.note_with_author_by_id.load_one(id).await.map_err(ApiError::from)?.map(Note::from)
            } else {
                loaders.note_by_id.load_one(id).await.map_err(ApiError::from)?.map(Note::from)
            };
            // A private note is the author's and null to everyone else.
            if note.as_ref().is_some_and(|note| note.is_private()) {
                viewer_dependent(ctx);
            }
            Ok(note.filter(|note| note.is_visible_to(viewer)))
        })
        .await
    }

    async fn notes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(args::NOTES_PAGE)")] first: Option<i32>,
        after: Option<ID>,
        tag: Option<String>,
        author_id: Option<ID>,
    ) -> Result<Vec<Note>> {
        memo::root_list(ctx, async move {
            let page = args::page(first, args::NOTES_PAGE, after.as_ref(), "note")?;
            let author = author_id.as_ref().map(|id| args::parse_id(id, "user")).transpose()?;
            let tag = tag.as_deref().map(args::tag_lookup).transpose()?;
            let filter = NoteFilter { author, tag: tag.as_deref() };
            // Any list of notes may hold the viewer's own private notes.
            touch(ctx, || tags::NOTE_LIST.into());
            viewer_dependent(ctx);
            let (viewer, pool, budget) = (viewer(ctx)?, pool(ctx)?, loaders::budget());
            // Asked for their authors or tags too: in the same statement, so
            // the page with both is one round trip. The rows travel with each
            // `Note` (loaders do not cache), so `author` and `tags` below issue
            // nothing; what lies under them (`author { notes }`) batches
            // through its loaders as before.
            let including = Including { author: selects(ctx, "author"), tags: selects(ctx, "tags") };
            let rows = db::within(pool, budget, async |db| db::notes::list(db, viewer, filter, page, including).await);
            let notes = rows.await.map_err(ApiError::from)?.into_iter().map(Note::from).collect();
            Ok(notes)
        })
        .await
    }

    /// The tag with this name, or null when no note the viewer may see
    /// carries it: a tag only invisible notes carry does not exist for the
    /// viewer.
    async fn tag(&self, ctx: &Context<'_>, name: String) -> Result<Option<Tag>> {
        memo::root(ctx, async move {
            let name = args::tag_lookup(&name)?;
            touch(ctx, || tags::tag_notes(&name));
            viewer_dependent(ctx);
            let row = {
                let viewer = viewer(ctx)?;
                db::within(pool(ctx)?, loaders::budget(), async |db| db::tags::fetch_by_name(db, viewer, &name).await)
                    .await
            }
            .map_err(ApiError::from)?;
            Ok(row.map(Tag))
        })
        .await
    }

    /// Tags that at least one note the viewer may see carries, oldest
    /// first; the others do not exist for the viewer.
    async fn tags(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(args::TAGS_PAGE)")] first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<Tag>> {
        memo::root_list(ctx, async move {
            let page = args::page(first, args::TAGS_PAGE, after.as_ref(), "tag")?;
            touch(ctx, || tags::TAG_LIST.into());
            viewer_dependent(ctx);
            let rows = {
                let viewer = viewer(ctx)?;
                db::within(pool(ctx)?, loaders::budget(), async |db| db::tags::list(db, viewer, page).await).await
            }
            .map_err(ApiError::from)?;
            Ok(rows.into_iter().map(Tag).collect())
        })
        .await
    }

    /// Semantic search over visible notes. Give exactly one of `text` (embedded by
    /// the server's configured embedder) or `vector` (its length must equal the
    /// configured dimension, 384 by default). Optional `tag` filters the hits
    /// without losing recall.
    // As `Note.similar`: invalidated by writes and `notegraph reembed`; a
    // minute bounds what caches outside the server keep.
    #[graphql(cache_control(max_age = 60))]
    async fn search_notes(
        &self,
        ctx: &Context<'_>,
        text: Option<String>,
        vector: Option<Vec<f32>>,
        #[graphql(default_with = "Some(args::SEARCH_PAGE)")] first: Option<i32>,
        tag: Option<String>,
    ) -> Result<Vec<SearchHit>> {
        memo::root_list(ctx, async move {
            let first = args::first(first, args::SEARCH_PAGE)?;
            touch(ctx, || tags::NOTE_SEARCH.into());
            viewer_dependent(ctx);
            let (query, ef_search) = match (text, vector) {
                (Some(text), None) => {
                    let text = text.trim();
                    if text.is_empty() || text.chars().count() > args::MAX_SEARCH_TEXT_CHARS {
                        return Err(ApiError::bad_input(format!(
                            "`text` must be 1 to {} characters",
                            args::MAX_SEARCH_TEXT_CHARS
                        ))
                        .into());
                    }
                    (embed_text(ctx, text).await?, text_ef_search(ctx)?)
                }
                (None, Some(vector)) => (query_vector(ctx, vector)?, None),
                _ => return Err(ApiError::bad_input("give exactly one of `text` or `vector`").into()),
            };
            let tag = tag.as_deref().map(args::tag_lookup).transpose()?;
            let viewer = viewer(ctx)?;
            // The embedding call above may have spent much of the budget.
            let tag = tag.as_deref();
            let search = async |db: &mut db::PgConnection| match ef_search {
                Some(ef) => db::search::by_embedding_with_ef(db, ef, &query, viewer, first, tag).await,
                None => db::search::by_embedding(db, &query, viewer, first, tag).await,
            };
            let hits = db::within(pool(ctx)?, loaders::budget(), search).await.map_err(ApiError::from)?;
            Ok(hits.into_iter().map(SearchHit::from).collect())
        })
        .await
    }
}

/// Checks a client-given query vector: the configured dimension, finite,
/// and not all zeros (cosine distance to a zero vector is undefined).
fn query_vector(ctx: &Context<'_>, vector: Vec<f32>) -> Result<pgvector::Vector, ApiError> {
    let dimension = embedder(ctx)?.dimension();
    if vector.len() != dimension {
        return Err(ApiError::bad_input(format!("`vector` must have {dimension} elements, got {}", vector.len())));
    }
    if vector.iter().any(|x| !x.is_finite()) || vector.iter().all(|x| *x == 0.0) {
        return Err(ApiError::bad_input("`vector` must be finite and not all zeros"));
    }
    Ok(pgvector::Vector::from(vector))
}

/// A user by id (`me`, `user(id:)`). Asked for one page of its notes too,
/// the user and that page come in one statement, with the notes' tags when
/// they are asked for.
async fn user_by_id(ctx: &Context<'_>, id: UserId) -> Result<Option<User>, ApiError> {
    touch(ctx, || tags::user(id));
    let loaders = loaders(ctx)?;
    if let Some((page, with_tags)) = one_notes_page(ctx) {
        let key = NotesOf { parent: id, viewer: viewer(ctx)?, page };
        let user = match with_tags {
            true => loaders.user_with_tagged_notes_by_id.load_one(key).await?.map(|u| User::with_notes(u, page)),
            false => loaders.user_with_notes_by_id.load_one(key).await?.map(|u| User::with_notes(u, page)),
        };
        return Ok(user);
    }
    Ok(loaders.user_by_id.load_one(id).await?.map(User::from))
}
