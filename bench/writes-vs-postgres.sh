#!/usr/bin/env bash
# Creates through the server against the same inserts sent straight to
# Postgres (docs/PERFORMANCE.md, "Writes"): first pgbench runs the
# createNote statement itself — the note with its embedding, three tags,
# their links and the notify, one statement as the server sends it — at
# increasing fixed rates; then `just load-test create` ramps creates
# (three tags each) through the server. Same database (the load tests'
# embedded Postgres under <data dir>/load, which this script starts for
# pgbench and stops before the load test starts it again), same index, one
# run. For each pgbench rate it prints the rate reached, p99, errors and
# the CPU of Postgres and pgbench; the highest rate with p99 < 200 ms, 0
# errors and at least 95% of the rate reached is pgbench's held rate, to
# set beside the load test's "highest rate that held" (its report, under
# <target dir>/load/, has the server's, Postgres's and k6's CPU).
#
#   bash bench/writes-vs-postgres.sh [rates…]
#
# rates default to 100 200 300 400 600 800 1000 (creates/s), DURATION
# (seconds, default 30) each, CLIENTS (default 8) connections. RAMP_TO
# (default 1000) is the top of the load test's ramp, over RAMP_FOR
# (default 60s). The production binary is built first (the load-test
# runner does the same) unless BINARY names one; the cluster is seeded
# with the default data set when it does not hold it. The rows pgbench
# writes are deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
CLIENTS=${CLIENTS:-8}
RAMP_TO=${RAMP_TO:-1000}
RAMP_FOR=${RAMP_FOR:-60s}
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(100 200 300 400 600 800 1000)
data_dir=$(realpath -m "${NOTEGRAPH_DATA_DIR:-.notegraph}")
target=${CARGO_TARGET_DIR:-target}
# BINARY: a notegraph binary built already (each commit makes cargo rebuild
# the api crate, which embeds the commit).
if [ -n "${BINARY:-}" ]; then
  notegraph=$(realpath "$BINARY")
else
  cargo build --profile production --bin notegraph
  notegraph=$target/production/notegraph
fi
work=$(mktemp -d)
postgres=
trap '[ -z "$postgres" ] || { kill "$postgres" 2>/dev/null; wait "$postgres" 2>/dev/null; }; rm -rf "$work"' EXIT

# The load tests' cluster (scripts/loadtest/stack.py, Postgres).
NOTEGRAPH_DATA_DIR=$data_dir/load "$notegraph" embedded-postgres >"$work/url" 2>"$work/postgres.log" &
postgres=$!
for _ in $(seq 600); do grep -q '^DATABASE_URL=' "$work/url" && break; sleep 0.5; done
DATABASE_URL=$(sed -n 's/^DATABASE_URL=//p' "$work/url")
[ -n "$DATABASE_URL" ] || { echo "the embedded Postgres did not start:" >&2; tail -5 "$work/postgres.log" >&2; exit 1; }
export DATABASE_URL
bin=$(dirname "$(find "$data_dir/load/postgres" -name pgbench -path '*bin*' | head -1)")
[ -x "$bin/pgbench" ] || { echo "pgbench not found under $data_dir/load/postgres" >&2; exit 1; }
psql() { "$bin/psql" "$DATABASE_URL" -X -qAt -v ON_ERROR_STOP=1 "$@"; }
"$notegraph" migrate >/dev/null 2>>"$work/postgres.log"
if [ "$(psql -c 'select count(*) from notes')" != 100000 ] || [ "$(psql -c 'select count(*) from tags')" != 200 ]; then
  echo "loading the default data set (notegraph seed)"
  "$notegraph" seed >/dev/null
