//! Group commit: concurrent callers' items gathered into one batch, run by
//! one statement in one transaction, so that one commit (and its WAL flush,
//! and for the writes the one global lock `NOTIFY` takes at commit) serves
//! them all.
//!
//! There is no timer: a lone item goes at once. Items gather only while
//! every place for a batch (a permit of the semaphore the batcher is given,
//! the writes' share of the pool) is taken: the next batch then takes all
//! that queued meanwhile, up to the batch size, as soon as a place frees.
//!
//! Each item is in one of three states: queued, taken (its batch is being
//! sent: it will be written, and its caller answered with the outcome), or
//! given up (its caller stopped waiting, or went away, before a batch took
//! it: it is never written). The change from queued to either of the
//! others is one compare-and-swap, so the caller and the batch agree on
//! which happened.
//!
//! Hand-written (tokio `mpsc` and `oneshot`): the batching crates at hand
//! gather by a delay (the loaders' `async-graphql` `DataLoader` included),
//! which would add that delay to every lone write, and none ties a batch to
//! a place of a semaphore shared with other statements, or lets a waiting
//! caller give up with the certainty that its item was not sent.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// The item waits for a batch.
const QUEUED: u8 = 0;
/// A batch took the item: it is being sent.
const TAKEN: u8 = 1;
/// Its caller gave up before a batch took it: it is never sent.
const GIVEN_UP: u8 = 2;

/// Gathers items of type `T` from concurrent callers into batches, runs
/// each batch once, and answers each caller with its own `R`.
pub struct Batcher<T, R> {
    queue: mpsc::UnboundedSender<Queued<T, R>>,
    /// The task that gathers and runs batches, started by the first
    /// submission (on the runtime that serves it, not the one that built
    /// the batcher).
    dispatcher: Mutex<Option<BoxFuture<'static, ()>>>,
}

impl<T, R> fmt::Debug for Batcher<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

/// Why a submission has no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The caller's wait ended before a batch took its item: it was not
    /// sent, and never will be.
    NotSent,
    /// Its batch was sent but ended without an answer for it (the batch's
    /// task failed): whether it was written is unknown.
    Lost,
}

