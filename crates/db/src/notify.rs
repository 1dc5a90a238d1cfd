//! Write events over Postgres `NOTIFY`: each note write sends a
//! [`NoteWritten`] on [`WRITES_CHANNEL`] from inside its own statement
//! (`crate::notes` builds the payload in SQL),
//! so the event is delivered exactly when (and only if) the write commits,
//! to every process listening on the database. The cache invalidates from
//! it and subscriptions are fed by it, on every replica alike.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};

use crate::ids::Visibility;
use crate::{Error, NoteId, UserId};

/// Expands to [`WRITES_CHANNEL`]; a macro so that the write statements
/// (`crate::notes`), which notify from inside themselves, can splice it.
macro_rules! writes_channel {
    () => {
        "notegraph_writes"
    };
}
pub(crate) use writes_channel;

/// The channel every note write notifies on.
pub const WRITES_CHANNEL: &str = writes_channel!();

/// The channel `notegraph reembed` notifies on with each batch of vectors it
/// stores; the payload is the identity of the embedder that made them.
/// Servers drop their cached search results on it.
pub const EMBEDDINGS_CHANNEL: &str = "notegraph_embeddings";

/// Names one write: the process that makes it and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Writer {
    /// The process, as in [`NoteWritten::origin`].
    pub origin: u64,
    /// The write's number within the process.
    pub write: u64,
}

/// What a write did to its note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteKind {
    /// The note was created.
    Created,
    /// The note was changed.
    Updated,
    /// The note was deleted.
    Deleted,
}

/// A committed note write: ids, the kind, and what subscribers filter on
/// and caches invalidate by. It carries no note content: each subscriber
/// loads the note itself, under its own visibility. All of it comes from
/// the write's own statement, which writes only while the note is as its
/// snapshot saw it, so an event never describes a state older than its
/// write.
///
/// Small by construction (at most 10 tags on each side of 40 characters),
/// well under `NOTIFY`'s 8,000-byte payload limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteWritten {
    /// The process that made the write (it already invalidated locally).
    pub origin: u64,
    /// The write's number within that process: with `origin`, names it
    /// (read-your-writes cookies name writes so).
    #[serde(default)]
    pub write: u64,
    /// What happened.
    pub kind: WriteKind,
    /// The note written.
    pub note: NoteId,
    /// Its author.
    pub author: UserId,
    /// Its visibility after the write (before it, for a delete).
    pub visibility: Visibility,
    /// Its tag names after the write (before it, for a delete).
    pub tags: Vec<String>,
    /// Tag names an update removed from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_tags: Vec<String>,
    /// When the write happened.
    pub at: DateTime<Utc>,
}

impl NoteWritten {
    /// Who made the write.
    pub fn writer(&self) -> Writer {
        Writer { origin: self.origin, write: self.write }
    }
}

/// Sends `payload` on `channel` as part of the transaction `conn` is in
/// (`pg_notify` is delivered at commit, and dropped on rollback).
pub async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) -> Result<(), Error> {
    sqlx::query("select pg_notify($1, $2)").bind(channel).bind(payload).execute(conn).await?;
    Ok(())
}

/// A dedicated connection listening on `channels`.
pub async fn listen(pool: &PgPool, channels: &[&str]) -> Result<PgListener, Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all(channels.iter().copied()).await?;
    Ok(listener)
}
