//! When has a request nothing more to add to a batch? This module answers
//! that by construction, without timers or yield counting.
//!
//! Every GraphQL execution runs inside a [`Tracked`] wrapper with its own
//! [`Tracker`]. While the wrapper polls the execution, loads register the
//! request as a *holder* of each batch they add keys to. When a poll ends
//! `Pending` and nothing woke the request during that poll, every resolver
//! of the request is waiting on something outside it (a batch, a
//! statement, a timer): the request has nothing left to add at this level,
//! so it releases the batches it holds, and a batch whose holders have all
//! released is dispatched. A wake during the poll — `FuturesUnordered`
//! rescheduling itself, or a result arriving from another thread — means
//! the executor polls the request again, so the decision waits for that
//! poll. A poll that ends with tokio's cooperative budget spent counts as
//! woken too, since tokio defers the wakes of resources out of budget
//! until after the poll (the wrapper wakes the request itself then).
//! `tokio::task::yield_now` defers its wake past the poll too, whatever the
//! budget, and nothing here can see that: a resolver must not await it (a
//! future that yields wakes itself during the poll, as `FuturesUnordered`
//! does).
//!
//! One more case needs care: a batch hands its results to many resolvers
//! of the same request, one wake each. If the request were polled between
//! two of those wakes, it would see half of its results and release the
//! next level half-filled. So a batch marks its holders as *receiving*
//! while it delivers, a poll that ends during a delivery does not release,
//! and the end of the delivery wakes the request to decide again.
//!
//! The request whose release dispatches a batch drives it: the wrapper
//! polls the batches it dispatched before the request itself, so the
//! statement's reply wakes the task that needs the rows, with no task
//! hand-off. A request that ends while it drives batches for others hands
//! them to tasks of their own.
//!
//! Written here rather than taken from a crate: async-graphql's DataLoader
//! (and every DataLoader crate on crates.io) decides dispatch by a timer in
//! a spawned task, while exact batches need their keys taken at the moment
//! this wrapper sees the request go idle. Nothing here knows about SQL or
//! GraphQL types.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::task::AtomicWaker;
use futures::{Stream, StreamExt as _};

/// A batch that requests add keys to, and release when they are idle.
pub(crate) trait Gate: Send + Sync {
    /// One holder has nothing more to add; the last one dispatches, and
    /// `driver` (the releasing request, when it can) drives the batch.
    fn release(self: Arc<Self>, driver: Option<&Tracker>);
}

thread_local! {
    /// The request whose execution this thread is polling right now.
    static CURRENT: RefCell<Option<Arc<Tracker>>> = const { RefCell::new(None) };
}

/// The request being polled on this thread, if any (loads made outside a
/// tracked execution have none and dispatch as soon as no request holds
/// their batch).
pub(crate) fn current() -> Option<Arc<Tracker>> {
    CURRENT.with_borrow(Option::clone)
}

/// The memo of the request being polled on this thread, when it keeps one.
pub(crate) fn memo() -> Option<Arc<crate::memo::Memo>> {
    CURRENT.with_borrow(|current| current.as_ref().and_then(|tracker| tracker.memo.clone()))
}

/// The time budget of the request being polled on this thread, for
/// statements it runs itself (root fields); `None` outside a tracked
/// execution or without a deadline.
pub fn budget() -> Option<db::Budget> {
    CURRENT.with_borrow(|current| current.as_ref().and_then(|tracker| tracker.budget))
}

/// Locks a std mutex, ignoring poisoning: every critical section here
/// leaves the state consistent before anything that could panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One request's batching state (see the module docs).
pub(crate) struct Tracker {
    /// The request's span when it was wrapped: batches it takes part in
    /// link to it. Let go when the request is dropped (done or abandoned):
    /// wakers and batches may keep the tracker for a while after that, and
    /// the span must end with the execution, not with them.
    span: Mutex<Option<tracing::Span>>,
    /// The waker of the task that polls the request.
    task: AtomicWaker,
    /// Set by any wake since the current poll began.
    woken: AtomicBool,
    /// Set while the request drives its batches, whose deliveries need not
    /// wake the task: the request is polled right after, in the same poll.
    driving: AtomicBool,
    /// Batches this request dispatched and has not started driving yet.
    dispatched: Mutex<Vec<BoxFuture<'static, ()>>>,
    /// The request's deadline, which its statements run under.
    budget: Option<db::Budget>,
    /// What the request loaded so far, when it keeps it (an incremental
    /// query, whose parts must not read again what an earlier part read).
    memo: Option<Arc<crate::memo::Memo>>,
    /// A std mutex: never held across an `.await`, and never while taking
    /// a gate's lock (gates take this one inside theirs, not the reverse).
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Batches holding keys this request added since it was last idle.
    holding: Vec<Arc<dyn Gate>>,
    /// Batches handing results to this request right now.
    receiving: usize,
    /// A poll ended idle while a delivery was under way: the end of that
    /// delivery must wake the request so that it decides again.
    parked: bool,
}

