"""Tests of the load-test runner's own arithmetic, on made-up series: no k6,
server or Postgres needed.

    python3 -m unittest discover -s scripts/loadtest -t scripts
"""
import csv
import gzip
import io
import json
import tempfile
import unittest
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from loadtest import __main__ as loadtest_main
from loadtest import analysis, chart, compare, fairness, report, timeline


def second(t, requests, p99, failures=0, dropped=0, shed=0):
    durations = [p99] * (requests - shed)
    return {"t": t, "requests": requests, "failures": failures, "dropped": dropped, "shed": shed, "p50": 1.0,
            "p95": 1.0, "p99": p99, "max": p99, "_durations": sorted(durations)}


class Percentiles(unittest.TestCase):
    def test_nearest_rank(self):
        values = list(range(1, 101))
        self.assertEqual(timeline.percentile(values, 50), 50)
        self.assertEqual(timeline.percentile(values, 99), 99)
        self.assertEqual(timeline.percentile(values, 100), 100)
        self.assertEqual(timeline.percentile([7], 99), 7)
        self.assertIsNone(timeline.percentile([], 99))

    def test_reads_k6_csv_per_second_and_scenario(self):
        rows = [
            ["http_req_duration", "100", "2.0", "mix"], ["http_req_duration", "100", "4.0", "mix"],
            ["failures", "100", "1", "mix"], ["http_req_duration", "101", "3.0", "mix"],
            ["http_req_duration", "101", "900.0", "holders"], ["dropped_iterations", "101", "2", "mix"],
            ["http_reqs", "101", "1", "mix"],
        ]
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory, "samples.csv.gz")
            with gzip.open(path, "wt", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["metric_name", "timestamp", "metric_value", "scenario"])
                writer.writerows(rows)
            seconds = timeline.read(path, scenario="mix")
        self.assertEqual([s["t"] for s in seconds], [100, 101])
        self.assertEqual((seconds[0]["requests"], seconds[0]["failures"], seconds[0]["p99"]), (2, 1, 4.0))
        self.assertEqual((seconds[1]["requests"], seconds[1]["dropped"], seconds[1]["max"]), (1, 2, 3.0))


class Ramp(unittest.TestCase):
    def test_fit_is_exact_on_a_line(self):
        intercept, slope, r_squared = analysis.linear_fit([(100, 0.15), (200, 0.25), (300, 0.35)])
        self.assertAlmostEqual(intercept, 0.05)
        self.assertAlmostEqual(slope, 0.001)
        self.assertAlmostEqual(r_squared, 1.0)
        self.assertIsNone(analysis.linear_fit([(1, 1), (2, 2)]))

    def test_highest_rate_held_is_before_the_first_break(self):
        w = analysis.WINDOW
        seconds = []
        # A lone slow window (a stall) at 250/s does not end the ramp; two in a row at 400/s do.
        profile = [(100, 5), (200, 6), (250, 300), (300, 8), (400, 500), (450, 600), (500, 5)]
        for index, (rate, p99) in enumerate(profile):
            seconds += [second(1000 + index * w + i, rate, p99) for i in range(w)]
        seconds.append(second(1000 + len(profile) * w, 10, 5))
        resources = [{"t": 1000 + i + 0.5, "cores": {"server": 0.1 + 0.001 * seconds[i]["requests"]},
                      "memory": {"server": 1}} for i in range(len(profile) * w)]
        lines, result = analysis.ramp(seconds, resources)
        self.assertEqual(result["highest_rate_held"], 300)
        self.assertEqual(result["broke_at_rate"], 400)
        self.assertAlmostEqual(result["cpu_fit"]["server"]["r_squared"], 1.0)
        self.assertAlmostEqual(result["cpu_fit"]["server"]["per_1000"], 1.0)


