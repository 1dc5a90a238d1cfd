"""The fault scenarios' results: `report.json` (the figures) and `report.md`
(the same for a person)."""
import json
from pathlib import Path


def _ms(value):
    return "n/a" if value is None else f"{value:,.0f} ms"


def _mib(value):
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"


def _outcomes(counts):
    return ", ".join(f"{key}: {value:,}" for key, value in counts.items()) or "none"


def _verdict(failed):
    return "all properties HELD" if not failed else "FAILED: " + "; ".join(failed)


def freeze_lines(f):
    o, rec, res = f["outcome"], f["recovery"], f["resources"]
    s = f["settings"]
    lines = [
        f"## Postgres frozen: {_verdict(f['failed_properties'])}", "",
        f"The published mix at {f['rate']}/s through one server (k6/scenarios/chaos.js); after {f['warmup_s']:.0f} s "
        f"SIGSTOP to the postmaster and its {f['stopped_processes'] - 1} children for {f['freeze_s']:.0f} s, then "
        f"SIGCONT, then {f['after_s']:.0f} s more. Server deadlines: HTTP {s['NOTEGRAPH_HTTP_TIMEOUT_MS']} ms, "
        f"GraphQL {s['NOTEGRAPH_GRAPHQL_TIMEOUT_MS']} ms, statement {s['NOTEGRAPH_DB_TIMEOUT_MS']} ms.", "",
        f"- **Answers: {o['answers']:,}**, {o['succeeded']:,} succeeded, {o['clear_failures']:,} failed with "
        f"SERVICE_UNAVAILABLE or TIMEOUT, **{o['unclear_failures']} failed otherwise**"
        + (f" ({_outcomes(o['unclear_outcomes'])})" if o["unclear_failures"] else "") + "; k6 dropped "
        f"{f['dropped_iterations']:,} iterations (no VU free: the client's shortfall).",
        f"- **Slowest answer: {_ms(o['wall_ms']['max'])}** (deadline {o['deadline_ms']} ms, bound "
        f"{o['deadline_bound_ms']} ms; past it: **{o['past_deadline']}**); p50 {_ms(o['wall_ms']['p50'])}, "
        f"p99 {_ms(o['wall_ms']['p99'])}.",
        f"- **Full service {rec['last_failure_s']} s after SIGCONT** (the start of the last failing request "
        f"started after it; bound {f['recovery_bound_s']} s); first whole second with every request succeeding "
        f"from then on: {rec['first_clean_second']}; {rec['failed']} of {rec['requests']:,} requests started "
        "after SIGCONT failed.",
        "", "| requests that started | answers | succeeded | clear failures | other failures | slowest | "
        "outcomes (HTTP status, code) |", "|---|---|---|---|---|---|---|",
    ]
    for name, p in f["phases"].items():
        lines.append(f"| {name} the freeze | {p['answers']:,} | {p['succeeded']:,} | {p['clear_failures']:,} | "
                     f"{p['unclear_failures']} | {_ms(p['wall_ms']['max'])} | {_outcomes(p['outcomes'])} |")
    before, after = f["idle_before"], f["idle_after"]
    lines += ["", "Resources of the server (pool: `notegraph_db_pool_connections{pool=\"primary\"}`; sockets: "
              "/proc/<pid>/fd, client connections included; RSS), min–max over each window, sampled every 0.5 s:", "",
              "| | idle before | load before (5 s) | frozen | load after (last 5 s) | idle after |",
              "|---|---|---|---|---|---|"]
    for key, fmt in (("pool", str), ("sockets", str), ("rss", _mib)):
        cells = [fmt(before[key])]
        for window in ("load before", "frozen", "load after"):
            w = res[key][window]
            cells.append("n/a" if w["min"] is None else f"{fmt(w['min'])}–{fmt(w['max'])}")
        cells.append(fmt(after[key]))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", f"- Settled {f['settled_s']} s after the load stopped. Postgres-side server connections "
              f"(pg_stat_activity): {before['backends']} before, {after['backends']} after (pool "
              f"{after['pool_now']}).",
              "- Bounds: client sockets (sockets less pool connections) idle after ≤ idle before + 2; RSS idle "
              "after ≤ 1.25 × the peak of the 5 s before the freeze + 16 MiB; the pool never above "
              "NOTEGRAPH_DB_MAX_CONNECTIONS; Postgres' count of the server's connections equal to the pool's (±1)."
              + (" **Exceeded: " + "; ".join(f["leaks"]) + ".**" if f["leaks"] else " All held."),
              "", "Slowest answers (end, wall ms, HTTP status, code): "
              + "; ".join(f"{a[0]:.3f} {a[1]:.0f} {a[2]} {a[3]}" for a in o["slowest"]) + ".", ""]
    return lines


