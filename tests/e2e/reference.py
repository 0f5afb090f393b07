#!/usr/bin/env python3
"""An independent brute-force reference of hubmetrics (docs/DEFINITIONS.md).

Written from the spec, not from the C++: standard library only, exact integers
and Fractions. Given the events NDJSON and the models NDJSON it computes what
hubmetricsd must answer: ingest counters per rejection reason, unique
downloads, and for every view (level x filter x attribution x sample) and
window the concentration measures, leaderboards, entity reports, weekly series
and share series.

Rules (normative, shared with the C++):
- A record (an events line without its "\n", a "\r" included, or a Kafka
  value) longer than max_event_bytes (65536) bytes -> too_large, before
  anything else (even a blank line that long).
- Events are then checked in order: not strictly valid JSON -> malformed; not an
  object -> not_object; model_id/user_id/time present but not a string ->
  malformed (null counts as absent); any of them absent or "" -> missing_field;
  model_id not a Hub repo id -> invalid_model_id; time not RFC 3339 ->
  invalid_time; time > now + 1 h -> future; watermark set and
  day(time) < day(watermark) - lateness -> too_late; else accepted and the
  watermark advances. An accepted event is a unique download when its
  (model_id, user_id, UTC day) is new, else a duplicate.
- Catalog: the last record per model_id wins (as a whole). A record longer
  than 16384 bytes, or with developer, country, org_type, pipeline_tag,
  license or base_relation longer than 256 bytes (UTF-8), changes nothing.
- A record must also be what the protobuf JSON mapping of ModelInfo accepts
  (as protobuf 3.21's JsonStringToMessage does, unknown fields ignored): a
  known field may be named by its proto name or its JSON name (baseModel), the
  last one given wins; a string field holds a string (or null, which counts
  as absent); parameters a JSON number with an integral value or a string of
  a decimal integer with an optional sign, within int64. A record that is not
  changes nothing.
- root(m) follows base_model; a cycle or a 33rd link credits m itself; a
  base_model without a catalog record is itself the root.
- Levels (issue 17): the entity of a download is read from the catalog record
  of the credited model (the downloaded one under direct, its root under
  recursive): model, developer, country, org_type, license, task, modality,
  size, derivation, or a pair "A+B" of two different levels other than model
  (entity "valueA|valueB").
- Samples: all; population (models with >= 200 unique downloads all-time);
  head (models among the 200 largest of at least one ISO week, ties by model
  id in byte order). Membership is of the downloaded model, on the current
  counts, and brings the model's whole history; filter and attribution apply
  to the sample's downloads.

Usage as a program (for debugging):
  reference.py --events E --models M [--level model --filter all --attribution direct
                                      --sample all --window all]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import sys
import time as _time
from fractions import Fraction
from typing import Iterable

REASONS = (
    "malformed",
    "not_object",
    "missing_field",
    "invalid_model_id",
    "invalid_time",
    "future",
    "too_late",
    "too_large",
)
MAX_EVENT_BYTES = 64 * 1024
MAX_CATALOG_RECORD_BYTES = 16 * 1024
MAX_CATALOG_FIELD_BYTES = 256
BOUNDED_CATALOG_FIELDS = ("developer", "country", "org_type", "pipeline_tag", "license",
                          "base_relation")
# The levels of a view; every one but "model" may be half of a pair "A+B".
LEVELS = ("model", "developer", "country", "org_type", "license", "task", "modality", "size",
          "derivation")
PAIRABLE_LEVELS = LEVELS[1:]
FILTERS = ("all", "rolling_1y")
ATTRIBUTIONS = ("direct", "recursive")
SAMPLES = ("all", "population", "head")
# The views before issue 17 (levels model, developer, country; sample all).
CLASSIC_LEVELS = ("model", "developer", "country")
VIEWS = tuple((l, f, a, "all") for l in CLASSIC_LEVELS for f in FILTERS for a in ATTRIBUTIONS)
DEFAULT_TOP_K = (1, 10, 100)
MAX_WINDOW_WEEKS = 1040
POPULATION_MIN_DOWNLOADS = 200
HEAD_SIZE = 200
SHARE_SERIES_DEFAULT_K = 20
SHARE_SERIES_MAX_K = 1000
# ExplainChange's top movers.
EXPLAIN_DEFAULT_K = 10
EXPLAIN_MAX_K = 1000

# The Hub's task taxonomy: pipeline_tag -> modality. A non-empty tag not here is "other".
MODALITY_OF_TASK = {}
for _modality, _tasks in (
        ("multimodal", "audio-text-to-text image-text-to-text visual-question-answering "
                       "document-question-answering video-text-to-text visual-document-retrieval "
                       "any-to-any"),
        ("computer_vision", "depth-estimation image-classification object-detection "
                            "image-segmentation text-to-image image-to-text image-to-image "
                            "image-to-video unconditional-image-generation video-classification "
                            "text-to-video zero-shot-image-classification mask-generation "
                            "zero-shot-object-detection text-to-3d image-to-3d "
                            "image-feature-extraction keypoint-detection video-to-video"),
        ("nlp", "text-classification token-classification table-question-answering "
                "question-answering zero-shot-classification translation summarization "
                "feature-extraction text-generation text2text-generation fill-mask "
                "sentence-similarity text-ranking"),
        ("audio", "text-to-speech text-to-audio automatic-speech-recognition audio-to-audio "
                  "audio-classification voice-activity-detection"),
        ("tabular", "tabular-classification tabular-regression time-series-forecasting"),
        ("reinforcement_learning", "reinforcement-learning robotics")):
    for _task in _tasks.split():
        assert _task not in MODALITY_OF_TASK, _task
        MODALITY_OF_TASK[_task] = _modality

# Size buckets of the parameter count: (exclusive upper bound, name), lower bounds inclusive.
SIZE_BUCKETS = (
    (100_000_000, "<100M"),
    (200_000_000, "100M-200M"),
    (500_000_000, "200M-500M"),
    (1_000_000_000, "500M-1B"),
    (10_000_000_000, "1B-10B"),
    (100_000_000_000, "10B-100B"),
)
SIZE_LARGEST = ">=100B"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

NS_PER_SECOND = 10**9
NS_PER_DAY = 86400 * NS_PER_SECOND
MAX_CHAIN_LINKS = 32
_EPOCH_ORDINAL = _dt.date(1970, 1, 1).toordinal()


# ---------------------------------------------------------------- validation

_PART_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?", re.ASCII)


def valid_model_id(s: str) -> bool:
    """A Hub repo id: "name" or "namespace/name", each part 1..96 of
    [A-Za-z0-9_.-] starting and ending with [A-Za-z0-9_]; no "--" or "..";
    not ending in ".git"."""
    parts = s.split("/")
    if len(parts) > 2:
        return False
    if not all(_PART_RE.fullmatch(p) for p in parts):
        return False
    if "--" in s or ".." in s or s.endswith(".git"):
        return False
    return True


_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)


def parse_rfc3339(s: str) -> int | None:
    """Nanoseconds since the Unix epoch, or None if `s` is not RFC 3339 with
    a year in 0001..9999 and a real calendar date."""
    m = _TIME_RE.fullmatch(s)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if year < 1:
        return None
    try:
        date = _dt.date(year, month, day)
    except ValueError:
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if m.group(8) != "Z":
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (1 if m.group(9) == "+" else -1)
    frac = m.group(7) or ""
    nanos = int(frac.ljust(9, "0")) if frac else 0
    seconds = (date.toordinal() - _EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60 + second
    return (seconds - offset) * NS_PER_SECOND + nanos


def utc_day(ns: int) -> int:
    return ns // NS_PER_DAY  # floors: days before 1970 are negative


class Oversized:
    """A line too long to hold in memory: only its length in bytes."""

    def __init__(self, size: int):
        self.size = size


def stream_lines(path: str, keep: int = 1 << 20) -> Iterable[bytes | Oversized]:
    """The lines of a file without their "\n" (a last line without one
    included), streamed: a line longer than `keep` bytes comes as
    Oversized(its length), read through without being held whole."""
    with open(path, "rb") as f:
        while True:
            part = f.readline(keep + 1)
            if not part:
                return
            if part.endswith(b"\n"):
                yield part[:-1]
                continue
            if len(part) <= keep:
                yield part  # the last line, without a newline
                continue
            size = len(part)
            while True:
                more = f.readline(1 << 20)
                if not more:
                    break
                if more.endswith(b"\n"):
                    size += len(more) - 1
                    break
                size += len(more)
            yield Oversized(size)


def _reject_constant(name: str):
    raise ValueError(f"not JSON: {name}")


def strict_json(line: bytes | str):
    """json.loads that refuses what strict JSON refuses (NaN, Infinity, bad UTF-8)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return json.loads(line, parse_constant=_reject_constant)


