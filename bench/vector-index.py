#!/usr/bin/env python3
"""The vector index sized by measurement (docs/PERFORMANCE.md, "The index
for writes"): for each HNSW setting, its build time, the insert cost per
note and recall@10 of near-vector queries at the server's default
`hnsw.ef_search`, against exact search.

    DATABASE_URL=postgres://… python3 bench/vector-index.py [--rows N] [--queries Q]

Works on copies of `notes.embedding` in tables of its own (dropped at the
end): the notes and their index are not touched. The insert cost is the
CPU time of the Postgres backend that inserts the rows, one statement per
row as createNote does, read from /proc around the inserts, so other load
on the machine does not count (Postgres must run on this machine). Recall
is the share of the exact top 10 that the index returns, averaged over
near queries: a note's embedding plus noise, the kind of vector a real
embedding model gives for text close to a note. Needs psql on the PATH.
"""

import argparse
import os
import subprocess
import sys

SETTINGS = [
    ("vector", 24, 128),  # the default before this measurement
    ("vector", 16, 64),  # pgvector's defaults
    ("vector", 12, 48),
    ("halfvec", 16, 64),
    ("halfvec", 24, 128),
]


class Session:
    """One psql session, so that settings and the backend stay the same."""

    def __init__(self, url):
        self.proc = subprocess.Popen(
            ["psql", url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.run("set statement_timeout = 0")
        self.pid = int(self.one("select pg_backend_pid()"))

    def run(self, sql):
        self.proc.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo __done__\n")
        self.proc.stdin.flush()
        out = []
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line == "__done__":
                return out
            out.append(line)
        sys.exit("psql stopped (see its error above)")

    def one(self, sql):
        return self.run(sql)[0]

    def cpu(self):
        """The backend's CPU seconds so far (user + system)."""
        fields = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=0, help="notes copied (default: all)")
    parser.add_argument("--queries", type=int, default=300, help="near queries")
    parser.add_argument("--inserts", type=int, default=2000, help="rows inserted per setting")
    parser.add_argument("--ef-search", type=int, default=40, help="hnsw.ef_search (the server's default: 40)")
    parser.add_argument("--noise", type=float, default=0.02, help="largest noise per component of a near query")
    parser.add_argument(
        "--settings",
        help="storage:m:ef_construction,… to measure instead of the default list (e.g. vector:16:100,halfvec:16:64)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the inserts into a table without index")
    args = parser.parse_args()
    settings = SETTINGS
    if args.settings:
        settings = [(s, int(m), int(e)) for s, m, e in (item.split(":") for item in args.settings.split(","))]
    url = os.environ.get("DATABASE_URL") or sys.exit("set DATABASE_URL to a database holding the data set")
    db = Session(url)
    limit = f"limit {args.rows}" if args.rows else ""
    noise = f"(select array_agg((random() * 2 - 1) * {args.noise})::vector(384) from generate_series(1, 384) where b.id is not null)"
    print(f"copying notes, drawing {args.queries} near queries, exact top 10 of each…", file=sys.stderr)
    db.run("drop table if exists vi_base, vi_queries, vi_extra, vi_t")
    db.run(f"create table vi_base as select id, embedding from notes order by id {limit}")
    db.run("select setseed(0.42)")
    db.run(
        f"create table vi_queries as select row_number() over () as q, b.embedding + {noise} as v "
        f"from (select id, embedding from vi_base order by random() limit {args.queries}) b"
    )
    # New notes on the subjects of existing ones, as a real model places them.
    db.run(
        f"create table vi_extra as select row_number() over () as n, b.embedding + {noise} as embedding "
        f"from (select id, embedding from vi_base order by random() limit {args.inserts}) b"
    )
    db.run("create index on vi_extra (n)")
    # Exact answers: a sequential scan of vi_base, which has no index.
    db.run("alter table vi_queries add column truth bigint[]")
    db.run("update vi_queries set truth = array(select id from vi_base order by embedding <=> v limit 10)")
    total = db.one("select count(*) from vi_base")
    print(f"{total} notes, {args.queries} near queries (noise ≤ {args.noise}), {args.inserts} inserts per setting\n")
    print(
        f"| storage | m | ef_construction | build (s) | recall@10 at ef_search {args.ef_search} "
        "| insert CPU per note (ms) | index (MB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for storage, m, efc in settings:
        db.run("drop table if exists vi_t")
        db.run(f"create table vi_t (id bigint, embedding {storage}(384))")
        db.run(f"insert into vi_t select id, embedding::{storage}(384) from vi_base")
        db.run("set maintenance_work_mem = '512MB'")
        started = float(db.one("select extract(epoch from clock_timestamp())"))
        db.run(
            f"create index vi_t_idx on vi_t using hnsw (embedding {storage}_cosine_ops) "
            f"with (m = {m}, ef_construction = {efc})"
        )
        build = float(db.one("select extract(epoch from clock_timestamp())")) - started
        db.run(f"set hnsw.ef_search = {args.ef_search}")
        recall = db.one(
            "select round(avg((select count(*) from (select id from vi_t "
            f"order by embedding <=> q.v::{storage}(384) limit 10) a where a.id = any(q.truth)))::numeric / 10, 3) "
            "from vi_queries q"
        )
        size = db.one("select round(pg_relation_size('vi_t_idx') / 1048576.0)")
        db.run(
            "prepare ins(bigint) as insert into vi_t (id, embedding) "
            f"select -n, embedding::{storage}(384) from vi_extra where n = $1"
        )
        before = db.cpu()
        db.run(";\n".join(f"execute ins({n})" for n in range(1, args.inserts + 1)))
        cost = (db.cpu() - before) * 1000 / args.inserts
        db.run("deallocate ins")
        print(f"| {storage} | {m} | {efc} | {build:.0f} | {recall} | {cost:.2f} | {size} |", flush=True)
    # The same inserts without any index: what the table and WAL cost alone.
    db.run("drop table if exists vi_t")
    if args.no_baseline:
        db.run("drop table if exists vi_base, vi_queries, vi_extra")
        return
    db.run("create table vi_t (id bigint, embedding vector(384))")
    db.run("prepare ins(bigint) as insert into vi_t (id, embedding) select -n, embedding from vi_extra where n = $1")
    before = db.cpu()
    db.run(";\n".join(f"execute ins({n})" for n in range(1, args.inserts + 1)))
    print(f"| (no index) | | | | | {(db.cpu() - before) * 1000 / args.inserts:.2f} | |")
    db.run("drop table if exists vi_t, vi_base, vi_queries, vi_extra")


if __name__ == "__main__":
    main()