class Spike(unittest.TestCase):
    def test_recovery_counts_from_the_end_of_the_spike(self):
        # 20 s at 100/s, 1 s up, 8 s at 2000/s, 1 s down (ends at 30), then 100/s again.
        seconds = [second(t, 100, 2) for t in range(0, 20)]
        seconds += [second(t, 2000, 80) for t in range(20, 30)]
        seconds += [second(30, 100, 300), second(31, 100, 40), second(32, 100, 3)]
        seconds += [second(t, 100, 2) for t in range(33, 60)]
        _, result = analysis.spike(seconds, 8)
        self.assertEqual(result["recovery_seconds"], 2)
        self.assertEqual(result["spike_rate"], 2000)


class Overload(unittest.TestCase):
    def test_shedding_admitted_latency_and_recovery(self):
        # 20 s at 100/s; a 30 s ramp shedding from 36 s; 10 s held; 1 s down
        # (ends at 61); shedding goes on for 2 s more, then back to normal.
        seconds = [second(t, 100, 2) for t in range(0, 20)]
        seconds += [second(t, 1000, 20) for t in range(20, 36)]
        seconds += [second(t, 3000, 150, shed=1500) for t in range(36, 61)]
        seconds += [second(61, 100, 50, shed=50), second(62, 100, 30, shed=10)]
        seconds += [second(t, 100, 2) for t in range(63, 90)]
        lines, result = analysis.overload(seconds, 30)
        self.assertEqual(result["recovery_seconds"], 2)
        self.assertEqual(result["worst_admitted_p99"], 150)
        self.assertEqual(result["shedding_from_rate"], 3000)
        self.assertGreater(result["shed_share"], 0.3)
        self.assertIn("| 36 | 3000 | 1500 | 50.0% |", "\n".join(lines))

    def test_a_longer_hold_is_judged_on_its_own_with_the_limit_scraped(self):
        # 20 s at 100/s; a 5 s ramp; 60 s held at 1600/s asked, 1000 admitted
        # (p99 150 ms), then 1 s down and at once back to normal.
        seconds = [second(t, 100, 2) for t in range(0, 20)]
        seconds += [second(t, 800, 20) for t in range(20, 25)]
        seconds += [second(t, 1600, 150, shed=600) for t in range(25, 85)]
        seconds += [second(t, 100, 2) for t in range(85, 120)]
        resources = [{"t": t + 0.5, "gauges": {"notegraph_concurrency_limit": 40 if t < 30 else 12}}
                     for t in range(0, 120)]
        lines, result = analysis.overload(seconds, 5, 60, resources)
        hold = result["hold"]
        self.assertEqual((hold["answered_rate"], hold["offered_rate"], hold["admitted_p99"]), (1000, 1600, 150))
        self.assertEqual(hold["limit_range"], [12, 40])
        self.assertEqual(result["recovery_seconds"], 0)
        self.assertIn("**1000 answered/s** of 1600", "\n".join(lines))

    def test_timeline_keeps_503s_out_of_latency(self):
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory, "samples.csv.gz")
            with gzip.open(path, "wt", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["metric_name", "timestamp", "metric_value", "scenario", "status"])
                writer.writerow(["http_req_duration", "100", "90.0", "overload", "200"])
                writer.writerow(["http_req_duration", "100", "0.5", "overload", "503"])
            [entry] = timeline.read(path)
            self.assertEqual((entry["requests"], entry["shed"], entry["p50"]), (2, 1, 90.0))


