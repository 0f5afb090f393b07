"""Draws the shaped numbers (shaping.py) with matplotlib, each figure as STEM.png and STEM.svg.

The output is reproducible: no dates or versions in the files' metadata, SVG ids from a fixed salt.
"""

from __future__ import annotations

import datetime
import math
import os
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import dates as mdates  # noqa: E402
from matplotlib import patches as mpatches  # noqa: E402

import shaping  # noqa: E402

plt.rcParams.update(
    {
        "svg.hashsalt": "hubmetrics-figures",
        "svg.fonttype": "path",
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.dpi": 100,
    }
)

PNG_DPI = 150
REST_COLOR = "#c8c8c8"
OTHER_COLOR = "#9e9e9e"
UNKNOWN_COLOR = "#e0e0e0"
HHI_COLOR = "#e7298a"  # pink, as the paper's Figure 3
GINI_COLOR = "#54278f"  # purple
# Ranked segments, largest first: dark to light blue; the rest is REST_COLOR.
SEGMENT_COLORS = ("#08519c", "#6baed6", "#c6dbef", "#eff3ff")


def save(fig, out_dir: str, stem: str) -> list:
    """Writes STEM.png and STEM.svg into out_dir; returns their paths."""
    paths = []
    for ext, kwargs in (
        ("png", {"dpi": PNG_DPI, "metadata": {"Software": None}}),
        ("svg", {"metadata": {"Date": None}}),
    ):
        path = os.path.join(out_dir, f"{stem}.{ext}")
        fig.savefig(path, bbox_inches="tight", **kwargs)
        paths.append(path)
    plt.close(fig)
    return paths


def truncate(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)


def _palette(labels: Sequence[str]) -> list:
    """A color per label: the qualitative tab20 then tab20b/tab20c cycle; rest/other/unknown grey."""
    cmap = [plt.get_cmap(name)(i) for name in ("tab20", "tab20b", "tab20c") for i in range(20)]
    out, i = [], 0
    for label in labels:
        if label == shaping.REST:
            out.append(REST_COLOR)
        elif label == shaping.OTHER:
            out.append(OTHER_COLOR)
        elif label == "unknown":
            out.append(UNKNOWN_COLOR)
        else:
            out.append(cmap[i % len(cmap)])
            i += 1
    return out


def _week_x(weeks: Sequence[str]) -> list:
    return [shaping.parse_week(w) for w in weeks]


def _steps(weeks: Sequence[str], rows: Sequence[Sequence[float]], has_data: Sequence[bool]):
    """x and y that draw each week as a flat step over its seven days: x holds each week's Monday and
    the next Monday, y each value twice; a week without downloads is NaN, a gap in areas and lines."""
    x = []
    for m in _week_x(weeks):
        x += [m, m + datetime.timedelta(days=7)]
    ys = []
    for row in rows:
        y = []
        for v, ok in zip(row, has_data):
            y += [v, v] if ok else [math.nan, math.nan]
        ys.append(y)
    return x, ys


def _date_axis(ax) -> None:
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


# ---- Figure 1 ----------------------------------------------------------------------------------------


def leaderboards(grid: Sequence[tuple], title: str, out_dir: str, stem: str) -> list:
    """grid: (level, [Leaderboard per window]); one row of panels per level, one column per window."""
    nrows = len(grid)
    ncols = max(len(boards) for _, boards in grid)
    n = max([len(b.rows) for _, boards in grid for b in boards] + [1])
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(6.0 * ncols, (0.26 * n + 1.1) * nrows), squeeze=False, constrained_layout=True
    )
    for r, (level, boards) in enumerate(grid):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(boards):
                ax.set_axis_off()
                continue
            b = boards[c]
            ax.set_title(f"{level} \u2014 {b.window}", loc="left")
            if not b.rows:
                _no_data(ax)
                continue
            y = list(range(len(b.rows)))
            shares = [100 * row[3] for row in b.rows]
            ax.barh(y, shares, color="#3182bd", height=0.7)
            ax.set_yticks(y, [f"{row[0]}. {truncate(row[1], 38)}" for row in b.rows])
            ax.set_ylim(n - 0.5, -0.5)
            xmax = max(shares)
            ax.set_xlim(0, xmax * 1.22 if xmax > 0 else 1)
            for yi, s in zip(y, shares):
                ax.text(s + xmax * 0.01, yi, f"{s:.2f}%", va="center", fontsize=8)
            ax.set_xlabel(f"share of downloads (%) \u2014 {b.total_downloads:,} downloads, {b.entities:,} entities")
    fig.suptitle(title, fontsize=11)
    return save(fig, out_dir, stem)


# ---- Figure 2 ----------------------------------------------------------------------------------------


