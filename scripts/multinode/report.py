"""The multi-node proof's results: `report.json` (the figures) and
`report.md` (the same for a person), from k6's summary and what the
harness measured itself."""
import json
from pathlib import Path

from loadtest import report as loadreport

from . import cluster, figures, fleet


def _metric(summary, name):
    return summary.get("metrics", {}).get(name, {})


def figures_of_k6(summary):
    duration = _metric(summary, "http_req_duration")
    other = _metric(summary, "read_other_server")
    return {
        "requests": _metric(summary, "http_reqs").get("count", 0),
        "rate": round(_metric(summary, "http_reqs").get("rate", 0.0), 1),
        "latency_ms": {k: duration.get(k) for k in ("med", "p(95)", "p(99)", "max")},
        "failures": _metric(summary, "failures").get("passes", 0),
        "http_req_failed": _metric(summary, "http_req_failed").get("passes", 0),
        "checks_failed": _metric(summary, "checks").get("fails", 0),
        "dropped_iterations": _metric(summary, "dropped_iterations").get("count", 0),
        "writer_requests": _metric(summary, "http_reqs{scenario:writer}").get("count", 0),
        "reads_after_write": other.get("passes", 0) + other.get("fails", 0),
        "reads_after_write_other_server": other.get("passes", 0),
        "stale_reads_by_write": {name: _metric(summary, f"stale_reads{{query:{name}}}").get("count", 0)
                                 for name in ("createNote", "createNote (list)", "updateNote", "deleteNote")},
        "stale_reads_by_server": {served: _metric(summary, f"stale_reads{{served:{served}}}").get("count", 0)
                                  for served in ("same", "other")},
    }


def collect(measured, summary, run):
    """Everything report.json holds."""
    k6 = figures_of_k6(summary)
    subscribers = measured["subscribers"]
    streams = {s.name: s.streams for s in subscribers}
    sse = figures.account_events(measured["writer"].writes, streams)
    ends = [stream["end"] for s in subscribers for stream in s.streams]
    sse["streams"] = len(ends)
    sse["streams_completed"] = sum(1 for end in ends if end == "complete")
    sse["streams_failed"] = [end for end in ends if end not in ("complete", "stopped")]
    sse["error_events"] = sum(stream["error_events"] for s in subscribers for stream in s.streams)
    sse["connects_refused"] = sum(s.refused for s in subscribers)
    probe_errors = [e for p in (measured["writer"], measured["invalidation"], *subscribers) for e in p.errors]
    failed = {"k6_failures": k6["failures"], "k6_http_req_failed": k6["http_req_failed"],
              "k6_checks_failed": k6["checks_failed"], "sse_streams_failed": len(sse["streams_failed"]),
              "sse_error_events": sse["error_events"], "probe_errors": len(probe_errors)}
    failed["total"] = sum(failed.values())
    invalidation = measured["invalidation"]
    return {
        "command": run["command"], "started_at": run["started_at"], "commit": run["commit"],
        "machine": loadreport.machine(), "load_average": {"before": run["load_before"], "after": run["load_after"]},
        "rate_asked": run["rate"], "write_rate_asked": run["write_rate"], "duration": run["duration"],
        "data_set": cluster.DATA_SET, "data": measured["description"], "authors": measured["authors"],
        "servers": 3, "shutdown_delay_ms": fleet.SHUTDOWN_DELAY_MS, "check_interval_ms": fleet.CHECK_INTERVAL_MS,
        "k6": k6, "k6_exit": measured["k6_exit"],
        "stale_reads": _metric(summary, "stale_reads").get("count", 0),
        "failed_requests": failed, "probe_errors": probe_errors[:50],
        "haproxy_servers": measured["haproxy"],
        "routing": {name: {"replica": int(c[fleet.ROUTING_COUNTERS[0]]), "primary": int(c[fleet.ROUTING_COUNTERS[1]])}
                    for name, c in measured["routing"].items()},
        "invalidation": {"rounds": len(invalidation.lags_ms) + len(invalidation.never_seen),
                         "lag_ms": figures.distribution(invalidation.lags_ms),
                         "never_seen": len(invalidation.never_seen), "never_seen_rounds": invalidation.never_seen,
                         "skipped_for_restart": invalidation.skipped, "fresh_answer_cache": invalidation.fresh_cache,
                         "bound_s": invalidation.bound, "cache_disabled": invalidation.cache_disabled},
        "sse": sse,
        "replica_lag": figures.replica_lag(measured["lag"].samples),
        "restarts": measured["restarts"],
        "resources": measured["resources"], "resources_wall_seconds": measured["wall"],
    }


def _num(value, unit="", digits=1):
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def _dist(d, unit, digits=1):
    return (f"p50 {_num(d['p50'], unit, digits)}, **p99 {_num(d['p99'], unit, digits)}**, "
            f"max {_num(d['max'], unit, digits)} ({d['count']} samples)")


