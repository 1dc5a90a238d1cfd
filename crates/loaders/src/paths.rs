//! The access paths: one [`Loader`] per relation, each answering a whole
//! batch of keys with one `db` statement and returning raw rows keyed by
//! key. Visibility of rows fetched by id is the resolvers' business.
//!
//! Every path has the same shape (run one `db` function over the batch's
//! keys under the batch's budget, then key its rows), so they come from
//! one table, [`paths!`]: a path is one row of it. The rows differ only in
//! how a statement's rows become values by key:
//! - `keyed by (f)`: one row per key, `f` reads the key off the row;
//! - `grouped by (f)`: many rows per key, `f` splits a row into its key
//!   and its value;
//! - `one per key` / `many per key`: the statement returns each row with
//!   the index of its key in the batch (keys that are not ids, such as a
//!   page of notes of a user, have nothing in the row to key it by).

use std::collections::HashMap;
use std::hash::Hash;

use db::notes::{NoteRow, NoteWithAuthor};
use db::pages::{CountOf, NoteWithTags, NotesOf, UserWithNotes};
use db::search::{Hit, SimilarTo};
use db::tags::TagRow;
use db::users::UserRow;
use db::{NoteId, PgPool, TagId, UserId};

use crate::batch::Loader;

/// Declares access paths, one per row: `Name: Key => Value = db_fn, how;`
/// makes `pub struct Name(PgPool)` and its `Loader<Key>`, which runs
/// `db_fn` over the batch's keys and keys its rows as `how` says (see the
/// module docs). A table rather than a generic loader over a small trait:
/// the trait would still need an impl per path (its statement and how to
/// key its rows), which is the repetition this removes.
macro_rules! paths {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident: $key:ty => $value:ty = $fetch:path, $($how:ident)+ $(($split:expr))?;
    )+) => {$(
        $(#[doc = $doc])+
        pub struct $name(pub(crate) PgPool);

        impl Loader<$key> for $name {
            type Value = $value;

            async fn load(
                &self,
                keys: &[$key],
                budget: Option<db::Budget>,
            ) -> Result<HashMap<$key, $value>, db::Error> {
                let rows = db::within(&self.0, budget, async |conn| $fetch(conn, keys).await).await?;
                Ok(paths!(@key keys, rows, $($how)+ $($split)?))
            }
        }
    )+};
    (@key $keys:ident, $rows:ident, keyed by $key_of:expr) => {
        keyed($rows, $key_of)
    };
    (@key $keys:ident, $rows:ident, grouped by $split:expr) => {
        grouped($keys.len(), $rows.into_iter().map($split))
    };
    (@key $keys:ident, $rows:ident, one per key) => {
        $rows.into_iter().filter_map(|(index, value)| Some(($keys.get(index)?.clone(), value))).collect()
    };
    (@key $keys:ident, $rows:ident, many per key) => {
        grouped($keys.len(), $rows.into_iter().filter_map(|(index, value)| Some(($keys.get(index)?.clone(), value))))
    };
}

/// Keys each row by what `key_of` reads off it.
fn keyed<K: Eq + Hash, R>(rows: Vec<R>, key_of: impl Fn(&R) -> K) -> HashMap<K, R> {
    rows.into_iter().map(|row| (key_of(&row), row)).collect()
}

/// Groups `(key, value)` pairs into one list per key, keeping the
/// statement's order within each list (room for `keys` lists).
fn grouped<K: Eq + Hash, V>(keys: usize, pairs: impl Iterator<Item = (K, V)>) -> HashMap<K, Vec<V>> {
    let mut grouped: HashMap<K, Vec<V>> = HashMap::with_capacity(keys);
    for (key, value) in pairs {
        grouped.entry(key).or_default().push(value);
    }
    grouped
}

paths! {
    /// Users by id.
    UserById: UserId => UserRow = db::users::fetch_by_ids, keyed by (|row| row.id);
    /// Users by id, each with one page of their visible notes.
    UserWithNotesById: NotesOf<UserId> => UserWithNotes<NoteRow> = db::pages::fetch_users_with_notes, one per key;
    /// Users by id, each with one page of their visible notes and the
    /// notes' tags.
    UserWithTaggedNotesById: NotesOf<UserId> => UserWithNotes<NoteWithTags> =
        db::pages::fetch_users_with_notes, one per key;
    /// Notes by id, visible or not.
    NoteById: NoteId => NoteRow = db::notes::fetch_by_ids, keyed by (|row| row.id);
    /// Notes by id with their authors, visible or not.
    NoteWithAuthorById: NoteId => NoteWithAuthor = db::notes::fetch_with_authors_by_ids, keyed by (|row| row.note.id);
    /// The tags of each note, sorted by name; a note without tags is absent.
    TagsByNote: NoteId => Vec<TagRow> = db::tags::fetch_by_note_ids, grouped by (|row| (row.note_id, row.tag));
    /// A page of each author's visible notes; an empty page is absent.
    NotesByAuthor: NotesOf<UserId> => Vec<NoteRow> = db::pages::fetch_by_authors, many per key;
    /// A page of each tag's visible notes; an empty page is absent.
    NotesByTag: NotesOf<TagId> => Vec<NoteRow> = db::pages::fetch_by_tags, many per key;
    /// A page of each author's visible notes with their tags; an empty page
    /// is absent.
    NotesWithTagsByAuthor: NotesOf<UserId> => Vec<NoteWithTags> = db::pages::fetch_with_tags_by_authors, many per key;
    /// A page of each tag's visible notes with their tags; an empty page is
    /// absent.
    NotesWithTagsByTag: NotesOf<TagId> => Vec<NoteWithTags> = db::pages::fetch_with_tags_by_tags, many per key;
    /// How many of each author's notes the viewer may see.
    NoteCountByAuthor: CountOf<UserId> => i64 = db::pages::count_by_authors, one per key;
    /// How many of each tag's notes the viewer may see.
    NoteCountByTag: CountOf<TagId> => i64 = db::pages::count_by_tags, one per key;
    /// Each note's nearest visible neighbours, best first; none is absent.
    SimilarNotes: SimilarTo => Vec<Hit> = db::search::similar_to, many per key;
}
