//! Encode: executed responses as JSON bytes, `data` straight from the
//! engine's value and an `extensions.code` on every error. The stage sits
//! between the response cache and execution, so a response is encoded once
//! for every request waiting on it, and the cache stores bytes. Shared with
//! `/graphql/stream` (which sends the bytes as events).
//!
//! Its streaming form: a query with `@defer` or `@stream` whose client
//! accepts `multipart/mixed` runs in parts
//! ([`crate::graphql::incremental`]), and each payload is encoded as it
//! comes ([`encode_payload`]): the first in the reply's body, the rest as
//! a stream that [`super::decode`] frames as multipart.

use async_graphql::{Response, ServerError};
use axum::body::Bytes;
use futures::StreamExt as _;
use serde_json::{Value, json};

use super::call::{Encoded, Operation, Reply, Rest, XCache};
use super::chain::{Next, Stage};
use crate::error::{ApiError, error_body};
use crate::graphql::BatchedSchema;
use crate::graphql::incremental::{self, Payload};

/// The stage: see the module.
#[derive(Clone)]
pub struct Encode {
    /// Runs incremental queries (`None`: every query runs whole).
    incremental: Option<BatchedSchema>,
}

impl Encode {
    /// The stage; with `incremental`, queries that defer or stream and
    /// accept `multipart/mixed` run there in parts.
    pub fn new(incremental: Option<BatchedSchema>) -> Self {
        Encode { incremental }
    }
}

impl<N: Next<Operation, Response>> Stage<N> for Encode {
    type In = Operation;
    type Out = Reply;

    async fn run(&self, mut operation: Operation, next: &N) -> Reply {
        if let Some(schema) = &self.incremental
            && operation.call.incremental
            && incremental::wanted(&mut operation.request)
        {
            return in_parts(schema.execute_incremental(super::execute::request_of(operation))).await;
        }
        let mut response = next.run(operation).await;
        let headers = std::mem::take(&mut response.http_headers);
        let cache_control = response.cache_control;
        let has_errors = !response.errors.is_empty();
        let encoded = encode(response);
        Reply { encoded, x_cache: XCache::Bypass, headers, cache_control, has_errors, rest: None }
    }
}

/// The reply of an incremental answer: its first payload, then the rest
/// as they come.
async fn in_parts(mut payloads: incremental::Payloads) -> Reply {
    let first = payloads.next().await;
    // Nothing follows (refused, invalid, or ran out of time): one response,
    // encoded and given its status as any other.
    if let Some(Payload::Initial { mut response, has_next: false }) = first {
        let headers = std::mem::take(&mut response.http_headers);
        let has_errors = !response.errors.is_empty();
        let cache_control = async_graphql::CacheControl { public: false, max_age: -1 };
        return Reply {
            encoded: encode(response),
            x_cache: XCache::Bypass,
            headers,
            cache_control,
            has_errors,
            rest: None,
        };
    }
    let has_next = matches!(first, Some(Payload::Initial { has_next: true, .. }));
    let (headers, has_errors) = match &first {
        Some(Payload::Initial { response, .. }) => (response.http_headers.clone(), !response.errors.is_empty()),
        _ => Default::default(),
    };
    let body = match first {
        Some(payload) => encode_payload(payload),
        None => Bytes::from(error_body(ApiError::Internal.message(), ApiError::Internal.code()).to_string()),
    };
    let rest = has_next.then(|| Rest::new(Box::pin(payloads.map(encode_payload))));
    let cache_control = async_graphql::CacheControl { public: false, max_age: -1 };
    Reply { encoded: Encoded::ok(body), x_cache: XCache::Bypass, headers, cache_control, has_errors, rest }
}

/// One payload of an incremental answer as JSON: the first as a response
/// with `hasNext`, a later one as `incremental` entries with `hasNext`;
/// every error with its `extensions.code`, and every object's keys in
/// selection order (serialised straight from the engine's values).
pub fn encode_payload(payload: Payload) -> Bytes {
    let bytes = match payload {
        Payload::Initial { response, has_next } => return encode_with(response, Some(has_next)).body,
        Payload::Subsequent { incremental, has_next } => {
            let incremental = incremental
                .into_iter()
                .map(|entry| Part {
                    // A deferred fragment's entry always has `data`, null
                    // when an error nulled its object.
                    data: entry.items.is_none().then(|| entry.data.unwrap_or(async_graphql::Value::Null)),
                    items: entry.items,
                    path: entry.path,
                    label: entry.label,
                    errors: entry.errors.into_iter().map(|e| error_json(e, false)).collect(),
                })
                .collect();
            serialise(&Later { incremental, has_next })
        }
    };
    match bytes {
        Ok(bytes) | Err(bytes) => bytes.into(),
    }
}

/// A later payload of an incremental answer.
#[derive(serde::Serialize)]
struct Later {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    incremental: Vec<Part>,
    #[serde(rename = "hasNext")]
    has_next: bool,
}

/// One entry of [`Later`].
#[derive(serde::Serialize)]
struct Part {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<async_graphql::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<Vec<async_graphql::Value>>,
    path: Vec<async_graphql::PathSegment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Value>,
}

/// The response body; `data` is serialised straight from the engine's
/// value, without an intermediate JSON tree.
#[derive(serde::Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
    /// The first payload of an incremental answer: whether more follow.
    #[serde(rename = "hasNext", skip_serializing_if = "Option::is_none")]
    has_next: Option<bool>,
}

