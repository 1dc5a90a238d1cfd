//! Decode: HTTP in and out, per the GraphQL-over-HTTP specification. The
//! response media type is negotiated from `Accept`
//! (`application/graphql-response+json` or `application/json`; 406 for
//! neither), a POST must be `application/json` in UTF-8 (415), and its
//! body is read whole under the body limit (413) and within the body-read
//! deadline (408). On the way out, the
//! [`Answer`] becomes the HTTP response: with the newer media type a
//! request error gets 400 (504 when it ran out of time), with the legacy
//! one 200; `x-cache` says how the cache answered. An answer in parts
//! (a query with `@defer`/`@stream` from a client that accepts
//! `multipart/mixed`) goes out as `multipart/mixed` with boundary `-`, one
//! JSON part per payload, as each is ready.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest as _, Request as HttpRequest};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response as HttpResponse};

use super::call::Encoded;
use super::call::{Answer, Call, Method, Rejection, Reply};
use super::chain::{Next, Stage};
use super::encode::serialise;
use crate::error::error_body;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";
const APPLICATION_JSON: &str = "application/json; charset=utf-8";
/// An answer in parts, in the format Apollo Client and urql read.
const MULTIPART_MIXED: &str = "multipart/mixed; boundary=\"-\"; deferSpec=20220824";
/// What opens every part (the boundary `-`, then the part's headers).
const PART_HEAD: &[u8] = b"\r\n---\r\nContent-Type: application/json; charset=utf-8\r\n\r\n";
/// The end of the last part.
const CLOSE_DELIMITER: &[u8] = b"\r\n-----\r\n";
/// The response header that says how the cache answered.
const X_CACHE: &str = "x-cache";

/// The stage: see the module.
#[derive(Clone)]
pub struct Decode {
    /// How long a client may take to send a body.
    body_read_timeout: Duration,
}

impl Decode {
    /// Reads bodies within `body_read_timeout`.
    pub fn new(body_read_timeout: Duration) -> Self {
        Decode { body_read_timeout }
    }
}

impl<N: Next<Call>> Stage<N> for Decode {
    type In = HttpRequest;
    type Out = HttpResponse;

    async fn run(&self, request: HttpRequest, next: &N) -> HttpResponse {
        let unread = carries_body(&request);
        let Some(media) = negotiate(request.headers()) else { return closing(unread, not_acceptable()) };
        let call = match call(request, self.body_read_timeout).await {
            Ok(call) => call,
            // Refused before its body was read whole (415, 413, 408).
            Err(rejection) => return closing(unread, refused(media, rejection)),
        };
        match next.run(call).await {
            Answer::Refused(rejection) => refused(media, rejection),
            Answer::Reply(reply) => replied(media, reply),
        }
    }
}

/// The request's method, headers and parameter bytes.
async fn call(request: HttpRequest, body_read_timeout: Duration) -> Result<Call, Rejection> {
    let (mut parts, body) = request.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let mut call = if parts.method == axum::http::Method::GET {
        let query = parts.uri.query().unwrap_or_default();
        Call::new(Method::Get, headers, Bytes::copy_from_slice(query.as_bytes()))
    } else {
        check_content_type(&headers)?;
        let body = read_body(HttpRequest::from_parts(parts, body), body_read_timeout).await?;
        Call::new(Method::Post, headers, body)
    };
    call.peer = peer;
    Ok(call)
}

/// Whether `request` is HTTP/1 with a body: refused before the body is
/// read, its connection is closed after the answer (hyper does not read a
/// large unread body to its end), so the answer must say so.
pub(crate) fn carries_body(request: &HttpRequest) -> bool {
    let headers = request.headers();
    request.version() <= axum::http::Version::HTTP_11
        && (headers.contains_key(header::TRANSFER_ENCODING)
            || headers.get(header::CONTENT_LENGTH).is_some_and(|length| length != "0"))
}

