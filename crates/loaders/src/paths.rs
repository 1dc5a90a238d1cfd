//! The access paths: one [`Loader`] per relation, each answering a whole
//! batch of keys with one `db` statement and returning raw rows keyed by
//! key. Visibility of rows fetched by id is the resolvers' business.

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;

use db::notes::{NoteRow, NoteWithAuthor};
use db::pages::{CountOf, NoteWithTags, NotesOf, PageRow, UserWithNotes};
use db::search::{Hit, SimilarTo};
use db::tags::TagRow;
use db::users::UserRow;
use db::{NoteId, PgPool, TagId, UserId};

use crate::batch::Loader;

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
pub struct UserById(pub(crate) PgPool);

impl Loader<UserId> for UserById {
    type Value = UserRow;

    async fn load(&self, keys: &[UserId], budget: Option<db::Budget>) -> Result<HashMap<UserId, UserRow>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::users::fetch_by_ids(db, keys).await).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Users by id, each with one page of their visible notes (`R`: the notes
/// alone, or with their tags).
pub struct UserWithNotesById<R>(pub(crate) PgPool, pub(crate) PhantomData<fn() -> R>);

impl<R: PageRow + Clone + Sync> Loader<NotesOf<UserId>> for UserWithNotesById<R> {
    type Value = UserWithNotes<R>;

    async fn load(
        &self,
        keys: &[NotesOf<UserId>],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<NotesOf<UserId>, UserWithNotes<R>>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::pages::fetch_users_with_notes(db, keys).await).await?;
        Ok(rows.into_iter().filter_map(|(index, user)| Some((*keys.get(index)?, user))).collect())
    }
}

/// Notes by id, visible or not.
pub struct NoteById(pub(crate) PgPool);

impl Loader<NoteId> for NoteById {
    type Value = NoteRow;
    async fn load(&self, keys: &[NoteId], budget: Option<db::Budget>) -> Result<HashMap<NoteId, NoteRow>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::notes::fetch_by_ids(db, keys).await).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Notes by id with their authors, visible or not.
pub struct NoteWithAuthorById(pub(crate) PgPool);

impl Loader<NoteId> for NoteWithAuthorById {
    type Value = NoteWithAuthor;
    async fn load(
        &self,
        keys: &[NoteId],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<NoteId, NoteWithAuthor>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::notes::fetch_with_authors_by_ids(db, keys).await).await?;
        Ok(rows.into_iter().map(|row| (row.note.id, row)).collect())
    }
}

/// The tags of each note, sorted by name; a note without tags is absent.
pub struct TagsByNote(pub(crate) PgPool);

impl Loader<NoteId> for TagsByNote {
    type Value = Vec<TagRow>;
    async fn load(
        &self,
        keys: &[NoteId],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<NoteId, Vec<TagRow>>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::tags::fetch_by_note_ids(db, keys).await).await?;
        let mut grouped: HashMap<NoteId, Vec<TagRow>> = HashMap::with_capacity(keys.len());
        for row in rows {
            grouped.entry(row.note_id).or_default().push(row.tag);
        }
        Ok(grouped)
    }
}

/// A page of each author's visible notes; an empty page is absent.
pub struct NotesByAuthor(pub(crate) PgPool);

impl Loader<NotesOf<UserId>> for NotesByAuthor {
    type Value = Vec<NoteRow>;
    async fn load(
        &self,
        keys: &[NotesOf<UserId>],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<NotesOf<UserId>, Vec<NoteRow>>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::pages::fetch_by_authors(db, keys).await).await?;
        Ok(group_by_key(keys, rows))
    }
}

/// A page of each tag's visible notes; an empty page is absent.
pub struct NotesByTag(pub(crate) PgPool);

impl Loader<NotesOf<TagId>> for NotesByTag {
    type Value = Vec<NoteRow>;
    async fn load(
        &self,
        keys: &[NotesOf<TagId>],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<NotesOf<TagId>, Vec<NoteRow>>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::pages::fetch_by_tags(db, keys).await).await?;
        Ok(group_by_key(keys, rows))
    }
}

/// A page of each author's visible notes with their tags; an empty page is
/// absent.
pub struct NotesWithTagsByAuthor(pub(crate) PgPool);

impl Loader<NotesOf<UserId>> for NotesWithTagsByAuthor {
    type Value = Vec<NoteWithTags>;
    async fn load(
        &self,
        keys: &[NotesOf<UserId>],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<NotesOf<UserId>, Vec<NoteWithTags>>, db::Error> {
        let rows =
            db::within(&self.0, budget, async |db| db::pages::fetch_with_tags_by_authors(db, keys).await).await?;
        Ok(group_by_key(keys, rows))
    }
}

/// A page of each tag's visible notes with their tags; an empty page is
/// absent.
pub struct NotesWithTagsByTag(pub(crate) PgPool);

impl Loader<NotesOf<TagId>> for NotesWithTagsByTag {
    type Value = Vec<NoteWithTags>;
    async fn load(
        &self,
        keys: &[NotesOf<TagId>],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<NotesOf<TagId>, Vec<NoteWithTags>>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::pages::fetch_with_tags_by_tags(db, keys).await).await?;
        Ok(group_by_key(keys, rows))
    }
}

/// How many of each author's notes the viewer may see.
pub struct NoteCountByAuthor(pub(crate) PgPool);

impl Loader<CountOf<UserId>> for NoteCountByAuthor {
    type Value = i64;
    async fn load(
        &self,
        keys: &[CountOf<UserId>],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<CountOf<UserId>, i64>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::pages::count_by_authors(db, keys).await).await?;
        Ok(counts_by_key(keys, rows))
    }
}

/// How many of each tag's notes the viewer may see.
pub struct NoteCountByTag(pub(crate) PgPool);

impl Loader<CountOf<TagId>> for NoteCountByTag {
    type Value = i64;
    async fn load(
        &self,
        keys: &[CountOf<TagId>],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<CountOf<TagId>, i64>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::pages::count_by_tags(db, keys).await).await?;
        Ok(counts_by_key(keys, rows))
    }
}

/// Each note's nearest visible neighbours, best first; none is absent.
pub struct SimilarNotes(pub(crate) PgPool);

impl Loader<SimilarTo> for SimilarNotes {
    type Value = Vec<Hit>;
    async fn load(
        &self,
        keys: &[SimilarTo],
        budget: Option<db::Budget>,
    ) -> Result<HashMap<SimilarTo, Vec<Hit>>, db::Error> {
        let rows = db::within(&self.0, budget, async |db| db::search::similar_to(db, keys).await).await?;
        Ok(group_by_key(keys, rows))
    }
}
