//! Exact batching on its own, with a fake fetcher and no database: every
//! loader used at one level of a request gets exactly one fetch, a failed
//! or lost batch answers each of its waiters once, a dropped load or
//! request leaves no one waiting, and many concurrent requests each see
//! exactly their own values (docs/batching.md has the rule).
//!
//! The fetcher's "statement" never waits on a clock: it is ready at once,
//! yields once to the scheduler, or waits for a gate the test opens. Most
//! tests run on tokio's single-threaded runtime, where the order of polls
//! is fixed, so every run is the same run; the multi-threaded test checks
//! only what holds in every interleaving.

// Tests fail by panicking: unwrap on a value that must be there is the
// clearest assertion.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::{BoxFuture, join_all};
use loaders::{Batched, LoadError, Loader, Tracked};
use tokio::sync::watch;

/// What one key names: which request asked for it, at which level of its
/// query, and which of that level's keys it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    request: u32,
    level: u32,
    index: u32,
}

impl Key {
    /// The key's value, unique to the key, or `None` for one key in seven
    /// (a key with nothing to load, which the fetcher leaves absent).
    fn value(self) -> Option<u64> {
        (self.index % 7 != 6).then(|| {
            u64::from(self.request) * 1_000_000_000 + u64::from(self.level) * 1_000_000 + u64::from(self.index)
        })
    }
}

/// One call of the fake fetcher.
#[derive(Debug, Clone)]
struct Call {
    /// Which of the harness's loaders was called.
    loader: usize,
    /// The batch's keys, sorted.
    keys: Vec<Key>,
    /// The deadline the batch's statement ran under.
    budget: Option<db::Budget>,
}

/// How long the fake "statement" takes.
#[derive(Clone, Copy)]
enum Io {
    /// Answers in the poll that sends it.
    Ready,
    /// Answers after the scheduler has run the other ready tasks, as a
    /// reply from the network does.
    Yield,
    /// Answers once the test opens the harness's gate.
    Gate,
}

/// Settings and records shared by the harness's loaders.
struct Shared {
    io: Io,
    calls: Mutex<Vec<Call>>,
    gate: watch::Sender<bool>,
    /// How many of the next calls fail with a statement timeout.
    failing: AtomicUsize,
    /// How many of the next calls panic.
    panicking: AtomicUsize,
}

/// A fake access path: records each call, then answers every key with
/// [`Key::value`].
struct Fetcher {
    loader: usize,
    shared: Arc<Shared>,
}

impl Loader<Key> for Fetcher {
    type Value = u64;

    async fn load(&self, keys: &[Key], budget: Option<db::Budget>) -> Result<HashMap<Key, u64>, db::Error> {
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        self.shared.calls.lock().unwrap().push(Call { loader: self.loader, keys: sorted, budget });
        match self.shared.io {
            Io::Ready => {}
            Io::Yield => tokio::task::yield_now().await,
            Io::Gate => drop(self.shared.gate.subscribe().wait_for(|open| *open).await),
        }
        let take =
            |counter: &AtomicUsize| counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if take(&self.shared.panicking).is_ok() {
            panic!("the fake fetcher panics, as the test asked");
        }
        if take(&self.shared.failing).is_ok() {
            return Err(db::Error::Timeout);
        }
        Ok(keys.iter().filter_map(|&key| Some((key, key.value()?))).collect())
    }
}

/// What a request's resolvers saw: each key they loaded and its outcome.
type Seen = Vec<(Key, Result<Option<u64>, LoadError>)>;

/// A query's shape: `width` resolvers at the root each load a key; each
/// loaded value has `fanout` children one level down, to `depth` levels.
/// Level `l` loads through loader `(l + first) % loaders`.
#[derive(Clone, Copy)]
struct Shape {
    width: u32,
    fanout: u32,
    depth: u32,
    first: usize,
}

/// A set of loaders over fake fetchers, shared by every request of a test
/// as the server's loaders are.
#[derive(Clone)]
struct Harness {
    loaders: Arc<Vec<Batched<Key, Fetcher>>>,
    shared: Arc<Shared>,
}

