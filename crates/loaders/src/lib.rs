//! async-graphql DataLoaders over the `db` crate: one loader per access
//! path, each answering a whole batch of keys with one statement.
//!
//! The loaders cache nothing (`DataLoader::new` uses `NoCache`), so one set
//! is built at start-up and shared by every request: keys that concurrent
//! requests ask for within the batch delay are loaded together. Keys that
//! depend on who is asking carry the viewer, so sharing never mixes what
//! two viewers may see. Loaders return raw rows; resolvers apply the
//! visibility of rows fetched by id.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, Loader};
use db::notes::{CountOf, NoteRow, NotesOf};
use db::search::{Hit, SimilarTo};
use db::tags::TagRow;
use db::users::UserRow;
use db::{NoteId, PgPool, TagId, UserId};

/// What a failed batch reports to every waiting resolver (`Arc` because a
/// loader error must be `Clone`).
pub type LoadError = Arc<db::Error>;

/// Every loader the schema uses, built once and shared across requests.
pub struct Loaders {
    /// `Note.author`, `me`, `user(id:)`.
    pub user_by_id: DataLoader<UserById>,
    /// `note(id:)`, note events.
    pub note_by_id: DataLoader<NoteById>,
    /// `Note.tags`.
    pub tags_by_note: DataLoader<TagsByNote>,
    /// `User.notes`.
    pub notes_by_author: DataLoader<NotesByAuthor>,
    /// `Tag.notes`.
    pub notes_by_tag: DataLoader<NotesByTag>,
    /// `User.noteCount`.
    pub note_count_by_author: DataLoader<NoteCountByAuthor>,
    /// `Tag.noteCount`.
    pub note_count_by_tag: DataLoader<NoteCountByTag>,
    /// `Note.similar`.
    pub similar_notes: DataLoader<SimilarNotes>,
}

/// How many times a batch yields to the scheduler before it takes its keys.
///
/// async-graphql resolves a list through `FuturesUnordered`, which polls at
/// most 32 items and then reschedules itself: the keys of a 100-item list
/// arrive over four polls of the request task. A timer cannot promise those
/// polls happen before it fires (under load it often did not, and one list
/// became two statements). Each `yield_now` defers the batch until the
/// worker has run the tasks already queued — the request task among them —
/// so the batch is taken once the request has nothing left to add: the
/// end-of-tick rule of JavaScript's DataLoader. Eight yields cover
/// 8 × 32 items per list level; each costs microseconds when idle.
pub const BATCH_YIELDS: usize = 8;

/// Spawns a batch after [`BATCH_YIELDS`] yields (see there).
fn spawn_after_yields(batch: futures::future::BoxFuture<'static, ()>) {
    tokio::spawn(async move {
        for _ in 0..BATCH_YIELDS {
            tokio::task::yield_now().await;
        }
        batch.await;
    });
}

impl Loaders {
    /// Builds every loader over `pool`. A batch is taken once the tasks
    /// queued before it have run (see [`BATCH_YIELDS`]) and then `delay`
    /// more has passed, which lets concurrent requests share it.
    pub fn new(pool: &PgPool, delay: Duration) -> Self {
        fn shared<T: Loader<K>, K: Send + Sync + Hash + Eq + Clone + 'static>(
            loader: T,
            delay: Duration,
        ) -> DataLoader<T> {
            DataLoader::new(loader, spawn_after_yields).delay(delay)
        }
        Self {
            user_by_id: shared(UserById(pool.clone()), delay),
            note_by_id: shared(NoteById(pool.clone()), delay),
            tags_by_note: shared(TagsByNote(pool.clone()), delay),
            notes_by_author: shared(NotesByAuthor(pool.clone()), delay),
            notes_by_tag: shared(NotesByTag(pool.clone()), delay),
            note_count_by_author: shared(NoteCountByAuthor(pool.clone()), delay),
            note_count_by_tag: shared(NoteCountByTag(pool.clone()), delay),
            similar_notes: shared(SimilarNotes(pool.clone()), delay),
        }
    }
}

