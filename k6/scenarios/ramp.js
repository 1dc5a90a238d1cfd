// The mix at a rate ramping from 50/s to RATE/s over DURATION, stopped by
// k6 once it saturates (RAMP_THRESHOLDS). The runner finds the highest rate
// that held in 3-second windows (p99 < 200 ms, failures < 1%, under 1% of
// iterations dropped) before two windows in a row broke, and fits CPU
// against the achieved rate below it.

import { RAMP_THRESHOLDS, perQuery, rampingArrival } from '../lib/options.js';
import { LOAD_QUERIES, loadRequest } from '../lib/queries.js';

export const options = {
  // 400 requests in flight is 200 ms each at 2,000/s: past that the rate
  // did not hold anyway.
  scenarios: { ramp: rampingArrival(50, 400) },
  thresholds: { ...RAMP_THRESHOLDS, ...perQuery(LOAD_QUERIES) },
};

export default function () {
  loadRequest();
}
