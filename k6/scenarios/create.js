// Writes only: createNote as user 1 at a rate ramping from 10/s to RATE/s
// (default 500) over DURATION, stopped by k6 once it saturates
// (RAMP_THRESHOLDS). Each create embeds the text, inserts into the HNSW
// index and links three distinct tags of the data set: the rows
// bench/writes-vs-postgres.sh sends to Postgres with pgbench. The runner
// reports the highest rate that held (the sustained create rate) with its
// p99, as for `ramp`, and deletes the notes afterwards.

import { RAMP_THRESHOLDS, perQuery, rampingArrival } from '../lib/options.js';
import { data, pickDistinct, pickUniform } from '../lib/data.js';
import { createNote } from '../lib/queries.js';

export const options = {
  scenarios: { create: rampingArrival(10, 200) },
  thresholds: { ...RAMP_THRESHOLDS, ...perQuery(['createNote']) },
};

export default function () {
  createNote(
    `load test create ${__VU}-${__ITER}`,
    `${pickUniform(data.titles)}. Written by the k6 create scenario; removed after the run.`,
    pickDistinct(data.tags, 3),
  );
}
