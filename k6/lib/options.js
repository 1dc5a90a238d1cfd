// Settings every scenario shares: the rate and duration the runner passes
// (`just load-test <scenario> [rate] [duration]`), the published
// thresholds, and per-query breakdowns in the summary.

// The runner (scripts/loadtest) holds each scenario's defaults and always
// passes both.

/** Requests (iterations) per second, from `just load-test <scenario> <rate>`. */
export const RATE = Number(__ENV.RATE);
/** How long the scenario runs, from `just load-test <scenario> <rate> <duration>`. */
export const DURATION = __ENV.DURATION;

/** Seconds in a k6 duration such as `90s`, `5m` or `1h30m`. */
export function seconds(duration) {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let match;
  while ((match = re.exec(duration)) !== null) {
    const value = Number(match[1]);
    total += { ms: value / 1000, s: value, m: value * 60, h: value * 3600 }[match[2]];
  }
  if (total === 0) {
    throw new Error(`not a duration: ${duration}`);
  }
  return total;
}

/**
 * VUs to preallocate for `rate` requests per second: enough for 100 ms
 * each, since starting a VU during the run is slow and drops iterations.
 */
export function vusFor(rate) {
  return Math.max(20, Math.ceil(rate / 10));
}

/** The published thresholds: p(99) under 200 ms and under 1% failed requests. */
export const THRESHOLDS = {
  http_req_duration: ['p(99)<200'],
  failures: ['rate<0.01'],
};

/**
 * Thresholds with no condition, so that the summary carries the latency and
 * failures of each named query separately.
 */
export function perQuery(names) {
  const out = {};
  for (const name of names) {
    out[`http_req_duration{query:${name}}`] = [];
    out[`failures{query:${name}}`] = [];
  }
  return out;
}

export const MIX_QUERIES = ['userList', 'noteDetail', 'userNotes'];

/** A constant-arrival-rate scenario at RATE per second for DURATION (`extra` adds or overrides). */
export function constantArrival(extra = {}) {
  return {
    executor: 'constant-arrival-rate',
    rate: RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: vusFor(RATE),
    maxVUs: vusFor(RATE) * 10,
    ...extra,
  };
}

/**
 * A ramping-arrival-rate scenario from `startRate` to RATE per second over
 * DURATION, for finding where the thresholds break. All `vus` start before
 * the ramp, since starting VUs during it drops iterations; once every one
 * waits on a slow response, iterations are dropped, which is saturation.
 */
export function rampingArrival(startRate, vus) {
  return {
    executor: 'ramping-arrival-rate',
    startRate,
    timeUnit: '1s',
    stages: [{ target: RATE, duration: DURATION }],
    preAllocatedVUs: vus,
    maxVUs: vus,
  };
}

const abort = (threshold) => ({ threshold, abortOnFail: true, delayAbortEval: '10s' });

/**
 * Thresholds of a ramp: k6 stops it once 1,000 iterations were dropped or
 * failures passed 1% (checked from 10 s on). Not on p99: over the whole
 * run it stays above 200 ms long after one stall of a shared machine; the
 * runner judges latency per window instead.
 */
export const RAMP_THRESHOLDS = {
  http_req_duration: ['p(99)<200'],
  failures: [abort('rate<0.01')],
  dropped_iterations: [abort('count<1000')],
};
