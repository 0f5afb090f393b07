#!/usr/bin/env python3
"""Hand-computed cases for reference.py, so that the e2e oracle is itself checked."""

import os
import sys
import unittest
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference as ref  # noqa: E402

DAY_NS = ref.NS_PER_DAY


def ev(model, user, time):
    return '{"model_id":"%s","user_id":"%s","time":"%s"}' % (model, user, time)


class MeasuresTest(unittest.TestCase):
    def test_two_entities(self):
        # counts 3, 1: X = 4, n = 2.
        # HHI = (3/4)^2 + (1/4)^2 = 9/16 + 1/16 = 10/16.
        # Gini = (|3-1| + |1-3|) / (2 * n * X) = 4 / (2 * 2 * 4) = 1/4.
        # top-1 = 3/4; top-10 = 4/4.
        m = ref.measures([3, 1])
        self.assertEqual(m["total"], 4)
        self.assertEqual(m["entities"], 2)
        self.assertEqual(m["hhi"], Fraction(10, 16))
        self.assertEqual(m["gini"], Fraction(1, 4))
        self.assertEqual(m["top_shares"], {1: Fraction(3, 4), 10: Fraction(1), 100: Fraction(1)})

    def test_four_entities(self):
        # counts 1, 2, 3, 4: X = 10. HHI = (1 + 4 + 9 + 16) / 100 = 30/100.
        # pairs i<j: |1-2|+|1-3|+|1-4|+|2-3|+|2-4|+|3-4| = 1+2+3+1+2+1 = 10; both orders: 20.
        # Gini = 20 / (2 * 4 * 10) = 1/4. top-1 = 4/10, top-2 = 7/10.
        m = ref.measures([4, 1, 3, 2], top_k=(1, 2))
        self.assertEqual(m["hhi"], Fraction(3, 10))
        self.assertEqual(m["gini"], Fraction(1, 4))
        self.assertEqual(m["top_shares"], {1: Fraction(2, 5), 2: Fraction(7, 10)})

    def test_equal_and_single_and_empty(self):
        m = ref.measures([2, 2, 2])  # perfect equality: Gini 0, HHI 1/n
        self.assertEqual(m["hhi"], Fraction(1, 3))
        self.assertEqual(m["gini"], 0)
        m = ref.measures([5])  # a monopoly: HHI 1, Gini 0 (n <= 1)
        self.assertEqual((m["hhi"], m["gini"], m["top_shares"][1]), (1, 0, 1))
        m = ref.measures([0, 0])  # zeros are not entities
        self.assertEqual((m["total"], m["entities"], m["hhi"], m["gini"]), (0, 0, 0, 0))
        self.assertEqual(m["top_shares"][1], 0)


class ValidationTest(unittest.TestCase):
    def test_model_ids(self):
        for good in ["gpt2", "bert-base-uncased", "google-bert/bert-base-uncased", "a/b", "_x/y_",
                     "Qwen/Qwen2.5-7B-Instruct", "a" * 96, "n" * 96 + "/" + "m" * 96]:
            self.assertTrue(ref.valid_model_id(good), good)
        for bad in ["a--b/c", "-x/y", "a/b/c", "x/y.git", "org/" + "a" * 97, "a" * 97 + "/x",
                    "x/y..z", "ns/", "/name", "has space/m", "ns/name-", "ns/.x", "ns/\u00e9", "",
                    "x.git"]:
            self.assertFalse(ref.valid_model_id(bad), bad)

    def test_times(self):
        base = ref.parse_rfc3339("2025-03-04T12:34:56Z")
        # 2025-03-04 is day 20151 since 1970-01-01.
        self.assertEqual(base, (20151 * 86400 + 12 * 3600 + 34 * 60 + 56) * 10**9)
        self.assertEqual(ref.parse_rfc3339("2025-03-04T14:34:56+02:00"), base)
        self.assertEqual(ref.parse_rfc3339("2025-03-04T07:04:56-05:30"), base)
        self.assertEqual(ref.parse_rfc3339("2025-03-04T12:34:56.5Z"), base + 500_000_000)
        self.assertEqual(ref.parse_rfc3339("2025-03-04T12:34:56.000000001Z"), base + 1)
        self.assertIsNotNone(ref.parse_rfc3339("2024-02-29T00:00:00Z"))
        self.assertIsNotNone(ref.parse_rfc3339("0001-01-01T00:00:00Z"))
        self.assertIsNotNone(ref.parse_rfc3339("9999-12-31T23:59:59Z"))
        for bad in ["2025-02-29T00:00:00Z", "2025-13-01T00:00:00Z", "yesterday",
                    "2025-03-04 12:00:00", "2025-03-04T12:00:00", "0000-01-01T00:00:00Z",
                    "2025-03-04T24:00:00Z", "2025-3-4T12:00:00Z", "2025-03-04t12:00:00z",
                    "2025-03-04T12:00:00+2:00", "\u0662025-03-04T12:00:00Z"]:
            self.assertIsNone(ref.parse_rfc3339(bad), bad)
        # A day before the epoch floors.
        self.assertEqual(ref.utc_day(ref.parse_rfc3339("1969-12-31T23:59:59Z")), -1)


