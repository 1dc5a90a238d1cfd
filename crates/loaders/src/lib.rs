//! Batched loading over the `db` crate: one loader per access path, shared
//! by every request, each answering a whole batch of keys with one
//! statement — and a batch that is dispatched exactly when the requests
//! feeding it have nothing more to add, so a query's statement count is
//! the same every time (docs/batching.md).
//!
//! Layout:
//! - [`tracker`]: decides when a request is idle (wraps its execution);
//! - [`batch`]: [`Batched`], the loader that holds keys until then;
//! - [`memo`]: what one request loaded, kept across an incremental
//!   query's parts;
//! - [`paths`]: the access paths ([`UserById`], [`TagsByNote`], …).
//!
//! The api crate runs every execution and subscription inside [`Tracked`].
//!
//! Nothing here caches across requests: results go to the resolvers that
//! asked for them (and, for an incremental query, to its own memo).
//! Loaders return raw rows; resolvers apply the visibility of rows fetched
//! by id.

mod batch;
mod memo;
mod paths;
mod tracker;

use std::sync::Arc;
use std::time::Duration;

use db::pages::{CountOf, NotesOf};
use db::search::SimilarTo;
use db::{NoteId, PgPool, TagId, UserId};

pub use batch::{BatchObserver, Batched, Loader, observe_batches};
pub use paths::{
    NoteById, NoteCountByAuthor, NoteCountByTag, NoteWithAuthorById, NotesByAuthor, NotesByTag, NotesWithTagsByAuthor,
    NotesWithTagsByTag, SimilarNotes, TagsByNote, UserById, UserWithNotesById, UserWithTaggedNotesById,
};
pub use tracker::{Tracked, budget};

/// Why a load failed, as every resolver waiting on the batch sees it
/// (`Clone`, since one failure answers many resolvers).
#[derive(Debug, Clone)]
pub enum LoadError {
    /// The batch's statement failed; the batch logged it once.
    Db(Arc<db::Error>),
    /// The batch ended without an answer: its statement panicked (logged
    /// once by the batch), or the batch was dropped before it answered (no
    /// runtime was left to run it).
    Lost,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Db(err) => err.fmt(f),
            LoadError::Lost => f.write_str("the batch ended without an answer"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Every loader the schema uses, built once and shared across requests.
pub struct Loaders {
    /// `Note.author`, `me`, `user(id:)`.
    pub user_by_id: Batched<UserId, UserById>,
    /// `user(id:)` when one page of its notes is asked for too.
    pub user_with_notes_by_id: Batched<NotesOf<UserId>, UserWithNotesById>,
    /// `user(id:)` when one page of its notes and their tags are asked for too.
    pub user_with_tagged_notes_by_id: Batched<NotesOf<UserId>, UserWithTaggedNotesById>,
    /// `note(id:)`, note events.
    pub note_by_id: Batched<NoteId, NoteById>,
    /// `note(id:)` when its author is asked for too.
    pub note_with_author_by_id: Batched<NoteId, NoteWithAuthorById>,
    /// `Note.tags`.
    pub tags_by_note: Batched<NoteId, TagsByNote>,
    /// `User.notes`.
    pub notes_by_author: Batched<NotesOf<UserId>, NotesByAuthor>,
    /// `Tag.notes`.
    pub notes_by_tag: Batched<NotesOf<TagId>, NotesByTag>,
    /// `User.notes` when its notes' tags are asked for too.
    pub notes_with_tags_by_author: Batched<NotesOf<UserId>, NotesWithTagsByAuthor>,
    /// `Tag.notes` when its notes' tags are asked for too.
    pub notes_with_tags_by_tag: Batched<NotesOf<TagId>, NotesWithTagsByTag>,
    /// `User.noteCount`.
    pub note_count_by_author: Batched<CountOf<UserId>, NoteCountByAuthor>,
    /// `Tag.noteCount`.
    pub note_count_by_tag: Batched<CountOf<TagId>, NoteCountByTag>,
    /// `Note.similar`.
    pub similar_notes: Batched<SimilarTo, SimilarNotes>,
}

impl Loaders {
    /// Builds every loader over `pool`. A batch is dispatched when the
    /// requests feeding it are idle, plus `delay` (0 by default: see
    /// docs/batching.md for when more helps).
    pub fn new(pool: &PgPool, delay: Duration) -> Self {
        Self {
            user_by_id: Batched::new(UserById(pool.clone()), "user_by_id", delay),
            user_with_notes_by_id: Batched::new(UserWithNotesById(pool.clone()), "user_with_notes_by_id", delay),
            user_with_tagged_notes_by_id: Batched::new(
                UserWithTaggedNotesById(pool.clone()),
                "user_with_tagged_notes_by_id",
                delay,
            ),
            note_by_id: Batched::new(NoteById(pool.clone()), "note_by_id", delay),
            note_with_author_by_id: Batched::new(NoteWithAuthorById(pool.clone()), "note_with_author_by_id", delay),
            tags_by_note: Batched::new(TagsByNote(pool.clone()), "tags_by_note", delay),
            notes_by_author: Batched::new(NotesByAuthor(pool.clone()), "notes_by_author", delay),
            notes_by_tag: Batched::new(NotesByTag(pool.clone()), "notes_by_tag", delay),
            notes_with_tags_by_author: Batched::new(
                NotesWithTagsByAuthor(pool.clone()),
                "notes_with_tags_by_author",
                delay,
            ),
            notes_with_tags_by_tag: Batched::new(NotesWithTagsByTag(pool.clone()), "notes_with_tags_by_tag", delay),
            note_count_by_author: Batched::new(NoteCountByAuthor(pool.clone()), "note_count_by_author", delay),
            note_count_by_tag: Batched::new(NoteCountByTag(pool.clone()), "note_count_by_tag", delay),
            similar_notes: Batched::new(SimilarNotes(pool.clone()), "similar_notes", delay),
        }
    }
}