impl Harness {
    fn new(loaders: usize, io: Io) -> Self {
        let shared = Arc::new(Shared {
            io,
            calls: Mutex::new(Vec::new()),
            gate: watch::Sender::new(false),
            failing: AtomicUsize::new(0),
            panicking: AtomicUsize::new(0),
        });
        let loaders = (0..loaders)
            .map(|loader| Batched::new(Fetcher { loader, shared: Arc::clone(&shared) }, "fake", Duration::ZERO))
            .collect();
        Harness { loaders: Arc::new(loaders), shared }
    }

    fn loader(&self, index: usize) -> &Batched<Key, Fetcher> {
        &self.loaders[index % self.loaders.len()]
    }

    fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    fn open_gate(&self) {
        self.shared.gate.send_replace(true);
    }

    /// One resolver: some CPU work, its load, then its children's.
    fn resolve(&self, key: Key, shape: Shape) -> BoxFuture<'static, Seen> {
        let harness = self.clone();
        async move {
            busy(key.index % 4).await;
            let loaded = harness.loader(key.level as usize + shape.first).load_one(key).await;
            let expand = matches!(loaded, Ok(Some(_))) && key.level + 1 < shape.depth;
            let mut seen = vec![(key, loaded)];
            if expand {
                let children = (0..shape.fanout).map(|i| {
                    let child = Key { request: key.request, level: key.level + 1, index: key.index * shape.fanout + i };
                    harness.resolve(child, shape)
                });
                seen.extend(join_all(children).await.into_iter().flatten());
            }
            seen
        }
        .boxed()
    }

    /// One request's execution, as the api runs it: its root resolvers
    /// side by side, inside [`Tracked`].
    fn request(&self, request: u32, shape: Shape) -> Tracked<BoxFuture<'static, Seen>> {
        self.request_with_budget(request, shape, None)
    }

    fn request_with_budget(
        &self,
        request: u32,
        shape: Shape,
        budget: Option<db::Budget>,
    ) -> Tracked<BoxFuture<'static, Seen>> {
        let roots = (0..shape.width).map(|index| self.resolve(Key { request, level: 0, index }, shape));
        Tracked::with_budget(join_all(roots).map(|seen| seen.into_iter().flatten().collect()).boxed(), budget)
    }
}

/// CPU work spread over `polls` polls: the future wakes itself at once and
/// returns `Pending`, as a future that yields to be fair does
/// (`FuturesUnordered` among them), so its request stays busy.
async fn busy(polls: u32) {
    for _ in 0..polls {
        let mut yielded = false;
        poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
    }
}

/// Awaits `future`, failing the test if it has not finished after a long
/// while: a stalled batch ends the test with a message, not a hang. (Only
/// a test that fails ever reaches the limit.)
async fn finishes<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), future).await.expect("stalled: a waiter was never answered")
}

/// Every key the request's resolvers load, with its value.
fn expected(request: u32, shape: Shape) -> BTreeMap<Key, Option<u64>> {
    let mut expected = BTreeMap::new();
    let mut level: Vec<Key> = (0..shape.width).map(|index| Key { request, level: 0, index }).collect();
    while let Some(&first) = level.first() {
        let mut next = Vec::new();
        for key in level {
            expected.insert(key, key.value());
            if key.value().is_some() && first.level + 1 < shape.depth {
                next.extend((0..shape.fanout).map(|i| Key {
                    request,
                    level: key.level + 1,
                    index: key.index * shape.fanout + i,
                }));
            }
        }
        level = next;
    }
    expected
}

/// Checks that the request's resolvers saw exactly their values, each once.
fn assert_saw_its_values(seen: Seen, request: u32, shape: Shape) {
    let mut got = BTreeMap::new();
    for (key, loaded) in seen {
        let value = loaded.unwrap_or_else(|err| panic!("{key:?} failed: {err}"));
        assert!(got.insert(key, value).is_none(), "{key:?} answered twice");
    }
    assert_eq!(got, expected(request, shape), "request {request} saw other values than its own");
}

/// Checks the rule: every level of every request went out in exactly one
/// fetch, and no fetch holds keys of two levels of one request.
fn assert_one_fetch_per_level(calls: &[Call]) {
    let mut fetches: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for call in calls {
        let levels: BTreeSet<(u32, u32)> = call.keys.iter().map(|key| (key.request, key.level)).collect();
        for &(request, level) in &levels {
            *fetches.entry((request, level)).or_default() += 1;
            assert!(
                !levels.contains(&(request, level + 1)),
                "one fetch holds levels {level} and {} of request {request}",
                level + 1
            );
        }
    }
    let split: Vec<_> = fetches.into_iter().filter(|&(_, count)| count != 1).collect();
    assert!(split.is_empty(), "levels ((request, level), fetches) split over several fetches: {split:?}");
}