class ClassifyTest(unittest.TestCase):
    T = "2025-03-04T12:00:00Z"

    def outcomes(self, lines):
        r = ref.Reference()
        return [r.ingest_event(l) for l in lines], r

    def test_reasons_in_order(self):
        got, r = self.outcomes([
            "{not json",
            '{"model_id":"a/b","user_id":"u"',          # truncated
            ev("a/b", "u", self.T) + " trailing",
            '{"model_id":"a/b","user_id":"u","time":NaN}',
            '{"model_id":42,"user_id":"u","time":"%s"}' % self.T,  # wrong type beats missing
            '{"model_id":"a/b","time":1741091696}',
            "[1,2]", "42", '"x"', "null",
            '{"user_id":"u","time":"%s"}' % self.T,
            '{"model_id":"","user_id":"u","time":"%s"}' % self.T,
            '{"model_id":"a/b","user_id":null,"time":"%s"}' % self.T,
            '{"model_id":"a/b","user_id":"u","time":""}',
            ev("a--b/c", "u", self.T),
            ev("a/b", "u", "yesterday"),
            ev("a/b", "u", "2099-03-04T12:00:00Z"),
            ev("a/b", "u", self.T),
            '{"model_id":"a/b","user_id":"u","time":"%s","extra":{"x":[1]}}' % self.T,
        ])
        self.assertEqual(got, ["malformed"] * 5 + ["malformed"] + ["not_object"] * 4 +
                         ["missing_field"] * 4 + ["invalid_model_id", "invalid_time", "future",
                                                  "unique", "duplicate"])
        self.assertEqual(r.events_read, 19)
        self.assertEqual(r.rejected, 17)
        self.assertEqual(r.rejected_by_reason["malformed"], 6)

    def test_too_large_before_anything_else(self):
        head = '{"model_id":"a/b","user_id":"u","time":"%s","p":"' % self.T
        fits = head + "p" * (65536 - len(head) - 2) + '"}'
        self.assertEqual(len(fits), 65536)
        over = fits[:-2] + 'q"}'
        got, r = self.outcomes([over, fits, " " * 65537, "{" * 70000, b"\xff" * 65537,
                                fits.encode()[:-2] + b'\r"}'])
        # Bytes count, not characters, and the line's "\r" with them.
        self.assertEqual(got, ["too_large", "unique", "too_large", "too_large", "too_large",
                               "too_large"])
        self.assertEqual(r.rejected_by_reason["too_large"], 5)
        self.assertEqual(r.watermark_ns, ref.parse_rfc3339(self.T))  # only the one accepted
        got, _ = self.outcomes(["\u20ac" * 21846])  # 65538 bytes, 21846 characters
        self.assertEqual(got, ["too_large"])

    def test_lateness_and_watermark(self):
        got, r = self.outcomes([
            ev("a/b", "u", "2025-03-10T00:00:00Z"),  # watermark day 10
            ev("a/b", "u", "2025-03-06T23:59:59Z"),  # day 6 < 10 - 3: too late
            ev("a/b", "u", "2025-03-07T00:00:00Z"),  # day 7 = 10 - 3: accepted
            ev("a/b", "v", "2025-03-09T00:00:00Z"),  # does not move the watermark back
            ev("a/b", "u", "2025-03-10T05:00:00Z"),  # same day as the first: duplicate
            ev("a/b", "u", "2025-03-11T00:00:00+01:00"),  # 10 March 23:00 UTC: duplicate
            ev("a/b", "u", "2025-03-11T00:00:00Z"),  # next day: unique
        ])
        self.assertEqual(got, ["unique", "too_late", "unique", "unique", "duplicate", "duplicate",
                               "unique"])
        self.assertEqual(r.watermark_ns, ref.parse_rfc3339("2025-03-11T00:00:00Z"))
        # Rejected events never move the watermark, even a "future" one.
        got, r = self.outcomes([ev("a/b", "u", "2099-01-01T00:00:00Z"),
                                ev("a/b", "u", "2025-01-01T00:00:00Z")])
        self.assertEqual(got, ["future", "unique"])


def catalog(*records):
    return ref.load_catalog(records)


