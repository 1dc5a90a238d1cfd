//! Series read at scrape time from state that already counts itself: the
//! response cache's counters, the pools' connections and the read
//! replica's routing. Nothing is
//! recorded on the request path for these.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, Opts};

/// Copies values into plain counters and gauges, then reports them.
/// A std mutex: one scrape at a time fills and reads them.
struct Snapshot {
    counters: Vec<IntCounter>,
    gauges: Vec<IntGauge>,
    lock: Mutex<()>,
}

impl Snapshot {
    fn descs(&self) -> Vec<&Desc> {
        let counters = self.counters.iter().flat_map(Collector::desc);
        counters.chain(self.gauges.iter().flat_map(Collector::desc)).collect()
    }

    fn collect(&self, counts: &[u64], levels: &[i64]) -> Vec<MetricFamily> {
        let _one_scrape = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (counter, value) in self.counters.iter().zip(counts) {
            counter.reset();
            counter.inc_by(*value);
        }
        for (gauge, value) in self.gauges.iter().zip(levels) {
            gauge.set(*value);
        }
        let counters = self.counters.iter().flat_map(Collector::collect);
        counters.chain(self.gauges.iter().flat_map(Collector::collect)).collect()
    }
}

/// The response cache's counters (docs/CACHE.md).
pub(super) struct CacheCollector {
    cache: cache::ResponseCache,
    snapshot: Snapshot,
}

impl CacheCollector {
    pub(super) fn new(cache: cache::ResponseCache) -> Result<Self, prometheus::Error> {
        let counters = vec![
            IntCounter::new("notegraph_response_cache_hits_total", "Requests answered from the response cache.")?,
            IntCounter::new(
                "notegraph_response_cache_misses_total",
                "Executions run because nothing fresh was cached.",
            )?,
            IntCounter::new(
                "notegraph_response_cache_coalesced_total",
                "Requests that waited for an identical execution instead of running their own.",
            )?,
            IntCounter::new(
                "notegraph_response_cache_invalidations_total",
                "Dependency tags named by invalidations (writes, here or on other replicas).",
            )?,
            IntCounter::new(
                "notegraph_response_cache_stale_total",
                "Entries found stale (an invalidation came after them) and dropped.",
            )?,
            IntCounter::new(
                "notegraph_response_cache_evictions_total",
                "Entries the cache dropped for room or at the end of their TTL.",
            )?,
        ];
        let gauges = vec![
            IntGauge::new("notegraph_response_cache_entries", "Entries held now (approximate).")?,
            IntGauge::new("notegraph_response_cache_bytes", "Bytes held now (approximate).")?,
        ];
        Ok(CacheCollector { cache, snapshot: Snapshot { counters, gauges, lock: Mutex::new(()) } })
    }
}

impl Collector for CacheCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.snapshot.descs()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = self.cache.stats();
        let levels = [clamp(s.entries), clamp(s.bytes)];
        self.snapshot.collect(&[s.hits, s.misses, s.coalesced, s.invalidated_tags, s.stale, s.evicted], &levels)
    }
}

/// The size of the parsed-document map ([`crate::parsed`]), so
/// that memory growth can be told apart from it filling.
pub(super) struct ParsedDocumentsCollector {
    parsed: crate::parsed::ParsedDocuments,
    snapshot: Snapshot,
}

impl ParsedDocumentsCollector {
    pub(super) fn new(parsed: crate::parsed::ParsedDocuments) -> Result<Self, prometheus::Error> {
        let gauges = vec![
            IntGauge::new("notegraph_parsed_documents_entries", "Parsed documents kept now (approximate).")?,
            IntGauge::new(
                "notegraph_parsed_documents_bytes",
                "Bytes the kept parsed documents are counted as (NOTEGRAPH_PARSED_DOCUMENTS_BYTES bounds it).",
            )?,
        ];
        Ok(ParsedDocumentsCollector {
            parsed,
            snapshot: Snapshot { counters: Vec::new(), gauges, lock: Mutex::new(()) },
        })
    }
}

