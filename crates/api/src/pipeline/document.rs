//! Document: the request's parameters, as GraphQL over HTTP defines them
//! (a POST's JSON body, a GET's query string), their types checked, and
//! the document to run: sent whole, or named by hash through Apollo's
//! automatic persisted queries ([`Persisted`]), or, when only trusted
//! documents may run, taken from that list. Shared with `/graphql/stream`.
//!
//! Automatic persisted queries: a request may send only
//! `extensions.persistedQuery.sha256Hash` (a GET a CDN can cache); an
//! unknown hash is answered with `PersistedQueryNotFound`, and the client
//! then sends the document with its hash once.

use std::sync::Arc;

use async_graphql::{Request, Variables};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{Answer, Call, Method, Operation, Rejection};
use super::chain::{Next, Stage};
use crate::graphql::{TrustedDocuments, sha256_hex};
use crate::metrics::Metrics;

/// The stage: see the module.
#[derive(Clone)]
pub struct Document {
    persisted: Persisted,
}

impl Document {
    /// Resolves hashes through `persisted`.
    pub fn new(persisted: Persisted) -> Self {
        Document { persisted }
    }
}

impl<N: Next<Operation>> Stage<N> for Document {
    type In = Call;
    type Out = Answer;

    async fn run(&self, mut call: Call, next: &N) -> Answer {
        let params = match call.method {
            // A query string is ASCII: URIs are.
            Method::Get => get_params(std::str::from_utf8(&call.params).unwrap_or_default()),
            Method::Post => body_params(&call.params),
        };
        let mut params = match params {
            Ok(params) => params,
            Err(rejection) => return Answer::Refused(rejection),
        };
        if params.extensions.is_some() {
            // The persisted-query protocol runs on every request that uses
            // it, so such bytes are never answered by `replay`.
            call.sent = None;
        }
        if let Err(rejection) = self.persisted.resolve(&mut params).await {
            return Answer::Refused(rejection);
        }
        match into_request(params) {
            Ok(request) => next.run(Operation { call, request }).await,
            Err(rejection) => Answer::Refused(rejection),
        }
    }
}

/// A GraphQL request's parameters, as sent in a POST body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    /// The document's text (a string when valid).
    pub query: Option<Value>,
    /// Which operation of the document to run.
    pub operation_name: Option<Value>,
    /// The variables (an object when valid).
    pub variables: Option<Value>,
    /// Protocol extensions, such as `persistedQuery`.
    pub extensions: Option<Value>,
}

/// The parameters of a POST body: one JSON object. Batches (a JSON array
/// of requests) are refused: one body would buy many executions past the
/// per-request limits and the load shedding.
pub fn body_params(body: &[u8]) -> Result<Params, Rejection> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Rejection::bad_request("batched requests (a JSON array) are not accepted; send one object"));
    }
    // One pass from bytes to parameters; serde's error category tells a
    // body that is not JSON from one that is not a parameter object.
    serde_json::from_slice::<Params>(body).map_err(|err| match err.is_data() {
        true => Rejection::bad_request("the body must be a JSON object of request parameters"),
        false => Rejection::bad_request("the body is not valid JSON"),
    })
}

/// Parses the GET query string: `variables` and `extensions` are JSON.
pub fn get_params(raw: &str) -> Result<Params, Rejection> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw).map_err(|_| Rejection::bad_request("malformed query string"))?;
    let mut params = Params { query: None, operation_name: None, variables: None, extensions: None };
    for (name, value) in pairs {
        let json = |v: &str| {
            serde_json::from_str::<Value>(v).map_err(|_| Rejection::bad_request(format!("`{name}` must be JSON")))
        };
        match name.as_str() {
            "query" => params.query = Some(Value::String(value)),
            "operationName" => params.operation_name = Some(Value::String(value)),
            "variables" => params.variables = Some(json(&value)?),
            "extensions" => params.extensions = Some(json(&value)?),
            _ => {}
        }
    }
    Ok(params)
}

