"""Per-second series from k6's CSV output (`--out csv=samples.csv.gz`):
requests completed, failures, dropped iterations, requests the server shed
(status 503) and latency percentiles of each second, for the chart and for
the analyses of `ramp`, `spike`, `overload` and `soak`.

Latency percentiles are over the requests the server admitted: a 503 is
answered at once, and is counted in `shed` (and, outside `overload`, as a
failure too), not in the latency it would pull down.
"""
import csv
import gzip
import math


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def read(path, scenario=None):
    """Seconds in order, each a dict: t (unix second), requests, failures,
    dropped, shed, p50, p95, p99, max (ms of admitted requests; None
    without any).

    With `scenario`, only samples tagged with that k6 scenario count (the
    `connections` run has a second scenario holding connections open).
    """
    seconds = {}

    def second(t):
        entry = seconds.get(t)
        if entry is None:
            entry = seconds[t] = {"t": t, "requests": 0, "failures": 0, "dropped": 0, "shed": 0, "durations": []}
        return entry

    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        name_at, time_at, value_at = header.index("metric_name"), header.index("timestamp"), header.index("metric_value")
        scenario_at = header.index("scenario") if "scenario" in header else None
        status_at = header.index("status") if "status" in header else None
        for row in reader:
            metric = row[name_at]
            if metric not in ("http_req_duration", "failures", "dropped_iterations"):
                continue
            if scenario and scenario_at is not None and row[scenario_at] != scenario:
                continue
            entry = second(int(float(row[time_at])))
            value = float(row[value_at])
            if metric == "http_req_duration":
                entry["requests"] += 1
                if status_at is not None and row[status_at] == "503":
                    entry["shed"] += 1
                else:
                    entry["durations"].append(value)
            elif metric == "failures":
                entry["failures"] += int(value)
            else:
                entry["dropped"] += int(value)
    out = []
    for t in sorted(seconds):
        entry = seconds[t]
        durations = sorted(entry.pop("durations"))
        entry["p50"] = percentile(durations, 50)
        entry["p95"] = percentile(durations, 95)
        entry["p99"] = percentile(durations, 99)
        entry["max"] = durations[-1] if durations else None
        entry["_durations"] = durations
        out.append(entry)
    return out


def window(seconds, start, end):
    """Aggregate of the seconds with start <= t < end: rate, failure share,
    dropped, shed share, p50 and p99 of the admitted requests."""
    chosen = [s for s in seconds if start <= s["t"] < end]
    durations = sorted(d for s in chosen for d in s["_durations"])
    requests = sum(s["requests"] for s in chosen)
    span = max(1, len(chosen))
    return {
        "rate": requests / span,
        "requests": requests,
        "failure_share": (sum(s["failures"] for s in chosen) / requests) if requests else 0.0,
        "dropped": sum(s["dropped"] for s in chosen),
        "shed_share": (sum(s.get("shed", 0) for s in chosen) / requests) if requests else 0.0,
        "p50": percentile(durations, 50),
        "p99": percentile(durations, 99),
    }