impl Wake for Tracker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.driving.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl Tracker {
    /// The request's time budget.
    pub(crate) fn budget(&self) -> Option<db::Budget> {
        self.budget
    }

    /// Links `batch` to the request's span, while the request runs.
    pub(crate) fn link(&self, batch: &tracing::Span) {
        if let Some(span) = &*lock(&self.span) {
            batch.follows_from(span);
        }
    }

    /// Registers this request as a holder of `gate`; true the first time
    /// since the request was last idle (the gate then counts one more
    /// holder). Called with the gate's lock held.
    pub(crate) fn hold<G: Gate + 'static>(&self, gate: &Arc<G>) -> bool {
        let mut state = lock(&self.state);
        if state.holding.iter().any(|held| std::ptr::addr_eq(Arc::as_ptr(held), Arc::as_ptr(gate))) {
            return false;
        }
        state.holding.push(Arc::clone(gate) as Arc<dyn Gate>);
        true
    }

    /// Hands this request a batch to drive on its own task: no task
    /// hand-off, and the statement's reply wakes the request directly.
    pub(crate) fn drive(&self, batch: BoxFuture<'static, ()>) {
        lock(&self.dispatched).push(batch);
    }

    /// A batch this request holds keys in starts handing out results.
    pub(crate) fn begin_delivery(&self) {
        lock(&self.state).receiving += 1;
    }

    /// That batch has handed out every result.
    pub(crate) fn end_delivery(self: &Arc<Self>) {
        let wake = {
            let mut state = lock(&self.state);
            state.receiving -= 1;
            state.receiving == 0 && std::mem::take(&mut state.parked)
        };
        if wake {
            self.wake_by_ref();
        }
    }

    /// The request's poll ended with nothing left to do but wait.
    fn idle(&self) {
        let holding = {
            let mut state = lock(&self.state);
            if state.receiving > 0 {
                state.parked = true;
                return;
            }
            state.parked = false;
            std::mem::take(&mut state.holding)
        };
        holding.into_iter().for_each(|gate| gate.release(Some(self)));
    }

    /// The request finished or was dropped: it will add nothing more.
    fn finish(&self) {
        let holding = std::mem::take(&mut lock(&self.state).holding);
        holding.into_iter().for_each(|gate| gate.release(Some(self)));
    }

    /// Polls the request once: first the batches it drives (whose results
    /// its resolvers may be waiting for), then the request itself with this
    /// tracker as the current request and a waker that notes wakes; then
    /// decides whether the request is idle, and starts any batch that
    /// decision dispatched.
    fn poll_tracked<T>(
        self: &Arc<Self>,
        waker: &Waker,
        cx: &mut Context<'_>,
        batches: &mut Batches,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.task.register(cx.waker());
        self.driving.store(true, Ordering::SeqCst);
        self.drive_batches(batches, cx);
        self.driving.store(false, Ordering::SeqCst);
        self.woken.store(false, Ordering::SeqCst);
        let outcome = {
            let _current = CurrentGuard::enter(Arc::clone(self));
            poll(&mut Context::from_waker(waker))
        };
        match outcome {
            Poll::Ready(_) => self.finish(),
            Poll::Pending if self.woken.load(Ordering::SeqCst) => {}
            // Out of tokio's cooperative budget, a resource returns `Pending`
            // and defers its wake until after this poll, so the request may
            // have ready work that no wake shows yet: poll it again, with a
            // fresh budget, before deciding.
            Poll::Pending if !tokio::task::coop::has_budget_remaining() => self.wake_by_ref(),
            Poll::Pending => {
                self.idle();
                // Send the statements of the batches just dispatched now.
                self.drive_batches(batches, cx);
            }
        }
        outcome
    }

    /// Polls every batch this request drives, adding those it dispatched.
    fn drive_batches(&self, batches: &mut Batches, cx: &mut Context<'_>) {
        batches.extend(std::mem::take(&mut *lock(&self.dispatched)));
        while let Poll::Ready(Some(())) = batches.poll_next_unpin(cx) {}
    }

    /// The request is done: batches it still drives serve other requests,
    /// so they go on, each on a task of its own.
    fn hand_off(&self, batches: &mut Batches) {
        batches.extend(std::mem::take(&mut *lock(&self.dispatched)));
        if batches.is_empty() {
            return;
        }
        let batches = std::mem::take(batches);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => batches.into_iter().for_each(|batch| drop(runtime.spawn(batch))),
            // Outside a runtime nothing could run them; dropping a batch
            // answers its waiters with `LoadError::Lost`.
            Err(_) => drop(batches),
        }
    }
}

