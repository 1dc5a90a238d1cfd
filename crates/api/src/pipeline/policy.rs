//! Policy: what may run. The operation limits (trusted documents, size,
//! depth, cost, aliases…: [`Admission::check`]) come first, and the
//! document is parsed behind the size limits, so no document reaches the
//! parser unbounded or skips the limits, whatever path it takes next. Then
//! GET runs queries only: a mutation or subscription over GET is refused
//! with 405 and `Allow: POST`. The operation's cost, measured by the
//! limits, is left in the call for [`super::budget`]. Shedding ([`overloaded`]) and the deadlines
//! (the router's, the schema's) are in the list and in [`super::execute`].

use async_graphql::Response;
use async_graphql::parser::types::OperationType;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response as HttpResponse;

use super::call::{Answer, Method, Operation, Rejection, Reply, XCache};
use super::chain::{Next, Stage};
use super::encode::encode;
use crate::error::{ApiError, error_response};
use crate::graphql::Admission;

/// The stage: see the module.
#[derive(Clone)]
pub struct Policy {
    admission: Admission,
}

impl Policy {
    /// Admits requests by `admission`.
    pub fn new(admission: Admission) -> Self {
        Policy { admission }
    }
}

impl<N: Next<Operation>> Stage<N> for Policy {
    type In = Operation;
    type Out = Answer;

    async fn run(&self, mut operation: Operation, next: &N) -> Answer {
        operation.call.cost = match self.admission.check(&mut operation.request) {
            Ok(cost) => cost,
            // A GraphQL response (no `data`), as execution errors are.
            Err(refusal) => {
                return Answer::Reply(Reply::of(encode(Response::from_errors(vec![refusal])), XCache::Bypass));
            }
        };
        if operation.call.method == Method::Get && selects_non_query(&mut operation.request) {
            let mut rejection =
                Rejection::new(StatusCode::METHOD_NOT_ALLOWED, "use POST for mutations", "BAD_USER_INPUT");
            rejection.header = Some((header::ALLOW, HeaderValue::from_static("POST")));
            return Answer::Refused(rejection);
        }
        next.run(operation).await
    }
}

/// True when the operation the request selects is a mutation or a
/// subscription. Reads the document the limits parsed; one that did not
/// parse is left to execution, which reports the syntax error.
fn selects_non_query(request: &mut async_graphql::Request) -> bool {
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return false;
    };
    let ty = crate::parsed::select_operation(document, operation_name.as_deref()).map(|op| op.ty);
    matches!(ty, Some(OperationType::Mutation | OperationType::Subscription))
}

/// Answers a request shed at the head of the list
/// ([`super::shedding`]): 503 with `Retry-After`, at once, so clients
/// back off instead of piling onto a queue. Logged at debug only: past
/// the knee there are hundreds a second, and the metrics count them
/// (`notegraph_concurrency_shed_total`, the 503s of
/// `notegraph_http_requests_total`).
pub fn overloaded() -> HttpResponse {
    tracing::debug!(exception.type = "SERVICE_UNAVAILABLE", "request shed");
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, &ApiError::ServiceUnavailable);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::http::HeaderMap;

    use super::*;
    use crate::graphql::OperationLimits;
    use crate::pipeline::call::Call;
    use crate::pipeline::call::Encoded;
    use crate::pipeline::chain::Fake;

    fn policy() -> Policy {
        let limits = OperationLimits {
            max_depth: 3,
            max_complexity: 1_000,
            max_aliases: 2,
            max_root_fields: 5,
            max_document_bytes: 1_000,
            max_tokens: 500,
            max_directives_per_field: 2,
        };
        Policy::new(crate::graphql::offline(limits, Duration::from_secs(5)).admission())
    }

    fn operation(method: Method, query: &str) -> Operation {
        let call = Call::new(method, HeaderMap::new(), Bytes::new());
        Operation { call, request: async_graphql::Request::new(query) }
    }

    /// Answers `passed`, and says whether the document reached it parsed.
    fn passed() -> Fake<impl Fn(Operation) -> std::future::Ready<Answer> + Send + Sync + 'static> {
        Fake(|mut op: Operation| {
            let parsed = op.request.parsed_query().is_ok();
            let passed = if op.call.cost > 0 {
                format!("passed {parsed} cost {}", op.call.cost)
            } else {
                format!("passed {parsed}")
            };
            std::future::ready(Answer::Reply(Reply::of(Encoded::ok(passed.into()), XCache::Miss)))
        })
    }

    fn outcome(answer: Answer) -> String {
        match answer {
            Answer::Reply(reply) => String::from_utf8(reply.encoded.body.to_vec()).unwrap(),
            Answer::Refused(rejection) => format!("{} {}", rejection.status.as_u16(), rejection.message),
        }
    }

    #[tokio::test]
    async fn a_query_within_the_limits_is_handed_on_parsed() {
        let answer = policy().run(operation(Method::Get, "{ notes(first: 2) { id } }"), &passed()).await;

        assert_eq!(
            outcome(answer),
            "passed true cost 4",
            "2 notes × (a note and its id), handed on for the budget stage"
        );
    }

    #[tokio::test]
    async fn over_a_limit_is_a_graphql_error_that_names_the_limit_and_is_never_run() {
        let unreachable = Fake(|_: Operation| async { panic!("handed on") });
        let deep = "{ notes { author { notes { author { notes { id } } } } } }";
        let aliased = "{ a: notes { id } b: notes { id } c: notes { id } }";

        for query in [deep, aliased] {
            let answer = policy().run(operation(Method::Post, query), &unreachable).await;
            let Answer::Reply(reply) = answer else { panic!("{query}: not a GraphQL response") };
            let body: serde_json::Value = serde_json::from_slice(&reply.encoded.body).unwrap();
            assert!(reply.encoded.request_error, "{query}: no data, status from the media type");
            assert_eq!(body["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX", "{query}");
            assert!(body.get("data").is_none());
        }
    }

    #[tokio::test]
    async fn get_runs_queries_only_and_post_runs_anything() {
        let mutation = r#"mutation { deleteNote(id: "1") }"#;

        let over_get = policy().run(operation(Method::Get, mutation), &passed()).await;
        let over_post = policy().run(operation(Method::Post, mutation), &passed()).await;

        let Answer::Refused(rejection) = over_get else { panic!("a mutation ran over GET") };
        assert_eq!(rejection.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(rejection.header.unwrap().1, "POST");
        assert_eq!(outcome(over_post), "passed true cost 1");
    }

    #[tokio::test]
    async fn a_document_that_does_not_parse_is_left_to_execution_to_report() {
        let answer = policy().run(operation(Method::Get, "{ notes { id "), &passed()).await;

        assert_eq!(outcome(answer), "passed false");
    }
}
