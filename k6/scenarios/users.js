// Clients as people use them: virtual users ramping from 1 to RATE
// (default 200) over 40% of DURATION, staying there for 40%, and leaving
// over the last 20%; each sends one request of the mix, then thinks for
// 0.5 to 1.5 s. Thresholds: the published ones.

import { sleep } from 'k6';
import { DURATION, MIX_QUERIES, RATE, THRESHOLDS, perQuery, seconds } from '../lib/options.js';
import { mixRequest } from '../lib/queries.js';

const total = seconds(DURATION);

export const options = {
  scenarios: {
    users: {
      executor: 'ramping-vus',
      startVUs: 1,
      stages: [
        { target: RATE, duration: `${Math.round(total * 0.4)}s` },
        { target: RATE, duration: `${Math.round(total * 0.4)}s` },
        { target: 0, duration: `${Math.round(total * 0.2)}s` },
      ],
      gracefulRampDown: '5s',
    },
  },
  thresholds: { ...THRESHOLDS, ...perQuery(MIX_QUERIES) },
};

export default function () {
  mixRequest();
  sleep(0.5 + Math.random());
}
