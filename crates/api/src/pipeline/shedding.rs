//! Shedding, the head of the list: at most a limit of requests execute at
//! once, and the next one is answered 503 `SERVICE_UNAVAILABLE` with
//! `Retry-After` at once ([`super::policy::overloaded`]), never queued.
//!
//! The limit is fixed when `NOTEGRAPH_MAX_CONCURRENT_REQUESTS` is set, as
//! an operator's override. Otherwise it finds itself from measured latency
//! ([`Gradient`]), between `NOTEGRAPH_CONCURRENCY_MIN` and
//! `NOTEGRAPH_CONCURRENCY_MAX`: it starts at the maximum, and when latency
//! climbs, as it does once the CPU or the database saturates and requests
//! only wait for each other, it falls, so that the excess is refused
//! quickly instead of slowing everyone down; while latency stays near its
//! baseline it grows back.
//!
//! Written here rather than taken from a crate: the crates found
//! (tower-acc 0.1, young, with one maintainer; tower-resilience-adaptive)
//! take a semaphore permit in `poll_ready` (a queue, unless tower's
//! `LoadShed` wraps them) and time every response they pass (cache hits,
//! answered in microseconds, would drag the baseline down and make every
//! execution look slow); neither lets the baseline stop learning while
//! shedding (see [`Gradient`]), and either would add dependencies to a
//! lock file that several people edit at once. The algorithm is ~100 lines
//! and tested on its own below.
//!
//! Which latency it feeds on: the service time of admitted requests (from
//! admission to the response, so no time spent queued: nothing queues)
//! that executed — `x-cache` `miss` or `bypass`. Cache hits and requests
//! refused before execution (no `x-cache`: 4xx, 429) are not samples;
//! subscriptions and streams never pass here. Samples are not normalised by
//! the operation's cost: a window averages many requests of the traffic's
//! usual mix, which is what the baseline learnt too.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request as HttpRequest;
use axum::response::Response as HttpResponse;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
use tower::{Layer, Service};

pub use crate::config::Concurrency;

/// Samples per window: the limit moves at most once per window, on the
/// window's mean service time (a mean of 20 smooths one slow request).
pub const WINDOW_SAMPLES: u32 = 20;
/// How far a window's mean may rise over the baseline before the limit
/// falls: 1.5 times (Netflix's Gradient2 default `rttTolerance`).
pub const TOLERANCE: f64 = 1.5;
/// How much of the way to its target the limit moves per window
/// (Gradient2's `smoothing`).
pub const SMOOTHING: f64 = 0.2;
/// How fast the baseline follows a window slower than itself (per
/// window): slowly, so that a queue building up is not learnt as normal.
pub const BASELINE_RISE: f64 = 0.01;
/// How fast the baseline follows a window faster than itself: quickly, so
/// that the baseline sits near the service time without queueing.
pub const BASELINE_FALL: f64 = 0.2;
/// The share of the limit that must have been executing at once during a
/// window for the limit to fall after it (see [`Gradient`]).
pub const IN_USE: f64 = 0.5;

/// A change of the (whole-number) limit after a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It rose to this.
    Up(usize),
    /// It fell to this.
    Down(usize),
}

