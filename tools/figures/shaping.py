"""From hubctl --json answers to the numbers the figures draw. Pure Python, no matplotlib.

hubctl --json prints the protobuf JSON mapping of hubmetrics.v1 messages (proto/hubmetrics/v1/
metrics.proto) with the proto's field names: uint64 and int64 as JSON strings, uint32 and doubles as
numbers (NaN and infinities as the strings "NaN", "Infinity", "-Infinity"), Timestamps as RFC 3339
strings, absent message fields (an unset watermark) left out. Every reader here takes a missing field
as its zero value, so an answer of an older server, or of an empty daemon, reads as "no data".

Shares are recomputed from the integer downloads (downloads / total_downloads): the figures then add
up exactly the way the counts do, whatever rounding the server's doubles had.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from typing import Iterable, Optional, Sequence

# The most weeks one range window, series or share series may cover (metrics.proto).
MAX_RANGE_WEEKS = 1040

OTHER = "(other)"
REST = "rest"

# The server's size buckets (spec: level `size`), smallest first; `unknown` last.
SIZE_ORDER = ("<100M", "100M-200M", "200M-500M", "500M-1B", "1B-10B", "10B-100B", ">=100B", "unknown")

# The paper's eras (Table 1: <=2022, 2023, 2024, >=2025). Its download data starts in June 2020:
# 2020-W23 is the week of Monday 2020-06-01. An era without an end ("2025-W01..") ends with the
# watermark's week.
DEFAULT_ERAS = "<=2022=2020-W23..2022-W52,2023=2023-W01..2023-W52,2024=2024-W01..2024-W52,>=2025=2025-W01.."

_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


# ---- ISO weeks -------------------------------------------------------------------------------------


def parse_week(week: str) -> datetime.date:
    """The Monday of ISO week "YYYY-Www"; ValueError when it is not one (e.g. W53 of a 52-week year)."""
    m = _WEEK_RE.match(week or "")
    if not m:
        raise ValueError(f"'{week}' is not an ISO week YYYY-Www (e.g. 2025-W07)")
    year, num = int(m.group(1)), int(m.group(2))
    try:
        monday = datetime.date.fromisocalendar(year, num, 1)
    except ValueError:
        raise ValueError(f"'{week}' is not an ISO week: {year} has no week {num}") from None
    return monday


def format_week(day: datetime.date) -> str:
    year, num, _ = day.isocalendar()
    return f"{year:04d}-W{num:02d}"


def add_weeks(week: str, n: int) -> str:
    return format_week(parse_week(week) + datetime.timedelta(weeks=n))


def weeks_between(first: str, last: str) -> int:
    """Number of weeks from `first` to `last`, both included (0 or less when last < first)."""
    return (parse_week(last) - parse_week(first)).days // 7 + 1


def week_of_timestamp(ts: Optional[str]) -> Optional[str]:
    """ISO week of an RFC 3339 UTC timestamp as protobuf's JSON prints it ("2025-03-16T23:59:43Z",
    fractions allowed); None when absent."""
    if not ts:
        return None
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})T", ts)
    if not m:
        raise ValueError(f"watermark '{ts}' is not an RFC 3339 timestamp")
    return format_week(datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3))))


# ---- JSON scalars ----------------------------------------------------------------------------------


def u64(v) -> int:
    """A uint64/int64 of the JSON mapping (a string, or a number from a lenient writer); 0 if absent."""
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise ValueError(f"not an integer: {v!r}")
    return int(v)


def f64(v) -> float:
    if v is None:
        return 0.0
    if isinstance(v, str):
        return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(v, v))
    return float(v)


def ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


# ---- messages ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class EntityShare:
    entity: str
    downloads: int
    share: float
    rank: int


@dataclasses.dataclass
class TopEntities:
    window: str
    first_week: str
    last_week: str
    total_downloads: int
    entities: int
    top: list  # of EntityShare


@dataclasses.dataclass
class Point:
    week: str
    total_downloads: int
    entities: int
    hhi: float
    gini: float
    top_shares: dict  # k -> share


@dataclasses.dataclass
class ShareWeek:
    week: str
    total_downloads: int
    downloads: list  # of int, parallel to ShareSeries.entities
    rest_downloads: int


@dataclasses.dataclass
class ShareSeries:
    from_week: str
    to_week: str
    total_downloads: int
    entity_count: int
    entities: list  # of EntityShare
    weeks: list  # of ShareWeek


def _entity_share(o: dict) -> EntityShare:
    return EntityShare(
        entity=str(o.get("entity", "")),
        downloads=u64(o.get("downloads")),
        share=f64(o.get("share")),
        rank=u64(o.get("rank")),
    )


def parse_top(o: dict) -> TopEntities:
    """TopEntities (hubctl top)."""
    return TopEntities(
        window=str(o.get("window", "")),
        first_week=str(o.get("first_week", "")),
        last_week=str(o.get("last_week", "")),
        total_downloads=u64(o.get("total_downloads")),
        entities=u64(o.get("entities")),
        top=[_entity_share(e) for e in o.get("top", []) or []],
    )


def parse_point(o: dict) -> Point:
    return Point(
        week=str(o.get("first_week", "")),
        total_downloads=u64(o.get("total_downloads")),
        entities=u64(o.get("entities")),
        hhi=f64(o.get("hhi")),
        gini=f64(o.get("gini")),
        top_shares={int(t.get("k", 0)): f64(t.get("share")) for t in o.get("top_shares", []) or []},
    )


def parse_series(o: dict) -> list:
    """ConcentrationSeries (hubctl series): its points, one per week in order."""
    return [parse_point(p) for p in o.get("points", []) or []]


def parse_share_series(o: dict) -> ShareSeries:
    """ShareSeries (hubctl shares). A week's downloads list shorter than the entities (zeros left
    out by a writer) is padded with zeros."""
    entities = [_entity_share(e) for e in o.get("entities", []) or []]
    weeks = []
    for w in o.get("weeks", []) or []:
        downloads = [u64(d) for d in w.get("downloads", []) or []]
        if len(downloads) > len(entities):
            raise ValueError(
                f"week {w.get('week')}: {len(downloads)} downloads for {len(entities)} entities"
            )
        downloads += [0] * (len(entities) - len(downloads))
        weeks.append(
            ShareWeek(
                week=str(w.get("week", "")),
                total_downloads=u64(w.get("total_downloads")),
                downloads=downloads,
                rest_downloads=u64(w.get("rest_downloads")),
            )
        )
    return ShareSeries(
        from_week=str(o.get("from_week", "")),
        to_week=str(o.get("to_week", "")),
        total_downloads=u64(o.get("total_downloads")),
        entity_count=u64(o.get("entity_count")),
        entities=entities,
        weeks=weeks,
    )


def watermark_week(stats: dict) -> Optional[str]:
    """ISO week of IngestStats.watermark; None before any accepted event (no watermark)."""
    return week_of_timestamp(stats.get("watermark"))


# ---- Figure 1: leaderboards -------------------------------------------------------------------------


@dataclasses.dataclass
class Leaderboard:
    window: str  # as the server echoed it, with its weeks when it has them
    total_downloads: int
    entities: int
    rows: list  # of (rank, entity, downloads, share)


def window_label(window: str, first_week: str = "", last_week: str = "") -> str:
    """The window as the server echoed it, with the weeks it covered when the name does not say."""
    if not first_week or not last_week:
        return window
    if window in (f"week:{first_week}", f"range:{first_week}..{last_week}"):
        return window
    span = first_week if first_week == last_week else f"{first_week}..{last_week}"
    return f"{window} ({span})"


def leaderboard(top: TopEntities, n: int) -> Leaderboard:
    rows = [
        (e.rank, e.entity, e.downloads, ratio(e.downloads, top.total_downloads))
        for e in top.top[:n]
        if e.downloads > 0
    ]
    return Leaderboard(
        window=window_label(top.window, top.first_week, top.last_week),
        total_downloads=top.total_downloads,
        entities=top.entities,
        rows=rows,
    )


# ---- the weeks with data ------------------------------------------------------------------------------


def data_range(points: Sequence[Point]) -> Optional[tuple]:
    """(first, last) week with downloads among `points`, or None when none has any."""
    with_data = [p.week for p in points if p.total_downloads > 0]
    if not with_data:
        return None
    return with_data[0], with_data[-1]


def probe_window(watermark: str) -> tuple:
    """The widest week range one series call can cover, ending with the watermark's week."""
    return add_weeks(watermark, -(MAX_RANGE_WEEKS - 1)), watermark