def share_series(level: str, data: Optional[shaping.StackedShares], title: str, out_dir: str, stem: str,
                 message: str = "no data") -> list:
    fig, ax = plt.subplots(figsize=(11, 5.2), constrained_layout=True)
    ax.set_title(title, loc="left")
    if data is None or not data.weeks or not any(data.has_data):
        _no_data(ax, message)
        return save(fig, out_dir, stem)
    x, ys = _steps(data.weeks, [[100 * v for v in row] for row in data.shares], data.has_data)
    labels = [truncate(label, 36) for label in data.labels]
    ax.stackplot(x, ys, labels=labels, colors=_palette(data.labels), linewidth=0)
    ax.set_ylim(0, 100)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("share of the week's downloads (%)")
    _date_axis(ax)
    handles, leg_labels = ax.get_legend_handles_labels()
    # Largest on top, as the areas are stacked.
    ax.legend(handles[::-1], leg_labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
              frameon=False, title=f"{level} (rank over the range)", title_fontsize=8)
    ax.text(0.0, -0.12, f"{data.weeks[0]} .. {data.weeks[-1]}; {data.total_downloads:,} downloads, "
            f"{data.entity_count:,} entities over the range", transform=ax.transAxes, fontsize=8, color="#555555")
    return save(fig, out_dir, stem)


# ---- Figure 3 ----------------------------------------------------------------------------------------