/// The adaptive limit, in the style of Netflix's Gradient2: once per
/// window of [`WINDOW_SAMPLES`] service times, the limit becomes
/// `limit × gradient + √limit`, smoothed, where `gradient = clamp(TOLERANCE
/// × baseline / mean, 0.5, 1)` and `√limit` is the headroom that lets it
/// grow and probe. Pure (samples in, limit out): no clock, no locks.
///
/// Two departures from Gradient2, both against the baseline drifting up
/// under sustained overload (where every window is slow and Gradient2's
/// long-term average would learn the queue as the new normal): the
/// baseline rises slowly and falls fast, and it does not rise at all from
/// a window in which requests were shed while the limit was above its
/// minimum (at the minimum the limit cannot fall further, so what it then
/// measures is the service time with as little queueing as allowed, and a
/// baseline that truly rose is learnt).
///
/// It starts at its maximum and grows back to it while latency is near
/// the baseline, however few requests use it (unlike Gradient2, which
/// starts at 20 and grows only while requests use at least half of it):
/// a healthy server admits a burst rather than shedding it, and the limit
/// falls as fast as overloaded requests complete, up to a tenth per
/// window.
///
/// It falls only while it is in use: when at some moment of the window at
/// least half of it was executing ([`IN_USE`]). A limit far above what
/// executes is not what makes requests slow, and lowering it would only
/// refuse the next burst: on a shared host, other processes' work slows
/// requests just as congestion does, and the mix at 1000/s with the
/// server at a fifth of a core had 12.6% of its requests shed before this
/// rule (docs/PERFORMANCE.md, "The adaptive limit under the mix"). Past
/// the knee, requests pile up until they fill half the limit, and from
/// then on it falls as before.
#[derive(Debug, Clone)]
pub struct Gradient {
    limit: f64,
    min: f64,
    max: f64,
    /// The service time without queueing, in seconds; `None` before the
    /// first window.
    baseline: Option<f64>,
    samples: u32,
    sum: f64,
    shed: bool,
    /// The most requests executing at once in this window.
    peak: usize,
}

impl Gradient {
    /// A limit between `min` and `max` (`min` at least 1, `max` at least
    /// `min`), starting at `max`.
    pub fn new(min: usize, max: usize) -> Self {
        let (min, max) = (min.max(1), max.max(min.max(1)));
        Gradient {
            limit: max as f64,
            min: min as f64,
            max: max as f64,
            baseline: None,
            samples: 0,
            sum: 0.0,
            shed: false,
            peak: 0,
        }
    }

    /// The limit now: how many requests may execute at once.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// A request was refused for the limit in this window.
    pub fn shed(&mut self) {
        self.shed = true;
    }

    /// One admitted request's service time, and how many requests were
    /// executing when it was admitted (itself included). Returns the
    /// change of the limit when this sample closed a window and moved it.
    pub fn sample(&mut self, service: Duration, in_flight: usize) -> Option<Change> {
        self.samples += 1;
        self.sum += service.as_secs_f64();
        self.peak = self.peak.max(in_flight);
        if self.samples < WINDOW_SAMPLES {
            return None;
        }
        let mean = self.sum / f64::from(self.samples);
        let (shed, in_use) = (self.shed, self.peak as f64 >= IN_USE * self.limit);
        (self.samples, self.sum, self.shed, self.peak) = (0, 0.0, false, 0);
        self.window(mean, shed, in_use)
    }

    /// Moves the limit after a window whose mean service time was `mean`
    /// seconds; it may fall only when `in_use`.
    fn window(&mut self, mean: f64, shed: bool, in_use: bool) -> Option<Change> {
        let before = self.limit();
        let baseline = match self.baseline {
            None => mean,
            Some(baseline) if mean < baseline => baseline + (mean - baseline) * BASELINE_FALL,
            Some(baseline) if shed && self.limit() > self.min as usize => baseline,
            Some(baseline) => baseline + (mean - baseline) * BASELINE_RISE,
        };
        self.baseline = Some(baseline);
        let gradient = if mean > 0.0 { (TOLERANCE * baseline / mean).clamp(0.5, 1.0) } else { 1.0 };
        if gradient < 1.0 && !in_use {
            return None;
        }
        let target = self.limit * gradient + self.limit.sqrt();
        self.limit = (self.limit * (1.0 - SMOOTHING) + target * SMOOTHING).clamp(self.min, self.max);
        let after = self.limit();
        match after.cmp(&before) {
            std::cmp::Ordering::Greater => Some(Change::Up(after)),
            std::cmp::Ordering::Less => Some(Change::Down(after)),
            std::cmp::Ordering::Equal => None,
        }
    }
}

/// The limit shared by every request of `/graphql`, and what it counts
/// for the metrics; cheap to clone.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Shared>,
}

