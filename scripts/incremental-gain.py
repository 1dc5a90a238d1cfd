#!/usr/bin/env python3
"""Time to the first part against time to the whole answer, for queries
with @defer and @stream (docs/INCREMENTAL.md, "Measured gain").

For each query: N incremental requests (`Accept: multipart/mixed`), timing
when the first part has arrived whole and when the close delimiter has; and
N requests of the same query without the directive, timed to the end of
the answer. One request at a time over one keep-alive connection, after a
warm-up, past the response cache (`Cache-Control: no-cache`). Prints p50
and p90 in milliseconds. Standard library only.

    python3 scripts/incremental-gain.py [--url http://127.0.0.1:8080/graphql] [-n 200] [--note 1]
"""
import argparse
import http.client
import json
import statistics
import time
import urllib.parse

ACCEPT = "multipart/mixed;deferSpec=20220824,application/json"


def queries(note):
    similar = "similar(first: 10) { note { title } }"
    search = 'searchNotes(text: "a note about databases", first: 10)'
    return [
        (f"note {note}, similar deferred",
         f'{{ note(id: "{note}") {{ title author {{ name }} ... @defer {{ {similar} }} }} }}',
         f'{{ note(id: "{note}") {{ title author {{ name }} }} }}',
         f'{{ note(id: "{note}") {{ title author {{ name }} {similar} }} }}'),
        ("searchNotes, initialCount 3",
         f"{{ {search} @stream(initialCount: 3) {{ score note {{ id title author {{ name }} }} }} }}",
         None,
         f"{{ {search} {{ score note {{ id title author {{ name }} }} }} }}"),
    ]


def post(conn, path, query, accept):
    body = json.dumps({"query": query})
    headers = {"content-type": "application/json", "accept": accept, "cache-control": "no-cache"}
    conn.request("POST", path, body, headers)
    return conn.getresponse()


def incremental(conn, path, query):
    """(seconds to the first part, seconds to the end)."""
    start = time.perf_counter()
    response = post(conn, path, query, ACCEPT)
    assert response.status == 200, response.status
    assert response.getheader("content-type", "").startswith("multipart/mixed"), response.getheader("content-type")
    buffer, first = b"", None
    while True:
        chunk = response.read1(65536)
        if not chunk:
            break
        buffer += chunk
        if first is None and first_part_whole(buffer):
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    assert buffer.endswith(b"\r\n-----\r\n"), buffer[-40:]
    assert b'"errors"' not in buffer, buffer[:400]
    return first, total


def first_part_whole(buffer):
    """Whether the first part's JSON has arrived whole."""
    parts = buffer.split(b"\r\n---")
    if len(parts) < 2 or b"\r\n\r\n" not in parts[1]:
        return False
    try:
        json.loads(parts[1].split(b"\r\n\r\n", 1)[1])
        return True
    except ValueError:
        return False


def whole(conn, path, query):
    start = time.perf_counter()
    response = post(conn, path, query, "application/json")
    body = response.read()
    assert response.status == 200 and b'"errors"' not in body, body[:400]
    return time.perf_counter() - start


def summary(values):
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
    return f"p50 {statistics.median(values) * 1000:7.2f}  p90 {p90 * 1000:7.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/graphql")
    parser.add_argument("-n", type=int, default=200, help="requests per measurement")
    parser.add_argument("--note", default="1", help="the note whose similar notes are deferred")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80)
    for name, deferred, fast_alone, plain in queries(args.note):
        for _ in range(max(5, args.n // 10)):
            incremental(conn, url.path, deferred)
            whole(conn, url.path, plain)
        firsts, totals, plains, alones = [], [], [], []
        for _ in range(args.n):
            first, total = incremental(conn, url.path, deferred)
            firsts.append(first)
            totals.append(total)
            plains.append(whole(conn, url.path, plain))
            if fast_alone:
                alones.append(whole(conn, url.path, fast_alone))
        print(f"{name} ({args.n} runs, ms)")
        print(f"  first part                {summary(firsts)}")
        print(f"  whole incremental answer  {summary(totals)}")
        print(f"  same query, no directive  {summary(plains)}")
        if alones:
            print(f"  the first part's fields alone, one answer  {summary(alones)}")


if __name__ == "__main__":
    main()
