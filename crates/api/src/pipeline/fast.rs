//! Fast: a query over plain row data — the root `notes` list with its
//! notes' scalar fields, authors and tags; `users`; `note(id:)` with its
//! author; `user(id:)` with a page of its notes — answered as JSON bytes written
//! straight from its statement's rows
//! ([`crate::graphql::BatchedSchema::execute_fast`]); any other request
//! goes on to encode and execute unchanged. Between the response cache
//! and encode, so that what it answers is cached, coalesced and shed as
//! any executed response.

use async_graphql::Response;

use super::call::{Encoded, Operation, Reply, XCache};
use super::chain::{Next, Stage};
use super::encode::encode;
use crate::graphql::{BatchedSchema, Fast};

/// The stage: see the module.
#[derive(Clone)]
pub struct FastPath {
    schema: BatchedSchema,
}

impl FastPath {
    /// Answers what it can on `schema`'s fast path.
    pub fn new(schema: BatchedSchema) -> Self {
        FastPath { schema }
    }
}

impl<N: Next<Operation, Reply>> Stage<N> for FastPath {
    type In = Operation;
    type Out = Reply;

    async fn run(&self, operation: Operation, next: &N) -> Reply {
        let Operation { call, request } = operation;
        match self.schema.execute_fast(call.viewer, call.read_primary, request).await {
            Fast::Answered(body) => Reply::of(Encoded::ok(body.into()), XCache::Bypass),
            Fast::Response(response) => timed_out(response),
            // Boxed: unboxed, the general path's future (async-graphql's
            // execution among it) would be part of every stage's future
            // above this one, moved in memory at each of them on every
            // request (docs/PERFORMANCE.md, "Statements without spans, and
            // smaller futures": memcpy 15.8% of the instructions before).
            Fast::General(request) => Box::pin(next.run(Operation { call, request })).await,
        }
    }
}

/// A response without data (the deadline passed), encoded as the encode
/// stage encodes it.
fn timed_out(response: Response) -> Reply {
    let mut reply = Reply::of(encode(response), XCache::Bypass);
    reply.has_errors = true;
    reply
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::http::HeaderMap;

    use super::*;
    use crate::graphql::OperationLimits;
    use crate::pipeline::call::{Call, Method};
    use crate::pipeline::chain::Fake;

    fn stage() -> FastPath {
        let limits = OperationLimits {
            max_depth: 10,
            max_complexity: 10_000,
            max_aliases: 10,
            max_root_fields: 10,
            max_document_bytes: 1_000,
            max_tokens: 1_000,
            max_directives_per_field: 2,
        };
        FastPath::new(crate::graphql::offline(limits, Duration::from_secs(5)))
    }

    /// The replies to `queries`, and how many the rest of the path got
    /// (it answers `{}`).
    async fn run(queries: &[&str]) -> (Vec<Reply>, usize) {
        let stage = stage();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let next = Fake(move |_: Operation| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Reply::of(Encoded::ok(Bytes::from_static(b"{}")), XCache::Bypass) }
        });
        let mut replies = Vec::new();
        for query in queries {
            let call = Call::new(Method::Post, HeaderMap::new(), Bytes::new());
            replies.push(stage.run(Operation { call, request: async_graphql::Request::new(*query) }, &next).await);
        }
        (replies, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn what_is_not_plain_row_data_or_does_not_validate_goes_on_unchanged() {
        let queries = ["{ me { id } }", "{ notes { id nope } }", "query($n: Int!) { notes { id } }"];

        let (replies, handed_on) = run(&queries).await;

        assert_eq!(handed_on, 3);
        assert!(replies.iter().all(|reply| &reply.encoded.body[..] == b"{}"));
    }

    #[tokio::test]
    async fn a_root_typename_alone_is_answered_without_a_statement() {
        let (replies, handed_on) = run(&["{ __typename a: __typename }"]).await;

        assert_eq!(handed_on, 0);
        assert_eq!(&replies[0].encoded.body[..], br#"{"data":{"__typename":"Query","a":"Query"}}"#);
        assert!(!replies[0].has_errors);
    }
}
