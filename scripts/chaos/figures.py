"""The arithmetic of the fault scenarios, apart from anything running so
that it can be unit-tested: answers sorted by status and code, whether each
failure was a clear one, the slowest answer against the deadline, when full
service came back, the resources before, during and after, and the writes
acknowledged against what the database holds.

An *answer* is `(end, wall_ms, http, code)`: unix seconds when the client
had it, its wall time in ms (connecting included), the HTTP status (0 when
the client got none: a reset, a refused connection, its own timeout) and
the first error's `extensions.code` (`none` without errors). It started at
`end - wall_ms / 1000`.
"""
from loadtest.timeline import percentile

#: The codes a request may fail with while the database is frozen or down:
#: the server says it cannot answer now, or that time ran out.
CLEAR_CODES = ("SERVICE_UNAVAILABLE", "TIMEOUT")
#: The HTTP status each clear code may come with: 200 (a GraphQL error in
#: the body), or the status the server gives the code at the HTTP level.
CLEAR_STATUS = {"SERVICE_UNAVAILABLE": ("200", "503"), "TIMEOUT": ("200", "504")}
#: How far past NOTEGRAPH_HTTP_TIMEOUT_MS an answer may come and still count
#: as answered by the deadline: the response must still be written and
#: read, on a shared machine.
DEADLINE_SLACK_MS = 1000


def succeeded(answer):
    """HTTP 200 without errors."""
    return answer[2] == "200" and answer[3] == "none"


def clear_failure(answer):
    """A failure the client can act on: SERVICE_UNAVAILABLE or TIMEOUT, with a status that fits the code."""
    return answer[3] in CLEAR_CODES and answer[2] in CLEAR_STATUS[answer[3]]


def started(answer):
    return answer[0] - answer[1] / 1000


def by_outcome(answers):
    """{"<http> <code>": count}, most frequent first."""
    counts = {}
    for answer in answers:
        key = f"{answer[2]} {answer[3]}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def phases(answers, fault_start, fault_end):
    """Answers by when their request started: before the fault, during it, after it."""
    out = {"before": [], "during": [], "after": []}
    for answer in answers:
        t = started(answer)
        out["before" if t < fault_start else "during" if t < fault_end else "after"].append(answer)
    return out


def outcome_figures(answers, deadline_ms):
    """Counts, the outcomes, the unclear failures and the slowest answers against `deadline_ms`."""
    walls = sorted(a[1] for a in answers)
    unclear = [a for a in answers if not succeeded(a) and not clear_failure(a)]
    bound = deadline_ms + DEADLINE_SLACK_MS
    return {
        "answers": len(answers),
        "succeeded": sum(1 for a in answers if succeeded(a)),
        "clear_failures": sum(1 for a in answers if not succeeded(a) and clear_failure(a)),
        "unclear_failures": len(unclear),
        "unclear_outcomes": by_outcome(unclear),
        "outcomes": by_outcome(answers),
        "wall_ms": {"p50": percentile(walls, 50), "p99": percentile(walls, 99), "max": walls[-1] if walls else None},
        "deadline_ms": deadline_ms,
        "deadline_bound_ms": bound,
        "past_deadline": sum(1 for w in walls if w > bound),
        "slowest": sorted(answers, key=lambda a: -a[1])[:5],
    }


def recovery(answers, resumed, end=None):
    """When full service came back after the fault ended at `resumed`.

    Only requests that started at or after `resumed` count (one started
    during the fault is judged by its deadline, not here). `first_clean_second`:
    the first whole second k (requests started in [resumed + k, resumed + k + 1))
    from which every request started up to `end` succeeded, None when the last
    second still had a failure. `last_failure_s`: when the last failing
    request after `resumed` started, relative to `resumed` (0.0 when none
    failed): the finer figure, which the bound is checked on.
    """
    after = [a for a in answers if started(a) >= resumed and (end is None or started(a) < end)]
    failing = [started(a) - resumed for a in after if not succeeded(a)]
    last = max(failing) if failing else 0.0
    if not after:
        return {"requests": 0, "failed": 0, "last_failure_s": None, "first_clean_second": None}
    seconds = int(max(started(a) for a in after) - resumed) + 1
    clean = int(last) + 1 if failing else 0
    return {
        "requests": len(after),
        "failed": len(failing),
        "last_failure_s": round(last, 3),
        "first_clean_second": clean if clean < seconds else None,
    }


def resource_window(samples, start, end, key):
    """min and max of `key` over the samples (dicts with `t`) taken in [start, end); None each when none."""
    values = [s[key] for s in samples if start <= s["t"] < end and s.get(key) is not None]
    return {"min": min(values) if values else None, "max": max(values) if values else None, "samples": len(values)}


