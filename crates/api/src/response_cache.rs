//! The GraphQL side of the response cache (the storage is the `cache`
//! crate; what makes two requests the same question is
//! [`crate::fingerprint`]): the names of the dependency tags resolvers
//! record, and which tags a note write changes (docs/CACHE.md). Other processes' writes reach it through
//! [`crate::notifications`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache::{ResponseCache, Tag};
use db::notify::NoteWritten;

use crate::read_your_writes::ReadYourWrites;
use crate::replica::ReadReplica;

/// Dependency tag names. Every note write changes [`note`], its author's
/// [`user_notes`], [`tag_notes`] of each tag it had or has, [`NOTE_LIST`],
/// [`NOTE_SEARCH`] and, when it has tags, [`TAG_LIST`].
pub(crate) mod tags {
    /// The root `notes` list, in any filter.
    pub(crate) const NOTE_LIST: &str = "Note/list";
    /// Search results and `similar`: any write can move any hit.
    pub(crate) const NOTE_SEARCH: &str = "Note/search";
    /// The root `tags` list.
    pub(crate) const TAG_LIST: &str = "Tag/list";
    /// The root `users` list.
    pub(crate) const USER_LIST: &str = "User/list";

    /// One note: its fields and its tags.
    pub(crate) fn note(id: db::NoteId) -> String {
        format!("Note:{id}")
    }

    /// One user's fields.
    pub(crate) fn user(id: db::UserId) -> String {
        format!("User:{id}")
    }

    /// One user's notes and their count.
    pub(crate) fn user_notes(id: db::UserId) -> String {
        format!("User:{id}/notes")
    }

    /// One tag's existence, notes and their count.
    pub(crate) fn tag_notes(name: &str) -> String {
        format!("Tag:{name}/notes")
    }
}

/// The tags a committed note write changed.
pub(crate) fn written_tags(event: &NoteWritten) -> Vec<Tag> {
    let mut names = vec![
        tags::note(event.note),
        tags::user_notes(event.author),
        tags::NOTE_LIST.to_owned(),
        tags::NOTE_SEARCH.to_owned(),
    ];
    if !event.tags.is_empty() || !event.removed_tags.is_empty() {
        names.push(tags::TAG_LIST.to_owned());
    }
    names.extend(event.tags.iter().chain(&event.removed_tags).map(|t| tags::tag_notes(t)));
    names.iter().map(|n| Tag::new(n)).collect()
}

/// Schema data for writes: this process's identity in write events, the
/// cache to invalidate before a mutation answers, the read replica that
/// must replay the write before its author reads there again, and the
/// writes other servers made that this one has heard of.
#[derive(Clone)]
pub struct Invalidation {
    /// This process's writes and the writes it heard of (its identity
    /// in events is `writes.origin()`).
    pub writes: ReadYourWrites,
    /// The cache, when enabled.
    pub cache: Option<ResponseCache>,
    /// The read replica, when one is configured.
    pub replica: Option<ReadReplica>,
}

impl Invalidation {
    /// A fresh identity for this process (and for each server in a test
    /// process): process id, start time and a counter. Its writes' cookies
    /// live `remember`.
    pub fn new(cache: Option<ResponseCache>, replica: Option<ReadReplica>, remember: Duration) -> Self {
        static SERVERS: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = format!("{}/{}/{}", std::process::id(), nanos.as_nanos(), SERVERS.fetch_add(1, Ordering::Relaxed));
        let origin = xxhash_rust::xxh3::xxh3_64(seed.as_bytes());
        Invalidation { writes: ReadYourWrites::new(origin, remember), cache, replica }
    }

    /// Applies another process's committed write: drops what it changed
    /// and counts it for the replica, then lets requests that were waiting
    /// for it (read-your-writes cookies) go on.
    pub(crate) fn heard(&self, event: &NoteWritten) {
        self.written(event);
        self.writes.heard(event.writer());
    }

    /// Drops this process's entries that a committed write changed; the
    /// other processes do the same when its `NOTIFY` reaches them.
    pub(crate) fn written(&self, event: &NoteWritten) {
        if let Some(cache) = &self.cache {
            cache.invalidate(written_tags(event));
        }
        if let Some(replica) = &self.replica {
            replica.written(event.author);
        }
    }

    /// Drops every cached `searchNotes` and `Note.similar` answer (the
    /// [`tags::NOTE_SEARCH`] tag): stored vectors changed (`notegraph
    /// reembed`), which moves search hits and scores but no note field, so
    /// the rest of the cache stays.
    pub(crate) fn embeddings_changed(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate([Tag::new(tags::NOTE_SEARCH)]);
        }
    }

    /// Follows the `LISTEN` connection: while it is down, other processes'
    /// writes go unseen, so the cache neither answers nor stores and the
    /// read replica is not read.
    pub(crate) fn set_listening(&self, listening: bool) {
        if let Some(cache) = &self.cache {
            cache.set_available(listening);
        }
        if let Some(replica) = &self.replica {
            replica.set_listening(listening);
        }
    }
}
