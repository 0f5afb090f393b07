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


if __name__ == "__main__":
    unittest.main()
