//! Cache keys, scopes and dependency tags: hashes of bytes the caller
//! chooses.
//!
//! A [`Key`] is the xxh3-128 of, in order (each part length-prefixed so
//! that no two different part lists hash the same bytes):
//! 1. [`KEY_VERSION`]: bumped whenever the stored format or key recipe
//!    changes, so an old layout is never read as a new one;
//! 2. the request's [`Fingerprint`]: whatever makes two requests the same
//!    question (for GraphQL: normalized document, operation name,
//!    canonical variables);
//! 3. the [`Scope`]: shared, or private to one opaque viewer identity.

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// Version of the key recipe and stored body format.
const KEY_VERSION: &[u8] = b"notegraph-response-cache-v1";

/// A hash of whatever makes two requests the same question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u128);

impl Fingerprint {
    /// The fingerprint of `parts`, in order.
    pub fn of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut hasher = Xxh3::new();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Fingerprint(hasher.digest128())
    }
}

/// Who may receive a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every viewer: the response is byte-identical whoever asks.
    Shared,
    /// Only the viewer with this opaque identity (anonymous is one too).
    Private(&'a [u8]),
}

/// Where a response is stored: fingerprint plus scope plus version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u128);

impl Key {
    /// The key of `fingerprint` in `scope`.
    pub fn new(fingerprint: Fingerprint, scope: Scope<'_>) -> Self {
        let mut hasher = Xxh3::new();
        hasher.update(KEY_VERSION);
        hasher.update(&fingerprint.0.to_le_bytes());
        match scope {
            Scope::Shared => hasher.update(b"S"),
            Scope::Private(viewer) => {
                hasher.update(b"P");
                hasher.update(&(viewer.len() as u64).to_le_bytes());
                hasher.update(viewer);
            }
        }
        Key(hasher.digest128())
    }
}

/// A dependency: something a response read and a write may change
/// (the caller names them, e.g. `Note:42`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(u64);

impl Tag {
    /// The tag with this name.
    pub fn new(name: &str) -> Self {
        Tag(xxh3_64(name.as_bytes()))
    }

    /// An order for deduplicating.
    pub(crate) fn sort_key(self) -> u64 {
        self.0
    }

    /// Which of `buckets` invalidation buckets this tag falls in.
    pub(crate) fn bucket(self, buckets: usize) -> usize {
        // Widening: `usize` is at least 32 bits and buckets fit in it.
        (self.0 % buckets as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_fingerprints_give_distinct_keys() {
        let a = Fingerprint::of([b"doc".as_slice(), b"vars"]);
        let b = Fingerprint::of([b"docv".as_slice(), b"ars"]);
        assert_ne!(a, b, "parts are length-prefixed");
        assert_ne!(Key::new(a, Scope::Shared), Key::new(a, Scope::Private(b"")));
        assert_ne!(Key::new(a, Scope::Private(b"1")), Key::new(a, Scope::Private(b"2")));
        assert_eq!(Key::new(a, Scope::Private(b"1")), Key::new(a, Scope::Private(b"1")));
    }
}
