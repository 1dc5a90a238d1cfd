// Reads beside a burst of writes (issue 28's check): the published mix at
// RATE/s throughout; 10 s of it to warm the server (`warm`), DURATION of it
// alone (`alone`), then DURATION more (`beside`) while createNote runs at
// CREATE_RATE/s (`creates`; default 100: the check asks for half the rate
// `just load-test create` held). The runner sets the mix's p99 beside the
// creates against its p99 alone in the same run, and counts failed reads.

import { DURATION, MIX_QUERIES, THRESHOLDS, constantArrival, perQuery, seconds } from '../lib/options.js';
import { data, pickDistinct, pickUniform } from '../lib/data.js';
import { createNote, mixRequest } from '../lib/queries.js';

const WARM = 10;
const PHASE = seconds(DURATION);
const CREATE_RATE = Number(__ENV.CREATE_RATE || 100);

export const options = {
  scenarios: {
    warm: constantArrival({ duration: `${WARM}s`, exec: 'read' }),
    alone: constantArrival({ startTime: `${WARM}s`, exec: 'read' }),
    beside: constantArrival({ startTime: `${WARM + PHASE}s`, exec: 'read' }),
    creates: constantArrival({ rate: CREATE_RATE, startTime: `${WARM + PHASE}s`, exec: 'create',
                               preAllocatedVUs: 50, maxVUs: 200 }),
  },
  thresholds: {
    ...THRESHOLDS,
    'http_req_duration{scenario:alone}': [],
    'http_req_duration{scenario:beside}': [],
    'http_reqs{scenario:alone}': [],
    'http_reqs{scenario:beside}': [],
    'failures{scenario:alone}': [],
    'failures{scenario:beside}': ['rate==0'],
    'http_req_duration{scenario:creates}': [],
    'http_reqs{scenario:creates}': [],
    'failures{scenario:creates}': [],
    ...perQuery([...MIX_QUERIES, 'createNote']),
  },
};

export function read() {
  mixRequest();
}

export function create() {
  createNote(
    `load test mixcreate ${__VU}-${__ITER}`,
    `${pickUniform(data.titles)}. Written by the k6 mixcreate scenario; removed after the run.`,
    pickDistinct(data.tags, 3),
  );
}
