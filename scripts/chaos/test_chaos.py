"""The fault scenarios' arithmetic: `python3 -m unittest discover -s scripts/chaos -t scripts`."""
import csv
import gzip
import tempfile
import unittest
from pathlib import Path

from chaos import faults, figures
from chaos.__main__ import read_answers


def answer(start, wall_ms, http="200", code="none"):
    """An answer to a request that started at `start`."""
    return (start + wall_ms / 1000, wall_ms, http, code)


class Outcomes(unittest.TestCase):
    def test_clear_failures_need_a_code_that_fits_the_status(self):
        self.assertTrue(figures.clear_failure(answer(0, 1, "503", "SERVICE_UNAVAILABLE")))
        self.assertTrue(figures.clear_failure(answer(0, 1, "504", "TIMEOUT")))
        self.assertTrue(figures.clear_failure(answer(0, 1, "200", "TIMEOUT")))
        # A 504 that says SERVICE_UNAVAILABLE, a 500, INTERNAL, no answer at all: not clear.
        self.assertFalse(figures.clear_failure(answer(0, 1, "504", "SERVICE_UNAVAILABLE")))
        self.assertFalse(figures.clear_failure(answer(0, 1, "500", "TIMEOUT")))
        self.assertFalse(figures.clear_failure(answer(0, 1, "200", "INTERNAL")))
        self.assertFalse(figures.clear_failure(answer(0, 1, "0", "none")))

    def test_counts_slowest_and_the_deadline(self):
        answers = [answer(0, 5), answer(1, 5_900, "504", "TIMEOUT"), answer(2, 6_100, "504", "TIMEOUT"),
                   answer(3, 2, "200", "INTERNAL"), answer(4, 3)]
        out = figures.outcome_figures(answers, 5_000)
        self.assertEqual((out["answers"], out["succeeded"], out["clear_failures"], out["unclear_failures"]),
                         (5, 2, 2, 1))
        self.assertEqual(out["unclear_outcomes"], {"200 INTERNAL": 1})
        self.assertEqual(out["outcomes"], {"200 none": 2, "504 TIMEOUT": 2, "200 INTERNAL": 1})
        # Bound 6,000 ms: only the 6,100 ms answer is past it.
        self.assertEqual((out["deadline_bound_ms"], out["past_deadline"]), (6_000, 1))
        self.assertEqual(out["wall_ms"]["max"], 6_100)
        self.assertEqual(out["slowest"][0][1], 6_100)

    def test_phases_go_by_when_the_request_started(self):
        # Started before the fault, answered during it: "before".
        answers = [answer(9.5, 2_000), answer(10, 1), answer(19.99, 1), answer(20, 1)]
        split = figures.phases(answers, 10, 20)
        self.assertEqual([len(split[k]) for k in ("before", "during", "after")], [1, 2, 1])


class Recovery(unittest.TestCase):
    def test_the_last_failure_after_resuming_sets_the_recovery(self):
        resumed = 100.0
        answers = [
            answer(99.0, 4_000, "504", "TIMEOUT"),  # started before SIGCONT: not counted here
            answer(100.2, 10, "503", "SERVICE_UNAVAILABLE"),
            answer(101.4, 10, "200", "TIMEOUT"),
            answer(101.5, 10),
            answer(102.5, 10),
            answer(103.5, 10),
        ]
        out = figures.recovery(answers, resumed)
        self.assertEqual((out["requests"], out["failed"]), (5, 2))
        self.assertAlmostEqual(out["last_failure_s"], 1.4, places=6)
        # Second 1 (101-102) still had a failure; from second 2 on all succeeded.
        self.assertEqual(out["first_clean_second"], 2)

    def test_no_failure_after_resuming_is_immediate_recovery(self):
        out = figures.recovery([answer(100.1, 5), answer(101.1, 5)], 100.0)
        self.assertEqual((out["last_failure_s"], out["first_clean_second"]), (0.0, 0))

    def test_a_failure_in_the_last_second_means_no_clean_second(self):
        out = figures.recovery([answer(100.1, 5), answer(101.1, 5, "503", "SERVICE_UNAVAILABLE")], 100.0)
        self.assertIsNone(out["first_clean_second"])

    def test_nothing_after_resuming_is_not_measured_and_fails(self):
        out = figures.recovery([answer(99.0, 5)], 100.0)
        self.assertIsNone(out["last_failure_s"])
        fig = {"outcome": figures.outcome_figures([], 5_000), "recovery": out,
               "phases": {"during": {"answers": 1}}, "leaks": []}
        self.assertIn("no request started after SIGCONT: recovery not measured", figures.failed_freeze(fig, 2.0))

    def test_requests_after_the_end_are_left_out(self):
        out = figures.recovery([answer(100.1, 5), answer(130.0, 5, "503", "SERVICE_UNAVAILABLE")], 100.0, end=120)
        self.assertEqual((out["requests"], out["failed"]), (1, 0))


