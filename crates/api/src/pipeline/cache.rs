//! Cache: queries are answered from the response cache when it is enabled
//! (docs/CACHE.md): a shared entry first, then the viewer's own, then one
//! execution shared by identical concurrent requests. The key is the
//! request's fingerprint (normalized document, operation name, canonical
//! variables: [`crate::fingerprint::fingerprint`]) and its scope. A
//! response with errors or `no-cache` hints is never stored; one that no
//! resolver found viewer-dependent is stored for every viewer. Requests
//! that must read past the cache run afresh, and their answer replaces the
//! stored one. The fingerprint is remembered under the hash of the bytes
//! as sent, for [`super::replay`].

use std::sync::Arc;
use std::time::Duration;

use cache::{Epoch, Key, Outcome, ResponseCache, Stored, Touched};
use tracing::Instrument as _;

use super::call::{Answer, Encoded, Operation, Reply, XCache};
use super::chain::{Next, Stage};

/// The stage: see the module.
#[derive(Clone)]
pub struct Cache {
    cache: Option<ResponseCache>,
}

impl Cache {
    /// Answers from and stores in `cache`; with none, every request runs.
    pub fn new(cache: Option<ResponseCache>) -> Self {
        Cache { cache }
    }
}

impl<N: Next<Operation, Reply>> Stage<N> for Cache {
    type In = Operation;
    type Out = Answer;

    async fn run(&self, mut operation: Operation, next: &N) -> Answer {
        let Some(cache) = &self.cache else { return Answer::Reply(next.run(operation).await) };
        // Answered in parts: neither looked up nor stored (docs/INCREMENTAL.md).
        if operation.call.incremental && crate::graphql::incremental::wanted(&mut operation.request) {
            return Answer::Reply(next.run(operation).await);
        }
        let Some(fingerprint) = crate::fingerprint::fingerprint(&mut operation.request) else {
            // Mutations, subscriptions and documents that do not parse.
            return Answer::Reply(next.run(operation).await);
        };
        if let Some(sent) = operation.call.sent {
            cache.requests().insert(sent, fingerprint);
        }
        let (shared, private) = operation.call.keys(fingerprint);
        if operation.call.past_cache() {
            // Executed afresh, and the fresh answer replaces the stored one.
            let answer = match Box::pin(execute(next, cache, shared, operation, cache.begin())).await {
                Ok(stored) => {
                    let body = stored.body.clone();
                    cache.insert(private, stored).await;
                    Reply::of(Encoded::ok(body), XCache::Bypass)
                }
                Err(reply) => Reply { x_cache: XCache::Bypass, ..Arc::unwrap_or_clone(reply) },
            };
            return Answer::Reply(answer);
        }
        let span = tracing::debug_span!("cache.lookup", cache.scope = "shared", cache.hit = tracing::field::Empty);
        let body = cache.get(shared).instrument(span.clone()).await;
        span.record("cache.hit", body.is_some());
        if let Some(body) = body {
            return Answer::Reply(Reply::hit(body));
        }
        // On a miss this span holds the execution (or the wait for an
        // identical one).
        let lookup = tracing::debug_span!("cache.lookup", cache.scope = "private");
        let run = |began: Epoch| execute(next, cache, shared, operation, began);
        // Boxed, like the execution above: moka's coalescing future is
        // several kilobytes, and this stage's future, which every request
        // builds and moves whether or not it misses, would be as large.
        Answer::Reply(match Box::pin(cache.get_or_run(private, run)).instrument(lookup).await {
            Ok(Outcome::Hit(body)) => Reply::hit(body),
            Ok(Outcome::Miss(body)) => Reply::of(Encoded::ok(body), XCache::Miss),
            Err(reply) => Reply { x_cache: XCache::Miss, ..Arc::unwrap_or_clone(reply) },
        })
    }
}

