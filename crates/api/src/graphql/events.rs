//! Note events: the in-process hub that committed writes reach subscribers
//! through, and the `NoteEvent` type subscribers receive.
//!
//! Every event comes from Postgres `NOTIFY` (sent inside the write's
//! transaction, [`db::notify`]) through this process's one `LISTEN`
//! connection ([`crate::notifications`]), including the writes this process
//! made itself: so a subscriber sees the same events on every replica, and
//! only writes that committed. The hub is a broadcast ring of
//! [`EventBus::new`]'s capacity: its memory is bounded whatever the number
//! of subscribers, and a subscriber that falls further behind than that
//! skips ahead and is told how many events it missed.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use db::Viewer;
use db::notes::Visibility;
use db::notify::{NoteWritten, WriteKind};
use tokio::sync::broadcast;

use super::loaders;
use super::types::Note;
use crate::error::ApiError;

/// What happened to a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum NoteEventKind {
    /// It was created.
    Created,
    /// It was changed.
    Updated,
    /// It was deleted.
    Deleted,
}

impl From<WriteKind> for NoteEventKind {
    fn from(kind: WriteKind) -> Self {
        match kind {
            WriteKind::Created => NoteEventKind::Created,
            WriteKind::Updated => NoteEventKind::Updated,
            WriteKind::Deleted => NoteEventKind::Deleted,
        }
    }
}

/// What the hub carries.
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    /// A committed write.
    Written(Arc<NoteWritten>),
    /// The `LISTEN` connection was down from `from` to `to`: writes that
    /// committed in between were not seen.
    Gap {
        /// When the connection was lost (or the server started without it).
        from: DateTime<Utc>,
        /// When it was back.
        to: DateTime<Utc>,
    },
}

/// The schema's visibility rule, applied to a write event: what the write
/// left (for a delete, what it removed) was visible to `viewer`.
pub(crate) fn is_visible_to(event: &NoteWritten, viewer: Viewer) -> bool {
    event.visibility == Visibility::Public || viewer == Some(event.author)
}

/// Fans committed changes out to this process's subscribers.
#[derive(Clone)]
pub struct EventBus(broadcast::Sender<Delivery>);

impl EventBus {
    /// A hub that holds the last `capacity` deliveries for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        EventBus(broadcast::channel(capacity.max(1)).0)
    }

    /// Sends a committed write to every current subscriber (none is fine).
    pub(crate) fn publish(&self, event: NoteWritten) {
        let _ = self.0.send(Delivery::Written(Arc::new(event)));
    }

    /// Tells every current subscriber that events may have been missed.
    pub(crate) fn publish_gap(&self, from: DateTime<Utc>, to: DateTime<Utc>) {
        let _ = self.0.send(Delivery::Gap { from, to });
    }

    /// A receiver of every delivery from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.0.subscribe()
    }
}

/// A committed change as a subscriber sees it.
pub(crate) struct NoteEvent(pub(crate) Arc<NoteWritten>);

#[Object]
impl NoteEvent {
    async fn kind(&self) -> NoteEventKind {
        self.0.kind.into()
    }

    async fn note_id(&self) -> ID {
        ID(self.0.note.to_string())
    }

    /// The note as it is now; null for DELETED.
    async fn note(&self, ctx: &Context<'_>) -> Result<Option<Note>> {
        if self.0.kind == WriteKind::Deleted {
            return Ok(None);
        }
        // Through the loaders, under this subscriber's visibility: loads
        // of subscribers resolving the same event concurrently can share a
        // batch, as requests do.
        let viewer = super::viewer(ctx)?;
        let row = loaders(ctx)?.note_by_id.load_one(self.0.note).await.map_err(ApiError::from)?;
        Ok(row.filter(|note| note.is_visible_to(viewer)).map(Note::from))
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}
