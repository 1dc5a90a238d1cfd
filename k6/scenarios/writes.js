// The published mix plus 5% writes (createNote, updateNote, deleteNote as
// user 1), each write followed by reads that must see it, at RATE
// iterations per second for DURATION. A write iteration sends two or three
// requests, so requests per second run a little above RATE.
// Thresholds: the published ones, and no stale read.

import { MIX_QUERIES, THRESHOLDS, constantArrival, perQuery } from '../lib/options.js';
import { mixRequest } from '../lib/queries.js';
import { writeRequest } from '../lib/writes.js';

export const options = {
  scenarios: { writes: constantArrival() },
  thresholds: {
    ...THRESHOLDS,
    stale_reads: ['count==0'],
    ...perQuery([...MIX_QUERIES, 'createNote', 'updateNote', 'deleteNote', 'readAfterWrite']),
  },
};

export default function () {
  if (Math.random() < 0.05) {
    writeRequest();
  } else {
    mixRequest();
  }
}
