//! Execute: the end of the path. The request gets its viewer (and, when
//! its read-your-writes cookie names a write not yet heard, the order to
//! read the primary) as request data, and runs through the schema: tracked
//! for exact batching, under the GraphQL deadline
//! ([`BatchedSchema::execute_checked`]).

use async_graphql::Response;

use super::call::Operation;
use super::chain::Next;
use crate::graphql::BatchedSchema;
use crate::replica::ReadPrimary;

/// The stage: see the module.
#[derive(Clone)]
pub struct Execute {
    schema: BatchedSchema,
}

impl Execute {
    /// Runs requests on `schema`.
    pub fn new(schema: BatchedSchema) -> Self {
        Execute { schema }
    }
}

impl Next<Operation, Response> for Execute {
    async fn run(&self, operation: Operation) -> Response {
        self.schema.execute_checked(request_of(operation)).await
    }
}

/// The GraphQL request of `operation` with its viewer (and the order to
/// read the primary) as data: what execution, whole or in parts, runs.
pub(crate) fn request_of(operation: Operation) -> async_graphql::Request {
    let Operation { call, request } = operation;
    let mut request = request.data(call.viewer);
    if call.read_primary {
        request = request.data(ReadPrimary);
    }
    request
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::http::HeaderMap;

    use super::*;
    use crate::graphql::OperationLimits;
    use crate::pipeline::call::{Call, Method};

    #[tokio::test]
    async fn the_request_runs_through_the_schema() {
        let limits = OperationLimits {
            max_depth: 10,
            max_complexity: 1_000,
            max_aliases: 10,
            max_root_fields: 10,
            max_document_bytes: 1_000,
            max_tokens: 1_000,
            max_directives_per_field: 2,
        };
        let execute = Execute::new(crate::graphql::offline(limits, Duration::from_secs(5)));
        let call = Call::new(Method::Post, HeaderMap::new(), Bytes::new());

        let response = execute.run(Operation { call, request: async_graphql::Request::new("{ __typename }") }).await;

        assert!(response.errors.is_empty(), "{:?}", response.errors);
        assert_eq!(response.data.to_string(), r#"{__typename: "Query"}"#);
    }
}
