// Writes only: createNote as user 1 at RATE per second for DURATION (default
// 500/s), to find the sustained create rate and its p99. Each create embeds
// the text and inserts into the HNSW index. The runner deletes the notes
// afterwards. Thresholds: the published ones.

import { DURATION, RATE, THRESHOLDS, perQuery, vusFor } from '../lib/options.js';
import { data, pickUniform } from '../lib/data.js';
import { createNote } from '../lib/queries.js';

export const options = {
  scenarios: {
    create: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: vusFor(RATE),
      maxVUs: vusFor(RATE) * 10,
    },
  },
  thresholds: { ...THRESHOLDS, ...perQuery(['createNote']) },
};

export default function () {
  createNote(
    `load test create ${__VU}-${__ITER}`,
    `${pickUniform(data.titles)}. Written by the k6 create scenario; removed after the run.`,
    [pickUniform(data.tags)],
  );
}
