#!/usr/bin/env bash
# What a burst costs a server whose pool holds few connections: the first
# 16 concurrent requests after start-up, with NOTEGRAPH_DB_MIN_CONNECTIONS
# at 0 (sqlx's default: connections open on demand) and at 16, ROUNDS
# times each (default 5). Prints the median and the slowest request of
# each burst, and the connections the server held before it.
#
#   DATABASE_URL=… bench/cold-pool.sh [BINARY]
#
# BINARY defaults to target/production/notegraph (`cargo build --profile
# production`, the profile the published figures use).
# The database must hold the default data set (`notegraph seed`).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a database seeded with the default data set}"
binary=${1:-target/production/notegraph}
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-18083}
BURST=16
psql=$(find .notegraph/postgres -name psql -path '*bin*' 2>/dev/null | head -1)
psql=${psql:-psql}
query='{"query":"{ user(id: \"42\") { notes(first: 5) { id title tags { name } } } }"}'

burst() { # -> one line: median and max seconds of BURST concurrent requests
  for i in $(seq "$BURST"); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
      -H 'authorization: Bearer test-token' -H 'cache-control: no-cache' -d "$query" &
  done | sort -n | awk '{ t[NR] = $1 } END { printf "median %.1f ms, slowest %.1f ms\n", 1000 * t[int((NR + 1) / 2)], 1000 * t[NR] }'
  wait
}

server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null' EXIT
for min in 0 16; do
  for round in $(seq "$ROUNDS"); do
    NOTEGRAPH_LISTEN=127.0.0.1:$PORT NOTEGRAPH_DB_MIN_CONNECTIONS=$min RUST_LOG=warn "$binary" serve \
      >"target/cold-pool.log" 2>&1 &
    server=$!
    until curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz"; do sleep 0.1; done
    sleep 2 # the pool opens its minimum in the background
    held=$("$psql" "$DATABASE_URL" -qAtc "select count(*) from pg_stat_activity where application_name = 'notegraph'")
    printf 'min %2s, round %s: %2s connections before the burst; %s\n' "$min" "$round" "$held" "$(burst)"
    kill "$server"; wait "$server" 2>/dev/null || true
    server=
  done
done
