// The multi-node proof's load (`just multinode`, scripts/multinode): through
// the load balancer in front of three server replicas, the published mix at
// RATE requests per second and, beside it, WRITE_RATE writes per second
// (createNote, updateNote, deleteNote as user 1), each followed by reads
// through the load balancer that must see it, for DURATION. Round robin
// sends most of those reads to another replica than the write's; the
// `read_other_server` rate says how many, from haproxy's `x-served-by`.
// The runner judges the run (stale reads, failed requests); the thresholds
// here only put the figures in the summary.

import { MIX_QUERIES, constantArrival, perQuery } from '../lib/options.js';
import { mixRequest } from '../lib/queries.js';
import { writeRequest } from '../lib/writes.js';

const WRITE_RATE = Number(__ENV.WRITE_RATE || 10);

export const options = {
  scenarios: {
    mix: constantArrival({ exec: 'mix' }),
    writer: constantArrival({ exec: 'write', rate: WRITE_RATE, preAllocatedVUs: 5, maxVUs: 50 }),
  },
  thresholds: {
    stale_reads: ['count==0'],
    // Which read after which write was stale (the names lib/writes.js tags them with).
    'stale_reads{query:createNote}': [],
    'stale_reads{query:createNote (list)}': [],
    'stale_reads{query:updateNote}': [],
    'stale_reads{query:deleteNote}': [],
    // ... and whether another server than the write's answered it.
    'stale_reads{served:same}': [],
    'stale_reads{served:other}': [],
    failures: ['rate==0'],
    http_req_failed: ['rate==0'],
    read_other_server: [],
    'failures{scenario:mix}': [],
    'failures{scenario:writer}': [],
    'http_reqs{scenario:writer}': [],
    ...perQuery([...MIX_QUERIES, 'createNote', 'updateNote', 'deleteNote', 'readAfterWrite']),
  },
};

export function mix() {
  mixRequest();
}

export function write() {
  writeRequest();
}