class CatalogTest(unittest.TestCase):
    def test_roots(self):
        recs = ['{"model_id":"c/s0"}']
        for i in range(1, 41):
            recs.append('{"model_id":"c/s%d","base_model":"c/s%d"}' % (i, i - 1))
        recs += ['{"model_id":"l/a","base_model":"l/b"}', '{"model_id":"l/b","base_model":"l/a"}',
                 '{"model_id":"l/c","base_model":"l/a"}',
                 '{"model_id":"g/x","base_model":"ghost/base"}']
        r = ref.Reference()
        r.set_catalog(catalog(*recs))
        self.assertEqual(r.root("c/s0"), "c/s0")
        self.assertEqual(r.root("c/s1"), "c/s0")
        self.assertEqual(r.root("c/s32"), "c/s0")    # exactly 32 links: fine
        self.assertEqual(r.root("c/s33"), "c/s33")   # a 33rd link: itself
        self.assertEqual(r.root("c/s40"), "c/s40")
        self.assertEqual(r.root("l/a"), "l/a")       # cycle
        self.assertEqual(r.root("l/c"), "l/c")       # c -> a -> b -> a: cycle, credit c
        self.assertEqual(r.root("g/x"), "ghost/base")  # base without a catalog record
        self.assertEqual(r.root("unknown/m"), "unknown/m")

    def test_last_record_wins_as_a_whole(self):
        c = catalog('{"model_id":"a/m","developer":"D","country":"US","base_model":"a/b",'
                    '"created_at":"2025-01-01T10:00:00Z"}',
                    '{"model_id":"a/m","country":"FR","likes":3}',
                    '{"model_id":"bad--id/x","developer":"Z"}')
        self.assertEqual(set(c), {"a/m"})
        e = c["a/m"]
        self.assertEqual((e.developer, e.country, e.base_model, e.created_day), ("", "FR", "", None))

    def test_bounded_fields_and_record_size(self):
        c = catalog('{"model_id":"a/ok","developer":"%s","license":"%s"}' % ("d" * 256, "l" * 256),
                    '{"model_id":"a/dev","developer":"%s"}' % ("d" * 257),
                    '{"model_id":"a/cty","country":"%s"}' % ("c" * 257),
                    '{"model_id":"a/org","org_type":"%s"}' % ("o" * 257),
                    '{"model_id":"a/tag","pipeline_tag":"%s"}' % ("t" * 257),
                    '{"model_id":"a/lic","license":"%s"}' % ("l" * 257),
                    '{"model_id":"a/utf","developer":"%s"}' % ("\u20ac" * 86),  # 258 bytes
                    '{"model_id":"a/big","pad":"%s"}' % ("p" * 16384))
        self.assertEqual(set(c), {"a/ok"})

    def test_developer_and_country_fallbacks(self):
        r = ref.Reference()
        r.set_catalog(catalog('{"model_id":"ns/m","developer":"Dev","country":"DE"}',
                              '{"model_id":"ns/n"}', '{"model_id":"gpt2","developer":""}'))
        self.assertEqual(r.developer("ns/m"), "Dev")
        self.assertEqual(r.developer("ns/n"), "ns")
        self.assertEqual(r.developer("gpt2"), "gpt2")
        self.assertEqual(r.developer("other/x"), "other")
        self.assertEqual(r.country("ns/m"), "DE")
        self.assertEqual(r.country("ns/n"), "Unknown")
        self.assertEqual(r.country("nowhere/x"), "Unknown")


class ViewsTest(unittest.TestCase):
    def make(self):
        r = ref.Reference()
        # base/m created 2024-03-04 (day 19786); d/ft derives from it, created 2025-03-01.
        r.set_catalog(catalog(
            '{"model_id":"base/m","developer":"Base","country":"US",'
            '"created_at":"2024-03-04T08:00:00Z"}',
            '{"model_id":"d/ft","base_model":"base/m","country":"FR",'
            '"created_at":"2025-03-01T00:00:00Z"}'))
        r.ingest_events([
            ev("base/m", "u1", "2024-03-03T12:00:00Z"),  # d - created = -1: not rolling
            ev("base/m", "u1", "2024-03-04T00:00:00Z"),  # 0: rolling
            ev("base/m", "u1", "2025-03-04T00:00:00Z"),  # 365: rolling (2024 is a leap year)
            ev("base/m", "u1", "2025-03-05T00:00:00Z"),  # 366: not rolling
            ev("d/ft", "u1", "2025-03-05T00:00:00Z"),    # rolling (d/ft's own created_at)
            ev("d/ft", "u2", "2025-03-05T01:00:00Z"),
            ev("x/nocat", "u1", "2025-03-05T02:00:00Z"),  # no catalog: in no rolling view
        ])
        return r

    def test_counts_per_view(self):
        r = self.make()
        W = "all"
        self.assertEqual(r.window_counts(("model", "all", "direct"), W),
                         {"base/m": 4, "d/ft": 2, "x/nocat": 1})
        self.assertEqual(r.window_counts(("model", "rolling_1y", "direct"), W),
                         {"base/m": 2, "d/ft": 2})
        self.assertEqual(r.window_counts(("model", "all", "recursive"), W),
                         {"base/m": 6, "x/nocat": 1})
        # Recursive + rolling: the filter uses the downloaded model's created_at.
        self.assertEqual(r.window_counts(("model", "rolling_1y", "recursive"), W), {"base/m": 4})
        self.assertEqual(r.window_counts(("developer", "all", "direct"), W),
                         {"Base": 4, "d": 2, "x": 1})
        self.assertEqual(r.window_counts(("country", "all", "recursive"), W),
                         {"US": 6, "Unknown": 1})
        self.assertEqual(r.window_counts(("country", "all", "direct"), W),
                         {"US": 4, "FR": 2, "Unknown": 1})

    def test_windows(self):
        r = self.make()
        # 2025-03-05 is a Wednesday of 2025-W10 (Monday 2025-03-03); the watermark is in it.
        self.assertEqual(ref.week_label(r.watermark_week()), "2025-W10")
        v = ("model", "all", "direct")
        self.assertEqual(r.window_counts(v, "trailing:1"), {"base/m": 2, "d/ft": 2, "x/nocat": 1})
        self.assertEqual(r.window_counts(v, "week:2025-W10"), r.window_counts(v, "trailing:1"))
        # 2024-03-03 is a Sunday (2024-W09), 2024-03-04 a Monday (2024-W10).
        self.assertEqual(r.window_counts(v, "week:2024-W09"), {"base/m": 1})
        self.assertEqual(r.window_counts(v, "week:2024-W10"), {"base/m": 1})
        self.assertEqual(r.window_counts(v, "trailing:53"), {"base/m": 3, "d/ft": 2, "x/nocat": 1})

    def test_week_labels(self):
        self.assertEqual(ref.week_label(ref.iso_week_of_day(20094)), "2025-W02")  # 2025-01-06
        self.assertEqual(ref.week_label(ref.parse_week("2025-W01")), "2025-W01")
        self.assertEqual(ref.parse_week("2025-W01"), 20087)  # Monday 2024-12-30
        self.assertEqual(ref.week_label(ref.iso_week_of_day(18630)), "2020-W53")  # 2021-01-03

    def test_top_and_entity(self):
        r = ref.Reference()
        r.ingest_events([ev("a/x", "u1", "2025-03-05T00:00:00Z"),
                         ev("a/x", "u2", "2025-03-05T00:00:00Z"),
                         ev("B/y", "u1", "2025-03-05T00:00:00Z"),
                         ev("B/y", "u2", "2025-03-05T00:00:00Z"),
                         ev("c/z", "u1", "2025-03-05T00:00:00Z")])
        v = ("model", "all", "direct")
        top = r.top(v, "all", 10)
        # Ties by byte order: "B/y" < "a/x"; ranks 1, 1, 3.
        self.assertEqual([(t["entity"], t["downloads"], t["rank"]) for t in top],
                         [("B/y", 2, 1), ("a/x", 2, 1), ("c/z", 1, 3)])
        self.assertEqual(top[2]["share"], Fraction(1, 5))
        self.assertEqual(len(r.top(v, "all", 2)), 2)
        e = r.entity(v, "all", "c/z")
        self.assertEqual((e["downloads"], e["rank"], e["share"]), (1, 3, Fraction(1, 5)))
        e = r.entity(v, "all", "nobody/none")
        self.assertEqual((e["downloads"], e["rank"], e["share"]), (0, 0, 0))


