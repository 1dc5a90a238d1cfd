// The mix at 100/s for 20 s, a jump to RATE/s (default 2,000) held for
// DURATION (default 30s), and back to 100/s for 40 s. The runner reports
// latency before, during and after, and how long latency took to recover.
// Thresholds: the published ones, over the whole run. The runner's
// analysis (scripts/loadtest/analysis.py, SPIKE_LEAD and SPIKE_STEP) knows
// this schedule.

import { DURATION, MIX_QUERIES, RATE, THRESHOLDS, perQuery } from '../lib/options.js';
import { mixRequest } from '../lib/queries.js';

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: 100,
      timeUnit: '1s',
      stages: [
        { target: 100, duration: '20s' },
        { target: RATE, duration: '1s' },
        { target: RATE, duration: DURATION },
        { target: 100, duration: '1s' },
        { target: 100, duration: '40s' },
      ],
      preAllocatedVUs: 200,
      maxVUs: Math.max(400, RATE / 2),
    },
  },
  thresholds: { ...THRESHOLDS, ...perQuery(MIX_QUERIES) },
};

export default function () {
  mixRequest();
}
