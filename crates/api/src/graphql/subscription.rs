//! `SubscriptionRoot`: live note events, filtered per subscriber by
//! visibility, tag and author.

use async_graphql::{Context, ID, Result, Subscription};
use futures::{Stream, StreamExt, future, stream};
use tokio::sync::broadcast::error::RecvError;

use super::events::{EventBus, NoteEvent};
use super::{args, viewer};
use crate::error::ApiError;

/// Root of all subscriptions.
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Committed changes to notes the subscriber may see, from any server replica,
    /// optionally filtered by tag or author. Completes after `limit` events when
    /// given, so that a plain HTTP client can read a whole stream.
    async fn note_events(
        &self,
        ctx: &Context<'_>,
        tag: Option<String>,
        author_id: Option<ID>,
        limit: Option<i32>,
    ) -> Result<impl Stream<Item = NoteEvent> + use<>> {
        let viewer = viewer(ctx)?;
        let author = author_id.as_ref().map(|id| args::parse_id::<db::UserId>(id, "user")).transpose()?;
        let tag = tag.as_deref().map(args::normalize_tag);
        let limit = match limit {
            None => usize::MAX,
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => return Err(ApiError::bad_input("`limit` must be positive").into()),
        };
        let bus = ctx.data::<EventBus>().map_err(|_| super::missing("event bus"))?;
        let changes = stream::unfold(bus.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(change) => return Some((change, rx)),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "subscriber fell behind, skipping events");
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Ok(changes
            .filter(move |change| {
                let wanted = change.is_visible_to(viewer)
                    && author.is_none_or(|a| a == change.author)
                    && tag.as_ref().is_none_or(|t| change.tags.contains(t));
                future::ready(wanted)
            })
            .map(NoteEvent)
            .take(limit))
    }
}
