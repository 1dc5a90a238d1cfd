//! [`Batched`]: a loader shared by every request, whose batch is dispatched
//! the moment every request that added keys to it has nothing more to add
//! (decided by [`crate::tracker`]), so one level of one query is one
//! statement, every time, and keys from concurrent requests join it.
//!
//! It caches nothing: a batch's results go to the resolvers that waited
//! for them and are dropped. Keys that depend on the viewer carry the
//! viewer, so sharing never mixes what two viewers may see.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::channel::oneshot;
use tracing::Instrument as _;

use crate::LoadError;
use crate::tracker::{self, Gate, Tracker, lock};

/// Told of every batch a loader ran, so that batches can be counted and
/// timed by loader without a span per batch (the batch's span is for
/// traces; measured through it, a batch cost the span's bookkeeping in
/// every layer at every poll).
pub trait BatchObserver: Send + Sync {
    /// `loader` answered (or failed) a batch of `keys` keys in `elapsed`.
    fn ran(&self, loader: &'static str, keys: usize, elapsed: Duration);
}

/// The process's observer of batches, if any.
static OBSERVER: OnceLock<&'static dyn BatchObserver> = OnceLock::new();

/// Reports every later batch to `observer`. Once per process: the first
/// observer set stays.
pub fn observe_batches(observer: &'static dyn BatchObserver) {
    let _ = OBSERVER.set(observer);
}

/// One batch under way, reported to the observer when dropped: answered,
/// failed, or dropped with the request that ran it.
struct Measured {
    loader: &'static str,
    keys: usize,
    started: Instant,
}

impl Drop for Measured {
    fn drop(&mut self) {
        if let Some(observer) = OBSERVER.get() {
            observer.ran(self.loader, self.keys, self.started.elapsed());
        }
    }
}

/// One access path: answers a whole batch of keys with one statement.
pub trait Loader<K>: Send + Sync + 'static {
    /// What one key loads; a key with nothing to load is absent.
    type Value: Clone + Send + Sync + 'static;

    /// Loads every key of one batch, its statement ending by `budget`'s
    /// deadline when given.
    fn load(
        &self,
        keys: &[K],
        budget: Option<db::Budget>,
    ) -> impl Future<Output = Result<HashMap<K, Self::Value>, db::Error>> + Send;
}

/// What every resolver waiting on one batch receives.
type Outcome<K, V> = Arc<Result<HashMap<K, V>, LoadError>>;

/// A loader with exact batching (see the module docs).
pub struct Batched<K, L: Loader<K>> {
    shared: Arc<Shared<K, L>>,
}

struct Shared<K, L: Loader<K>> {
    loader: L,
    /// For the batch's span and the log line of a failed batch.
    name: &'static str,
    /// Extra wait between the last release and the dispatch, so that more
    /// concurrent requests can join (0: none; see docs/batching.md).
    delay: Duration,
    /// A std mutex: held only to add a key or take the batch.
    pending: Mutex<Pending<K, L::Value>>,
}

/// The batch being filled.
struct Pending<K, V> {
    keys: HashSet<K>,
    waiters: Vec<oneshot::Sender<Outcome<K, V>>>,
    /// Every request with keys in this batch, told when results arrive.
    holders: Vec<Arc<Tracker>>,
    /// How many of them have not released it yet.
    held: usize,
    /// A delayed dispatch is armed.
    timer_armed: bool,
}

/// A batch taken for dispatch.
struct Batch<K, V> {
    keys: HashSet<K>,
    waiters: Vec<oneshot::Sender<Outcome<K, V>>>,
    holders: Vec<Arc<Tracker>>,
}

impl<K, V> Pending<K, V> {
    fn take(&mut self) -> Batch<K, V> {
        Batch {
            keys: std::mem::take(&mut self.keys),
            waiters: std::mem::take(&mut self.waiters),
            holders: std::mem::take(&mut self.holders),
        }
    }
}

impl<K, L> Batched<K, L>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    L: Loader<K>,
{
    /// A loader named `name` (for logs) that waits `delay` more after the
    /// last holder releases a batch.
    pub fn new(loader: L, name: &'static str, delay: Duration) -> Self {
        let pending =
            Pending { keys: HashSet::new(), waiters: Vec::new(), holders: Vec::new(), held: 0, timer_armed: false };
        Batched { shared: Arc::new(Shared { loader, name, delay, pending: Mutex::new(pending) }) }
    }

    /// Loads one key as part of the current batch.
    pub async fn load_one(&self, key: K) -> Result<Option<L::Value>, LoadError> {
        // A request that keeps a memo (an incremental query) loads a key once.
        let memo = tracker::memo();
        let loader = Arc::as_ptr(&self.shared) as *const () as usize;
        if let Some(hit) = memo.as_ref().and_then(|memo| memo.get::<K, L::Value>(loader, &key)) {
            return Ok(hit);
        }
        let value = self.load_shared(key.clone()).await?;
        if let Some(memo) = memo {
            memo.put(loader, key, value.clone());
        }
        Ok(value)
    }