class Resources(unittest.TestCase):
    def test_windows_and_leaks(self):
        samples = [{"t": t, "sockets": s} for t, s in ((0, 10), (1, 12), (2, 30), (3, None), (4, 11))]
        self.assertEqual(figures.resource_window(samples, 1, 3, "sockets"), {"min": 12, "max": 30, "samples": 2})
        self.assertEqual(figures.resource_window(samples, 10, 20, "sockets")["max"], None)
        bounds = {"sockets": (2, 0.0), "rss": (16, 0.25)}
        self.assertEqual(figures.leaks({"sockets": {"before": 10, "after": 12}, "rss": {"before": 100, "after": 141}},
                                       bounds), [])
        found = figures.leaks({"sockets": {"before": 10, "after": 13}, "rss": {"before": 100, "after": 142}}, bounds)
        self.assertEqual(len(found), 2)
        self.assertTrue(found[0].startswith("sockets: 13 after against 10 before"))
        self.assertEqual(figures.leaks({"sockets": {"before": None, "after": 1}}, {"sockets": (0, 0)}),
                         ["sockets: not measured (before None, after 1)"])

    def test_labelled_prometheus_samples(self):
        text = ('# HELP notegraph_db_pool_connections x\nnotegraph_db_pool_connections{pool="replica"} 3\n'
                'notegraph_db_pool_connections{pool="primary"} 16\n')
        self.assertEqual(faults.prometheus_labelled(text, "notegraph_db_pool_connections", 'pool="primary"'), 16.0)
        self.assertIsNone(faults.prometheus_labelled(text, "notegraph_db_pool_idle_connections", 'pool="primary"'))


def write(title, start, end, http="200", code="none", note_id=None):
    return {"title": title, "start": start, "end": end, "http": http, "code": code, "id": note_id}


class Writes(unittest.TestCase):
    def setUp(self):
        self.writes = [
            write("a", 0.0, 0.1, note_id="1"),
            write("b", 0.1, 0.2, note_id="2"),
            write("c", 5.0, 5.1, "200", "SERVICE_UNAVAILABLE"),  # failed, but committed
            write("d", 5.1, 7.2, "503", "SERVICE_UNAVAILABLE"),
            write("e", 6.0, 6.3, "200", "INTERNAL"),
            write("f", 7.9, 8.3, note_id="3"),  # the first acknowledged after the restart at 8.0
            write("g", 8.4, 8.5, note_id="4"),
        ]

    def test_lost_unclear_committed_and_recovery(self):
        out = figures.writes_figures(self.writes, {"1", "3", "4"}, {"c"}, restarted=8.0, ready=8.1)
        self.assertEqual((out["writes"], out["acknowledged"], out["failed"]), (7, 4, 3))
        self.assertEqual((out["lost"], out["lost_ids"]), (1, ["2"]))
        self.assertEqual((out["unclear_failures"], out["unclear_outcomes"]), (1, {"200 INTERNAL": 1}))
        self.assertEqual(out["failed_but_committed"], 1)
        self.assertAlmostEqual(out["first_ack_after_restart_s"], 0.3, places=6)
        self.assertAlmostEqual(out["first_ack_after_ready_s"], 0.2, places=6)
        self.assertAlmostEqual(out["slowest_failure_ms"], 2100, places=3)
        self.assertEqual(out["past_deadline"], 0)
        fig = {"writes": out, "failed_during_outage": 3, "leaks": []}
        failed = figures.failed_kill(fig)
        self.assertEqual(len(failed), 2)
        self.assertTrue(failed[0].startswith("1 acknowledged writes lost"))
        # Write d took 2.1 s: past a 1 s deadline (plus the 1 s slack).
        late = figures.writes_figures(self.writes, {"1", "2", "3", "4"}, {"c"}, 8.0, 8.1, deadline_ms=1000)
        self.assertEqual(late["past_deadline"], 1)
        self.assertIn("1 writes answered later than the deadline (slowest 2100 ms)",
                      figures.failed_kill({"writes": late, "failed_during_outage": 3, "leaks": []}))

    def test_everything_present_and_clear_holds(self):
        writes = [w for w in self.writes if w["title"] != "e"]
        out = figures.writes_figures(writes, {"1", "2", "3", "4"}, set(), restarted=8.0, ready=8.1)
        self.assertEqual(figures.failed_kill({"writes": out, "failed_during_outage": 2, "leaks": []}), [])
        # A fault that never made a write fail did not test anything.
        self.assertEqual(figures.failed_kill({"writes": out, "failed_during_outage": 0, "leaks": []}),
                         ["no write failed while Postgres was down: the fault did not bite"])

    def test_no_write_after_the_restart(self):
        out = figures.writes_figures(self.writes[:2], {"1", "2"}, set(), restarted=8.0, ready=None)
        self.assertIsNone(out["first_ack_after_restart_s"])
        self.assertIn("no write was acknowledged after the restart",
                      figures.failed_kill({"writes": out, "failed_during_outage": 1, "leaks": []}))


