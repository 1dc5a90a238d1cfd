//! `GET` and `POST /graphql` per the GraphQL-over-HTTP specification:
//! the response media type is negotiated from `Accept`
//! (`application/graphql-response+json` or `application/json`), requests
//! that cannot be executed (bad JSON, missing `query`, a document that does
//! not parse or validate) get no `data` entry, and with the newer media
//! type they get status 400. Mutations over GET are refused with 405.
//!
//! Queries go through the response cache when it is enabled
//! (docs/CACHE.md): a shared entry first, then the viewer's own, then one
//! execution shared by identical concurrent requests. Every answer to an
//! executed request says which in `x-cache: hit|miss|bypass`.
//!
//! Apollo's automatic persisted queries: a request may send only
//! `extensions.persistedQuery.sha256Hash` (a GET a CDN can cache); an
//! unknown hash is answered with `PersistedQueryNotFound`, and the client
//! then sends the document with its hash once.

use async_graphql::parser::types::{DocumentOperations, OperationType};
use std::sync::Arc;

use async_graphql::{Executor as _, Request, Response, ServerError, Variables};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use cache::{Epoch, Key, Outcome, ResponseCache, Scope, Stored, Touched};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument as _;

use super::{AppState, error_body};
use crate::error::ApiError;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";
const APPLICATION_JSON: &str = "application/json; charset=utf-8";
/// The response header that says how the cache answered.
const X_CACHE: &str = "x-cache";

/// The response media types we can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    /// `application/graphql-response+json`: status codes carry meaning.
    GraphqlResponse,
    /// `application/json`: the legacy type; well-formed requests get 200.
    Json,
}

impl MediaType {
    fn content_type(self) -> &'static str {
        match self {
            MediaType::GraphqlResponse => GRAPHQL_RESPONSE_JSON,
            MediaType::Json => APPLICATION_JSON,
        }
    }
}

/// Picks the response media type from `Accept`; `None` is 406. No header
/// means `application/json`, as the specification asks of servers that
/// still serve legacy clients.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    let mut best: Option<(f32, MediaType)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let essence = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut quality = 1.0_f32;
        let mut charset_ok = true;
        for param in parts {
            if let Some((name, value)) = param.split_once('=') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "q" => quality = value.trim().parse().unwrap_or(0.0),
                    "charset" => charset_ok = value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8"),
                    _ => {}
                }
            }
        }
        let media = match essence.as_str() {
            "application/graphql-response+json" => MediaType::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        if quality <= 0.0 || !charset_ok {
            continue;
        }
        // Prefer the higher quality; on a tie, the more specific new type.
        let better = match best {
            None => true,
            Some((q, m)) => {
                quality > q || (quality == q && m == MediaType::Json && media == MediaType::GraphqlResponse)
            }
        };
        if better {
            best = Some((quality, media));
        }
    }
    best.map(|(_, media)| media)
}

/// A GraphQL request's parameters, as sent in a POST body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    query: Option<Value>,
    operation_name: Option<Value>,
    variables: Option<Value>,
    extensions: Option<Value>,
}

/// A request that cannot be executed, with its HTTP status.
struct Rejection {
    status: StatusCode,
    message: String,
    code: &'static str,
}

impl Rejection {
    fn bad_request(message: impl Into<String>) -> Self {
        Rejection { status: StatusCode::BAD_REQUEST, message: message.into(), code: "BAD_USER_INPUT" }
    }
}