/// The batches one request drives.
type Batches = FuturesUnordered<BoxFuture<'static, ()>>;

/// Makes a tracker the current request for the length of one poll, and
/// restores the previous one after (also when the poll panics).
struct CurrentGuard(Option<Arc<Tracker>>);

impl CurrentGuard {
    fn enter(tracker: Arc<Tracker>) -> Self {
        CurrentGuard(CURRENT.replace(Some(tracker)))
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.set(self.0.take());
    }
}

/// A request's execution (a future) or subscription (a stream) whose loads
/// are batched exactly: see the module docs.
pub struct Tracked<T> {
    inner: T,
    tracker: Arc<Tracker>,
    /// The tracker as a waker, built once.
    waker: Waker,
    /// Batches this request dispatched, polled on its own task.
    batches: Batches,
}

impl<T> Tracked<T> {
    /// Wraps one request's execution; the current span is the request's
    /// (the span every batch it takes part in links to).
    pub fn new(inner: T) -> Self {
        Self::with_budget(inner, None)
    }

    /// Like [`Tracked::new`], for an execution whose statements must end
    /// by `budget`'s deadline ([`db::budget`]).
    pub fn with_budget(inner: T, budget: Option<db::Budget>) -> Self {
        Self::build(inner, budget, None)
    }

    /// Like [`Tracked::with_budget`], keeping what the request loads for
    /// the rest of its life: a key loaded once is answered from the memo
    /// afterwards, with no statement (an incremental query's parts).
    pub fn memoized(inner: T, budget: Option<db::Budget>) -> Self {
        Self::build(inner, budget, Some(Arc::default()))
    }

    fn build(inner: T, budget: Option<db::Budget>, memo: Option<Arc<crate::memo::Memo>>) -> Self {
        let tracker = Arc::new(Tracker {
            span: Mutex::new(Some(tracing::Span::current())),
            task: AtomicWaker::new(),
            woken: AtomicBool::new(false),
            driving: AtomicBool::new(false),
            dispatched: Mutex::new(Vec::new()),
            budget,
            memo,
            state: Mutex::new(State::default()),
        });
        let waker = Waker::from(Arc::clone(&tracker));
        Tracked { inner, tracker, waker, batches: Batches::new() }
    }
}

impl<F: Future + Unpin> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Tracked { inner, tracker, waker, batches } = &mut *self;
        let outcome = tracker.poll_tracked(waker, cx, batches, |cx| Pin::new(inner).poll(cx));
        if outcome.is_ready() {
            tracker.hand_off(batches);
        }
        outcome
    }
}

impl<S: Stream + Unpin> Stream for Tracked<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        // An item (or the end) is complete: `poll_tracked` releases
        // whatever the request still held, as for a finished future.
        let Tracked { inner, tracker, waker, batches } = &mut *self;
        let next = tracker.poll_tracked(waker, cx, batches, |cx| Pin::new(inner).poll_next(cx));
        if let Poll::Ready(None) = next {
            tracker.hand_off(batches);
        }
        next
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        self.tracker.finish();
        self.tracker.hand_off(&mut self.batches);
        // Closed outside the lock: the subscriber's work is not ours to hold it for.
        let span = lock(&self.tracker.span).take();
        drop(span);
    }
}