def check_range(first: str, last: str) -> None:
    n = weeks_between(first, last)
    if n < 1:
        raise ValueError(f"week range {first}..{last}: the first week is after the last")
    if n > MAX_RANGE_WEEKS:
        raise ValueError(
            f"week range {first}..{last} covers {n} weeks; the server allows at most {MAX_RANGE_WEEKS}"
        )


# ---- Figure 2: shares over time -----------------------------------------------------------------------


@dataclasses.dataclass
class StackedShares:
    weeks: list  # of "YYYY-Www"
    labels: list  # the entities in rank order, then REST
    shares: list  # shares[i][w]: label i's share of week w (all 0 in a week without downloads)
    has_data: list  # of bool per week
    total_downloads: int
    entity_count: int


def stacked_shares(series: ShareSeries, trim: bool = True) -> StackedShares:
    """Per week, each followed entity's share and the rest's, from the integer counts: in a week
    with downloads they add up to 1. With `trim`, weeks without downloads before the first and after
    the last week that has some are left out (interior empty weeks stay, as gaps)."""
    weeks = list(series.weeks)
    if trim:
        idx = [i for i, w in enumerate(weeks) if w.total_downloads > 0]
        weeks = weeks[idx[0] : idx[-1] + 1] if idx else []
    n = len(series.entities)
    shares = [[0.0] * len(weeks) for _ in range(n + 1)]
    for j, w in enumerate(weeks):
        rest = w.rest_downloads
        if w.total_downloads and sum(w.downloads) + rest != w.total_downloads:
            # Derive the rest from the counts rather than trust a field that does not add up.
            rest = w.total_downloads - sum(w.downloads)
            if rest < 0:
                raise ValueError(f"week {w.week}: the entities' downloads exceed the week's total")
        for i in range(n):
            shares[i][j] = ratio(w.downloads[i], w.total_downloads)
        shares[n][j] = ratio(rest, w.total_downloads)
    return StackedShares(
        weeks=[w.week for w in weeks],
        labels=[e.entity for e in series.entities] + [REST],
        shares=shares,
        has_data=[w.total_downloads > 0 for w in weeks],
        total_downloads=series.total_downloads,
        entity_count=series.entity_count,
    )