    /// Loads one key as part of the current batch, past any memo.
    async fn load_shared(&self, key: K) -> Result<Option<L::Value>, LoadError> {
        // A futures channel, not tokio's: tokio's receivers spend the task's
        // cooperative budget, and a receiver out of budget defers its wake
        // past the poll, which would make a busy request look idle.
        let receiver = Arc::clone(&self.shared).enqueue(key.clone());
        let outcome = receiver.await.map_err(|_| LoadError::Lost)?;
        match &*outcome {
            Ok(values) => Ok(values.get(&key).cloned()),
            Err(err) => Err(err.clone()),
        }
    }
}

impl<K, L> Shared<K, L>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    L: Loader<K>,
{
    /// Adds `key` to the batch, with the current request as a holder. A
    /// load outside any tracked request dispatches at once unless a request
    /// holds the batch.
    fn enqueue(self: Arc<Self>, key: K) -> oneshot::Receiver<Outcome<K, L::Value>> {
        let (sender, receiver) = oneshot::channel();
        let current = tracker::current();
        let mut pending = lock(&self.pending);
        pending.keys.insert(key);
        pending.waiters.push(sender);
        match current {
            Some(request) if request.hold(&self) => {
                pending.held += 1;
                if !pending.holders.iter().any(|holder| Arc::ptr_eq(holder, &request)) {
                    pending.holders.push(request);
                }
            }
            Some(_) => {}
            None if pending.held == 0 => self.dispatch(&mut pending, None),
            None => {}
        }
        receiver
    }

    /// Dispatches the batch now — driven by `driver`, the request whose
    /// release completed it, or on a task of its own — or arms the delayed
    /// dispatch.
    fn dispatch(self: &Arc<Self>, pending: &mut Pending<K, L::Value>, driver: Option<&Tracker>) {
        if self.delay.is_zero() {
            let batch = Box::pin(Arc::clone(self).run(pending.take()));
            match driver {
                Some(request) => request.drive(batch),
                None => drop(tokio::spawn(batch)),
            }
        } else if !pending.timer_armed {
            pending.timer_armed = true;
            let shared = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(shared.delay).await;
                let batch = {
                    let mut pending = lock(&shared.pending);
                    pending.timer_armed = false;
                    // A request that joined meanwhile dispatches on its release.
                    (pending.held == 0 && !pending.keys.is_empty()).then(|| pending.take())
                };
                if let Some(batch) = batch {
                    shared.run(batch).await;
                }
            });
        }
    }

    /// Runs one batch's statement and hands every waiter the result.
    async fn run(self: Arc<Self>, batch: Batch<K, L::Value>) {
        let keys: Vec<K> = batch.keys.into_iter().collect();
        // The batch's span: a child of the request driving it (when one
        // does), linked to every request it serves, so that each of their
        // traces shows the statement they waited for.
        let span = tracing::debug_span!("loader.batch", loader = self.name, batch.size = keys.len());
        if !span.is_disabled() {
            for holder in &batch.holders {
                holder.link(&span);
            }
        }
        // The latest of its requests' deadlines: the batch serves them all,
        // and cutting it at the earliest would fail requests that still
        // have time, while one past its deadline has already answered
        // TIMEOUT and no longer waits.
        let budget = batch.holders.iter().map(|holder| holder.budget()).reduce(db::Budget::latest).flatten();
        // A panicking statement answers its waiters like a failed one: the
        // batch runs on the task of whichever request dispatched it, and
        // that request (perhaps another client's) must not die of it.
        let load = AssertUnwindSafe(self.loader.load(&keys, budget).instrument(span)).catch_unwind();
        let measured = Measured { loader: self.name, keys: keys.len(), started: Instant::now() };
        let loaded = load.await;
        drop(measured);
        let result = match loaded {
            Ok(Ok(values)) => Ok(values),
            // Logged once here, not once per waiting resolver.
            Ok(Err(err)) => {
                log_failure(self.name, keys.len(), &err);
                Err(LoadError::Db(Arc::new(err)))
            }
            Err(_) => {
                let (loader, keys) = (self.name, keys.len());
                tracing::error!(loader, keys, exception.type = "INTERNAL", "loader batch panicked");
                Err(LoadError::Lost)
            }
        };
        let outcome = Arc::new(result);
        batch.holders.iter().for_each(|holder| holder.begin_delivery());
        for waiter in batch.waiters {
            // A waiter that is gone (its request was dropped) needs nothing.
            let _ = waiter.send(Arc::clone(&outcome));
        }
        batch.holders.iter().for_each(Tracker::end_delivery);
    }
}

impl<K, L> Gate for Shared<K, L>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    L: Loader<K>,
{
    fn release(self: Arc<Self>, driver: Option<&Tracker>) {
        let mut pending = lock(&self.pending);
        pending.held -= 1;
        if pending.held == 0 && !pending.keys.is_empty() {
            self.dispatch(&mut pending, driver);
        }
    }
}

/// The one log line of a failed batch, at the level its cause deserves.
fn log_failure(loader: &'static str, keys: usize, err: &db::Error) {
    let cause: &dyn std::error::Error = std::error::Error::source(err).unwrap_or(err);
    match err {
        db::Error::Unexpected(_) => {
            tracing::error!(loader, keys, exception.type = "INTERNAL", error.message = %cause, "loader batch failed");
        }
        _ => tracing::warn!(loader, keys, error.message = %cause, "loader batch failed"),
    }
}
