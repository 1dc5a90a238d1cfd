//! Read replicas (`DATABASE_READ_URL`): which queries may read a streaming
//! replica, and a watcher that keeps track of how far it has replayed.
//!
//! The rule: a query reads the replica unless that could show it older data
//! than this server has already promised. Mutations and subscriptions
//! always use the primary (a subscriber's `note` must show the write its
//! event announces). Writes counted here are every committed note write
//! this server has made or heard of over `LISTEN`, each given a sequence
//! number. The watcher, after any new write (and every quarter of the lag
//! bound while idle), takes the primary's WAL position and waits for the
//! replica to replay it: then every write counted before that position was
//! taken is on the replica. A query goes to the primary instead when
//! - the viewer wrote something the replica has not been shown to hold yet
//!   (read-your-writes, whichever server took the write);
//! - writes are pending and the replica's last proven state is older than
//!   `NOTEGRAPH_REPLICA_MAX_LAG_MS` (a lagging replica is not read at all);
//! - the replica does not answer, or cannot replay the primary's position
//!   within the lag bound, or the `LISTEN` connection is down (writes by
//!   other servers would go unnoticed).
//!
//! The response cache has the same hazard: a response executed on the
//! replica after an invalidation could hold the data from before it. So a
//! replica-read response counts as begun at the cache epoch the replica was
//! last proven to hold, and any invalidation since makes it stale on
//! arrival ([`cache::Touched::read_as_of`]).
//!
//! Hand-written: this is the server's own consistency rule over Postgres
//! WAL positions; no crate expresses it.

use std::any::TypeId;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_graphql::Request;
use cache::{Epoch, ResponseCache, Touched};
use tokio::sync::{Notify, watch};

use crate::auth::Viewer;
use crate::source::Source;

/// First wait between two looks at the replica's replay position; doubled
/// up to [`REPLAY_POLL_MAX`] while it is behind.
const REPLAY_POLL_START: Duration = Duration::from_millis(1);
/// Longest wait between two looks at a lagging replica.
const REPLAY_POLL_MAX: Duration = Duration::from_millis(16);
/// Wait after the primary or the replica failed to answer, before trying again.
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(250);

/// Request data that keeps a query on the primary: its viewer wrote through
/// another server that this one has not heard from yet
/// ([`crate::read_your_writes`]).
pub struct ReadPrimary;

/// The read replica, its loaders and what this server knows of its
/// progress; cheap to clone.
#[derive(Clone)]
pub struct ReadReplica(Arc<Inner>);

struct Inner {
    /// The replica's pool and the loaders over it.
    source: Arc<Source>,
    /// Writes counted so far.
    writes: AtomicU64,
    /// The replica holds every write up to this count.
    synced_writes: AtomicU64,
    /// ... and every cache invalidation up to this epoch.
    synced_epoch: AtomicU64,
    /// ... as of this moment (ms since `started`).
    synced_at: AtomicU64,
    started: Instant,
    /// The replica answered its last check.
    healthy: AtomicBool,
    /// The `LISTEN` connection is up, so other servers' writes are counted.
    listening: AtomicBool,
    /// Each recent writer's latest write, by count; forgotten after the
    /// read-your-writes window.
    writers: moka::sync::Cache<db::UserId, u64>,
    max_lag: Duration,
    /// Wakes the watcher when a write is counted.
    wake: Notify,
    /// Queries sent to the replica, and kept on the primary.
    to_replica: AtomicU64,
    to_primary: AtomicU64,
}

/// What `/metrics` reports of the replica.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaStats {
    /// The replica answers, within the lag bound, and writes are heard.
    pub ready: bool,
    /// Queries that read the replica.
    pub replica_queries: u64,
    /// Queries kept on the primary by the rules in the module docs.
    pub primary_queries: u64,
    /// Writes counted (made here or heard of).
    pub writes: u64,
    /// Writes counted that the replica is not yet shown to hold.
    pub unreplayed_writes: u64,
}

impl ReadReplica {
    /// A replica read through `source`; not read until the watcher has
    /// seen it answer. `remember` must exceed `max_lag`
    /// ([`crate::config::Config::check_timeouts`]).
    pub fn new(source: Source, max_lag: Duration, remember: Duration) -> Self {
        ReadReplica(Arc::new(Inner {
            source: Arc::new(source),
            writes: AtomicU64::new(0),
            synced_writes: AtomicU64::new(0),
            synced_epoch: AtomicU64::new(0),
            synced_at: AtomicU64::new(0),
            started: Instant::now(),
            healthy: AtomicBool::new(false),
            listening: AtomicBool::new(true),
            writers: moka::sync::Cache::builder().time_to_live(remember).build(),
            max_lag,
            wake: Notify::new(),
            to_replica: AtomicU64::new(0),
            to_primary: AtomicU64::new(0),
        }))
    }

    /// Counts a committed write by `author`: their reads stay on the
    /// primary until the replica is shown to hold it.
    pub fn written(&self, author: db::UserId) {
        let count = self.0.writes.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.writers.insert(author, count);
        self.0.wake.notify_one();
    }

