// GraphQL-over-HTTP compliance audit for a running Notegraph server.
//
// Runs graphql-http's `auditServer` (the audits behind the GraphQL over HTTP
// spec) against an endpoint and prints one line per audit:
//   ok|notice|warn|error  <id> <name>   (+ reason and the response for non-ok)
// then `audit warnings: N` and `audit: N passed, N failed` (failed = errors;
// MUST audits fail as `error`, SHOULD as `warn`, MAY as `notice`).
//
// Exit code: 1 if any error, or if warnings exceed the threshold; else 0.
//
// Usage (from this folder, after `npm ci`):
//   node audit.mjs http://127.0.0.1:18181/graphql [max-warnings=5]
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const maxWarnings = Number(process.argv[3] ?? 5);
if (!url || !Number.isInteger(maxWarnings) || maxWarnings < 0) {
  console.error('usage: node audit.mjs <graphql-endpoint-url> [max-warnings=5]');
  process.exit(2);
}

// Compact description of the response that made an audit fail.
async function describe(res) {
  if (!res) return '(no response)';
  let body;
  try {
    body = await res.text();
  } catch {
    body = '<body already consumed by the audit>';
  }
  if (body.length > 500) body = body.slice(0, 500) + '...';
  const type = res.headers.get('content-type') ?? '(none)';
  return `got HTTP ${res.status}, content-type: ${type}, body: ${JSON.stringify(body)}`;
}

let results;
try {
  results = await auditServer({ url, fetchFn: fetch });
} catch (err) {
  // fatal: e.g. connection refused (audit failures themselves never throw)
  console.error(`audit could not run against ${url}: ${err?.cause?.message ?? err}`);
  process.exit(1);
}
const count = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const r of results) {
  count[r.status] += 1;
  console.log(`${r.status.padEnd(6)} ${r.id} ${r.name}`);
  if (r.status !== 'ok') {
    console.log(`         reason: ${r.reason}`);
    console.log(`         ${await describe(r.response)}`);
  }
}

console.log(`audit notices: ${count.notice}`);
console.log(`audit warnings: ${count.warn}`);
console.log(`audit: ${count.ok} passed, ${count.error} failed`);
process.exit(count.error > 0 || count.warn > maxWarnings ? 1 : 0);
