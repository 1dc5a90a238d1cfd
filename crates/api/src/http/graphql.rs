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
//! executed request says which in `x-cache: hit|miss|bypass`. A request
//! whose bytes were seen before is looked up without being parsed
//! ([`cache::Requests`]).
//!
//! Apollo's automatic persisted queries: a request may send only
//! `extensions.persistedQuery.sha256Hash` (a GET a CDN can cache); an
//! unknown hash is answered with `PersistedQueryNotFound`, and the client
//! then sends the document with its hash once.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use cache::{Epoch, Fingerprint, Key, Outcome, ResponseCache, Scope, Stored, Touched};
use tracing::Instrument as _;

use super::encode::{Encoded, encode, serialise};
use super::params::{Rejection, body_params, check_content_type, get_params, into_request, list_items, persisted};
use super::{AppState, error_body};
use crate::auth::Viewer;
use crate::replica::ReadPrimary;

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

/// True when the operation the request selects is a mutation or a
/// subscription (both refused over GET). Reads the document
/// [`crate::graphql::BatchedSchema::check`] parsed; one that did not parse
/// is left to execution, which reports the syntax error.
fn selects_non_query(request: &mut Request) -> bool {
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return false;
    };
    let ty = crate::graphql::select_operation(document, operation_name.as_deref()).map(|op| op.ty);
    matches!(ty, Some(OperationType::Mutation | OperationType::Subscription))
}

