#!/usr/bin/env bash
# Server CPU with observability off and on, under the published mix, runs
# interleaved in one go (bench/compare.sh does the measuring):
#
#   DATABASE_URL=… bench/observability.sh [BINARY]
#
# BINARY defaults to target/production/notegraph (`cargo build --profile
# production`, the profile the published figures use).
#
#   off      NOTEGRAPH_METRICS_ENABLED=false, no NOTEGRAPH_OTLP_ENDPOINT
#   metrics  metrics on (the default), no traces
#   traced   metrics on, and every trace exported over OTLP/HTTP to a
#            do-nothing collector (bench/otlp-sink.py): sampling ratio 1
#   sampled  the same at sampling ratio TRACE_RATIO (default 0.01)
#
# RATE, DURATION and ROUNDS pass through to compare.sh (1000/s, 30 s; ROUNDS
# defaults to 1 here, each round running every configuration twice).
set -euo pipefail
export ROUNDS=${ROUNDS:-1}
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-target/production/notegraph}")
SINK_PORT=${SINK_PORT:-14318}
TRACE_RATIO=${TRACE_RATIO:-0.01}
dir=$(mktemp -d)
python3 bench/otlp-sink.py "$SINK_PORT" 2>"$dir/sink.log" &
sink=$!
trap 'kill $sink 2>/dev/null; wait $sink 2>/dev/null; cat "$dir/sink.log" >&2; rm -rf "$dir"' EXIT
wrapper() { # name env... -> a script that runs the binary with that env
  printf '#!/bin/sh\nexec env %s %s "$@"\n' "${*:2}" "$binary" >"$dir/$1"
  chmod +x "$dir/$1"
  echo "$1=$dir/$1"
}
# Each configuration runs twice per round, in mirrored order (off,
# metrics, traced, sampled, then sampled, traced, metrics, off): the
# machine drifts by more than the difference being measured (in one run
# the same "off" server went from 0.364 to 0.291 cores in 5 minutes), and
# a fixed order would charge the drift to whichever configuration runs
# later. Compare each configuration's mean over its -a and -b runs.
off="NOTEGRAPH_METRICS_ENABLED=false"
metrics="NOTEGRAPH_METRICS_ENABLED=true"
traced="NOTEGRAPH_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT/v1/traces NOTEGRAPH_TRACE_SAMPLE_RATIO=1"
sampled="NOTEGRAPH_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT/v1/traces NOTEGRAPH_TRACE_SAMPLE_RATIO=$TRACE_RATIO"
bash bench/compare.sh \
  "$(wrapper off-a $off)" "$(wrapper metrics-a $metrics)" "$(wrapper traced-a $traced)" "$(wrapper sampled-a $sampled)" \
  "$(wrapper sampled-b $sampled)" "$(wrapper traced-b $traced)" "$(wrapper metrics-b $metrics)" "$(wrapper off-b $off)"
