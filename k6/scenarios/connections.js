// CONNECTIONS (default 1,000) keep-alive connections held open, one per VU
// of the `holders` scenario, while the published mix runs at RATE per
// second (default 500) for DURATION. Each holder sends a tiny query every
// 5 s (about CONNECTIONS / 5 requests per second on top of the mix) over
// its connection; a request that had to dial again means the held
// connection was closed or reset (`reconnects`), and a refused or reset one
// fails. The mix starts 15 s in, once every connection is open.
// Thresholds: the published ones on the mix; no failure and no reconnect
// among the holders.

import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { DURATION, MIX_QUERIES, constantArrival, perQuery, seconds } from '../lib/options.js';
import { gql } from '../lib/graphql.js';
import { mixRequest } from '../lib/queries.js';

const CONNECTIONS = Number(__ENV.CONNECTIONS || 1000);
// Under the server's keep-alive idle limit (NOTEGRAPH_HEADER_READ_TIMEOUT_MS,
// 10 s): at 10 s exactly, the server closed connections as their next
// request went out, and 5.7% of the holders' requests failed.
const HOLD_INTERVAL = 5;
const reconnects = new Counter('reconnects');

export const options = {
  scenarios: {
    holders: {
      executor: 'constant-vus',
      vus: CONNECTIONS,
      duration: `${seconds(DURATION) + 25}s`,
      exec: 'hold',
    },
    mix: constantArrival({ startTime: '15s', exec: 'mix' }),
  },
  thresholds: {
    'http_req_duration{scenario:mix}': ['p(99)<200'],
    'http_reqs{scenario:mix}': [],
    'http_reqs{scenario:holders}': [],
    'failures{scenario:mix}': ['rate<0.01'],
    'failures{scenario:holders}': ['rate==0'],
    reconnects: ['count==0'],
    ...perQuery([...MIX_QUERIES, 'hold']),
  },
};

export function hold() {
  // Spread the holders' requests over the interval rather than in bursts.
  if (__ITER === 0) {
    sleep(Math.random() * HOLD_INTERVAL);
  }
  const started = Date.now();
  const res = gql('hold', '{ __typename }', { root: '__typename', response: true });
  if (__ITER > 0 && res && res.timings.connecting > 0) {
    reconnects.add(1);
  }
  sleep(Math.max(0, HOLD_INTERVAL - (Date.now() - started) / 1000));
}

export function mix() {
  mixRequest();
}
