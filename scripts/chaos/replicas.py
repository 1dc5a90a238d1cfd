"""`just chaos replicas`: one of three replicas behind haproxy stopped
under load, politely (SIGTERM) and then not (SIGKILL).

Three servers of the production build on the chaos cluster, behind a
haproxy that runs `deploy/haproxy/haproxy.cfg` unchanged (multinode's
`fleet`); k6 sends the published mix through haproxy at RATE/s and writer
threads create notes through it. WARMUP seconds in, `notegraph-1` gets
SIGTERM (it answers `/readyz` 503 for NOTEGRAPH_SHUTDOWN_DELAY_MS, haproxy
takes it out, it drains and exits) and is started again; PAUSE seconds
after it is ready, `notegraph-2` gets SIGKILL, stays down DOWN seconds and
is started again; the load goes on AFTER seconds past that.

What must hold (figures.failed_replicas): no request fails through the
SIGTERM; through the SIGKILL every read is answered (haproxy retries it on
another server) and the only writes that fail are the ones in flight on
the killed replica (answered 502 by haproxy, never sent twice); no
acknowledged write is lost.
"""
import json
import os
import signal
import time

from loadtest import stack
from multinode import fleet

from . import faults, figures


def kill(server):
    """SIGKILL `server` and reap it; returns when its process is gone."""
    server.up = False
    os.kill(server.process.pid, signal.SIGKILL)
    _, status, usage = os.wait4(server.process.pid, 0)
    server.process.returncode = os.waitstatus_to_exitcode(status)
    server.exited_cpu += usage.ru_utime + usage.ru_stime


def inject(args, servers):
    """SIGTERM to the first server, SIGKILL to the second, each started again; their timelines."""
    out = []
    polite = {"signal": "SIGTERM", "server": servers[0].name, "at": time.time()}
    out.append(polite)
    try:
        polite["exit_code"] = servers[0].terminate()
        polite["exited_after_s"] = round(time.time() - polite["at"], 2)
        servers[0].start()
        polite["ready_after_s"] = round(time.time() - polite["at"], 2)
        stack.log(f"replicas: {servers[0].name} exited with {polite['exit_code']} {polite['exited_after_s']} s "
                  f"after SIGTERM, ready again after {polite['ready_after_s']} s")
        time.sleep(args.pause)
        rude = {"signal": "SIGKILL", "server": servers[1].name, "at": time.time()}
        out.append(rude)
        kill(servers[1])
        time.sleep(args.down)
        servers[1].start()
        rude["ready_after_s"] = round(time.time() - rude["at"], 2)
        stack.log(f"replicas: {servers[1].name} SIGKILLed, ready again after {rude['ready_after_s']} s")
    except (RuntimeError, OSError) as error:
        out[-1]["error"] = str(error)
    return out