/// The keys of `request` at `level` that its resolvers load.
fn level_keys(request: u32, shape: Shape, level: u32) -> Vec<Key> {
    expected(request, shape).into_keys().filter(|key| key.level == level).collect()
}

#[tokio::test]
async fn one_request_makes_one_fetch_per_loader_per_level() {
    // Past 30 roots, join_all runs them through FuturesUnordered, as
    // async-graphql's lists do; resolvers' CPU work spans several polls.
    let shape = Shape { width: 40, fanout: 3, depth: 3, first: 0 };
    for io in [Io::Ready, Io::Yield] {
        let harness = Harness::new(2, io);
        let seen = finishes(harness.request(1, shape)).await;
        assert_saw_its_values(seen, 1, shape);
        let calls: Vec<(usize, Vec<Key>)> = harness.calls().into_iter().map(|call| (call.loader, call.keys)).collect();
        // Level 2 goes back to loader 0, in a fetch of its own.
        let levels = vec![(0, level_keys(1, shape, 0)), (1, level_keys(1, shape, 1)), (0, level_keys(1, shape, 2))];
        assert_eq!(calls, levels);
    }
}

#[tokio::test]
async fn requests_whose_levels_overlap_share_one_fetch() {
    let harness = Harness::new(1, Io::Yield);
    let shape = Shape { width: 8, fanout: 1, depth: 1, first: 0 };
    // Both requests hold the batch while their resolvers work, so the
    // one idle first waits for the other.
    let (first, second) =
        tokio::join!(tokio::spawn(harness.request(1, shape)), tokio::spawn(harness.request(2, shape)));
    assert_saw_its_values(first.unwrap(), 1, shape);
    assert_saw_its_values(second.unwrap(), 2, shape);
    let keys: Vec<Vec<Key>> = harness.calls().into_iter().map(|call| call.keys).collect();
    assert_eq!(keys, vec![[level_keys(1, shape, 0), level_keys(2, shape, 0)].concat()]);
}

/// A hundred requests of different shapes over three loaders: level `l`
/// of request `r` uses loader `(l + r) % 3`, so one loader's batch can
/// hold different levels of different requests.
fn many_shapes() -> Vec<(u32, Shape)> {
    (0..100).map(|r| (r, Shape { width: 1 + r % 37, fanout: 1 + r % 3, depth: 1 + r % 4, first: r as usize })).collect()
}

/// Runs [`many_shapes`] at once on the current runtime and checks every
/// request's values and the one-fetch-per-level rule; returns the fetches.
async fn run_many(io: Io) -> Vec<Call> {
    let harness = Harness::new(3, io);
    let requests: Vec<_> =
        many_shapes().into_iter().map(|(r, shape)| (r, shape, tokio::spawn(harness.request(r, shape)))).collect();
    for (r, shape, handle) in requests {
        assert_saw_its_values(finishes(handle).await.unwrap(), r, shape);
    }
    let calls = harness.calls();
    assert_one_fetch_per_level(&calls);
    calls
}

#[tokio::test]
async fn a_hundred_concurrent_requests_each_see_exactly_their_values() {
    for io in [Io::Ready, Io::Yield] {
        let calls = run_many(io).await;
        let levels: usize = many_shapes().iter().map(|(r, shape)| level_count(*r, *shape)).sum();
        assert!(calls.len() < levels / 4, "{} fetches for {levels} request levels: too little sharing", calls.len());
    }
}