struct Shared {
    mode: Concurrency,
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    /// `None` when fixed. A std mutex: held for a few arithmetic steps per
    /// executed request, never across an await.
    gradient: Option<Mutex<Gradient>>,
    raised: AtomicU64,
    lowered: AtomicU64,
    shed: AtomicU64,
    /// A request was shed since the last sample: the gradient hears of it
    /// at the next sample, so that refusing takes no lock.
    shed_lately: AtomicBool,
}

/// What the metrics read: see [`Limiter::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// The limit now.
    pub limit: usize,
    /// Requests executing now.
    pub in_flight: usize,
    /// Times the adaptive limit rose.
    pub raised: u64,
    /// Times the adaptive limit fell.
    pub lowered: u64,
    /// Requests refused for the limit.
    pub shed: u64,
}

impl Limiter {
    /// A limiter set as `mode` says.
    pub fn new(mode: Concurrency) -> Self {
        let (limit, gradient) = match mode {
            Concurrency::Fixed(limit) => (limit, None),
            Concurrency::Adaptive { min, max } => {
                let gradient = Gradient::new(min, max);
                (gradient.limit(), Some(Mutex::new(gradient)))
            }
        };
        Limiter {
            inner: Arc::new(Shared {
                mode,
                limit: AtomicUsize::new(limit),
                in_flight: AtomicUsize::new(0),
                gradient,
                raised: AtomicU64::new(0),
                lowered: AtomicU64::new(0),
                shed: AtomicU64::new(0),
                shed_lately: AtomicBool::new(false),
            }),
        }
    }

    /// How the limit is set.
    pub fn mode(&self) -> Concurrency {
        self.inner.mode
    }

    /// The limit, the requests executing and the counts, now.
    pub fn stats(&self) -> Stats {
        let s = &self.inner;
        Stats {
            limit: s.limit.load(Ordering::Relaxed),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            raised: s.raised.load(Ordering::Relaxed),
            lowered: s.lowered.load(Ordering::Relaxed),
            shed: s.shed.load(Ordering::Relaxed),
        }
    }

    /// A permit to execute, or `None` (counted as shed) when the limit's
    /// worth of requests are executing already.
    pub fn try_admit(&self) -> Option<Permit> {
        let s = &self.inner;
        let in_flight = s.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        if in_flight > s.limit.load(Ordering::Acquire) {
            s.in_flight.fetch_sub(1, Ordering::AcqRel);
            s.shed.fetch_add(1, Ordering::Relaxed);
            s.shed_lately.store(true, Ordering::Relaxed);
            return None;
        }
        Some(Permit { limiter: self.clone(), admitted: Instant::now(), in_flight })
    }