/// Validates the parameter types the specification requires.
fn into_request(params: Params) -> Result<Request, Rejection> {
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

/// Applies the automatic persisted queries protocol: with
/// `extensions.persistedQuery` (version 1) and no `query`, fills the query
/// in from the store or fails with `PersistedQueryNotFound`; with both,
/// checks the hash and registers the document.
async fn persisted(state: &AppState, params: &mut Params) -> Result<(), Rejection> {
    let Some(Value::Object(extensions)) = &params.extensions else { return Ok(()) };
    let Some(persisted) = extensions.get("persistedQuery") else { return Ok(()) };
    if persisted.get("version") != Some(&json!(1)) {
        return Err(Rejection::bad_request("`persistedQuery.version` must be 1"));
    }
    let Some(hash) = persisted.get("sha256Hash").and_then(Value::as_str) else {
        return Err(Rejection::bad_request("`persistedQuery.sha256Hash` must be a string"));
    };
    let hash = hash.to_ascii_lowercase();
    match &params.query {
        None => {
            let found = state.documents.get(&hash).await;
            if let Some(metrics) = &state.metrics {
                metrics.persisted_query(found.is_some());
            }
            match found {
                Some(text) => {
                    params.query = Some(Value::String(text.to_string()));
                    Ok(())
                }
                None => Err(Rejection {
                    status: StatusCode::OK,
                    message: "PersistedQueryNotFound".into(),
                    code: "PERSISTED_QUERY_NOT_FOUND",
                }),
            }
        }
        Some(Value::String(text)) => {
            if sha256_hex(text) != hash {
                return Err(Rejection::bad_request("provided sha256Hash does not match the query"));
            }
            state.documents.insert(hash, text.as_str().into()).await;
            Ok(())
        }
        // `into_request` reports a query that is not a string.
        Some(_) => Ok(()),
    }
}

/// The lower-case hex SHA-256 of `text`.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut hex, byte| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Parses the GET query string: `variables` and `extensions` are JSON.
fn get_params(raw: Option<&str>) -> Result<Params, Rejection> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|_| Rejection::bad_request("malformed query string"))?;
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

/// True when the operation the request selects is a mutation or a
/// subscription (both refused over GET). Unparseable documents are left
/// to execution, which reports the syntax error.
fn selects_non_query(request: &Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let ty = match (&document.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    };
    matches!(ty, Some(OperationType::Mutation | OperationType::Subscription))
}

/// `GET /graphql`.
pub(super) async fn get(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResponse {
    let Some(media) = negotiate(&headers) else { return not_acceptable() };
    let mut params = match get_params(raw.as_deref()) {
        Ok(params) => params,
        Err(rejection) => return reject(media, rejection),
    };
    if let Err(rejection) = persisted(&state, &mut params).await {
        return reject(media, rejection);
    }
    let request = match into_request(params) {
        Ok(request) => request,
        Err(rejection) => return reject(media, rejection),
    };
    if selects_non_query(&request) {
        let mut response = reject(
            media,
            Rejection {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "use POST for mutations".into(),
                code: "BAD_USER_INPUT",
            },
        );
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&state, &headers, media, request).await
}

/// `POST /graphql`.
pub(super) async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> HttpResponse {
    let Some(media) = negotiate(&headers) else { return not_acceptable() };
    if let Err(rejection) = check_content_type(&headers) {
        return reject(media, rejection);
    }
    let body = match body {
        Ok(body) => body,
        Err(err) => {
            return reject(
                media,
                Rejection {
                    status: err.status(),
                    message: "the request body could not be read".into(),
                    code: "BAD_USER_INPUT",
                },
            );
        }
    };
    // Batches (a JSON array of requests) are refused: one body would buy
    // many executions past the per-request limits and the load shedding.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return reject(
            media,
            Rejection::bad_request("batched requests (a JSON array) are not accepted; send one object"),
        );
    }
    // One pass from bytes to parameters; serde's error category tells a
    // body that is not JSON from one that is not a parameter object.
    let mut params = match serde_json::from_slice::<Params>(&body) {
        Ok(params) => params,
        Err(err) if err.is_data() => {
            return reject(media, Rejection::bad_request("the body must be a JSON object of request parameters"));
        }
        Err(_) => return reject(media, Rejection::bad_request("the body is not valid JSON")),
    };
    if let Err(rejection) = persisted(&state, &mut params).await {
        return reject(media, rejection);
    }
    let request = match into_request(params) {
        Ok(request) => request,
        Err(rejection) => return reject(media, rejection),
    };
    execute(&state, &headers, media, request).await
}

/// POST bodies must be `application/json` in UTF-8.
fn check_content_type(headers: &HeaderMap) -> Result<(), Rejection> {
    let unsupported = || Rejection {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: "send the request as `application/json`".into(),
        code: "BAD_USER_INPUT",
    };
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or_else(unsupported)?;
    let mut parts = value.split(';').map(str::trim);
    if !parts.next().unwrap_or_default().eq_ignore_ascii_case("application/json") {
        return Err(unsupported());
    }
    for param in parts {
        if let Some((name, charset)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
            && !charset.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(unsupported());
        }
    }
    Ok(())
}

