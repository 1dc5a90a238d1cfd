//! The response cache: finished response bodies (opaque bytes) under keys
//! the caller derives from its request and a [`Scope`], bounded by bytes
//! with a TTL, invalidated by dependency [`Tag`]s, and coalescing identical
//! concurrent work into one execution; [`Requests`], the fingerprints of
//! requests by their bytes as sent, so that a request sent again is keyed
//! without parsing it; and [`Documents`], the bounded store of persisted
//! query texts.
//!
//! This crate knows nothing of GraphQL or SQL: a key is a hash of bytes the
//! caller chose, a tag is a hash of a name the caller chose, and a body is
//! bytes.
//!
//! Invalidation is by epochs, not by finding entries: every invalidation
//! takes the next epoch and stamps it on the buckets of the tags it names;
//! an entry remembers the epoch at which its execution *began* and is fresh
//! while none of its tags' buckets carries a later stamp. An execution that
//! read old data while a write committed therefore never stores (or serves)
//! a value that outlives the write, with no lock between readers and
//! writers. Stale entries are dropped when next looked up, or by TTL and
//! size eviction. Two tags may share a bucket (1 in 65,536): that costs a
//! needless miss, never a stale hit.
//!
//! # Layout
//! - `lib.rs`: [`ResponseCache`], its entries, epochs and coalescing.
//! - `key`: fingerprints, keys, scopes and dependency tags.
//! - `touched`: what one execution read, recorded as it reads.
//! - `requests`: fingerprints by the bytes as sent.
//! - `documents`: persisted query texts by hash.

mod documents;
mod key;
mod requests;
mod touched;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;

pub use documents::Documents;
pub use key::{Fingerprint, Key, Scope, Tag};
pub use requests::Requests;
pub use touched::Touched;

/// Invalidation buckets: the more, the fewer needless misses from two
/// tags sharing one (8 bytes each, 512 KiB in all).
const BUCKETS: usize = 1 << 16;

/// Fixed bookkeeping charged to every entry on top of its body and tags,
/// so that many tiny entries still count against the byte bound.
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Bytes of the cache's bound per remembered request ([`Requests`]): an
/// entry there costs moka's bookkeeping for two 16-byte hashes, and a
/// stored response rarely costs under 2 KiB, so requests enough for every
/// stored response are remembered for a small share of the bound.
const BYTES_PER_REMEMBERED_REQUEST: u64 = 4096;

/// The cache's limits.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Upper bound on stored bytes (bodies, tags and bookkeeping).
    pub max_bytes: u64,
    /// How long an entry lives at most, even if nothing invalidates it.
    pub ttl: Duration,
}

/// The moment an execution began, in invalidation epochs; taken with
/// [`ResponseCache::begin`] before any data is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(u64);

impl Epoch {
    /// The epoch as a number, so that it can be kept in an atomic.
    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// The epoch that [`Epoch::to_bits`] gave this number for.
    pub fn from_bits(bits: u64) -> Self {
        Epoch(bits)
    }
}

/// A response ready to store: its body, what it depends on and when its
/// execution began.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The encoded response.
    pub body: Bytes,
    /// What the execution read.
    pub tags: Vec<Tag>,
    /// The shortest `max-age` of the fields it selected (async-graphql's
    /// cache-control hints), when any is shorter than the cache's TTL.
    pub max_age: Option<Duration>,
    /// When the execution began, or the earlier epoch its data was as of
    /// (read from a replica that lags): what it read must not have been
    /// invalidated since.
    pub began: Epoch,
}

/// One stored response.
#[derive(Debug)]
struct Entry {
    body: Bytes,
    tags: Box<[Tag]>,
    began: Epoch,
    /// How long it may be served: the cache's TTL, or the response's
    /// shorter max-age.
    ttl: Duration,
}

/// Expires each entry after its own TTL.
struct PerEntry;