    /// Feeds one sample to the adaptive limit: a service time, and the
    /// requests executing when it was admitted.
    fn sample(&self, service: Duration, in_flight: usize) {
        let Some(gradient) = &self.inner.gradient else { return };
        let mut gradient = lock(gradient);
        if self.inner.shed_lately.swap(false, Ordering::Relaxed) {
            gradient.shed();
        }
        let Some(change) = gradient.sample(service, in_flight) else { return };
        // Stored under the lock, so changes land in their order.
        self.inner.limit.store(gradient.limit(), Ordering::Release);
        drop(gradient);
        let counter = match change {
            Change::Up(_) => &self.inner.raised,
            Change::Down(_) => &self.inner.lowered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(limit = ?change, "concurrency limit changed");
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("mode", &self.mode()).field("stats", &self.stats()).finish()
    }
}

impl Limiter {
    /// Its series for `/metrics`, read at each scrape (see the docs of
    /// each in docs/OBSERVABILITY.md).
    pub fn collector(&self) -> Result<Box<dyn Collector>, prometheus::Error> {
        let changes = IntCounterVec::new(
            Opts::new(
                "notegraph_concurrency_limit_changes_total",
                "Times the adaptive limit of requests executing at once moved, by direction.",
            ),
            &["direction"],
        )?;
        Ok(Box::new(LimiterCollector {
            limiter: self.clone(),
            limit: IntGauge::new(
                "notegraph_concurrency_limit",
                "Requests that may execute at once on /graphql now (fixed, or found from latency).",
            )?,
            in_flight: IntGauge::new("notegraph_concurrency_in_flight", "Requests executing on /graphql now.")?,
            shed: IntCounter::new(
                "notegraph_concurrency_shed_total",
                "Requests answered 503 at once because the limit's worth were executing.",
            )?,
            up: changes.with_label_values(&["up"]),
            down: changes.with_label_values(&["down"]),
            changes,
            one_scrape: Mutex::new(()),
        }))
    }
}

/// The limiter's series: copied from its counts at each scrape.
struct LimiterCollector {
    limiter: Limiter,
    limit: IntGauge,
    in_flight: IntGauge,
    shed: IntCounter,
    changes: IntCounterVec,
    up: IntCounter,
    down: IntCounter,
    /// One scrape at a time fills and reads the series.
    one_scrape: Mutex<()>,
}

impl Collector for LimiterCollector {
    fn desc(&self) -> Vec<&Desc> {
        [self.limit.desc(), self.in_flight.desc(), self.shed.desc(), self.changes.desc()].concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.one_scrape.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stats = self.limiter.stats();
        let level = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.limit.set(level(stats.limit));
        self.in_flight.set(level(stats.in_flight));
        for (counter, value) in [(&self.shed, stats.shed), (&self.up, stats.raised), (&self.down, stats.lowered)] {
            counter.reset();
            counter.inc_by(value);
        }
        [self.limit.collect(), self.in_flight.collect(), self.shed.collect(), self.changes.collect()].concat()
    }
}

/// The gradient, whatever a panicking holder left (its state is numbers
/// that stay within their bounds).
fn lock(gradient: &Mutex<Gradient>) -> std::sync::MutexGuard<'_, Gradient> {
    gradient.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One admitted request's slot: freed when dropped (also when the request
/// is abandoned), and a sample when [`Permit::finish`]ed.
pub struct Permit {
    limiter: Limiter,
    admitted: Instant,
    /// Requests executing when this one was admitted, itself included.
    in_flight: usize,
}

impl Permit {
    /// The request is answered: `executed` says whether it is a sample
    /// (see the module).
    pub fn finish(self, executed: bool) {
        if executed {
            self.limiter.sample(self.admitted.elapsed(), self.in_flight);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// True when the response was executed (`x-cache` `miss` or `bypass`),
/// the requests whose service times are samples.
fn executed(response: &HttpResponse) -> bool {
    response.headers().get("x-cache").is_some_and(|value| value.as_bytes() != b"hit")
}

/// The shedding layer, for the list in [`super::graphql`].
#[derive(Clone)]
pub struct ShedLayer(pub Limiter);

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed { limiter: self.0.clone(), inner }
    }
}

/// See [`ShedLayer`]: admits a request or answers 503 at once.
#[derive(Clone)]
pub struct Shed<S> {
    limiter: Limiter,
    inner: S,
}

impl<S> Service<HttpRequest> for Shed<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, std::convert::Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let Some(permit) = self.limiter.try_admit() else {
            return Box::pin(std::future::ready(Ok(super::policy::overloaded())));
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            permit.finish(executed(&response));
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `windows` windows of `service` each, the limit full of
    /// requests, `shed` marking each window as one that refused requests;
    /// returns the limit after each.
    fn run(gradient: &mut Gradient, windows: usize, service: Duration, shed: bool) -> Vec<usize> {
        (0..windows)
            .map(|_| {
                if shed {
                    gradient.shed();
                }
                let in_flight = gradient.limit();
                for _ in 0..WINDOW_SAMPLES {
                    gradient.sample(service, in_flight);
                }
                gradient.limit()
            })
            .collect()
    }

    /// Windows of a saturated server: each request's service time is
    /// `per_request` times the limit (they share the CPU), the limit always
    /// full and shedding, `noise` scaling each sample.
    fn overloaded(
        gradient: &mut Gradient,
        windows: usize,
        per_request: f64,
        mut noise: impl FnMut() -> f64,
    ) -> Vec<usize> {
        (0..windows)
            .map(|_| {
                let limit = gradient.limit();
                gradient.shed();
                for _ in 0..WINDOW_SAMPLES {
                    gradient.sample(Duration::from_secs_f64(per_request * limit as f64 * noise()), limit);
                }
                gradient.limit()
            })
            .collect()
    }

