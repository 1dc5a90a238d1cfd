// Sending GraphQL over HTTP and checking the answer, for every scenario.
//
// A request counts as failed (the `failures` rate, which the thresholds
// bound) unless it gets HTTP 200, a body without `errors`, and a `data`
// whose root field is present and, unless the caller says null is the right
// answer, non-null. Responses carrying an `x-cache` header feed the
// `cache_hits` rate; with no response cache in the server there is none, and
// the report says "no cache".

import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate } from 'k6/metrics';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const TOKEN = __ENV.TOKEN || 'test-token';

/** Requests that did not get a correct answer (see the header). */
export const failures = new Rate('failures');
/** Of the responses that carried `x-cache`, the share that were hits. */
export const cacheHits = new Rate('cache_hits');
/** Read-after-write checks that saw stale or missing data. */
export const staleReads = new Counter('stale_reads');
/**
 * With `shedding: true`, the share of requests the server shed (503 with
 * `Retry-After` and `SERVICE_UNAVAILABLE`): not failures, since refusing at
 * once is what an overloaded server should do (the `overload` scenario).
 */
export const shed = new Rate('shed');

// Behind a load balancer that names the server in `x-served-by` (the
// multi-node proof's haproxy), the server that answered this VU's last
// request; undefined without one.
let servedBy;

/** The `x-served-by` of this VU's last request (undefined when absent). */
export function lastServedBy() {
  return servedBy;
}

const PARAMS_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/graphql-response+json, application/json',
  authorization: `Bearer ${TOKEN}`,
};

/**
 * Posts `query` (with `variables`), tags the request with `name`, checks it
 * and returns the parsed `data` (null when the request failed), or with
 * `response: true` the k6 response itself (null when it failed).
 *
 * `root` names the field that must be present in `data`; with
 * `nullable: true` a null there is a correct answer (a deleted note). With
 * `shedding: true` a well-formed 503 counts in `shed`, not in `failures`,
 * and returns null. `observe(res)`, when given, sees every response before
 * it is checked (scripts/chaos records each answer's status and code).
 */
export function gql(name, query, { variables, root, nullable = false, response = false, shedding = false, observe } = {}) {
  const body = JSON.stringify(variables ? { query, variables } : { query });
  const res = http.post(`${BASE_URL}/graphql`, body, { headers: PARAMS_HEADERS, tags: { query: name } });
  if (observe) {
    observe(res);
  }
  servedBy = res.headers['X-Served-By'];
  if (shedding) {
    shed.add(res.status === 503, { query: name });
    if (res.status === 503) {
      const ok = check(res, { 'shed with Retry-After and SERVICE_UNAVAILABLE': (r) => isShed(r) }, { query: name });
      failures.add(!ok, { query: name });
      return null;
    }
  }
  const cache = res.headers['X-Cache'];
  if (cache !== undefined) {
    cacheHits.add(cache === 'hit', { query: name });
  }
  let parsed = null;
  if (res.status === 200 && res.body) {
    try {
      parsed = JSON.parse(res.body);
    } catch (_) {
      parsed = null;
    }
  }
  const data = parsed && parsed.data;
  const field = root || (data ? Object.keys(data)[0] : undefined);
  const ok = check(
    res,
    {
      'status is 200': (r) => r.status === 200,
      'no errors': () => parsed !== null && parsed.errors === undefined,
      'data is not empty': () =>
        data !== null && data !== undefined && field !== undefined && field in data && (nullable || data[field] !== null),
    },
    { query: name },
  );
  failures.add(!ok, { query: name });
  if (!ok) {
    return null;
  }
  return response ? res : data;
}

/** A 503 as the server sheds load: `Retry-After` and the JSON error shape. */
function isShed(res) {
  if (res.headers['Retry-After'] === undefined) {
    return false;
  }
  try {
    const errors = JSON.parse(res.body).errors;
    return errors[0].extensions.code === 'SERVICE_UNAVAILABLE';
  } catch (_) {
    return false;
  }
}
