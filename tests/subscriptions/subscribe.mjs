// Runs one GraphQL operation against a running Notegraph server through a
// real client library, printing each result as a JSON line on stdout as it
// arrives, then `{"complete":true}` (or `{"error":…}`) and exiting.
//
//   node subscribe.mjs '{"client":"sse"|"sse-single"|"ws","url":…,"token":…,"query":…,"variables":…}'
//
// The Rust tests (crates/api/tests/api/sse.rs) drive it, so that the
// server is checked against graphql-sse's and graphql-ws's own clients
// rather than a parser of ours.
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';

const spec = JSON.parse(process.argv[2]);
const headers = spec.token ? { Authorization: `Bearer ${spec.token}` } : {};
const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');

function client() {
  switch (spec.client) {
    case 'sse':
    case 'sse-single':
      return createSseClient({
        url: spec.url,
        headers,
        singleConnection: spec.client === 'sse-single',
        retryAttempts: 0,
      });
    case 'ws':
      return createWsClient({
        url: spec.url,
        webSocketImpl: WebSocket,
        connectionParams: headers,
        retryAttempts: 0,
        lazy: true,
      });
    default:
      throw new Error(`unknown client ${spec.client}`);
  }
}

const c = client();
const finish = (code) => {
  Promise.resolve(c.dispose()).finally(() => process.exit(code));
};
c.subscribe(
  { query: spec.query, variables: spec.variables ?? {} },
  {
    next: (result) => print({ next: result }),
    error: (error) => {
      const detail = error instanceof Error ? error.message : error?.code ? { code: error.code, reason: error.reason } : error;
      print({ error: detail ?? String(error) });
      finish(0);
    },
    complete: () => {
      print({ complete: true });
      finish(0);
    },
  },
);
