#!/usr/bin/env python3
"""Sequential latency of the published query mix: p50 and p99 per query.

Sends each query N times, one at a time over one keep-alive connection (so
the figures are per-request latency, not throughput), after a warm-up, and
reports the CPU time each named group of processes used meanwhile (from
/proc), since client, server and Postgres share the machine's cores.
Standard library only.

    python3 scripts/latency.py [--url http://127.0.0.1:8080/graphql] [-n 500] \
        [--cpu server=$(pgrep -d, -x notegraph)] [--cpu postgres=$(pgrep -d, -x postgres)]
"""
import argparse
import http.client
import json
import os
import statistics
import time
import urllib.parse

MIX = [
    '{ users(first: 20) { id name } }',
    '{ note(id: "1") { id title author { name } } }',
    '{ user(id: "1") { notes { id title tags { name } } } }',
    '{ notes(first: 10) { id title author { name } } }',
]


def percentile(sorted_values, p):
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def cpu_seconds(pids):
    """utime + stime of the given processes, in seconds (gone ones count 0)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                # The command name may hold spaces; fields after it are fixed.
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def parse_group(text):
    name, _, pids = text.partition("=")
    return name, [pid for pid in pids.split(",") if pid]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/graphql")
    parser.add_argument("-n", type=int, default=500, help="requests per query")
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--cpu", action="append", default=[], type=parse_group, metavar="NAME=PID[,PID...]",
                        help="report the CPU these processes use during the run")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80)
    headers = {"content-type": "application/json", "authorization": f"Bearer {args.token}"}

    def send(query):
        conn.request("POST", url.path, json.dumps({"query": query}), headers)
        response = conn.getresponse()
        body = json.loads(response.read())
        if response.status != 200 or "errors" in body:
            raise SystemExit(f"{query}: {response.status} {body}")

    for query in MIX:
        for _ in range(20):
            send(query)
    before = {name: cpu_seconds(pids) for name, pids in args.cpu}
    client_before, wall_before = sum(os.times()[:2]), time.monotonic()
    print(f"{'query':58} {'p50 ms':>8} {'p99 ms':>8}")
    for query in MIX:
        samples = []
        for _ in range(args.n):
            start = time.perf_counter()
            send(query)
            samples.append((time.perf_counter() - start) * 1000)
        samples.sort()
        print(f"{query:58} {statistics.median(samples):8.2f} {percentile(samples, 99):8.2f}")
    wall = time.monotonic() - wall_before
    usage = [f"{name} {cpu_seconds(pids) - before[name]:.1f} s" for name, pids in args.cpu]
    usage.append(f"client {sum(os.times()[:2]) - client_before:.1f} s")
    print(f"CPU over {wall:.1f} s wall: " + ", ".join(usage))


if __name__ == "__main__":
    main()