class NewCatalogFieldsTest(unittest.TestCase):
    def test_fields_read(self):
        c = catalog('{"model_id":"a/m","org_type":"Company","license":"MIT","pipeline_tag":"fill-mask",'
                    '"parameters":"110000000","base_model":"a/b","base_relation":"finetune"}',
                    '{"model_id":"a/n","parameters":7000000000}',
                    '{"model_id":"a/o","parameters":null,"license":null}',
                    '{"model_id":"a/p","parameters":"-5"}',
                    '{"model_id":"a/q","parameters":1e9}',
                    '{"model_id":"a/r","parameters":"+007"}',
                    '{"model_id":"a/s","parameters":100000000.0}',
                    '{"model_id":"a/t","baseModel":"x/y","pipelineTag":"fill-mask",'
                    '"orgType":"Company","baseRelation":"merge","createdAt":"2025-01-01T00:00:00Z"}',
                    '{"model_id":"a/u","base_model":"x/y","baseModel":"z/w","license":"a",'
                    '"license":"b"}',
                    '{"modelId":"a/v","developer":"V"}')
        e = c["a/m"]
        self.assertEqual((e.org_type, e.license, e.pipeline_tag, e.parameters, e.base_model,
                          e.base_relation),
                         ("Company", "MIT", "fill-mask", 110000000, "a/b", "finetune"))
        self.assertEqual(c["a/n"].parameters, 7000000000)
        self.assertEqual((c["a/o"].parameters, c["a/o"].license), (0, ""))
        self.assertEqual(c["a/p"].parameters, -5)
        self.assertEqual((c["a/q"].parameters, c["a/r"].parameters, c["a/s"].parameters),
                         (1_000_000_000, 7, 100_000_000))
        # The JSON names of the fields count as their proto names; the last one given wins.
        e = c["a/t"]
        self.assertEqual((e.base_model, e.pipeline_tag, e.org_type, e.base_relation, e.created_day),
                         ("x/y", "fill-mask", "Company", "merge", 20089))
        self.assertEqual((c["a/u"].base_model, c["a/u"].license), ("z/w", "b"))
        self.assertEqual(c["a/v"].developer, "V")

    def test_a_record_that_does_not_decode_changes_nothing(self):
        good = '{"model_id":"a/m","license":"mit","parameters":"5"}'
        for bad in ['{"model_id":"a/m","parameters":"1.5"}',
                    '{"model_id":"a/m","parameters":1.5}',
                    '{"model_id":"a/m","parameters":"abc"}',
                    '{"model_id":"a/m","parameters":""}',
                    '{"model_id":"a/m","parameters":" 5"}',
                    '{"model_id":"a/m","parameters":"1e9"}',
                    '{"model_id":"a/m","parameters":"0x10"}',
                    '{"model_id":"a/m","parameters":"\u0663"}',
                    '{"model_id":"a/m","parameters":1e30}',
                    '{"model_id":"a/m","parameters":true}',
                    '{"model_id":"a/m","parameters":[5]}',
                    '{"model_id":"a/m","parameters":"9223372036854775808"}',
                    '{"model_id":"a/m","parameters":-9223372036854775809}',
                    '{"model_id":"a/m","license":5}',
                    '{"model_id":"a/m","developer":true}',
                    '{"model_id":"a/m","created_at":42}',
                    '{"model_id":"a/m","pipeline_tag":["fill-mask"]}',
                    '{"model_id":"a/m","base_relation":{"x":1}}',
                    '{"model_id":"a/m","base_relation":"%s"}' % ("r" * 257)]:
            c = catalog(good, bad)
            self.assertEqual((c["a/m"].license, c["a/m"].parameters), ("mit", 5), bad)
        # The int64 bounds themselves are fine.
        c = catalog('{"model_id":"a/m","parameters":"9223372036854775807"}',
                    '{"model_id":"a/n","parameters":-9223372036854775808}')
        self.assertEqual((c["a/m"].parameters, c["a/n"].parameters), (2**63 - 1, -(2**63)))


