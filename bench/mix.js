// The published mix at a constant arrival rate, for bench/compare.sh:
// userList 30%, noteDetail 40%, userNotes 30%, as user 1 (`test-token`).
// Ids are skewed toward low ids (the square of a uniform draw), so some are
// hot, as with real traffic; about 7% of notes are private to their
// authors, and a null `note` is a correct answer for those. NOTES and USERS
// (default 100,000 and 10,000, the default data set) narrow the ids drawn:
// NOTES=100 USERS=100 makes a warm server answer nearly everything from its
// cache. ONLY (userList, noteDetail or userNotes) sends that query alone,
// for the cost of one kind of request; ONLY=nplus1 (or notesPage) sends
// issue 30's page of 50 notes with their authors and tags (the same
// document each time: run Notegraph with NOTEGRAPH_CACHE_ENABLED=false to
// measure it).
import http from 'k6/http';
import { check } from 'k6';
const URL = __ENV.URL || 'http://127.0.0.1:18082/graphql';
const RATE = parseInt(__ENV.RATE || '1000');
const NOTES = parseInt(__ENV.NOTES || '100000');
const USERS = parseInt(__ENV.USERS || '10000');
export const options = {
  discardResponseBodies: false,
  scenarios: { mix: { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: __ENV.DURATION || '30s', preAllocatedVUs: 50, maxVUs: 200 } },
  thresholds: { http_req_failed: ['rate<0.01'], http_req_duration: ['p(99)<200'] },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
};
const params = { headers: { 'content-type': 'application/json', authorization: 'Bearer test-token' } };
// An id in 1..n, skewed toward 1.
function rnd(n) { return 1 + Math.floor(Math.pow(Math.random(), 2) * n); }
const ONLY = { userList: 0.1, noteDetail: 0.5, userNotes: 0.9, nplus1: -1, notesPage: -1 }[__ENV.ONLY || ''];
export default function () {
  const r = ONLY ?? Math.random();
  let q;
  if (r < 0) q = '{ notes(first: 50) { id title author { name } tags { name } } }';
  else if (r < 0.3) q = '{ users(first: 20) { id name } }';
  else if (r < 0.7) q = `{ note(id: "${rnd(NOTES)}") { id title author { name } } }`;
  else q = `{ user(id: "${rnd(USERS)}") { notes { id title tags { name } } } }`;
  const res = http.post(URL, JSON.stringify({ query: q }), params);
  check(res, { '200': (x) => x.status === 200, 'no errors': (x) => !x.body.includes('"errors"') });
}
