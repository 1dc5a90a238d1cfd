#!/usr/bin/env bash
# What a fresh server's first requests cost: each BINARY is started ROUNDS
# times (default 8), with the response cache off; a second after it is
# ready, the mix's three queries are sent one after the other, then
# userNotes again for another user. Each request is the first of its
# statement on the connection it gets (the pool hands out its connections
# in turn), so this measures what a new connection's first statements cost.
# Prints each request's median and slowest time over the rounds, per binary.
#
#   DATABASE_URL=… bench/first-requests.sh [BINARY …]
#
# The database must hold the default data set (`notegraph seed`).
# Docs: docs/PERFORMANCE.md, "Pool tuning" (warm connections).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a database seeded with the default data set}"
ROUNDS=${ROUNDS:-8}
PORT=${PORT:-18084}
[ $# -gt 0 ] || set -- target/release/notegraph

post() { # query -> seconds
  curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
    -H 'authorization: Bearer test-token' -d "{\"query\":\"$1\"}"
}
summary() { # label, seconds on stdin -> one line
  sort -n | awk -v label="$1" '{ t[NR] = $1 } END {
    printf "  %-22s median %5.2f ms, slowest %5.2f ms\n", label, 1000 * t[int((NR + 1) / 2)], 1000 * t[NR] }'
}

server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null' EXIT
for binary in "$@"; do
  out=$(mktemp -d)
  for round in $(seq "$ROUNDS"); do
    NOTEGRAPH_LISTEN=127.0.0.1:$PORT NOTEGRAPH_CACHE_ENABLED=false RUST_LOG=warn "$binary" serve >/dev/null 2>&1 &
    server=$!
    until curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz"; do sleep 0.05; done
    sleep 1
    post "{ user(id: \\\"$((round * 13))\\\") { notes { id title tags { name } } } }" >>"$out/1"
    post "{ note(id: \\\"$((round * 17))\\\") { id title author { name } } }" >>"$out/2"
    post "{ users(first: 20) { id name } }" >>"$out/3"
    post "{ user(id: \\\"$((round * 13 + 1))\\\") { notes { id title tags { name } } } }" >>"$out/4"
    kill "$server"; wait "$server" 2>/dev/null || true
    server=
  done
  echo "$binary, $ROUNDS fresh starts:"
  summary "userNotes" <"$out/1"
  summary "noteDetail" <"$out/2"
  summary "userList" <"$out/3"
  summary "userNotes, another" <"$out/4"
  rm -r "$out"
done