class LevelsTest(unittest.TestCase):
    def make(self, *records):
        r = ref.Reference()
        r.set_catalog(catalog(*records))
        return r

    def test_org_type_and_license_ascii_lowercased(self):
        r = self.make('{"model_id":"a/m","org_type":"Non_Profit","license":"Apache-2.0"}',
                      '{"model_id":"a/e","org_type":"\u00c9COLE","license":"CC-\u00c9"}',
                      '{"model_id":"a/n","org_type":"","license":""}')
        self.assertEqual(r.entity_of("org_type", "a/m"), "non_profit")
        self.assertEqual(r.entity_of("license", "a/m"), "apache-2.0")
        # Only A-Z: the E with an acute accent stays (str.lower would give "\u00e9cole").
        self.assertEqual(r.entity_of("org_type", "a/e"), "\u00c9cole")
        self.assertEqual(r.entity_of("license", "a/e"), "cc-\u00c9")
        for level in ("org_type", "license", "task"):
            self.assertEqual(r.entity_of(level, "a/n"), "unknown", level)  # empty
            self.assertEqual(r.entity_of(level, "no/record"), "unknown", level)

    def test_task_and_modality(self):
        r = self.make('{"model_id":"t/gen","pipeline_tag":"text-generation"}',
                      '{"model_id":"t/any","pipeline_tag":"any-to-any"}',
                      '{"model_id":"t/rob","pipeline_tag":"robotics"}',
                      '{"model_id":"t/ts","pipeline_tag":"time-series-forecasting"}',
                      '{"model_id":"t/asr","pipeline_tag":"automatic-speech-recognition"}',
                      '{"model_id":"t/img","pipeline_tag":"image-to-3d"}',
                      '{"model_id":"t/graph","pipeline_tag":"graph-ml"}',
                      '{"model_id":"t/case","pipeline_tag":"Text-Generation"}',
                      '{"model_id":"t/empty","pipeline_tag":""}',
                      '{"model_id":"t/none"}')
        self.assertEqual(r.entity_of("task", "t/case"), "Text-Generation")  # as given
        expected = {"t/gen": "nlp", "t/any": "multimodal", "t/rob": "reinforcement_learning",
                    "t/ts": "tabular", "t/asr": "audio", "t/img": "computer_vision",
                    "t/graph": "other",      # not in the table
                    "t/case": "other",       # the table's words are lowercase
                    "t/empty": "unknown", "t/none": "unknown", "no/record": "unknown"}
        for m, want in expected.items():
            self.assertEqual(r.entity_of("modality", m), want, m)
        # The table holds every task the spec lists once: 7 + 19 + 13 + 6 + 3 + 2.
        self.assertEqual(len(ref.MODALITY_OF_TASK), 50)

    def test_size_bucket_boundaries(self):
        cases = [(1, "<100M"), (99_999_999, "<100M"), (100_000_000, "100M-200M"),
                 (199_999_999, "100M-200M"), (200_000_000, "200M-500M"),
                 (499_999_999, "200M-500M"), (500_000_000, "500M-1B"),
                 (999_999_999, "500M-1B"), (1_000_000_000, "1B-10B"),
                 (9_999_999_999, "1B-10B"), (10_000_000_000, "10B-100B"),
                 (99_999_999_999, "10B-100B"), (100_000_000_000, ">=100B"),
                 (2**63 - 1, ">=100B"), (0, "unknown"), (-1, "unknown")]
        records = ['{"model_id":"s/p%d","parameters":"%d"}' % (i, p) for i, (p, _) in enumerate(cases)]
        records.append('{"model_id":"s/missing"}')
        r = self.make(*records)
        for i, (p, want) in enumerate(cases):
            self.assertEqual(r.entity_of("size", f"s/p{i}"), want, p)
        self.assertEqual(r.entity_of("size", "s/missing"), "unknown")
        self.assertEqual(r.entity_of("size", "no/record"), "unknown")

    def test_derivation(self):
        r = self.make('{"model_id":"d/orig"}',
                      '{"model_id":"d/orig-rel","base_relation":"finetune"}',  # no base: original
                      '{"model_id":"d/ft","base_model":"d/orig","base_relation":"finetune"}',
                      '{"model_id":"d/q","base_model":"d/orig","base_relation":"Quantized"}',
                      '{"model_id":"d/empty","base_model":"d/orig","base_relation":""}',
                      '{"model_id":"d/none","base_model":"d/orig"}',
                      '{"model_id":"d/ghost","base_model":"ghost/base","base_relation":"merge"}')
        expected = {"d/orig": "original", "d/orig-rel": "original", "d/ft": "finetune",
                    "d/q": "Quantized",  # as given, not lowercased
                    "d/empty": "derived", "d/none": "derived", "d/ghost": "merge",
                    "no/record": "unknown", "ghost/base": "unknown"}
        for m, want in expected.items():
            self.assertEqual(r.entity_of("derivation", m), want, m)

    def test_levels_read_the_credited_model(self):
        r = self.make('{"model_id":"base/m","country":"US","org_type":"Company",'
                      '"pipeline_tag":"fill-mask","parameters":110000000}',
                      '{"model_id":"d/ft","base_model":"base/m","base_relation":"adapter",'
                      '"country":"FR","license":"MIT","parameters":"1000000000"}')
        r.ingest_events([ev("d/ft", "u1", "2025-03-05T00:00:00Z"),
                         ev("d/ft", "u2", "2025-03-05T00:00:00Z"),
                         ev("base/m", "u1", "2025-03-05T00:00:00Z")])
        W = "all"
        self.assertEqual(r.window_counts(("country+org_type", "all", "direct"), W),
                         {"FR|unknown": 2, "US|company": 1})
        self.assertEqual(r.window_counts(("org_type+country", "all", "direct"), W),
                         {"unknown|FR": 2, "company|US": 1})  # the order matters
        self.assertEqual(r.window_counts(("country+org_type", "all", "recursive"), W),
                         {"US|company": 3})
        self.assertEqual(r.window_counts(("size+modality", "all", "direct"), W),
                         {"1B-10B|unknown": 2, "100M-200M|nlp": 1})
        self.assertEqual(r.window_counts(("derivation+task", "all", "direct"), W),
                         {"adapter|unknown": 2, "original|fill-mask": 1})
        self.assertEqual(r.window_counts(("developer+license", "all", "recursive"), W),
                         {"base|unknown": 3})
        self.assertEqual(r.window_counts(("derivation", "all", "recursive"), W), {"original": 3})

    def test_bad_levels(self):
        for bad in ["model+country", "country+model", "country+country", "country+org_type+size",
                    "country+", "+country", "Country", "task ", "modalities", ""]:
            with self.assertRaises(ValueError, msg=bad):
                ref.level_parts(bad)
            with self.assertRaises(ValueError, msg=bad):
                ref.Reference().window_counts((bad, "all", "direct", "all"), "all")
        with self.assertRaises(ValueError):
            ref.Reference().window_counts(("model", "all", "direct", "everything"), "all")
        pairs = [(a, b) for a in ref.PAIRABLE_LEVELS for b in ref.PAIRABLE_LEVELS if a != b]
        self.assertEqual(len(pairs), 56)
        for a, b in pairs:
            self.assertEqual(ref.level_parts(f"{a}+{b}"), (a, b))