def concentration(panels: Sequence[tuple], title: str, out_dir: str, stem: str, message: str = "no data") -> list:
    """panels: (level, Bands or None); one row per level: the ranked segments stacked, HHI and Gini."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.1 * len(panels)), squeeze=False, constrained_layout=True)
    for (level, bands), row in zip(panels, axes):
        ax = row[0]
        ax.set_title(f"{level}", loc="left")
        if bands is None or not bands.weeks or not any(bands.has_data):
            _no_data(ax, message)
            continue
        x, ys = _steps(bands.weeks, bands.segments, bands.has_data)
        colors = [SEGMENT_COLORS[min(i, len(SEGMENT_COLORS) - 1)] for i in range(len(bands.labels) - 1)]
        colors.append(REST_COLOR)
        ax.stackplot(x, ys, labels=bands.labels, colors=colors, linewidth=0, alpha=0.9)
        _, (hhi, gini) = _steps(bands.weeks, [bands.hhi, bands.gini], bands.has_data)
        ax.plot(x, gini, color=GINI_COLOR, linewidth=1.8, label="Gini")
        ax.plot(x, hhi, color=HHI_COLOR, linewidth=1.8, label="HHI")
        ax.set_ylim(0, 1)
        ax.set_xlim(x[0], x[-1])
        ax.set_ylabel("share of downloads; index")
        _date_axis(ax)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return save(fig, out_dir, stem)


# ---- Table 1 -----------------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str, out_dir: str, stem: str) -> list:
    """The table as a figure; the level is written once per group of rows, groups shaded in turn."""
    nrows = max(len(rows), 1)
    width = 2.0 + 2.4 + 1.35 * (len(header) - 2)
    fig, ax = plt.subplots(figsize=(width, 0.24 * (nrows + 1) + 0.9))
    ax.set_axis_off()
    ax.set_title(title, loc="left", fontsize=10)
    if not rows:
        _no_data(ax)
        return save(fig, out_dir, stem)
    cells, colors, prev, shade = [], [], None, False
    for r in rows:
        if r[0] != prev:
            shade = not shade
        cells.append([r[0] if r[0] != prev else ""] + [truncate(str(c), 34) for c in r[1:]])
        colors.append(["#eef3fa" if shade else "#ffffff"] * len(r))
        prev = r[0]
    t = ax.table(cellText=cells, colLabels=list(header), cellColours=colors, loc="upper left", cellLoc="right")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.scale(1.0, 1.25)
    for (row, col), cell in t.get_celld().items():
        cell.set_edgecolor("#d0d0d0")
        if col < 2:
            cell.set_text_props(ha="left")
            cell._loc = "left"  # noqa: SLF001 (matplotlib has no public setter for a cell's alignment)
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#dde6f2")
    t.auto_set_column_width(list(range(len(header))))
    return save(fig, out_dir, stem)


# ---- Figures 4-9: compositions -------------------------------------------------------------------------


def compositions(panels: Sequence[tuple], title: str, out_dir: str, stem: str) -> list:
    """panels: (panel title, Composition); each column of a composition is one 100% bar, its values
    the segments (labelled when 5% or more); a column without data says so."""
    heights = [max(len(comp.columns), 1) * 0.42 + 1.3 for _, comp in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(11, sum(heights)), squeeze=False, constrained_layout=True,
        gridspec_kw={"height_ratios": heights},
    )
    for (panel_title, comp), row in zip(panels, axes):
        ax = row[0]
        ax.set_title(panel_title, loc="left")
        if not comp.values or all(d is None for d in comp.downloads):
            _no_data(ax)
            continue
        colors = _palette(comp.values)
        y = list(range(len(comp.columns)))
        for i, value in enumerate(comp.values):
            widths, lefts = [], []
            for c in range(len(comp.columns)):
                s = comp.shares(c)
                left = 0.0 if s is None else 100 * sum(s[:i])
                widths.append(0.0 if s is None else 100 * s[i])
                lefts.append(left)
            ax.barh(y, widths, left=lefts, color=colors[i], height=0.7, label=truncate(value, 30),
                    edgecolor="white", linewidth=0.4)
            for yi, w, left in zip(y, widths, lefts):
                if w >= 5:
                    ax.text(left + w / 2, yi, f"{w:.0f}%", ha="center", va="center", fontsize=7,
                            color="white" if _dark(colors[i]) else "black")
        for c, label in enumerate(comp.columns):
            if comp.downloads[c] is None:
                ax.text(50, c, "no data", ha="center", va="center", fontsize=8, color="#666666")
        ax.set_yticks(y, [truncate(str(c), 44) for c in comp.columns])
        ax.set_ylim(len(comp.columns) - 0.5, -0.5)
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of downloads (%)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=11)
    return save(fig, out_dir, stem)


def _dark(color) -> bool:
    r, g, b = matplotlib.colors.to_rgb(color)
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5



# ---- the waterfall of a change ------------------------------------------------------------------------

TOTAL_COLOR = "#525252"  # HHI before and after, from 0
UP_COLOR = "#e66101"  # a part that raised HHI (orange; with purple, readable by the colour-blind)
DOWN_COLOR = "#5e3c99"  # a part that lowered it


def waterfall(data: Optional[shaping.Waterfall], title: str, out_dir: str, stem: str,
              message: str = "no data") -> list:
    """HHI before and after as bars from 0, each part of the change between them as a bar floating from
    the running total (orange up, purple down), labelled with its signed contribution. When the parts
    are small next to HHI, the axis starts above 0 (said on the axis) so that they can be seen."""
    n = len(data.bars) if data is not None else 0
    fig, ax = plt.subplots(figsize=(max(7.0, 0.62 * n + 2.5), 5.4), constrained_layout=True)
    ax.set_title(title, loc="left")
    if data is None or not data.has_data:
        _no_data(ax, message)
        return save(fig, out_dir, stem)
    x = list(range(n))
    bottoms, heights, colors = [], [], []
    for b in data.bars:
        if b.kind == "total":
            bottoms.append(0.0)
            heights.append(b.value)
            colors.append(TOTAL_COLOR)
        else:
            bottoms.append(min(b.start, b.end))
            heights.append(abs(b.value))
            colors.append(UP_COLOR if b.kind == "up" else DOWN_COLOR)
    ax.bar(x, heights, bottom=bottoms, color=colors, width=0.7)
    for i, b in enumerate(data.bars):
        if b.kind == "zero":  # no height: a flat mark at the running total
            ax.plot([i - 0.35, i + 0.35], [b.start, b.start], color=TOTAL_COLOR, linewidth=1.2)
    levels = [v for b in data.bars for v in (b.start, b.end) if b.kind != "total"]
    levels += [data.bars[0].end, data.bars[-1].end]
    lo, hi = min(levels), max(levels)
    span = hi - lo
    top = max(hi, 1e-12)
    # The parts all within a quarter of the largest HHI: zoom in, the axis no longer starting at 0.
    floor = max(0.0, lo - 0.6 * span) if 0 < span < 0.25 * top else 0.0
    ceil = hi + 0.18 * (hi - floor if hi > floor else top)
    ax.set_ylim(floor, ceil)
    # Thin lines carry the running total from one bar to the next.
    for i in range(n - 1):
        level = data.bars[i].end
        ax.plot([i + 0.35, i + 0.65], [level, level], color="#888888", linewidth=0.8, linestyle=(0, (2, 2)))
    pad = 0.012 * (ceil - floor)
    for i, b in enumerate(data.bars):
        if b.kind == "total":
            text, y, va = f"{b.value:.6f}", b.value + pad, "bottom"
        elif b.kind == "down":
            text, y, va = f"{b.value:+.6f}", min(b.start, b.end) - pad, "top"
        else:
            text, y, va = f"{b.value:+.6f}", max(b.start, b.end) + pad, "bottom"
        color = {"up": UP_COLOR, "down": DOWN_COLOR}.get(b.kind, TOTAL_COLOR)
        ax.text(i, y, text, ha="center", va=va, fontsize=7, color=color)
    labels = [f"HHI before\n{truncate(data.before_window, 30)}"]
    labels += [truncate(b.label, 28) for b in data.bars[1:-1]]
    labels.append(f"HHI after\n{truncate(data.after_window, 30)}")
    ax.set_xticks(x, labels, rotation=35, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("HHI" if floor == 0 else f"HHI (the axis starts at {floor:.4f}, not 0)")
    handles = [mpatches.Patch(color=c, label=lab) for c, lab in (
        (TOTAL_COLOR, "HHI of the window"), (UP_COLOR, "raised HHI"), (DOWN_COLOR, "lowered HHI"))]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_xlabel(f"\u0394HHI {data.delta_hhi:+.6f} = the top {data.top_movers} movers + other entrants + "
                  f"other exits + rest; downloads {data.before_downloads:,} \u2192 {data.after_downloads:,}, "
                  f"entities {data.before_entities:,} \u2192 {data.after_entities:,}",
                  fontsize=8, color="#555555", loc="left")
    return save(fig, out_dir, stem)
