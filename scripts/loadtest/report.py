"""The run's results: `report.json` (the figures, also the format of a
baseline under k6/baselines/) and `report.md` (the same for a person).
"""
import json
import os
import platform
import re
import subprocess
from pathlib import Path

from .stack import ROOT


def _metric(summary, name):
    return summary.get("metrics", {}).get(name, {})


def machine():
    """Cores, CPU model and kernel, for the report's context."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}"


def commit():
    """The tree's `git describe --always --dirty`; the runner takes it when the run starts."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def load_average():
    """The machine's 1-, 5- and 15-minute load averages (/proc/loadavg), or None."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def duration_seconds(text):
    """Seconds in a k6 duration such as `90s`, `5m` or `1h30m` (None when not one)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text or "")
    return sum(float(value) * units[unit] for value, unit in parts) or None


def figures(run):
    """The numbers of a run, as report.json holds them.

    When the run follows one k6 scenario among several (`connections`), the
    headline figures are that scenario's.
    """
    summary = run["summary"]
    follow = run.get("follow")
    only = f"{{scenario:{follow}}}" if follow else ""
    duration = _metric(summary, f"http_req_duration{only}")
    reqs = _metric(summary, f"http_reqs{only}")
    failures = _metric(summary, f"failures{only}")
    dropped = _metric(summary, "dropped_iterations")
    cache = _metric(summary, "cache_hits")
    requests = reqs.get("count", 0)
    statements = run.get("statements")
    out = {
        "scenario": run["scenario"],
        "asked": run["asked"].replace("CONNECTIONS (default 1,000)", os.environ.get("CONNECTIONS", "1000")),
        "rate_asked": run.get("rate"),
        "duration_asked": run.get("duration"),
        "command": run["command"],
        "commit": run["commit"],
        "machine": machine(),
        "started_at": run["started_at"],
        "requests": requests,
        # k6's rate of a scenario's submetric is over the whole test: use the scenario's own duration.
        "achieved_rate": round(reqs.get("count", 0) / duration_seconds(run["duration"]) if follow
                               else reqs.get("rate", 0.0), 1),
        "iterations": _metric(summary, "iterations").get("count", 0),
        "latency_ms": {k: duration.get(k) for k in ("med", "p(95)", "p(99)", "max", "avg")},
        "failed_requests": failures.get("passes", 0),
        "failure_rate": failures.get("value", 0.0),
        "dropped_iterations": dropped.get("count", 0),
        "stale_reads": _metric(summary, "stale_reads").get("count", 0),
        "cache_hit_ratio": cache.get("value") if cache else None,
        "statements": statements,
        "statements_per_request": (statements / requests) if statements is not None and requests else None,
        "resources": run["resources"],
        "resources_wall_seconds": run["resources_wall"],
        "server_sockets_peak": run.get("sockets_peak"),
        "followed_scenario": follow,
        "holders": ({"requests": _metric(summary, "http_reqs{scenario:holders}").get("count", 0),
                     "failed": _metric(summary, "failures{scenario:holders}").get("passes", 0),
                     "reconnects": _metric(summary, "reconnects").get("count", 0)}
                    if run["scenario"] == "connections" else None),
        "sse": ({name: {k: _metric(summary, f"sse_{name}").get(k) for k in ("med", "p(99)", "max")}
                 for name in ("delivery", "first_byte", "subscribed")}
                if _metric(summary, "sse_delivery") else None),
        "thresholds_passed": run["k6_exit"] == 0,
        "k6_exit": run["k6_exit"],
        "data": run["data"],
        "per_query": {},
        "analysis": run.get("analysis", {}),
        "server": run.get("server", "notegraph"),
        "load_average": run.get("load_average"),
        "concurrency": concurrency(run.get("final_metrics") or {}),
    }
    for name, metric in summary.get("metrics", {}).items():
        if name.startswith("http_req_duration{query:"):
            query = name[len("http_req_duration{query:"):-1]
            fails = _metric(summary, f"failures{{query:{query}}}")
            out["per_query"][query] = {
                "p50": metric.get("med"), "p99": metric.get("p(99)"), "max": metric.get("max"),
                "requests": fails.get("passes", 0) + fails.get("fails", 0), "failed": fails.get("passes", 0),
            }
    return out


def concurrency(metrics):
    """The concurrency limit's counts at the end of the run (scraped from
    /metrics before the server stopped): the limit then, requests shed, and
    how often the limit moved each way; None without the series."""
    if "notegraph_concurrency_limit" not in metrics:
        return None
    return {"limit_at_end": metrics["notegraph_concurrency_limit"],
            "shed": metrics.get("notegraph_concurrency_shed_total", 0.0),
            "changes_up": metrics.get('notegraph_concurrency_limit_changes_total{direction="up"}', 0.0),
            "changes_down": metrics.get('notegraph_concurrency_limit_changes_total{direction="down"}', 0.0)}


def _ms(value):
    return f"{value:.2f} ms" if isinstance(value, (int, float)) else "n/a"


def _loads(values):
    return " / ".join(f"{v:.2f}" for v in values) if values else "n/a"


def _mib(value):
    return f"{value / 2**20:.0f} MiB"