/// Encodes an executed response. A response whose errors all came before
/// execution (parse, validation, variable coercion) carries no `data`.
pub fn encode(response: Response) -> Encoded {
    encode_with(response, None)
}

/// [`encode`], with `hasNext` when given.
fn encode_with(response: Response, has_next: Option<bool>) -> Encoded {
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let body = Body {
        errors: response.errors.into_iter().map(|e| error_json(e, request_error)).collect(),
        data: (!request_error).then_some(&response.data),
        extensions: &response.extensions,
        has_next,
    };
    let timed_out = body.errors.iter().all(|e| e["extensions"]["code"] == "TIMEOUT");
    match serialise(&body) {
        Ok(bytes) => Encoded { body: bytes.into(), request_error, timed_out, failed: false },
        Err(bytes) => Encoded { body: bytes.into(), request_error, timed_out, failed: true },
    }
}

/// One error as JSON, with an `extensions.code` on every error: errors the
/// engine raised before execution are the client's (BAD_USER_INPUT); any
/// other error without a code is a bug we did not classify (INTERNAL).
fn error_json(error: ServerError, before_execution: bool) -> Value {
    let has_code = error.extensions.as_ref().is_some_and(|ext| ext.get("code").is_some());
    let unclassified = !has_code && !before_execution;
    if unclassified {
        tracing::error!(exception.type = "INTERNAL", error.message = %error.message, "unclassified resolver error");
    }
    let mut value = serde_json::to_value(&error).unwrap_or_else(|_| json!({}));
    if !has_code {
        let (code, message) =
            if unclassified { ("INTERNAL", Some(ApiError::Internal.message())) } else { ("BAD_USER_INPUT", None) };
        value["extensions"]["code"] = json!(code);
        if let Some(message) = message {
            value["message"] = json!(message);
        }
    }
    value
}

/// `body` as JSON, or (logged) the INTERNAL error body when it does not
/// serialise.
pub fn serialise(body: &impl serde::Serialize) -> Result<Vec<u8>, Vec<u8>> {
    serde_json::to_vec(body).map_err(|err| {
        tracing::error!(exception.type = "INTERNAL", error.message = %err, "response did not serialise");
        let internal = ApiError::Internal;
        // A `Value` always serialises: `to_string` cannot fail.
        error_body(internal.message(), internal.code()).to_string().into_bytes()
    })
}

#[cfg(test)]
mod tests {
    use async_graphql::{ErrorExtensionValues, Pos};
    use axum::http::{HeaderValue, header};

    use super::*;
    use crate::pipeline::call::Call;
    use crate::pipeline::chain::Fake;

    fn json(encoded: &Encoded) -> Value {
        serde_json::from_slice(&encoded.body).unwrap()
    }

    fn error(message: &str, code: Option<&str>, path: bool) -> ServerError {
        let mut error = ServerError::new(message, Some(Pos { line: 1, column: 3 }));
        if let Some(code) = code {
            let mut extensions = ErrorExtensionValues::default();
            extensions.set("code", code);
            error.extensions = Some(extensions);
        }
        if path {
            error.path = vec![async_graphql::PathSegment::Field("note".into())];
        }
        error
    }

    #[test]
    fn errors_before_execution_have_no_data_and_are_the_clients() {
        let encoded = encode(Response::from_errors(vec![error("Unknown field \"nope\"", None, false)]));

        let body = json(&encoded);
        assert!(encoded.request_error && !encoded.timed_out && !encoded.failed);
        assert!(body.get("data").is_none());
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(body["errors"][0]["message"], "Unknown field \"nope\"");
    }

    #[test]
    fn a_resolver_error_without_a_code_is_internal_and_its_message_hidden() {
        let mut response = Response::new(async_graphql::Value::from_json(serde_json::json!({ "note": null })).unwrap());
        response.errors = vec![error("relation \"secret\" does not exist", None, true)];

        let encoded = encode(response);

        let body = json(&encoded);
        assert!(!encoded.request_error);
        assert_eq!(body["data"]["note"], Value::Null);
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL");
        assert_eq!(body["errors"][0]["message"], "internal error");
    }

    #[test]
    fn a_response_that_ran_out_of_time_says_so() {
        let encoded = encode(Response::from_errors(vec![error("timed out", Some("TIMEOUT"), false)]));

        assert!(encoded.request_error && encoded.timed_out);
        assert_eq!(json(&encoded)["errors"][0]["extensions"]["code"], "TIMEOUT");
    }

    #[tokio::test]
    async fn the_stage_hands_on_the_hints_and_headers_the_resolvers_set() {
        let next = Fake(|_: Operation| async {
            let mut response = Response::new(async_graphql::Value::from_json(serde_json::json!({ "a": 1 })).unwrap());
            response.cache_control = async_graphql::CacheControl { public: false, max_age: 30 };
            response.http_headers.insert(header::SET_COOKIE, HeaderValue::from_static("notegraph-write=1.2"));
            response
        });
        let call = Call::new(crate::pipeline::Method::Post, Default::default(), Default::default());
        let operation = Operation { call, request: async_graphql::Request::new("{ a }") };

        let reply = Encode::new(None).run(operation, &next).await;

        assert_eq!(json(&reply.encoded), serde_json::json!({ "data": { "a": 1 } }));
        assert_eq!(reply.x_cache, XCache::Bypass);
        assert!(!reply.has_errors);
        assert_eq!((reply.cache_control.public, reply.cache_control.max_age), (false, 30));
        assert_eq!(reply.headers[header::SET_COOKIE], "notegraph-write=1.2");
    }
}