# ---- Figure 3: concentration over time ---------------------------------------------------------------


@dataclasses.dataclass
class Bands:
    weeks: list
    labels: list  # "top 1", "top 2-10", "top 11-100", "rest"
    segments: list  # segments[i][w], adding up to 1 in a week with downloads, 0 without
    hhi: list  # NaN in a week without downloads (a gap in the line)
    gini: list
    has_data: list


def segment_labels(ks: Sequence[int]) -> list:
    """Names of the ranked segments the top-k shares cut: (1, 10, 100) -> top 1, top 2-10,
    top 11-100, rest."""
    labels, lo = [], 1
    for k in sorted(ks):
        labels.append(f"top {k}" if lo == 1 else (f"rank {k}" if lo == k else f"top {lo}-{k}"))
        lo = k + 1
    return labels + [REST]


def concentration_bands(points: Sequence[Point], ks: Sequence[int] = (1, 10, 100), trim: bool = True) -> Bands:
    """The ranked segments of each week (top 1, ranks 2-10, 11-100, the rest) from its top-k shares,
    with its HHI and Gini. With `trim`, empty weeks at both ends are left out."""
    ks = sorted(ks)
    pts = list(points)
    if trim:
        idx = [i for i, p in enumerate(pts) if p.total_downloads > 0]
        pts = pts[idx[0] : idx[-1] + 1] if idx else []
    segments = [[0.0] * len(pts) for _ in range(len(ks) + 1)]
    hhi, gini = [], []
    for j, p in enumerate(pts):
        if p.total_downloads == 0:
            hhi.append(math.nan)
            gini.append(math.nan)
            continue
        missing = [k for k in ks if k not in p.top_shares]
        if missing:
            raise ValueError(f"week {p.week}: no top-{missing[0]} share in the answer")
        prev = 0.0
        for i, k in enumerate(ks):
            cur = min(1.0, max(prev, p.top_shares[k]))
            segments[i][j] = cur - prev
            prev = cur
        segments[len(ks)][j] = 1.0 - prev
        hhi.append(p.hhi)
        gini.append(p.gini)
    return Bands(
        weeks=[p.week for p in pts],
        labels=segment_labels(ks),
        segments=segments,
        hhi=hhi,
        gini=gini,
        has_data=[p.total_downloads > 0 for p in pts],
    )