impl moka::Expiry<Key, Arc<Entry>> for PerEntry {
    fn expire_after_create(&self, _key: &Key, entry: &Arc<Entry>, _created_at: std::time::Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &Key,
        entry: &Arc<Entry>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// How [`ResponseCache::get_or_run`] answered.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A fresh stored body, or the body of an identical execution this
    /// request waited for.
    Hit(Bytes),
    /// This request ran the execution, and its result was stored.
    Miss(Bytes),
}

/// Counters, for logs and the metrics registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Executions run because nothing fresh was stored.
    pub misses: u64,
    /// Requests that waited for an identical execution instead of running.
    pub coalesced: u64,
    /// Tags named by invalidations.
    pub invalidated_tags: u64,
    /// Entries found stale and dropped.
    pub stale: u64,
    /// Entries moka dropped for room or at the end of their TTL.
    pub evicted: u64,
    /// Entries held now (approximate, as moka reports it).
    pub entries: u64,
    /// Bytes held now (approximate, as moka reports it).
    pub bytes: u64,
}

/// What invalidations have happened, shared by every clone of the cache.
struct Epochs {
    /// The latest epoch handed out.
    current: AtomicU64,
    /// Per bucket, the epoch of the latest invalidation of a tag in it.
    invalidated: Box<[AtomicU64]>,
    /// The epoch of the latest full flush.
    flushed: AtomicU64,
    /// False while invalidations may be missed (the listener is down):
    /// nothing is served or stored.
    available: AtomicBool,
}