/// `response` with `Connection: close` when the request's body went unread
/// (see [`carries_body`]): without it, a client sends its next request on
/// a connection the server is closing, and that request fails (found by
/// the property tests, crates/api/tests/api/fuzz.rs).
pub(crate) fn closing(unread: bool, mut response: HttpResponse) -> HttpResponse {
    if unread {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request's body, whole: under the router's `DefaultBodyLimit` (which
/// the `Bytes` extractor applies, also to a chunked body while it streams;
/// 413) and within `deadline` (408, with `TIMEOUT`: a body that trickles
/// in is the client's slowness, not the server's, so it must not reach the
/// whole-request deadline and its 504).
pub(crate) async fn read_body(request: HttpRequest, deadline: Duration) -> Result<Bytes, Rejection> {
    match tokio::time::timeout(deadline, Bytes::from_request(request, &())).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(err)) => Err(Rejection::new(err.status(), "the request body could not be read", "BAD_USER_INPUT")),
        Err(_) => Err(Rejection::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} ms", deadline.as_millis()),
            "TIMEOUT",
        )),
    }
}

/// The response media types we can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
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
pub fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
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
            // A client that takes answers in parts takes single ones as JSON.
            "application/json" | "application/*" | "*/*" | "multipart/mixed" => MediaType::Json,
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

