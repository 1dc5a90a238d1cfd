#!/usr/bin/env bash
# What the k6 harness itself costs the figures: the mix at RATE (1000/s)
# for DURATION (60s) against one running server, k6 invoked as
# `just load-test` invokes it, writing every sample to gzipped CSV, to
# plain CSV and to nothing, each twice in mirrored order; or, with
# VARIANTS="name:GOGC …", gzipped CSV under each GOGC given.
#
#   bench/harness.sh BASE_URL DATA_FILE OUTDIR
#
# BASE_URL is a running server on the load test's data set (for example
# `NOTEGRAPH_DATA_DIR=.notegraph/load notegraph embedded-postgres`, then
# `DATABASE_URL=… notegraph serve`); DATA_FILE the data.json of an earlier
# `just load-test` run on that data; SERVER_MATCH a pgrep pattern for the
# server's CPU (default: "production/notegraph serve", the binary of
# `cargo build --profile production`). GOGC is set only in the VARIANTS
# runs. Docs: docs/PERFORMANCE.md, "The harness's own cost".
set -euo pipefail
base=$1; mkdir -p "$3"
# Absolute: k6 resolves DATA_FILE against the script that opens it.
data=$(realpath "$2"); out=$(realpath "$3")
cd "$(dirname "$0")/.."
k6=$(command -v k6 || echo .notegraph/k6/bin/k6)
ticks() { local t=0 p; for p in $(pgrep -f "${SERVER_MATCH:-production/notegraph serve}"); do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
one() { # label, extra args...
  local label=$1; shift
  local t0 w0
  t0=$(ticks); w0=$(date +%s.%N)
  BASE_URL=$base DATA_FILE=$data RATE=${RATE:-1000} DURATION=${DURATION:-60s} K6_CSV_TIME_FORMAT=unix \
    /usr/bin/time -f "K6CPU %U %S %e" "$k6" run -q --no-usage-report --address "" \
    --summary-export "$out/$label.json" --summary-trend-stats "avg,min,med,max,p(90),p(95),p(99)" \
    --system-tags scenario,status,expected_response,error_code "$@" k6/scenarios/mix.js > "$out/$label.log" 2>&1 || true
  echo "SERVERCPU $(( $(ticks) - t0 )) $w0 $(date +%s.%N)" >> "$out/$label.log"
  python3 - "$out/$label.json" "$out/$label.log" "$label" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1]))["metrics"]
d = s["http_req_duration"]
cpu = [l for l in open(sys.argv[2]) if l.startswith("K6CPU")][-1].split()
u, st, e = map(float, cpu[1:4])
srv = [l for l in open(sys.argv[2]) if l.startswith("SERVERCPU")][-1].split()
server = int(srv[1]) / os.sysconf("SC_CLK_TCK") / (float(srv[3]) - float(srv[2]))
print(f"{sys.argv[3]:10s} server cores {server:.3f} (over k6's whole run)")
print(f"{sys.argv[3]:10s} reqs {s['http_reqs']['count']:6d} p50 {d['med']:.2f} p95 {d['p(95)']:.2f} p99 {d['p(99)']:.2f} max {d['max']:.1f} ms  k6 cores {(u+st)/e:.3f}")
PY
}
if [ -n "${VARIANTS:-}" ]; then
  for v in $VARIANTS; do GOGC=${v#*:} one "${v%%:*}" --out "csv=$out/${v%%:*}.csv.gz"; done
  rm -f "$out"/*.csv.gz; exit 0
fi
one csvgz-a --out "csv=$out/a.csv.gz"
one none-a
one csv-a --out "csv=$out/a.csv"
one csv-b --out "csv=$out/b.csv"
one none-b
one csvgz-b --out "csv=$out/b.csv.gz"
rm -f "$out"/*.csv "$out"/*.csv.gz
