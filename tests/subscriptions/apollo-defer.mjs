// Runs one query with `@defer` or `@stream` through Apollo Client's HTTP
// link (multipart/mixed, deferSpec=20220824) against a running Notegraph
// server, printing each result Apollo Client hands the application as a
// JSON line, then `{"complete":true}` (or `{"error":…}`) and exiting.
//
//   node apollo-defer.mjs '{"url":…,"query":…,"token":…}'
//
// Driven by crates/api/tests/api/incremental.rs, so that the server is
// checked against Apollo Client's own multipart parser and merging.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { Defer20220824Handler } from '@apollo/client/incremental';

const spec = JSON.parse(process.argv[2]);
const print = (value) => process.stdout.write(JSON.stringify(value) + '\n');

const client = new ApolloClient({
  link: new HttpLink({ uri: spec.url, headers: spec.token ? { Authorization: `Bearer ${spec.token}` } : {} }),
  cache: new InMemoryCache(),
  incrementalHandler: new Defer20220824Handler(),
});

const subscription = client.watchQuery({ query: gql(spec.query), fetchPolicy: 'no-cache' }).subscribe({
  next: (result) => {
    if (result.error) {
      print({ error: result.error.message });
      process.exit(0);
    }
    if (result.data === undefined) return;
    print({ next: { data: result.data, dataState: result.dataState } });
    if (result.dataState === 'complete') {
      print({ complete: true });
      subscription.unsubscribe();
      process.exit(0);
    }
  },
  error: (error) => {
    print({ error: error?.message ?? String(error) });
    process.exit(0);
  },
});