def users(model, n, time, prefix="u"):
    return [ev(model, f"{prefix}{i}", time) for i in range(n)]


class SamplesTest(unittest.TestCase):
    def test_population_threshold_and_history(self):
        r = ref.Reference()
        r.set_catalog(catalog('{"model_id":"p/exact","base_model":"base/x"}'))
        # p/exact: 150 in 2025-W10 and 50 in 2025-W11, 200 in all. p/short: 199.
        # base/x: 5 of its own, below 200.
        r.ingest_events(users("p/exact", 150, "2025-03-04T00:00:00Z") +
                        users("base/x", 5, "2025-03-04T00:00:00Z") +
                        users("p/exact", 50, "2025-03-11T00:00:00Z") +
                        users("p/short", 199, "2025-03-11T00:00:00Z"))
        self.assertEqual(r.sample_members("population"), {"p/exact"})
        pop = ("model", "all", "direct", "population")
        self.assertEqual(r.window_counts(pop, "all"), {"p/exact": 200})
        # A member brings its whole history, every week.
        self.assertEqual(r.window_counts(pop, "week:2025-W10"), {"p/exact": 150})
        # Membership is of the downloaded model; attribution then credits the root.
        self.assertEqual(r.window_counts(("model", "all", "recursive", "population"), "all"),
                         {"base/x": 200})
        self.assertEqual(r.window_counts(("model", "all", "recursive", "all"), "all"),
                         {"base/x": 205, "p/short": 199})
        # The filter applies after: no created_at, no rolling_1y.
        self.assertEqual(r.window_counts(("model", "rolling_1y", "direct", "population"), "all"),
                         {})
        # One more download: p/short reaches 200 and joins, with its history.
        r.ingest_event(ev("p/short", "late", "2025-03-12T00:00:00Z"))
        self.assertEqual(r.sample_members("population"), {"p/exact", "p/short"})
        self.assertEqual(r.window_counts(pop, "week:2025-W11"), {"p/exact": 50, "p/short": 200})

    def test_head_tie_at_the_200th_place(self):
        r = ref.Reference()
        week10 = "2025-03-04T00:00:00Z"
        lines = []
        # 2025-W10: 199 models with 2 downloads, then three with 1. In byte order
        # "U/a" < "late/bloomer" < "t/z": the 200th place goes to "U/a" (a case-blind
        # order would pick "late/bloomer").
        big = [f"big/m{i:03d}" for i in range(199)]
        for m in big:
            lines += users(m, 2, week10)
        for m in ("t/z", "late/bloomer", "U/a"):
            lines.append(ev(m, "u0", week10))
        # 2025-W11: fewer than 200 models: all of them are in the head.
        lines.append(ev("late/bloomer", "u0", "2025-03-11T00:00:00Z"))
        lines.append(ev("small/w", "u0", "2025-03-11T00:00:00Z"))
        r.ingest_events(lines)
        self.assertEqual(r.week_head(ref.parse_week("2025-W10")), big + ["U/a"])
        self.assertEqual(set(r.week_head(ref.parse_week("2025-W11"))), {"late/bloomer", "small/w"})
        head = r.sample_members("head")
        self.assertEqual(head, set(big) | {"U/a", "late/bloomer", "small/w"})
        v = ("model", "all", "direct", "head")
        # late/bloomer was not in 2025-W10's head, yet its download of that week counts.
        w10 = r.window_counts(v, "week:2025-W10")
        self.assertEqual(sum(w10.values()), 199 * 2 + 2)
        self.assertEqual((w10.get("late/bloomer"), w10.get("U/a"), w10.get("t/z")), (1, 1, None))
        self.assertEqual(r.concentration(v, "all")["total"], 199 * 2 + 2 + 2)
        self.assertEqual(r.concentration(("model", "all", "direct", "all"), "all")["total"],
                         199 * 2 + 3 + 2)
        # A week with no downloads contributes nobody; zero counts are not members.
        self.assertNotIn("t/z", head)


