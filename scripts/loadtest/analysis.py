"""What `ramp`, `spike` and `soak` runs are for, computed from the per-second
series: the highest rate that held and the CPU fit below it, the recovery
time after a spike, memory growth and latency drift over a long run.

Each returns Markdown lines for the report and a dict for report.json.
"""
import statistics
from . import timeline

#: The published thresholds: a window holds when it meets both.
P99_LIMIT_MS = 200.0
FAILURE_LIMIT = 0.01
#: Seconds per window when judging whether a rate held and for the CPU fit.
WINDOW = 3


def _windows(seconds):
    if not seconds:
        return []
    t0, t_end = seconds[0]["t"], seconds[-1]["t"]
    # The last, partial second belongs to the graceful stop.
    return [(start, timeline.window(seconds, start, start + WINDOW)) for start in range(t0, t_end - WINDOW + 1, WINDOW)]


def holds(w):
    """p99 and failures within the thresholds, and the arrival rate met: under 1% of iterations dropped."""
    asked = w["requests"] + w["dropped"]
    return (w["requests"] > 0 and w["p99"] is not None and w["p99"] < P99_LIMIT_MS
            and w["failure_share"] < FAILURE_LIMIT and w["dropped"] < FAILURE_LIMIT * asked)


def linear_fit(points):
    """Least squares y = a + b x; returns (a, b, r_squared) or None for fewer than 3 points."""
    n = len(points)
    if n < 3:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    syy = sum((y - mean_y) ** 2 for _, y in points)
    if sxx == 0:
        return None
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    r_squared = (sxy * sxy) / (sxx * syy) if syy else 1.0
    return intercept, slope, r_squared


def _mean_cores(resources, start, end, name):
    chosen = [r["cores"][name] for r in resources if start < r["t"] <= end]
    return sum(chosen) / len(chosen) if chosen else None


def ramp(seconds, resources):
    """Highest rate that held (in windows of WINDOW seconds, before the
    first two in a row that broke) and CPU against achieved rate below it."""
    windows = _windows(seconds)
    held, broke_at = [], None
    for index, (start, w) in enumerate(windows):
        if holds(w):
            held.append((start, w))
            continue
        # Windows before the first held one are k6 starting up at a low rate,
        # and one bad window alone is a stall of a shared machine: the rate
        # broke where two windows in a row fail.
        following = windows[index + 1][1] if index + 1 < len(windows) else None
        if held and (following is None or not holds(following)):
            broke_at = (start, w)
            break
    lines = ["## Highest rate that held", ""]
    result = {}
    if not held:
        lines.append(f"No {WINDOW}-second window held the thresholds (p99 < 200 ms, failures < 1%, under 1% of "
                     "iterations dropped).")
        return lines, {"highest_rate_held": None}
    best_start, best = max(held, key=lambda item: item[1]["rate"])
    result["highest_rate_held"] = round(best["rate"], 1)
    t0 = seconds[0]["t"]
    lines.append(f"- Highest rate that held: **{best['rate']:.0f} requests/s** (the {WINDOW} s window from "
                 f"{best_start - t0} s: p99 {best['p99']:.1f} ms, failures {100 * best['failure_share']:.2f}%, "
                 f"{best['dropped']} dropped iterations).")
    if broke_at:
        start, w = broke_at
        p99 = f"{w['p99']:.1f} ms" if w["p99"] is not None else "n/a"
        lines.append(f"- First window that broke: from {start - t0} s, {w['rate']:.0f} requests/s completed, "
                     f"p99 {p99}, failures {100 * w['failure_share']:.2f}%, {w['dropped']} dropped iterations.")
        result["broke_at_rate"] = round(w["rate"], 1)
    else:
        lines.append("- No window broke: the ramp's top rate held; raise the rate to find the knee.")
    if resources:
        names = list(resources[0]["memory"])
        lines += ["", f"CPU against achieved rate, per {WINDOW} s window below the knee (least squares, cores = a + b × rate):", "",
                  "| process | a (cores) | b (cores per 1000 requests/s) | R² |", "|---|---|---|---|"]
        fits = {}
        for name in names:
            points = []
            for start, w in held:
                cores = _mean_cores(resources, start, start + WINDOW, name)
                if cores is not None:
                    points.append((w["rate"], cores))
            fit = linear_fit(points)
            if fit:
                a, b, r2 = fit
                fits[name] = {"intercept": a, "per_1000": b * 1000, "r_squared": r2, "windows": len(points)}
                lines.append(f"| {name} | {a:.3f} | {b * 1000:.3f} | {r2:.3f} |")
        result["cpu_fit"] = fits
        if "server" in fits:
            lines += ["", f"Server CPU fit over {fits['server']['windows']} windows: R² = "
                          f"{fits['server']['r_squared']:.3f}."]
    return lines, result