/// How many levels of the request load anything.
fn level_count(request: u32, shape: Shape) -> usize {
    expected(request, shape).keys().map(|key| key.level).collect::<BTreeSet<_>>().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_on_two_threads_keep_every_level_whole() {
    // Wakes cross threads here: a batch driven by one request's task
    // delivers to requests polled on the other thread meanwhile.
    for _ in 0..5 {
        run_many(Io::Yield).await;
        run_many(Io::Ready).await;
    }
}

#[tokio::test]
async fn a_failed_fetch_answers_every_waiter_once_with_its_error() {
    let harness = Harness::new(1, Io::Yield);
    harness.shared.failing.store(1, Ordering::SeqCst);
    let shape = Shape { width: 12, fanout: 2, depth: 2, first: 0 };
    let (first, second) =
        tokio::join!(tokio::spawn(harness.request(1, shape)), tokio::spawn(harness.request(2, shape)));
    for (request, seen) in [(1, first.unwrap()), (2, second.unwrap())] {
        // Each root resolver got the error once; none went on to level 1.
        let keys: Vec<Key> = seen.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys, level_keys(request, shape, 0));
        for (key, loaded) in seen {
            assert!(
                matches!(loaded, Err(LoadError::Db(ref err)) if matches!(**err, db::Error::Timeout)),
                "{key:?}: {loaded:?}"
            );
        }
    }
    assert_eq!(harness.calls().len(), 1, "the failed batch was fetched once, for both requests");
    // The loader is not poisoned: the next request loads as usual.
    assert_saw_its_values(finishes(harness.request(3, shape)).await, 3, shape);
    assert_eq!(harness.calls().len(), 3);
}

#[tokio::test]
async fn a_panicking_fetch_leaves_no_waiter_unanswered() {
    let harness = Harness::new(1, Io::Yield);
    harness.shared.panicking.store(1, Ordering::SeqCst);
    let shape = Shape { width: 5, fanout: 1, depth: 1, first: 0 };
    let first = tokio::spawn(harness.request(1, shape));
    let second = tokio::spawn(harness.request(2, shape));
    for (request, handle) in [(1, first), (2, second)] {
        let seen = finishes(handle).await.expect("a fetch's panic stays in its batch");
        let keys: Vec<Key> = seen.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys, level_keys(request, shape, 0));
        assert!(seen.iter().all(|(_, loaded)| matches!(loaded, Err(LoadError::Lost))), "{seen:?}");
    }
    assert_saw_its_values(finishes(harness.request(3, shape)).await, 3, shape);
}

#[tokio::test]
async fn a_dropped_load_leaves_the_others_of_its_batch_answered() {
    let harness = Harness::new(1, Io::Yield);
    let loader = harness.clone();
    // One resolver gives up on its load before the batch goes out (as a
    // resolver under a `select!` does); the request carries on.
    let request = Tracked::new(
        async move {
            let loader = loader.loader(0);
            let key = |index| Key { request: 1, level: 0, index };
            let abandoned = futures::future::select(loader.load_one(key(0)).boxed(), std::future::ready(())).await;
            drop(abandoned);
            join_all((1..4).map(|index| loader.load_one(key(index)))).await
        }
        .boxed(),
    );
    let loaded = finishes(request).await;
    assert_eq!(
        loaded.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [1, 2, 3].map(|index| Key { request: 1, level: 0, index }.value())
    );
    let keys: Vec<Vec<u32>> =
        harness.calls().iter().map(|call| call.keys.iter().map(|key| key.index).collect()).collect();
    assert_eq!(keys, [vec![0, 1, 2, 3]], "the abandoned key still went out with its level, once");
}

/// A request that loads `key` and then stays busy until `stop` is set:
/// it holds the batch of `key` all that while.
fn busy_holder(harness: &Harness, key: Key, stop: Arc<AtomicBool>) -> Tracked<BoxFuture<'static, ()>> {
    let harness = harness.clone();
    Tracked::new(
        async move {
            let load = harness.loader(0).load_one(key);
            let work = async {
                while !stop.load(Ordering::SeqCst) {
                    busy(1).await;
                }
            };
            let _ = tokio::join!(load, work);
        }
        .boxed(),
    )
}

#[tokio::test]
async fn a_dropped_request_releases_the_batch_it_held() {
    let harness = Harness::new(1, Io::Yield);
    let stop = Arc::new(AtomicBool::new(false));
    // The first request holds the batch and never goes idle until dropped.
    let holder = tokio::spawn(busy_holder(&harness, Key { request: 1, level: 0, index: 0 }, stop));
    tokio::task::yield_now().await;
    let shape = Shape { width: 6, fanout: 2, depth: 2, first: 0 };
    let waiting = tokio::spawn(harness.request(2, shape));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(harness.calls().is_empty(), "the batch waits for the busy request");
    holder.abort();
    assert_saw_its_values(finishes(waiting).await.unwrap(), 2, shape);
    assert_one_fetch_per_level(&harness.calls());
    // The abandoned request's key went out once, with the batch it held.
    assert!(harness.calls()[0].keys.contains(&Key { request: 1, level: 0, index: 0 }));
}

