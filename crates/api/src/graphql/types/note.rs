//! `Note`, `Visibility` and `SearchHit`: a row of `notes` with its author,
//! tags and nearest neighbours.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use db::notes::{ListedNote, NoteRow, NoteWithAuthor};
use db::pages::NoteWithTags;
use db::search::{Hit, SimilarTo};
use db::tags::TagRow;
use db::users::UserRow;

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
#[derive(Clone)]
pub(crate) struct Note {
    row: NoteRow,
    /// Its author, when it was read with the note (`note(id:)` or the root
    /// list asking for both), so that `author` needs no statement of its
    /// own.
    author: Option<UserRow>,
    /// Its tags, when they were read with the note (a page of notes or the
    /// root list asking for them), so that `tags` needs no statement of
    /// its own.
    tags: Option<Vec<TagRow>>,
}

impl From<NoteRow> for Note {
    fn from(row: NoteRow) -> Self {
        Note { row, author: None, tags: None }
    }
}

impl From<db::notes::ChangedNote> for Note {
    /// A note as its write statement returned it, with its author (when
    /// returned) and tags: answering a mutation reads nothing more.
    fn from(changed: db::notes::ChangedNote) -> Self {
        Note { row: changed.row, author: changed.author, tags: Some(changed.tags) }
    }
}

impl Note {
    /// Only its author may see it.
    pub(crate) fn is_private(&self) -> bool {
        self.row.visibility == db::notes::Visibility::Private
    }

    /// The visibility rule for a note fetched by id.
    pub(crate) fn is_visible_to(&self, viewer: db::Viewer) -> bool {
        self.row.is_visible_to(viewer)
    }
}

impl From<NoteWithAuthor> for Note {
    fn from(joined: NoteWithAuthor) -> Self {
        Note { row: joined.note, author: Some(joined.author), tags: None }
    }
}

/// A note of the root list, with what its statement brought: the page's
/// rows carry the author and tags its selection reads, so those fields
/// issue no statement of their own.
impl From<ListedNote> for Note {
    fn from(listed: ListedNote) -> Self {
        Note { row: listed.note, author: listed.author, tags: listed.tags }
    }
}

impl From<NoteWithTags> for Note {
    fn from(joined: NoteWithTags) -> Self {
        Note { row: joined.note, author: None, tags: Some(joined.tags) }
    }
}

#[Object]
impl Note {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }

    async fn title(&self) -> &str {
        &self.row.title
    }

    async fn body(&self) -> &str {
        &self.row.body
    }

    async fn visibility(&self) -> Visibility {
        self.row.visibility.into()
    }

    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        touch(ctx, || tags::user(self.row.author_id));
        if let Some(author) = &self.author {
            return Ok(User::from(author.clone()));
        }
        let row = loaders(ctx)?.user_by_id.load_one(self.row.author_id).await.map_err(ApiError::from)?;
        // The foreign key (with `on delete cascade`) makes a missing author
        // impossible unless the user was deleted mid-request.
        Ok(User::from(row.ok_or_else(|| ApiError::NotFound("the note's author no longer exists".into()))?))
    }

    /// Tags sorted by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        if let Some(tags) = &self.tags {
            return Ok(tags.iter().cloned().map(Tag).collect());
        }
        let rows = loaders(ctx)?.tags_by_note.load_one(self.row.id).await.map_err(ApiError::from)?;
        Ok(rows.unwrap_or_default().into_iter().map(Tag).collect())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.row.updated_at
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
        let key = SimilarTo { note: self.row.id, viewer: viewer(ctx)?, first: args::first(first, args::SIMILAR_PAGE)? };
        let hits = loaders(ctx)?.similar_notes.load_one(key).await.map_err(ApiError::from)?;
        Ok(hits.unwrap_or_default().into_iter().map(SearchHit::from).collect())
    }
}

/// A search result: a note and how close it is to the query.
#[derive(SimpleObject, Clone)]
pub(crate) struct SearchHit {
    note: Note,
    /// Cosine similarity in [-1, 1]; higher is closer.
    score: f64,
}

impl From<Hit> for SearchHit {
    fn from(hit: Hit) -> Self {
        SearchHit { note: Note::from(hit.note), score: hit.score }
    }
}