def kill_lines(f):
    w = f["writes"]
    lines = [
        f"## Postgres killed under writes: {_verdict(f['failed_properties'])}", "",
        f"{f['writers']} threads creating notes back to back through one server; 5 s in, SIGKILL to the "
        f"postmaster (its processes were gone {f['processes_gone_s']} s later); `pg_ctl start` on the same data "
        f"directory {f['down_s']:.0f} s after the kill (accepting connections {f['ready_after_restart_s']} s later); "
        "10 s more of writes.", "",
        f"- **Acknowledged writes: {w['acknowledged']:,}, lost: {w['lost']}** (every acknowledged id looked up "
        "in `notes` afterwards).",
        f"- **Failed writes: {w['failed']:,}** ({_outcomes(w['failed_outcomes'])}); **without a clear code: "
        f"{w['unclear_failures']}**"
        + (f" ({_outcomes(w['unclear_outcomes'])})" if w["unclear_failures"] else "")
        + f"; slowest failure {_ms(w['slowest_failure_ms'])}, slowest write {_ms(w['slowest_ms'])} (past the "
        f"deadline + 1 s: **{w['past_deadline']}**); {f['failed_during_outage']} failed while Postgres "
        f"was down; {w['failed_but_committed']} failed but were committed (the answer lost with the connection).",
        f"- **Recovery: first acknowledged write {w['first_ack_after_restart_s']} s after the restart was issued** "
        f"({w['first_ack_after_ready_s']} s after Postgres accepted connections).",
        f"- Server sockets idle {f['idle_before']['sockets']} before, {f['idle_after']['sockets']} after; pool "
        f"{f['idle_before']['pool']} before, {f['idle_after']['pool_now']} after; Postgres-side server "
        f"connections {f['idle_before']['backends']} before, {f['idle_after']['backends']} after."
        + (" **Exceeded: " + "; ".join(f["leaks"]) + ".**" if f["leaks"] else ""),
        "",
    ]
    return lines


def blackhole_lines(f):
    o, rec, w = f["outcome"], f["recovery"], f["writes"]
    lines = [
        f"## Server-to-Postgres connections black-holed: {_verdict(f['failed_properties'])}", "",
        f"The mix at {f['rate']}/s, one writer thread and one SSE subscriber (`noteEvents` of the writer) through "
        f"a TCP proxy to Postgres; {f['warmup_s']:.0f} s in, the {f['holed_connections']} connections open then "
        f"stop forwarding without closing (new ones are forwarded); {f['after_s']:.0f} s more.", "",
        f"- **Answers: {o['answers']:,}**, {o['succeeded']:,} succeeded, {o['clear_failures']:,} failed with "
        f"SERVICE_UNAVAILABLE or TIMEOUT, **{o['unclear_failures']} failed otherwise**"
        + (f" ({_outcomes(o['unclear_outcomes'])})" if o["unclear_failures"] else "")
        + f"; slowest {_ms(o['wall_ms']['max'])} (bound {o['deadline_bound_ms']} ms, past it: "
        f"**{o['past_deadline']}**).",
        f"- Outcomes before: {_outcomes(f['phases']['before']['outcomes'])}; after: "
        f"{_outcomes(f['phases']['after']['outcomes'])}.",
        f"- **Last failing request started {rec['last_failure_s']} s after the black hole** (bound "
        f"{f['recovery_bound_s']} s); first whole second clean from then on: {rec['first_clean_second']}.",
        f"- Writes: {w['acknowledged']:,} acknowledged, {w['lost']} lost; {w['failed']} failed "
        f"({_outcomes(w['failed_outcomes'])}), {w['unclear_failures']} without a clear code; slowest "
        f"{_ms(w['slowest_ms'])}.",
        f"- **Subscriber: {f['missed_events']} missedFrom/missedTo events**; events received before the black hole "
        f"{f['events_before_gap']}, after it {f['events_after_gap']}; streams ended: {f['streams']}.",
        f"- Pool after: {f['pool_after']['pool']} connections; server sockets {f['pool_after']['sockets']}.",
        f"- **Exit after SIGTERM: code {f['exit_code']} after {f['exit_after_sigterm_s']} s** (SIGKILL after 30 s).",
        "",
    ]
    return lines


