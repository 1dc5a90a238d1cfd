//! Typed ids, who reads and who may see, and paging arguments: the small
//! types shared by every query and by the write events, so that a user id
//! cannot be passed where a note id is expected. It imports nothing of the
//! crate.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(id: i64) -> $name {
                $name(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Primary key of `users`.
    UserId
);
id_type!(
    /// Primary key of `notes`.
    NoteId
);
id_type!(
    /// Primary key of `tags`.
    TagId
);

/// Who is reading: `None` is anonymous. Every visibility check takes it.
pub type Viewer = Option<UserId>;

/// Who may see a note; mirrors the `note_visibility` enum. Here rather than
/// in [`crate::notes`] because write events ([`crate::notify`]) carry it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, Serialize, Deserialize)]
#[sqlx(type_name = "note_visibility", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everyone.
    Public,
    /// The author only.
    Private,
}

/// A keyset page: at most `first` rows after the row with id `after`
/// (in the list's own order). Callers validate `first` before building one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page<Id> {
    /// How many rows at most.
    pub first: i64,
    /// The id of the last row of the previous page.
    pub after: Option<Id>,
}