def recovered(seconds, after, before):
    """The limits a run must come back to (p50 within 2 times `before`'s,
    p99 within max(3 times, +10 ms), since one slow request in 500 moves a
    p99) and the first second at or after `after` from which a 5-second
    window is back within them with no failure, nothing dropped and nothing
    shed: (second or None, p50 limit, p99 limit)."""
    p50_limit = 2 * (before["p50"] or 0.0)
    p99_limit = max(3 * (before["p99"] or 0.0), (before["p99"] or 0.0) + 10)
    for s in seconds:
        if s["t"] < after:
            continue
        w = timeline.window(seconds, s["t"], s["t"] + 5)
        if (w["requests"] and w["p50"] is not None and w["p50"] <= p50_limit and w["p99"] <= p99_limit
                and w["failure_share"] == 0 and w["dropped"] == 0 and w["shed_share"] == 0):
            return s["t"], p50_limit, p99_limit
    return None, p50_limit, p99_limit


#: k6/scenarios/spike.js: seconds at the base rate before the spike, and
#: the seconds each change of rate takes.
SPIKE_LEAD, SPIKE_STEP = 20, 1


def spike(seconds, peak_seconds):
    """Latency before, during and after the spike (from the schedule of
    k6/scenarios/spike.js: `peak_seconds` at the top), and how long after
    its end latency took to come back."""
    lines = ["## Spike", ""]
    if not seconds:
        return lines + ["No requests were recorded."], {}
    t0 = seconds[0]["t"]
    spike_start = t0 + SPIKE_LEAD
    spike_end = spike_start + SPIKE_STEP + peak_seconds + SPIKE_STEP
    before = timeline.window(seconds, t0 + 5, spike_start)
    peak = timeline.window(seconds, spike_start, spike_end)
    recovered_at, p50_limit, p99_limit = recovered(seconds, spike_end, before)
    fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"  # noqa: E731
    lines += [
        "| phase | seconds | achieved requests/s | p50 ms | p99 ms | failures | dropped |",
        "|---|---|---|---|---|---|---|",
        f"| before | {spike_start - t0 - 5} | {before['rate']:.0f} | {fmt(before['p50'])} | {fmt(before['p99'])} | "
        f"{100 * before['failure_share']:.2f}% | {before['dropped']} |",
        f"| spike | {spike_end - spike_start} | {peak['rate']:.0f} | {fmt(peak['p50'])} | {fmt(peak['p99'])} | "
        f"{100 * peak['failure_share']:.2f}% | {peak['dropped']} |",
    ]
    result = {"before_p99": before["p99"], "spike_p99": peak["p99"], "spike_rate": round(peak["rate"], 1)}
    if recovered_at is not None:
        rest = timeline.window(seconds, recovered_at, seconds[-1]["t"])
        lines.append(f"| after recovery | {seconds[-1]['t'] - recovered_at} | {rest['rate']:.0f} | {fmt(rest['p50'])} | "
                     f"{fmt(rest['p99'])} | {100 * rest['failure_share']:.2f}% | {rest['dropped']} |")
        recovery = recovered_at - spike_end
        lines += ["", f"Recovery time: **{recovery} s** after the spike ended, where the first 5 s window "
                      f"starts that is back to p50 ≤ {p50_limit:.1f} ms (2 × the baseline's) and p99 ≤ {p99_limit:.1f} ms "
                      f"(max(3 × the baseline's, + 10 ms)), with no failure, nothing dropped and nothing shed."]
        result["recovery_seconds"] = recovery
    else:
        lines += ["", f"Not recovered by the end of the run (no 5 s window after the spike had p50 ≤ "
                      f"{p50_limit:.1f} ms and p99 ≤ {p99_limit:.1f} ms)."]
        result["recovery_seconds"] = None
    return lines, result


#: k6/scenarios/overload.js: seconds at the base rate before the ramp, the
#: seconds the top rate is held unless HOLD says otherwise, and the step
#: back down.
OVERLOAD_LEAD, OVERLOAD_HOLD, OVERLOAD_STEP = 20, 10, 1