/// Authenticates, executes and encodes one request.
async fn execute(state: &AppState, headers: &HeaderMap, media: MediaType, request: Request) -> HttpResponse {
    let viewer = match state.auth.viewer(headers.get(header::AUTHORIZATION)) {
        Ok(viewer) => viewer,
        Err(err) => {
            let mut response = reject(
                media,
                Rejection { status: StatusCode::UNAUTHORIZED, message: err.message().to_owned(), code: err.code() },
            );
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let Some(cache) = &state.cache else {
        let response = state.schema.execute(request.data(viewer)).await;
        return respond(media, &encode(response), "bypass");
    };
    let mut request = request;
    if let Err(refusal) = state.schema.check(&mut request) {
        return respond(media, &encode(Response::from_errors(vec![refusal])), "bypass");
    }
    let Some(fingerprint) = crate::response_cache::fingerprint(&mut request) else {
        // Mutations, subscriptions and documents that do not parse.
        let response = state.schema.execute_checked(request.data(viewer)).await;
        return respond(media, &encode(response), "bypass");
    };
    // Key parts: the fingerprint (normalized document, operation name,
    // canonical variables), then the scope: shared, or this viewer's own
    // (anonymous is one viewer); the cache crate adds its format version.
    let mut identity = [0_u8; 9];
    if let Some(user) = viewer.user {
        identity[0] = 1;
        identity[1..].copy_from_slice(&user.0.to_le_bytes());
    }
    let shared = Key::new(fingerprint, Scope::Shared);
    let private = Key::new(fingerprint, Scope::Private(&identity));
    let run = |began: Epoch| run_cacheable(state, cache, shared, request.data(viewer), began);
    if wants_no_cache(headers) {
        // Executed afresh, and the fresh answer replaces the stored one.
        let began = cache.begin();
        return match run(began).await {
            Ok(stored) => {
                let body = stored.body.clone();
                cache.insert(private, stored).await;
                respond(media, &Encoded::ok(body), "bypass")
            }
            Err(encoded) => respond(media, &encoded, "bypass"),
        };
    }
    let lookup = tracing::debug_span!("cache.lookup", cache.scope = "shared", cache.hit = tracing::field::Empty);
    if let Some(body) = cache.get(shared).instrument(lookup.clone()).await {
        lookup.record("cache.hit", true);
        return respond(media, &Encoded::ok(body), "hit");
    }
    lookup.record("cache.hit", false);
    drop(lookup);
    // On a miss this span holds the execution (or the wait for an
    // identical one).
    let lookup = tracing::debug_span!("cache.lookup", cache.scope = "private");
    match cache.get_or_run(private, run).instrument(lookup).await {
        Ok(Outcome::Hit(body)) => respond(media, &Encoded::ok(body), "hit"),
        Ok(Outcome::Miss(body)) => respond(media, &Encoded::ok(body), "miss"),
        Err(encoded) => respond(media, &encoded, "miss"),
    }
}

/// Executes a query whose response may be cached: `Ok` with what to store
/// (under the viewer's key; also under the `shared` key when no resolver
/// found it viewer-dependent), `Err` with a response never to store (it
/// has errors).
async fn run_cacheable(
    state: &AppState,
    cache: &ResponseCache,
    shared: Key,
    request: Request,
    began: Epoch,
) -> Result<Stored, Arc<Encoded>> {
    let touched = Arc::new(Touched::default());
    let response = state.schema.execute_checked(request.data(Arc::clone(&touched))).await;
    let cacheable = response.errors.is_empty();
    let encoded = encode(response);
    if !cacheable || encoded.failed {
        return Err(Arc::new(encoded));
    }
    let stored = Stored { body: encoded.body, tags: touched.take_tags(), began };
    if !touched.is_viewer_dependent() {
        cache.insert(shared, stored.clone()).await;
    }
    Ok(stored)
}

/// True when the request asks not to be answered from the cache.
fn wants_no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| directive.trim().eq_ignore_ascii_case("no-cache"))
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
}

/// An executed response, encoded once whatever the media type (coalesced
/// requests share it).
#[derive(Debug, Clone)]
struct Encoded {
    body: Bytes,
    /// Every error came before execution: 400 with the newer media type.
    request_error: bool,
    /// Those errors are all TIMEOUT: 504 with the newer media type.
    timed_out: bool,
    /// The body did not serialise: `body` is an INTERNAL error, status 500.
    failed: bool,
}

