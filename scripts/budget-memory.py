#!/usr/bin/env python3
"""The per-client budgets' memory bound, measured (docs/SECURITY.md,
"Per-client budgets"): starts a release server with anonymous budgets on,
this machine as its trusted proxy and NOTEGRAPH_BUDGET_MAX_CLIENTS as set,
sends `{ __typename }` from N distinct addresses (X-Forwarded-For, 10.0.0.0
upwards), and reports the server's RSS before and after, the buckets it
remembers (notegraph_budget_clients) and the growth per bucket, against
the documented bound.

    just budget-memory [--clients 1000000] [--max-clients 100000]

Needs a release build (`cargo build --release -p api --bin notegraph`,
found under $CARGO_TARGET_DIR or target/) and a database: DATABASE_URL, or
the embedded Postgres under NOTEGRAPH_DATA_DIR. Exits 1 when the buckets
pass the cap or the RSS grows past the bound.
"""

import argparse
import asyncio
import ipaddress
import os
import socket
import subprocess
import sys
import time
import urllib.request

# The documented bound on what the buckets add to the server's RSS, per
# bucket remembered at the cap (docs/SECURITY.md): moka's entry, the key,
# the Arc'd mutex and bucket, and the allocator's rounding.
BOUND_BYTES_PER_CLIENT = 512


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def buckets(base):
    for line in get(base + "/metrics").splitlines():
        if line.startswith("notegraph_budget_clients "):
            return int(float(line.split()[1]))
    raise RuntimeError("no notegraph_budget_clients in /metrics")


async def worker(port, addresses, counts):
    """One keep-alive connection sending a request per address, in turn."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"query":"{ __typename }"}'
    for address in addresses:
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + b"X-Forwarded-For: " + address.encode() + b"\r\n"
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        counts[status] = counts.get(status, 0) + 1
    writer.close()


async def send_all(port, clients, concurrency):
    first = int(ipaddress.IPv4Address("10.0.0.0"))
    counts = {}
    chunks = [
        (str(ipaddress.IPv4Address(first + n)) for n in range(start, clients, concurrency))
        for start in range(concurrency)
    ]
    await asyncio.gather(*(worker(port, chunk, counts) for chunk in chunks))
    return counts


def release_binary():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    return os.path.join(target, "release", "notegraph")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=release_binary())
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--max-clients", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: cargo build --release -p api --bin notegraph")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ)
    env.update(
        NOTEGRAPH_LISTEN=f"127.0.0.1:{port}",
        NOTEGRAPH_BUDGET_ANONYMOUS_RATE="1",
        NOTEGRAPH_TRUSTED_PROXIES="127.0.0.1",
        NOTEGRAPH_BUDGET_MAX_CLIENTS=str(args.max_clients),
        NOTEGRAPH_LOG_FORMAT="json",
        RUST_LOG="warn",
    )
    server = subprocess.Popen([args.binary, "serve"], env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get(base + "/readyz")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the server did not become ready")
                time.sleep(0.2)
        # Warm: the first requests allocate the pipeline's own buffers.
        asyncio.run(send_all(port, 1_000, 8))
        before = rss_kib(server.pid)
        started = time.monotonic()
        counts = asyncio.run(send_all(port, args.clients, args.concurrency))
        took = time.monotonic() - started
        after = rss_kib(server.pid)
        remembered = buckets(base)
    finally:
        server.terminate()
        server.wait(timeout=30)
    grown = (after - before) * 1024
    bound = args.max_clients * BOUND_BYTES_PER_CLIENT
    print(f"{args.clients} addresses in {took:.0f} s ({args.clients / took:.0f}/s), answers by status: {counts}")
    print(f"RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB: grew {grown / 2**20:.1f} MiB")
    print(f"buckets remembered: {remembered} (cap {args.max_clients})")
    print(f"growth per bucket at the cap: {grown / max(remembered, 1):.0f} bytes; "
          f"documented bound {BOUND_BYTES_PER_CLIENT} bytes × {args.max_clients} = {bound / 2**20:.1f} MiB")
    failed = remembered > args.max_clients or grown > bound or counts.get(200, 0) != args.clients
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