def leaks(resources, bounds):
    """What came back above its bound: `resources` {name: {"before": v, "after": v}},
    `bounds` {name: (absolute slack, relative slack)}; a leak is after > before * (1 + relative) + absolute."""
    out = []
    for name, (absolute, relative) in bounds.items():
        row = resources.get(name) or {}
        before, after = row.get("before"), row.get("after")
        if before is None or after is None:
            out.append(f"{name}: not measured (before {before}, after {after})")
        elif after > before * (1 + relative) + absolute:
            out.append(f"{name}: {after} after against {before} before (bound: +{relative:.0%} +{absolute})")
    return out


def writes_figures(writes, present_ids, present_titles, restarted, ready, deadline_ms=None):
    """The writer's account against what the database holds afterwards.

    `writes`: [{"title", "start", "end", "http", "code", "id" (None unless acknowledged)}].
    `present_ids`: the acknowledged ids found in `notes`; `present_titles`:
    the titles of failed writes found there (committed, but the answer was
    lost with the connection: allowed, and reported). `restarted`: when the
    restart was issued; `ready`: when Postgres accepted connections again;
    `deadline_ms`: NOTEGRAPH_HTTP_TIMEOUT_MS, which no write may outlast by
    more than DEADLINE_SLACK_MS.
    """
    acked = [w for w in writes if w["id"] is not None]
    failed = [w for w in writes if w["id"] is None]
    lost = [w["id"] for w in acked if w["id"] not in present_ids]
    answers = [(w["end"], (w["end"] - w["start"]) * 1000, w["http"], w["code"]) for w in failed]
    unclear = [a for a in answers if not clear_failure(a)]
    after = sorted(w["end"] for w in acked if w["end"] > restarted)
    return {
        "writes": len(writes),
        "acknowledged": len(acked),
        "lost": len(lost),
        "lost_ids": lost[:50],
        "failed": len(failed),
        "failed_outcomes": by_outcome(answers),
        "unclear_failures": len(unclear),
        "unclear_outcomes": by_outcome(unclear),
        "failed_but_committed": sum(1 for w in failed if w["title"] in present_titles),
        "first_ack_after_restart_s": round(after[0] - restarted, 3) if after else None,
        "first_ack_after_ready_s": round(after[0] - ready, 3) if after and ready is not None else None,
        "slowest_failure_ms": max((a[1] for a in answers), default=None),
        "slowest_ms": max(((w["end"] - w["start"]) * 1000 for w in writes), default=None),
        "past_deadline": 0 if deadline_ms is None else sum(
            1 for w in writes if (w["end"] - w["start"]) * 1000 > deadline_ms + DEADLINE_SLACK_MS),
    }


def answer_failures(outcome):
    """What failed of `outcome_figures`' account: unclear failures, answers past the deadline."""
    out = []
    if outcome["unclear_failures"]:
        out.append(f"{outcome['unclear_failures']} requests failed without a clear code "
                   f"({outcome['unclear_outcomes']})")
    if outcome["past_deadline"]:
        out.append(f"{outcome['past_deadline']} answers came later than the deadline "
                   f"({outcome['deadline_bound_ms']} ms; slowest {outcome['wall_ms']['max']:.0f} ms)")
    return out


def write_failures(w):
    """What failed of `writes_figures`' account: lost acknowledgements, unclear failures, writes past the deadline."""
    out = []
    if w["lost"]:
        out.append(f"{w['lost']} acknowledged writes lost (first ids {w['lost_ids'][:10]})")
    if w["unclear_failures"]:
        out.append(f"{w['unclear_failures']} writes failed without a clear code ({w['unclear_outcomes']})")
    if w["past_deadline"]:
        out.append(f"{w['past_deadline']} writes answered later than the deadline (slowest {w['slowest_ms']:.0f} ms)")
    return out


def failed_freeze(fig, recovery_bound_s):
    """The properties of the freeze scenario that failed, each with why; empty when all held."""
    out = answer_failures(fig["outcome"])
    rec = fig["recovery"]
    if rec["last_failure_s"] is None:
        out.append("no request started after SIGCONT: recovery not measured")
    elif rec["last_failure_s"] > recovery_bound_s:
        out.append(f"full service {rec['last_failure_s']} s after SIGCONT (bound {recovery_bound_s} s)")
    if fig["phases"]["during"]["answers"] == 0:
        out.append("no request started during the freeze")
    out += fig["leaks"]
    return out