def markdown(fig, analysis_lines, comparison_lines, ids_note):
    lat = fig["latency_ms"]
    verdict = "thresholds " + ("PASSED" if fig["thresholds_passed"] else f"FAILED (k6 exit {fig['k6_exit']})")
    if "highest_rate_held" in fig["analysis"]:
        # ramp and create run until the thresholds break: the rate where they did is the result.
        held = fig["analysis"]["highest_rate_held"]
        verdict = f"highest rate that held {held:.0f}/s" if held else "no rate held"
    lines = [
        f"# Load test `{fig['scenario']}`: {verdict}",
        "",
        f"- Command: `{fig['command']}`",
        f"- Started: {fig['started_at']}, commit {fig['commit']}",
        f"- Machine: {fig['machine']}; k6, the server and Postgres share it. Load average (1, 5, 15 min) "
        f"before the run {_loads((fig.get('load_average') or {}).get('before'))}, after "
        f"{_loads((fig.get('load_average') or {}).get('after'))}.",
        f"- Asked: {fig['asked']}.",
        f"- Achieved: **{fig['achieved_rate']:.1f} requests/s** ({fig['requests']} requests, "
        f"{fig['iterations']} iterations).",
        f"- Latency (http_req_duration): p50 {_ms(lat['med'])}, p95 {_ms(lat['p(95)'])}, "
        f"**p99 {_ms(lat['p(99)'])}**, max {_ms(lat['max'])}.",
        f"- Failed requests (not HTTP 200, `errors`, or empty `data`): {fig['failed_requests']} "
        f"({100 * fig['failure_rate']:.3f}%); dropped iterations: {fig['dropped_iterations']}.",
    ]
    if fig.get("server") == "baseline":
        lines.append("- Server: **bench/baseline**, the bare axum + sqlx server (no GraphQL engine, cache or limits).")
    if fig.get("concurrency"):
        c = fig["concurrency"]
        lines.append(f"- Concurrency limit (`/metrics` at the end): {c['shed']:.0f} requests shed "
                     f"(`notegraph_concurrency_shed_total`), the limit moved up {c['changes_up']:.0f} and down "
                     f"{c['changes_down']:.0f} times, {c['limit_at_end']:.0f} at the end.")
    if fig["scenario"] in ("writes", "smoke"):
        lines.append(f"- Stale reads after a write: {fig['stale_reads']}.")
    if fig["statements_per_request"] is not None:
        lines.append(f"- Statements per request (pg_stat_statements, delta over the run / requests): "
                     f"**{fig['statements_per_request']:.2f}** ({fig['statements']} statements).")
    if fig["cache_hit_ratio"] is None:
        lines.append("- Cache hit ratio: no cache (no response carried `x-cache`).")
    else:
        lines.append(f"- Cache hit ratio (`x-cache: hit` among responses with the header): {100 * fig['cache_hit_ratio']:.1f}%.")
    if fig["followed_scenario"]:
        lines.append(f"- The figures above are those of the k6 scenario `{fig['followed_scenario']}` alone.")
    if fig["sse"] is not None:
        sse = fig["sse"]
        subscribers = fig["rate_asked"] or 0
        server_peak = fig["resources"].get("server", {}).get("peak_memory")
        per_thousand = (f"; server peak RSS {_mib(server_peak)} with {subscribers} subscribers open, "
                        f"{_mib(server_peak * 1000 / subscribers)} per 1,000" if server_peak and subscribers else "")
        lines.append(f"- SSE delivery, commit to receipt: p50 {_ms(sse['delivery']['med'])}, "
                     f"**p99 {_ms(sse['delivery']['p(99)'])}**, max {_ms(sse['delivery']['max'])}; "
                     f"first byte p99 {_ms(sse['first_byte']['p(99)'])}{per_thousand}.")
    if fig["holders"] is not None:
        h = fig["holders"]
        lines.append(f"- Held connections (scenario `holders`, one keep-alive connection per VU, a request every "
                     f"5 s on each): {h['requests']} requests, {h['failed']} failed, {h['reconnects']} had to "
                     f"reconnect (closed or reset).")
        lines.append(f"- Server sockets open at peak (connections, listener and pool): {fig['server_sockets_peak']}.")
    lines += ["", "## CPU and memory", "",
              f"Sampled from /proc every second; figures over the {fig['resources_wall_seconds']:.1f} s in "
              "which requests completed (k6 starting its VUs and writing its summary left out). "
              "Cores = CPU seconds / wall seconds. Memory is the peak RSS; for Postgres the peak of the "
              "sum of PSS over all its processes (their RSS would count shared buffers once per backend). "
              "`other processes` is the machine's busy time outside these three: other work competing "
              "for the same cores, which makes the figures worse than on an idle machine.", "",
              "| process | CPU seconds | cores | peak memory |", "|---|---|---|---|"]
    for name, r in fig["resources"].items():
        memory = _mib(r["peak_memory"]) if r["peak_memory"] is not None else "n/a"
        lines.append(f"| {name} | {r['cpu_seconds']:.1f} | {r['cores']:.2f} | {memory} |")
    if fig["per_query"]:
        lines += ["", "## Per query", "", "| query | requests | failed | p50 | p99 | max |", "|---|---|---|---|---|---|"]
        for name, q in sorted(fig["per_query"].items()):
            lines.append(f"| {name} | {q['requests']} | {q['failed']} | {_ms(q['p50'])} | {_ms(q['p99'])} | {_ms(q['max'])} |")
    if analysis_lines:
        lines += [""] + analysis_lines
    if comparison_lines:
        lines += [""] + comparison_lines
    lines += ["", "## Data", "", ids_note, "",
              "![throughput, latency, CPU and memory over time](chart.svg)", "",
              "Files: `summary.json` (k6 end-of-test summary), `samples.csv.gz` (every k6 sample), "
              "`report.json` (these figures), `resources.json` (the /proc samples), `chart.svg`, "
              "`k6.log`, `server.log`, `postgres.log`.", ""]
    return "\n".join(lines)


def write(directory, fig, text):
    Path(directory, "report.json").write_text(json.dumps(fig, indent=2) + "\n")
    Path(directory, "report.md").write_text(text)
