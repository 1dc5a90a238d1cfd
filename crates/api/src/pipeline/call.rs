//! What moves through the pipeline: a [`Call`] (the request's bytes and
//! who asks) until the document stage makes it an [`Operation`], and the
//! [`Answer`] every stage below decode answers with.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use cache::{Fingerprint, Key, Scope};

use crate::auth::Viewer;

/// The HTTP method: GET runs queries only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Parameters in the query string.
    Get,
    /// Parameters in a JSON body.
    Post,
}

/// A request to `/graphql` as [`super::decode`] hands it on: its bytes, and what
/// the stages before [`super::document`] learn about it.
#[derive(Debug)]
pub struct Call {
    /// GET or POST.
    pub method: Method,
    /// The request's headers.
    pub headers: HeaderMap,
    /// The bytes that carry the parameters: a GET's query string, a
    /// POST's body.
    pub params: Bytes,
    /// `Cache-Control: no-cache`: answered afresh, never from the cache.
    pub no_cache: bool,
    /// Who asks (set by [`super::identity`]; anonymous until then).
    pub viewer: Viewer,
    /// The request's cookie names a write not yet heard here: read the
    /// primary, past the cache (set by [`super::identity`]).
    pub read_primary: bool,
    /// The hash of the bytes as sent, under which the cache remembers the
    /// request's fingerprint (set by [`super::replay`] when the cache is on).
    pub sent: Option<Fingerprint>,
    /// The connection's peer, from the accept loop (set by
    /// [`super::decode`]; `None` when served without one).
    pub peer: Option<std::net::SocketAddr>,
    /// The operation's cost as the limits measured it (set by
    /// [`super::policy`]), which [`super::budget`] charges.
    pub cost: u64,
    /// `Accept` names `multipart/mixed`: a query with `@defer` or `@stream`
    /// is answered in parts (docs/INCREMENTAL.md).
    pub incremental: bool,
}

impl Call {
    /// A call with nothing learnt about it yet.
    pub fn new(method: Method, headers: HeaderMap, params: Bytes) -> Self {
        let no_cache = list_items(&headers, header::CACHE_CONTROL).any(|item| item.eq_ignore_ascii_case("no-cache"));
        let viewer = Viewer::default();
        let incremental = accepts_multipart(&headers);
        Call {
            method,
            headers,
            params,
            no_cache,
            viewer,
            read_primary: false,
            sent: None,
            peer: None,
            cost: 0,
            incremental,
        }
    }

    /// True when the answer must not come from the cache.
    pub fn past_cache(&self) -> bool {
        self.no_cache || self.read_primary
    }

    /// The cache keys of the response to `fingerprint`: shared by every
    /// viewer, and this viewer's own (anonymous is one viewer). The cache
    /// crate adds its format version.
    pub fn keys(&self, fingerprint: Fingerprint) -> (Key, Key) {
        let mut identity = [0_u8; 9];
        if let Some(user) = self.viewer.user {
            identity[0] = 1;
            identity[1..].copy_from_slice(&user.0.to_le_bytes());
        }
        (Key::new(fingerprint, Scope::Shared), Key::new(fingerprint, Scope::Private(&identity)))
    }
}

/// A GraphQL request ready to run, as [`super::document`] hands it on.
pub struct Operation {
    /// What the HTTP request said and who sent it.
    pub call: Call,
    /// The GraphQL request (its document parsed by [`super::policy`]).
    pub request: async_graphql::Request,
}

/// What every stage below [`super::decode`] answers with.
#[derive(Debug)]
pub enum Answer {
    /// Refused before execution: an HTTP status and one error, no `data`.
    Refused(Rejection),
    /// A GraphQL response, executed or from the cache.
    Reply(Reply),
}

/// A request that cannot be executed, with its HTTP status.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// The error's message (boxed `str`: errors stay small).
    pub message: Box<str>,
    /// The error's `extensions.code`.
    pub code: &'static str,
    /// A header the status calls for (`Allow`, `WWW-Authenticate`).
    pub header: Option<(HeaderName, HeaderValue)>,
    /// More headers: the budget's (`Retry-After`, `RateLimit`,
    /// `RateLimit-Policy`). Boxed: errors stay small.
    pub headers: Option<Box<HeaderMap>>,
}

