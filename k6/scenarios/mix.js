// The published mix at a constant arrival rate: userList 30%, noteDetail
// 40%, userNotes 30%, as `Bearer test-token`, ids Zipf-distributed, RATE
// requests per second (default 1000) for DURATION (default 60s).
// Thresholds: p(99) < 200 ms, failures < 1%.

import { THRESHOLDS, constantArrival, perQuery } from '../lib/options.js';
import { LOAD_QUERIES, loadRequest } from '../lib/queries.js';

export const options = {
  scenarios: { mix: constantArrival() },
  thresholds: { ...THRESHOLDS, ...perQuery(LOAD_QUERIES) },
};

export default function () {
  loadRequest();
}