class NewWindowsTest(unittest.TestCase):
    def make(self):
        r = ref.Reference()
        r.ingest_events([ev("a/x", "u1", "2025-02-26T00:00:00Z"),   # 2025-W09
                         ev("a/x", "u1", "2025-03-04T00:00:00Z"),   # 2025-W10
                         ev("b/y", "u1", "2025-03-05T00:00:00Z"),   # 2025-W10
                         ev("b/y", "u1", "2025-03-12T00:00:00Z"),   # 2025-W11 (the watermark)
                         ev("b/y", "u2", "2025-03-12T00:00:00Z")])
        return r

    def test_week_current(self):
        self.assertEqual(ref.Reference().window_weeks("week:current"), [])
        r = self.make()
        v = ("model", "all", "direct")
        self.assertEqual(r.window_weeks("week:current"), [ref.parse_week("2025-W11")])
        self.assertEqual(r.window_counts(v, "week:current"), {"b/y": 2})
        self.assertEqual(r.window_label("week:current"), "week:current")

    def test_ranges(self):
        r = self.make()
        v = ("model", "all", "direct")
        self.assertEqual(r.window_counts(v, "range:2025-W09..2025-W10"), {"a/x": 2, "b/y": 1})
        self.assertEqual(r.window_counts(v, "range:2025-W10..2025-W10"), {"a/x": 1, "b/y": 1})
        self.assertEqual(r.window_counts(v, "range:2024-W50..2025-W08"), {})
        self.assertEqual(r.window_counts(v, "range:2025-W01..2025-W52"), {"a/x": 2, "b/y": 3})
        self.assertEqual(r.window_weeks("range:2020-W53..2021-W01"),
                         [ref.parse_week("2020-W53"), ref.parse_week("2021-W01")])
        self.assertEqual(r.window_label("range:2020-W23..2022-W52"), "range:2020-W23..2022-W52")
        # 1040 weeks is the limit: 2006-W01 .. 2025-W49 is 1040 weeks.
        first = ref.parse_week("2006-W01")
        self.assertEqual(len(r.window_weeks(f"range:2006-W01..{ref.week_label(first + 7 * 1039)}")),
                         1040)
        for bad in ["range:2025-W10..2025-W09", f"range:2006-W01..{ref.week_label(first + 7 * 1040)}",
                    "range:2025-W10", "range:2025-W10..", "range:2025-W10...2025-W11",
                    "range:2025-W10..2025-W11..2025-W12", "range:2025-w10..2025-W11",
                    "range:2021-W53..2021-W53", "trailing:0", "trailing:1041", "week:now"]:
            with self.assertRaises(ValueError, msg=bad):
                r.window_weeks(bad)


class ShareSeriesTest(unittest.TestCase):
    def test_hand_computed(self):
        r = ref.Reference()
        # 2025-W10: x 3, y 1; 2025-W11: nothing; 2025-W12: y 2, z 1.
        r.ingest_events(users("x/x", 3, "2025-03-04T00:00:00Z") +
                        users("y/y", 1, "2025-03-04T00:00:00Z") +
                        users("y/y", 2, "2025-03-18T00:00:00Z") +
                        users("z/z", 1, "2025-03-18T00:00:00Z"))
        v = ("model", "all", "direct", "all")
        s = r.share_series(v, "2025-W10", "2025-W12", 2)
        self.assertEqual((s["from_week"], s["to_week"], s["total_downloads"], s["entity_count"]),
                         ("2025-W10", "2025-W12", 7, 3))
        self.assertEqual(s["view"], {"level": "model", "filter": "all", "attribution": "direct",
                                     "sample": "all"})
        # x and y tie at 3 over the range: both rank 1, x first by byte order.
        self.assertEqual([(e["entity"], e["downloads"], e["rank"], e["share"]) for e in s["entities"]],
                         [("x/x", 3, 1, Fraction(3, 7)), ("y/y", 3, 1, Fraction(3, 7))])
        F = Fraction
        self.assertEqual(s["weeks"], [
            {"week": "2025-W10", "total_downloads": 4, "downloads": [3, 1],
             "shares": [F(3, 4), F(1, 4)], "rest_downloads": 0, "rest_share": 0},
            {"week": "2025-W11", "total_downloads": 0, "downloads": [0, 0], "shares": [0, 0],
             "rest_downloads": 0, "rest_share": 0},
            {"week": "2025-W12", "total_downloads": 3, "downloads": [0, 2],
             "shares": [0, F(2, 3)], "rest_downloads": 1, "rest_share": F(1, 3)},
        ])
        s = r.share_series(v, "2025-W12", "2025-W12", 20)  # more k than entities
        self.assertEqual([(e["entity"], e["downloads"], e["rank"]) for e in s["entities"]],
                         [("y/y", 2, 1), ("z/z", 1, 2)])
        self.assertEqual((s["total_downloads"], s["entity_count"]), (3, 2))
        self.assertEqual(s["weeks"][0]["rest_downloads"], 0)
        s = r.share_series(v, "2025-W09", "2025-W09", 1)  # nothing in range
        self.assertEqual((s["total_downloads"], s["entity_count"], s["entities"]), (0, 0, []))
        self.assertEqual(s["weeks"], [{"week": "2025-W09", "total_downloads": 0, "downloads": [],
                                       "shares": [], "rest_downloads": 0, "rest_share": 0}])
        for k in (0, 1001):
            with self.assertRaises(ValueError):
                r.share_series(v, "2025-W10", "2025-W12", k)
        with self.assertRaises(ValueError):
            r.share_series(v, "2025-W12", "2025-W10", 2)