impl Rejection {
    /// A 400 `BAD_USER_INPUT`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Rejection::new(StatusCode::BAD_REQUEST, message, "BAD_USER_INPUT")
    }

    /// Any status, message and code.
    pub fn new(status: StatusCode, message: impl Into<String>, code: &'static str) -> Self {
        Rejection { status, message: message.into().into_boxed_str(), code, header: None, headers: None }
    }

    /// Credentials that were not accepted: 401 `UNAUTHENTICATED` with
    /// `WWW-Authenticate: Bearer`, or 503 `SERVICE_UNAVAILABLE` with
    /// `Retry-After` when the signing keys could not be fetched.
    pub fn credentials(err: &crate::auth::AuthError) -> Self {
        let mut rejection = Rejection::new(err.status(), err.message(), err.code());
        rejection.header = Some(match err {
            crate::auth::AuthError::Refused(_) => (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            crate::auth::AuthError::KeysUnavailable => (header::RETRY_AFTER, HeaderValue::from_static("5")),
        });
        rejection
    }
}

/// An encoded GraphQL response and what the stages on its way out need.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The body and what its status depends on.
    pub encoded: Encoded,
    /// How the cache answered: `x-cache`.
    pub x_cache: XCache,
    /// HTTP headers the resolvers set (a mutation's read-your-writes
    /// cookie).
    pub headers: HeaderMap,
    /// The fields' cache-control hints.
    pub cache_control: async_graphql::CacheControl,
    /// The response has errors: never stored.
    pub has_errors: bool,
    /// The payloads after the first (in `encoded`) of an incremental
    /// answer, each encoded; never stored.
    pub rest: Option<Rest>,
}

/// The later payloads of an incremental answer, taken once by
/// [`super::decode`] (a `Reply` is `Clone` for the waiters of one cached
/// execution; an incremental one is never shared, as it bypasses the cache).
#[derive(Clone)]
pub struct Rest(pub std::sync::Arc<std::sync::Mutex<Option<futures::stream::BoxStream<'static, Bytes>>>>);

impl Rest {
    /// `payloads`, to be taken once.
    pub fn new(payloads: futures::stream::BoxStream<'static, Bytes>) -> Self {
        Rest(std::sync::Arc::new(std::sync::Mutex::new(Some(payloads))))
    }

    /// The payloads, the first time.
    pub fn take(&self) -> Option<futures::stream::BoxStream<'static, Bytes>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rest")
    }
}

impl Reply {
    /// A stored body, answered from the cache.
    pub fn hit(body: Bytes) -> Self {
        Reply::of(Encoded::ok(body), XCache::Hit)
    }

    /// An encoded response with no hints and no headers.
    pub fn of(encoded: Encoded, x_cache: XCache) -> Self {
        Reply {
            encoded,
            x_cache,
            headers: HeaderMap::new(),
            cache_control: async_graphql::CacheControl::default(),
            has_errors: false,
            rest: None,
        }
    }
}

/// How the response cache answered a request, sent as `x-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XCache {
    /// From the cache.
    Hit,
    /// Executed, and stored when cacheable.
    Miss,
    /// Not looked up: the cache is off, the request is not a query, or it
    /// asked to read past the cache.
    Bypass,
}

impl XCache {
    /// The header's value.
    pub fn as_str(self) -> &'static str {
        match self {
            XCache::Hit => "hit",
            XCache::Miss => "miss",
            XCache::Bypass => "bypass",
        }
    }
}

/// The comma-separated items of every `name` header, trimmed
/// (`Accept`, `Cache-Control`).
pub fn list_items(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
}

/// True when `Accept` names `multipart/mixed` (as Apollo Client sends
/// it, `multipart/mixed;deferSpec=20220824`, or bare).
pub fn accepts_multipart(headers: &HeaderMap) -> bool {
    list_items(headers, header::ACCEPT).any(|range| {
        let mut params = range.split(';').map(str::trim);
        let multipart = params.next().is_some_and(|essence| essence.eq_ignore_ascii_case("multipart/mixed"));
        multipart && !params.any(|param| param.replace(' ', "").eq_ignore_ascii_case("q=0"))
    })
}

/// An executed response, encoded once whatever the media type (coalesced
/// requests share it).
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The JSON bytes.
    pub body: Bytes,
    /// Every error came before execution: 400 with the newer media type.
    pub request_error: bool,
    /// Those errors are all TIMEOUT: 504 with the newer media type.
    pub timed_out: bool,
    /// The body did not serialise: `body` is an INTERNAL error, status 500.
    pub failed: bool,
}

impl Encoded {
    /// A successful body (as the cache stores them).
    pub fn ok(body: Bytes) -> Self {
        Encoded { body, request_error: false, timed_out: false, failed: false }
    }
}
