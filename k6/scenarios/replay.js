// The published mix replayed sequentially by one VU, RATE requests in all
// (default 20,000; DURATION only bounds the run): how close the response
// cache comes to the ideal hit ratio, that of a cache that never evicts,
// which answers every repeat of a question it has seen and nothing else.
//
// Measured: `replay_hits_of_ideal`, the share of repeated questions the
// cache answered (x-cache: hit); the ideal is 100% of them. A first
// occurrence is a miss for any cache and is not counted. Run on a fresh
// server (the runner starts one), so nothing is cached before.
// Threshold: at least 95% of the ideal.

import { Counter, Rate } from 'k6/metrics';
import { DURATION, RATE } from '../lib/options.js';
import { pickNoteId, pickUserId } from '../lib/data.js';
import { noteDetail, userList, userNotes } from '../lib/queries.js';

/** Hits among repeated questions: actual over ideal. */
const hitsOfIdeal = new Rate('replay_hits_of_ideal');
/** Questions asked for the first time. */
const firstAsked = new Counter('replay_first_asked');

export const options = {
  scenarios: {
    replay: { executor: 'shared-iterations', vus: 1, iterations: RATE, maxDuration: DURATION },
  },
  thresholds: { replay_hits_of_ideal: ['rate>=0.95'], failures: ['rate<0.01'] },
};

/** Questions already asked, by what makes them the same question. */
const seen = new Set();

export default function () {
  // The mix's weights: userList 30%, noteDetail 40%, userNotes 30%.
  const r = Math.random();
  const withResponse = { response: true };
  let key;
  let res;
  if (r < 0.3) {
    key = 'userList';
    res = userList(withResponse);
  } else if (r < 0.7) {
    const id = pickNoteId();
    key = `note:${id}`;
    res = noteDetail(id, withResponse);
  } else {
    const id = pickUserId();
    key = `user:${id}`;
    res = userNotes(id, withResponse);
  }
  if (seen.has(key)) {
    // A failed request (null) counts as a miss.
    hitsOfIdeal.add(res !== null && res.headers['X-Cache'] === 'hit');
  } else {
    seen.add(key);
    firstAsked.add(1);
  }
}
