//! Write events over Postgres `NOTIFY`: each note write sends a
//! [`NoteWritten`] on [`WRITES_CHANNEL`] from inside its own transaction,
//! so the event is delivered exactly when (and only if) the write commits,
//! to every process listening on the database.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};

use crate::{Error, NoteId, UserId};

/// The channel every note write notifies on.
pub const WRITES_CHANNEL: &str = "notegraph_writes";

/// What a committed note write touched: enough for a listener to tell
/// which of its cached reads it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteWritten {
    /// The process that made the write (it already acted on it locally).
    pub origin: u64,
    /// The note written.
    pub note: NoteId,
    /// Its author.
    pub author: UserId,
    /// The note's tag names before and after the write.
    pub tags: Vec<String>,
}

/// Sends `payload` on `channel` as part of the transaction `conn` is in
/// (`pg_notify` is delivered at commit, and dropped on rollback).
pub async fn notify(conn: &mut PgConnection, channel: &str, payload: &str) -> Result<(), Error> {
    sqlx::query("select pg_notify($1, $2)").bind(channel).bind(payload).execute(conn).await?;
    Ok(())
}

/// Sends a [`NoteWritten`] on [`WRITES_CHANNEL`] inside the write's transaction.
pub(crate) async fn note_written(conn: &mut PgConnection, event: &NoteWritten) -> Result<(), Error> {
    // A struct of ids and strings always serialises.
    let payload = serde_json::to_string(event).unwrap_or_default();
    notify(conn, WRITES_CHANNEL, &payload).await
}

/// A dedicated connection listening on `channels`.
pub async fn listen(pool: &PgPool, channels: &[&str]) -> Result<PgListener, Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all(channels.iter().copied()).await?;
    Ok(listener)
}