def overload(seconds, ramp_seconds, hold_seconds=OVERLOAD_HOLD, resources=()):
    """Past the breaking point with shedding on (k6/scenarios/overload.js):
    in 3 s windows, the rate asked for against what was admitted and shed
    and the admitted requests' latency; where shedding started; whether
    admitted requests kept p99 under 200 ms throughout; the hold at the top
    rate on its own (answered rate and admitted p99, issue 30's check past
    the knee, and the concurrency limit's range from `resources`' scraped
    gauges); and how long after the load dropped the server stopped
    shedding and latency came back."""
    lines = ["## Overload", ""]
    if not seconds:
        return lines + ["No requests were recorded."], {}
    t0 = seconds[0]["t"]
    ramp_start = t0 + OVERLOAD_LEAD
    hold_start = ramp_start + ramp_seconds
    overload_end = hold_start + hold_seconds + OVERLOAD_STEP
    fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"  # noqa: E731
    lines += ["| from s | answered/s | admitted/s | shed | admitted p50 ms | admitted p99 ms | failures | dropped |",
              "|---|---|---|---|---|---|---|---|"]
    worst_p99, first_shed = 0.0, None
    for start in range(t0, seconds[-1]["t"] + 1, WINDOW):
        w = timeline.window(seconds, start, start + WINDOW)
        if not w["requests"]:
            continue
        admitted = w["rate"] * (1 - w["shed_share"])
        if w["shed_share"] > 0 and first_shed is None:
            first_shed = (start, w)
        if w["p99"] is not None:
            worst_p99 = max(worst_p99, w["p99"])
        lines.append(f"| {start - t0} | {w['rate']:.0f} | {admitted:.0f} | {100 * w['shed_share']:.1f}% | "
                     f"{fmt(w['p50'])} | {fmt(w['p99'])} | {100 * w['failure_share']:.2f}% | {w['dropped']} |")
    during = timeline.window(seconds, ramp_start, overload_end)
    before = timeline.window(seconds, t0 + 5, ramp_start)
    result = {"worst_admitted_p99": worst_p99, "admitted_p99": during["p99"],
              "shed_share": round(during["shed_share"], 4), "failure_share": during["failure_share"]}
    lines.append("")
    if first_shed:
        start, w = first_shed
        result["shedding_from_rate"] = round(w["rate"])
        lines.append(f"Shedding started in the window from {start - t0} s, at {w['rate']:.0f} answered requests/s.")
    else:
        lines.append("Nothing was shed: the server kept up, or the cap is too high to be reached; lower "
                     "NOTEGRAPH_MAX_CONCURRENT_REQUESTS or raise the rate.")
    lines.append(f"From the ramp's start to the drop: {100 * during['shed_share']:.1f}% shed, admitted p99 "
                 f"{fmt(during['p99'])} ms (worst 3 s window {worst_p99:.1f} ms), failures "
                 f"{100 * during['failure_share']:.2f}%.")
    hold = timeline.window(seconds, hold_start, hold_start + hold_seconds)
    admitted = hold["rate"] * (1 - hold["shed_share"])
    limits = [r["gauges"]["notegraph_concurrency_limit"] for r in resources
              if hold_start <= r["t"] < hold_start + hold_seconds and "notegraph_concurrency_limit" in r.get("gauges", {})]
    result["hold"] = {"seconds": hold_seconds, "answered_rate": round(admitted, 1), "offered_rate": round(hold["rate"], 1),
                      "shed_share": round(hold["shed_share"], 4), "admitted_p99": hold["p99"],
                      "admitted_p50": hold["p50"], "failure_share": hold["failure_share"], "dropped": hold["dropped"],
                      "limit_range": [min(limits), max(limits)] if limits else None}
    lines.append(f"At the top rate ({hold_seconds} s held): **{admitted:.0f} answered/s** of {hold['rate']:.0f} "
                 f"answered or shed per second ({100 * hold['shed_share']:.1f}% shed), admitted p50 "
                 f"{fmt(hold['p50'])} ms, **p99 {fmt(hold['p99'])} ms**, failures {100 * hold['failure_share']:.2f}% "
                 f"(a 503 without `Retry-After` and SERVICE_UNAVAILABLE is one), {hold['dropped']} dropped"
                 + (f"; the concurrency limit between {min(limits):.0f} and {max(limits):.0f}" if limits else "") + ".")
    # Recovered: the spike's rule, against the first 20 s.
    recovered_at, p50_limit, p99_limit = recovered(seconds, overload_end, before)
    if recovered_at is not None:
        result["recovery_seconds"] = recovered_at - overload_end
        lines.append(f"Recovery: **{recovered_at - overload_end} s** after the load dropped, where the first 5 s "
                     f"window starts with nothing shed, no failure, p50 ≤ {p50_limit:.1f} ms and p99 ≤ "
                     f"{p99_limit:.1f} ms (the spike's rule against the first 20 s).")
    else:
        result["recovery_seconds"] = None
        lines.append("Not recovered by the end of the run.")
    return lines, result


