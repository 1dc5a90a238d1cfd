//! Replay: a request sent again byte for byte is answered from the cache
//! without being parsed (docs/CACHE.md, "Requests sent again"). Finding a
//! request's fingerprint means the JSON parse, the document parse, the
//! limits and the normalization; [`cache::Requests`] remembers the
//! fingerprint each cacheable request was found to have by the hash of its
//! bytes as sent, which this stage computes and [`super::cache`] fills in.
//!
//! Only requests that passed every check are remembered, so skipping them
//! skips no check: the limits depend only on the bytes and the
//! configuration. What depends on more than the bytes ran before this
//! stage (`Accept`, `Content-Type`, the credentials, the read-your-writes
//! cookie) or is checked here (`Cache-Control: no-cache`). Anything not
//! answered here takes the full path.

use cache::{Fingerprint, ResponseCache};
use tracing::Instrument as _;

use super::call::{Answer, Call, Method, Reply};
use super::chain::{Next, Stage};

/// The stage: see the module.
#[derive(Clone)]
pub struct Replay {
    cache: Option<ResponseCache>,
}

impl Replay {
    /// Answers from `cache`; with no cache every call is handed on.
    pub fn new(cache: Option<ResponseCache>) -> Self {
        Replay { cache }
    }
}

impl<N: Next<Call>> Stage<N> for Replay {
    type In = Call;
    type Out = Answer;

    async fn run(&self, mut call: Call, next: &N) -> Answer {
        if let Some(cache) = &self.cache {
            let method: &[u8] = match call.method {
                Method::Get => b"GET",
                Method::Post => b"POST",
            };
            let sent = Fingerprint::of([method, &call.params]);
            call.sent = Some(sent);
            if !call.past_cache()
                && let Some(fingerprint) = cache.requests().get(sent)
                && let Some(body) = lookup(cache, &call, fingerprint).await
            {
                return Answer::Reply(Reply::hit(body));
            }
        }
        next.run(call).await
    }
}

/// The fresh response to `fingerprint` for this viewer: shared, else the
/// viewer's own.
async fn lookup(cache: &ResponseCache, call: &Call, fingerprint: Fingerprint) -> Option<axum::body::Bytes> {
    let (shared, private) = call.keys(fingerprint);
    let span = tracing::debug_span!("cache.lookup", cache.scope = "shared", cache.hit = tracing::field::Empty);
    let body = cache.get(shared).instrument(span.clone()).await;
    span.record("cache.hit", body.is_some());
    match body {
        Some(body) => Some(body),
        None => cache.get(private).instrument(tracing::debug_span!("cache.lookup", cache.scope = "private")).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, header};
    use cache::{Key, Stored};

    use super::*;
    use crate::auth::Viewer;
    use crate::pipeline::call::Encoded;
    use crate::pipeline::call::XCache;
    use crate::pipeline::chain::Fake;

    fn response_cache() -> ResponseCache {
        ResponseCache::new(cache::Config { max_bytes: 1 << 20, ttl: Duration::from_secs(60) })
    }

    fn call(params: &str) -> Call {
        Call::new(Method::Post, HeaderMap::new(), Bytes::copy_from_slice(params.as_bytes()))
    }

    /// Counts the calls handed on, answering each with a miss.
    fn counting(count: Arc<AtomicUsize>) -> Fake<impl Fn(Call) -> std::future::Ready<Answer> + Send + Sync + 'static> {
        Fake(move |_: Call| {
            count.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Answer::Reply(Reply::of(Encoded::ok("executed".into()), XCache::Miss)))
        })
    }

    async fn store(cache: &ResponseCache, key: Key, body: &'static str) {
        let stored = Stored { body: body.into(), tags: vec![], max_age: None, began: cache.begin() };
        cache.insert(key, stored).await;
    }

    /// A cache that remembers `params` as `fingerprint` with `body` stored
    /// under the key `scope` picks for `viewer`.
    async fn remembered(params: &str, body: &'static str, viewer: Viewer, shared: bool) -> ResponseCache {
        let cache = response_cache();
        let fingerprint = Fingerprint::of([b"the document".as_slice()]);
        let mut sent = call(params);
        sent.viewer = viewer;
        cache.requests().insert(Fingerprint::of([b"POST".as_slice(), params.as_bytes()]), fingerprint);
        let (shared_key, private_key) = sent.keys(fingerprint);
        store(&cache, if shared { shared_key } else { private_key }, body).await;
        cache
    }

    fn body(answer: Answer) -> (String, XCache) {
        let Answer::Reply(reply) = answer else { panic!("refused") };
        (String::from_utf8(reply.encoded.body.to_vec()).unwrap(), reply.x_cache)
    }

    #[tokio::test]
    async fn bytes_seen_before_are_answered_from_the_cache_without_going_further() {
        let cache = remembered(r#"{"query":"{ a }"}"#, "stored", Viewer::default(), true).await;
        let handed_on = Arc::new(AtomicUsize::new(0));

        let answer = Replay::new(Some(cache)).run(call(r#"{"query":"{ a }"}"#), &counting(handed_on.clone())).await;

        assert_eq!(body(answer), ("stored".to_owned(), XCache::Hit));
        assert_eq!(handed_on.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn other_bytes_another_viewers_entry_or_no_cache_take_the_full_path() {
        let handed_on = Arc::new(AtomicUsize::new(0));
        let next = counting(handed_on.clone());
        let alice = Viewer { user: Some(db::UserId(1)) };
        let private = remembered("{}", "alice's", alice, false).await;

        // Other bytes (one space more).
        let answer = Replay::new(Some(private.clone())).run(call("{ }"), &next).await;
        assert_eq!(body(answer).1, XCache::Miss);
        // Another viewer: alice's private entry is not theirs.
        let answer = Replay::new(Some(private.clone())).run(call("{}"), &next).await;
        assert_eq!(body(answer).1, XCache::Miss);
        // Cache-Control: no-cache.
        let mut fresh = call("{}");
        fresh.viewer = alice;
        fresh.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let fresh = Call::new(fresh.method, fresh.headers, fresh.params);
        let answer = Replay::new(Some(private.clone())).run(fresh, &next).await;
        assert_eq!(body(answer).1, XCache::Miss);
        // Alice herself is answered from her entry.
        let mut hers = call("{}");
        hers.viewer = alice;
        assert_eq!(body(Replay::new(Some(private)).run(hers, &next).await), ("alice's".to_owned(), XCache::Hit));

        assert_eq!(handed_on.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_hash_of_the_bytes_is_handed_on_only_when_the_cache_is_on() {
        let sent = Fake(|call: Call| {
            std::future::ready(Answer::Reply(Reply::of(
                Encoded::ok(format!("{:?}", call.sent.is_some()).into()),
                XCache::Miss,
            )))
        });

        let on = Replay::new(Some(response_cache())).run(call("{}"), &sent).await;
        let off = Replay::new(None).run(call("{}"), &sent).await;

        assert_eq!(body(on).0, "true");
        assert_eq!(body(off).0, "false");
    }
}