/// Executes a query whose response may be cached: `Ok` with what to store
/// (under the viewer's key; also under the `shared` key when no resolver
/// found it viewer-dependent), `Err` with a reply never to store.
async fn execute<N: Next<Operation, Reply>>(
    next: &N,
    cache: &ResponseCache,
    shared: Key,
    mut operation: Operation,
    began: Epoch,
) -> Result<Stored, Arc<Reply>> {
    let touched = Arc::new(Touched::default());
    operation.request = operation.request.data(Arc::clone(&touched));
    let reply = next.run(operation).await;
    // The fields' cache-control hints: `no-cache` (-1) is never stored, a
    // max-age shortens the entry's life, `private` keeps it to the viewer.
    let control = reply.cache_control;
    if reply.has_errors || control.max_age == -1 || reply.encoded.failed {
        return Err(Arc::new(reply));
    }
    let max_age = u64::try_from(control.max_age).ok().filter(|&secs| secs > 0).map(Duration::from_secs);
    // Begun earlier when it read a replica that lags (crate::replica).
    let stored = Stored { body: reply.encoded.body, tags: touched.take_tags(), max_age, began: touched.began(began) };
    if !touched.is_viewer_dependent() && control.public {
        cache.insert(shared, stored.clone()).await;
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, header};
    use cache::Fingerprint;

    use std::future::Future;

    use super::*;
    use crate::auth::Viewer;
    use crate::pipeline::call::{Call, Method};
    use crate::pipeline::chain::Fake;

    fn response_cache() -> ResponseCache {
        ResponseCache::new(cache::Config { max_bytes: 1 << 20, ttl: Duration::from_secs(60) })
    }

    fn operation(query: &str, viewer: Option<i64>) -> Operation {
        let mut call = Call::new(Method::Post, HeaderMap::new(), Bytes::new());
        call.viewer = Viewer { user: viewer.map(db::UserId) };
        Operation { call, request: async_graphql::Request::new(query) }
    }

    /// Executions so far; each answers `run <n>`, with errors when
    /// `failing`, marked viewer-dependent when `private`.
    fn executions(
        count: Arc<AtomicUsize>,
        failing: bool,
        private: bool,
    ) -> Fake<impl Fn(Operation) -> std::pin::Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync + 'static> {
        Fake(move |op: Operation| {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            if private && let Some(touched) = op.request.data.get(&std::any::TypeId::of::<Arc<Touched>>()) {
                touched.downcast_ref::<Arc<Touched>>().unwrap().viewer_dependent();
            }
            let reply: std::pin::Pin<Box<dyn Future<Output = Reply> + Send>> = Box::pin(async move {
                // Long enough for identical requests to find it running.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut reply = Reply::of(Encoded::ok(format!("run {n}").into()), XCache::Bypass);
                reply.has_errors = failing;
                reply
            });
            reply
        })
    }

    fn answered(answer: Answer) -> (String, XCache) {
        let Answer::Reply(reply) = answer else { panic!("refused") };
        (String::from_utf8(reply.encoded.body.to_vec()).unwrap(), reply.x_cache)
    }

    #[tokio::test]
    async fn a_query_runs_once_then_every_viewer_gets_the_stored_answer() {
        let runs = Arc::new(AtomicUsize::new(0));
        let next = executions(runs.clone(), false, false);
        let stage = Cache::new(Some(response_cache()));

        let first = answered(stage.run(operation("{ notes { id } }", Some(1)), &next).await);
        let again = answered(stage.run(operation("{notes{id}}", Some(2)), &next).await);

        assert_eq!(first, ("run 1".to_owned(), XCache::Miss));
        assert_eq!(again, ("run 1".to_owned(), XCache::Hit), "same question, formatted otherwise");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_viewer_dependent_answer_stays_with_its_viewer() {
        let runs = Arc::new(AtomicUsize::new(0));
        let next = executions(runs.clone(), false, true);
        let stage = Cache::new(Some(response_cache()));

        let alice = answered(stage.run(operation("{ me { id } }", Some(1)), &next).await);
        let bob = answered(stage.run(operation("{ me { id } }", Some(2)), &next).await);
        let alice_again = answered(stage.run(operation("{ me { id } }", Some(1)), &next).await);

        assert_eq!(alice, ("run 1".to_owned(), XCache::Miss));
        assert_eq!(bob, ("run 2".to_owned(), XCache::Miss));
        assert_eq!(alice_again, ("run 1".to_owned(), XCache::Hit));
    }

    #[tokio::test]
    async fn identical_concurrent_requests_share_one_execution() {
        let runs = Arc::new(AtomicUsize::new(0));
        let next = executions(runs.clone(), false, false);
        let stage = Cache::new(Some(response_cache()));

        let answers =
            futures::future::join_all((0..32).map(|_| stage.run(operation("{ tags { name } }", None), &next))).await;

        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(answers.into_iter().map(answered).all(|(body, _)| body == "run 1"));
    }

    #[tokio::test]
    async fn errors_are_never_stored_and_mutations_never_looked_up() {
        let runs = Arc::new(AtomicUsize::new(0));
        let failing = executions(runs.clone(), true, false);
        let stage = Cache::new(Some(response_cache()));

        answered(stage.run(operation("{ notes { id } }", None), &failing).await);
        let second = answered(stage.run(operation("{ notes { id } }", None), &failing).await);
        let mutation = answered(stage.run(operation(r#"mutation { deleteNote(id: "1") }"#, None), &failing).await);

        assert_eq!(second, ("run 2".to_owned(), XCache::Miss));
        assert_eq!(mutation, ("run 3".to_owned(), XCache::Bypass));
    }

    #[tokio::test]
    async fn no_cache_runs_afresh_and_replaces_the_stored_answer() {
        let runs = Arc::new(AtomicUsize::new(0));
        let next = executions(runs.clone(), false, true);
        let stage = Cache::new(Some(response_cache()));
        answered(stage.run(operation("{ notes { id } }", Some(1)), &next).await);

        let mut fresh = operation("{ notes { id } }", Some(1));
        fresh.call.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        fresh.call = Call::new(Method::Post, fresh.call.headers, Bytes::new());
        fresh.call.viewer = Viewer { user: Some(db::UserId(1)) };
        let refreshed = answered(stage.run(fresh, &next).await);
        let after = answered(stage.run(operation("{ notes { id } }", Some(1)), &next).await);

        assert_eq!(refreshed, ("run 2".to_owned(), XCache::Bypass));
        assert_eq!(after, ("run 2".to_owned(), XCache::Hit));
    }

    #[tokio::test]
    async fn the_fingerprint_is_remembered_under_the_bytes_as_sent() {
        let cache = response_cache();
        let sent = Fingerprint::of([b"POST".as_slice(), b"{\"query\":\"{ notes { id } }\"}"]);
        let mut op = operation("{ notes { id } }", None);
        op.call.sent = Some(sent);

        Cache::new(Some(cache.clone())).run(op, &executions(Arc::default(), false, false)).await;

        let remembered = cache.requests().get(sent).expect("remembered");
        let fingerprint = crate::fingerprint::fingerprint(&mut async_graphql::Request::new("{ notes { id } }"));
        assert_eq!(Some(remembered), fingerprint);
    }

    #[tokio::test]
    async fn with_the_cache_off_everything_runs() {
        let runs = Arc::new(AtomicUsize::new(0));
        let next = executions(runs.clone(), false, false);

        for _ in 0..3 {
            let (_, x_cache) = answered(Cache::new(None).run(operation("{ notes { id } }", None), &next).await);
            assert_eq!(x_cache, XCache::Bypass);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