/// Groups `(index of key, value)` pairs from a keyed batch statement into
/// one list per key, keeping the statement's order within each list.
fn group_by_key<K: Clone + Eq + Hash, V>(keys: &[K], rows: Vec<(usize, V)>) -> HashMap<K, Vec<V>> {
    let mut grouped: HashMap<K, Vec<V>> = HashMap::with_capacity(keys.len());
    for (index, value) in rows {
        if let Some(key) = keys.get(index) {
            grouped.entry(key.clone()).or_default().push(value);
        }
    }
    grouped
}

/// Pairs each count with its key.
fn counts_by_key<K: Clone + Eq + Hash>(keys: &[K], rows: Vec<(usize, i64)>) -> HashMap<K, i64> {
    rows.into_iter().filter_map(|(index, count)| Some((keys.get(index)?.clone(), count))).collect()
}

/// Users by id.
pub struct UserById(PgPool);

impl Loader<UserId> for UserById {
    type Value = UserRow;
    type Error = LoadError;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, UserRow>, LoadError> {
        let rows = db::users::fetch_by_ids(&self.0, keys).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Notes by id, visible or not.
pub struct NoteById(PgPool);

impl Loader<NoteId> for NoteById {
    type Value = NoteRow;
    type Error = LoadError;

    async fn load(&self, keys: &[NoteId]) -> Result<HashMap<NoteId, NoteRow>, LoadError> {
        let rows = db::notes::fetch_by_ids(&self.0, keys).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// The tags of each note, sorted by name; a note without tags is absent.
pub struct TagsByNote(PgPool);

impl Loader<NoteId> for TagsByNote {
    type Value = Vec<TagRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[NoteId]) -> Result<HashMap<NoteId, Vec<TagRow>>, LoadError> {
        let rows = db::tags::fetch_by_note_ids(&self.0, keys).await?;
        let mut grouped: HashMap<NoteId, Vec<TagRow>> = HashMap::with_capacity(keys.len());
        for row in rows {
            grouped.entry(row.note_id).or_default().push(row.tag);
        }
        Ok(grouped)
    }
}

/// A page of each author's visible notes; an empty page is absent.
pub struct NotesByAuthor(PgPool);

impl Loader<NotesOf<UserId>> for NotesByAuthor {
    type Value = Vec<NoteRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[NotesOf<UserId>]) -> Result<HashMap<NotesOf<UserId>, Vec<NoteRow>>, LoadError> {
        let rows = db::notes::fetch_by_authors(&self.0, keys).await?;
        Ok(group_by_key(keys, rows))
    }
}

/// A page of each tag's visible notes; an empty page is absent.
pub struct NotesByTag(PgPool);

impl Loader<NotesOf<TagId>> for NotesByTag {
    type Value = Vec<NoteRow>;
    type Error = LoadError;

    async fn load(&self, keys: &[NotesOf<TagId>]) -> Result<HashMap<NotesOf<TagId>, Vec<NoteRow>>, LoadError> {
        let rows = db::notes::fetch_by_tags(&self.0, keys).await?;
        Ok(group_by_key(keys, rows))
    }
}

/// How many of each author's notes the viewer may see.
pub struct NoteCountByAuthor(PgPool);

impl Loader<CountOf<UserId>> for NoteCountByAuthor {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[CountOf<UserId>]) -> Result<HashMap<CountOf<UserId>, i64>, LoadError> {
        let rows = db::notes::count_by_authors(&self.0, keys).await?;
        Ok(counts_by_key(keys, rows))
    }
}

/// How many of each tag's notes the viewer may see.
pub struct NoteCountByTag(PgPool);

impl Loader<CountOf<TagId>> for NoteCountByTag {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[CountOf<TagId>]) -> Result<HashMap<CountOf<TagId>, i64>, LoadError> {
        let rows = db::notes::count_by_tags(&self.0, keys).await?;
        Ok(counts_by_key(keys, rows))
    }
}

/// Each note's nearest visible neighbours, best first; none is absent.
pub struct SimilarNotes(PgPool);

impl Loader<SimilarTo> for SimilarNotes {
    type Value = Vec<Hit>;
    type Error = LoadError;

    async fn load(&self, keys: &[SimilarTo]) -> Result<HashMap<SimilarTo, Vec<Hit>>, LoadError> {
        let rows = db::search::similar_to(&self.0, keys).await?;
        Ok(group_by_key(keys, rows))
    }
}