/// POST bodies must be `application/json` in UTF-8.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Rejection> {
    let unsupported = || {
        Rejection::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the request as `application/json`", "BAD_USER_INPUT")
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

/// Answers with an encoded GraphQL response, its `x-cache` header and the
/// headers its resolvers set.
fn replied(media: MediaType, reply: Reply) -> HttpResponse {
    let Reply { encoded, x_cache, headers, rest, .. } = reply;
    let (mut response, content_type) = match rest.and_then(|rest| rest.take()) {
        Some(rest) => (multipart(encoded.body, rest), MULTIPART_MIXED),
        None => ((status(media, &encoded), encoded.body).into_response(), media.content_type()),
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(header::HeaderName::from_static(X_CACHE), HeaderValue::from_static(x_cache.as_str()));
    out.extend(headers);
    response
}

/// A `multipart/mixed` answer: `first`, then every payload of `rest` as it
/// comes, then the close delimiter. Dropped with the connection, the body
/// drops `rest`, and the parts not yet run never run.
fn multipart(first: Bytes, rest: futures::stream::BoxStream<'static, Bytes>) -> HttpResponse {
    use futures::StreamExt as _;
    let part = |payload: Bytes| {
        let mut bytes = Vec::with_capacity(PART_HEAD.len() + payload.len());
        bytes.extend_from_slice(PART_HEAD);
        bytes.extend_from_slice(&payload);
        Ok::<_, std::convert::Infallible>(Bytes::from(bytes))
    };
    let parts = futures::stream::once(std::future::ready(first))
        .chain(rest)
        .map(part)
        .chain(futures::stream::once(std::future::ready(Ok(Bytes::from_static(CLOSE_DELIMITER)))));
    let mut response = axum::body::Body::from_stream(parts).into_response();
    // Each part must reach the client as it is sent, not when the answer
    // ends: no proxy buffering, no transform.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    headers.insert(header::HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    response
}

/// The status of an encoded response in `media`.
fn status(media: MediaType, encoded: &Encoded) -> StatusCode {
    if encoded.failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if encoded.request_error && media == MediaType::GraphqlResponse {
        // With the newer media type a request error needs a 4xx or 5xx: an
        // execution that ran out of time is the server's (504), any other
        // error before execution is the client's (400).
        if encoded.timed_out { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::BAD_REQUEST }
    } else {
        StatusCode::OK
    }
}

/// A request-level error response (no `data`).
fn refused(media: MediaType, rejection: Rejection) -> HttpResponse {
    let mut response = json_response(rejection.status, media, &error_body(&rejection.message, rejection.code));
    if let Some((name, value)) = rejection.header {
        response.headers_mut().insert(name, value);
    }
    if let Some(headers) = rejection.headers {
        response.headers_mut().extend(*headers);
    }
    response
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
    use axum::body::Body;

    use super::*;
    use crate::pipeline::call::XCache;
    use crate::pipeline::chain::Fake;

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

    /// The stage with the default body-read deadline.
    fn decode() -> Decode {
        Decode::new(Duration::from_secs(10))
    }

    async fn body_json(response: HttpResponse) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The rest of the path answering every call with `{"data":…}` and
    /// the call's parameters echoed as `x-cache: hit`.
    fn echo() -> Fake<impl Fn(Call) -> std::future::Ready<Answer> + Send + Sync + 'static> {
        Fake(|call: Call| {
            let body = format!(r#"{{"data":{{"params":{:?}}}}}"#, String::from_utf8_lossy(&call.params));
            std::future::ready(Answer::Reply(Reply::of(Encoded::ok(body.into()), XCache::Hit)))
        })
    }

    #[tokio::test]
    async fn a_body_that_fails_to_serialise_is_an_internal_error() {
        // Act
        let response = json_response(StatusCode::OK, MediaType::Json, &Unserialisable);

        // Assert
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], APPLICATION_JSON);
        let body = body_json(response).await;
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

    #[tokio::test]
    async fn a_post_hands_on_its_body_and_the_reply_comes_back_as_http() {
        // Arrange
        let request = HttpRequest::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/graphql-response+json")
            .body(Body::from(r#"{"query":"{ a }"}"#))
            .unwrap();

        // Act
        let response = decode().run(request, &echo()).await;

        // Assert
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], GRAPHQL_RESPONSE_JSON);
        assert_eq!(response.headers()[X_CACHE], "hit");
        assert_eq!(body_json(response).await["data"]["params"], r#"{"query":"{ a }"}"#);
    }

    #[tokio::test]
    async fn a_get_hands_on_its_query_string() {
        let request = HttpRequest::get("/graphql?query=%7Ba%7D").body(Body::empty()).unwrap();

        let response = decode().run(request, &echo()).await;

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], APPLICATION_JSON);
        assert_eq!(body_json(response).await["data"]["params"], "query=%7Ba%7D");
    }

    #[tokio::test]
    async fn what_is_not_graphql_over_http_never_reaches_the_rest_of_the_path() {
        let unreachable = Fake(|_: Call| async { panic!("handed on") });
        let cases = [
            (HttpRequest::post("/graphql").header(header::ACCEPT, "text/html"), StatusCode::NOT_ACCEPTABLE),
            (
                HttpRequest::post("/graphql").header(header::CONTENT_TYPE, "text/plain"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                HttpRequest::post("/graphql").header(header::CONTENT_TYPE, "application/json; charset=latin1"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
        ];
        for (request, status) in cases {
            let response = decode().run(request.body(Body::from("{}")).unwrap(), &unreachable).await;
            assert_eq!(response.status(), status);
            assert_eq!(body_json(response).await["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        }
    }

    #[tokio::test]
    async fn a_request_error_is_400_with_the_new_media_type_and_200_with_the_old() {
        let request_error = Fake(|_: Call| async {
            let encoded = Encoded { request_error: true, ..Encoded::ok(r#"{"errors":[]}"#.into()) };
            Answer::Reply(Reply::of(encoded, XCache::Bypass))
        });
        for (accept, status) in
            [("application/graphql-response+json", StatusCode::BAD_REQUEST), ("application/json", StatusCode::OK)]
        {
            let request =
                HttpRequest::get("/graphql?query=x").header(header::ACCEPT, accept).body(Body::empty()).unwrap();
            let response = decode().run(request, &request_error).await;
            assert_eq!(response.status(), status, "{accept}");
            assert_eq!(response.headers()[X_CACHE], "bypass");
        }
    }

    #[tokio::test]
    async fn a_refusal_carries_its_status_and_header() {
        let refuse = Fake(|_: Call| async {
            Answer::Refused(Rejection::credentials(&crate::auth::AuthError::Refused("bad token".into())))
        });
        let request = HttpRequest::get("/graphql?query=x").body(Body::empty()).unwrap();

        let response = decode().run(request, &refuse).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let body = body_json(response).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert!(body.get("data").is_none());
    }

    #[tokio::test]
    async fn a_body_that_trickles_past_its_deadline_is_the_clients_408() {
        // One byte, then nothing: the client stalls mid-body.
        let stalled = futures::stream::StreamExt::chain(
            futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{")) }),
            futures::stream::pending(),
        );
        let request = HttpRequest::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stalled))
            .unwrap();
        let unreachable = Fake(|_: Call| async { panic!("a stalled body was handed on") });
        let response = Decode::new(Duration::from_millis(50)).run(request, &unreachable).await;
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        let body = body_json(response).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT");
        assert_eq!(body["errors"][0]["message"], "the request body did not arrive within 50 ms");
    }
}