impl Collector for ParsedDocumentsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.snapshot.descs()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (entries, bytes) = self.parsed.size();
        self.snapshot.collect(&[], &[clamp(entries), clamp(bytes)])
    }
}

/// One pool's connections, labelled `pool="primary"` or `pool="replica"`;
/// the primary's also reports the reads waiting for a connection, which
/// `db` counts for both pools together ([`super::statements::AcquireMetrics`]).
pub(super) struct PoolCollector {
    pool: db::PgPool,
    reports_waits: bool,
    snapshot: Snapshot,
}

impl PoolCollector {
    pub(super) fn new(pool: db::PgPool, role: PoolRole) -> Result<Self, prometheus::Error> {
        let gauge =
            |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help).const_label("pool", role.label()));
        let mut gauges = vec![
            gauge("notegraph_db_pool_connections", "Connections open now, idle or in use.")?,
            gauge("notegraph_db_pool_idle_connections", "Open connections not in use.")?,
            gauge("notegraph_db_pool_max_connections", "The pool's bound (NOTEGRAPH_DB_MAX_CONNECTIONS).")?,
        ];
        let reports_waits = role == PoolRole::Primary;
        if reports_waits {
            gauges.push(IntGauge::new(
                "notegraph_db_pool_waiting",
                "Statements waiting for a connection now, in either pool.",
            )?);
        }
        Ok(PoolCollector {
            pool,
            reports_waits,
            snapshot: Snapshot { counters: Vec::new(), gauges, lock: Mutex::new(()) },
        })
    }
}

/// Which of the server's two pools a [`PoolCollector`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PoolRole {
    /// `DATABASE_URL`: writes, and every read when there is no replica.
    Primary,
    /// `DATABASE_READ_URL`: the queries the replica may answer.
    Replica,
}

impl PoolRole {
    fn label(self) -> &'static str {
        match self {
            PoolRole::Primary => "primary",
            PoolRole::Replica => "replica",
        }
    }
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.snapshot.descs()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let size = i64::from(self.pool.size());
        let idle = clamp(self.pool.num_idle() as u64);
        let max = i64::from(self.pool.options().get_max_connections());
        let mut levels = vec![size, idle, max];
        if self.reports_waits {
            levels.push(super::process::PROCESS.acquires_waiting.load(std::sync::atomic::Ordering::Relaxed).max(0));
        }
        self.snapshot.collect(&[], &levels)
    }
}

/// The read replica's routing (docs/DEPLOY.md, "Read replicas").
pub(super) struct ReplicaCollector {
    replica: crate::replica::ReadReplica,
    snapshot: Snapshot,
}

impl ReplicaCollector {
    pub(super) fn new(replica: crate::replica::ReadReplica) -> Result<Self, prometheus::Error> {
        let counters = vec![
            IntCounter::new("notegraph_read_replica_queries_total", "Queries that read the read replica.")?,
            IntCounter::new(
                "notegraph_read_replica_primary_queries_total",
                "Queries kept on the primary: the viewer's own write not yet replayed, the replica behind or down.",
            )?,
            IntCounter::new("notegraph_read_replica_writes_total", "Note writes made here or heard of over LISTEN.")?,
        ];
        let gauges = vec![
            IntGauge::new("notegraph_read_replica_ready", "1 while the replica answers within the lag bound.")?,
            IntGauge::new(
                "notegraph_read_replica_unreplayed_writes",
                "Writes counted that the replica is not yet shown to have replayed.",
            )?,
        ];
        Ok(ReplicaCollector { replica, snapshot: Snapshot { counters, gauges, lock: Mutex::new(()) } })
    }
}

impl Collector for ReplicaCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.snapshot.descs()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = self.replica.stats();
        let levels = [i64::from(s.ready), clamp(s.unreplayed_writes)];
        self.snapshot.collect(&[s.replica_queries, s.primary_queries, s.writes], &levels)
    }
}

/// A count as a gauge value.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