# ---- eras -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Era:
    name: str
    first: str
    last: Optional[str]  # None: up to the watermark's week


def parse_eras(spec: str) -> list:
    """"NAME=YYYY-Www..YYYY-Www,NAME=YYYY-Www..,..." (an empty end: the watermark's week)."""
    eras = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if "=" not in part:
            raise ValueError(f"era '{part}': expected NAME=YYYY-Www..YYYY-Www")
        name, rng = part.rsplit("=", 1)
        if ".." not in rng:
            raise ValueError(f"era '{part}': expected NAME=YYYY-Www..YYYY-Www (the end may be empty)")
        first, last = rng.split("..", 1)
        parse_week(first)
        if last:
            check_range(first, last)
        if not name:
            raise ValueError(f"era '{part}' has no name")
        eras.append(Era(name=name, first=first, last=last or None))
    if not eras:
        raise ValueError("no eras given")
    names = [e.name for e in eras]
    if len(set(names)) != len(names):
        raise ValueError(f"era names repeat: {names}")
    return eras


def era_label(name: str) -> str:
    return name.replace("<=", "\u2264").replace(">=", "\u2265")


def resolve_era(era: Era, watermark: Optional[str]) -> Optional[tuple]:
    """(first, last) of the era's range window, or None when it cannot hold data: an open era before
    any event, or one that starts after the watermark's week."""
    last = era.last or watermark
    if last is None:
        return None
    if era.last is None and weeks_between(era.first, last) < 1:
        return None
    check_range(era.first, last)
    return era.first, last


# ---- Table 1 and Figures 4-9: compositions ---------------------------------------------------------------


@dataclasses.dataclass
class Composition:
    """Shares of a level's values in several columns (windows, or countries for a pair level)."""

    columns: list  # column labels
    values: list  # the values kept, in order; OTHER (everything else) last when present
    downloads: list  # downloads[c]: list parallel to values, or None when column c has no data
    totals: list  # totals[c]: downloads of column c (0: no data)

    def shares(self, c: int) -> Optional[list]:
        if self.downloads[c] is None:
            return None
        return [ratio(d, self.totals[c]) for d in self.downloads[c]]


def _order_values(ranked: list, order: Optional[Sequence[str]]) -> list:
    if not order:
        return ranked
    pos = {v: i for i, v in enumerate(order)}
    return sorted(ranked, key=lambda v: (pos.get(v, len(pos)), ranked.index(v)))