def memory_beside_caches(after_warm_up, result):
    """The server's memory after warm-up and at the end, beside what its
    threads, connections and bounded caches held then: growth that the
    caches filling (or more connections) accounts for is not a leak."""
    first, last = after_warm_up[0], after_warm_up[-1]
    gauges_first, gauges_last = first.get("gauges") or {}, last.get("gauges") or {}
    mib = lambda v: f"{v / 2**20:.1f} MiB"  # noqa: E731
    rows = [("server RSS", first["memory"]["server"], last["memory"]["server"], mib),
            ("threads", first.get("threads"), last.get("threads"), str),
            ("sockets", first["sockets"], last["sockets"], str)]
    for name, label, show in (("notegraph_response_cache_bytes", "response cache, bytes counted", mib),
                              ("notegraph_response_cache_entries", "response cache, entries", lambda v: f"{v:.0f}"),
                              ("notegraph_parsed_documents_bytes", "parsed documents, bytes counted", mib),
                              ("notegraph_parsed_documents_entries", "parsed documents, entries",
                               lambda v: f"{v:.0f}")):
        rows.append((label, gauges_first.get(name), gauges_last.get(name), show))
    lines = ["", "What the server held after warm-up and at the end (cache gauges scraped from `/metrics` every 10 s):",
             "", "| | after warm-up | at the end | change |", "|---|---|---|---|"]
    held = {}
    for label, start, end, show in rows:
        if start is None or end is None:
            lines.append(f"| {label} | n/a | n/a | |")
            continue
        change = show(end - start) if show is not str else f"{end - start:+d}"
        lines.append(f"| {label} | {show(start)} | {show(end)} | {change} |")
        held[label] = {"after_warm_up": start, "end": end}
    result["held"] = held
    rss = held.get("server RSS")
    caches = [held.get("response cache, bytes counted"), held.get("parsed documents, bytes counted")]
    if rss and all(caches):
        grew = rss["end"] - rss["after_warm_up"]
        filled = sum(c["end"] - c["after_warm_up"] for c in caches)
        lines += ["", f"RSS changed by {mib(grew)} after warm-up; the two caches' counted bytes by {mib(filled)}. "
                      "Counted bytes are the caches' own weights (an estimate for parsed documents), not "
                      "allocator figures."]
    return lines