def markdown(fig):
    verdict = "all properties HELD" if not fig["failed_properties"] else "FAILED: " + "; ".join(fig["failed_properties"])
    k6, sse, inv, lag, failed = fig["k6"], fig["sse"], fig["invalidation"], fig["replica_lag"], fig["failed_requests"]
    load = fig["load_average"]
    lines = [
        f"# Multi-node proof: {verdict}", "",
        f"- Command: `{fig['command']}`; started {fig['started_at']}, commit {fig['commit']}.",
        f"- Machine: {fig['machine']}; load average (1, 5, 15 min) before "
        f"{', '.join(f'{x:.2f}' for x in load['before'])}, after {', '.join(f'{x:.2f}' for x in load['after'])}. "
        "Everything below shares these cores, with whatever else ran.",
        f"- Data: {fig['data_set']['users']:,} users, {fig['data_set']['notes']:,} notes, {fig['data_set']['tags']} "
        "tags (`notegraph seed`), primary + streaming replica, 3 servers behind haproxy.",
        f"- Load through haproxy: {k6['requests']:,} requests ({k6['rate']}/s; mix asked {fig['rate_asked']}/s, "
        f"writes {fig['write_rate_asked']}/s), latency p50 {_num(k6['latency_ms']['med'], ' ms', 2)}, "
        f"p99 {_num(k6['latency_ms']['p(99)'], ' ms', 2)}, max {_num(k6['latency_ms']['max'], ' ms', 2)}; "
        f"dropped iterations {k6['dropped_iterations']}.",
        f"- **Stale reads: {fig['stale_reads']}** of {k6['reads_after_write']:,} reads after a write through "
        f"haproxy; {k6['reads_after_write_other_server']:,} of them answered by another server than the write's"
        + (" (stale after " + ", ".join(f"{k} {v}" for k, v in k6["stale_reads_by_write"].items() if v)
           + "; answered by the write's server " + str(k6["stale_reads_by_server"]["same"]) + ", by another "
           + str(k6["stale_reads_by_server"]["other"]) + ")"
           if fig["stale_reads"] else "") + ".",
        f"- **Failed requests: {failed['total']}** ({', '.join(f'{k} {v}' for k, v in failed.items() if k != 'total')})"
        + ("; k6 counts each stale read as a failed request and a failed check too, and a null note read back "
           "after a create also fails the request's own check" if fig["stale_reads"] else "") + ".",
        ("- Cross-replica cache invalidation: not measured, the response cache is disabled "
         "(NOTEGRAPH_CACHE_ENABLED=false)." if inv["cache_disabled"] else
         f"- **Cross-replica cache invalidation lag**: {_dist(inv['lag_ms'], ' ms')}; never seen within "
        f"{inv['bound_s']:.0f} s: **{inv['never_seen']}**; rounds skipped while a server restarted: "
        f"{inv['skipped_for_restart']}."),
        f"- **SSE across replicas**: {sse['writes']} writes × {len(sse['subscribers'])} subscribers = "
        f"{sse['expected']} events expected, **{sse['delivered']} delivered** ({sse['delivered_cross_server']} for "
        f"writes made through another server), **lost {sse['lost']}**, gap while reconnecting {sse['gap']}, "
        f"duplicates {sse['duplicates']}; delivery {_dist(sse['latency_ms'], ' ms')}; {sse['streams']} streams "
        f"({sse['streams_completed']} completed by a stopping server), {len(sse['streams_failed'])} failed.",
        f"- **Replica lag** (pg_stat_replication every second): replay_lag {_dist(lag['replay_lag_ms'], ' ms', 2)}; "
        f"LSN gap {_dist(lag['lsn_gap_bytes'], ' B', 0)}; {lag['idle']} samples idle (replay_lag NULL, counted as "
        f"0), {lag['disconnected']} with no standby connected.",
        "- Rolling restart: " + "; ".join(
            f"{r['server']} exit {r.get('exit_code')} after {r.get('exited_after_s')} s, ready "
            f"{r.get('ready_after_s')} s after SIGTERM" + (f" (error: {r['error']})" if "error" in r else "")
            for r in fig["restarts"]) + ".",
        "- Queries read from the replica / kept on the primary (servers' /metrics, summed over restarts): "
        + "; ".join(f"{name} {r['replica']:,} / {r['primary']:,}" for name, r in fig["routing"].items()) + ".",
        "", "## Requests per server (haproxy)", "",
        "| server | requests | 2xx | 5xx | connect errors | response errors | retries | redispatches | checks down |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in fig["haproxy_servers"].items():
        lines.append(f"| {name} | {s['stot']:,} | {s['hrsp_2xx']:,} | {s['hrsp_5xx']} | {s['econ']} | {s['eresp']} "
                     f"| {s['wretr']} | {s['wredis']} | {s['chkdown']} |")
    lines += ["", "## SSE per subscriber", "",
              "| subscriber | streams | delivered | of which cross-server | gap | lost | duplicates |",
              "|---|---|---|---|---|---|---|"]
    for name, s in sse["subscribers"].items():
        lines.append(f"| {name} | {s['streams']} | {s['delivered']} | {s['delivered_cross_server']} | {s['gap']} "
                     f"| {s['lost']} | {s['duplicates']} |")
    lines += ["", "## CPU and memory", "",
              f"Sampled from /proc every second over the {fig['resources_wall_seconds']:.1f} s k6 ran; cores = CPU "
              "seconds / wall seconds; servers include the processes the restart replaced.", "",
              "| process | CPU seconds | cores | peak memory |", "|---|---|---|---|"]
    for name, r in fig["resources"].items():
        memory = f"{r['peak_memory'] / 2**20:.0f} MiB" if r["peak_memory"] is not None else "n/a"
        lines.append(f"| {name} | {r['cpu_seconds']:.1f} | {r['cores']:.2f} | {memory} |")
    if fig["probe_errors"]:
        lines += ["", "## Probe errors (first 50)", ""] + [f"- {e}" for e in fig["probe_errors"]]
    lines += ["", "Files: `report.json`, `summary.json` (k6), `k6.log`, `server-N.log` (JSON), `haproxy.cfg`, "
              "`haproxy.log`, `primary.log`, `data.json`.", ""]
    return "\n".join(lines)


def write(directory, fig, text):
    Path(directory, "report.json").write_text(json.dumps(fig, indent=2, default=str) + "\n")
    Path(directory, "report.md").write_text(text)