/// One caller's item, waiting in the queue.
struct Queued<T, R> {
    item: T,
    state: Arc<AtomicU8>,
    reply: oneshot::Sender<R>,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Batches of at most `max` items (at least 1), each holding one
    /// permit of `places` while it runs; `run` answers a batch with one
    /// `R` per item, in the items' order.
    pub fn new<F, Fut>(places: Arc<Semaphore>, max: usize, run: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<R>> + Send + 'static,
    {
        let (queue, waiting) = mpsc::unbounded_channel();
        let dispatcher = Box::pin(dispatch(waiting, places, max.max(1), Arc::new(run)));
        Batcher { queue, dispatcher: Mutex::new(Some(dispatcher)) }
    }

    /// Queues `item` and waits for its batch's answer. Waits at most
    /// `wait` for a batch to take it; once taken, it is sent, and this
    /// waits for the answer however long the batch takes. Dropped while
    /// queued, the item is given up as on a timeout.
    pub async fn submit(&self, item: T, wait: Duration) -> Result<R, Unanswered> {
        self.start();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (reply, mut answer) = oneshot::channel();
        self.queue.send(Queued { item, state: Arc::clone(&state), reply }).map_err(|_| Unanswered::NotSent)?;
        let waiting = GiveUpOnDrop(state);
        match tokio::time::timeout(wait, &mut answer).await {
            Ok(answered) => answered.map_err(|_| Unanswered::Lost),
            Err(_) if waiting.give_up() => Err(Unanswered::NotSent),
            // Taken just before the wait ended: it is being sent.
            Err(_) => answer.await.map_err(|_| Unanswered::Lost),
        }
    }

    /// Spawns the dispatcher on the current runtime, once.
    fn start(&self) {
        let mut dispatcher = self.dispatcher.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(dispatcher) = dispatcher.take() {
            tokio::spawn(dispatcher);
        }
    }
}

/// A submitter's hold on its item's state: gives the item up when the
/// submitter stops waiting for it, unless a batch took it first.
struct GiveUpOnDrop(Arc<AtomicU8>);

impl GiveUpOnDrop {
    /// True when the item was still queued and now never will be sent.
    fn give_up(&self) -> bool {
        self.0.compare_exchange(QUEUED, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        self.give_up();
    }
}

impl<T, R> Queued<T, R> {
    /// Takes the item for a batch; false when its caller gave it up.
    fn take(&self) -> bool {
        self.state.compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// Waits for an item, then for a place, then takes every item queued by
/// then (up to `max`) as one batch, and runs it in a task of its own, so
/// that several batches run at once when places allow.
async fn dispatch<T, R, F, Fut>(
    mut waiting: mpsc::UnboundedReceiver<Queued<T, R>>,
    places: Arc<Semaphore>,
    max: usize,
    run: Arc<F>,
) where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<R>> + Send + 'static,
{
    while let Some(first) = waiting.recv().await {
        if first.state.load(Ordering::Acquire) == GIVEN_UP {
            continue;
        }
        // Nothing closes the semaphore; should something, stop batching.
        let Ok(place) = Arc::clone(&places).acquire_owned().await else { return };
        let mut taken = Vec::new();
        let mut next = Some(first);
        while let Some(queued) = next.take().or_else(|| waiting.try_recv().ok()) {
            if queued.take() {
                taken.push(queued);
                if taken.len() == max {
                    break;
                }
            }
        }
        if taken.is_empty() {
            continue;
        }
        let (items, replies): (Vec<T>, Vec<oneshot::Sender<R>>) = taken.into_iter().map(|q| (q.item, q.reply)).unzip();
        let run = Arc::clone(&run);
        tokio::spawn(async move {
            let answers = run(items).await;
            // A caller that went away meanwhile misses its answer; its item
            // was written all the same.
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(answer);
            }
            drop(place);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The items of each batch run, in the order they ran.
    type Batches = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A batcher whose batches record the items they held and answer each
    /// with the batch's size.
    fn recording(places: Arc<Semaphore>, max: usize) -> (Batcher<u32, usize>, Batches) {
        let batches = Batches::default();
        let seen = Arc::clone(&batches);
        let batcher = Batcher::new(places, max, move |items: Vec<u32>| {
            let seen = Arc::clone(&seen);
            async move {
                let size = items.len();
                seen.lock().unwrap().push(items);
                vec![size; size]
            }
        });
        (batcher, batches)
    }

    #[tokio::test]
    async fn a_lone_item_goes_at_once_in_a_batch_of_its_own() {
        let (batcher, batches) = recording(Arc::new(Semaphore::new(1)), 32);
        assert_eq!(batcher.submit(7, Duration::from_secs(60)).await, Ok(1));
        assert_eq!(*batches.lock().unwrap(), vec![vec![7]]);
    }

    #[tokio::test]
    async fn items_queued_while_the_places_are_taken_go_together_up_to_the_size() {
        let places = Arc::new(Semaphore::new(1));
        let (batcher, batches) = recording(Arc::clone(&places), 4);
        let batcher = Arc::new(batcher);
        let held = Arc::clone(&places).acquire_owned().await.unwrap();
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let submitted: Vec<_> = (0..6)
            .map(|i| {
                let (batcher, sent) = (Arc::clone(&batcher), Arc::clone(&sent));
                tokio::spawn(async move {
                    // The first poll queues the item (the send is synchronous).
                    let mut answer = std::pin::pin!(batcher.submit(i, Duration::from_secs(60)));
                    assert!(futures::poll!(&mut answer).is_pending());
                    sent.fetch_add(1, Ordering::SeqCst);
                    answer.await
                })
            })
            .collect();
        // Every item is queued before the place frees.
        while sent.load(Ordering::SeqCst) < 6 {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut sizes = Vec::new();
        for task in submitted {
            sizes.push(task.await.unwrap().unwrap());
        }
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 2], "{batches:?}");
        let mut all: Vec<u32> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..6).collect::<Vec<_>>(), "each item exactly once");
        assert_eq!(sizes.iter().filter(|&&s| s == 4).count(), 4);
    }

    #[tokio::test]
    async fn an_item_given_up_while_queued_is_never_run() {
        let places = Arc::new(Semaphore::new(1));
        let (tx, mut ran) = mpsc::unbounded_channel();
        let batcher = Batcher::new(Arc::clone(&places), 32, move |items: Vec<u32>| {
            let tx = tx.clone();
            async move {
                for item in &items {
                    tx.send(*item).unwrap();
                }
                vec![(); items.len()]
            }
        });
        let held = Arc::clone(&places).acquire_owned().await.unwrap();
        assert_eq!(batcher.submit(1, Duration::from_millis(20)).await, Err(Unanswered::NotSent));
        drop(held);
        assert_eq!(batcher.submit(2, Duration::from_secs(60)).await, Ok(()));
        assert_eq!(ran.recv().await, Some(2), "the given-up item never ran");
    }
}