/// `GET /graphql`.
pub(super) async fn get(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> HttpResponse {
    let Some(media) = negotiate(&headers) else { return not_acceptable() };
    let sent = sent(&state, Method::Get, raw.as_deref().unwrap_or_default().as_bytes());
    if let Some(answer) = answer_again(&state, &headers, media, sent).await {
        return answer;
    }
    let mut params = match get_params(raw.as_deref()) {
        Ok(params) => params,
        Err(rejection) => return reject(media, rejection),
    };
    let sent = sent.filter(|_| params.extensions.is_none());
    if let Err(rejection) = persisted(&state, &mut params).await {
        return reject(media, rejection);
    }
    let request = match into_request(params) {
        Ok(request) => request,
        Err(rejection) => return reject(media, rejection),
    };
    execute(&state, &headers, media, request, Method::Get, sent).await
}

/// `POST /graphql`.
pub(super) async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> HttpResponse {
    let Some(media) = negotiate(&headers) else { return not_acceptable() };
    let sent = match &body {
        Ok(bytes) if check_content_type(&headers).is_ok() => sent(&state, Method::Post, bytes),
        _ => None,
    };
    if let Some(answer) = answer_again(&state, &headers, media, sent).await {
        return answer;
    }
    let mut params = match body_params(&headers, body) {
        Ok(params) => params,
        Err(rejection) => return reject(media, rejection),
    };
    let sent = sent.filter(|_| params.extensions.is_none());
    if let Err(rejection) = persisted(&state, &mut params).await {
        return reject(media, rejection);
    }
    let request = match into_request(params) {
        Ok(request) => request,
        Err(rejection) => return reject(media, rejection),
    };
    execute(&state, &headers, media, request, Method::Post, sent).await
}

/// The hash of a request's bytes as sent, by which [`cache::Requests`]
/// remembers its fingerprint; `None` when the cache is off.
fn sent(state: &AppState, method: Method, bytes: &[u8]) -> Option<Fingerprint> {
    let method: &[u8] = match method {
        Method::Get => b"GET",
        Method::Post => b"POST",
    };
    state.cache.as_ref().map(|_| Fingerprint::of([method, bytes]))
}

/// Answers from the cache, without parsing it, a request whose bytes were
/// seen before and found cacheable; `None` sends it down the full path:
/// bytes never seen or forgotten, nothing fresh stored, credentials that
/// do not verify (the full path answers 401), or a request that must read
/// past the cache. Only requests that passed every check, with no
/// persisted-query extension, are remembered, so skipping the parse skips
/// no check: the limits depend only on the bytes and the configuration.
async fn answer_again(
    state: &AppState,
    headers: &HeaderMap,
    media: MediaType,
    sent: Option<Fingerprint>,
) -> Option<HttpResponse> {
    let cache = state.cache.as_ref()?;
    let fingerprint = cache.requests().get(sent?)?;
    if wants_no_cache(headers) || state.writes.names_others_write(headers) {
        return None;
    }
    let viewer = state.auth.viewer(headers.get(header::AUTHORIZATION)).ok()?;
    let (shared, private) = keys(fingerprint, viewer);
    let body = match cached(cache, shared).await {
        Some(body) => body,
        None => cache.get(private).instrument(tracing::debug_span!("cache.lookup", cache.scope = "private")).await?,
    };
    Some(respond(media, &Encoded::ok(body), "hit"))
}

/// The keys of a request's response: shared by every viewer, and the
/// viewer's own (anonymous is one viewer). The cache crate adds its
/// format version.
fn keys(fingerprint: Fingerprint, viewer: Viewer) -> (Key, Key) {
    let mut identity = [0_u8; 9];
    if let Some(user) = viewer.user {
        identity[0] = 1;
        identity[1..].copy_from_slice(&user.0.to_le_bytes());
    }
    (Key::new(fingerprint, Scope::Shared), Key::new(fingerprint, Scope::Private(&identity)))
}

/// The fresh shared response under `shared`, if any.
async fn cached(cache: &ResponseCache, shared: Key) -> Option<Bytes> {
    let lookup = tracing::debug_span!("cache.lookup", cache.scope = "shared", cache.hit = tracing::field::Empty);
    let body = cache.get(shared).instrument(lookup.clone()).await;
    lookup.record("cache.hit", body.is_some());
    body
}

/// The HTTP method a request came with: GET runs queries only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

/// Authenticates, checks, executes and encodes one request.
async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    media: MediaType,
    request: Request,
    method: Method,
    sent: Option<Fingerprint>,
) -> HttpResponse {
    let viewer = match state.auth.viewer(headers.get(header::AUTHORIZATION)) {
        Ok(viewer) => viewer,
        Err(err) => {
            let mut response = reject(media, Rejection::unauthorized(&err));
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    // A write made through another server that this one has not heard of
    // yet: read past the cache, from the primary (crate::read_your_writes).
    let behind = !state.writes.caught_up(headers).await;
    let mut request = request.data(viewer);
    if behind {
        request = request.data(ReadPrimary);
    }
    // Checked first: no document skips the limits or reaches the parser
    // unbounded, whatever path it takes below.
    if let Err(refusal) = state.schema.check(&mut request) {
        return respond(media, &encode(Response::from_errors(vec![refusal])), "bypass");
    }
    if method == Method::Get && selects_non_query(&mut request) {
        let rejection = Rejection {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: "use POST for mutations".into(),
            code: "BAD_USER_INPUT",
        };
        let mut response = reject(media, rejection);
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let Some(cache) = &state.cache else {
        return respond_executed(media, state.schema.execute_checked(request).await);
    };
    let Some(fingerprint) = crate::response_cache::fingerprint(&mut request) else {
        // Mutations, subscriptions and documents that do not parse.
        return respond_executed(media, state.schema.execute_checked(request).await);
    };
    if let Some(sent) = sent {
        cache.requests().insert(sent, fingerprint);
    }
    // Key parts: the fingerprint (normalized document, operation name,
    // canonical variables), then the scope.
    let (shared, private) = keys(fingerprint, viewer);
    let run = |began: Epoch| run_cacheable(state, cache, shared, request, began);
    if behind || wants_no_cache(headers) {
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
    if let Some(body) = cached(cache, shared).await {
        return respond(media, &Encoded::ok(body), "hit");
    }
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
    // The fields' cache-control hints: `no-cache` (-1) is never stored, a
    // max-age shortens the entry's life, `private` keeps it to the viewer.
    let control = response.cache_control;
    let cacheable = response.errors.is_empty() && control.max_age != -1;
    let encoded = encode(response);
    if !cacheable || encoded.failed {
        return Err(Arc::new(encoded));
    }
    let max_age = u64::try_from(control.max_age).ok().filter(|&secs| secs > 0).map(Duration::from_secs);
    // Begun earlier when it read a replica that lags (crate::replica).
    let stored = Stored { body: encoded.body, tags: touched.take_tags(), max_age, began: touched.began(began) };
    if !touched.is_viewer_dependent() && control.public {
        cache.insert(shared, stored.clone()).await;
    }
    Ok(stored)
}

/// True when the request asks not to be answered from the cache.
fn wants_no_cache(headers: &HeaderMap) -> bool {
    list_items(headers, header::CACHE_CONTROL).any(|directive| directive.eq_ignore_ascii_case("no-cache"))
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

/// Answers an executed, uncached request, with the HTTP headers its
/// resolvers set (a mutation's read-your-writes cookie).
fn respond_executed(media: MediaType, mut response: Response) -> HttpResponse {
    let set = std::mem::take(&mut response.http_headers);
    let mut answer = respond(media, &encode(response), "bypass");
    answer.headers_mut().extend(set);
    answer
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
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
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
