// Past the breaking point on purpose: the mix (or QUERY=nplus1's page of 50
// notes) at 100/s for 20 s, ramping to RATE/s (default 4,000, beyond what
// this machine serves) over DURATION, held for HOLD (default 10s), then
// back to 100/s for 30 s. The server runs with the settings given, by
// default its adaptive concurrency limit, and sheds what it cannot serve
// (503, `Retry-After`, SERVICE_UNAVAILABLE); NOTEGRAPH_MAX_CONCURRENT_REQUESTS
// sets a fixed cap instead.
// Shed requests are counted in `shed`, not in `failures`; the latency
// threshold is on the admitted ones (`expected_response:true`, which k6 sets
// for statuses below 400). The runner's analysis
// (scripts/loadtest/analysis.py, `overload`) knows this schedule.

import { DURATION, RATE, perQuery } from '../lib/options.js';

const HOLD = __ENV.HOLD || '10s';
import { LOAD_QUERIES, loadRequest } from '../lib/queries.js';

export const options = {
  scenarios: {
    overload: {
      executor: 'ramping-arrival-rate',
      startRate: 100,
      timeUnit: '1s',
      stages: [
        { target: 100, duration: '20s' },
        { target: RATE, duration: DURATION },
        { target: RATE, duration: HOLD },
        { target: 100, duration: '1s' },
        { target: 100, duration: '30s' },
      ],
      preAllocatedVUs: 400,
      maxVUs: 400,
    },
  },
  thresholds: {
    'http_req_duration{expected_response:true}': ['p(99)<200'],
    failures: ['rate<0.01'],
    shed: [],
    ...perQuery(LOAD_QUERIES),
  },
};

export default function () {
  loadRequest({ shedding: true });
}
