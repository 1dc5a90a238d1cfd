# Routine tasks. `just --list` shows them; every recipe is a plain command
# you can also run without `just`.

# Serve the API on 127.0.0.1:8080 (embedded Postgres and demo data unless DATABASE_URL is set).
run *args:
    cargo run --release -- serve {{args}}

# The whole test suite (installs its test tools, starts the embedded Postgres).
test *args:
    bash scripts/test.sh {{args}}

# The stress step CI runs after the suite: statement counts at full strength (50 runs per condition, both cores busy) and the long randomized cache comparison.
stress *args:
    bash scripts/test.sh --stress {{args}}

# The property tests of the HTTP entry at length (docs/TESTING.md, "Property tests"): cases per property, and a seed (a number, or `random`).
fuzz cases="5000" seed="random":
    NOTEGRAPH_FUZZ_CASES={{cases}} NOTEGRAPH_FUZZ_SEED={{seed}} bash scripts/test.sh --fuzz

# Replace all data with the default data set (10k users, 100k notes, 200 tags).
seed *args:
    cargo run --release -- seed {{args}}

# Print the GraphQL schema (SDL).
schema:
    cargo run --quiet -- print-schema

# Write docs/CONFIGURATION.md, the reference of every setting, from the clap definitions (a test fails while it is stale).
config-docs:
    cargo run --quiet -- print-configuration > docs/CONFIGURATION.md

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Print a development JWT for a user.
token user="1":
    cargo run --quiet -- token {{user}}

# Update the vendored GraphiQL and React (crates/api/assets/graphiql) from npm.
vendor-graphiql:
    bash scripts/vendor-graphiql.sh

# Sequential latency of the published mix against a running server, with CPU per process.
latency *args:
    python3 scripts/latency.py --cpu server=$(pgrep -d, -x notegraph) --cpu postgres=$(pgrep -d, -x postgres) {{args}}

# CPU per request side by side (k6 mix at a fixed rate), after `cargo build --profile production`: `just compare baseline notegraph=target/production/notegraph`.
compare *args:
    bash bench/compare.sh {{args}}

# User-space instructions per request under the mix, counted by callgrind (repeatable on a busy machine; needs valgrind and DATABASE_URL seeded): `just instructions baseline "main=target/production/notegraph"`.
instructions *args:
    python3 bench/instructions.py {{args}}

# The first burst of 16 requests after start-up, with no idle pool connections kept and with 16 (needs DATABASE_URL seeded): [binary].
cold-pool *args:
    bash bench/cold-pool.sh {{args}}

# The per-client budgets' memory bound: a release server (`cargo build --release -p api --bin notegraph`) gets 1,000,000 distinct X-Forwarded-For addresses; RSS before/after against docs/SECURITY.md's bound: [--clients N] [--max-clients N].
budget-memory *args:
    python3 scripts/budget-memory.py {{args}}

# k6 load test of a production build (fat LTO) on this machine, report in target/load/ (docs/LOAD-TESTING.md): [scenario] [rate] [duration] [--compare FILE] [--server baseline].
load-test *args:
    python3 scripts/load-test.py {{args}}

# Issue 28's reads beside writes: the mix at 1000/s alone, then beside createNote at create_rate/s (half the rate `just load-test create` held); holds when read p99 stays within 1.5x of alone with no failed read.
load-test-beside-creates create_rate="100" rate="1000" duration="60s":
    CREATE_RATE={{create_rate}} python3 scripts/load-test.py mixcreate {{rate}} {{duration}}

# Local multi-node proof: primary + streaming replica, 3 servers behind haproxy, k6 through it, rolling restart; report in target/multinode/ (docs/DEPLOY.md): [duration] [rate].
multinode *args:
    python3 scripts/multinode.py {{args}}

# Faults under load: Postgres frozen (SIGSTOP) under the mix, killed and restarted under writes, its connections black-holed; a replica behind haproxy SIGTERMed and SIGKILLed; report in target/chaos/ (docs/PERFORMANCE.md, "Faults"): [freeze] [kill] [blackhole] [replicas] [--rate N].
chaos *args:
    python3 scripts/chaos.py {{args}}

# CPU flame graph (perf + inferno) of the server under a load-test scenario (default: the mix at 1000/s for 30s).
profile scenario="mix" rate="1000" duration="30s":
    python3 scripts/load-test.py --profile {{scenario}} {{rate}} {{duration}}

# Criterion benchmarks of hot paths that need no database (benches/, a workspace of its own): [filter].
bench *args:
    cd benches && cargo bench --bench hot_paths -- {{args}}

# Vector search recall@10, latency and searches/s against exact search, HNSW and IVFFlat (docs/PERFORMANCE.md, "Vector search"); DATABASE_URL must hold the default data set. `--api URL` measures through a running server instead.
bench-vector *args:
    cargo run --release -p api --example bench_vector -- {{args}}
# Incremental delivery's gain: time to the first part against the whole answer, for a deferred `similar` and a streamed search (docs/INCREMENTAL.md), against a running server: [--url URL] [-n N].
incremental-gain *args:
    python3 scripts/incremental-gain.py {{args}}
# Server CPU with metrics and traces off, on, and traced to a do-nothing OTLP collector, interleaved (needs DATABASE_URL seeded): [binary].
observability-overhead *args:
    bash bench/observability.sh {{args}}

# Render a Kubernetes overlay (deploy/k8s/overlays/dev or prod) as `kubectl apply -k` would apply it.
k8s-render overlay="prod":
    kubectl kustomize deploy/k8s/overlays/{{overlay}}

# Regenerate the k8s PrometheusRule (deploy/k8s/base/prometheusrule.yaml) from deploy/prometheus/alerts.yml.
prometheus-rule:
    python3 deploy/prometheus/prometheusrule.py

# Run the k6 mix in a cluster with the k6-operator (docs/DEPLOY.md): namespace, runner pods, total requests/s, duration.
k8s-load-test namespace="notegraph" parallelism="4" rate="1000" duration="5m":
    kubectl -n {{namespace}} delete testrun notegraph-mix --ignore-not-found
    kubectl kustomize deploy/k8s/loadtest | sed -e 's/^  parallelism: .*/  parallelism: {{parallelism}}/' -e 's/^  arguments: .*/  arguments: -e RATE={{rate}} -e DURATION={{duration}}/' | kubectl -n {{namespace}} apply -f -

# Offline checks of the Docker, compose and Kubernetes files and the healthcheck command (schemas, cross-references, k6 layout).
deploy-check:
    bash scripts/test.sh -p api -- deploy_ healthcheck
