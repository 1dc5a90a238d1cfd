// Fair use (docs/SECURITY.md, "Per-client budgets"): a polite viewer sends
// the published mix at RATE/s, alone for DURATION (`polite_alone`), then
// for DURATION more (`polite_together`) while a greedy viewer
// (GREEDY_TOKEN) sends a page of fifty notes with their authors and tags
// at GREEDY_RATE/s, which the runner sets to ten times what that viewer's
// budget admits. The polite viewer must get every answer, with its p99
// together within 1.5x of its p99 alone (the runner compares them from the
// summary); the greedy one gets 429s with `Retry-After`, `RateLimit` and
// `RateLimit-Policy`, and RATE_LIMITED (checked here, counted in
// `greedy_limited`).

import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { BASE_URL } from '../lib/graphql.js';
import { DURATION, MIX_QUERIES, RATE, perQuery, vusFor } from '../lib/options.js';
import { mixRequest } from '../lib/queries.js';

const GREEDY_RATE = Number(__ENV.GREEDY_RATE);
const GREEDY_TOKEN = __ENV.GREEDY_TOKEN;
const GREEDY_QUERY = '{ notes(first: 50) { id title author { name } tags { name } } }';

/** Of the greedy viewer's requests, the share refused with 429 (each checked for its headers and code). */
const greedyLimited = new Rate('greedy_limited');

const polite = (startTime) => ({
  executor: 'constant-arrival-rate',
  exec: 'politeRequest',
  rate: RATE,
  timeUnit: '1s',
  duration: DURATION,
  startTime,
  preAllocatedVUs: vusFor(RATE),
  maxVUs: vusFor(RATE) * 4,
});

export const options = {
  scenarios: {
    polite_alone: polite('0s'),
    polite_together: polite(DURATION),
    greedy: {
      executor: 'constant-arrival-rate',
      exec: 'greedyRequest',
      rate: GREEDY_RATE,
      timeUnit: '1s',
      duration: DURATION,
      startTime: DURATION,
      preAllocatedVUs: vusFor(GREEDY_RATE),
      maxVUs: vusFor(GREEDY_RATE) * 4,
    },
  },
  thresholds: {
    'failures{scenario:polite_alone}': ['rate==0'],
    'failures{scenario:polite_together}': ['rate==0'],
    'http_req_duration{scenario:polite_alone}': [],
    'http_req_duration{scenario:polite_together}': [],
    'checks{scenario:greedy}': ['rate==1'],
    greedy_limited: ['rate>0'],
    ...perQuery(MIX_QUERIES),
  },
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
};

export function politeRequest() {
  mixRequest();
}

/** The `r=` and `t=` parameters of a `RateLimit` header, as numbers. */
function remaining(header) {
  const r = /;r=(\d+)/.exec(header || '');
  const t = /;t=(\d+)/.exec(header || '');
  return r && t ? { r: Number(r[1]), t: Number(t[1]) } : null;
}

export function greedyRequest() {
  const res = http.post(`${BASE_URL}/graphql`, JSON.stringify({ query: GREEDY_QUERY }), {
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization: `Bearer ${GREEDY_TOKEN}`,
    },
    tags: { query: 'greedyPage' },
    responseCallback: http.expectedStatuses(200, 429),
  });
  const limited = res.status === 429;
  greedyLimited.add(limited);
  const quota = remaining(res.headers['Ratelimit']);
  if (limited) {
    let code;
    try {
      code = JSON.parse(res.body).errors[0].extensions.code;
    } catch (_) {
      code = undefined;
    }
    check(res, {
      '429 says RATE_LIMITED': () => code === 'RATE_LIMITED',
      '429 has Retry-After': (r) => Number(r.headers['Retry-After']) >= 1,
      '429 has RateLimit-Policy': (r) => /^"authenticated";q=\d+;w=\d+/.test(r.headers['Ratelimit-Policy'] || ''),
      '429 has RateLimit with time to wait': () => quota !== null && quota.t > 0,
    });
  } else {
    check(res, {
      'admitted greedy page is 200': (r) => r.status === 200,
      'admitted greedy page has RateLimit': () => quota !== null,
    });
  }
}