    /// Follows the `LISTEN` connection: while it is down, other servers'
    /// writes go uncounted, so nothing reads the replica; once it is back,
    /// the replica must first replay everything up to then.
    pub fn set_listening(&self, listening: bool) {
        if listening {
            self.0.writes.fetch_add(1, Ordering::SeqCst);
            self.0.wake.notify_one();
        }
        self.0.listening.store(listening, Ordering::SeqCst);
    }

    /// Sends `request`, a query, to the replica when it may answer it (see
    /// the module docs); returns whether it did.
    pub fn route(&self, request: &mut Request) -> bool {
        let routed = self.try_route(request);
        let counter = if routed { &self.0.to_replica } else { &self.0.to_primary };
        counter.fetch_add(1, Ordering::Relaxed);
        routed
    }

    /// The replica's pool, for its connection gauges.
    pub fn pool(&self) -> &db::PgPool {
        &self.0.source.pool
    }

    /// What `/metrics` reports.
    pub fn stats(&self) -> ReplicaStats {
        let inner = &self.0;
        let writes = inner.writes.load(Ordering::SeqCst);
        ReplicaStats {
            ready: inner.listening.load(Ordering::SeqCst) && inner.healthy.load(Ordering::SeqCst),
            replica_queries: inner.to_replica.load(Ordering::Relaxed),
            primary_queries: inner.to_primary.load(Ordering::Relaxed),
            writes,
            unreplayed_writes: writes.saturating_sub(inner.synced_writes.load(Ordering::SeqCst)),
        }
    }

    fn try_route(&self, request: &mut Request) -> bool {
        let inner = &self.0;
        if !inner.listening.load(Ordering::SeqCst) || !inner.healthy.load(Ordering::SeqCst) {
            return false;
        }
        let synced = inner.synced_writes.load(Ordering::SeqCst);
        let since_synced = inner.elapsed_ms().saturating_sub(inner.synced_at.load(Ordering::SeqCst));
        if inner.writes.load(Ordering::SeqCst) > synced && since_synced > inner.max_lag.as_millis() as u64 {
            return false;
        }
        if request.data.contains_key(&TypeId::of::<ReadPrimary>()) {
            return false;
        }
        let viewer = request.data.get(&TypeId::of::<Viewer>()).and_then(|v| v.downcast_ref::<Viewer>());
        if let Some(user) = viewer.and_then(|v| v.user)
            && inner.writers.get(&user).is_some_and(|write| write > synced)
        {
            return false;
        }
        let epoch = Epoch::from_bits(inner.synced_epoch.load(Ordering::SeqCst));
        if let Some(touched) =
            request.data.get(&TypeId::of::<Arc<Touched>>()).and_then(|t| t.downcast_ref::<Arc<Touched>>())
        {
            touched.read_as_of(epoch);
        }
        request.data.insert(Arc::clone(&inner.source));
        true
    }

    /// Tracks the replica's replay position until `stop` turns true: after
    /// each counted write, and every quarter of the lag bound while idle.
    pub async fn watch(self, primary: db::PgPool, cache: Option<ResponseCache>, mut stop: watch::Receiver<bool>) {
        let inner = &self.0;
        let idle = (inner.max_lag / 4).max(Duration::from_millis(10));
        loop {
            // Read before the primary's position: every write counted (and
            // invalidation stamped) by now committed before it.
            let writes = inner.writes.load(Ordering::SeqCst);
            let epoch = cache.as_ref().map_or(Epoch::from_bits(0), ResponseCache::begin);
            let at = inner.elapsed_ms();
            // A replica that cannot replay within the lag bound (or hangs)
            // is as good as down until it can.
            let synced = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                synced = tokio::time::timeout(inner.max_lag, replayed_up_to_now(&primary, &inner.source.pool)) => synced,
            };
            let pause = match synced {
                Ok(Ok(())) => {
                    inner.synced_writes.store(writes, Ordering::SeqCst);
                    inner.synced_epoch.store(epoch.to_bits(), Ordering::SeqCst);
                    inner.synced_at.store(at, Ordering::SeqCst);
                    if !inner.healthy.swap(true, Ordering::SeqCst) {
                        tracing::info!("the read replica answers; queries read it");
                    }
                    idle
                }
                Ok(Err(err)) => {
                    if inner.healthy.swap(false, Ordering::SeqCst) {
                        tracing::warn!(error.message = %err, "the read replica does not answer; reading the primary");
                    }
                    RETRY_AFTER_ERROR
                }
                Err(_) => {
                    if inner.healthy.swap(false, Ordering::SeqCst) {
                        tracing::warn!(
                            max_lag_ms = inner.max_lag.as_millis() as u64,
                            "the read replica is further behind than the lag bound; reading the primary"
                        );
                    }
                    Duration::ZERO
                }
            };
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

impl Inner {
    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// Completes once the replica has replayed the primary's WAL up to where
/// it stood at the call.
async fn replayed_up_to_now(primary: &db::PgPool, replica: &db::PgPool) -> Result<(), db::Error> {
    let goal = db::replication::primary_position(primary).await?;
    let mut poll = REPLAY_POLL_START;
    while db::replication::replayed_position(replica).await? < goal {
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(REPLAY_POLL_MAX);
    }
    Ok(())
}