/// Validates the parameter types the specification requires.
pub fn into_request(params: Params) -> Result<Request, Rejection> {
    let query = match params.query {
        Some(Value::String(q)) => q,
        Some(_) => return Err(Rejection::bad_request("`query` must be a string")),
        None => return Err(Rejection::bad_request("`query` is required")),
    };
    let mut request = Request::new(query);
    match params.operation_name {
        Some(Value::String(name)) => request = request.operation_name(name),
        None | Some(Value::Null) => {}
        Some(_) => return Err(Rejection::bad_request("`operationName` must be a string")),
    }
    match params.variables {
        Some(vars @ Value::Object(_)) => request = request.variables(Variables::from_json(vars)),
        None | Some(Value::Null) => {}
        Some(_) => return Err(Rejection::bad_request("`variables` must be an object")),
    }
    match params.extensions {
        Some(Value::Object(ext)) => {
            let ext = ext.into_iter().map(|(k, v)| (k, async_graphql::Value::from_json(v).unwrap_or_default()));
            request.extensions = async_graphql::Extensions(ext.collect());
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(Rejection::bad_request("`extensions` must be an object")),
    }
    Ok(request)
}

/// Documents by hash: the automatic persisted queries a client registered,
/// or, when configured, only the trusted list.
#[derive(Clone)]
pub struct Persisted {
    documents: cache::Documents,
    trusted: Option<Arc<TrustedDocuments>>,
    metrics: Option<Metrics>,
}

impl Persisted {
    /// Registers and finds documents in `documents`, or only in `trusted`
    /// when set; counts lookups in `metrics`.
    pub fn new(documents: cache::Documents, trusted: Option<Arc<TrustedDocuments>>, metrics: Option<Metrics>) -> Self {
        Persisted { documents, trusted, metrics }
    }

    /// Applies the automatic persisted queries protocol: with
    /// `extensions.persistedQuery` (version 1) and no `query`, fills the
    /// query in from the store or fails with `PersistedQueryNotFound`; with
    /// both, checks the hash and registers the document. With trusted
    /// documents, only the trusted list answers hashes and nothing is
    /// registered.
    pub async fn resolve(&self, params: &mut Params) -> Result<(), Rejection> {
        let Some(Value::Object(extensions)) = &params.extensions else { return Ok(()) };
        let Some(persisted) = extensions.get("persistedQuery") else { return Ok(()) };
        if persisted.get("version") != Some(&json!(1)) {
            return Err(Rejection::bad_request("`persistedQuery.version` must be 1"));
        }
        let Some(hash) = persisted.get("sha256Hash").and_then(Value::as_str) else {
            return Err(Rejection::bad_request("`persistedQuery.sha256Hash` must be a string"));
        };
        let hash = hash.to_ascii_lowercase();
        if let Some(trusted) = &self.trusted {
            // Only the list answers hashes, and nothing registers. A
            // document sent whole is checked against the list by the
            // policy's limits.
            return match (&params.query, trusted.get(&hash)) {
                (None, Some(text)) => {
                    params.query = Some(Value::String(text.to_string()));
                    Ok(())
                }
                (None, None) => Err(Rejection::new(
                    StatusCode::OK,
                    "only trusted documents run on this server, and no trusted document has this hash",
                    "FORBIDDEN",
                )),
                (Some(Value::String(text)), _) if sha256_hex(text) != hash => {
                    Err(Rejection::bad_request("provided sha256Hash does not match the query"))
                }
                (Some(_), _) => Ok(()),
            };
        }
        match &params.query {
            None => {
                let found = self.documents.get(&hash).await;
                if let Some(metrics) = &self.metrics {
                    metrics.persisted_query(found.is_some());
                }
                match found {
                    Some(text) => {
                        params.query = Some(Value::String(text.to_string()));
                        Ok(())
                    }
                    None => Err(Rejection::new(StatusCode::OK, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")),
                }
            }
            Some(Value::String(text)) => {
                if sha256_hex(text) != hash {
                    return Err(Rejection::bad_request("provided sha256Hash does not match the query"));
                }
                self.documents.insert(hash, text.as_str().into()).await;
                Ok(())
            }
            // `into_request` reports a query that is not a string.
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::http::HeaderMap;

    use super::*;
    use crate::pipeline::call::Encoded;
    use crate::pipeline::call::{Reply, XCache};
    use crate::pipeline::chain::Fake;

    fn document(trusted: Option<TrustedDocuments>) -> Document {
        let documents = cache::Documents::new(1 << 20, Duration::from_secs(60));
        Document::new(Persisted::new(documents, trusted.map(Arc::new), None))
    }

    fn post(body: &str) -> Call {
        Call::new(Method::Post, HeaderMap::new(), Bytes::copy_from_slice(body.as_bytes()))
    }

    /// Answers with the request it was handed: query, operation name and
    /// whether the replay hash survived.
    fn report() -> Fake<impl Fn(Operation) -> std::future::Ready<Answer> + Send + Sync + 'static> {
        Fake(|op: Operation| {
            let text = format!("{}|{:?}|{}", op.request.query, op.request.operation_name, op.call.sent.is_some());
            std::future::ready(Answer::Reply(Reply::of(Encoded::ok(text.into()), XCache::Miss)))
        })
    }

    fn handed_on(answer: Answer) -> String {
        match answer {
            Answer::Reply(reply) => String::from_utf8(reply.encoded.body.to_vec()).unwrap(),
            Answer::Refused(rejection) => panic!("refused: {rejection:?}"),
        }
    }

    fn refused(answer: Answer) -> Rejection {
        match answer {
            Answer::Refused(rejection) => rejection,
            Answer::Reply(_) => panic!("handed on"),
        }
    }

    #[tokio::test]
    async fn a_post_body_and_a_query_string_become_the_same_request() {
        let stage = document(None);
        let mut sent = post(r#"{"query":"{ a }","operationName":"A","variables":{"x":1}}"#);
        sent.sent = Some(cache::Fingerprint::of([b"x".as_slice()]));

        let from_post = handed_on(stage.run(sent, &report()).await);
        let get = Call::new(Method::Get, HeaderMap::new(), Bytes::from_static(b"query=%7B+a+%7D&operationName=A"));
        let from_get = handed_on(stage.run(get, &report()).await);

        assert_eq!(from_post, r#"{ a }|Some("A")|true"#);
        assert_eq!(from_get, r#"{ a }|Some("A")|false"#);
    }

    #[tokio::test]
    async fn parameters_of_the_wrong_shape_are_refused_with_what_to_fix() {
        let stage = document(None);
        let cases = [
            ("[{}]", "batched requests (a JSON array) are not accepted; send one object"),
            ("{", "the body is not valid JSON"),
            ("7", "the body must be a JSON object of request parameters"),
            ("{}", "`query` is required"),
            (r#"{"query":1}"#, "`query` must be a string"),
            (r#"{"query":"{a}","variables":[]}"#, "`variables` must be an object"),
            (r#"{"query":"{a}","operationName":2}"#, "`operationName` must be a string"),
            (r#"{"query":"{a}","extensions":"x"}"#, "`extensions` must be an object"),
        ];
        for (body, message) in cases {
            let rejection = refused(stage.run(post(body), &report()).await);
            assert_eq!((rejection.status, &*rejection.message), (StatusCode::BAD_REQUEST, message), "{body}");
            assert_eq!(rejection.code, "BAD_USER_INPUT");
        }
    }

    #[tokio::test]
    async fn a_persisted_query_is_registered_once_then_found_by_hash() {
        let stage = document(None);
        let hash = sha256_hex("{ a }");
        let by_hash = format!(r#"{{"extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}}}"#);
        let with_text =
            format!(r#"{{"query":"{{ a }}","extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}}}"#);

        let unknown = refused(stage.run(post(&by_hash), &report()).await);
        let registered = handed_on(stage.run(post(&with_text), &report()).await);
        let found = handed_on(stage.run(post(&by_hash), &report()).await);

        assert_eq!((unknown.status, unknown.code), (StatusCode::OK, "PERSISTED_QUERY_NOT_FOUND"));
        assert_eq!(registered, "{ a }|None|false");
        assert_eq!(found, "{ a }|None|false");
        let wrong = with_text.replace("{ a }", "{ b }");
        assert_eq!(
            &*refused(stage.run(post(&wrong), &report()).await).message,
            "provided sha256Hash does not match the query"
        );
    }

    #[tokio::test]
    async fn with_trusted_documents_only_the_list_answers_hashes() {
        let list = serde_json::json!({ sha256_hex("{ a }"): "{ a }" }).to_string();
        let trusted = TrustedDocuments::parse(&list).unwrap();
        let stage = document(Some(trusted));
        let ask = |text: &str| {
            post(&format!(
                r#"{{"extensions":{{"persistedQuery":{{"version":1,"sha256Hash":"{}"}}}}}}"#,
                sha256_hex(text)
            ))
        };

        let listed = handed_on(stage.run(ask("{ a }"), &report()).await);
        let unlisted = refused(stage.run(ask("{ b }"), &report()).await);

        assert_eq!(listed, "{ a }|None|false");
        assert_eq!(unlisted.code, "FORBIDDEN");
    }
}
