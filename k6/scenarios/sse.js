// Subscriptions over Server-Sent Events (/graphql/stream, graphql-sse
// distinct connections mode): RATE anonymous subscribers (default 1,000)
// each hold `noteEvents(limit: 1)` open until an event arrives, then
// subscribe again, while notes are created at WRITES_PER_SECOND (default 2)
// for DURATION. Every subscriber receives every public note's event: the
// fan-out is RATE × WRITES_PER_SECOND events per second.
//
// Measured: `sse_delivery`, from the write's commit (the event's `at`) to
// the subscriber having the whole stream (the event, then `complete`);
// `sse_first_byte`, from the request to the response head; and
// `sse_subscribed`, the subscribe-to-completion time per stream.
// Thresholds: delivery p(99) under 1 s, under 1% failed streams.

import http from 'k6/http';
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import { BASE_URL, failures } from '../lib/graphql.js';
import { DURATION, RATE } from '../lib/options.js';
import { createNote } from '../lib/queries.js';

const WRITES_PER_SECOND = Number(__ENV.WRITES_PER_SECOND || 2);

/** Commit to receipt of the whole stream, per event. */
const delivery = new Trend('sse_delivery', true);
/** Request to response head: the stream is open. */
const firstByte = new Trend('sse_first_byte', true);
/** Request to `complete`: how long a subscriber waited for its event. */
const subscribed = new Trend('sse_subscribed', true);

export const options = {
  scenarios: {
    subscribers: {
      executor: 'constant-vus',
      vus: RATE,
      duration: DURATION,
      exec: 'subscribe',
      gracefulStop: '10s',
    },
    writer: {
      executor: 'constant-arrival-rate',
      rate: WRITES_PER_SECOND,
      timeUnit: '1s',
      // Subscribers connect first; writes stop before subscribers do, so
      // the last streams are not cut off waiting.
      startTime: '5s',
      duration: DURATION,
      preAllocatedVUs: 5,
      exec: 'write',
    },
  },
  thresholds: {
    sse_delivery: ['p(99)<1000'],
    // No condition: these put the subscribers' own figures in the summary.
    'http_req_duration{scenario:subscribers}': [],
    'http_reqs{scenario:subscribers}': [],
    'failures{scenario:subscribers}': [],
    'failures{query:sse}': ['rate<0.01'],
    'failures{query:createNote}': ['rate<0.01'],
  },
};

const SUBSCRIPTION = JSON.stringify({ query: 'subscription { noteEvents(limit: 1) { kind noteId at } }' });

export function subscribe() {
  const res = http.post(`${BASE_URL}/graphql/stream`, SUBSCRIPTION, {
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    tags: { query: 'sse' },
    timeout: '120s',
  });
  const received = Date.now();
  const data = (res.body || '').split('\n').find((line) => line.startsWith('data: {'));
  let event = null;
  try {
    event = data ? JSON.parse(data.slice(6)).data.noteEvents : null;
  } catch (_) {
    event = null;
  }
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'an event, then complete': (r) => event !== null && r.body.endsWith('event: complete\ndata: \n\n'),
  });
  failures.add(!ok, { query: 'sse', scenario: 'subscribers' });
  if (ok) {
    delivery.add(received - Date.parse(event.at));
    firstByte.add(res.timings.waiting);
    subscribed.add(res.timings.duration);
  }
}

export function write() {
  createNote(`sse load ${__VU}-${__ITER}-${Date.now()}`, 'Created by the k6 sse scenario; removed after the run.', []);
}
