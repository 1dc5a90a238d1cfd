// The published mix (as mix.js sends it) at RATE requests per second for
// DURATION, with every answer recorded for scripts/chaos (`just chaos`):
// while a fault is injected requests fail, and what matters is how — with
// a clear code, within the server's deadline. Each answer adds its wall
// time (ms, connecting included) to the `answers` trend, tagged with its
// HTTP status (`http`, 0 when k6 got none) and the first error's
// `extensions.code` (`code`; `none` without errors). No thresholds: the
// runner judges the answers.

import { Trend } from 'k6/metrics';
import { constantArrival } from '../lib/options.js';
import { mixRequest } from '../lib/queries.js';

const answers = new Trend('answers', true);

export const options = {
  scenarios: { mix: constantArrival() },
};

/** The first error's `extensions.code` of a response body; `none` without errors, `unreadable` when not JSON. */
function code(res) {
  if (!res.body) {
    return res.status === 0 ? 'none' : 'unreadable';
  }
  try {
    const errors = JSON.parse(res.body).errors;
    if (!errors || errors.length === 0) {
      return 'none';
    }
    return (errors[0].extensions && errors[0].extensions.code) || 'no code';
  } catch (_) {
    return 'unreadable';
  }
}

export default function () {
  const started = Date.now();
  mixRequest({
    observe: (res) => answers.add(Date.now() - started, { http: String(res.status), code: code(res) }),
  });
}
