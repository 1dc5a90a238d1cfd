//! Note events: what a committed write publishes, and the `NoteEvent` type
//! subscribers receive.
//!
//! Events travel on an in-process broadcast channel, so subscribers see the
//! writes made through this server process. Fan-out across replicas
//! (Postgres LISTEN/NOTIFY) and the SSE transport belong to the
//! subscriptions work; this module is the seam they plug into.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use db::notes::{NoteRow, Visibility};
use db::{NoteId, UserId, Viewer};
use tokio::sync::broadcast;

use super::loaders;
use super::types::Note;
use crate::error::ApiError;

/// How many events a slow subscriber may fall behind before it skips ahead.
const CHANNEL_CAPACITY: usize = 1024;

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

/// A committed change, with what subscribers filter on. Visibility and tags
/// come from the write's own transaction ([`db::notes::ChangedNote`]), so
/// an event never carries a state older than its write.
#[derive(Debug, Clone)]
pub(crate) struct NoteChange {
    pub(crate) kind: NoteEventKind,
    pub(crate) note_id: NoteId,
    pub(crate) author: UserId,
    /// The note's visibility after the change (before it, for a delete).
    pub(crate) visibility: Visibility,
    /// The note's tag names after the change (before it, for a delete).
    pub(crate) tags: Arc<[String]>,
    pub(crate) at: DateTime<Utc>,
}

impl NoteChange {
    /// A change to `note`, with its tag names.
    pub(crate) fn new(kind: NoteEventKind, note: &NoteRow, tags: Vec<String>) -> Self {
        NoteChange {
            kind,
            note_id: note.id,
            author: note.author_id,
            visibility: note.visibility,
            tags: tags.into(),
            at: Utc::now(),
        }
    }

    /// The schema's visibility rule, applied to events.
    pub(crate) fn is_visible_to(&self, viewer: Viewer) -> bool {
        self.visibility == Visibility::Public || viewer == Some(self.author)
    }
}

/// Publishes committed changes to this process's subscribers.
#[derive(Clone)]
pub struct EventBus(broadcast::Sender<NoteChange>);

impl Default for EventBus {
    fn default() -> Self {
        EventBus(broadcast::channel(CHANNEL_CAPACITY).0)
    }
}

impl EventBus {
    /// Sends a change to every current subscriber (none is fine).
    pub(crate) fn publish(&self, change: NoteChange) {
        let _ = self.0.send(change);
    }

    /// A receiver of every change from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<NoteChange> {
        self.0.subscribe()
    }
}

/// A change as a subscriber sees it.
pub(crate) struct NoteEvent(pub(crate) NoteChange);

#[Object]
impl NoteEvent {
    async fn kind(&self) -> NoteEventKind {
        self.0.kind
    }

    async fn note_id(&self) -> ID {
        ID(self.0.note_id.to_string())
    }

    /// The note as it is now; null for DELETED.
    async fn note(&self, ctx: &Context<'_>) -> Result<Option<Note>> {
        if self.0.kind == NoteEventKind::Deleted {
            return Ok(None);
        }
        let viewer = super::viewer(ctx)?;
        let row = loaders(ctx)?.note_by_id.load_one(self.0.note_id).await.map_err(ApiError::from)?;
        Ok(row.filter(|note| note.is_visible_to(viewer)).map(Note))
    }

    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}