    /// A deterministic noise source (xorshift), so that noisy runs repeat.
    struct Noise(u64);

    impl Noise {
        /// A factor in [1 - spread, 1 + spread].
        fn factor(&mut self, spread: f64) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let unit = (self.0 >> 11) as f64 / (1_u64 << 53) as f64;
            1.0 - spread + 2.0 * spread * unit
        }
    }

    /// A gradient brought down to its minimum by a tenfold slowdown.
    fn at_the_minimum() -> Gradient {
        let mut gradient = Gradient::new(4, 256);
        run(&mut gradient, 10, 5 * MS, false);
        while gradient.limit() > 4 {
            run(&mut gradient, 1, 50 * MS, true);
        }
        gradient
    }

    #[test]
    fn it_starts_at_its_maximum_within_sane_bounds() {
        assert_eq!(Gradient::new(4, 256).limit(), 256);
        assert_eq!(Gradient::new(1, 8).limit(), 8);
        // Nonsense bounds are made sane: at least one request, max ≥ min.
        assert_eq!(Gradient::new(0, 0).limit(), 1);
        assert_eq!(Gradient::new(10, 5).limit(), 10);
    }

    #[test]
    fn nothing_moves_before_a_window_is_full() {
        let mut gradient = Gradient::new(4, 256);
        for _ in 1..WINDOW_SAMPLES {
            assert_eq!(gradient.sample(100 * MS, 256), None);
        }
        assert_eq!(gradient.limit(), 256);
    }

    #[test]
    fn a_healthy_server_keeps_its_maximum_through_noise() {
        // Service times ±50% around 5 ms: no false alarm from noise.
        let mut gradient = Gradient::new(4, 256);
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2_000 {
            for _ in 0..WINDOW_SAMPLES {
                gradient.sample(Duration::from_secs_f64(0.005 * noise.factor(0.5)), 256);
            }
            assert_eq!(gradient.limit(), 256);
        }
    }

    #[test]
    fn latency_rising_makes_the_limit_fall_to_its_minimum_and_hold_it() {
        let mut gradient = Gradient::new(4, 256);
        run(&mut gradient, 10, 5 * MS, false);
        // The database slows down tenfold: every window is slow, requests
        // are shed at the limit. The limit falls, window after window, to
        // its minimum.
        let limits = run(&mut gradient, 300, 50 * MS, true);
        let fall: Vec<usize> = limits.iter().copied().take_while(|&limit| limit > 4).collect();
        assert!(fall.windows(2).all(|pair| pair[1] <= pair[0]), "{limits:?}");
        assert!(fall.len() < 150, "{limits:?}");
        // The bound holds however long it lasts. (At the bound, a slowness
        // that no lower limit relieves is learnt as the new baseline, so
        // the limit may rise again from it, slowly.)
        assert!(run(&mut gradient, 1_000, 50 * MS, true).iter().all(|&limit| limit >= 4));
    }

    #[test]
    fn latency_back_at_its_baseline_lets_the_limit_grow_back_to_its_maximum() {
        let mut gradient = at_the_minimum();
        // The slowness ends.
        let limits = run(&mut gradient, 1_000, 5 * MS, true);
        assert!(limits.windows(2).all(|pair| pair[1] >= pair[0]), "{limits:?}");
        let to_twenty = limits.iter().position(|&limit| limit >= 20).unwrap();
        assert!(to_twenty < 50, "{limits:?}");
        assert_eq!(limits.last(), Some(&256));
    }