#[tokio::test]
async fn a_request_dropped_while_it_drives_a_fetch_hands_the_fetch_on() {
    let harness = Harness::new(1, Io::Gate);
    let stop = Arc::new(AtomicBool::new(false));
    // The busy request is the last to release the batch, so it drives the
    // fetch on its own task; it is dropped while the fetch waits.
    let driver = tokio::spawn(busy_holder(&harness, Key { request: 1, level: 0, index: 0 }, Arc::clone(&stop)));
    tokio::task::yield_now().await;
    let shape = Shape { width: 6, fanout: 1, depth: 1, first: 0 };
    let waiting = tokio::spawn(harness.request(2, shape));
    tokio::task::yield_now().await;
    stop.store(true, Ordering::SeqCst);
    while harness.calls().is_empty() {
        tokio::task::yield_now().await;
    }
    driver.abort();
    assert!(driver.await.unwrap_err().is_cancelled());
    harness.open_gate();
    assert_saw_its_values(finishes(waiting).await.unwrap(), 2, shape);
    assert_eq!(harness.calls().len(), 1);
}

#[tokio::test]
async fn a_request_waiting_on_its_own_statement_does_not_hold_back_a_batch() {
    let harness = Harness::new(1, Io::Ready);
    let (statement, reply) = watch::channel(false);
    let (loaded_tx, loaded) = tokio::sync::oneshot::channel();
    let loader = harness.clone();
    // One resolver loads; another waits for a statement of its own (a root
    // field's), which the test answers only after the load is answered.
    let request = tokio::spawn(Tracked::new(
        async move {
            let load = async {
                let value = loader.loader(0).load_one(Key { request: 1, level: 0, index: 0 }).await.unwrap();
                loaded_tx.send(value).unwrap();
            };
            let mut reply = reply;
            let own_statement = async move { drop(reply.wait_for(|done| *done).await) };
            tokio::join!(load, own_statement);
        }
        .boxed(),
    ));
    assert_eq!(finishes(loaded).await.unwrap(), Key { request: 1, level: 0, index: 0 }.value());
    statement.send_replace(true);
    finishes(request).await.unwrap();
}

#[tokio::test]
async fn a_load_outside_any_request_goes_out_at_once() {
    let harness = Harness::new(1, Io::Yield);
    let key = Key { request: 0, level: 0, index: 3 };
    assert_eq!(finishes(harness.loader(0).load_one(key)).await.unwrap(), key.value());
    let keys: Vec<Vec<Key>> = harness.calls().into_iter().map(|call| call.keys).collect();
    assert_eq!(keys, [vec![key]]);
}

