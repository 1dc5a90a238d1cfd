//! What one GraphQL operation reports: its name, type and error code, for
//! the `graphql.execute` span and the operation metrics. Read from the
//! document the operation limits already parsed, once per request.

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request, Response};

/// The error codes the `code` label may take; any other is `other`, so a
/// resolver's typo cannot make new series.
const CODES: &[&str] = &[
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "QUERY_TOO_COMPLEX",
    "RATE_LIMITED",
    "TIMEOUT",
    "SERVICE_UNAVAILABLE",
    "INTERNAL",
];

/// The first error's `extensions.service` when it is one the `service`
/// label may take (the embedding provider), else empty: the database, or
/// no dependency at all.
pub(crate) fn service(response: &Response) -> &'static str {
    let Some(error) = response.errors.first() else { return "" };
    match error.extensions.as_ref().and_then(|extensions| extensions.get("service")) {
        Some(async_graphql::Value::String(service)) if service == crate::error::EMBEDDING => crate::error::EMBEDDING,
        _ => "",
    }
}

/// The selected operation's name and type (`unknown` when the document
/// does not parse or names no such operation).
pub(crate) fn describe(request: &mut Request) -> (Option<String>, &'static str) {
    let selected = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else { return (selected, "unknown") };
    let (name, ty) = match (&document.operations, selected) {
        // An anonymous operation.
        (DocumentOperations::Single(op), selected) => (selected, Some(op.node.ty)),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            let ty = ops.get(name.as_str()).map(|op| op.node.ty);
            (Some(name), ty)
        }
        // One named operation, selected without `operationName`.
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.iter().next().map_or((None, None), |(name, op)| (Some(name.to_string()), Some(op.node.ty)))
        }
        (DocumentOperations::Multiple(_), None) => (None, None),
    };
    let kind = match ty {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    };
    (name, kind)
}

/// Whether the operation ran: it parsed and validated, so it answers with
/// data or with errors at a path. A request error (parse, validation,
/// unknown operation) has neither; so has a timed-out execution, which
/// takes no name slot either way.
pub(crate) fn validated(response: &Response) -> bool {
    !matches!(response.data, async_graphql::Value::Null) || response.errors.iter().any(|error| !error.path.is_empty())
}

/// The first error's `extensions.code` (`OK` without errors). An error
/// without a code is classified as the HTTP layer answers it: before
/// execution (no path) the client's, else ours.
pub(crate) fn code(response: &Response) -> &'static str {
    let Some(error) = response.errors.first() else { return "OK" };
    match error.extensions.as_ref().and_then(|extensions| extensions.get("code")) {
        Some(async_graphql::Value::String(code)) => {
            CODES.iter().find(|known| *known == code).copied().unwrap_or("other")
        }
        _ if error.path.is_empty() => "BAD_USER_INPUT",
        _ => "INTERNAL",
    }
}