def composition(
    columns: Sequence[tuple], max_values: int, order: Optional[Sequence[str]] = None
) -> Composition:
    """columns: (label, TopEntities or None). A column whose answer is None or has no downloads has
    no data. The values kept are the `max_values` with the most downloads over all columns (ties by
    value); the others, and whatever a column had beyond the entities the server listed, are OTHER.
    `order` (e.g. SIZE_ORDER) sorts the kept values; otherwise most downloads first."""
    sums: dict = {}
    for _, top in columns:
        if top is None:
            continue
        for e in top.top:
            sums[e.entity] = sums.get(e.entity, 0) + e.downloads
    ranked = [v for v, d in sorted(sums.items(), key=lambda kv: (-kv[1], kv[0])) if d > 0]
    kept = _order_values(ranked[:max_values], order)
    index = {v: i for i, v in enumerate(kept)}
    rows, totals, need_other = [], [], False
    for _, top in columns:
        if top is None or top.total_downloads == 0:
            rows.append(None)
            totals.append(0)
            continue
        row = [0] * (len(kept) + 1)
        for e in top.top:
            row[index.get(e.entity, len(kept))] += e.downloads
        listed = sum(e.downloads for e in top.top)
        if listed > top.total_downloads:
            raise ValueError(f"window {top.window}: the listed downloads exceed the total")
        row[len(kept)] += top.total_downloads - listed
        need_other |= row[len(kept)] > 0
        rows.append(row)
        totals.append(top.total_downloads)
    values = kept + ([OTHER] if need_other else [])
    if not need_other:
        rows = [r[:-1] if r is not None else None for r in rows]
    return Composition(columns=[c for c, _ in columns], values=values, downloads=rows, totals=totals)


def delta_last_vs_earlier(comp: Composition) -> list:
    """Per value: its share in the last column over its share in all earlier columns together
    (downloads-weighted, as the paper's "<2025 | >=2025" multiplier), None when either side has no
    data, math.inf when the value is new in the last column. Disjoint eras only: counts add up."""
    last = len(comp.columns) - 1
    if last < 1 or comp.downloads[last] is None:
        return [None] * len(comp.values)
    earlier = [c for c in range(last) if comp.downloads[c] is not None]
    if not earlier:
        return [None] * len(comp.values)
    den = sum(comp.totals[c] for c in earlier)
    out = []
    for i in range(len(comp.values)):
        before = ratio(sum(comp.downloads[c][i] for c in earlier), den)
        now = ratio(comp.downloads[last][i], comp.totals[last])
        if before == 0:
            out.append(math.inf if now > 0 else None)
        else:
            out.append(now / before)
    return out


def pair_composition(top: TopEntities, max_rows: int, order: Optional[Sequence[str]] = None) -> Composition:
    """A pair level's answer ("US|company" entities) as one column per first value (the `max_rows`
    first values with the most downloads; the others together as OTHER), each split by the second
    value: within a column the shares add up to 1. Splits at the first '|'."""
    by_a: dict = {}
    for e in top.top:
        a, sep, b = e.entity.partition("|")
        if not sep:
            raise ValueError(f"entity '{e.entity}' is not a pair A|B")
        by_a.setdefault(a, {})
        by_a[a][b] = by_a[a].get(b, 0) + e.downloads
    a_ranked = sorted(by_a, key=lambda a: (-sum(by_a[a].values()), a))
    shown, folded = a_ranked[:max_rows], a_ranked[max_rows:]
    columns = [(a, by_a[a]) for a in shown]
    if folded:
        merged: dict = {}
        for a in folded:
            for b, d in by_a[a].items():
                merged[b] = merged.get(b, 0) + d
        columns.append((OTHER, merged))
    b_sums: dict = {}
    for _, m in columns:
        for b, d in m.items():
            b_sums[b] = b_sums.get(b, 0) + d
    b_values = _order_values([b for b, _ in sorted(b_sums.items(), key=lambda kv: (-kv[1], kv[0]))], order)
    downloads = [[m.get(b, 0) for b in b_values] for _, m in columns]
    totals = [sum(r) for r in downloads]
    return Composition(
        columns=[a for a, _ in columns],
        values=b_values,
        downloads=[r if t else None for r, t in zip(downloads, totals)],
        totals=totals,
    )


# ---- the waterfall of a change (ExplainChange) -----------------------------------------------------------

