//! [`Batching`]: the schema extension that runs every execution and every
//! subscription stream inside a [`Tracked`] wrapper, whatever the
//! transport, so that loads are batched exactly everywhere.

use std::sync::Arc;

use async_graphql::Response;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextSubscribe};
use futures::stream::BoxStream;

use crate::Tracked;

/// Register with `Schema::build(..).extension(Batching::default())`.
#[derive(Default)]
pub struct Batching {
    /// One stateless instance serves every request (no allocation each).
    instance: Arc<TrackExecution>,
}

impl ExtensionFactory for Batching {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::clone(&self.instance) as Arc<dyn Extension>
    }
}

#[derive(Default)]
struct TrackExecution;

#[async_trait::async_trait]
impl Extension for TrackExecution {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        Tracked::new(Box::pin(next.run(ctx, operation_name))).await
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        Box::pin(Tracked::new(next.run(ctx, stream)))
    }
}