def scenario(args, run_dir, k6, binary, postgres, cleanup, server_env, read_answers, psql_stdin):
    stack.log(f"replicas: three servers behind haproxy, the mix at {args.rate}/s and {args.writers} writers; "
              f"SIGTERM to one {args.warmup:.0f} s in, then SIGKILL to another")
    out_dir = run_dir / "replicas"
    out_dir.mkdir()
    env = stack.child_env(DATABASE_URL=postgres.url, NOTEGRAPH_DEMO_DATA="false",
                          NOTEGRAPH_SHUTDOWN_DELAY_MS=str(fleet.SHUTDOWN_DELAY_MS), **server_env)
    servers = [fleet.Server(f"notegraph-{n}", binary, env, out_dir / f"notegraph-{n}.log") for n in (1, 2, 3)]
    for server in servers:
        cleanup.append(server.terminate)
        server.start()
    haproxy = fleet.Haproxy(servers, out_dir)
    cleanup.append(haproxy.stop)
    haproxy.start()
    stack.log(f"replicas: haproxy on {haproxy.base_url} (deploy/haproxy/haproxy.cfg)")
    deadline_ms = int(server_env["NOTEGRAPH_HTTP_TIMEOUT_MS"])
    writer = faults.Writer(haproxy, "test-token", args.writers, timeout=deadline_ms / 1000 + 30)
    cleanup.append(writer.stop)
    # Long enough for both faults (about 2 s of drain and 1 s of start each) and AFTER seconds more.
    duration = args.warmup + args.pause + args.down + 15 + args.after
    k6_env = stack.child_env(BASE_URL=haproxy.base_url, DATA_FILE=str(run_dir / "data.json"), RATE=str(args.rate),
                             DURATION=f"{duration:.0f}s", K6_CSV_TIME_FORMAT="unix_milli")
    writer.start()
    k6_process, copier = stack.run_k6(k6, "chaos", out_dir, k6_env)
    cleanup.append(lambda: stack.stop(k6_process, "k6"))
    time.sleep(args.warmup)
    timeline = inject(args, servers)
    faults_done = time.time()
    k6_process.wait()
    copier.join()
    load_ended = time.time()
    writer.stop()
    stats = haproxy.server_stats()

    answers = read_answers(out_dir / "samples.csv.gz")
    writes = writer.writes
    (out_dir / "writes.json").write_text(json.dumps(writes))
    acked = [w["id"] for w in writes if w["id"] is not None]
    present_ids = set()
    if acked:
        ids = ",".join(str(int(i)) for i in acked)
        present_ids = set(psql_stdin(postgres, f"select id from notes where id = any('{{{ids}}}'::bigint[]);").split())
    failed_titles = [w["title"] for w in writes if w["id"] is None]
    present_titles = set()
    if failed_titles:
        titles = ",".join(f'"{t}"' for t in failed_titles)
        present_titles = set(filter(None, psql_stdin(
            postgres, f"select title from notes where title = any('{{{titles}}}'::text[]);").split("\n")))
    term_at = timeline[0]["at"]
    kill_at = timeline[1]["at"] if len(timeline) > 1 else load_ended
    started = figures.started
    reads = {
        "before": figures.window(answers, 0, term_at, started),
        "sigterm": figures.window(answers, term_at, kill_at, started),
        "sigkill": figures.window(answers, kill_at, load_ended, started),
    }
    writes_in = {
        # Over before the SIGKILL: those in flight then are judged apart.
        "sigterm": [w for w in figures.window(writes, term_at, kill_at, lambda w: w["start"]) if w["end"] < kill_at],
        "sigkill": figures.window(writes, kill_at - deadline_ms / 1000, load_ended, lambda w: w["start"]),
    }
    failed_at_kill = [w for w in writes if w["id"] is None and w["start"] < kill_at <= w["end"]]
    fig = {
        "rate": args.rate, "writers": args.writers, "warmup_s": args.warmup, "pause_s": args.pause,
        "down_s": args.down, "settings": server_env, "faults": timeline, "load_ended": load_ended,
        "faults_outlasted_load": faults_done > load_ended,
        "reads": {"outcome": figures.outcome_figures(answers, deadline_ms),
                  "phases": {name: figures.outcome_figures(part, deadline_ms) for name, part in reads.items()}},
        "writes": figures.writes_figures(writes, present_ids, present_titles, kill_at, None, deadline_ms),
        "writes_sigterm": figures.writes_figures(writes_in["sigterm"], present_ids, present_titles, term_at, None,
                                                 deadline_ms),
        "writes_sigkill": figures.writes_figures(writes_in["sigkill"], present_ids, present_titles, kill_at, None,
                                                 deadline_ms),
        "writes_failed_at_kill": len(failed_at_kill),
        "writes_failed_at_kill_served_by": sorted({str(w["served_by"]) for w in failed_at_kill}),
        "writes_failed_not_in_flight": len(figures.writes_not_in_flight(writes, kill_at)),
        "haproxy": stats,
    }
    fig["failed_properties"] = figures.failed_replicas(fig)
    return fig