# ---------------------------------------------------------------- weeks

def iso_week_of_day(day: int) -> int:
    """The Monday (a day number) of the ISO week containing `day`."""
    # 1970-01-01 was a Thursday: weekday index 3 with Monday = 0.
    return day - (day + 3) % 7


def week_label(monday: int) -> str:
    y, w, _ = _dt.date.fromordinal(monday + _EPOCH_ORDINAL).isocalendar()
    return f"{y:04d}-W{w:02d}"


def parse_week(label: str) -> int:
    m = re.fullmatch(r"([0-9]{4})-W([0-9]{2})", label, re.ASCII)
    if not m:
        raise ValueError(f"bad week {label!r}")
    d = _dt.date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    return d.toordinal() - _EPOCH_ORDINAL


def week_range(first: str, last: str) -> list[int]:
    """The Mondays from week `first` to week `last` inclusive (first <= last,
    at most 1040 weeks)."""
    a, b = parse_week(first), parse_week(last)
    if a > b or (b - a) // 7 + 1 > MAX_WINDOW_WEEKS:
        raise ValueError(f"bad week range {first!r}..{last!r}")
    return list(range(a, b + 1, 7))


# ---------------------------------------------------------------- catalog

class CatalogEntry:
    __slots__ = ("developer", "country", "created_day", "base_model", "org_type", "license",
                 "pipeline_tag", "parameters", "base_relation")

    def __init__(self, developer: str, country: str, created_day: int | None, base_model: str,
                 org_type: str = "", license: str = "", pipeline_tag: str = "",
                 parameters: int = 0, base_relation: str = ""):
        self.developer = developer
        self.country = country
        self.created_day = created_day
        self.base_model = base_model
        self.org_type = org_type
        self.license = license
        self.pipeline_tag = pipeline_tag
        self.parameters = parameters  # 0 when missing, as protobuf has it
        self.base_relation = base_relation