    #[test]
    fn latency_rising_far_below_the_limit_does_not_lower_it() {
        // Other work on the host makes requests ten times slower, while at
        // most 20 of the 256 allowed execute at once: the limit is not what
        // slows them, and it holds (lowering it would refuse the next
        // burst). Once requests fill half of it, it falls.
        let mut gradient = Gradient::new(4, 256);
        let mut noise = Noise(0x5851_f42d_4c95_7f2d);
        for _ in 0..10 * WINDOW_SAMPLES {
            gradient.sample(MS, 2);
        }
        for _ in 0..1_000 * WINDOW_SAMPLES {
            let in_flight = (20.0 * noise.factor(0.9)) as usize;
            assert_eq!(gradient.sample(10 * MS, in_flight), None);
        }
        assert_eq!(gradient.limit(), 256);
        // (By now the baseline has learnt the slower host, slowly.)
        for _ in 0..WINDOW_SAMPLES {
            gradient.sample(100 * MS, 128);
        }
        assert!(gradient.limit() < 256, "{}", gradient.limit());
    }

    #[test]
    fn a_baseline_that_truly_rose_is_learnt() {
        // Every request now takes 4 times as long, however few run: at the
        // minimum the limit learns the new service time and leaves it, and
        // once nothing is shed it grows on.
        let mut gradient = Gradient::new(4, 256);
        run(&mut gradient, 10, 5 * MS, false);
        run(&mut gradient, 500, 20 * MS, true);
        assert!(gradient.limit() > 4, "stuck at {}", gradient.limit());
        let limits = run(&mut gradient, 2_000, 20 * MS, false);
        assert_eq!(limits.last(), Some(&256));
    }

    #[test]
    fn a_queue_under_sustained_overload_is_not_learnt_as_the_baseline() {
        // A saturated CPU: 1 ms of work each, so latency grows with the
        // limit. The limit settles low and stays there: it does not creep
        // back up as the queue's latency becomes familiar.
        let mut gradient = Gradient::new(4, 256);
        run(&mut gradient, 10, 2 * MS, false);
        let limits = overloaded(&mut gradient, 5_000, 0.001, || 1.0);
        let settled = &limits[1_000..];
        assert!(settled.iter().all(|&limit| (4..=12).contains(&limit)), "{:?}", &settled[..50]);
        let (early, late) = (limits[1_000..2_000].iter().max(), limits[4_000..].iter().max());
        assert!(late <= early, "{early:?} then {late:?}");
    }

    #[test]
    fn noise_under_sustained_overload_keeps_the_limit_in_a_band() {
        // As above with each sample ±50%: no blow-up either way.
        let mut gradient = Gradient::new(4, 256);
        run(&mut gradient, 10, 2 * MS, false);
        let mut noise = Noise(0x2545_f491_4f6c_dd1d);
        let limits = overloaded(&mut gradient, 5_000, 0.001, || noise.factor(0.5));
        let settled = &limits[1_000..];
        let (low, high) = (settled.iter().min().unwrap(), settled.iter().max().unwrap());
        assert!(*low >= 4 && *high <= 14, "between {low} and {high}");
    }

    #[test]
    fn the_limiter_admits_up_to_its_limit_and_sheds_the_rest() {
        let limiter = Limiter::new(Concurrency::Fixed(2));
        let (a, b) = (limiter.try_admit().unwrap(), limiter.try_admit().unwrap());
        assert!(limiter.try_admit().is_none());
        assert_eq!(limiter.stats(), Stats { limit: 2, in_flight: 2, raised: 0, lowered: 0, shed: 1 });
        a.finish(true);
        let c = limiter.try_admit().unwrap();
        drop((b, c));
        assert_eq!(limiter.stats().in_flight, 0);
    }

    #[test]
    fn the_adaptive_limiter_counts_its_changes() {
        let limiter = Limiter::new(Concurrency::Adaptive { min: 2, max: 100 });
        // A baseline: nothing moves.
        for _ in 0..WINDOW_SAMPLES * 30 {
            limiter.sample(Duration::from_millis(1), 1);
        }
        assert_eq!(limiter.stats(), Stats { limit: 100, in_flight: 0, raised: 0, lowered: 0, shed: 0 });
        // Slow executions, with the limit in use: it falls.
        for _ in 0..WINDOW_SAMPLES * 10 {
            limiter.sample(Duration::from_millis(10), 100);
        }
        let stats = limiter.stats();
        assert!(stats.limit < 100 && stats.lowered > 0 && stats.raised == 0, "{stats:?}");
    }
}
