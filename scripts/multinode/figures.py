"""The arithmetic of the multi-node proof, apart from anything running so
that it can be unit-tested: distributions, the replica-lag samples, the
accounting of SSE events against the writes that caused them, and which
properties failed.

Event accounting. A subscriber holds one stream at a time and opens a new
one when its stream ends (a server completes its streams when it shuts
down). graphql-sse sends the response head before the subscription is
registered, so "the stream is open" does not prove that a write made then
must arrive. What does: events come in commit order, so once a stream has
delivered the event of write F, every write that *started* after F's
request *ended* committed after F and must arrive on that stream, up to
the last event L it delivered: every write that *ended* before L's request
*started* committed before L. A write inside that window that the
subscriber never received is **lost** (a failure); a write outside every
window of the subscriber and not received is a **gap** (written while the
subscriber was between streams, reported, not hidden).
"""
import datetime
import re

from loadtest.timeline import percentile


def distribution(values):
    """count, p50, p99 and max of `values` (None for each figure when empty)."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else None,
    }


def replica_lag(samples):
    """Replica lag from `(replay_lag_ms or None, lsn_gap_bytes or None)` samples.

    `pg_stat_replication.replay_lag` is NULL once the standby has replayed
    everything and nothing new came: that is no lag, so it counts as 0. A
    sample whose gap is None found no standby connected (`disconnected`).
    """
    connected = [s for s in samples if s[1] is not None]
    return {
        "samples": len(samples),
        "disconnected": len(samples) - len(connected),
        "idle": sum(1 for s in connected if s[0] is None),
        "replay_lag_ms": distribution([s[0] or 0.0 for s in connected]),
        "lsn_gap_bytes": distribution([s[1] for s in connected]),
    }


def prometheus_values(text, names):
    """The values of the unlabelled samples `names` in Prometheus text
    exposition (0 for a name that is absent)."""
    out = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in out:
            out[parts[0]] = float(parts[1])
    return out


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text):
    """Unix seconds of an RFC 3339 time such as `2026-11-28T08:01:02.123456789Z`."""
    text = _FRACTION.sub(r"\1", text.replace("Z", "+00:00"))
    return datetime.datetime.fromisoformat(text).timestamp()


def account_events(writes, subscribers):
    """Every write against every subscriber's streams.

    `writes`: {id: {"server": name, "start": t, "end": t}} for writes that
    succeeded. `subscribers`: {name: [stream, ...]} in the order opened, a
    stream being {"server": name, "received": [(note_id, received_t, commit_t)]}.
    Returns the totals and, per subscriber, expected/delivered/gap/lost and
    the delivery latencies (receipt minus commit, ms).
    """
    out = {"writes": len(writes), "expected": 0, "delivered": 0, "delivered_cross_server": 0,
           "gap": 0, "lost": 0, "duplicates": 0, "unknown": 0, "latency_ms": [], "subscribers": {}}
    for name, streams in subscribers.items():
        windows, seen, row = [], {}, {"streams": len(streams), "delivered": 0, "delivered_cross_server": 0,
                                        "gap": 0, "lost": 0, "duplicates": 0, "unknown": 0}
        for stream in streams:
            known = [event for event in stream["received"] if event[0] in writes]
            row["unknown"] += len(stream["received"]) - len(known)
            if known:
                windows.append((writes[known[0][0]]["end"], writes[known[-1][0]]["start"]))
            for note_id, received, committed in known:
                if note_id in seen:
                    row["duplicates"] += 1
                    continue
                seen[note_id] = stream["server"]
                out["latency_ms"].append((received - committed) * 1000)
        for note_id, write in writes.items():
            if note_id in seen:
                row["delivered"] += 1
                row["delivered_cross_server"] += seen[note_id] != write["server"]
            elif any(write["start"] >= first and write["end"] <= last for first, last in windows):
                row["lost"] += 1
            else:
                row["gap"] += 1
        row["expected"] = len(writes)
        out["subscribers"][name] = row
        for key in ("expected", "delivered", "delivered_cross_server", "gap", "lost", "duplicates", "unknown"):
            out[key] += row[key]
    out["latency_ms"] = distribution(out.pop("latency_ms"))
    return out


def failed_properties(fig):
    """The properties the run must hold, each with why it failed; empty when all held."""
    failures = []
    if fig["stale_reads"] != 0:
        failures.append(f"{fig['stale_reads']} stale reads (0 allowed)")
    failed = fig["failed_requests"]
    if failed["total"] != 0:
        failures.append(f"{failed['total']} failed requests ({failed})")
    if fig["sse"]["lost"] != 0:
        failures.append(f"{fig['sse']['lost']} SSE events lost inside a stream")
    if fig["sse"]["duplicates"] != 0:
        failures.append(f"{fig['sse']['duplicates']} SSE events delivered twice")
    if fig["sse"]["writes"] == 0:
        failures.append("no SSE probe write succeeded")
    invalidation = fig["invalidation"]
    # With the response cache off (NOTEGRAPH_CACHE_ENABLED=false) there is nothing to invalidate.
    if not invalidation.get("cache_disabled"):
        if invalidation["never_seen"] != 0:
            failures.append(f"{invalidation['never_seen']} cross-replica writes never seen on the other server "
                            f"within {invalidation['bound_s']} s")
        if invalidation["lag_ms"]["count"] == 0:
            failures.append("no cross-replica invalidation was measured")
    restarts = fig["restarts"]
    done = [r for r in restarts if r.get("ready_after_s") is not None and r.get("exit_code") == 0]
    if len(done) != fig["servers"]:
        failures.append(f"rolling restart: {len(done)} of {fig['servers']} servers stopped cleanly and came back")
    return failures