def soak(seconds, resources):
    """Server memory after warm-up against the end, and p99 of the first and last sixth."""
    lines = ["## Soak", ""]
    if not seconds or not resources:
        return lines + ["Not enough samples."], {}
    t0, t_end = seconds[0]["t"], seconds[-1]["t"]
    span = t_end - t0
    # An hour's run warms up for 5 minutes and compares its first and last 10:
    # the same proportions for shorter runs.
    warm_up, part = span / 12, span / 6
    # Up to the last second of load: k6 has exited by the runner's last sample.
    after_warm_up = [r for r in resources if t0 + warm_up <= r["t"] <= t_end + 1]
    lines.append(f"Warm-up: the first {warm_up:.0f} s (1/12 of the run); first and last parts: {part:.0f} s each (1/6).")
    lines += ["", "| process | memory after warm-up | peak after | at the end | growth after warm-up |", "|---|---|---|---|---|"]
    result = {}
    for name in resources[0]["memory"]:
        if not after_warm_up:
            break
        start = after_warm_up[0]["memory"][name]
        peak = max(r["memory"][name] for r in after_warm_up)
        end = after_warm_up[-1]["memory"][name]
        growth = (peak - start) / start if start else 0.0
        result[name] = {"after_warm_up": start, "peak": peak, "end": end, "growth": growth}
        lines.append(f"| {name} | {start / 2**20:.1f} MiB | {peak / 2**20:.1f} MiB | {end / 2**20:.1f} MiB | "
                     f"{100 * growth:+.1f}% |")
    if after_warm_up:
        # The peak above catches any transient (the first TTL expiries land
        # right at 5 minutes in an hour's run); the level is what stays.
        first_part = [r["memory"]["server"] for r in after_warm_up if r["t"] < t0 + 2 * warm_up]
        last_part = [r["memory"]["server"] for r in after_warm_up if r["t"] >= t_end - warm_up]
        if first_part and last_part:
            start_level, end_level = statistics.median(first_part), statistics.median(last_part)
            level = (end_level - start_level) / start_level if start_level else 0.0
            result["server_level_growth"] = level
            lines += ["", f"Server memory by level: median {start_level / 2**20:.1f} MiB over the {warm_up:.0f} s after "
                          f"warm-up, {end_level / 2**20:.1f} MiB over the last {warm_up:.0f} s: **{100 * level:+.1f}%**."]
        sockets = (after_warm_up[0]["sockets"], max(r["sockets"] for r in after_warm_up))
        result["server_sockets"] = {"after_warm_up": sockets[0], "peak": sockets[1]}
        lines += ["", f"Server sockets: {sockets[0]} after warm-up, {sockets[1]} at peak. Every k6 VU holds a "
                      "connection, and k6 adds VUs when responses slow down, so the server's memory follows its "
                      "connections: compare growth with them before calling it a leak."]
        lines += memory_beside_caches(after_warm_up, result)
    lines += ["", "Postgres's figure grows while its backends first touch the shared buffers (1 GB with the embedded launcher): "
                  "pages of the data set being cached, not a leak."]
    first = timeline.window(seconds, t0, t0 + part)
    last = timeline.window(seconds, t_end - part, t_end)
    fmt = lambda v: f"{v:.1f} ms" if v is not None else "n/a"  # noqa: E731
    lines += ["", "| part | achieved requests/s | p50 | p99 |", "|---|---|---|---|",
              f"| first | {first['rate']:.0f} | {fmt(first['p50'])} | {fmt(first['p99'])} |",
              f"| last | {last['rate']:.0f} | {fmt(last['p50'])} | {fmt(last['p99'])} |"]
    result["first_p99"], result["last_p99"] = first["p99"], last["p99"]
    return lines, result


def beside(summary, phase_seconds):
    """`mixcreate`: the mix's p99 beside the creates against alone (the
    k6 scenarios `beside` and `alone` of k6/scenarios/mixcreate.js), failed
    reads beside the creates, and the creates' own rate and latency. Holds
    when p99 beside is at most 1.5 times p99 alone and no read failed."""
    metric = lambda name: summary.get("metrics", {}).get(name, {})  # noqa: E731
    alone, near = metric("http_req_duration{scenario:alone}"), metric("http_req_duration{scenario:beside}")
    failed = metric("failures{scenario:beside}").get("passes", 0)
    failed_alone = metric("failures{scenario:alone}").get("passes", 0)
    creates = metric("http_reqs{scenario:creates}")
    created = metric("http_req_duration{scenario:creates}")
    create_failed = metric("failures{scenario:creates}").get("passes", 0)
    p99_alone, p99_beside = alone.get("p(99)"), near.get("p(99)")
    ratio = p99_beside / p99_alone if p99_alone and p99_beside is not None else None
    held = ratio is not None and ratio <= 1.5 and failed == 0
    fmt = lambda v: f"{v:.2f} ms" if v is not None else "n/a"  # noqa: E731
    lines = ["## Reads beside creates", "",
             "| phase | reads | failed reads | p50 | p99 |", "|---|---|---|---|---|",
             f"| mix alone | {metric('http_reqs{scenario:alone}').get('count', 0)} | {failed_alone} | "
             f"{fmt(alone.get('med'))} | {fmt(p99_alone)} |",
             f"| mix beside the creates | {metric('http_reqs{scenario:beside}').get('count', 0)} | {failed} | "
             f"{fmt(near.get('med'))} | {fmt(p99_beside)} |", "",
             f"Creates: {creates.get('count', 0)} ({creates.get('count', 0) / phase_seconds:.1f}/s over the "
             f"{phase_seconds:.0f} s beside the mix), {create_failed} failed, p50 {fmt(created.get('med'))}, p99 {fmt(created.get('p(99)'))}.", "",
             f"Read p99 beside the creates / alone: **{ratio:.2f}×**" if ratio is not None else "Read p99: n/a",
             "", f"Check (p99 beside ≤ 1.5 × alone, 0 failed reads beside the creates): "
                 f"**{'held' if held else 'not held'}**."]
    return lines, {"p99_alone": p99_alone, "p99_beside": p99_beside, "ratio": ratio, "failed_reads": failed,
                   "creates": creates.get("count", 0), "creates_failed": create_failed,
                   "create_p99": created.get("p(99)"), "held": held}
