// Starts GraphiQL on the page at `/` (crates/api/src/http/graphiql.rs).
// A file of its own, not an inline script, so that the page's
// Content-Security-Policy can allow scripts from this server only. The
// endpoints come from the page's data attributes; subscriptions use the
// WebSocket endpoint on the page's own host.
(function () {
  'use strict';
  var root = document.getElementById('graphiql');
  var endpoint = new URL(root.dataset.endpoint, window.location.href);
  var subscriptions = new URL(root.dataset.subscriptionEndpoint, window.location.href);
  subscriptions.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  var fetcher = GraphiQL.createFetcher({ url: endpoint.href, subscriptionUrl: subscriptions.href });
  var defaultQuery = [
    '# Welcome to Notegraph: ▶ (or Ctrl-Enter) runs',
    '# the query; the book icon opens the schema.',
    '',
    '{',
    '  notes(first: 3) {',
    '    id',
    '    title',
    '    author { name }',
    '    tags { name }',
    '  }',
    '}',
    '',
  ].join('\n');
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      // Saved tabs and history stay apart from other GraphiQLs on localhost.
      storage: GraphiQL.createLocalStorage({ namespace: 'notegraph' }),
    }),
  );
})();
