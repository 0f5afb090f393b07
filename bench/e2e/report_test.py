#!/usr/bin/env python3
"""Offline checks of the benchmark's report and answer comparison (no broker, no daemon, no
timing): compare_weekly.compare finds equal and different answers; report.build and
report.markdown turn a scripts/bench work dir into the last line and BENCHMARKS.md, with every
figure from the work dir, commands relative to the repository, and peer answers that differ as
an error; versus.summarize gives medians and ranges.

    bench/e2e/report_test.py        (ctest -L bench)
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "bench", "peers", "kstreams"))
import compare_weekly  # noqa: E402
import report  # noqa: E402
import versus  # noqa: E402

HUB = {"unique_downloads": 7, "rejected": 2, "rejected_by_reason": {"malformed": 2},
       "weeks_queried": ["2025-W09", "2025-W14"],
       "weeks": {"2025-W11": {"total": 5, "entities": 2, "hhi": (9 + 4) / 25, "complete": True,
                              "models": {"a/x": 3, "b/y": 2}},
                 "2025-W12": {"total": 2, "entities": 1, "hhi": 1.0, "complete": True,
                              "models": {"a/x": 2}}}}
PEER_ROWS = [("a/x", "2025-W11", 3), ("b/y", "2025-W11", 2), ("a/x", "2025-W12", 2)]
PEER_RESULT = {"unique_downloads": 7, "rejected": 2, "rejected_by_reason": {"malformed": 2}}


def write_dump(path: str, rows) -> None:
    with open(path, "w") as f:
        for model, week, count in rows:
            f.write(json.dumps({"model_id": model, "week": week, "count": count}) + "\n")


class CompareTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.dump = os.path.join(self.dir, "dump.jsonl")

    def check(self, rows, result) -> bool:
        write_dump(self.dump, rows)
        ok, _ = compare_weekly.compare(compare_weekly.peer_answers(self.dump, result), HUB)
        return ok

    def test_equal(self):
        self.assertTrue(self.check(PEER_ROWS, PEER_RESULT))

    def test_a_model_count_differs(self):
        rows = [("a/x", "2025-W11", 4)] + PEER_ROWS[1:]
        self.assertFalse(self.check(rows, {**PEER_RESULT, "unique_downloads": 8}))

    def test_a_model_missing(self):
        self.assertFalse(self.check(PEER_ROWS[:2], {**PEER_RESULT, "unique_downloads": 5}))

    def test_rejects_differ(self):
        self.assertFalse(self.check(PEER_ROWS, {**PEER_RESULT, "rejected_by_reason":
                                                {"malformed": 1, "too_late": 1}}))

    def test_unique_downloads_differ_from_the_weeks(self):
        self.assertFalse(self.check(PEER_ROWS, {**PEER_RESULT, "unique_downloads": 6}))

    def test_week_beyond_top_k_uses_hhi(self):
        hub = json.loads(json.dumps(HUB))
        hub["weeks"]["2025-W11"].update({"complete": False, "models": {"a/x": 3}})
        write_dump(self.dump, PEER_ROWS)
        peer = compare_weekly.peer_answers(self.dump, PEER_RESULT)
        self.assertTrue(compare_weekly.compare(peer, hub)[0])
        hub["weeks"]["2025-W11"]["hhi"] = 0.5
        self.assertFalse(compare_weekly.compare(peer, hub)[0])


def round_row(rnd, hub_eps, ceil_eps, peer_eps, equal=True):
    n = 1_000_000
    return {"round": rnd, "load_average_before": [1.0, 1.0, 1.0],
            "hub": {"events_per_sec": hub_eps, "cpu_seconds": 1.5, "seconds": n / hub_eps,
                    "cpu_seconds_per_million_events": 1.5, "peak_rss_mb": 300.0,
                    "broker_cpu_seconds": 0.2, "broker_write_bytes": 1000,
                    "answers": f"{REPO}/build-bench/work-full/versus/hub-r{rnd}.json"},
            "ceiling": {"events_per_sec": ceil_eps, "cpu_seconds": 0.5, "seconds": n / ceil_eps,
                        "cpu_seconds_per_million_events": 0.5, "broker_cpu_seconds": 0.1,
                        "broker_write_bytes": 0},
            "peer": {"events_per_sec": peer_eps, "cpu_seconds": 40.0, "seconds": n / peer_eps,
                     "cpu_seconds_per_million_events": 40.0, "peak_rss_mb": 900.0,
                     "broker_cpu_seconds": 9.0, "broker_write_bytes": 300_000_000},
            "answers_equal": equal, "ratio": round(hub_eps / peer_eps, 3),
            "fraction_of_consume_ceiling": round(hub_eps / ceil_eps, 3)}


class ReportTest(unittest.TestCase):
    def workdir(self, equal=True) -> str:
        d = tempfile.mkdtemp()
        rounds = [round_row(1, 900_000, 1_500_000, 60_000, equal),
                  round_row(2, 1_000_000, 1_600_000, 50_000),
                  round_row(3, 1_100_000, 1_400_000, 55_000)]
        vs = {"events": 1_000_000, "rounds_events": 1_000_000, "same_topic_as_e2e": True,
              "rounds": rounds, "summary": versus.summarize(rounds, 1_000_000),
              "answers_equal": all(r["answers_equal"] for r in rounds),
              "peer_config": {"name": "base", "flags": ["--commit_interval_ms=100"],
                              "jvm_opts": "-Xmx1g"},
              "sync_commits": {"events_per_sec": 800_000, "cpu_seconds_per_million_events": 1.7},
              "sweep": {"topic": "t", "events": 1_000_000, "hub": {"events_per_sec": 1},
                        "base_events_per_sec": 50_000, "best": "slim",
                        "runs": [{"name": "base", "changes": {}, "events_per_sec": 48_000,
                                  "answers_equal": True},
                                 {"name": "slim", "changes": {"--repartition_value": "slim"},
                                  "events_per_sec": 60_000, "answers_equal": True},
                                 {"name": "heap2g", "changes": {"jvm": "-Xmx2g"},
                                  "events_per_sec": None, "answers_equal": None},
                                 {"name": "base_again", "changes": {}, "events_per_sec": 52_000,
                                  "answers_equal": True}]},
              "errors": [], "notes": []}
        live = {"live": {"daemon_flags": [], "max_events_per_sec": 150_000,
                         "limited_by": "producer", "rule": "a rule",
                         "steps": [{"rate_target": 200_000, "rate_achieved": 150_000,
                                    "max_lag_second_half": 1000, "drain_seconds": 0.1,
                                    "keeps_up": True, "producer_reached_rate": False}]}}
        files = {
            "versus.json": vs, "live.json": live, "live-sync.json": live,
            "e2e.json": {"events": 1_000_000, "events_per_sec": 950_000, "errors": [],
                         "warnings": [], "query_p99_ms": 0.8, "query_server_cpu_us": 41.5,
                         "query": {"rps_target": 1000, "p99_us": 800, "server_cpu_us_per_call":
                                   41.5, "windows": ["all", "week:2025-W11",
                                                     "range:2025-W11..2025-W12"],
                                   "non_live_windows": ["week:2025-W11",
                                                        "range:2025-W11..2025-W12"]},
                         "query_p99_ms_client_realtime": 0.6,
                         "query_floor_p99_ms": 0.5,
                         "query_floor": {"p50_us": 150, "p99_us": 500, "p999_us": 700,
                                         "server_cpu_us_per_call": 20.0},
                         "query_client_realtime": {"p50_us": 200, "p99_us": 600, "p999_us": 900,
                                                   "server_cpu_us_per_call": 40.0},
                         "batch_answers_per_sec": 6400, "batch_p99_ms": 0.9, "batch_size": 32,
                         "query_batch": {
                             "batch_size": 32, "batch_answers_per_sec": 6400,
                             "batch_p99_ms": 0.9, "batch_rps": 200, "rule": "the rule",
                             "steps": [{"rps": 100, "query": {"rps_target": 100,
                                                              "answers_per_sec": 3200,
                                                              "p99_us": 700}},
                                       {"rps": 200, "query": {"rps_target": 200,
                                                              "answers_per_sec": 6400,
                                                              "p99_us": 900,
                                                              "server_cpu_us_per_answer": 3.25}},
                                       {"rps": 400, "query": {"rps_target": 400,
                                                              "answers_per_sec": 12800,
                                                              "p99_us": 2500}}]}},
            "e2e-produce.json": {"produce_events_per_sec": 200_000, "loadgen_args": "--x"},
            "duckdb.json": {"events": 10, "rounds": 3, "duckdb_seconds": 2.0,
                            "duckdb_seconds_range": [1.8, 2.6],
                            "hubmetrics_seconds_same_file": 1.0,
                            "hubmetrics_seconds_range": [0.8, 1.3],
                            # The median of the paired ratios, not the ratio of the medians.
                            "ratio_duckdb_over_hubmetrics": 2.25, "ratio_range": [1.5, 2.4],
                            "duckdb_parquet_seconds": 0.5,
                            "ratio_duckdb_parquet_over_hubmetrics": 0.6,
                            "ratio_parquet_range": [0.4, 0.7], "answers_equal": True},
            "steps.json": {"errors": [], "notes": [], "live_expected": True,
                           "started": "2026-12-07T00:00:00Z",
                           "load_average_at_start": [2.0, 2.0, 2.0],
                           "commands": [f"{REPO}/bench/e2e/versus.py --bin_dir "
                                        f"{REPO}/build-bench/services",
                                        f"python3 {REPO}/bench/peers/duckdb/compare.py"]},
        }
        for name, obj in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(json.dumps(obj) + "\n")
        os.makedirs(os.path.join(d, "micro"))
        return d

    def test_last_line_and_markdown(self):
        r = report.build(self.workdir(), "quick", REPO)
        self.assertEqual(r["events_per_sec"], 1_000_000)  # the median of the rounds
        self.assertEqual(r["ratio_vs_kstreams"], 20.0)
        self.assertEqual(r["ratio_vs_kstreams_range"], [15.0, 20.0])
        self.assertEqual(r["consume_ceiling_events_per_sec"], 1_500_000)
        self.assertEqual(r["fraction_of_consume_ceiling"], 0.625)
        self.assertEqual(r["kstreams_commit_interval_ms"], 100)
        self.assertIs(r["kstreams_answers_equal"], True)
        self.assertEqual(r["live_max_events_per_sec"], 150_000)
        self.assertEqual(r["ratio_vs_duckdb"], 2.25)
        self.assertEqual(r["ratio_vs_duckdb_range"], [1.5, 2.4])
        self.assertEqual(r["ratio_vs_duckdb_parquet"], 0.6)
        self.assertEqual(r["query_server_cpu_us"], 41.5)
        self.assertEqual(r["batch_answers_per_sec"], 6400)
        self.assertEqual(r["batch_p99_ms"], 0.9)
        self.assertEqual(r["commands"][0], "bench/e2e/versus.py --bin_dir build-bench/services")
        self.assertEqual(r["commands"][1], "bench/peers/duckdb/compare.py")
        self.assertEqual(r["errors"], [])
        # The results JSON is committed: no path of the machine that ran it.
        self.assertNotIn(REPO, json.dumps(r))
        self.assertEqual(r["versus"]["rounds"][0]["hub"]["answers"],
                         "build-bench/work-full/versus/hub-r1.json")
        md = report.markdown(r, "bench/results/x.json", None, None,
                             report.history_rows(None, r, None))
        self.assertNotIn(REPO, md)
        self.assertIn("median 1,000,000 events/s", md)
        self.assertIn("was 20× as fast (per round 15× to 20×)", md)
        self.assertIn("a lower bound, not hubmetricsd's limit", md)
        self.assertNotIn("session", md.lower())
        self.assertIn("| slim | --repartition_value=slim | 60,000 | 120% |", md)
        self.assertIn("base and base_again differed by +8.3%", md)
        self.assertIn("the windows computed on request `week:2025-W11`, "
                      "`range:2025-W11..2025-W12`", md)
        self.assertIn("| 41.5 µs |", md)
        self.assertEqual(r["query_p99_ms_client_realtime"], 0.6)
        self.assertIn("only query_load at SCHED_FIFO (hubmetricsd unchanged, time-shared): "
                      "p50 200 µs, p99 600 µs, p99.9 900 µs, server CPU 40 µs per call; the "
                      "time-shared client's p99 was 800 µs: the difference is the client's own "
                      "wait for a core", md)
        self.assertIn("0.8 ms (server CPU 41.5 µs per call); a do-nothing gRPC server under "
                      "the same load: 0.5 ms | met |", md)
        self.assertEqual(r["query_floor_p99_ms"], 0.5)
        self.assertIn("p99 500 µs, p99.9 700 µs, server CPU 20 µs per call; hubmetricsd's p99 "
                      "is 300 µs above it (1.60× the floor); so this machine allows a p99 under "
                      "1 ms under this load.", md)
        self.assertIn("| 6,400 answers/s (batches of 32 at 200 calls/s), p99 0.9 ms | met |", md)
        self.assertIn("| 3.25 µs |", md)
        self.assertIn("| **DuckDB (NDJSON) / hubmetricsd** | **2.25×** | 1.5–2.4× | | |", md)
        self.assertIn("| DuckDB, NDJSON | 2 s | 1.8–2.6 s |", md)
        self.assertIn("| DuckDB (Parquet) / hubmetricsd | 0.6× | 0.4–0.7× | | |", md)

    def markdown_with_e2e(self, change) -> str:
        """The report's markdown of workdir() after `change` edited its e2e.json (a dict)."""
        d = self.workdir()
        path = os.path.join(d, "e2e.json")
        with open(path) as f:
            e2e = json.load(f)
        change(e2e)
        with open(path, "w") as f:
            f.write(json.dumps(e2e) + "\n")
        return report.markdown(report.build(d, "quick", REPO), None, None, None, [])

    def test_a_real_time_client_that_did_no_better_is_not_explained_by_its_wait(self):
        # 900 µs: above the time-shared client's 800 µs.
        md = self.markdown_with_e2e(
            lambda e2e: e2e["query_client_realtime"].update(p99_us=900))
        self.assertIn("p99 900 µs", md)
        self.assertNotIn("the difference is the client's own wait", md)
        self.assertIn("the real-time client did not do better", md)

    def test_a_floor_over_1_ms_says_no_server_reaches_the_target_here(self):
        # 1,200 µs: above hubmetricsd's 800 µs.
        md = self.markdown_with_e2e(lambda e2e: e2e["query_floor"].update(p99_us=1200))
        self.assertIn("p99 1200 µs", md)
        self.assertIn("hubmetricsd's p99 was not above it; so under this load on this machine not "
                      "even a server that only answers gets a p99 under 1 ms.", md)

    def test_sections_of_other_scripts_are_kept_once(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        md = os.path.join(d, "B.md")
        with open(md, "w") as f:
            f.write("# Benchmarks\n\n## Scale-out\n\nscale text\n\n"
                    f"{report.ON_DEMAND_BEGIN}\n## On-demand views at Hub scale\n\nod text\n"
                    f"{report.ON_DEMAND_END}\n")
        scaleout = report.kept_section(md, report.SCALEOUT_HEADING)
        on_demand = report.kept_marked(md, report.ON_DEMAND_BEGIN, report.ON_DEMAND_END)
        self.assertEqual(scaleout, "## Scale-out\n\nscale text\n")
        self.assertTrue(on_demand.startswith(report.ON_DEMAND_BEGIN + "\n## On-demand"))
        r = report.build(self.workdir(), "quick", REPO)
        out = report.markdown(r, None, None, scaleout, [], on_demand)
        self.assertEqual(out.count(report.ON_DEMAND_BEGIN), 1)
        self.assertEqual(out.count("scale text"), 1)
        self.assertEqual(out.count("od text"), 1)

    def test_answers_that_differ_are_an_error(self):
        r = report.build(self.workdir(equal=False), "quick", REPO)
        self.assertIs(r["kstreams_answers_equal"], False)
        self.assertTrue(any("answers_equal" in e for e in r["errors"]))

    def test_missing_live_result_is_an_error(self):
        d = self.workdir()
        os.remove(os.path.join(d, "live.json"))
        r = report.build(d, "quick", REPO)
        self.assertTrue(any(e.startswith("live:") for e in r["errors"]))


if __name__ == "__main__":
    unittest.main()
