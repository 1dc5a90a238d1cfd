//! `SubscriptionRoot`: live note events from the hub ([`EventBus`]),
//! filtered per subscriber by visibility, tag and author before delivery.
//!
//! A subscription's stream ends after `limit` events, when the server shuts
//! down, or, after one UNAUTHENTICATED error, when the subscriber's token
//! expires. It carries an error (and goes on) when the subscriber fell
//! behind the hub and events were skipped, or when the `LISTEN` connection
//! was down and events may have been missed (docs/SUBSCRIPTIONS.md).

use std::time::SystemTime;

use async_graphql::{Context, ErrorExtensions as _, ID, Result, Subscription};
use chrono::{DateTime, Utc};
use db::UserId;
use db::notify::NoteWritten;
use futures::{Stream, stream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::Instant;

use super::caps::{ConnectionSubscriptions, Permit, SubscriptionCaps};
use super::events::{Delivery, EventBus, NoteEvent, is_visible_to};
use super::{args, viewer};
use crate::error::ApiError;

/// Root of all subscriptions.
pub struct SubscriptionRoot;

/// Schema data: turns true when the server starts shutting down, which
/// completes every open subscription.
#[derive(Clone)]
pub struct Stopping(pub watch::Receiver<bool>);

/// Request or connection data: when the subscriber's token stops being
/// valid (static development tokens never expire).
#[derive(Debug, Clone, Copy)]
pub struct TokenExpiry(pub SystemTime);

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
    ) -> Result<impl Stream<Item = Result<NoteEvent>> + use<>> {
        let viewer = viewer(ctx)?;
        let author = author_id.as_ref().map(|id| args::parse_id::<UserId>(id, "user")).transpose()?;
        let tag = tag.as_deref().map(args::normalize_tag);
        let remaining = match limit {
            None => usize::MAX,
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(_) => return Err(ApiError::bad_input("`limit` must be positive").into()),
        };
        let bus = ctx.data::<EventBus>().map_err(|_| super::missing("event bus"))?;
        let caps = ctx.data::<SubscriptionCaps>().map_err(|_| super::missing("subscription caps"))?;
        let stopping = ctx.data::<Stopping>().map_err(|_| super::missing("shutdown signal"))?.0.clone();
        let permit = caps.acquire(viewer, ctx.data_opt::<ConnectionSubscriptions>())?;
        let expires = ctx.data_opt::<TokenExpiry>().map(|expiry| {
            let left = expiry.0.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left
        });
        let feed = Feed {
            receiver: bus.subscribe(),
            filter: Filter { viewer, author, tag },
            remaining,
            stopping,
            expires,
            ended: false,
            _permit: permit,
        };
        Ok(stream::unfold(feed, Feed::next))
    }
}

/// What one subscriber asked for, and may see.
struct Filter {
    viewer: Option<UserId>,
    author: Option<UserId>,
    tag: Option<String>,
}

impl Filter {
    fn wants(&self, event: &NoteWritten) -> bool {
        is_visible_to(event, self.viewer)
            && self.author.is_none_or(|a| a == event.author)
            && self.tag.as_ref().is_none_or(|t| event.tags.contains(t))
    }
}

/// One subscription's state between items.
struct Feed {
    receiver: broadcast::Receiver<Delivery>,
    filter: Filter,
    /// Events still to deliver before completing (`limit`).
    remaining: usize,
    stopping: watch::Receiver<bool>,
    expires: Option<Instant>,
    /// Set after the last item (the token expired).
    ended: bool,
    /// Held for the stream's life: its place under the subscription caps.
    _permit: Permit,
}

impl Feed {
    /// The next item for this subscriber, or `None` to complete.
    async fn next(mut self) -> Option<(Result<NoteEvent>, Self)> {
        if self.ended || self.remaining == 0 {
            return None;
        }
        loop {
            let received = tokio::select! {
                biased;
                () = stopped(&mut self.stopping) => return None,
                () = expired(self.expires) => {
                    self.ended = true;
                    let error = ApiError::Unauthenticated("the token expired; subscribe again with a fresh one".into());
                    return Some((Err(error.into()), self));
                }
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(Delivery::Written(event)) if self.filter.wants(&event) => {
                    self.remaining -= 1;
                    crate::metrics::subscription_event_sent();
                    return Some((Ok(NoteEvent(event)), self));
                }
                Ok(Delivery::Written(_)) => {}
                Ok(Delivery::Gap { from, to }) => return Some((Err(gap(from, to)), self)),
                Err(RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "subscriber fell behind, skipping events");
                    crate::metrics::subscription_events_dropped(skipped);
                    return Some((Err(fell_behind(skipped)), self));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Completes when the server starts shutting down (never, if the signal's
/// sender is gone without sending).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Completes when the token expires (never, without one).
async fn expired(expires: Option<Instant>) {
    match expires {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The error a subscriber gets when it fell further behind than the hub
/// keeps, and `skipped` events (of every subscriber, not only its own
/// filter's) went by.
fn fell_behind(skipped: u64) -> async_graphql::Error {
    let message = format!("this subscriber fell behind and {skipped} events were skipped; query again to catch up");
    let skipped = i64::try_from(skipped).unwrap_or(i64::MAX);
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", "SERVICE_UNAVAILABLE");
        ext.set("skipped", skipped);
    })
}

/// The error subscribers get when the server's `LISTEN` connection was
/// down from `from` to `to`.
fn gap(from: DateTime<Utc>, to: DateTime<Utc>) -> async_graphql::Error {
    let message = "events may have been missed while the server lost its database connection; query again to catch up";
    async_graphql::Error::new(message).extend_with(|_, ext| {
        ext.set("code", "SERVICE_UNAVAILABLE");
        ext.set("missedFrom", from.to_rfc3339());
        ext.set("missedTo", to.to_rfc3339());
    })
}