def failed_kill(fig, recovery_bound_s=None):
    """The properties of the kill scenario that failed; empty when all held."""
    w = fig["writes"]
    out = write_failures(w)
    if w["acknowledged"] == 0:
        out.append("no write was acknowledged")
    if w["first_ack_after_restart_s"] is None:
        out.append("no write was acknowledged after the restart")
    elif recovery_bound_s is not None and w["first_ack_after_restart_s"] > recovery_bound_s:
        out.append(f"first acknowledged write {w['first_ack_after_restart_s']} s after the restart "
                   f"(bound {recovery_bound_s} s)")
    if fig["failed_during_outage"] == 0:
        out.append("no write failed while Postgres was down: the fault did not bite")
    out += fig["leaks"]
    return out


def missed_events(errors):
    """From a subscriber's error messages (multinode's probes.Subscriber
    keeps them as text), the `missedFrom`/`missedTo` gap events."""
    return [e for e in errors if "missedFrom" in e and "missedTo" in e]


def failed_blackhole(fig):
    """The properties of the black-hole scenario that failed; empty when all held."""
    out = answer_failures(fig["outcome"])
    rec = fig["recovery"]
    if rec["last_failure_s"] is None:
        out.append("no request started after the black hole")
    elif rec["first_clean_second"] is None or rec["last_failure_s"] > fig["recovery_bound_s"]:
        out.append(f"requests still failed {rec['last_failure_s']} s after the black hole "
                   f"(bound {fig['recovery_bound_s']} s): the pool did not replace its dead connections in time")
    out += write_failures(fig["writes"])
    if fig["missed_events"] == 0:
        out.append("the subscriber got no missedFrom/missedTo event: the LISTEN connection was not replaced")
    if fig["events_after_gap"] == 0:
        out.append("the subscriber got no event after the black hole")
    if fig["exit_code"] != 0:
        out.append(f"the server did not exit cleanly after SIGTERM (exit code {fig['exit_code']} after "
                   f"{fig['exit_after_sigterm_s']} s; killed after 30 s)")
    return out


def window(items, start, end, when):
    """The items whose `when(item)` falls in [start, end)."""
    return [item for item in items if start <= when(item) < end]


def writes_not_in_flight(writes, killed_at):
    """Failed writes that were not in flight when the replica was killed:
    each started after the kill or had ended before it. Behind haproxy's
    retry policy none may fail so: a request sent after the kill finds the
    dead server refusing connections, which haproxy retries elsewhere."""
    return [w for w in writes if w["id"] is None and not (w["start"] < killed_at <= w["end"])]


def failed_replicas(fig):
    """The properties of the replicas scenario that failed; empty when all held."""
    out = answer_failures(fig["reads"]["outcome"])
    for phase in ("sigterm", "sigkill"):
        reads = fig["reads"]["phases"][phase]
        if reads["answers"] == 0:
            out.append(f"no read started in the {phase} window: the fault was not under load")
        elif reads["succeeded"] != reads["answers"]:
            out.append(f"{reads['answers'] - reads['succeeded']} reads started in the {phase} window failed "
                       f"({reads['outcomes']}): haproxy's retry policy should have covered them")
    # A write in flight on the killed replica may fail any way: haproxy
    # answers 502, or (when the request went over a reused server
    # connection of a kept-alive client connection) closes the client's
    # connection without an answer, as the server did (haproxy/haproxy#3414).
    # So no "clear code" here: what counts is that only those fail.
    w = fig["writes"]
    if w["lost"]:
        out.append(f"{w['lost']} acknowledged writes lost (first ids {w['lost_ids'][:10]})")
    if w["past_deadline"]:
        out.append(f"{w['past_deadline']} writes answered later than the deadline (slowest {w['slowest_ms']:.0f} ms)")
    sigterm = fig["writes_sigterm"]
    if sigterm["failed"]:
        out.append(f"{sigterm['failed']} writes started in the SIGTERM window failed ({sigterm['failed_outcomes']})")
    if fig["writes_failed_not_in_flight"]:
        out.append(f"{fig['writes_failed_not_in_flight']} failed writes were not in flight at the SIGKILL")
    if fig["writes_failed_at_kill"] > fig["writers"]:
        out.append(f"{fig['writes_failed_at_kill']} writes failed at the SIGKILL, more than the {fig['writers']} "
                   "writers can have in flight")
    for fault in fig["faults"]:
        if fault.get("error"):
            out.append(f"{fault['signal']} of {fault['server']}: {fault['error']}")
    if fig["faults_outlasted_load"]:
        out.append("the faults were not over before the load ended; rerun with a longer --after")
    return out