fi
# Dead rows first out of the table and its index: a run's deleted notes
# stay in the HNSW graph until a vacuum, and inserts walking a graph that
# is half dead cost more (one earlier run found 84k dead notes beside the
# 100k live; autovacuum had not reached them). Quick when nothing is dead.
vacuum() { psql -c 'vacuum (analyze) notes, note_tags, tags'; }
vacuum
# The data set's pages in shared buffers first, as the load-test runner
# does before the server's ramp: cold, each insert read the note it copies
# and the HNSW pages it walks from disk, and the rate measured the disk.
echo "prewarmed $(psql -f scripts/loadtest/prewarm.sql | tail -1) blocks"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# The statement a lone createNote sends (crates/db/src/notes.rs,
# INSERT_MANY, for one note: written here in its one-note form), with
# pgbench variables for its parameters: a title, three of the data set's
# tags and the embedding of an existing note plus noise of at most ±0.02
# per component (bench/vector-index.py's near vectors). The noise matters:
# the index inserts a copy of an indexed vector for less than a new point,
# and the server's notes are new points. One create at a time on the same
# cluster, in runs of 1,000 taking turns, Postgres spent 5.2-6.3 ms of
# CPU a create through the server, 5.2-6.0 ms with the noise (about 0.3 ms
# of it making the noise) and 3.2-4.2 ms for exact copies (docs/PERFORMANCE.md,
# "Creates against Postgres alone"). pgbench commits each note alone; the server
# commits concurrent creates in groups (docs/PERFORMANCE.md, "Group
# commit of creates").
cat >"$work/create.sql" <<'SQL'
\set n random(1, 100000)
\set t1 random(1, 200)
\set t2 random(1, 200)
\set t3 random(1, 200)
with ins as (
    insert into notes as n (author_id, title, body, visibility, embedding, embedded_with)
    select 1, 'pgbench create ' || :n, 'Written by bench/writes-vs-postgres.sh; removed after the run.',
           'public'::text::note_visibility,
           (select array_agg(x + (random()::real - 0.5) * 0.04) from unnest(e.embedding::real[]) as x)::vector,
           'pgbench'
    from notes e where e.id = :n
    returning n.id, n.author_id, n.title, n.body, n.visibility, n.created_at, n.updated_at
), tagged as (
    select name from tags where id in (:t1, :t2, :t3) and exists (select 1 from ins)
), existing as materialized (
    select t.id, t.name from tags t where t.name in (select name from tagged)
), added as (
    insert into tags (name)
    select distinct name from tagged where name not in (select name from existing)
    order by name
    on conflict (name) do update set name = excluded.name
    returning id, name
), after as (
    select id, name from existing union all select id, name from added
), links as (
    insert into note_tags (note_id, tag_id) select ins.id, after.id from ins, after
)
select n.id, u.name, array(select name from after order by name),
       pg_notify('notegraph_writes', json_build_object('kind', 'created', 'note', n.id, 'author', n.author_id,
           'visibility', n.visibility, 'tags', array(select name from after order by name),
           'at', n.updated_at)::text)
from ins n join users u on u.id = n.author_id;
SQL

# CPU of this database's cluster alone (bench/postgres-cpu.sh).
source bench/postgres-cpu.sh
postmaster=$(postmaster_of "$bin/psql" "$DATABASE_URL")
hz=$(getconf CLK_TCK)

echo "| rate asked (/s) | reached (/s) | p99 (ms) | errors | Postgres CPU (cores) | pgbench CPU (cores) | load average after |"
echo "|---|---|---|---|---|---|---|"
held=0
for rate in "${rates[@]}"; do
  children=$(pgrep -c -P "$postmaster")
  before=$(pg_ticks "$postmaster")
  start=$(date +%s.%N)
  /usr/bin/env time -f "%U %S" -o "$work/time" \
    "$bin/pgbench" "$DATABASE_URL" -n -f "$work/create.sql" -c "$CLIENTS" -j 2 -R "$rate" -T "$DURATION" \
    -l --log-prefix="$work/log" >"$work/out" 2>&1 || true
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  pg_settled "$postmaster" "$children"
  after=$(pg_ticks "$postmaster")
  read -r user sys <"$work/time"
  # Per-transaction logs: field 3 is the latency in µs, from the
  # transaction's scheduled start under -R (so it includes the wait behind
  # a late schedule, as an open-model client sees it). Errors: failed
  # transactions as pgbench counts them, and clients it aborted.
  stats=$(cat "$work"/log* | awk '{ print $3 }' | sort -n | awk '{ a[NR] = $1 } END {
    if (NR == 0) { print "0 0"; exit } i = int(NR * 0.99); if (i < 1) i = 1; printf "%d %.1f", NR, a[i] / 1000 }')
  rm -f "$work"/log*
  read -r count p99 <<<"$stats"
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$work/out")
  errors=$(( ${failed:-0} + $(grep -ci "aborted" "$work/out" || true) ))
  reached=$(echo "scale=1; $count / $DURATION" | bc)
  pg_cores=$(echo "scale=2; ($after - $before) / $hz / $elapsed" | bc)
  bench_cores=$(echo "scale=2; ($user + $sys) / $elapsed" | bc)
  echo "| $rate | $reached | $p99 | $errors | $pg_cores | $bench_cores | $(cut -d' ' -f1-3 /proc/loadavg) |"
  if [ "$errors" = 0 ] && [ "$(echo "$p99 < 200" | bc)" = 1 ] && [ "$(echo "$reached >= $rate * 0.95" | bc)" = 1 ]; then
    held=$rate
  fi
done
echo
echo "pgbench alone held $held creates/s (p99 < 200 ms, 0 errors)"
psql -c "delete from notes where embedded_with = 'pgbench'" >/dev/null
# The server's run starts from the state pgbench's did (minutes with an
# HNSW index: the vacuum repairs the graph around each deleted note).
started=$(date +%s)
vacuum
echo "vacuumed pgbench's rows in $(( $(date +%s) - started )) s"
kill "$postgres"; wait "$postgres" 2>/dev/null || true
postgres=

echo "then the server, same database (just load-test create $RAMP_TO $RAMP_FOR):"
NOTEGRAPH_DATA_DIR=$data_dir python3 scripts/load-test.py create "$RAMP_TO" "$RAMP_FOR" --binary "$notegraph"