# How far before.hhi plus the parts may be from after.hhi. Each part is exact before its one rounding, and
# the server's HHIs are rounded once each, so a real answer is off by about 1e-16.
ADD_UP_TOLERANCE = 1e-9


@dataclasses.dataclass
class ChangeSide:
    """One window of a change: its Concentration answer (the fields the waterfall uses)."""

    window: str
    first_week: str
    last_week: str
    total_downloads: int
    entities: int
    hhi: float


@dataclasses.dataclass
class EntityMove:
    entity: str
    from_downloads: int
    from_share: float
    from_rank: int  # 0: no download in the earlier window
    to_downloads: int
    to_share: float
    to_rank: int  # 0: no download in the later window
    contribution: float  # to_share² - from_share²


@dataclasses.dataclass
class MoverGroup:
    entities: int
    from_downloads: int
    from_share: float
    to_downloads: int
    to_share: float
    contribution: float


@dataclasses.dataclass
class Change:
    """ConcentrationChange (hubctl change)."""

    view: dict  # level, filter, attribution, sample as the server echoed them
    before: ChangeSide
    after: ChangeSide
    delta_hhi: float
    top_movers: list  # of EntityMove, by |contribution| descending
    entrants: MoverGroup  # all entrants and exits: a summary, not part of the partition
    exits: MoverGroup
    other_entrants: MoverGroup
    other_exits: MoverGroup
    rest: MoverGroup
    watermark: str


def _change_side(o: dict) -> ChangeSide:
    return ChangeSide(
        window=str(o.get("window", "")),
        first_week=str(o.get("first_week", "")),
        last_week=str(o.get("last_week", "")),
        total_downloads=u64(o.get("total_downloads")),
        entities=u64(o.get("entities")),
        hhi=f64(o.get("hhi")),
    )


def _mover_group(o: Optional[dict]) -> MoverGroup:
    o = o or {}
    return MoverGroup(
        entities=u64(o.get("entities")),
        from_downloads=u64(o.get("from_downloads")),
        from_share=f64(o.get("from_share")),
        to_downloads=u64(o.get("to_downloads")),
        to_share=f64(o.get("to_share")),
        contribution=f64(o.get("contribution")),
    )


def parse_change(o: dict) -> Change:
    """ConcentrationChange (hubctl change); absent fields, and absent groups, are zero."""
    movers = [
        EntityMove(
            entity=str(m.get("entity", "")),
            from_downloads=u64(m.get("from_downloads")),
            from_share=f64(m.get("from_share")),
            from_rank=u64(m.get("from_rank")),
            to_downloads=u64(m.get("to_downloads")),
            to_share=f64(m.get("to_share")),
            to_rank=u64(m.get("to_rank")),
            contribution=f64(m.get("contribution")),
        )
        for m in o.get("top_movers", []) or []
    ]
    return Change(
        view={k: str(v) for k, v in (o.get("view") or {}).items()},
        before=_change_side(o.get("before") or {}),
        after=_change_side(o.get("after") or {}),
        delta_hhi=f64(o.get("delta_hhi")),
        top_movers=movers,
        entrants=_mover_group(o.get("entrants")),
        exits=_mover_group(o.get("exits")),
        other_entrants=_mover_group(o.get("other_entrants")),
        other_exits=_mover_group(o.get("other_exits")),
        rest=_mover_group(o.get("rest")),
        watermark=str(o.get("watermark", "")),
    )


@dataclasses.dataclass
class WaterfallBar:
    label: str  # "HHI before", an entity (with "(new)" or "(exit)"), "other entrants (N)", ...
    kind: str  # "total" (from 0), "up", "down" or "zero" (floating, by the sign of value)
    value: float  # a total's HHI, or a part's contribution
    start: float  # the running total before the bar (0 for a total)
    end: float  # the running total after it (a total: its HHI)