def replicas_lines(f):
    r, w = f["reads"], f["writes"]
    polite = next((x for x in f["faults"] if x["signal"] == "SIGTERM"), {})
    rude = next((x for x in f["faults"] if x["signal"] == "SIGKILL"), {})
    lines = [
        f"## A replica stopped behind haproxy: {_verdict(f['failed_properties'])}", "",
        f"Three servers behind haproxy running `deploy/haproxy/haproxy.cfg` unchanged; the mix at {f['rate']}/s "
        f"(k6/scenarios/chaos.js) and {f['writers']} writer threads through haproxy. {f['warmup_s']:.0f} s in, "
        f"SIGTERM to {polite.get('server')} (exit code {polite.get('exit_code')} after "
        f"{polite.get('exited_after_s')} s, ready again {polite.get('ready_after_s')} s after the signal); "
        f"{f['pause_s']:.0f} s later, SIGKILL to {rude.get('server')}, started again {f['down_s']:.0f} s later "
        f"(ready {rude.get('ready_after_s')} s after the signal).", "",
        "| reads that started | answers | succeeded | failed | slowest | outcomes (HTTP status, code) |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in (("before", "before the SIGTERM"), ("sigterm", "from the SIGTERM to the SIGKILL"),
                        ("sigkill", "from the SIGKILL on")):
        p = r["phases"][name]
        lines.append(f"| {label} | {p['answers']:,} | {p['succeeded']:,} | {p['answers'] - p['succeeded']:,} | "
                     f"{_ms(p['wall_ms']['max'])} | {_outcomes(p['outcomes'])} |")
    ws, wk = f["writes_sigterm"], f["writes_sigkill"]
    lines += [
        "",
        f"- **Writes: {w['acknowledged']:,} acknowledged, lost {w['lost']}**; started in the SIGTERM window "
        f"and over before the SIGKILL {ws['writes']:,}, **failed {ws['failed']}**; around the SIGKILL {wk['writes']:,}, failed {wk['failed']} "
        f"({_outcomes(wk['failed_outcomes'])}).",
        f"- **Writes failed at the SIGKILL: {f['writes_failed_at_kill']}** (in flight when it came; at most one per "
        f"writer; haproxy answers such a write 502, or closes a kept-alive client connection without an answer as "
        f"the server did); failed writes not in flight then: **{f['writes_failed_not_in_flight']}**; failed but "
        f"committed (the answer lost with the replica): {w['failed_but_committed']}.",
        "- haproxy per server (requests, 5xx, connect errors, response errors, retries, redispatches, times down): "
        + "; ".join(f"{name} {s['stot']:,}, {s['hrsp_5xx']}, {s['econ']}, {s['eresp']}, {s['wretr']}, "
                    f"{s['wredis']}, {s['chkdown']}" for name, s in f["haproxy"].items()) + ".",
        "",
    ]
    return lines


def markdown(fig):
    failed = [p for r in fig["scenarios"].values() for p in r["failed_properties"]]
    load = fig["load_average"]
    lines = [
        f"# Faults: {_verdict(failed)}", "",
        f"- Command: `{fig['command']}`; started {fig['started_at']}, commit {fig['commit']}.",
        f"- Machine: {fig['machine']}; load average (1, 5, 15 min) before "
        f"{', '.join(f'{x:.2f}' for x in load['before'])}, after {', '.join(f'{x:.2f}' for x in load['after'])}.",
        f"- Data: {fig['data_set']['users']:,} users, {fig['data_set']['notes']:,} notes, {fig['data_set']['tags']} "
        "tags (`notegraph seed`) in a fresh cluster.", "",
    ]
    if "freeze" in fig["scenarios"]:
        lines += freeze_lines(fig["scenarios"]["freeze"])
    if "kill" in fig["scenarios"]:
        lines += kill_lines(fig["scenarios"]["kill"])
    if "blackhole" in fig["scenarios"]:
        lines += blackhole_lines(fig["scenarios"]["blackhole"])
    if "replicas" in fig["scenarios"]:
        lines += replicas_lines(fig["scenarios"]["replicas"])
    lines += ["Files: `report.json`, `freeze/` (k6's `summary.json`, `samples.csv.gz`, `k6.log`, `server.log`), "
              "`kill/` (`writes.json`, `server.log`), `blackhole/` (as `freeze/`), `replicas/` (k6's files, "
              "`writes.json`, `notegraph-N.log`, `haproxy.log`), `postgres.log`.", ""]
    return "\n".join(lines)


def write(directory, fig, text):
    Path(directory, "report.json").write_text(json.dumps(fig, indent=2, default=str) + "\n")
    Path(directory, "report.md").write_text(text)
