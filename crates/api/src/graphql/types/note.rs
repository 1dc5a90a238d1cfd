//! `Note`, `Visibility` and `SearchHit`: a row of `notes` with its author,
//! tags and nearest neighbours.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use db::notes::NoteRow;
use db::search::{Hit, SimilarTo};

use super::{Tag, User};
use crate::error::ApiError;
use crate::graphql::{args, loaders, touch, viewer, viewer_dependent};
use crate::response_cache::tags;

/// Who may see a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum Visibility {
    /// Everyone.
    Public,
    /// The author only.
    Private,
}

impl From<Visibility> for db::notes::Visibility {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Public => db::notes::Visibility::Public,
            Visibility::Private => db::notes::Visibility::Private,
        }
    }
}

impl From<db::notes::Visibility> for Visibility {
    fn from(v: db::notes::Visibility) -> Self {
        match v {
            db::notes::Visibility::Public => Visibility::Public,
            db::notes::Visibility::Private => Visibility::Private,
        }
    }
}

/// A note, as stored.
pub(crate) struct Note(pub(crate) NoteRow);

#[Object]
impl Note {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn visibility(&self) -> Visibility {
        self.0.visibility.into()
    }

    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        touch(ctx, || tags::user(self.0.author_id));
        let row = loaders(ctx)?.user_by_id.load_one(self.0.author_id).await.map_err(ApiError::from)?;
        // The foreign key (with `on delete cascade`) makes a missing author
        // impossible unless the user was deleted mid-request.
        Ok(User(row.ok_or_else(|| ApiError::NotFound("the note's author no longer exists".into()))?))
    }

    /// Tags sorted by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        let rows = loaders(ctx)?.tags_by_note.load_one(self.0.id).await.map_err(ApiError::from)?;
        Ok(rows.unwrap_or_default().into_iter().map(Tag).collect())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Nearest visible notes by embedding (cosine), this note excluded, best first.
    // Writes and `notegraph reembed` invalidate it in the server's cache; a
    // minute bounds what caches outside the server keep.
    #[graphql(cache_control(max_age = 60))]
    async fn similar(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(args::SIMILAR_PAGE)")] first: Option<i32>,
    ) -> Result<Vec<SearchHit>> {
        touch(ctx, || tags::NOTE_SEARCH.into());
        viewer_dependent(ctx);
        let key = SimilarTo { note: self.0.id, viewer: viewer(ctx)?, first: args::first(first, args::SIMILAR_PAGE)? };
        let hits = loaders(ctx)?.similar_notes.load_one(key).await.map_err(ApiError::from)?;
        Ok(hits.unwrap_or_default().into_iter().map(SearchHit::from).collect())
    }
}

/// A search result: a note and how close it is to the query.
#[derive(SimpleObject)]
pub(crate) struct SearchHit {
    note: Note,
    /// Cosine similarity in [-1, 1]; higher is closer.
    score: f64,
}

impl From<Hit> for SearchHit {
    fn from(hit: Hit) -> Self {
        SearchHit { note: Note(hit.note), score: hit.score }
    }
}