@dataclasses.dataclass
class Waterfall:
    bars: list  # of WaterfallBar: HHI before, each top mover, other entrants, other exits, rest, HHI after
    top_movers: int  # how many of the bars are top movers
    before_window: str  # window_label of each side
    after_window: str
    delta_hhi: float
    before_downloads: int
    after_downloads: int
    before_entities: int
    after_entities: int

    @property
    def has_data(self) -> bool:
        return self.before_downloads > 0 or self.after_downloads > 0


def _part_kind(v: float) -> str:
    return "up" if v > 0 else ("down" if v < 0 else "zero")


def mover_label(m: EntityMove) -> str:
    """The entity, marked "(new)" when it had no download in the earlier window, "(exit)" when none in
    the later one."""
    if m.from_downloads == 0 and m.to_downloads > 0:
        return f"{m.entity} (new)"
    if m.to_downloads == 0 and m.from_downloads > 0:
        return f"{m.entity} (exit)"
    return m.entity


def waterfall(change: Change, tolerance: float = ADD_UP_TOLERANCE) -> Waterfall:
    """The bars of the waterfall: HHI before (from 0), then each top mover's contribution in the
    server's order, other entrants, other exits and the rest (each floating from the running total),
    then HHI after (from 0). The parts are the ExplainChange partition, so before.hhi plus them must
    be after.hhi: ValueError when they are more than `tolerance` apart (an inconsistent answer)."""
    parts = [(mover_label(m), m.contribution) for m in change.top_movers]
    parts += [
        (f"other entrants ({change.other_entrants.entities:,})", change.other_entrants.contribution),
        (f"other exits ({change.other_exits.entities:,})", change.other_exits.contribution),
        (f"rest ({change.rest.entities:,})", change.rest.contribution),
    ]
    bars = [WaterfallBar("HHI before", "total", change.before.hhi, 0.0, change.before.hhi)]
    running = change.before.hhi
    for label, c in parts:
        bars.append(WaterfallBar(label, _part_kind(c), c, running, running + c))
        running += c
    if not math.isfinite(running) or abs(running - change.after.hhi) > tolerance:
        raise ValueError(
            f"the change does not add up: HHI before {change.before.hhi!r} + the parts "
            f"({len(change.top_movers)} top movers, other entrants, other exits, rest) = {running!r}, "
            f"but HHI after is {change.after.hhi!r} (off by {running - change.after.hhi:.3g}, "
            f"more than {tolerance:g})"
        )
    bars.append(WaterfallBar("HHI after", "total", change.after.hhi, 0.0, change.after.hhi))
    b, a = change.before, change.after
    return Waterfall(
        bars=bars,
        top_movers=len(change.top_movers),
        before_window=window_label(b.window, b.first_week, b.last_week),
        after_window=window_label(a.window, a.first_week, a.last_week),
        delta_hhi=change.delta_hhi,
        before_downloads=b.total_downloads,
        after_downloads=a.total_downloads,
        before_entities=b.entities,
        after_entities=a.entities,
    )


# ---- Table 1 as Markdown -----------------------------------------------------------------------------------


def pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def fmt_delta(d: Optional[float]) -> str:
    if d is None:
        return ""
    if math.isinf(d):
        return "new"
    return f"{d:.1f}x"


def era_table_rows(tables: Iterable[tuple]) -> list:
    """tables: (level, Composition over the eras). Rows of cells: level, value, one per era (a share,
    or "no data"), and the last era's multiplier over the earlier ones."""
    rows = []
    for level, comp in tables:
        deltas = delta_last_vs_earlier(comp)
        if not comp.values:
            rows.append([level, "(no data)"] + ["no data"] * len(comp.columns) + [""])
            continue
        for i, v in enumerate(comp.values):
            cells = []
            for c in range(len(comp.columns)):
                s = comp.shares(c)
                cells.append("no data" if s is None else pct(s[i]))
            rows.append([level, v] + cells + [fmt_delta(deltas[i])])
    return rows


def md_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        lines.append("| " + " | ".join(md_escape(str(c)) for c in r) + " |")
    return "\n".join(lines) + "\n"