impl Encoded {
    /// A successful body (as the cache stores them).
    fn ok(body: Bytes) -> Self {
        Encoded { body, request_error: false, timed_out: false, failed: false }
    }
}

/// Encodes an executed response. A response whose errors all came before
/// execution (parse, validation, variable coercion) carries no `data`.
fn encode(response: Response) -> Encoded {
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let body = Body {
        errors: response.errors.into_iter().map(|e| error_json(e, request_error)).collect(),
        data: (!request_error).then_some(&response.data),
        extensions: &response.extensions,
    };
    let timed_out = body.errors.iter().all(|e| e["extensions"]["code"] == "TIMEOUT");
    match serialise(&body) {
        Ok(bytes) => Encoded { body: bytes.into(), request_error, timed_out, failed: false },
        Err(bytes) => Encoded { body: bytes.into(), request_error, timed_out, failed: true },
    }
}

/// Answers with an encoded response and its `x-cache` header.
fn respond(media: MediaType, encoded: &Encoded, x_cache: &'static str) -> HttpResponse {
    let status = if encoded.failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if encoded.request_error && media == MediaType::GraphqlResponse {
        // With the newer media type a request error needs a 4xx or 5xx: an
        // execution that ran out of time is the server's (504), any other
        // error before execution is the client's (400).
        if encoded.timed_out { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::BAD_REQUEST }
    } else {
        StatusCode::OK
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(media.content_type())),
        (header::HeaderName::from_static(X_CACHE), HeaderValue::from_static(x_cache)),
    ];
    (status, headers, encoded.body.clone()).into_response()
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

/// A request-level error response (no `data`).
fn reject(media: MediaType, rejection: Rejection) -> HttpResponse {
    json_response(rejection.status, media, &error_body(&rejection.message, rejection.code))
}

fn not_acceptable() -> HttpResponse {
    let body = error_body("accept application/graphql-response+json or application/json", "BAD_USER_INPUT");
    json_response(StatusCode::NOT_ACCEPTABLE, MediaType::Json, &body)
}

/// Encodes `body` as the response. A body that does not serialise is a bug:
/// it is logged and answered with a 500 INTERNAL error, never with an empty
/// body behind a success status.
fn json_response(status: StatusCode, media: MediaType, body: &impl serde::Serialize) -> HttpResponse {
    let (status, bytes) = match serialise(body) {
        Ok(bytes) => (status, bytes),
        Err(bytes) => (StatusCode::INTERNAL_SERVER_ERROR, bytes),
    };
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(media.content_type()))], bytes).into_response()
}

/// `body` as JSON, or (logged) the INTERNAL error body when it does not
/// serialise.
fn serialise(body: &impl serde::Serialize) -> Result<Vec<u8>, Vec<u8>> {
    serde_json::to_vec(body).map_err(|err| {
        tracing::error!(exception.type = "INTERNAL", error.message = %err, "response did not serialise");
        let internal = ApiError::Internal;
        // A `Value` always serialises: `to_string` cannot fail.
        error_body(internal.message(), internal.code()).to_string().into_bytes()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    /// A body whose serialisation always fails.
    struct Unserialisable;

    impl serde::Serialize for Unserialisable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("cannot serialise this"))
        }
    }

    #[tokio::test]
    async fn a_body_that_fails_to_serialise_is_an_internal_error() {
        // Act
        let response = json_response(StatusCode::OK, MediaType::Json, &Unserialisable);

        // Assert
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], APPLICATION_JSON);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL");
        assert_eq!(body["errors"][0]["message"], "internal error");
    }

    #[test]
    fn negotiation_follows_accept() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(MediaType::Json));
        assert_eq!(negotiate(&accept("application/graphql-response+json")), Some(MediaType::GraphqlResponse));
        assert_eq!(negotiate(&accept("application/json")), Some(MediaType::Json));
        assert_eq!(negotiate(&accept("*/*")), Some(MediaType::Json));
        assert_eq!(
            negotiate(&accept("application/json;q=0.5, application/graphql-response+json")),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(
            negotiate(&accept("application/graphql-response+json;q=0.1, application/json")),
            Some(MediaType::Json)
        );
        assert_eq!(negotiate(&accept("text/html")), None);
        assert_eq!(negotiate(&accept("application/json; charset=utf-16")), None);
    }
}