impl Epochs {
    /// True when nothing that `tags` names was invalidated after `began`.
    fn fresh(&self, tags: &[Tag], began: Epoch) -> bool {
        self.available.load(Ordering::SeqCst)
            && self.flushed.load(Ordering::SeqCst) <= began.0
            && tags.iter().all(|tag| self.invalidated[tag.bucket(BUCKETS)].load(Ordering::SeqCst) <= began.0)
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    invalidated_tags: AtomicU64,
    stale: AtomicU64,
    evicted: AtomicU64,
}

/// A value a waiter may receive from the execution it waited for, stamped
/// with when that execution began.
struct Passed<E> {
    began: Epoch,
    value: Result<Bytes, E>,
}

/// The response cache; cheap to clone (handles only).
#[derive(Clone)]
pub struct ResponseCache {
    entries: Cache<Key, Arc<Entry>>,
    /// The longest an entry lives.
    ttl: Duration,
    epochs: Arc<Epochs>,
    counters: Arc<Counters>,
    /// Fingerprints of requests by their bytes as sent.
    requests: Requests,
}

impl ResponseCache {
    /// A cache holding at most `config.max_bytes`, each entry for at most
    /// `config.ttl`.
    pub fn new(config: Config) -> Self {
        let counters = Arc::new(Counters::default());
        let entries = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_key: &Key, entry: &Arc<Entry>| {
                let bytes = entry.body.len() + entry.tags.len() * size_of::<Tag>() + ENTRY_OVERHEAD_BYTES;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntry)
            .eviction_listener({
                let counters = Arc::clone(&counters);
                move |_key, _entry, cause| {
                    // Only what the cache chose to drop: an explicit
                    // invalidation or a replacement is counted elsewhere.
                    if cause.was_evicted() {
                        counters.evicted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .build();
        let epochs = Epochs {
            current: AtomicU64::new(0),
            invalidated: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            flushed: AtomicU64::new(0),
            available: AtomicBool::new(true),
        };
        let requests = Requests::new((config.max_bytes / BYTES_PER_REMEMBERED_REQUEST).max(1));
        ResponseCache { entries, ttl: config.ttl, epochs: Arc::new(epochs), counters, requests }
    }

    /// The entry to keep for `stored`, living the cache's TTL or its
    /// shorter max-age.
    fn entry(&self, stored: Stored) -> Entry {
        let ttl = stored.max_age.map_or(self.ttl, |max_age| max_age.min(self.ttl));
        Entry { body: stored.body, tags: stored.tags.into(), began: stored.began, ttl }
    }

    /// The fingerprints of requests by their bytes as sent: look a request
    /// up there before parsing it for its key.
    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    /// The current epoch: take it before an execution reads anything.
    pub fn begin(&self) -> Epoch {
        Epoch(self.epochs.current.load(Ordering::SeqCst))
    }

    /// A fresh stored body; a stale one is dropped.
    pub async fn get(&self, key: Key) -> Option<Bytes> {
        let entry = self.entries.get(&key).await?;
        if self.epochs.fresh(&entry.tags, entry.began) {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            Some(entry.body.clone())
        } else {
            self.counters.stale.fetch_add(1, Ordering::Relaxed);
            self.entries.invalidate(&key).await;
            None
        }
    }

    /// Stores a response, unless what it read changed since it began.
    pub async fn insert(&self, key: Key, stored: Stored) {
        if self.epochs.fresh(&stored.tags, stored.began) {
            let entry = self.entry(stored);
            self.entries.insert(key, Arc::new(entry)).await;
        }
    }

    /// The fresh body under `key`, or the result of `run`, which identical
    /// concurrent callers (same key) share: only one of them runs.
    ///
    /// `run` answers `Ok` with a response to store, or `Err` with a value
    /// that must not be stored (an error, an uncacheable response); an
    /// `Err` reaches only the callers that were waiting, and only when no
    /// invalidation happened since that execution began. A waiter that
    /// cannot take the shared result (it went stale while it waited) runs
    /// its own execution, so a read that starts after an invalidation
    /// never sees data from before it.
    pub async fn get_or_run<F, Fut, E>(&self, key: Key, run: F) -> Result<Outcome, E>
    where
        F: FnOnce(Epoch) -> Fut,
        Fut: Future<Output = Result<Stored, E>>,
        E: Clone + Send + Sync + 'static,
    {
        if let Some(body) = self.get(key).await {
            return Ok(Outcome::Hit(body));
        }
        let mut slot = Some(run);
        let epochs = &self.epochs;
        let shared = self
            .entries
            .try_get_with(key, async {
                let Some(run) = slot.take() else { unreachable!("the init future runs at most once") };
                let began = Epoch(epochs.current.load(Ordering::SeqCst));
                match run(began).await {
                    // `stored.began` may be earlier than `began`: the data
                    // it read was as of then (a lagging replica).
                    Ok(stored) if epochs.fresh(&stored.tags, stored.began) => Ok(Arc::new(self.entry(stored))),
                    // Read while a write committed: answer it, store nothing.
                    Ok(stored) => Err(Passed { began: stored.began, value: Ok(stored.body) }),
                    Err(value) => Err(Passed { began, value: Err(value) }),
                }
            })
            .await;
        let Some(run) = slot else {
            // This caller ran the execution.
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            return match shared {
                Ok(entry) => Ok(Outcome::Miss(entry.body.clone())),
                Err(passed) => passed.value.clone().map(Outcome::Miss),
            };
        };
        // This caller waited for another's execution.
        let usable = match &shared {
            Ok(entry) => self.epochs.fresh(&entry.tags, entry.began),
            Err(passed) => passed.began == self.begin(),
        };
        if usable {
            self.counters.coalesced.fetch_add(1, Ordering::Relaxed);
            return match shared {
                Ok(entry) => Ok(Outcome::Hit(entry.body.clone())),
                Err(passed) => passed.value.clone().map(Outcome::Hit),
            };
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        let began = self.begin();
        let stored = run(began).await?;
        let body = stored.body.clone();
        self.insert(key, stored).await;
        Ok(Outcome::Miss(body))
    }

    /// Makes every entry that depends on one of `tags` stale, now.
    pub fn invalidate(&self, tags: impl IntoIterator<Item = Tag>) {
        let epoch = self.epochs.current.fetch_add(1, Ordering::SeqCst) + 1;
        let mut count = 0;
        for tag in tags {
            self.epochs.invalidated[tag.bucket(BUCKETS)].fetch_max(epoch, Ordering::SeqCst);
            count += 1;
        }
        self.counters.invalidated_tags.fetch_add(count, Ordering::Relaxed);
    }

    /// Drops everything: for when invalidations may have been missed.
    pub fn flush(&self) {
        let epoch = self.epochs.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.epochs.flushed.fetch_max(epoch, Ordering::SeqCst);
        self.entries.invalidate_all();
    }

    /// Stops (false) or resumes (true) serving and storing; a resume
    /// flushes, since invalidations may have been missed in between.
    pub fn set_available(&self, available: bool) {
        if available {
            self.flush();
        }
        self.epochs.available.store(available, Ordering::SeqCst);
        if !available {
            self.flush();
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            invalidated_tags: c.invalidated_tags.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
            entries: self.entries.entry_count(),
            bytes: self.entries.weighted_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn cache() -> ResponseCache {
        ResponseCache::new(Config { max_bytes: 1 << 20, ttl: Duration::from_secs(60) })
    }

    fn key(name: &str) -> Key {
        Key::new(Fingerprint::of([name.as_bytes()]), Scope::Shared)
    }

    fn stored(body: &'static str, tags: &[&str], began: Epoch) -> Stored {
        let tags = tags.iter().map(|t| Tag::new(t)).collect();
        Stored { body: Bytes::from_static(body.as_bytes()), tags, began, max_age: None }
    }

    #[tokio::test]
    async fn invalidation_drops_exactly_the_entries_carrying_the_tag() {
        let cache = cache();
        cache.insert(key("a"), stored("A", &["Note:1"], cache.begin())).await;
        cache.insert(key("b"), stored("B", &["Note:2"], cache.begin())).await;

        cache.invalidate([Tag::new("Note:1")]);

        assert_eq!(cache.get(key("a")).await, None);
        assert_eq!(cache.get(key("b")).await, Some(Bytes::from_static(b"B")));
    }

    #[tokio::test]
    async fn a_response_read_before_an_invalidation_is_not_stored() {
        let cache = cache();
        let began = cache.begin();
        cache.invalidate([Tag::new("Note:1")]);
        cache.insert(key("a"), stored("old", &["Note:1"], began)).await;
        assert_eq!(cache.get(key("a")).await, None);
    }

    #[tokio::test]
    async fn a_response_whose_data_predates_an_invalidation_is_not_stored_even_if_it_ran_after() {
        // A replica that has replayed only up to `as_of`; then a write.
        let cache = cache();
        let touched = Touched::default();
        touched.read_as_of(cache.begin());
        cache.invalidate([Tag::new("Note/list")]);
        // An execution that begins after the write, reading the replica.
        let touched = &touched;
        let run = |began| async move { Ok::<_, ()>(stored("old", &["Note/list"], touched.began(began))) };
        assert!(matches!(cache.get_or_run(key("a"), run).await, Ok(Outcome::Miss(_))));
        assert_eq!(cache.get(key("a")).await, None, "stored an answer older than the write");
        // Without the replica's lag, the same execution is stored.
        let run = |began| async move { Ok::<_, ()>(stored("new", &["Note/list"], began)) };
        assert!(matches!(cache.get_or_run(key("a"), run).await, Ok(Outcome::Miss(_))));
        assert_eq!(cache.get(key("a")).await, Some(Bytes::from_static(b"new")));
    }

    #[tokio::test]
    async fn an_entry_lives_its_own_max_age_when_shorter_than_the_ttl() {
        let cache = cache();
        // 2 s: time enough to find the entry still there however busy the
        // machine; the sleep then only has to outlast it.
        let short =
            Stored { max_age: Some(Duration::from_secs(2)), ..stored("short", &["Note/search"], cache.begin()) };
        cache.insert(key("short"), short).await;
        cache.insert(key("long"), stored("long", &["Note/list"], cache.begin())).await;
        assert!(cache.get(key("short")).await.is_some());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(cache.get(key("short")).await, None, "outlived its max-age");
        assert_eq!(cache.get(key("long")).await, Some(Bytes::from_static(b"long")));
    }

    #[tokio::test]
    async fn concurrent_identical_requests_run_once() {
        let cache = cache();
        let runs = AtomicUsize::new(0);
        let runs = &runs;
        let run = move |began| async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, ()>(stored("body", &["Note/list"], began))
        };
        let answers = futures_join(&cache, run).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(answers.iter().filter(|a| matches!(a, Ok(Outcome::Miss(_)))).count(), 1);
        assert_eq!(answers.iter().filter(|a| matches!(a, Ok(Outcome::Hit(_)))).count(), 7);
        assert_eq!(cache.stats().coalesced, 7);
    }

    /// Eight concurrent `get_or_run`s of one key, polled together.
    async fn futures_join<F, Fut>(cache: &ResponseCache, run: F) -> Vec<Result<Outcome, ()>>
    where
        F: Fn(Epoch) -> Fut + Clone,
        Fut: Future<Output = Result<Stored, ()>>,
    {
        futures::future::join_all((0..8).map(|_| cache.get_or_run(key("k"), run.clone()))).await
    }
}