#[tokio::test]
async fn a_load_outside_any_request_joins_a_batch_a_request_holds() {
    let harness = Harness::new(1, Io::Yield);
    let stop = Arc::new(AtomicBool::new(false));
    let held = Key { request: 1, level: 0, index: 0 };
    let holder = tokio::spawn(busy_holder(&harness, held, Arc::clone(&stop)));
    tokio::task::yield_now().await;
    let outside = Key { request: 0, level: 0, index: 1 };
    let load = tokio::spawn({
        let harness = harness.clone();
        async move { harness.loader(0).load_one(outside).await.unwrap() }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(harness.calls().is_empty(), "the batch waits for the request that holds it");
    stop.store(true, Ordering::SeqCst);
    assert_eq!(finishes(load).await.unwrap(), outside.value());
    finishes(holder).await.unwrap();
    let keys: Vec<Vec<Key>> = harness.calls().into_iter().map(|call| call.keys).collect();
    assert_eq!(keys, [vec![outside, held]]);
}

#[tokio::test]
async fn a_shared_batch_runs_under_the_latest_deadline_of_its_requests() {
    let harness = Harness::new(1, Io::Yield);
    let shape = Shape { width: 4, fanout: 1, depth: 1, first: 0 };
    let budget = |secs| {
        Some(db::Budget {
            deadline: Instant::now() + Duration::from_secs(secs),
            statement_timeout: Duration::from_secs(5),
        })
    };
    let (soon, late) = (budget(1), budget(9));
    let (first, second) = tokio::join!(
        tokio::spawn(harness.request_with_budget(1, shape, late)),
        tokio::spawn(harness.request_with_budget(2, shape, soon)),
    );
    assert_saw_its_values(first.unwrap(), 1, shape);
    assert_saw_its_values(second.unwrap(), 2, shape);
    let budgets: Vec<_> = harness.calls().into_iter().map(|call| call.budget).collect();
    assert_eq!(budgets, [late]);
    // A request without a deadline lets the batch run as long as it needs.
    let (first, second) = tokio::join!(
        tokio::spawn(harness.request_with_budget(3, shape, late)),
        tokio::spawn(harness.request_with_budget(4, shape, None)),
    );
    assert_saw_its_values(first.unwrap(), 3, shape);
    assert_saw_its_values(second.unwrap(), 4, shape);
    assert_eq!(harness.calls()[1].budget, None);
}

#[tokio::test]
async fn a_request_sees_its_own_budget() {
    let budget = Some(db::Budget {
        deadline: Instant::now() + Duration::from_secs(3),
        statement_timeout: Duration::from_secs(5),
    });
    assert_eq!(loaders::budget(), None, "outside a request");
    let inside = Tracked::with_budget(async { loaders::budget() }.boxed(), budget).await;
    assert_eq!(inside, budget);
}

#[tokio::test]
async fn a_request_out_of_tokio_budget_is_not_taken_for_idle() {
    // Each resolver spends tokio's cooperative budget before it loads. Out
    // of budget, tokio answers `Pending` and wakes the task only after the
    // poll, so the poll ends with no wake while resolvers still have keys
    // to add; the tracker must poll again before it decides.
    let harness = Harness::new(1, Io::Ready);
    let roots = (0..20).map(|index| {
        let harness = harness.clone();
        async move {
            for _ in 0..20 {
                tokio::task::consume_budget().await;
            }
            harness.loader(0).load_one(Key { request: 1, level: 0, index }).await.unwrap()
        }
    });
    let loaded = finishes(tokio::spawn(Tracked::new(join_all(roots).boxed()))).await.unwrap();
    let keys: Vec<Key> = (0..20).map(|index| Key { request: 1, level: 0, index }).collect();
    assert_eq!(loaded, keys.iter().map(|key| key.value()).collect::<Vec<_>>());
    assert_eq!(harness.calls().into_iter().map(|call| call.keys).collect::<Vec<_>>(), [keys]);
}

/// Polls one request on a thread of its own when asked, as the other
/// worker thread of a runtime would, and is its waker: a wake marks the
/// request to be polled again.
struct OtherThread {
    poll: mpsc::Sender<()>,
    polled: Mutex<mpsc::Receiver<bool>>,
    woken: AtomicBool,
}

impl OtherThread {
    /// Starts the thread that polls `request`; its handle returns what the
    /// request returned.
    fn start(request: Tracked<BoxFuture<'static, Seen>>) -> (Arc<Self>, JoinHandle<Seen>) {
        let (poll, commands) = mpsc::channel();
        let (replies, polled) = mpsc::channel();
        let other = Arc::new(OtherThread { poll, polled: Mutex::new(polled), woken: AtomicBool::new(false) });
        let waker = Waker::from(Arc::clone(&other));
        let woken = Arc::clone(&other);
        let thread = std::thread::spawn(move || {
            let mut request = request;
            let mut cx = Context::from_waker(&waker);
            for () in commands {
                woken.woken.store(false, Ordering::SeqCst);
                let outcome = request.poll_unpin(&mut cx);
                replies.send(outcome.is_ready()).unwrap();
                if let Poll::Ready(seen) = outcome {
                    return seen;
                }
            }
            unreachable!("the test stopped polling a request that had not finished")
        });
        (other, thread)
    }

    /// Polls the request once on its thread; true when it has finished.
    fn poll(&self) -> bool {
        self.poll.send(()).unwrap();
        self.polled.lock().unwrap().recv_timeout(Duration::from_secs(30)).expect("the request's thread answers")
    }
}

impl Wake for OtherThread {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
    }
}

/// Sits between one load and its resolver: passes the load's wake on,
/// then, the first time, has the request polled on its [`OtherThread`]
/// before the delivery that woke it goes on.
#[derive(Default)]
struct PollOnWake {
    resolver: Mutex<Option<Waker>>,
    other: std::sync::OnceLock<Arc<OtherThread>>,
    fired: AtomicBool,
}

impl PollOnWake {
    /// Awaits `load` with this hook between it and the resolver.
    async fn around<F: Future>(self: Arc<Self>, load: F) -> F::Output {
        let waker = Waker::from(Arc::clone(&self));
        let mut load = std::pin::pin!(load);
        poll_fn(|cx| {
            *self.resolver.lock().unwrap() = Some(cx.waker().clone());
            load.as_mut().poll(&mut Context::from_waker(&waker))
        })
        .await
    }
}

impl Wake for PollOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let resolver = self.resolver.lock().unwrap().clone();
        resolver.into_iter().for_each(Waker::wake);
        if !self.fired.swap(true, Ordering::SeqCst) {
            assert!(!self.other.get().unwrap().poll(), "the request is still loading");
        }
    }
}