class Beside(unittest.TestCase):
    def summary(self, alone, beside, failed):
        return {"metrics": {
            "http_req_duration{scenario:alone}": {"med": 1.0, "p(99)": alone},
            "http_req_duration{scenario:beside}": {"med": 1.2, "p(99)": beside},
            "http_reqs{scenario:alone}": {"count": 60000}, "http_reqs{scenario:beside}": {"count": 60000},
            "failures{scenario:beside}": {"passes": failed}, "failures{scenario:alone}": {"passes": 0},
            "http_reqs{scenario:creates}": {"count": 9000}, "http_req_duration{scenario:creates}": {"p(99)": 30.0},
            "failures{scenario:creates}": {"passes": 0}}}

    def test_reads_beside_creates_against_alone(self):
        lines, result = analysis.beside(self.summary(8.0, 11.0, 0), 60)
        self.assertTrue(result["held"])
        self.assertAlmostEqual(result["ratio"], 1.375)
        self.assertIn("9000 (150.0/s over the 60 s beside the mix)", "\n".join(lines))
        self.assertFalse(analysis.beside(self.summary(8.0, 12.5, 0), 60)[1]["held"])
        self.assertFalse(analysis.beside(self.summary(8.0, 9.0, 1), 60)[1]["held"])
        self.assertFalse(analysis.beside({"metrics": {}}, 60)[1]["held"])


class Concurrency(unittest.TestCase):
    def test_the_limit_counts_come_from_the_labelled_series(self):
        metrics = {"notegraph_concurrency_limit": 37.0, "notegraph_concurrency_shed_total": 12.0,
                   'notegraph_concurrency_limit_changes_total{direction="up"}': 5.0,
                   'notegraph_concurrency_limit_changes_total{direction="down"}': 9.0}
        self.assertEqual(report.concurrency(metrics),
                         {"limit_at_end": 37.0, "shed": 12.0, "changes_up": 5.0, "changes_down": 9.0})
        self.assertIsNone(report.concurrency({}))


class Soak(unittest.TestCase):
    def test_memory_growth_is_set_beside_the_caches(self):
        seconds = [second(t, 1000, 5.0) for t in range(0, 1200)]
        mib = 2**20
        # RSS grows 8 MiB after the warm-up (the first 100 s) while the
        # response cache's counted bytes grow 6 MiB.
        resources = [{"t": t + 0.5, "cores": {"server": 0.2}, "memory": {"server": (80 + 8 * t / 1199) * mib},
                      "sockets": 114, "threads": 9,
                      "gauges": {"notegraph_response_cache_bytes": (10 + 6 * t / 1199) * mib,
                                 "notegraph_response_cache_entries": 1000.0,
                                 "notegraph_parsed_documents_bytes": 30.0 * mib,
                                 "notegraph_parsed_documents_entries": 5000.0}} for t in range(1200)]
        lines, result = analysis.soak(seconds, resources)
        text = "\n".join(lines)
        held = result["held"]
        self.assertAlmostEqual((held["server RSS"]["end"] - held["server RSS"]["after_warm_up"]) / mib, 7.33, 1)
        self.assertAlmostEqual((held["response cache, bytes counted"]["end"]
                                - held["response cache, bytes counted"]["after_warm_up"]) / mib, 5.5, 1)
        self.assertIn("| parsed documents, entries | 5000 | 5000 | 0 |", text)
        self.assertIn("| threads | 9 | 9 | +0 |", text)
        self.assertIn("the two caches' counted bytes by 5.5 MiB", text)
        # Level: the 100 s after warm-up against the last 100 s, about
        # 80.8 against 87.6 MiB.
        self.assertAlmostEqual(result["server_level_growth"], 6.8 / 80.8, 2)

    def test_missing_gauges_are_shown_as_missing(self):
        seconds = [second(t, 1000, 5.0) for t in range(0, 120)]
        resources = [{"t": t + 0.5, "cores": {"server": 0.2}, "memory": {"server": 2**20}, "sockets": 3,
                      "threads": 4, "gauges": {}} for t in range(120)]
        lines, _ = analysis.soak(seconds, resources)
        self.assertIn("| response cache, entries | n/a | n/a | |", "\n".join(lines))


