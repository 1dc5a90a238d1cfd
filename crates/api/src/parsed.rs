//! Parsed GraphQL documents, a leaf shared by the schema, the response
//! cache, the request pipeline and the metrics: the operation a request
//! selects from its document ([`select_operation`]), and documents kept by
//! their text ([`ParsedDocuments`]) so that a document sent again is not
//! lexed and parsed again. Clients send the same few documents over and
//! over (with new variables, or with an id written inline): parsing one of
//! the published mix's documents costs 8–11 µs of CPU, copying its parsed
//! form 0.2–0.3 µs (`just bench parse`; docs/PERFORMANCE.md).
//!
//! Only documents that passed the size, token and nesting limits and
//! parsed are kept, so a hit skips those checks too: the limits are fixed
//! for the life of the server. The per-operation limits (depth, cost,
//! aliases…) depend on the variables and are checked on every request.

use std::sync::Arc;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use moka::sync::Cache;

/// Bytes a parsed document is counted as, per byte of its text: a one-off
/// count of allocations gave 38–64 for the published mix's documents, so
/// counted high.
const PARSED_BYTES_PER_TEXT_BYTE: usize = 64;
/// Bytes every parsed document is counted as besides its text's share.
const PARSED_BYTES_OVERHEAD: usize = 1024;

/// A bounded map from document text to its parsed form; a clone shares
/// the map (the metrics read its size).
#[derive(Clone)]
pub(crate) struct ParsedDocuments(Cache<String, Arc<ExecutableDocument>>);

impl ParsedDocuments {
    /// Keeps parsed documents up to about `max_bytes` of memory, least
    /// used first out.
    pub(crate) fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|text: &String, _: &Arc<ExecutableDocument>| {
                let bytes = text.len().saturating_mul(PARSED_BYTES_PER_TEXT_BYTE) + PARSED_BYTES_OVERHEAD;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        ParsedDocuments(cache)
    }

    /// The parsed form of `text`, when it was parsed before.
    pub(crate) fn get(&self, text: &str) -> Option<ExecutableDocument> {
        self.0.get(text).map(|document| ExecutableDocument::clone(&document))
    }

    /// Remembers the parsed form of `text`.
    pub(crate) fn insert(&self, text: &str, document: &ExecutableDocument) {
        self.0.insert(text.to_owned(), Arc::new(document.clone()));
    }

    /// Documents held now and the bytes they are counted as, once moka has
    /// applied its pending writes (it does so lazily).
    pub(crate) fn size(&self) -> (u64, u64) {
        self.0.run_pending_tasks();
        (self.0.entry_count(), self.0.weighted_size())
    }
}

/// The operation a request runs, picked exactly as async-graphql picks it:
/// with a name, the operation of that name (an anonymous one has none);
/// without, the only operation, named or not. The parser keeps a single
/// *named* operation in `Multiple`, so "the only one" must look there too,
/// or a named query sent without `operationName` would escape the GET
/// refusal of mutations and the response cache.
pub(crate) fn select_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), None) => Some(&op.node),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| &op.node),
        (DocumentOperations::Multiple(_), None) => None,
    }
}