class ExplainChangeTest(unittest.TestCase):
    def test_hand_computed(self):
        F = Fraction
        # before: a 3, b 1 (X 4, HHI 10/16); after: a 2, c 2 (X 4, HHI 8/16).
        x = ref.explain_change({"a": 3, "b": 1}, {"a": 2, "c": 2}, 1)
        self.assertEqual(x["delta_hhi"], F(-2, 16))
        self.assertEqual(x["top_movers"], [{
            "entity": "a", "from_downloads": 3, "from_share": F(3, 4), "from_rank": 1,
            "to_downloads": 2, "to_share": F(1, 2), "to_rank": 1, "contribution": F(-5, 16),
            "kind": "both"}])
        self.assertEqual(x["other_entrants"], {"entities": 1, "from_downloads": 0, "from_share": 0,
                                               "to_downloads": 2, "to_share": F(1, 2),
                                               "contribution": F(4, 16)})
        self.assertEqual(x["other_exits"]["contribution"], F(-1, 16))
        self.assertEqual(x["rest"], {"entities": 0, "from_downloads": 0, "from_share": 0,
                                     "to_downloads": 0, "to_share": 0, "contribution": 0})
        self.assertEqual(x["entrants"], x["other_entrants"])
        # k 3: everything is a top mover, ordered by |contribution|, then name.
        x = ref.explain_change({"a": 3, "b": 1}, {"a": 2, "c": 2}, 3)
        self.assertEqual([(m["entity"], m["kind"]) for m in x["top_movers"]],
                         [("a", "both"), ("c", "entrant"), ("b", "exit")])
        self.assertEqual(x["other_entrants"]["entities"], 0)
        self.assertEqual(x["entrants"]["entities"], 1)

    def test_empty_earlier_window_and_ties(self):
        x = ref.explain_change({}, {"b": 5, "a": 5}, 10)
        self.assertEqual(x["delta_hhi"], Fraction(1, 2))
        self.assertEqual([m["entity"] for m in x["top_movers"]], ["a", "b"])
        self.assertEqual([m["from_rank"] for m in x["top_movers"]], [0, 0])
        self.assertEqual(x["entrants"]["contribution"], Fraction(1, 2))
        with self.assertRaises(ValueError):
            ref.explain_change({}, {}, 0)

    def test_parts_sum_to_delta(self):
        import random
        rng = random.Random(19)
        for _ in range(200):
            before = {f"e{rng.randrange(40)}": rng.randrange(6) for _ in range(rng.randrange(30))}
            after = {f"e{rng.randrange(40)}": rng.randrange(6) for _ in range(rng.randrange(30))}
            x = ref.explain_change(before, after, rng.randrange(1, 12))
            parts = (sum(m["contribution"] for m in x["top_movers"]) +
                     x["other_entrants"]["contribution"] + x["other_exits"]["contribution"] +
                     x["rest"]["contribution"])
            self.assertEqual(parts, x["delta_hhi"])
            n = len({e for e, v in before.items() if v} | {e for e, v in after.items() if v})
            self.assertEqual(len(x["top_movers"]) + x["other_entrants"]["entities"] +
                             x["other_exits"]["entities"] + x["rest"]["entities"], n)

    def test_reference_method(self):
        r = ref.Reference()
        r.ingest_events(users("x/x", 3, "2025-03-04T00:00:00Z") +
                        users("y/y", 1, "2025-03-04T00:00:00Z") +
                        users("y/y", 2, "2025-03-11T00:00:00Z"))
        v = ("model", "all", "direct", "all")
        x = r.explain_change(v, "week:2025-W10", "week:2025-W11", 10)
        self.assertEqual(x["delta_hhi"], 1 - Fraction(10, 16))
        self.assertEqual((x["delta_total_downloads"], x["delta_entities"]), (-2, -1))
        self.assertEqual([(m["entity"], m["kind"]) for m in x["top_movers"]],
                         [("y/y", "both"), ("x/x", "exit")])
        x = r.explain_change(v, "week:2025-W09", "week:2025-W11")  # empty earlier window
        self.assertEqual(x["before"]["total"], 0)
        self.assertEqual(x["entrants"]["entities"], 1)


if __name__ == "__main__":
    unittest.main()