class Outputs(unittest.TestCase):
    def figures(self, p99, rate):
        return {"scenario": "mix", "rate_asked": 1000, "latency_ms": {"p(99)": p99}, "achieved_rate": rate}

    def test_compare_flags_more_than_ten_percent(self):
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory, "base.json")
            path.write_text(json.dumps({**self.figures(10.0, 1000.0), "duration_asked": "60s"}))
            self.assertFalse(compare.compare(self.figures(10.9, 950.0), path)[1])
            self.assertTrue(compare.compare(self.figures(11.5, 1000.0), path)[1])
            self.assertTrue(compare.compare(self.figures(10.0, 850.0), path)[1])

    def test_chart_is_well_formed_svg(self):
        seconds = [second(t, 100, 2.0 + t) for t in range(100, 110)]
        seconds[3]["p99"] = None
        resources = [{"t": 100.5 + i, "cores": {"server": 0.1, "k6": 0.2}, "memory": {"server": 2**20, "k6": 2**21},
                      "sockets": 3} for i in range(10)]
        svg = chart.render("mix & more", seconds, resources)
        root = ElementTree.parse(io.StringIO(svg)).getroot()
        self.assertTrue(root.tag.endswith("svg"))
        self.assertEqual(svg.count("<path "), 2 + 3 + 2 + 2 + 1)

    def test_run_settings_name_the_server_settings_and_mask_secrets(self):
        environ = {"NOTEGRAPH_CACHE_ENABLED": "false", "NOTEGRAPH_JWT_SECRET": "s3cret",
                   "NOTEGRAPH_EMBED_API_KEY": "sk-1", "NOTEGRAPH_STATIC_TOKENS": "t=1", "HOME": "/root", "GOGC": "50",
                   "QUERY": "nplus1", "HOLD": "60s"}
        self.assertEqual(loadtest_main.run_settings(environ),
                         ["GOGC=50", "HOLD=60s", "NOTEGRAPH_CACHE_ENABLED=false", "NOTEGRAPH_EMBED_API_KEY=***",
                          "NOTEGRAPH_JWT_SECRET=***", "NOTEGRAPH_STATIC_TOKENS=***", "QUERY=nplus1"])

    def test_k6_durations(self):
        self.assertEqual(report.duration_seconds("1h30m"), 5400)
        self.assertEqual(report.duration_seconds("90s"), 90)
        self.assertIsNone(report.duration_seconds(None))


class Fairness(unittest.TestCase):
    def test_quota_reads_the_header_parameters(self):
        self.assertEqual(fairness.quota('"authenticated";q=25000;w=13'), {"q": 25000, "w": 13})
        self.assertEqual(fairness.quota('"authenticated";r=23700;t=1'), {"r": 23700, "t": 1})

    def summary(self, alone, together, failed=0.0, limited=0.9, checks=1.0):
        # The shape of k6's --summary-export, which the runner writes.
        def trend(p99):
            return {"p(99)": p99, "med": p99 / 3}
        return {"metrics": {
            "http_req_duration{scenario:polite_alone}": trend(alone),
            "http_req_duration{scenario:polite_together}": trend(together),
            "failures{scenario:polite_alone}": {"value": 0.0},
            "failures{scenario:polite_together}": {"value": failed},
            "greedy_limited": {"value": limited},
            "checks{scenario:greedy}": {"value": checks}}}

    def test_the_polite_p99_against_the_bound(self):
        _, result = fairness.analyse(self.summary(4.0, 5.9))
        self.assertAlmostEqual(result["p99_ratio"], 1.475)
        self.assertTrue(result["held"])
        self.assertFalse(fairness.analyse(self.summary(4.0, 6.1))[1]["held"])
        # A polite failure, no refusal of the greedy one, or a 429 without its headers: not held.
        self.assertFalse(fairness.analyse(self.summary(4.0, 4.0, failed=0.001))[1]["held"])
        self.assertFalse(fairness.analyse(self.summary(4.0, 4.0, limited=0.0))[1]["held"])
        self.assertFalse(fairness.analyse(self.summary(4.0, 4.0, checks=0.99))[1]["held"])
        lines, result = fairness.analyse({"metrics": {}})
        self.assertIsNone(result["p99_ratio"])
        self.assertFalse(result["held"])


if __name__ == "__main__":
    unittest.main()
