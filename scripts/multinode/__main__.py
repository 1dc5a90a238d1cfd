"""`just multinode [duration] [rate]`: the local multi-node proof.

Starts, on this machine: a primary Postgres and a streaming replica (from
the embedded Postgres binaries, fresh clusters under
`<cargo target dir>/multinode/`, seeded with cluster.DATA_SET), three
servers of the production build (`cargo build --profile production`)
reading from the replica and writing to the primary, and haproxy in front
of them. Then, for DURATION, k6 runs the multinode
scenario through haproxy (the published mix at RATE requests/s plus writes
read back as their writer), while the harness subscribes to SSE on every
server, writes through each server in turn, probes cross-replica cache
invalidation, samples replica lag and CPU, and restarts the three servers
one at a time. Writes `report.md` and `report.json` under
`<cargo target dir>/multinode/<timestamp>/`, prints the summary, and exits
1 when a property failed (see figures.failed_properties). Everything it
started is stopped on exit, on failure and on Ctrl-C. Standard library only.
"""
import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time

from loadtest import report as loadreport
from loadtest import stack
from loadtest.sampler import Sampler, pss_bytes, rss_bytes

from . import cluster, figures, fleet, probes, report

#: The seeded users the harness writes as (the highest ids): SSE events, and the cache probe's note.
EVENT_AUTHOR_OFFSET, CACHE_AUTHOR_OFFSET = 0, 1