# The string fields of ModelInfo, by their proto names.
CATALOG_STRING_FIELDS = ("model_id", "developer", "country", "org_type", "created_at",
                         "base_model", "pipeline_tag", "license", "base_relation")
# The JSON names (lowerCamelCase) protobuf accepts beside the proto names.
CATALOG_JSON_NAMES = {"modelId": "model_id", "orgType": "org_type", "createdAt": "created_at",
                      "baseModel": "base_model", "pipelineTag": "pipeline_tag",
                      "baseRelation": "base_relation"}


def _catalog_object(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object with the fields' JSON names as proto names, the last one winning."""
    out: dict = {}
    for k, v in pairs:
        out[CATALOG_JSON_NAMES.get(k, k)] = v
    return out


def _str_field(rec: dict, name: str) -> str:
    v = rec.get(name)
    return v if isinstance(v, str) else ""


def _parameters(v) -> int | None:
    """The int64 `parameters` as the protobuf JSON mapping reads it: a JSON
    number with an integral value (7, 7.0, 7e9) or a string of a decimal
    integer ("7", "+7", "007"; no spaces, no exponent), within int64; null or
    absent is 0. None when the value is not one."""
    if v is None:
        return 0
    if isinstance(v, bool):  # a bool is an int in Python, not in JSON
        return None
    if isinstance(v, int):
        n = v
    elif isinstance(v, float):
        if not v.is_integer():  # 1.5, inf
            return None
        n = int(v)
    elif isinstance(v, str) and re.fullmatch(r"[-+]?[0-9]+", v, re.ASCII):
        n = int(v)
    else:
        return None
    return n if INT64_MIN <= n <= INT64_MAX else None


def load_catalog(lines: Iterable[bytes | str]) -> dict[str, CatalogEntry]:
    """The last record per model_id. Records that do not decode (string fields
    that are not strings, parameters that is not an int64 included), or whose
    model_id or base_model is not a valid repo id, change nothing."""
    catalog: dict[str, CatalogEntry] = {}
    for line in lines:
        if isinstance(line, bytes):
            line = line.rstrip(b"\r\n")
        else:
            line = line.rstrip("\r\n")
        if not line:
            continue
        size = len(line) if isinstance(line, bytes) else len(line.encode("utf-8"))
        if size > MAX_CATALOG_RECORD_BYTES:
            continue
        try:
            if isinstance(line, bytes):
                line = line.decode("utf-8")
            rec = json.loads(line, parse_constant=_reject_constant,
                             object_pairs_hook=_catalog_object)
        except (ValueError, RecursionError):
            continue
        if not isinstance(rec, dict):
            continue
        if any(rec.get(f) is not None and not isinstance(rec[f], str)
               for f in CATALOG_STRING_FIELDS):
            continue
        parameters = _parameters(rec.get("parameters"))
        if parameters is None:
            continue
        if any(len(_str_field(rec, f).encode("utf-8")) > MAX_CATALOG_FIELD_BYTES
               for f in BOUNDED_CATALOG_FIELDS):
            continue
        mid = _str_field(rec, "model_id")
        base = _str_field(rec, "base_model")
        if not valid_model_id(mid) or (base and not valid_model_id(base)):
            continue
        created = _str_field(rec, "created_at")
        created_ns = parse_rfc3339(created) if created else None
        if created and created_ns is None:
            continue
        catalog[mid] = CatalogEntry(
            _str_field(rec, "developer"),
            _str_field(rec, "country"),
            utc_day(created_ns) if created_ns is not None else None,
            base,
            org_type=_str_field(rec, "org_type"),
            license=_str_field(rec, "license"),
            pipeline_tag=_str_field(rec, "pipeline_tag"),
            parameters=parameters,
            base_relation=_str_field(rec, "base_relation"),
        )
    return catalog


# ---------------------------------------------------------------- levels

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(s: str) -> str:
    """A-Z to a-z, every other character as it is (str.lower would change more)."""
    return s.translate(_ASCII_LOWER)


def size_bucket(parameters: int) -> str:
    if parameters <= 0:
        return "unknown"
    for bound, name in SIZE_BUCKETS:
        if parameters < bound:
            return name
    return SIZE_LARGEST


def modality(pipeline_tag: str) -> str:
    if not pipeline_tag:
        return "unknown"
    return MODALITY_OF_TASK.get(pipeline_tag, "other")


def level_parts(level: str) -> tuple[str, ...]:
    """("model",), ("country",), ("country", "org_type") for "country+org_type", ...
    ValueError for anything that is not a level or a pair of two different
    levels other than model."""
    if level in LEVELS:
        return (level,)
    parts = level.split("+")
    if (len(parts) == 2 and parts[0] != parts[1] and parts[0] in PAIRABLE_LEVELS
            and parts[1] in PAIRABLE_LEVELS):
        return tuple(parts)
    raise ValueError(f"bad level {level!r}")


def normalize_view(view) -> tuple[str, str, str, str]:
    """(level, filter, attribution, sample); a 3-tuple has sample "all"."""
    if len(view) == 3:
        view = (*view, "all")
    level, filt, attribution, sample = view
    level_parts(level)
    if filt not in FILTERS or attribution not in ATTRIBUTIONS or sample not in SAMPLES:
        raise ValueError(f"bad view {view!r}")
    return (level, filt, attribution, sample)


# ---------------------------------------------------------------- measures

def measures(counts: Iterable[int], top_k: Iterable[int] = DEFAULT_TOP_K) -> dict:
    """Exact X, n, HHI, Gini and top-k shares (Fractions) over the positive counts."""
    xs = sorted(x for x in counts if x > 0)
    n = len(xs)
    total = sum(xs)
    result = {"total": total, "entities": n}
    if total == 0:
        result.update(hhi=Fraction(0), gini=Fraction(0), top_shares={k: Fraction(0) for k in top_k})
        return result
    result["hhi"] = Fraction(sum(x * x for x in xs), total * total)
    # sum_i sum_j |xi - xj| = 2 * sum_{i<j} (x_j - x_i) = 2 * sum_k x_k (2k - n + 1), xs ascending.
    pair_sum = sum(x * (2 * k - n + 1) for k, x in enumerate(xs))
    result["gini"] = Fraction(2 * pair_sum, 2 * n * total) if n > 1 else Fraction(0)
    desc = xs[::-1]
    result["top_shares"] = {k: Fraction(sum(desc[:k]), total) for k in top_k}
    return result


def explain_change(before: dict[str, int], after: dict[str, int], k: int = EXPLAIN_DEFAULT_K) -> dict:
    """The ΔHHI decomposition (docs/DEFINITIONS.md) of two windows' entity counts, brute force
    with exact Fractions: a dict shaped like ConcentrationChange's decomposition fields (proto
    field names; shares and contributions as Fractions). Every entity with downloads in either
    window is in exactly one of top_movers, other_entrants, other_exits, rest."""
    if not 1 <= k <= EXPLAIN_MAX_K:
        raise ValueError(f"bad k {k}")
    before = {e: n for e, n in before.items() if n > 0}
    after = {e: n for e, n in after.items() if n > 0}
    xf, xt = sum(before.values()), sum(after.values())

    def share(n: int, x: int) -> Fraction:
        return Fraction(n, x) if x else Fraction(0)

    def rank(counts: dict[str, int], e: str) -> int:
        c = counts.get(e, 0)
        return 1 + sum(1 for v in counts.values() if v > c) if c else 0

    rows = []
    for e in set(before) | set(after):
        f, t = before.get(e, 0), after.get(e, 0)
        rows.append({
            "entity": e,
            "from_downloads": f, "from_share": share(f, xf), "from_rank": rank(before, e),
            "to_downloads": t, "to_share": share(t, xt), "to_rank": rank(after, e),
            "contribution": share(t, xt) ** 2 - share(f, xf) ** 2,
            "kind": "entrant" if f == 0 else ("exit" if t == 0 else "both"),
        })
    # Python compares str by code point, which orders UTF-8 as bytes do.
    rows.sort(key=lambda r: (-abs(r["contribution"]), r["entity"]))
    top, others = rows[:k], rows[k:]

    def group(members: list[dict]) -> dict:
        f = sum(r["from_downloads"] for r in members)
        t = sum(r["to_downloads"] for r in members)
        return {"entities": len(members), "from_downloads": f, "from_share": share(f, xf),
                "to_downloads": t, "to_share": share(t, xt),
                "contribution": sum((r["contribution"] for r in members), Fraction(0))}

    return {
        "delta_hhi": measures(after.values())["hhi"] - measures(before.values())["hhi"],
        "top_movers": top,
        "entrants": group([r for r in rows if r["kind"] == "entrant"]),
        "exits": group([r for r in rows if r["kind"] == "exit"]),
        "other_entrants": group([r for r in others if r["kind"] == "entrant"]),
        "other_exits": group([r for r in others if r["kind"] == "exit"]),
        "rest": group([r for r in others if r["kind"] == "both"]),
    }


def head_of(per: dict[str, int]) -> list[str]:
    """The (at most) 200 largest models of one week's model -> downloads:
    downloads descending, then model id in byte order; only models with
    downloads that week."""
    ordered = sorted((m for m, c in per.items() if c > 0), key=lambda m: (-per[m], m.encode("utf-8")))
    return ordered[:HEAD_SIZE]


# ---------------------------------------------------------------- the reference

class Reference:
    def __init__(self, lateness_days: int = 3, max_future_ns: int = 3600 * NS_PER_SECOND,
                 now_ns: int | None = None, max_event_bytes: int = MAX_EVENT_BYTES):
        self.lateness_days = lateness_days
        self.max_event_bytes = max_event_bytes
        self.max_future_ns = max_future_ns
        self.now_ns = now_ns if now_ns is not None else _time.time_ns()
        self.events_read = 0
        self.unique_downloads = 0
        self.duplicates = 0
        self.rejected_by_reason = {r: 0 for r in REASONS}
        self.watermark_ns: int | None = None
        self._seen: set[tuple[str, str, int]] = set()
        self.daily: dict[tuple[str, int], int] = {}  # (model, day) -> unique downloads
        self.catalog: dict[str, CatalogEntry] = {}
        self._views: dict[tuple[str, str, str, str], dict[int, dict[str, int]]] = {}
        self._samples: dict[str, frozenset[str]] = {}

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    # -- events

    def classify(self, line: bytes | str | Oversized) -> tuple[str, tuple[str, str, int] | None]:
        """("ok", (model, user, time_ns)) or (reason, None). Advances the watermark."""
        if isinstance(line, Oversized):
            size = line.size
        else:
            size = len(line) if isinstance(line, bytes) else len(line.encode("utf-8"))
        if size > self.max_event_bytes:
            return "too_large", None
        if isinstance(line, Oversized):
            raise ValueError("an Oversized line within max_event_bytes: stream with a larger keep")
        try:
            obj = strict_json(line)
        except (ValueError, RecursionError):
            return "malformed", None
        if not isinstance(obj, dict):
            return "not_object", None
        values = {}
        for name in ("model_id", "user_id", "time"):
            v = obj.get(name)
            if v is not None and not isinstance(v, str):
                return "malformed", None
            values[name] = v or ""
        if not all(values.values()):
            return "missing_field", None
        if not valid_model_id(values["model_id"]):
            return "invalid_model_id", None
        t = parse_rfc3339(values["time"])
        if t is None:
            return "invalid_time", None
        if t > self.now_ns + self.max_future_ns:
            return "future", None
        if self.watermark_ns is not None and (
                utc_day(t) < utc_day(self.watermark_ns) - self.lateness_days):
            return "too_late", None
        self.watermark_ns = t if self.watermark_ns is None else max(self.watermark_ns, t)
        return "ok", (values["model_id"], values["user_id"], t)

    def ingest_event(self, line: bytes | str | Oversized) -> str:
        """Applies one events line; returns "unique", "duplicate" or the rejection reason."""
        self.events_read += 1
        self._views.clear()
        self._samples.clear()
        outcome, event = self.classify(line)
        if event is None:
            self.rejected_by_reason[outcome] += 1
            return outcome
        model, user, t = event
        key = (model, user, utc_day(t))
        if key in self._seen:
            self.duplicates += 1
            return "duplicate"
        self._seen.add(key)
        self.unique_downloads += 1
        dk = (model, key[2])
        self.daily[dk] = self.daily.get(dk, 0) + 1
        return "unique"

    def ingest_events(self, lines: Iterable[bytes | str | Oversized]) -> None:
        for line in lines:
            self.ingest_event(line)

    def set_catalog(self, catalog: dict[str, CatalogEntry]) -> None:
        self.catalog = catalog
        self._views.clear()

    @classmethod
    def from_files(cls, events_path: str, models_path: str, **kwargs) -> "Reference":
        ref = cls(**kwargs)
        with open(models_path, "rb") as f:
            ref.set_catalog(load_catalog(f.read().split(b"\n")))
        with open(events_path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the newline ending the last line
        ref.ingest_events(lines)
        return ref

    # -- catalog lookups

    def root(self, model: str) -> str:
        r = model
        visited = {model}
        links = 0
        while True:
            entry = self.catalog.get(r)
            if entry is None or not entry.base_model:
                return r
            b = entry.base_model
            if b in visited or links == MAX_CHAIN_LINKS:
                return model  # a cycle, or a 33rd link: credit the downloaded model
            visited.add(b)
            r = b
            links += 1

    def developer(self, model: str) -> str:
        entry = self.catalog.get(model)
        if entry is not None and entry.developer:
            return entry.developer
        return model.split("/", 1)[0] if "/" in model else model

    def country(self, model: str) -> str:
        entry = self.catalog.get(model)
        return entry.country if entry is not None and entry.country else "Unknown"

    def level_value(self, level: str, credited: str) -> str:
        """The value of one (not pair) level for a download credited to `credited`."""
        if level == "model":
            return credited
        if level == "developer":
            return self.developer(credited)
        if level == "country":
            return self.country(credited)
        entry = self.catalog.get(credited)
        if level == "org_type":
            return ascii_lower(entry.org_type) if entry is not None and entry.org_type else "unknown"
        if level == "license":
            return ascii_lower(entry.license) if entry is not None and entry.license else "unknown"
        if level == "task":
            return entry.pipeline_tag if entry is not None and entry.pipeline_tag else "unknown"
        if level == "modality":
            return modality(entry.pipeline_tag if entry is not None else "")
        if level == "size":
            return size_bucket(entry.parameters if entry is not None else 0)
        if level == "derivation":
            if entry is None:
                return "unknown"
            if not entry.base_model:
                return "original"
            return entry.base_relation or "derived"
        raise ValueError(f"bad level {level!r}")

    def entity_of(self, level: str, credited: str) -> str:
        """The entity of a level or a pair ("US|company")."""
        return "|".join(self.level_value(part, credited) for part in level_parts(level))

    # -- samples

    def model_totals(self) -> dict[str, int]:
        """model -> all-time unique downloads (level model, filter all, direct)."""
        totals: dict[str, int] = {}
        for (model, _), count in self.daily.items():
            totals[model] = totals.get(model, 0) + count
        return totals

    def week_model_counts(self) -> dict[int, dict[str, int]]:
        """week monday -> model -> unique downloads that week (model, all, direct)."""
        weeks: dict[int, dict[str, int]] = {}
        for (model, day), count in self.daily.items():
            per = weeks.setdefault(iso_week_of_day(day), {})
            per[model] = per.get(model, 0) + count
        return weeks

    def week_head(self, monday: int) -> list[str]:
        return head_of(self.week_model_counts().get(monday, {}))

    def sample_members(self, sample: str) -> frozenset[str] | None:
        """The downloaded models a sample keeps, on the current counts; None for all."""
        if sample == "all":
            return None
        cached = self._samples.get(sample)
        if cached is not None:
            return cached
        if sample == "population":
            members = frozenset(m for m, c in self.model_totals().items()
                                if c >= POPULATION_MIN_DOWNLOADS)
        elif sample == "head":
            members = frozenset(m for per in self.week_model_counts().values()
                                for m in head_of(per))
        else:
            raise ValueError(f"bad sample {sample!r}")
        self._samples[sample] = members
        return members

    # -- views and windows

    def view_weeks(self, view) -> dict[int, dict[str, int]]:
        """week monday -> entity -> unique downloads credited in the view
        ((level, filter, attribution, sample), or a 3-tuple with sample all)."""
        view = normalize_view(view)
        cached = self._views.get(view)
        if cached is not None:
            return cached
        level, filt, attribution, sample = view
        members = self.sample_members(sample)
        weeks: dict[int, dict[str, int]] = {}
        entity_of_model: dict[str, str] = {}  # the same for every day of a model
        for (model, day), count in self.daily.items():
            if members is not None and model not in members:
                continue
            if filt == "rolling_1y":
                entry = self.catalog.get(model)
                if entry is None or entry.created_day is None:
                    continue
                if not 0 <= day - entry.created_day <= 365:
                    continue
            entity = entity_of_model.get(model)
            if entity is None:
                credited = model if attribution == "direct" else self.root(model)
                entity = entity_of_model[model] = self.entity_of(level, credited)
            per = weeks.setdefault(iso_week_of_day(day), {})
            per[entity] = per.get(entity, 0) + count
        self._views[view] = weeks
        return weeks

    def watermark_week(self) -> int | None:
        return None if self.watermark_ns is None else iso_week_of_day(utc_day(self.watermark_ns))

    def window_weeks(self, window: str) -> list[int] | None:
        """The Mondays the window covers, in order; None for "all"."""
        if window == "all":
            return None
        if window == "week:current":
            last = self.watermark_week()
            return [] if last is None else [last]
        if window.startswith("week:"):
            return [parse_week(window[5:])]
        if window.startswith("trailing:"):
            n = int(window[9:])
            if not 1 <= n <= MAX_WINDOW_WEEKS:
                raise ValueError(f"bad window {window!r}")
            last = self.watermark_week()
            if last is None:
                return []
            return [last - 7 * i for i in range(n - 1, -1, -1)]
        if window.startswith("range:"):
            first, sep, last = window[6:].partition("..")
            if not sep:
                raise ValueError(f"bad window {window!r}")
            return week_range(first, last)
        raise ValueError(f"bad window {window!r}")

    def window_label(self, window: str) -> str:
        """The window as the server echoes it."""
        if window.startswith("range:"):
            weeks = self.window_weeks(window)
            return f"range:{week_label(weeks[0])}..{week_label(weeks[-1])}"
        if window.startswith("week:") and window != "week:current":
            return f"week:{week_label(parse_week(window[5:]))}"
        self.window_weeks(window)  # valid
        return window

    def window_counts(self, view, window: str) -> dict[str, int]:
        weeks = self.view_weeks(view)
        selected = self.window_weeks(window)
        counts: dict[str, int] = {}
        for monday, per in weeks.items():
            if selected is not None and monday not in selected:
                continue
            for entity, c in per.items():
                counts[entity] = counts.get(entity, 0) + c
        return counts

    def concentration(self, view, window: str, top_k=DEFAULT_TOP_K) -> dict:
        return measures(self.window_counts(view, window).values(), top_k)

    def top(self, view, window: str, k: int) -> list[dict]:
        counts = self.window_counts(view, window)
        total = sum(counts.values())
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode("utf-8")))
        result = []
        more = 0  # entities with strictly more downloads than the current one
        prev = None
        for i, (entity, c) in enumerate(ordered[:k]):
            if c != prev:
                more = i
                prev = c
            result.append({"entity": entity, "downloads": c, "rank": 1 + more,
                           "share": Fraction(c, total)})
        return result

    def entity(self, view, window: str, name: str) -> dict:
        counts = self.window_counts(view, window)
        total = sum(counts.values())
        c = counts.get(name, 0)
        if c == 0:
            return {"entity": name, "downloads": 0, "rank": 0, "share": Fraction(0),
                    "total": total, "entities": len(counts)}
        rank = 1 + sum(1 for v in counts.values() if v > c)
        return {"entity": name, "downloads": c, "rank": rank, "share": Fraction(c, total),
                "total": total, "entities": len(counts)}

    def share_series(self, view, from_week: str, to_week: str,
                     k: int = SHARE_SERIES_DEFAULT_K) -> dict:
        """GetShareSeries: a dict shaped like the ShareSeries message (proto field
        names; counts as ints, shares as Fractions)."""
        if not 1 <= k <= SHARE_SERIES_MAX_K:
            raise ValueError(f"bad k {k}")
        level, filt, attribution, sample = normalize_view(view)
        weeks = week_range(from_week, to_week)
        window = f"range:{week_label(weeks[0])}..{week_label(weeks[-1])}"
        counts = self.window_counts(view, window)
        total = sum(counts.values())
        entities = self.top(view, window, k)
        per_week = self.view_weeks(view)
        rows = []
        for monday in weeks:
            per = per_week.get(monday, {})
            week_total = sum(per.values())
            downloads = [per.get(e["entity"], 0) for e in entities]
            rest = week_total - sum(downloads)
            rows.append({
                "week": week_label(monday),
                "total_downloads": week_total,
                "downloads": downloads,
                "shares": [Fraction(d, week_total) if week_total else Fraction(0)
                           for d in downloads],
                "rest_downloads": rest,
                "rest_share": Fraction(rest, week_total) if week_total else Fraction(0),
            })
        return {
            "view": {"level": level, "filter": filt, "attribution": attribution, "sample": sample},
            "from_week": week_label(weeks[0]),
            "to_week": week_label(weeks[-1]),
            "total_downloads": total,
            "entity_count": len(counts),
            "entities": entities,
            "weeks": rows,
        }

    def explain_change(self, view, from_window: str, to_window: str,
                       k: int = EXPLAIN_DEFAULT_K, top_k=DEFAULT_TOP_K) -> dict:
        """ExplainChange: the decomposition of explain_change() plus both windows'
        concentration answers (as concentration()) and the deltas."""
        before = self.window_counts(view, from_window)
        after = self.window_counts(view, to_window)
        out = explain_change(before, after, k)
        b = self.concentration(view, from_window, top_k)
        a = self.concentration(view, to_window, top_k)
        out.update(before=b, after=a, delta_gini=a["gini"] - b["gini"],
                   delta_total_downloads=a["total"] - b["total"],
                   delta_entities=a["entities"] - b["entities"])
        return out

    def sample_weeks(self) -> list[int]:
        """Every week from the first to the last one with an accepted event."""
        days = [d for (_, d) in self.daily]
        if not days:
            return []
        first, last = iso_week_of_day(min(days)), iso_week_of_day(max(days))
        return list(range(first, last + 1, 7))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--level", default="model", help="a level or a pair A+B")
    p.add_argument("--filter", default="all", choices=FILTERS)
    p.add_argument("--attribution", default="direct", choices=ATTRIBUTIONS)
    p.add_argument("--sample", default="all", choices=SAMPLES)
    p.add_argument("--window", default="all")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--shares", metavar="FROM..TO",
                   help="print the share series of weeks FROM..TO (k entities) instead")
    args = p.parse_args()
    try:
        level_parts(args.level)
    except ValueError as e:
        p.error(str(e))
    ref = Reference.from_files(args.events, args.models)
    view = (args.level, args.filter, args.attribution, args.sample)
    if args.shares:
        frm, _, to = args.shares.partition("..")
        series = ref.share_series(view, frm, to, args.k)
        print(json.dumps(series, indent=1, default=float))
        return 0
    c = ref.concentration(view, args.window)
    print(json.dumps({
        "events_read": ref.events_read, "unique_downloads": ref.unique_downloads,
        "duplicates": ref.duplicates, "rejected": ref.rejected,
        "rejected_by_reason": ref.rejected_by_reason,
        "weeks": [week_label(w) for w in ref.sample_weeks()],
        "total_downloads": c["total"], "entities": c["entities"], "hhi": float(c["hhi"]),
        "gini": float(c["gini"]), "top_shares": {k: float(v) for k, v in c["top_shares"].items()},
        "top": [{**t, "share": float(t["share"])} for t in ref.top(view, args.window, args.k)],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