#[test]
fn a_request_polled_in_the_middle_of_a_delivery_waits_for_the_rest() {
    // Request 1 is polled on a thread of its own while request 2's thread
    // hands it its six root values: just after the first (it has seen one
    // value) or just after the last (it has seen them all, and only the
    // end of the delivery will wake it again). Either way its next level
    // must go out whole, in one fetch, and it must be woken to send it.
    let shape = Shape { width: 6, fanout: 2, depth: 2, first: 0 };
    for hooked in [0, shape.width - 1] {
        let harness = Harness::new(2, Io::Ready);
        let hook = Arc::new(PollOnWake::default());
        let first = {
            let (harness, hook) = (harness.clone(), Arc::clone(&hook));
            let roots = (0..shape.width).map(move |index| {
                let (harness, hook) = (harness.clone(), Arc::clone(&hook));
                async move {
                    let root = Key { request: 1, level: 0, index };
                    let load = harness.loader(0).load_one(root);
                    let loaded = if index == hooked { hook.around(load).await } else { load.await };
                    let mut seen = vec![(root, loaded)];
                    let children =
                        (0..shape.fanout).map(|i| Key { request: 1, level: 1, index: index * shape.fanout + i });
                    let next = harness.loader(1);
                    let loads = children.map(|child| async move { (child, next.load_one(child).await) });
                    seen.extend(join_all(loads).await);
                    seen
                }
            });
            Tracked::new(join_all(roots).map(|seen| seen.into_iter().flatten().collect()).boxed())
        };
        // Request 2 holds the root batch while it works, and releases it
        // last: its thread sends the statement and delivers the values.
        let second_key = Key { request: 2, level: 0, index: 0 };
        let mut second = {
            let harness = harness.clone();
            Tracked::new(
                async move { futures::join!(harness.loader(0).load_one(second_key), busy(1)).0.unwrap() }.boxed(),
            )
        };
        let noop = futures::task::noop_waker();
        let mut cx = Context::from_waker(&noop);
        assert!(second.poll_unpin(&mut cx).is_pending());
        let (other, thread) = OtherThread::start(first);
        assert!(hook.other.set(Arc::clone(&other)).is_ok());
        assert!(!other.poll(), "request 1 adds its roots to the batch request 2 holds");
        assert!(harness.calls().is_empty());
        assert!(second.poll_unpin(&mut cx).is_pending(), "request 2 goes idle and sends the batch");
        assert!(hook.fired.load(Ordering::SeqCst), "request 1 was polled during the delivery");
        assert_eq!(second.poll_unpin(&mut cx), Poll::Ready(second_key.value()));
        // Request 1 from here on, as an executor runs it: polled when woken.
        let mut done = false;
        while !done && other.woken.load(Ordering::SeqCst) {
            done = other.poll();
        }
        assert!(done, "request 1 waits with no wake to come (hooked root {hooked})");
        assert_saw_its_values(thread.join().unwrap(), 1, shape);
        let calls: Vec<(usize, Vec<Key>)> = harness.calls().into_iter().map(|call| (call.loader, call.keys)).collect();
        let roots = [level_keys(1, shape, 0), vec![second_key]].concat();
        assert_eq!(calls, [(0, roots), (1, level_keys(1, shape, 1))], "hooked root {hooked}");
    }
}