class Blackhole(unittest.TestCase):
    def fig(self, missed, after):
        answers = [answer(9.0, 5), answer(10.2, 4_001, "504", "TIMEOUT"), answer(11.5, 5), answer(12.5, 5)]
        writes = [write("a", 9.0, 9.1, note_id="1"), write("b", 10.0, 14.0, "200", "TIMEOUT")]
        return {"outcome": figures.outcome_figures(answers, 5_000), "recovery": figures.recovery(answers, 10.0, 13.0),
                "recovery_bound_s": 10.0, "writes": figures.writes_figures(writes, {"1"}, set(), 10.0, None, 5_000),
                "missed_events": missed, "events_after_gap": after, "exit_code": 0, "exit_after_sigterm_s": 0.1}

    def test_clear_failures_a_gap_event_and_events_after_it_hold(self):
        self.assertEqual(figures.failed_blackhole(self.fig(1, 5)), [])

    def test_a_server_killed_after_sigterm_fails(self):
        fig = dict(self.fig(1, 5), exit_code=-9, exit_after_sigterm_s=30.0)
        self.assertEqual(figures.failed_blackhole(fig), [
            "the server did not exit cleanly after SIGTERM (exit code -9 after 30.0 s; killed after 30 s)"])

    def test_no_gap_event_and_no_events_after_fail(self):
        failed = figures.failed_blackhole(self.fig(0, 0))
        self.assertEqual(failed, [
            "the subscriber got no missedFrom/missedTo event: the LISTEN connection was not replaced",
            "the subscriber got no event after the black hole"])

    def test_gap_events_are_found_in_the_subscribers_errors(self):
        errors = ["server: [{'message': 'events may have been missed', 'extensions': {'code': "
                  "'SERVICE_UNAVAILABLE', 'missedFrom': '2026-12-06T09:45:00Z', 'missedTo': '2026-12-06T09:45:02Z'}}]",
                  "server: subscribe answered HTTP 503"]
        self.assertEqual(figures.missed_events(errors), errors[:1])


class Replicas(unittest.TestCase):
    def write(self, start, end, acked=True):
        return {"title": f"w{start}", "start": start, "end": end, "http": "200" if acked else "502",
                "code": "none" if acked else "unreadable", "id": str(start) if acked else None, "served_by": None}

    def test_only_writes_in_flight_at_the_kill_may_fail(self):
        writes = [self.write(9.5, 10.2, acked=False),  # in flight at 10.0: allowed
                  self.write(10.1, 10.3, acked=False),  # sent after the kill: should have been retried
                  self.write(8.0, 9.0, acked=False),  # over before the kill
                  self.write(9.0, 11.0)]  # acknowledged: never counted
        self.assertEqual([w["start"] for w in figures.writes_not_in_flight(writes, 10.0)], [10.1, 8.0])

    def figures_with(self, **change):
        ok = figures.outcome_figures([answer(1, 5)], 5_000)
        writes = figures.writes_figures([], set(), set(), 0, None, 5_000)
        fig = {"reads": {"outcome": ok, "phases": {"before": ok, "sigterm": ok, "sigkill": ok}},
               "writes": writes, "writes_sigterm": writes, "writes_failed_not_in_flight": 0,
               "writes_failed_at_kill": 1, "writers": 4, "faults": [{"signal": "SIGTERM", "server": "a"}],
               "faults_outlasted_load": False}
        fig.update(change)
        return figures.failed_replicas(fig)

    def test_the_properties(self):
        self.assertEqual(self.figures_with(), [])
        failed_read = figures.outcome_figures([answer(1, 5), answer(2, 5, "502", "unreadable")], 5_000)
        phases = {"before": failed_read, "sigterm": failed_read, "sigkill": failed_read}
        out = self.figures_with(reads={"outcome": figures.outcome_figures([answer(1, 5)], 5_000), "phases": phases})
        self.assertEqual(len(out), 2)
        self.assertIn("reads started in the sigterm window failed", out[0])
        self.assertIn("more than the 4 writers", self.figures_with(writes_failed_at_kill=5)[0])
        self.assertIn("not in flight", self.figures_with(writes_failed_not_in_flight=1)[0])
        self.assertIn("boom", self.figures_with(faults=[{"signal": "SIGKILL", "server": "b", "error": "boom"}])[0])
        empty = figures.outcome_figures([], 5_000)
        out = self.figures_with(reads={"outcome": empty, "phases": {"before": empty, "sigterm": empty,
                                                                    "sigkill": empty}})
        self.assertIn("not under load", out[0])


class K6Samples(unittest.TestCase):
    def test_answers_are_read_from_the_csv_with_their_tags(self):
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "samples.csv.gz"
            with gzip.open(path, "wt", newline="") as handle:
                out = csv.writer(handle)
                out.writerow(["metric_name", "timestamp", "metric_value", "scenario", "status", "extra_tags",
                              "metadata"])
                out.writerow(["http_req_duration", "1796548826854", "4.2", "mix", "200", "query=userList", ""])
                out.writerow(["answers", "1796548826854", "5.000000", "mix", "", "http=504&code=TIMEOUT", ""])
                out.writerow(["answers", "1796548827000", "1.5", "mix", "", "query=x&http=200&code=none", ""])
            answers = read_answers(path)
        self.assertEqual(answers, [(1796548826.854, 5.0, "504", "TIMEOUT"), (1796548827.0, 1.5, "200", "none")])


if __name__ == "__main__":
    unittest.main()
