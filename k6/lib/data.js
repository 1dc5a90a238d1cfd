// What the scenarios draw from: the id ranges and names the runner read
// from the seeded database before the run (scripts/loadtest writes them to
// the JSON file named by DATA_FILE), and a Zipf picker over them.
//
// Note ids come only from the notes the load-test viewer (user 1, through
// `test-token`) may see: public notes and user 1's own private ones. About
// 7% of the seeded notes are private to other users, and `note(id:)`
// rightly answers null for those; drawing from the visible ones lets every
// check demand a non-null note, so a wrong null is a failure.

import { SharedArray } from 'k6/data';

const file = __ENV.DATA_FILE;
if (!file) {
  throw new Error('DATA_FILE is not set: run scenarios through `just load-test` (scripts/loadtest)');
}

// One copy shared by every VU, not one per VU: reading an element of a
// SharedArray copies only that element into the VU, so the 93,000 note ids
// are each their own element rather than one array every VU would copy.
const load = (key) => JSON.parse(open(file))[key];
const users = new SharedArray('users', () => [load('users')])[0];

/** The seeded data the runner read: visible note ids, tag names, note titles. */
export const data = {
  notes: new SharedArray('notes', () => load('notes')),
  tags: new SharedArray('tags', () => load('tags')),
  titles: new SharedArray('titles', () => load('titles')),
};

/** Zipf exponent: rank r is drawn with probability proportional to 1 / r^s. */
export const ZIPF_S = Number(__ENV.ZIPF_S || 1.0);

/**
 * A Zipf-distributed rank in [0, n): rank 0 is the hottest.
 *
 * Inverse transform of the continuous density 1/x^s on [1, n + 1], floored:
 * an approximation of the discrete Zipf law (the hottest rank gets
 * ln 2 / ln(n + 1) of the draws at s = 1, against 1 / H(n) for the exact
 * law: 7.5% against 10% for 10,000 users), O(1) with no table, so that no
 * VU holds a CDF of 100,000 entries.
 */
export function zipfRank(n, s = ZIPF_S) {
  const u = Math.random();
  let x;
  if (Math.abs(s - 1) < 1e-9) {
    x = Math.pow(n + 1, u);
  } else {
    const a = 1 - s;
    x = Math.pow((Math.pow(n + 1, a) - 1) * u + 1, 1 / a);
  }
  return Math.min(n - 1, Math.max(0, Math.floor(x) - 1));
}

/** A user id, Zipf over the seeded range (user `min` is the hottest). */
export function pickUserId() {
  const { min, max } = users;
  return String(min + zipfRank(max - min + 1));
}

/** A note id the viewer may see, Zipf over the visible notes in id order. */
export function pickNoteId() {
  return String(data.notes[zipfRank(data.notes.length)]);
}

/** A uniformly chosen element. */
export function pickUniform(items) {
  return items[Math.floor(Math.random() * items.length)];
}

/** `n` distinct elements of `list`, drawn uniformly (a note's tags). */
export function pickDistinct(list, n) {
  const picked = new Set();
  while (picked.size < Math.min(n, list.length)) {
    picked.add(pickUniform(list));
  }
  return [...picked];
}
