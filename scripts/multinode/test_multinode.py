"""The multi-node proof's arithmetic: `python3 -m unittest discover -s scripts/multinode -t scripts`."""
import unittest

from multinode import figures


def write(server, start, end):
    return {"server": server, "start": start, "end": end}


class EventAccounting(unittest.TestCase):
    def setUp(self):
        # Writes 1..6, one every second, each request taking 0.1 s, through s1, s2, s3 in turn.
        self.writes = {str(n): write(f"s{(n - 1) % 3 + 1}", float(n), n + 0.1) for n in range(1, 7)}

    def event(self, note_id):
        return (note_id, self.writes[note_id]["end"] + 0.05, self.writes[note_id]["end"] - 0.02)

    def test_everything_delivered_on_one_stream(self):
        streams = {"sub": [{"server": "s1", "received": [self.event(str(n)) for n in range(1, 7)]}]}
        out = figures.account_events(self.writes, streams)
        self.assertEqual((out["expected"], out["delivered"], out["lost"], out["gap"]), (6, 6, 0, 0))
        # Writes 2, 3, 5, 6 went through s2 and s3, not the subscriber's s1.
        self.assertEqual(out["delivered_cross_server"], 4)
        self.assertEqual(out["latency_ms"]["count"], 6)
        self.assertAlmostEqual(out["latency_ms"]["p50"], 70.0, places=6)

    def test_a_missing_event_inside_a_window_is_lost_and_between_streams_a_gap(self):
        streams = {"sub": [
            # Delivered 1, 2 and 4: 3 was committed between two delivered events, so it is lost.
            {"server": "s1", "received": [self.event("1"), self.event("2"), self.event("4")]},
            # After reconnecting: 5 came while no stream was proven subscribed, so it is a gap.
            {"server": "s2", "received": [self.event("6")]},
        ]}
        out = figures.account_events(self.writes, streams)
        row = out["subscribers"]["sub"]
        self.assertEqual((row["delivered"], row["lost"], row["gap"]), (4, 1, 1))
        self.assertEqual(row["streams"], 2)

    def test_writes_overlapping_a_window_edge_are_not_counted_lost(self):
        writes = {"a": write("s1", 1.0, 1.5), "b": write("s1", 1.2, 1.3), "c": write("s1", 2.0, 2.1)}
        # b started before a ended: nothing proves it committed after a, so missing it is a gap.
        streams = {"sub": [{"server": "s1", "received": [("a", 1.6, 1.4), ("c", 2.2, 2.05)]}]}
        row = figures.account_events(writes, streams)["subscribers"]["sub"]
        self.assertEqual((row["delivered"], row["lost"], row["gap"]), (2, 0, 1))

    def test_duplicates_and_unknown_events_are_counted(self):
        streams = {"sub": [{"server": "s1", "received": [self.event("1"), self.event("1"), ("999", 1.0, 1.0)]}]}
        out = figures.account_events(self.writes, streams)
        self.assertEqual((out["duplicates"], out["unknown"], out["delivered"]), (1, 1, 1))

    def test_a_subscriber_that_never_connected_has_only_gaps(self):
        out = figures.account_events(self.writes, {"sub": []})
        self.assertEqual((out["delivered"], out["lost"], out["gap"]), (0, 0, 6))
        self.assertIsNone(out["latency_ms"]["p50"])


class Distributions(unittest.TestCase):
    def test_percentiles_and_empty(self):
        d = figures.distribution(range(1, 101))
        self.assertEqual((d["count"], d["p50"], d["p99"], d["max"]), (100, 50, 99, 100))
        self.assertEqual(figures.distribution([]), {"count": 0, "p50": None, "p99": None, "max": None})

    def test_replica_lag_counts_idle_as_zero_and_separates_disconnected(self):
        out = figures.replica_lag([(None, 0.0), (4.0, 512.0), (None, None), (10.0, 2048.0)])
        self.assertEqual((out["samples"], out["idle"], out["disconnected"]), (4, 1, 1))
        self.assertEqual(out["replay_lag_ms"]["max"], 10.0)
        self.assertEqual(out["replay_lag_ms"]["p50"], 4.0)
        self.assertEqual(out["lsn_gap_bytes"]["count"], 3)

    def test_prometheus_values_reads_unlabelled_samples(self):
        text = ("# HELP a_total A.\n# TYPE a_total counter\na_total 12\nb_total{x=\"1\"} 3\n"
                "a_total_other 9\n")
        self.assertEqual(figures.prometheus_values(text, ("a_total", "b_total")), {"a_total": 12.0, "b_total": 0.0})

    def test_parse_time_keeps_microseconds_of_nanosecond_times(self):
        self.assertAlmostEqual(figures.parse_time("1970-01-01T00:00:01.123456789Z"), 1.123456, places=6)
        self.assertEqual(figures.parse_time("1970-01-01T00:01:00+00:00"), 60.0)


class Properties(unittest.TestCase):
    def passing(self):
        return {
            "stale_reads": 0, "failed_requests": {"total": 0}, "servers": 3,
            "sse": {"lost": 0, "duplicates": 0, "writes": 10},
            "invalidation": {"never_seen": 0, "bound_s": 5.0, "lag_ms": {"count": 5}},
            "restarts": [{"server": f"s{n}", "exit_code": 0, "ready_after_s": 3.0} for n in (1, 2, 3)],
        }

    def test_a_clean_run_holds(self):
        self.assertEqual(figures.failed_properties(self.passing()), [])

    def test_invalidation_is_not_required_with_the_cache_off(self):
        fig = self.passing()
        fig["invalidation"].update(cache_disabled=True, lag_ms={"count": 0})
        self.assertEqual(figures.failed_properties(fig), [])

    def test_each_property_can_fail(self):
        breakers = [
            lambda f: f.update(stale_reads=1),
            lambda f: f["failed_requests"].update(total=2),
            lambda f: f["sse"].update(lost=1),
            lambda f: f["sse"].update(duplicates=1),
            lambda f: f["sse"].update(writes=0),
            lambda f: f["invalidation"].update(never_seen=1),
            lambda f: f["invalidation"].update(lag_ms={"count": 0}),
            lambda f: f["restarts"].pop(),
            lambda f: f["restarts"][0].update(exit_code=1),
            lambda f: f["restarts"][1].update(ready_after_s=None),
        ]
        for breaker in breakers:
            fig = self.passing()
            breaker(fig)
            self.assertEqual(len(figures.failed_properties(fig)), 1, fig)


if __name__ == "__main__":
    unittest.main()