def parse_args():
    parser = argparse.ArgumentParser(prog="just multinode", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("duration", nargs="?", default="60s", help="k6 duration (default 60s)")
    parser.add_argument("rate", nargs="?", type=int, default=200, help="mix requests/s through haproxy (default 200)")
    parser.add_argument("--write-rate", type=int, default=10, help="k6 write iterations/s (default 10)")
    parser.add_argument("--sticky", action="store_true",
                        help="balance by the Authorization header (each viewer on one server) instead of round robin")
    args = parser.parse_args()
    seconds = loadreport.duration_seconds(args.duration)
    if not seconds or seconds < 40:
        parser.error("the duration must be at least 40s: the rolling restart of three servers runs inside it")
    return args, seconds


def token(binary, user_id):
    out = subprocess.run([str(binary), "token", str(user_id), "--ttl", "7200"], env=stack.child_env(),
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def measure(args, seconds, run_dir, k6, binary, cleanup):
    """Starts everything (registering how to stop it in `cleanup`), runs the
    load and the probes, and returns the figures."""
    root = stack.target_dir() / "multinode"
    primary = cluster.Primary(binary, root / "primary", run_dir / "primary.log")
    cleanup.append(primary.stop)
    stack.log(f"starting the primary (fresh cluster under {primary.dir})")
    primary.start()
    stack.log("migrating and seeding: " + ", ".join(f"{v} {k}" for k, v in cluster.DATA_SET.items()))
    primary.seed()
    description = primary.read_ids(run_dir / "data.json")
    users_max = int(primary.psql("select max(id) from users"))
    event_author, cache_author = users_max - EVENT_AUTHOR_OFFSET, users_max - CACHE_AUTHOR_OFFSET
    event_token, cache_token = token(binary, event_author), token(binary, cache_author)

    replica = cluster.Replica(primary, root / "replica")
    cleanup.append(replica.stop)
    replica.start()

    env = stack.child_env(DATABASE_URL=primary.url, DATABASE_READ_URL=replica.url, NOTEGRAPH_LOG_FORMAT="json",
                          NOTEGRAPH_DEMO_DATA="false", NOTEGRAPH_SHUTDOWN_DELAY_MS=str(fleet.SHUTDOWN_DELAY_MS))
    servers = [fleet.Server(f"server-{n}", binary, env, run_dir / f"server-{n}.log") for n in (1, 2, 3)]
    for server in servers:
        cleanup.append(server.terminate)
        stack.log(f"starting {server.name} on {server.base_url}")
        server.start()
    haproxy = fleet.Haproxy(servers, run_dir, "hdr(authorization)" if args.sticky else "roundrobin")
    cleanup.append(haproxy.stop)
    haproxy.start()
    stack.log(f"haproxy on {haproxy.base_url} (config {haproxy.config})")

    data, _ = probes.graphql(servers[0], "mutation($input: CreateNoteInput!) { createNote(input: $input) { id } }",
                             {"input": {"title": "multinode cache probe", "body": "Renamed by scripts/multinode."}},
                             cache_token)
    cache_note = data["createNote"]["id"]
    subscribers = [probes.Subscriber(f"subscriber@{s.name}", servers, s, event_author) for s in servers]
    writer = probes.EventWriter(servers, event_token)
    invalidation = probes.InvalidationProbe(servers, cache_token, cache_note)
    lag = probes.LagSampler(primary)
    everything = [*subscribers, writer, invalidation, lag]
    cleanup.append(lambda: [probe.stop() for probe in everything])
    for subscriber in subscribers:
        subscriber.start()
    deadline = time.monotonic() + 10
    while not all(s.streams for s in subscribers) and time.monotonic() < deadline:
        time.sleep(0.1)

    holder = {}
    sampler = Sampler({
        "servers (3)": lambda: ([p for s in servers for p in s.pids()], None, sum(s.exited_cpu for s in servers)),
        "postgres primary": lambda: (lambda pm, ch: ([pm, *ch] if pm else [], pm))(*primary.pids()),
        "postgres replica": lambda: (lambda pm, ch: ([pm, *ch] if pm else [], pm))(*replica.pids()),
        "haproxy": lambda: ([haproxy.process.pid] if haproxy.process.poll() is None else [], None),
        "k6": lambda: ([holder["k6"]] if "k6" in holder else [], None),
    }, {"servers (3)": rss_bytes, "postgres primary": pss_bytes, "postgres replica": pss_bytes,
        "haproxy": rss_bytes, "k6": rss_bytes}, None)
    restart = fleet.RollingRestart(servers, start_after=max(8.0, seconds * 0.2), pause=4.0)

    k6_env = stack.child_env(BASE_URL=haproxy.base_url, DATA_FILE=str(run_dir / "data.json"), RATE=str(args.rate),
                             DURATION=args.duration, WRITE_RATE=str(args.write_rate), K6_CSV_TIME_FORMAT="unix")
    stack.log(f"running k6 (mix at {args.rate}/s, writes at {args.write_rate}/s, {args.duration}) through haproxy, "
              "with the probes and the rolling restart")
    for probe in (writer, invalidation, lag):
        probe.start()
    started = time.time()
    k6_process, copier = stack.run_k6(k6, "multinode", run_dir, k6_env)
    holder["k6"] = k6_process.pid
    cleanup.append(lambda: stack.stop(k6_process, "k6"))
    sampler.start()
    restart.start()
    _, status, usage = os.wait4(k6_process.pid, 0)
    k6_process.returncode = os.waitstatus_to_exitcode(status)
    copier.join()
    ended = time.time()
    sampler.stop(final_cpu={"k6": usage.ru_utime + usage.ru_stime})
    restart.join(timeout=60)
    writer.stop()
    writer.join()
    time.sleep(2)  # the last writes' events are on their way
    for probe in everything:
        probe.stop()
    for probe in everything:
        probe.join(timeout=10)
    resources, wall = sampler.summary(started, ended)
    routing = {server.name: server.routing_now() for server in servers}
    return {
        "k6_exit": k6_process.returncode, "description": description, "resources": resources, "wall": wall,
        "haproxy": haproxy.server_stats(), "restarts": restart.results, "routing": routing, "writer": writer,
        "subscribers": subscribers, "invalidation": invalidation, "lag": lag,
        "authors": {"events": event_author, "cache": cache_author, "cache_note": cache_note},
    }


def main():
    stack.LOG_PREFIX = "multinode"
    args, seconds = parse_args()
    # Stop what we started on SIGTERM too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    k6 = stack.ensure_k6()
    binary = stack.build_production()
    started = datetime.datetime.now().astimezone()
    commit = loadreport.commit()
    run_dir = stack.target_dir() / "multinode" / f"{started:%Y%m%d-%H%M%S}"
    run_dir.mkdir(parents=True)
    stack.log(f"results go to {run_dir}")
    cleanup = []
    load_before = os.getloadavg()
    try:
        measured = measure(args, seconds, run_dir, k6, binary, cleanup)
    finally:
        stack.log("stopping everything started")
        for stop in reversed(cleanup):
            try:
                stop()
            except Exception as error:  # keep stopping the rest
                stack.log(f"while stopping: {error}")
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        stack.log(f"k6 exited with {measured['k6_exit']} and wrote no summary; see {run_dir / 'k6.log'}")
        return 1
    fig = report.collect(measured, json.loads(summary_path.read_text()), {
        "command": " ".join(["just multinode", args.duration, str(args.rate)]
                            + ([f"--write-rate {args.write_rate}"] if args.write_rate != 10 else [])
                            + (["--sticky"] if args.sticky else [])),
        "started_at": started.isoformat(timespec="seconds"), "commit": commit, "rate": args.rate,
        "write_rate": args.write_rate, "duration": args.duration, "load_before": load_before,
        "load_after": os.getloadavg(),
    })
    fig["failed_properties"] = figures.failed_properties(fig)
    text = report.markdown(fig)
    report.write(run_dir, fig, text)
    print()
    print(text.split("\n## ")[0])
    print(f"report: {run_dir / 'report.md'}")
    return 1 if fig["failed_properties"] else 0


if __name__ == "__main__":
    stack.run_main(main)
